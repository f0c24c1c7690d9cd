"""The agent and the collector as systemd services: units systemd accepts, confined to
/var/lib/obslink, with the paths the firmware configs use; logs as JSON lines."""

from __future__ import annotations

import json
import re
import shutil
import signal
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from obslink.keys import write_keypair
from tests.conftest import wait_until

ROOT = Path(__file__).parent.parent
UNITS = sorted((ROOT / "scripts" / "systemd").glob("*.service"))
MOSQUITTO_DROP_IN = ROOT / "scripts" / "systemd" / "mosquitto.service.d" / "obslink.conf"
SYSTEM_UNITS = next((p for p in (Path("/usr/lib/systemd/system"), Path("/lib/systemd/system"))
                     if (p / "sysinit.target").exists()), None)


def verify(unit: Path, tmp_path: Path, drop_in: Path | None = None
           ) -> subprocess.CompletedProcess:
    """`systemd-analyze verify` in a root holding systemd's own units (and the packages'
    ones, such as mosquitto.service) and a stand-in for every program the unit starts, so
    the unit (or a drop-in for a packaged unit) is checked as written."""
    root = tmp_path / "root"
    system = root / "usr" / "lib" / "systemd" / "system"
    if not system.exists():  # about 1 MB
        shutil.copytree(SYSTEM_UNITS, system, symlinks=True)
    units = root / "etc" / "systemd" / "system"
    units.mkdir(parents=True, exist_ok=True)
    if drop_in is None:
        shutil.copy(unit, units / unit.name)
    else:
        (units / f"{unit.name}.d").mkdir(exist_ok=True)
        shutil.copy(drop_in, units / f"{unit.name}.d" / drop_in.name)
    for text in (Path(path).read_text() for path in (unit, drop_in) if path):
        for command in re.findall(r"^Exec\w+=[-@!+:]*(/\S+)", text, re.MULTILINE):
            stand_in = root / command.lstrip("/")
            stand_in.parent.mkdir(parents=True, exist_ok=True)
            stand_in.write_text("#!/bin/sh\n")
            stand_in.chmod(0o755)
    return subprocess.run(["systemd-analyze", "verify", f"--root={root}", unit.name],
                          capture_output=True, text=True)


@pytest.mark.skipif(shutil.which("systemd-analyze") is None or SYSTEM_UNITS is None,
                    reason="systemd-analyze is not installed here")
@pytest.mark.parametrize("unit", UNITS, ids=lambda p: p.name)
def test_systemd_accepts_the_units(unit, tmp_path):
    done = verify(unit, tmp_path)
    assert done.returncode == 0 and done.stderr == "", done.stderr
    broken = tmp_path / unit.name
    broken.write_text(unit.read_text().replace("ProtectSystem=strict", "ProtectSystem=strct"))
    assert "protect system value" in verify(broken, tmp_path / "broken").stderr  # it tells


@pytest.mark.skipif(shutil.which("systemd-analyze") is None or SYSTEM_UNITS is None or
                    not (SYSTEM_UNITS / "mosquitto.service").exists(),
                    reason="systemd-analyze or Debian's mosquitto.service is not here")
def test_the_drop_in_runs_debians_mosquitto_on_the_closed_brokers_config(tmp_path):
    mosquitto = SYSTEM_UNITS / "mosquitto.service"
    done = verify(mosquitto, tmp_path, MOSQUITTO_DROP_IN)
    assert done.returncode == 0 and done.stderr == "", done.stderr
    assert ("ExecStart=/usr/sbin/mosquitto -c /etc/obslink/broker/mosquitto.conf"
            in MOSQUITTO_DROP_IN.read_text().splitlines())
    # without the line that clears the package's ExecStart, systemd refuses the unit
    second = tmp_path / "second" / MOSQUITTO_DROP_IN.name
    second.parent.mkdir()
    second.write_text(MOSQUITTO_DROP_IN.read_text().replace("ExecStart=\n", ""))
    assert "more than one ExecStart=" in verify(mosquitto, tmp_path / "second", second).stderr


@pytest.mark.parametrize("unit", UNITS, ids=lambda p: p.name)
def test_the_units_run_confined_as_their_own_user(unit):
    lines = unit.read_text().splitlines()
    assert {"User=obslink", "Group=obslink", "ProtectSystem=strict", "Restart=always",
            "ReadWritePaths=/var/lib/obslink", "StateDirectory=obslink",
            "NoNewPrivileges=yes"} <= set(lines)
    start = next(line for line in lines if line.startswith("ExecStart="))
    assert start.startswith("ExecStart=/opt/obslink/bin/obslink --log-format json ")
    assert "/var/lib/obslink" in start or "/etc/obslink/agent.toml" in start


def test_the_firmware_configs_fit_the_agents_unit():
    """/etc/obslink holds the config and the key (relative paths resolve there); the outbox
    and the loggers' and radars' directories are in /var/lib/obslink, the unit's one
    writable place."""
    for path in sorted((ROOT / "firmware_configs").glob("*.toml")):
        config = tomllib.loads(path.read_text())
        assert config["outbox"]["path"].startswith("/var/lib/obslink/"), path.name
        assert not Path(config["station"]["private_key"]).is_absolute(), path.name
        tables = {**config.get("sources", {}), **config.get("products", {})}
        assert tables, path.name
        for name, source in tables.items():
            if "path" in source:
                assert source["path"].startswith("/var/lib/obslink/"), (path.name, name)


def test_log_format_json_writes_one_object_a_line(tmp_path):
    write_keypair(tmp_path / "station.key", tmp_path / "station.pub")
    (tmp_path / "logger").mkdir()
    config = tmp_path / "agent.toml"
    config.write_text('[station]\nid = "JSON-1"\nprivate_key = "station.key"\n'
                      '[uplink]\nbroker = "mqtt://127.0.0.1:9"\n'  # nobody there
                      '[sources.logger]\ntype = "directory"\nformat = "toa5"\npath = "logger"\n')
    agent = subprocess.Popen([sys.executable, "-m", "obslink", "--log-format", "json", "agent",
                              "run", str(config)], stderr=subprocess.PIPE, text=True)
    lines = []
    try:
        wait_until(lambda: lines.append(agent.stderr.readline()) or any(
            "cannot connect to the broker" in line for line in lines), timeout=30,
            message="the agent's log of the unreachable broker")
    finally:
        agent.send_signal(signal.SIGTERM)
        lines += agent.communicate(timeout=15)[1].splitlines()
    entries = [json.loads(line) for line in lines if line.strip()]
    assert entries and all(set(entry) >= {"time", "level", "logger", "message"}
                           for entry in entries)
    assert entries[0]["time"].endswith("Z") and agent.returncode == 0
    assert any(e["level"] == "warning" and "nothing listens on 127.0.0.1:9" in e["message"]
               for e in entries)
