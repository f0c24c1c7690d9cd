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
                     "--json")
    assert result.returncode == 3, result.stderr  # read, with records quarantined
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert lines[0] == {"observed_at": "2025-03-01T00:00:00Z", "element": "A", "value": 1.0,
                        "unit": "degC", "source_unit": None, "source_field": "A",
                        "source_flag": None, "qc": 9,
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
    assert result.returncode == 1 and "quarantined" in result.stderr
    assert "nothing was read" in result.stderr and "Traceback" not in result.stderr


def test_parse_says_why_a_file_gave_nothing_and_exits_1(tmp_path):
    names_only = tmp_path / "CR1000X_Min1.csv"
    names_only.write_text('"TIMESTAMP","RECORD","AirTC_Avg","RH"\n'
                          '"2025-03-01 00:00:00",1,3.4,80\n"2025-03-01 00:01:00",2,3.5,81\n')
    toa5 = obslink("parse", names_only, "--format", "toa5")
    assert toa5.returncode == 1
    assert ("nothing was read: 2 records quarantined because a data record where TOA5 has "
            "its units line: the file has 1 header line (field names) before the data; TOA5 "
            "has 3 or 4") in toa5.stderr
    assert "try --format delimited" in toa5.stderr
    delimited = obslink("parse", names_only, "--format", "delimited", "--json")
    assert delimited.returncode == 0, delimited.stderr
    assert len(delimited.stdout.splitlines()) == 6  # RECORD, AirTC_Avg, RH of two rows
    empty = tmp_path / "empty.dat"
    empty.write_bytes(b"")
    assert obslink("parse", empty, "--format", "toa5").returncode == 0  # nothing to read
    header = obslink("parse", GOLDEN / "header_only" / "input.dat", "--format", "toa5")
    assert header.returncode == 1 and "holds no records" in header.stderr


def test_parse_with_a_config_names_the_mapped_fields_a_file_lacks(tmp_path):
    (tmp_path / "logger").mkdir()
    data = tmp_path / "logger" / "Min1.dat"
    data.write_text(LOGGER_TOA5)
    config = tmp_path / "agent.toml"
    config.write_text(f"""\
[station]
id = "ST1"
private_key = "station.key"
[sources.logger]
type = "directory"
format = "toa5"
path = "{tmp_path / 'logger'}"
[sources.logger.elements]
AirT_C_Avg = "air_temperature"
Batt_Volt = "battery_voltage"
""")
    result = obslink("parse", data, "--config", config)
    assert result.returncode == 0, result.stderr
    assert "coverage 0.0 %" in result.stderr
    assert ("none of the fields mapped in [sources.logger.elements] occur in this file: "
            "AirT_C_Avg, Batt_Volt (the file has: AirTC, BattV)") in result.stderr


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


@pytest.mark.parametrize("path, name, code", [
    (GOLDEN / "hourly_lf" / "input.dat", "toa5", 0),
    (GOLDEN / "no_environment_line" / "input.dat", "toa5", 0),
    (GOLDEN.parent / "hj212" / "noise_between_packets" / "input.bin", "hj212", 3),
])
def test_parse_format_auto_recognises_the_file(path, name, code):
    result = obslink("parse", path, "--format", "auto", "--json")
    assert result.returncode == code, result.stderr
    assert f"looks like {name}" in result.stderr
    assert result.stdout.strip()


def test_parse_format_auto_says_when_it_cannot_tell(tmp_path):
    unknown = tmp_path / "mystery.bin"
    unknown.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(100))
    result = obslink("parse", unknown, "--format", "auto")
    assert result.returncode == 2
    assert "cannot tell the format" in result.stderr and "--format" in result.stderr
    assert "configuration" not in result.stderr  # not a configuration problem


