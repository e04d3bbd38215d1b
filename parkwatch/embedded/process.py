"""Child server processes: free ports, tied to our life, stopped politely and then firmly."""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable

# Polling step while a child starts or stops.
POLL = 0.05


class EmbeddedError(Exception):
    """An embedded server could not be started; `hint` says what the user can do about it."""

    def __init__(self, message: str, *, hint: str) -> None:
        self.hint = hint
        super().__init__(message)

    def line(self) -> str:
        """One line for the terminal: what went wrong, then what to do."""
        return f"{self}; {self.hint}"


def port_free(port: int, host: str = "127.0.0.1") -> bool:
    """True when nothing listens on host:port and we may bind it."""
    with socket.socket() as s:
        # As servers bind: connections of an earlier run in TIME_WAIT do not make a port busy,
        # so a server stopped and started again keeps its port.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def pick_port(preferred: int | None = None, host: str = "127.0.0.1") -> int:
    """`preferred` when it is free, else any free port."""
    if preferred and port_free(preferred, host):
        return preferred
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def listening(host: str, port: int, timeout: float = 0.5) -> bool:
    """True when a TCP connection to host:port is accepted."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def die_with_parent(sig: signal.Signals) -> Callable[[], None] | None:
    """A preexec function asking Linux to send `sig` to the child when we die, even by SIGKILL.

    So an embedded server never outlives the demo that started it. The request belongs to the
    thread that forks: start children from the main thread. None where prctl does not exist.
    """
    if not sys.platform.startswith("linux"):
        return None
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    pr_set_pdeathsig = 1

    def preexec() -> None:
        libc.prctl(pr_set_pdeathsig, int(sig), 0, 0, 0)

    return preexec


def stop_process(proc: subprocess.Popen[bytes], sig: signal.Signals, timeout: float) -> None:
    """Send `sig`, wait up to `timeout`, then kill."""
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        proc.send_signal(sig)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=timeout)


def wait_until(check: Callable[[], bool], proc: subprocess.Popen[bytes], timeout: float) -> bool:
    """Poll `check` until it holds (True), the child exits or time runs out (False)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        if proc.poll() is not None:
            return False
        time.sleep(POLL)
    return check()
