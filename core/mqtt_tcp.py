"""Connection settings for obslink's own MQTT connections: broker URLs, TLS, TCP, and what
to say when a connection fails."""

from __future__ import annotations

import socket
import ssl
from datetime import datetime, timezone
from urllib.parse import urlsplit

import paho.mqtt.client as mqtt

from obslink.errors import ConfigError


def send_without_delay(client: mqtt.Client) -> None:
    """Turn off Nagle's algorithm on the client's connection (call it once connected).

    A collector writes a PUBACK and then an ack; with Nagle on, the ack waits for the
    broker's delayed TCP ACK of the PUBACK, which costs 40 ms a round trip on Linux. MQTT
    packets are whole messages: nothing is gained by holding them back."""
    sock = client.socket()
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except (AttributeError, OSError):  # not a TCP socket (e.g. a websocket wrapper)
        pass


def parse_broker_url(url: str) -> tuple[str, int, bool]:
    """``mqtt://host[:1883]`` or ``mqtts://host[:8883]`` (TLS) -> (host, port, tls)."""
    parts = urlsplit(str(url))
    if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
        raise ValueError(f"{url!r} is not a broker URL like mqtt://host:1883 or "
                         "mqtts://host:8883 (TLS)")
    tls = parts.scheme == "mqtts"
    try:
        port = parts.port or (8883 if tls else 1883)
    except ValueError:
        raise ValueError(f"{url!r} has an invalid port") from None
    return parts.hostname, port, tls


def use_tls(client, ca_file: str | None) -> None:
    """Encrypt the connection and check the broker's certificate against ``ca_file`` (the
    network's CA, e.g. from `obslink collector tls init`) or, without one, the system's."""
    client.tls_set(ca_certs=ca_file)


def use_account(client, username: str | None, password_file) -> None:
    """Log in with a broker account; the password is read from its file (never a setting)."""
    if username is not None:
        client.username_pw_set(username, read_password(password_file))


def read_password(path) -> str:
    try:
        return open(path, encoding="utf-8").read().strip()
    except OSError as exc:
        raise ConfigError(f"cannot read the broker password file {path}: {exc}") from None


def explain_connect_failure(host: str, port: int, tls: bool, ca_file: str | None,
                            timeout: float = 3.0) -> str:
    """Why a connection to the broker fails, found by trying it the way paho does (TCP, then
    TLS with the same certificate checks): a sentence that says what to do."""
    where = f"{host}:{port}"
    try:
        raw = socket.create_connection((host, port), timeout=timeout)
    except socket.gaierror:
        return f"the broker's host name {host!r} does not resolve; check [uplink] broker"
    except ConnectionRefusedError:
        return f"nothing listens on {where}; is the broker running, and is the port right?"
    except TimeoutError:
        return f"no answer from {where} within {timeout:g} s (a firewall, or the link is down)"
    except OSError as exc:
        return f"cannot reach {where}: {exc.strerror or exc}"
    with raw:
        if not tls:
            return f"{where} accepts connections now; the broker closed the last one"
        context = ssl.create_default_context(cafile=ca_file)
        try:
            with context.wrap_socket(raw, server_hostname=host) as wrapped:
                wrapped.do_handshake()
        except ssl.SSLCertVerificationError as exc:
            return _certificate_problem(exc, host, ca_file)
        except ssl.SSLError as exc:
            if "WRONG_VERSION_NUMBER" in str(exc) or "wrong version number" in str(exc):
                return (f"{where} does not speak TLS: the broker URL says mqtts:// but the "
                        "listener there is plain MQTT (use mqtt://, or the TLS port)")
            return f"TLS with {where} failed: {exc.reason or exc}"
        except (ConnectionResetError, BrokenPipeError):
            return (f"{where} closed the connection at the TLS greeting: the listener there "
                    "is plain MQTT, it seems (use mqtt://, or the TLS port)")
        except (OSError, ValueError) as exc:
            return f"TLS with {where} failed: {exc}"
    return f"{where} accepts TLS connections now; the broker closed the last one"


def _certificate_problem(error: ssl.SSLCertVerificationError, host: str,
                         ca_file: str | None) -> str:
    trusted = f"the CA in {ca_file}" if ca_file else "the system's CAs"
    code = error.verify_code
    if code == 10:  # X509_V_ERR_CERT_HAS_EXPIRED
        return ("the broker's certificate has expired: renew it (`obslink collector tls "
                "init` makes a new one) and restart the broker")
    if code == 9:  # X509_V_ERR_CERT_NOT_YET_VALID
        return (f"the broker's certificate is not valid yet: this gateway's clock says "
                f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC; check the clock")
    if code == 62:  # X509_V_ERR_HOSTNAME_MISMATCH
        return (f"the broker's certificate is not valid for the host name {host!r}: use "
                "the name it was made for in [uplink] broker, or make it for this name "
                f"(`obslink collector tls init --host {host}`)")
    # self-signed, no path to a trusted CA, or one of the same name that did not sign it
    # (every `collector tls init` CA has the same name)
    if code in (7, 18, 19, 20, 21):
        return (f"the broker's certificate is not signed by a CA this gateway trusts "
                f"({trusted}): set [uplink] ca_file to the network's ca.pem (from "
                "`obslink collector tls init`)")
    return f"the broker's certificate was refused: {error.verify_message}"