def test_agent_check_reports_what_the_config_points_at_with_key_paths(tmp_path):
    config = tmp_path / "agent.toml"
    config.write_text('[station]\nid = "S1"\nprivate_key = "keys/station.key"\n'
                      '[outbox]\npath = "/var/lib/no-such-dir/outbox.db"\n'
                      '[sources.logger]\ntype = "directory"\nformat = "toa5"\n'
                      'path = "no-such-logger-dir"\n')
    result = obslink("agent", "check", config)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert f"error: {config}: configuration has 3 problems:" in result.stderr
    assert f"station.private_key: cannot read private key {tmp_path}/keys/station.key" \
        in result.stderr
    assert "outbox.path: the directory /var/lib/no-such-dir does not exist" in result.stderr
    assert "sources.logger.path:" in result.stderr and "wait_for_path = true" in result.stderr
    run = obslink("agent", "run", config)  # refuses to start, makes no directory
    assert run.returncode == 2 and not (tmp_path / "no-such-logger-dir").exists()
    assert not Path("/var/lib/no-such-dir").exists()

    obslink("agent", "keygen", "--private", tmp_path / "keys" / "station.key", check=True)
    config.write_text(config.read_text().replace("/var/lib/no-such-dir/outbox.db", "o.db")
                      + "wait_for_path = true\n")
    assert obslink("agent", "check", config, check=True).stdout.startswith(f"{config}: OK")


def test_a_source_without_format_or_type_says_it_is_required(tmp_path):
    config = tmp_path / "agent.toml"
    config.write_text('[station]\nid = "S1"\nprivate_key = "station.key"\n'
                      '[sources.logger]\npath = "."\n')
    result = obslink("agent", "check", config)
    assert result.returncode == 2 and "None" not in result.stderr
    assert "sources.logger.format: required: the format (how its bytes are read), one of:" \
        in result.stderr
    assert "sources.logger.type: required: the source type" in result.stderr


def test_catalog_stats_lines_keep_names_and_numbers_apart(tmp_path):
    db = tmp_path / "catalog.db"
    from obslink.server.catalog import open_catalog
    open_catalog(db).close()
    lines = obslink("catalog", "stats", "--db", db, check=True).stdout.splitlines()
    assert "readings_lost_in_gaps  0" in lines and all("  " in line for line in lines)


def test_collector_http_on_an_agent_only_install_names_the_extra(tmp_path):
    blocked = tmp_path / "site" / "uvicorn"
    blocked.mkdir(parents=True)
    (blocked / "__init__.py").write_text(
        "raise ModuleNotFoundError(\"No module named 'uvicorn'\", name='uvicorn')\n")
    env = dict(os.environ, PYTHONPATH=str(tmp_path / "site"))
    result = subprocess.run([sys.executable, "-m", "obslink", "collector", "http", "--db",
                             str(tmp_path / "c.db"), "--broker-url", "mqtt://x"],
                            capture_output=True, text=True, env=env)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "pip install 'obslink[server]'" in result.stderr and "uvicorn" in result.stderr


def test_parse_flags_a_record_dated_years_ahead(tmp_path):
    from datetime import datetime, timedelta, timezone

    now = datetime.now(timezone.utc).replace(microsecond=0, tzinfo=None)
    rows = "".join(f'"{moment:%Y-%m-%d %H:%M:%S}",{n},20.5\n' for n, moment in enumerate(
        (now - timedelta(minutes=5), now + timedelta(days=3 * 365))))
    path = tmp_path / "clock.dat"
    path.write_text('"TOA5","S","CR1000X","1","OS","P","1","T"\n"TIMESTAMP","RECORD","AirTC"\n'
                    '"TS","RN","Deg C"\n"","","Smp"\n' + rows)
    result = obslink("parse", path, "--format", "toa5", "--json")
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()
             if json.loads(line)["element"] == "AirTC"]
    assert [(line["qc"], line["qc_failed"]) for line in lines] == [(9, []), (2, ["time"])]
    assert lines[0]["unit"] == "degC"  # Campbell's "Deg C", in the vocabulary's spelling
    assert lines[0]["source_unit"] == "Deg C"  # kept through QC
    assert "1 reading dated ahead of this machine's clock" in result.stderr
    assert "is the file's UTC offset right (--tz" in result.stderr
