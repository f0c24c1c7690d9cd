"""Enrolment from the gateway: the station's key is bound to its station at the collector
with the operator's one-time token (``POST /v1/enrol``), and what the collector answered is
kept beside the key (the broker password in its own 0600 file)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import requests

from obslink.errors import TransportError
from obslink.keys import key_id, load_private_key, public_bytes, write_secret
from obslink.readings import format_utc, now_us


@dataclass
class Enrolment:
    answer: dict  # as the collector answered, the password replaced by its file's path
    key_id: str
    password_file: Path


def enrol(collector: str, token: str, private: Path, ca_file: Path | None,
          save: Path) -> Enrolment:
    """Enrol the key at ``private`` with ``token``; TransportError says what went wrong."""
    public = load_private_key(private).public_key()
    url = collector.rstrip("/") + "/v1/enrol"
    try:
        reply = requests.post(url, json={"token": token,
                                         "public_key": public_bytes(public).hex()}, timeout=30,
                              verify=str(ca_file) if ca_file else True)
    except requests.exceptions.SSLError:
        raise TransportError(f"cannot reach the collector at {url}: its certificate is not "
                             "trusted; pass --ca-file with the network's ca.pem") from None
    except requests.exceptions.Timeout:
        raise TransportError(f"cannot reach the collector at {url}: no answer within 30 s; "
                             "check the address and the network") from None
    except requests.RequestException as exc:
        raise TransportError(f"cannot reach the collector at {url}: nothing answers there "
                             f"({type(exc).__name__}); check the address and that `obslink "
                             "collector http` runs") from None
    if reply.status_code != 200:
        try:
            detail = reply.json().get("detail")
        except ValueError:
            detail = reply.text[:200]
        raise TransportError(f"the collector refused the enrolment (HTTP "
                             f"{reply.status_code}): {detail}")
    answer = reply.json()
    answer["enrolled_at"] = format_utc(now_us(), fixed=True)
    password_file = private.with_name("broker.password")
    write_secret(password_file, answer.pop("broker_password") + "\n")
    answer["broker_password_file"] = str(password_file)
    save.write_text(json.dumps(answer, indent=2) + "\n")
    return Enrolment(answer, key_id(public), password_file)


def agent_config_snippet(answer: dict, private: Path, password_file: Path,
                         ca_file: Path | None) -> str:
    """The [station] and [uplink] lines an enrolled gateway's agent.toml needs; paths are
    absolute, so the lines work wherever the config file lives."""
    lines = ["[station]", f'id = "{answer["station"]}"', f'network = "{answer["network"]}"',
             f'private_key = "{private.resolve()}"', "[uplink]",
             f'broker = "{answer["broker"]}"', f'username = "{answer["broker_username"]}"',
             f'password_file = "{password_file.resolve()}"']
    if answer["broker"].startswith("mqtts://"):
        lines += [f'ca_file = "{ca_file.resolve()}"'] if ca_file else [
            "# the system's CAs check the broker's certificate; if it is the network's own",
            '# (`obslink collector tls init`), copy its ca.pem here: ca_file = "ca.pem"']
    lines += ["# to seal every message to the collector (brokers you do not control):",
              f'# encrypt_to = "{answer.get("collector_encryption_key", "")}"']
    return "\n".join(f"  {line}" for line in lines)
