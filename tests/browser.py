"""The dashboard's browser tests' means: Debian's Chromium under Playwright, and the demo as a user starts it."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from parkwatch.settings import Settings
from simulators.demo import demo_settings
from tests.services import MQTT_HOST, MQTT_PORT, TIMESCALE, db_url, drop_database, free_port, unique

# Where the test run leaves its screenshots (docs/testing.md#browser-tests), to be looked at.
SCREENSHOTS = Path(os.environ.get("PARKWATCH_SCREENSHOTS", ".parkwatch/screenshots"))
# Debian's package; nothing is downloaded at run time (Playwright's own browsers never are).
CHROMIUM_CANDIDATES = ("/usr/bin/chromium", "/usr/bin/chromium-browser")
# The demo replays six hours of a few parks before the kiln's exceedance is judged and alerted;
# on a slow CI machine that has taken a minute.
DEMO_READY_S = 240.0
VIEWPORT = {"width": 1400, "height": 900}


def chromium() -> str:
    """Debian's Chromium, or a skip that says how to get it (a failure under CI, which must run these)."""
    for path in CHROMIUM_CANDIDATES:
        if Path(path).exists():
            return path
    found = shutil.which("chromium")
    if found:
        return found
    reason = "no Chromium: `apt-get install chromium` (the quick start's test command does it when run as root)"
    if os.environ.get("CI"):
        pytest.fail(reason)
    pytest.skip(reason)


@dataclass
class Demo:
    """`parkwatch demo` running as a subprocess: its address, settings and the operator it printed."""

    base: str
    settings: Settings  # the demo's own (its database, topic prefix), as it runs with them
    operator: str
    password: str
    log: Path
    process: subprocess.Popen[bytes] = field(repr=False)

    def get(self, path: str, **params: Any) -> Any:
        """A GET from this machine without credentials: the local viewer."""
        r = httpx.get(f"{self.base}{path}", params=params, timeout=30)
        r.raise_for_status()
        return r.json()


@contextmanager
def running_demo(tmp: Path, parks: int = 4) -> Iterator[Demo]:
    """`parkwatch demo --parks N` on a port, database and topic prefix of its own, until its kiln's park is red."""
    name = unique("pwdash")
    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("PARKWATCH_")},
        "PARKWATCH_DATABASE_URL": db_url(name),
        "PARKWATCH_MQTT_URL": f"mqtt://{MQTT_HOST}:{MQTT_PORT}",
        "PARKWATCH_TOPIC_PREFIX": name,
        "PARKWATCH_MQTT_CLIENT_ID": name,
        "PARKWATCH_SPOOL_DIR": str(tmp / "spool"),
        "PARKWATCH_API_PORT": str(port),
        "PARKWATCH_TIMESCALE": TIMESCALE,
    }
    settings = Settings(
        DATABASE_URL=env["PARKWATCH_DATABASE_URL"], MQTT_URL=env["PARKWATCH_MQTT_URL"], TOPIC_PREFIX=name,
        MQTT_CLIENT_ID=name, SPOOL_DIR=tmp / "spool", API_PORT=port, TIMESCALE=TIMESCALE,
    )  # fmt: skip
    settings = settings.model_copy(update=demo_settings(settings))
    log = tmp / "demo.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [str(Path(sys.executable).parent / "parkwatch"), "demo", "--parks", str(parks)],
            env=env, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        operator, password = _wait_ready(base, log, process)
        yield Demo(base, settings, operator, password, log, process)
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        drop_database(f"{name}_demo")


def _wait_ready(base: str, log: Path, process: subprocess.Popen[bytes]) -> tuple[str, str]:
    deadline = time.monotonic() + DEMO_READY_S
    last = ""
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"the demo exited ({process.returncode}):\n{log.read_text()[-3000:]}")
        try:
            r = httpx.get(f"{base}/api/v1/dashboard/overview", timeout=10)
            if r.status_code == 200:
                states = {p["id"]: p["state"] for p in r.json()["parks"]}
                last = str(states)
                if states.get("cs-p1") == "exceedance":
                    m = re.search(r"operator\s+(\S+) / (\S+)", log.read_text())
                    assert m, "the demo printed no operator account"
                    return m.group(1), m.group(2)
        except httpx.HTTPError as exc:
            last = repr(exc)
        time.sleep(1.0)
    raise AssertionError(f"the demo's kiln park never turned red ({last}):\n{log.read_text()[-3000:]}")


class Console:
    """A page's console errors and uncaught exceptions: a dashboard page must have none."""

    def __init__(self, page: Any) -> None:
        self.errors: list[str] = []
        page.on("console", lambda m: self.errors.append(f"console: {m.text}") if m.type == "error" else None)
        page.on("pageerror", lambda e: self.errors.append(f"uncaught: {e}"))

    def assert_clean(self) -> None:
        """No error so far."""
        assert not self.errors, self.errors


def screenshot(page: Any, name: str) -> Path:
    """Save a full-page screenshot under SCREENSHOTS (a run's pictures of each page)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def sign_in(page: Any, demo: Demo, next_path: str = "/") -> None:
    """Sign in on the dashboard's sign-in page as the demo's park operator."""
    page.goto(f"{demo.base}/login?next={next_path}")
    page.fill("input[name=username]", demo.operator)
    page.fill("input[name=password]", demo.password)
    page.click("button[type=submit]")
    page.wait_for_url(f"{demo.base}{next_path}*")
