"""The obslink command as a user runs it."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from obslink.plugins.registry import load_registry

GOLDEN = Path(__file__).parent / "golden" / "toa5"


def obslink(*args, check=False):
    result = subprocess.run([sys.executable, "-m", "obslink", *map(str, args)],
                            capture_output=True, text=True)
    if check:
        assert result.returncode == 0, result.stderr
    return result


@pytest.mark.parametrize("command", [
    [], ["plugins"], ["parse"], ["agent"], ["agent", "keygen"], ["agent", "check"],
    ["agent", "run"], ["agent", "status"], ["agent", "recover"], ["collector"],
    ["collector", "serve"], ["collector", "station"], ["collector", "station", "add"],
    ["catalog"], ["catalog", "stats"], ["catalog", "qc"], ["catalog", "gaps"], ["demo"]])
def test_help_on_every_level(command):
    result = obslink(*command, "--help", check=True)
    assert "usage: obslink" in result.stdout


def test_parse_json_lines_and_summary():
    result = obslink("parse", GOLDEN / "bad_records" / "input.dat", "--format", "toa5",
                     "--json", check=True)
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert lines[0] == {"observed_at": "2025-03-01T00:00:00Z", "element": "A", "value": 1.0,
                        "unit": "degC", "source_field": "A", "source_flag": None, "qc": 9,
                        "period_s": None, "qc_ran": [], "qc_failed": []}
    assert len(lines) == 4
    assert "line 6: timestamp '2025-13-01 00:01:00'" in result.stderr
    assert "4 readings, 5 records quarantined" in result.stderr


def test_parse_runs_qc_with_default_limits(tmp_path):
    from obslink.plugins.hj212 import frame

    packet = frame(b"QN=20260101080000000;ST=22;CN=2011;PW=123456;MN=AQ1;Flag=4;CP=&&"
                   b"DataTime=20260101080000;a34004-Rtd=120.0,a34004-Flag=N;"
                   b"a34002-Rtd=100.0,a34002-Flag=N;a21026-Rtd=0.05,a21026-Flag=D;"
                   b"a01001-Rtd=85.0,a01001-Flag=N&&")
    path = tmp_path / "packets.txt"
    path.write_bytes(packet)
    result = obslink("parse", path, "--format", "hj212", "--tz", "+08:00", "--json",
                     check=True)
    flags = {line["element"]: (line["qc"], line["qc_failed"])
             for line in map(json.loads, result.stdout.splitlines())}
    assert flags == {"pm2_5": (1, ["consistency"]), "pm10": (1, ["consistency"]),
                     "so2": (2, ["source_flags"]), "air_temperature": (2, ["range"])}
    assert "QC: 2 suspect, 2 erroneous; flagged by" in result.stderr
    assert "coverage 100.0 %" in result.stderr
    table = obslink("parse", path, "--format", "hj212", check=True).stdout
    assert "flagged by" in table.splitlines()[0] and "source_flags" in table


LOGGER_TOA5 = (
    '"TOA5","ST1","CR1000X","1","OS","CPU:a.CR1X","1","Min1"\n'
    '"TIMESTAMP","RECORD","AirTC","BattV"\n"TS","RN","Deg C","Volts"\n"","","Smp","Smp"\n'
    '"2026-07-01 08:00:00",1,35.0,12.7\n"2026-07-01 08:01:00",2,35.5,12.7\n')


def test_parse_with_a_station_config_applies_its_mapping_offset_and_limits(tmp_path):
    logger = tmp_path / "logger"
    logger.mkdir()
    (logger / "Min1.dat").write_text(LOGGER_TOA5)
    (tmp_path / "other").mkdir()
    config = tmp_path / "agent.toml"
    config.write_text(f"""\
