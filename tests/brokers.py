"""A private Mosquitto started from deploy/mosquitto.conf, on a port and data folder of its own."""

from __future__ import annotations

import getpass
import re
import socket
import subprocess
import time
from pathlib import Path

DEPLOY_CONF = Path(__file__).resolve().parent.parent / "deploy" / "mosquitto.conf"


def render_config(folder: Path, port: int, overrides: dict[str, str] | None = None) -> Path:
    """deploy/mosquitto.conf with only the listener, the persistence folder and `overrides` changed."""
    text = DEPLOY_CONF.read_text()
    text = re.sub(r"^listener .*$", f"listener {port} 127.0.0.1", text, flags=re.M)
    text = re.sub(r"^persistence_location .*$", f"persistence_location {folder}/", text, flags=re.M)
    for key, value in (overrides or {}).items():
        text, n = re.subn(rf"^{key} .*$", f"{key} {value}", text, flags=re.M)
        if n == 0:
            text += f"\n{key} {value}\n"
    # Run as whoever runs the tests (as root, Mosquitto would otherwise switch to its own user,
    # which cannot write the test's folder).
    text += f"\nuser {getpass.getuser()}\nlog_dest file {folder}/mosquitto.log\n"
    path = folder / "mosquitto.conf"
    path.write_text(text)
    return path


class PrivateBroker:
    """A Mosquitto process of the test's own; stop() and start() keep its persistence folder."""

    def __init__(self, folder: Path, port: int, overrides: dict[str, str] | None = None) -> None:
        self.folder = folder
        self.port = port
        self.conf = render_config(folder, port, overrides)
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """The MQTT URL of this broker."""
        return f"mqtt://127.0.0.1:{self.port}"

    def start(self) -> None:
        """Start and wait until it accepts connections."""
        self.proc = subprocess.Popen(["mosquitto", "-c", str(self.conf)], stderr=subprocess.PIPE)
        deadline = time.monotonic() + 10
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

    def stop(self) -> None:
        """Stop gracefully (it saves its persistence file)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
        self.proc = None
