"""A private Mosquitto started from deploy/mosquitto.conf, on a port and data folder of its own.

The no-loss tests and the benchmark use it, so they exercise the broker settings parkwatch
ships, not whatever the machine's broker happens to be configured with.
"""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

from parkwatch.brokerconf import DEPLOY_CONF, render_config
from parkwatch.embedded.process import pick_port

# How long a freshly started broker may take to listen.
START_TIMEOUT = 10.0


def available() -> bool:
    """True when a mosquitto binary and deploy/mosquitto.conf (a source checkout) are both here."""
    return DEPLOY_CONF.exists() and shutil.which("mosquitto") is not None


def free_port() -> int:
    """A TCP port nothing listens on right now."""
    return pick_port()


class PrivateBroker:
    """A Mosquitto process of our own; stop() and start() keep its persistence folder."""

    def __init__(
        self,
        folder: Path,
        port: int | None = None,
        overrides: dict[str, str] | None = None,
        *,
        source: Path = DEPLOY_CONF,
        tls_port: int | None = None,
    ) -> None:
        self.folder = folder
        self.folder.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.tls_port = tls_port
        self.conf = render_config(folder, self.port, overrides, source=source, tls_port=tls_port)
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """The MQTT URL of this broker."""
        return f"mqtt://127.0.0.1:{self.port}"

    def start(self) -> None:
        """Start and wait until it accepts connections."""
        if not available():
            raise RuntimeError(
                "this runs Mosquitto itself, from deploy/mosquitto.conf, to test the settings parkwatch relies on: "
                "install the mosquitto binary (e.g. `apt install mosquitto`)"
            )
        self.proc = subprocess.Popen(  # noqa: S603 - our own config file, a fixed binary
            ["mosquitto", "-c", str(self.conf)],  # noqa: S607 - found on PATH like any service binary
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                err = self.proc.stderr.read().decode() if self.proc.stderr else ""
                raise RuntimeError(f"private mosquitto exited: {err}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("private mosquitto did not start listening")

    def reload(self) -> None:
        """SIGHUP: Mosquitto re-reads its password and ACL files, keeping its connections."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGHUP)

    def save(self) -> None:
        """SIGUSR1: Mosquitto writes its persistence file now, as its autosave would (waits for it)."""
        if self.proc is None or self.proc.poll() is not None:
            return
        db = self.folder / "mosquitto.db"
        before = db.stat().st_mtime_ns if db.exists() else 0
        self.proc.send_signal(signal.SIGUSR1)
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if db.exists() and db.stat().st_mtime_ns != before:
                return
            time.sleep(0.02)
        raise RuntimeError("private mosquitto did not write its persistence file")

    def kill(self) -> None:
        """SIGKILL: a crash; Mosquitto keeps only what its last autosave wrote."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        self.proc = None

    def stop(self) -> None:
        """Stop gracefully (it saves its persistence file)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
        self.proc = None
