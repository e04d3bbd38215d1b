"""`parkwatch serve` across cores: each part a process, one log stream, restarted if it dies, stopped together."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ctypes.util
import logging
import os
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from parkwatch.retry import backoff

logger = logging.getLogger(__name__)

# The parts, in the order they start and are listed.
PART_ORDER = ("ingest", "compliance", "alerts", "api")
# SIGTERM lets the ingest drain and acknowledge for up to 30 s (ingest/service.py,
# SHUTDOWN_GRACE) and the alerts finish a send; a part still running after this is killed, and
# the broker redelivers whatever it had not acknowledged.
STOP_GRACE = 45.0
# A part that exits with an error this soon after its first start did not start (a port taken,
# a database without the schema): restarting cannot help, so serve stops and says so.
START_FAILURE_WINDOW = 10.0
# A part that dies is started again after a backoff (parkwatch/retry.py): fast at first, the
# ingest's persistent session holds what arrives meanwhile; a part that keeps dying waits up to
# RESTART_CAP between attempts. One that ran STABLE_AFTER seconds starts the count afresh.
RESTART_BASE = 0.5
RESTART_CAP = 30.0
STABLE_AFTER = 60.0

_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """In the child, before exec: SIGTERM when the supervisor dies, even by SIGKILL (Linux)."""
    libc_name = ctypes.util.find_library("c")
    if libc_name is None or not sys.platform.startswith("linux"):
        return
    ctypes.CDLL(libc_name, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


@dataclass
class Part:
    """One supervised part: its command line and what became of its process."""

    name: str
    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)  # settings of this part alone (an ingest's session)
    proc: asyncio.subprocess.Process | None = None
    restarts: int = 0
    exits: list[int] = field(default_factory=list)


class StartFailedError(Exception):
    """A part exited with an error before it ever ran; `part` and `returncode` say which and how."""

    def __init__(self, part: str, returncode: int) -> None:
        self.part = part
        self.returncode = returncode
        super().__init__(f"{part} exited with status {returncode} as it started")


def part_command(component: str, tag: str, *, stats_file: Path | None = None, retire: bool = False) -> list[str]:
    """The child's command line: `parkwatch serve --only <component>` in one process, its logs tagged."""
    argv = [sys.executable, "-m", "parkwatch.cli", "serve", "--only", component, "--single-process", "--log-tag", tag]
    if stats_file is not None and component == "ingest":
        argv += ["--stats-file", str(stats_file)]
    if retire:
        argv.append("--retire")
    return argv


class Supervisor:
    """Runs each part as a child process until stopped; children share this process's stderr."""

    def __init__(self, parts: list[Part], *, on_started: Callable[[Part], None] | None = None) -> None:
        self.parts = parts
        self._on_started = on_started
        self._stop = asyncio.Event()
        self.failed: StartFailedError | None = None

    def stop(self) -> None:
        """Ask every part to stop (SIGTERM), as SIGTERM or SIGINT to the supervisor does."""
        self._stop.set()

    async def run(self, stop: asyncio.Event | None = None) -> int:
        """Start the parts and keep them running until stopped; 0 when every part stopped cleanly."""
        watcher = None
        if stop is not None:
            watcher = asyncio.create_task(self._follow(stop), name="serve.supervisor.stop")
        logger.info("serve: %s, each in a process of its own", ", ".join(p.name for p in self.parts))
        try:
            async with asyncio.TaskGroup() as tg:
                for part in self.parts:
                    tg.create_task(self._keep(part), name=f"serve.part.{part.name}")
        finally:
            if watcher is not None:
                watcher.cancel()
        if self.failed is not None:
            logger.error("serve stopped: %s", self.failed)
            return 1
        unclean = {p.name: p.exits[-1] for p in self.parts if not p.exits or p.exits[-1] != 0}
        if unclean:
            logger.error("serve stopped; parts that did not stop cleanly: %s", unclean)
            return 1
        logger.info("serve stopped: every part stopped cleanly")
        return 0

    async def _follow(self, stop: asyncio.Event) -> None:
        await stop.wait()
        self._stop.set()

    async def _keep(self, part: Part) -> None:
        attempt = 0
        while not self._stop.is_set():
            started = time.monotonic()
            proc = await asyncio.create_subprocess_exec(
                *part.argv, env=os.environ | part.env, preexec_fn=_die_with_parent
            )
            part.proc = proc
            logger.info("%s started (pid %d)", part.name, proc.pid)
            if self._on_started is not None:
                self._on_started(part)
            ended = asyncio.create_task(proc.wait(), name=f"serve.part.{part.name}.wait")
            stopping = asyncio.create_task(self._stop.wait(), name=f"serve.part.{part.name}.stop")
            await asyncio.wait({ended, stopping}, return_when=asyncio.FIRST_COMPLETED)
            stopping.cancel()
            if not ended.done():
                part.exits.append(await self._terminate(part.name, proc, ended))
                return
            code = ended.result()
            part.exits.append(code)
            if self._stop.is_set():
                return
            ran = time.monotonic() - started
            if part.restarts == 0 and code > 0 and ran < START_FAILURE_WINDOW:
                self.failed = StartFailedError(part.name, code)
                self._stop.set()
                return
            if ran >= STABLE_AFTER:
                attempt = 0
            delay = backoff(attempt, base=RESTART_BASE, cap=RESTART_CAP)
            attempt += 1
            part.restarts += 1
            how = f"was killed by signal {-code}" if code < 0 else f"exited with status {code}"
            logger.error("%s (pid %d) %s after %.0f s; restarting in %.1f s", part.name, proc.pid, how, ran, delay)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await self._stop.wait()

    async def _terminate(self, name: str, proc: asyncio.subprocess.Process, ended: asyncio.Task[int]) -> int:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
        try:
            async with asyncio.timeout(STOP_GRACE):
                return await ended
        except TimeoutError:
            logger.error("%s (pid %d) still running %.0f s after SIGTERM; killing it", name, proc.pid, STOP_GRACE)
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            return await ended


def want_processes(parts: list[str], *, single: bool, ingests: int) -> bool:
    """Whether serve supervises processes: more than one core, more than one process, not told otherwise."""
    processes = len(parts) - 1 + ingests if "ingest" in parts else len(parts)
    return not single and processes > 1 and (os.cpu_count() or 1) > 1


async def run_once(argv: list[str], env: dict[str, str], limit: float) -> int:
    """Run a one-off child to its end (a session's retirement); killed after `limit` seconds."""
    proc = await asyncio.create_subprocess_exec(*argv, env=os.environ | env, preexec_fn=_die_with_parent)
    try:
        async with asyncio.timeout(limit):
            return await proc.wait()
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()
        return -int(signal.SIGKILL)
