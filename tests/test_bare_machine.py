"""A machine without PostgreSQL or a broker: the demo starts embedded ones, `serve` refuses in one line.

"Without" is a private network namespace (`unshare --net`): inside it nothing listens on
127.0.0.1, exactly as on a fresh machine, while the shared services keep running outside. Run as
a module (`python -m tests.test_bare_machine demo FOLDER PORT`) this module is the driver that
runs inside the namespace.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import psycopg
import pytest

from parkwatch.brokerconf import differences
from parkwatch.embedded.postgres import EmbeddedPostgres
from parkwatch.embedded.process import EmbeddedError, listening
from parkwatch.preflight import database_address, database_addresses
from simulators.broker import PrivateBroker
from tests.helpers import run_cli
from tests.services import free_port

ROOT = Path(__file__).resolve().parent.parent
KILN = "cs-p1-cement-k1"
# The demo replays six hours in seconds and judges each closed hour at once; on two shared cores
# with two embedded servers starting first, a minute is plenty and two is generous.
VERDICT_TIMEOUT = 120.0

pytestmark = pytest.mark.slow


def _in_namespace(*args: str, env: dict[str, str] | None = None, timeout: float) -> subprocess.CompletedProcess[str]:
    """Run a command in a new network namespace with only its loopback up: no service is there."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("PARKWATCH_")}
    clean.update(env or {})
    script = 'ip link set lo up && exec "$@"'
    return subprocess.run(
        ["unshare", "--net", "--", "sh", "-c", script, "sh", *args],
        env=clean,
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
    )


def test_demo_on_a_bare_machine_starts_embedded_servers_and_judges(embedded_dir: Path) -> None:
    """The quick start's demo with nothing listening: embedded servers, readings, verdicts, then all stopped."""
    result = _in_namespace(
        sys.executable,
        "-m",
        "tests.test_bare_machine",
        "demo",
        str(embedded_dir),
        str(free_port()),
        timeout=VERDICT_TIMEOUT + 120,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    first = report["first_lines"]
    # it says so in its first lines, before anything else it prints
    assert first[0].startswith("parkwatch demo: PostgreSQL is not reachable at 127.0.0.1:5432: using an embedded")
    assert first[1].startswith("parkwatch demo: no MQTT broker at 127.0.0.1:1883: using an embedded broker (amqtt)")
    assert report["kiln_exceedances"] == 2, report
    assert report["alerts"] == [[KILN, "exceedance.hour", 2]], report  # the kiln's alert fired, once
    assert report["readings"] > 0
    assert report["health"] == "ok"
    assert report["exit_status"] == 0
    # stopping the demo stopped both servers
    assert report["left_running"] == []
    assert report["broker_listening_after"] is False
    # the data folder stays for the next start, owned by whoever runs the server
    assert (embedded_dir / "postgresql-18" / "data" / "PG_VERSION").exists()


def test_serve_without_services_stops_with_one_line_each(tmp_path: Path) -> None:
    """`serve` never falls back: each missing service is one line saying how to start it, exit 1."""
    result = _in_namespace(
        sys.executable, "-m", "parkwatch.cli", "serve", env={"PARKWATCH_SPOOL_DIR": str(tmp_path)}, timeout=60
    )
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert lines == [
        "parkwatch: PostgreSQL is not reachable at 127.0.0.1:5432 (PARKWATCH_DATABASE_URL): start it "
        "(e.g. `systemctl start postgresql`, or `pg_ctlcluster 15 main start` on Debian) or point "
        "PARKWATCH_DATABASE_URL at a running server",
        "parkwatch: the MQTT broker is not reachable at 127.0.0.1:1883 (PARKWATCH_MQTT_URL): start Mosquitto "
        "with parkwatch's settings (`mosquitto -c deploy/mosquitto.conf`) or point PARKWATCH_MQTT_URL at a "
        "running broker",
    ]


def test_serve_api_alone_needs_only_the_database(tmp_path: Path) -> None:
    """The broker is the ingest's concern: `serve --only compliance` names the database alone."""
    result = _in_namespace(
        sys.executable,
        "-m",
        "parkwatch.cli",
        "serve",
        "--only",
        "compliance",
        env={"PARKWATCH_SPOOL_DIR": str(tmp_path)},
        timeout=60,
    )
    assert result.returncode == 1
    assert [line.split(" (")[0] for line in result.stderr.strip().splitlines()] == [
        "parkwatch: PostgreSQL is not reachable at 127.0.0.1:5432"
    ]


def test_demo_never_replaces_a_database_named_explicitly(embedded_dir: Path) -> None:
    """PARKWATCH_DATABASE_URL set and unreachable: one line, exit 1, no embedded server started."""
    port = free_port()
    result = run_cli(
        "demo",
        env={
            "PARKWATCH_DATABASE_URL": f"postgresql://postgres@127.0.0.1:{port}/parkwatch",
            "PARKWATCH_EMBEDDED_DIR": str(embedded_dir),
        },
        timeout=60,
    )
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"parkwatch: PostgreSQL is not reachable at 127.0.0.1:{port} (PARKWATCH_DATABASE_URL): start it "
        "(e.g. `systemctl start postgresql`, or `pg_ctlcluster 15 main start` on Debian) or point "
        "PARKWATCH_DATABASE_URL at a running server"
    ]
    assert list(embedded_dir.iterdir()) == []


