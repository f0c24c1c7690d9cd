"""Starting a private Mosquitto on a free loopback port (the demo, the tests, benchmarks)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

from obslink.errors import ToolMissingError, TransportError

INSTALL_HINT = ("install it with `sudo apt-get install mosquitto` (Debian/Ubuntu) or run "
                "scripts/bootstrap.sh, which does it for you")

# The collector's persistent session must survive a restart with thousands of batches
# queued: Mosquitto's default of 1000 queued messages per client would drop the rest.
BROKER_SETTINGS = """\
listener {port} 127.0.0.1
allow_anonymous true
persistence {persistence}
persistence_location {directory}/
max_queued_messages 1000000
max_inflight_messages 100
# small messages must not wait for the peer's delayed ACK (Nagle): 40 ms a round trip
set_tcp_nodelay true
log_dest file {directory}/mosquitto.log
log_type error
log_type warning
log_type notice
"""
# Started as root, Mosquitto switches to the user `mosquitto`, which cannot write this
# process's directory: no log and no persistence file. A broker of ours runs as its starter.
RUN_AS_STARTER = "user {user}\n"


def find_mosquitto() -> str:
    """The mosquitto binary: $OBSLINK_MOSQUITTO if set, else from PATH or /usr/sbin."""
    chosen = os.environ.get("OBSLINK_MOSQUITTO")
    if chosen:
        if not Path(chosen).is_file():
            raise ToolMissingError(f"OBSLINK_MOSQUITTO={chosen} does not exist; unset it to "
                                   f"use the installed mosquitto, or {INSTALL_HINT}")
        return chosen
    for candidate in (shutil.which("mosquitto"), "/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto"):
        if candidate and Path(candidate).exists():
            return candidate
    raise ToolMissingError(f"the MQTT broker `mosquitto` is not installed; {INSTALL_HINT}")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Mosquitto:
    """A Mosquitto process with its own config and data directory; stop() ends it."""

    def __init__(self, directory: Path, port: int | None = None, persistence: bool = True,
                 tls: tuple[Path, Path] | None = None):
        self.directory = Path(directory)
        self.port = port or free_port()
        self.persistence = persistence
        self.tls = tls  # (certificate, key): the listener speaks only TLS
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"{'mqtts' if self.tls else 'mqtt'}://127.0.0.1:{self.port}"

    def start(self, timeout: float = 10.0) -> "Mosquitto":
        binary = find_mosquitto()
        self.directory.mkdir(parents=True, exist_ok=True)
        config = self.directory / "mosquitto.conf"
        settings = BROKER_SETTINGS.format(port=self.port, directory=self.directory,
                                          persistence="true" if self.persistence else "false")
        if self.tls:  # listener options follow the listener line
            certificate, key = self.tls
            settings = settings.replace(
                f"listener {self.port} 127.0.0.1\n",
                f"listener {self.port} 127.0.0.1\ncertfile {certificate}\nkeyfile {key}\n")
        if os.geteuid() == 0:
            settings += RUN_AS_STARTER.format(user="root")
        config.write_text(settings)
        self.process = subprocess.Popen([binary, "-c", str(config)],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                error = self.process.stderr.read().decode(errors="replace").strip()
                raise TransportError(f"mosquitto exited at start (code "
                                     f"{self.process.returncode}): {error or 'no output'}; "
                                     f"see {self.directory / 'mosquitto.log'}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise TransportError(f"mosquitto did not listen on 127.0.0.1:{self.port} within "
                             f"{timeout:.0f} s")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process and self.process.stderr:
            self.process.stderr.close()

    def __enter__(self) -> "Mosquitto":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
