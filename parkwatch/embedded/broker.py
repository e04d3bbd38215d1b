"""An embedded MQTT 3.1.1 broker (amqtt) on 127.0.0.1, as a child process, for a machine without Mosquitto.

It is enough for the demo, not for production: it keeps sessions and their queued messages in
memory only (a restart of it loses them), and it carries a few thousand messages a second where
Mosquitto carries tens of thousands (docs/demo.md). Run as `python -m parkwatch.embedded.broker
--port N`; start() does that and waits until it listens.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.util
import logging
import signal
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from parkwatch.embedded.process import EmbeddedError, die_with_parent, listening, pick_port, stop_process, wait_until

logger = logging.getLogger(__name__)

HOST = "127.0.0.1"  # explicitly: amqtt's own default is every interface
# The broker is a Python process: importing amqtt and binding take a second or two on a busy host.
START_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0


def installed() -> bool:
    """True when amqtt is installed (the `embedded` extra)."""
    return importlib.util.find_spec("amqtt") is not None


class EmbeddedBroker:
    """The broker child process; start() returns once it accepts connections."""

    def __init__(self, folder: Path, *, port: int | None = None) -> None:
        if not installed():
            raise EmbeddedError(
                "the embedded MQTT broker is not installed",
                hint="install it with `pip install 'parkwatch[embedded]'` (the quick start does)",
            )
        self.log_path = folder / "broker.log"
        self.folder = folder
        self.preferred_port = port
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """The MQTT URL of this broker."""
        return f"mqtt://{HOST}:{self.port}"

    def start(self) -> None:
        """Start the child and wait until it listens."""
        self.folder.mkdir(parents=True, exist_ok=True)
        self.port = pick_port(self.preferred_port, HOST)
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(  # noqa: S603 - our own module under our own interpreter
                [sys.executable, "-m", "parkwatch.embedded.broker", "--port", str(self.port)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # a Ctrl-C meant for the demo must not stop the broker under it
                preexec_fn=die_with_parent(signal.SIGTERM),  # noqa: PLW1509 - started from the main thread
            )
        if not wait_until(lambda: listening(HOST, self.port), self.proc, START_TIMEOUT):
            self.stop()
            tail = self.log_path.read_text(errors="replace")[-400:].strip()
            raise EmbeddedError(f"the embedded MQTT broker did not start: {tail}", hint=f"read {self.log_path}")
        logger.info("embedded MQTT broker (amqtt) on %s:%d", HOST, self.port)

    def stop(self) -> None:
        """Stop the child (its queued messages go with it)."""
        if self.proc is not None:
            stop_process(self.proc, signal.SIGTERM, STOP_TIMEOUT)
            self.proc = None

    def __enter__(self) -> EmbeddedBroker:
        self.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()


async def _serve(port: int) -> None:
    from amqtt.broker import Broker  # noqa: PLC0415 - an optional extra, needed only in the child

    config = {
        "listeners": {"default": {"type": "tcp", "bind": f"{HOST}:{port}"}},
        "plugins": {"amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}},
    }
    broker = Broker(config)
    await broker.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    with contextlib.suppress(Exception):  # it is going away either way; say nothing more
        await broker.shutdown()


def main(argv: Sequence[str] | None = None) -> None:
    """The child: run amqtt on 127.0.0.1:PORT until SIGTERM."""
    parser = argparse.ArgumentParser(prog="python -m parkwatch.embedded.broker")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    asyncio.run(_serve(args.port))


if __name__ == "__main__":
    main()