[station]
id = "ST1"
private_key = "station.key"
utc_offset = "+08:00"
[qc.limits.air_temperature]
suspect_max = 30.0
[qc.limits.air_temperature.months.1]
suspect_max = 20.0
[sources.logger]
type = "directory"
format = "toa5"
path = "{logger}"
[sources.logger.elements]
AirTC = "air_temperature"
BattV = {{ element = "battery_voltage", unit = "V" }}
[sources.other]
type = "directory"
format = "delimited"
path = "{tmp_path / 'other'}"
[sources.other.options]
time_columns = "t"
""")
    result = obslink("parse", logger / "Min1.dat", "--config", config, "--json", check=True)
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [(x["observed_at"], x["element"], x["qc"], x["qc_failed"]) for x in lines] == [
        ("2026-07-01T00:00:00Z", "air_temperature", 1, ["range"]),
        ("2026-07-01T00:00:00Z", "battery_voltage", 0, []),
        ("2026-07-01T00:01:00Z", "air_temperature", 1, ["range"]),
        ("2026-07-01T00:01:00Z", "battery_voltage", 0, [])]
    assert "decoding as source 'logger'" in result.stderr
    # the defaults alone: AirTC is not a vocabulary element, so nothing checks it
    plain = obslink("parse", logger / "Min1.dat", "--format", "toa5", "--json", check=True)
    assert {json.loads(line)["qc"] for line in plain.stdout.splitlines()} == {9}
    elsewhere = tmp_path / "Min1.dat"
    elsewhere.write_text(LOGGER_TOA5)
    ambiguous = obslink("parse", elsewhere, "--config", config)
    assert ambiguous.returncode == 2 and "--source NAME" in ambiguous.stderr
    picked = obslink("parse", elsewhere, "--config", config, "--source", "logger", check=True)
    assert picked.stdout.count("air_temperature") == 2
    wrong = obslink("parse", elsewhere, "--config", config, "--source", "logger",
                    "--format", "tob1")
    assert wrong.returncode == 2 and "drop --format" in wrong.stderr


def test_parse_table_keeps_fractional_seconds_and_converts_time():
    result = obslink("parse", GOLDEN / "crlf_fractional_seconds" / "input.dat", "--format",
                     "toa5", "--tz", "+01:00", check=True)
    assert "2026-02-19T08:45:59.005Z" in result.stdout
    assert "2026-02-19T08:45:59.05Z" in result.stdout
    assert result.stdout.splitlines()[0].startswith("observed_at (UTC)")


@pytest.mark.parametrize("args, message", [
    (["--format", "toa6"], "unknown format 'toa6'; installed formats: "
     + ", ".join(sorted(load_registry().formats))),
    (["--format", "toa5", "--tz", "+8h"], "--tz"),
    (["--format", "toa5", "--option", "nokey"], "KEY=VALUE"),
    (["--format", "toa5", "--option", "x=1"], "format 'toa5' has no option 'x'"),
])
def test_parse_usage_errors_are_explained(args, message):
    result = obslink("parse", GOLDEN / "hourly_lf" / "input.dat", *args)
    assert result.returncode == 2 and message in result.stderr
    assert "Traceback" not in result.stderr


def test_parse_never_crashes_on_garbage(tmp_path):
    garbage = tmp_path / "garbage.dat"
    garbage.write_bytes(os.urandom(5000) + b"\n\x00\"TOA5\n")
    result = obslink("parse", garbage, "--format", "toa5", "--json")
    assert result.returncode == 0 and "quarantined" in result.stderr


def test_keygen_station_add_and_stats(tmp_path):
    result = obslink("agent", "keygen", "--private", tmp_path / "k" / "station.key", check=True)
    private = tmp_path / "k" / "station.key"
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    assert (tmp_path / "k" / "station.pub").exists() and "key id" in result.stdout
    again = obslink("agent", "keygen", "--private", private)
    assert again.returncode == 2 and "--force" in again.stderr
    db = tmp_path / "catalog.db"
    obslink("collector", "station", "add", "0-20000-0-54511", "--public-key",
            tmp_path / "k" / "station.pub", "--db", db, "--lat", "39.8", "--lon", "116.5",
            "--interval", "60", check=True)
    stats = json.loads(obslink("catalog", "stats", "--db", db, "--json", check=True).stdout)
    assert stats == {"stations": 1, "batches": 0, "observations": 0, "refused": 0, "gaps": 0,
                     "readings_lost_in_gaps": 0}
    wrong_key = obslink("collector", "station", "add", "S2", "--public-key", private,
                        "--db", db)
    assert wrong_key.returncode == 2 and "not a PEM public key" in wrong_key.stderr
    reused = obslink("collector", "station", "add", "S2", "--public-key",
                     tmp_path / "k" / "station.pub", "--db", db)
    assert reused.returncode == 2 and "already registered to station 0-20000-0-54511" \
        in reused.stderr


def test_catalog_stats_on_a_missing_catalog(tmp_path):
    result = obslink("catalog", "stats", "--db", tmp_path / "none.db")
    assert result.returncode == 2 and "no catalog there" in result.stderr
    assert not (tmp_path / "none.db").exists()


def test_agent_status_before_first_run(tmp_path):
    obslink("agent", "keygen", "--private", tmp_path / "station.key", check=True)
    config = tmp_path / "agent.toml"
    config.write_text('[station]\nid = "S1"\nprivate_key = "station.key"\n'
                      '[sources.l]\ntype = "directory"\nformat = "toa5"\npath = "d"\n')
    result = obslink("agent", "status", config)
    assert result.returncode == 2 and "obslink agent run" in result.stderr


def test_demo_without_mosquitto_says_how_to_install_it(tmp_path):
    env = dict(os.environ, OBSLINK_MOSQUITTO=str(tmp_path / "no-such-mosquitto"))
    result = subprocess.run([sys.executable, "-m", "obslink", "demo", "--duration", "1"],
                            capture_output=True, text=True, env=env)
    assert result.returncode == 2
    assert "apt-get install mosquitto" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize("path, name", [
    (GOLDEN / "hourly_lf" / "input.dat", "toa5"),
    (GOLDEN / "no_environment_line" / "input.dat", "toa5"),
    (GOLDEN.parent / "hj212" / "noise_between_packets" / "input.bin", "hj212"),
])
def test_parse_format_auto_recognises_the_file(path, name):
    result = obslink("parse", path, "--format", "auto", "--json", check=True)
    assert f"looks like {name}" in result.stderr
    assert result.stdout.strip()


def test_parse_format_auto_says_when_it_cannot_tell(tmp_path):
    unknown = tmp_path / "mystery.bin"
    unknown.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(100))
    result = obslink("parse", unknown, "--format", "auto")
    assert result.returncode == 2
    assert "cannot tell the format" in result.stderr and "--format" in result.stderr
