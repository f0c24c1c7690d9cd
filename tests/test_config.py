"""Agent configuration: every problem reported with its key path; shipped configs pass."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from obslink.agent.config import load_config
from obslink.errors import ConfigError
from obslink.keys import write_keypair
from obslink.plugins.qc_limits import DEFAULT_LIMITS
from obslink.plugins.registry import load_registry

FIRMWARE_CONFIGS = sorted((Path(__file__).parent.parent / "firmware_configs").glob("*.toml"))
REGISTRY = load_registry()

GOOD = """
[station]
id = "0-20000-0-54511"
private_key = "station.key"
utc_offset = "+08:00"
[sources.logger]
type = "directory"
format = "toa5"
path = "data"
[sources.logger.elements]
AirTC_Avg = "air_temperature"
"""


def write(tmp_path, text):
    path = tmp_path / "agent.toml"
    path.write_text(text)
    return path


def problems(tmp_path, text):
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, text), REGISTRY)
    return info.value.problems


def test_a_good_config_loads_with_defaults(tmp_path):
    config = load_config(write(tmp_path, GOOD), REGISTRY)
    assert config.station == "0-20000-0-54511" and config.network == "default"
    assert config.private_key == tmp_path / "station.key"
    assert config.outbox_path == tmp_path / "outbox.db"
    assert config.synchronous == "FULL"
    assert (config.broker_host, config.broker_port) == ("127.0.0.1", 1883)
    source = config.sources[0]
    assert source.settings["path"] == str(tmp_path / "data")
    assert source.adapter_context.utc_offset_minutes == 480
    assert source.adapter_context.element_map == {"AirTC_Avg": ("air_temperature", None)}


def test_every_problem_is_reported_with_its_key_path(tmp_path):
    found = problems(tmp_path, """
[station]
id = "bad/id"
utc_offset = "+25:00"
netwrk = "x"
[outbox]
synchronous = "OFF"
[uplink]
broker = "http://example"
max_in_flight = 0
[sources.logger]
type = "ftp"
format = "toa6"
[sources.files]
type = "directory"
format = "toa5"
poll_interval = -1
[sources.files.elements]
AirTC = "air_temprature"
[sources.files.options]
x = 1
""")
    keys = [p.split(":")[0] for p in found]
    assert keys == ["station.netwrk", "station.id", "station.private_key",
                    "station.utc_offset", "outbox.synchronous", "uplink.broker",
                    "uplink.max_in_flight", "sources.logger.type", "sources.logger.format",
                    "sources.files.path", "sources.files.poll_interval",
                    "sources.files.options", "sources.files.elements.AirTC"]
    assert "did you mean 'network'" in found[0]
    assert "did you mean 'air_temperature'" in found[-1]


def test_missing_file_and_broken_toml_say_what_to_do(tmp_path):
    with pytest.raises(ConfigError, match="firmware_configs"):
        load_config(tmp_path / "nope.toml", REGISTRY)
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(write(tmp_path, "[station\n"), REGISTRY)


@pytest.mark.parametrize("path", FIRMWARE_CONFIGS, ids=lambda p: p.name)
def test_shipped_hardware_configs_pass_agent_check(path, tmp_path):
    """A technician's first step: `obslink agent check` on the shipped file (with a key),
    on a gateway whose /var/lib/obslink (here under tmp_path) holds what the file names."""
    state = tmp_path / "var" / "lib" / "obslink"
    state.mkdir(parents=True)
    config = tmp_path / path.name
    config.write_text(path.read_text().replace("/var/lib/obslink", str(state)))
    write_keypair(tmp_path / "station.key", tmp_path / "station.pub")
    check = [sys.executable, "-m", "obslink", "agent", "check", str(config)]
    result = subprocess.run(check, capture_output=True, text=True)
    directories = [line.split(": ", 1)[1].split()[0] for line in result.stderr.splitlines()
                   if line.strip().startswith(("sources.", "products."))]
    assert result.returncode == (2 if directories else 0), result.stderr
    for directory in directories:  # the logger's directories, as the installer makes them
        Path(directory).mkdir(parents=True)
    result = subprocess.run(check, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "OK" in result.stdout and "QC: " in result.stdout


def test_agent_check_exits_non_zero_listing_problems(tmp_path):
    config = write(tmp_path, GOOD.replace('"air_temperature"', '"air_temp"'))
    result = subprocess.run([sys.executable, "-m", "obslink", "agent", "check", str(config)],
                            capture_output=True, text=True)
    assert result.returncode == 2
    assert "sources.logger.elements.AirTC_Avg" in result.stderr
    assert "station.private_key" not in result.stderr  # only once the config itself is valid
    write_keypair(tmp_path / "station.key", tmp_path / "station.pub")
    (tmp_path / "agent.toml").write_text(GOOD)
    (tmp_path / "data").mkdir()
    ok = subprocess.run([sys.executable, "-m", "obslink", "agent", "check", str(config)],
                        capture_output=True, text=True)
    assert ok.returncode == 0 and "1 source: " in ok.stdout


def test_qc_problems_are_reported_with_key_paths(tmp_path):
    found = problems(tmp_path, GOOD + """
[qc]
checks = ["range", "stepp"]
[qc.limits.air_temperature]
suspect_min = 55.0
[qc.limits.pm25]
max = 100
""")
    assert "qc.checks: 'stepp' is not an installed QC check" in found[0]
    assert any(p.startswith("qc.limits.air_temperature: suspect_min 55 is above "
                            "suspect_max 50") for p in found)
    assert any(p.startswith("qc.limits.pm25: 'pm25' is not in the element vocabulary; "
                            "did you mean 'pm2_5'?") for p in found)


# radar gateways ship products, which are not readings and get no QC
OBSERVATION_CONFIGS = [path for path in FIRMWARE_CONFIGS if "\n[sources." in path.read_text()]


@pytest.mark.parametrize("path", OBSERVATION_CONFIGS, ids=lambda p: p.name)
def test_shipped_qc_examples_are_valid_once_uncommented(path, tmp_path):
    import re

    text = path.read_text()
    start, end = text.index("[qc]"), text.index("\n[sources.")
    section = re.sub(r"(?m)^# (?=\[qc|[a-z_]+ = )", "", text[start:end])
    config = write(tmp_path, text[:start] + section + text[end:])
    loaded = load_config(config, REGISTRY)
    assert loaded.qc.checks == ("range", "step", "persistence", "consistency",
                                "source_flags", "time")
    assert any(limits != DEFAULT_LIMITS.get(element)
               for element, limits in loaded.qc.limits.items())


def test_uplink_windows_and_waits_must_agree(tmp_path):
    found = problems(tmp_path, GOOD + """
[uplink]
max_in_flight = 4
backlog_in_flight = 8
ack_timeout = 60
ack_timeout_max = 30
""")
    assert [p.split(":")[0] for p in found] == ["uplink.ack_timeout_max",
                                                "uplink.backlog_in_flight"]
    assert "above max_in_flight 4" in found[1]


def test_time_check_tolerances_are_read_and_checked(tmp_path):
    config = write(tmp_path, GOOD + "[qc.time]\nmax_future_s = 120\nmax_past_s = 86400\n")
    assert load_config(config, REGISTRY).qc.time.max_future_s == 120
    found = problems(tmp_path, GOOD + "[qc.time]\nmax_future_s = -1\nmax_futur_s = 1\n")
    assert "qc.time.max_future_s: must be a whole number of seconds >= 0, not -1" in found
    assert any(p.startswith("qc.time.max_futur_s: unknown key") for p in found)