def test_embedded_postgres_dies_with_the_process_that_started_it(embedded_dir: Path) -> None:
    """Even a SIGKILL of the demo stops its database: nothing is left running in the background."""
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from pathlib import Path; "
            "from parkwatch.embedded.postgres import EmbeddedPostgres; "
            "pg = EmbeddedPostgres(Path(sys.argv[1])); pg.start(); print(pg.proc.pid, flush=True); time.sleep(600)",
            str(embedded_dir),
        ],
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    try:
        assert holder.stdout is not None
        server_pid = int(holder.stdout.readline())
        assert Path(f"/proc/{server_pid}").exists()
        holder.kill()
        holder.wait(timeout=10)
        deadline = time.monotonic() + 30
        while Path(f"/proc/{server_pid}").exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not Path(f"/proc/{server_pid}").exists() or _zombie(server_pid)
    finally:
        holder.kill()
    # and the next start finds its data again, with the same password
    with EmbeddedPostgres(embedded_dir) as pg, psycopg.connect(pg.url("postgres")) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)


def test_embedded_postgres_keeps_to_one_process_per_folder(embedded_dir: Path) -> None:
    """A second demo on the same folder is refused with one line, not allowed to stop the first's server."""
    with EmbeddedPostgres(embedded_dir) as first:
        with pytest.raises(EmbeddedError, match="another parkwatch process is using the embedded PostgreSQL"):
            EmbeddedPostgres(embedded_dir).start()
        with psycopg.connect(first.url("postgres")) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)


def test_embedded_postgres_as_root_never_opens_a_private_folder(tmp_path: Path) -> None:
    """Root's private folders stay private: the server's user cannot reach them, so they are refused."""
    if os.geteuid() != 0:
        # as an ordinary user the server runs as that user, and its own private folder is fine
        with EmbeddedPostgres(tmp_path) as pg, psycopg.connect(pg.url("postgres")) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
        return
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    before = {p: p.stat().st_mode for p in (private, *private.parents)}
    with pytest.raises(EmbeddedError) as caught:
        EmbeddedPostgres(private / "embedded").start()
    assert "keeps the unprivileged user 'parkwatch' out of" in caught.value.line()
    assert "PARKWATCH_EMBEDDED_DIR" in caught.value.line()
    assert {p: p.stat().st_mode for p in before} == before


def test_running_broker_settings_are_compared_with_deploy_conf(tmp_path: Path) -> None:
    """The demo can tell a Mosquitto started without parkwatch's settings from one started with them."""
    ours = PrivateBroker(tmp_path / "ours")
    other = PrivateBroker(tmp_path / "other", overrides={"max_queued_messages": "1000"})
    ours.start()
    other.start()
    try:
        found = differences(ours.port)
        assert found is not None
        assert found[1] == {}
        found = differences(other.port)
        assert found is not None
        assert found[1] == {"max_queued_messages": ("1000", "50000")}
        assert differences(free_port()) is None  # nobody local listens there: cannot tell
    finally:
        ours.stop()
        other.stop()


