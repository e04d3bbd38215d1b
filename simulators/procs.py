"""The benchmarks' parkwatch subprocesses: their environment, their CPU and memory, their stop."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import Iterable
from pathlib import Path

# How long a parkwatch process may take to stop on SIGTERM (it drains its last batches) before
# it is killed.
STOP_GRACE = 60.0


def parkwatch_env(**variables: str) -> dict[str, str]:
    """The environment for a parkwatch subprocess: ours without PARKWATCH_* settings, plus those given."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PARKWATCH_")}
    env.update(variables)
    return env


def cpu_seconds(*pids: int) -> float:
    """User and system CPU the processes have used, from /proc."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except FileNotFoundError:  # exited (a restarted part); its CPU is no longer counted
            continue
        total += int(fields[11]) + int(fields[12])  # utime + stime
    return total / ticks


def with_descendants(pids: Iterable[int]) -> list[int]:
    """The processes and every process they started (a supervised serve's parts), from /proc."""
    out: list[int] = []
    todo = list(pids)
    while todo:
        pid = todo.pop()
        out.append(pid)
        for task in Path(f"/proc/{pid}/task").glob("*/children"):
            with contextlib.suppress(OSError):
                todo += [int(c) for c in task.read_text().split()]
    return out


def part_of(pid: int) -> str:
    """A parkwatch process's part (its --log-tag, set by the supervisor), else its program's name."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except FileNotFoundError:
        return "gone"
    if b"--log-tag" in argv:
        return argv[argv.index(b"--log-tag") + 1].decode()
    return "supervisor" if b"serve" in argv else Path(argv[0].decode()).name


def database_pids() -> list[int]:
    """The PostgreSQL server's processes on this machine (its CPU is the database's share)."""
    pids = []
    for comm in Path("/proc").glob("[0-9]*/comm"):
        with contextlib.suppress(OSError):
            if comm.read_text().strip() == "postgres":
                pids.append(int(comm.parent.name))
    return pids


def cpu_by_part(parkwatch: Iterable[int]) -> dict[str, float]:
    """CPU seconds used so far by each part of these parkwatch processes, and by PostgreSQL."""
    out: dict[str, float] = {"postgres": cpu_seconds(*database_pids())}
    for pid in parkwatch:
        part = part_of(pid)
        out[part] = out.get(part, 0.0) + cpu_seconds(pid)
    return out


def peak_rss_mb(pid: int) -> float:
    """The process's peak resident memory (VmHWM), in MB."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return 0.0
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


async def stop(procs: list[asyncio.subprocess.Process], grace: float = STOP_GRACE) -> None:
    """SIGTERM each process still running; SIGKILL what has not exited after the grace period."""
    for proc in procs:
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
    for proc in procs:
        try:
            await asyncio.wait_for(proc.wait(), grace)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
