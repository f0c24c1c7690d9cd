"""Settings declared once (obslink.settings): how a declaration reads and checks a value,
and that every declared agent setting reaches the configuration the agent runs with."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from obslink.agent.config import load_config
from obslink.agent.settings import OUTBOX, STATION, UPLINK
from obslink.keys import public_bytes
from obslink.plugins.directory_source import DirectorySource
from obslink.plugins.registry import load_registry
from obslink.settings import REQUIRED, Setting, default_of, markdown_table, read_settings


def read(setting: Setting, table: dict, base: Path | None = None):
    problems = []
    value = setting.read(table, "s.", lambda key, message: problems.append((key, message)),
                         base)
    return value, problems


@pytest.mark.parametrize("setting, given, expected", [
    (Setting("n", 5.0, "", kind="number"), {}, 5.0),
    (Setting("n", 5.0, "", kind="number"), {"n": 2}, 2.0),
    (Setting("n", 3, "", kind="int"), {"n": 7}, 7),
    (Setting("n", 3, "", kind="int", zero_means="off"), {"n": 0}, 0),
    (Setting("b", False, "", kind="bool"), {"b": True}, True),
    (Setting("t", "x", ""), {"t": "y"}, "y"),
    (Setting("t", None, ""), {}, None),
    (Setting("u", "a", "", parse=str.upper), {"u": "b"}, "B"),
])
def test_a_good_value_is_read_as_declared(setting, given, expected):
    value, problems = read(setting, given)
    assert value == expected and type(value) is type(expected) and problems == []


@pytest.mark.parametrize("setting, given, problem", [
    (Setting("n", 5.0, "", kind="number"), {"n": 0}, "must be a number greater than 0, not 0"),
    (Setting("n", 5.0, "", kind="number"), {"n": True}, "must be a number greater than 0"),
    (Setting("n", 3, "", kind="int", minimum=4), {"n": 4},
     "must be a whole number greater than 4, not 4"),
    (Setting("n", 3, "", kind="int"), {"n": 1.5}, "must be a whole number greater than 0"),
    (Setting("n", 3, "", kind="int", zero_means="off"), {"n": -1}, "(or 0: off)"),
    (Setting("b", False, "", kind="bool"), {"b": "yes"}, "must be true or false, not 'yes'"),
    (Setting("t", "x", ""), {"t": 3}, "must be text in quotes, not 3"),
    (Setting("p", None, "", kind="path"), {"p": ""}, "must be a file path"),
    (Setting("r", REQUIRED, "", required="the thing"), {}, "required: the thing"),
    (Setting("u", "a", "", parse=lambda v: int(v)), {"u": "b"}, "invalid literal"),
])
def test_a_bad_value_is_reported_with_its_key_and_the_default_carries_on(setting, given,
                                                                        problem):
    value, problems = read(setting, given)
    assert [key for key, _ in problems] == ["s." + setting.key]
    assert problem in problems[0][1]
    assert value == (None if setting.default is REQUIRED else setting.default)


def test_paths_are_relative_to_the_config_and_tables_show_the_defaults(tmp_path):
    value, problems = read(Setting("p", "out.db", "", kind="path"), {}, tmp_path)
    assert value == str(tmp_path / "out.db") and problems == []
    assert markdown_table((Setting("a", REQUIRED, "must be given"),
                           Setting("b", 2.0, "two", kind="number"),
                           Setting("c", True, "yes", kind="bool"),
                           Setting("d", None, "unset"),
                           Setting("e", 1, "shown", shown_default="one"))) == (
        "| key | default | meaning |\n|---|---|---|\n"
        "| `a` | required | must be given |\n| `b` | `2` | two |\n| `c` | `true` | yes |\n"
        "| `d` | none | unset |\n| `e` | one | shown |\n")
    assert default_of(DirectorySource.declared_settings, "poll_interval") == 5.0
    found = read_settings(DirectorySource.declared_settings, {"path": "in"}, "", print,
                          tmp_path)
    assert found["path"] == str(tmp_path / "in") and found["pattern"] == "*"


def test_every_declared_agent_setting_reaches_the_running_config(tmp_path):
    """Each [station], [outbox] and [uplink] key set to something other than its default
    shows in the config the agent runs with: a setting declared but never wired fails."""
    (tmp_path / "ca.pem").write_text("x")
    (tmp_path / "broker.password").write_text("secret\n")
    collector = public_bytes(X25519PrivateKey.generate().public_key()).hex()
    given = {
        "station": {"id": "S-1", "network": "net2", "private_key": "k/station.key",
                    "utc_offset": "+02:00", "metrics_listen": "127.0.0.1:9108"},
        "outbox": {"path": "o/outbox.db", "synchronous": "normal", "max_batch_readings": 7,
                   "max_bytes": 1000, "max_age": 3600, "evict": "thin",
                   "min_free_disk": 0, "product_max_bytes": 5000, "product_dir": "p"},
        "uplink": {"broker": "mqtts://broker.example:8884", "username": "S-1",
                   "password_file": "broker.password", "ca_file": "ca.pem",
                   "client_id": "gw-7", "keepalive": 5, "ack_timeout": 3.0,
                   "ack_timeout_max": 9.0, "max_in_flight": 9, "realtime_window": 60.0,
                   "backlog_in_flight": 3, "backlog_bundle": 4, "protocol": 1,
                   "encrypt_to": collector,
                   "backlog_readings_per_s": 10.0, "backlog_bytes_per_s": 20.0,
                   "reconnect_min": 2.0, "reconnect_max": 8.0,
                   "product_bytes_per_s": 1000.0, "product_in_flight": 2,
                   "product_chunk_bytes": 4096},
    }
    declared = {"station": STATION, "outbox": OUTBOX, "uplink": UPLINK}
    assert {name: set(table) for name, table in given.items()} == {
        name: {s.key for s in settings} for name, settings in declared.items()}
    for name, settings in declared.items():
        for setting in settings:
            assert given[name][setting.key] != setting.default, (name, setting.key)
    lines = []
    for name, table in given.items():
        lines.append(f"[{name}]")
        lines += [f"{key} = {value!r}".replace("'", '"') for key, value in table.items()]
    lines += ["[sources.logger]", 'type = "directory"', 'format = "toa5"', 'path = "data"']
    path = tmp_path / "agent.toml"
    path.write_text("\n".join(lines) + "\n")
    config = load_config(path, load_registry())
    seen = {
        "station": {"id": config.station, "network": config.network,
                    "private_key": config.private_key,
                    "utc_offset": config.sources[0].adapter_context.utc_offset_minutes,
                    "metrics_listen": config.metrics_listen},
        "outbox": {"path": config.outbox_path, "synchronous": config.synchronous,
                   "max_batch_readings": config.max_batch_readings,
                   "max_bytes": config.limits.max_bytes, "max_age": config.limits.max_age_s,
                   "evict": config.limits.policy, "min_free_disk": config.limits.min_free_bytes,
                   "product_max_bytes": config.product_max_bytes,
                   "product_dir": config.product_directory},
        "uplink": {"broker": (config.broker_host, config.broker_port, config.tls),
                   "username": config.username, "password_file": config.password_file,
                   "ca_file": config.ca_file, "client_id": config.client_id,
                   **{key: getattr(config, key) for key in given["uplink"]
                      if key not in ("broker", "username", "password_file", "ca_file",
                                     "client_id")}},
    }
    assert seen == {
        "station": {"id": "S-1", "network": "net2",
                    "private_key": tmp_path / "k" / "station.key", "utc_offset": 120,
                    "metrics_listen": "127.0.0.1:9108"},
        "outbox": {"path": tmp_path / "o" / "outbox.db", "synchronous": "NORMAL",
                   "max_batch_readings": 7, "max_bytes": 1000, "max_age": 3600,
                   "evict": "thin", "min_free_disk": None, "product_max_bytes": 5000,
                   "product_dir": tmp_path / "p"},
        "uplink": {**given["uplink"], "broker": ("broker.example", 8884, True),
                   "password_file": tmp_path / "broker.password",
                   "ca_file": tmp_path / "ca.pem"},
    }