def test_tests_run_on_embedded_servers(embedded_dir: Path) -> None:
    """The test command on a machine without services: a test of the real pipeline passes on the embedded pair."""
    result = _in_namespace(
        sys.executable,
        "-m",
        "parkwatch.embedded",
        "--",
        sys.executable,
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        "tests/test_ingest.py::test_reading_is_stored_and_served",
        env={"PARKWATCH_EMBEDDED_DIR": str(embedded_dir)},
        timeout=240,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert "1 passed" in result.stdout


def test_database_address_reads_urls_as_libpq_does() -> None:
    assert database_address("postgresql://postgres@127.0.0.1:5433/x") == ("127.0.0.1", 5433)
    assert database_address("postgresql://u:p@db.example/x") == ("db.example", 5432)
    assert database_address("postgresql:///x?host=/run/pg&port=6000") == ("/run/pg", 6000)
    assert database_address("postgresql:///x") == ("/var/run/postgresql", 5432)
    assert database_addresses("postgresql://u:p@a:5433,b,[::1]:5435/x?target_session_attrs=read-write") == [
        ("a", 5433),
        ("b", 5432),
        ("::1", 5435),
    ]


def _zombie(pid: int) -> bool:
    try:
        return "State:\tZ" in Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return True


# -- the driver, run inside the namespace ---------------------------------------------------


def _get(url: str, key: str | None = None) -> object:
    request = urllib.request.Request(url, headers={"X-API-Key": key} if key else {})  # noqa: S310 - loopback
    with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310 - our own loopback API
        return json.loads(response.read())


def _demo_key(out: Any) -> str | None:
    """The read-only key the demo prints (docs/demo.md), once it has."""
    out.seek(0)
    found = re.search(r"read-only key\s+(pwk_\S+)", out.read())
    return found.group(1) if found else None


def _demo_driver(folder: str, api_port: str) -> dict[str, object]:
    """Start `parkwatch demo`, wait for the kiln's verdicts, stop it, report what happened."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PARKWATCH_")}
    env.update({"PARKWATCH_EMBEDDED_DIR": folder, "PARKWATCH_API_PORT": api_port})
    work = Path(tempfile.mkdtemp(prefix="pw-demo-"))
    out = (work / "stdout").open("w+")
    proc = subprocess.Popen(
        [sys.executable, "-m", "parkwatch.cli", "demo", "--parks", "1"],
        env=env,
        cwd=work,
        stdout=out,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{api_port}"
    exceedances = 0
    alert_rules: list[tuple[str, str, int]] = []
    readings = 0
    health = None
    deadline = time.monotonic() + VERDICT_TIMEOUT
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            key = _demo_key(out)
            if key is None:
                time.sleep(1)
                continue
            try:
                found = _get(f"{base}/api/v1/compliance?park_id=cs-p1&verdict=exceedance", key)
                rows = found["results"]  # type: ignore[index]
                exceedances = sum(1 for r in rows if r["station_id"] == KILN and r["parameter"] == "a21026")
                if exceedances >= 2:
                    raised = _get(f"{base}/api/v1/alerts?park_id=cs-p1", key)["results"]  # type: ignore[index]
                    alert_rules = [(a["station_id"], a["rule"], a["occurrences"]) for a in raised]
                    if alert_rules != [(KILN, "exceedance.hour", 2)]:
                        time.sleep(1)
                        continue
                    hourly = _get(f"{base}/api/v1/readings?station_id={KILN}&parameter=so2&interval=hour", key)
                    readings = len(hourly["results"])  # type: ignore[index]
                    health = _get(f"{base}/healthz")["status"]  # type: ignore[index]
                    break
            except OSError:
                pass
            time.sleep(1)
    finally:
        proc.send_signal(signal.SIGINT)
        status = proc.wait(timeout=90)
    out.seek(0)
    lines = [line for line in out.read().splitlines() if line.startswith("parkwatch demo:")]
    left = []
    for entry in Path("/proc").glob("[0-9]*"):
        if int(entry.name) == os.getpid():  # this driver: the folder is among its arguments
            continue
        try:
            if folder.encode() in (entry / "cmdline").read_bytes():
                left.append(int(entry.name))
        except OSError:
            continue
    return {
        "first_lines": lines,
        "kiln_exceedances": exceedances,
        "alerts": alert_rules,
        "readings": readings,
        "health": health,
        "exit_status": status,
        "left_running": left,
        "broker_listening_after": listening("127.0.0.1", 1883),
    }


if __name__ == "__main__":
    if sys.argv[1:2] == ["demo"]:
        print(json.dumps(_demo_driver(sys.argv[2], sys.argv[3])))
