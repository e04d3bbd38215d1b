"""Before serving: are the database and the broker there? One line each when not, saying how to start it."""

from __future__ import annotations

import socket
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from ingest.registry import REGISTRY_CACHE
from parkwatch.settings import Settings

# A local service answers a TCP connect in microseconds; a remote one across a WAN in well under a
# second. Three seconds tells "not there" from "slow" without keeping a user waiting.
PROBE_TIMEOUT = 3.0


class ServiceUnreachableError(Exception):
    """A service parkwatch needs did not answer; `setting` is the variable that names its address."""

    def __init__(self, service: str, address: str, setting: str, hint: str) -> None:
        self.service = service
        self.address = address
        self.setting = setting
        self.hint = hint
        super().__init__(f"{service} is not reachable at {address} ({setting})")

    def line(self) -> str:
        """One line: what is missing and how to start it."""
        return f"{self}: {self.hint}"


def database_address(url: str) -> tuple[str, int]:
    """Host (or Unix socket folder) and port a PostgreSQL URL points at, as libpq reads it (the first of several)."""
    return database_addresses(url)[0]


def database_addresses(url: str) -> list[tuple[str, int]]:
    """Every host and port of a PostgreSQL URL, in order.

    `host1:5432,host2:5433` names a primary and its standby, tried in turn
    (docs/faults.md#failover-to-a-standby).
    """
    parts = urlsplit(url)
    query = parse_qs(parts.query)
    try:
        default_port = int((query.get("port") or ["5432"])[0])
    except ValueError:
        default_port = 5432
    hosts = parts.netloc.rpartition("@")[2]
    out = []
    for item in hosts.split(","):
        host, port = item, default_port
        if item.startswith("["):  # [IPv6]:port
            host, _, rest = item[1:].partition("]")
            port = _port(rest.removeprefix(":"), default_port)
        elif item.count(":") == 1:
            host, text = item.split(":")
            port = _port(text, default_port)
        if host:
            out.append((host, port))
    return out or [((query.get("host") or ["/var/run/postgresql"])[0], default_port)]


def _port(text: str, default: int) -> int:
    try:
        return int(text) if text else default
    except ValueError:
        return default


def reachable(host: str, port: int, timeout: float = PROBE_TIMEOUT) -> bool:
    """True when something accepts a connection at host:port (a Unix socket folder for a host starting with /)."""
    if host.startswith("/"):
        path = Path(host) / f".s.PGSQL.{port}"
        if not path.exists():
            return False
        family, address = socket.AF_UNIX, str(path)
        with socket.socket(family, socket.SOCK_STREAM) as s:
            s.settimeout(timeout)
            try:
                s.connect(address)
            except OSError:
                return False
            return True
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def check_database(settings: Settings) -> ServiceUnreachableError | None:
    """None when PostgreSQL answers at the configured address, else what to tell the user."""
    addresses = database_addresses(settings.DATABASE_URL)
    if any(reachable(host, port) for host, port in addresses):
        return None
    return ServiceUnreachableError(
        "PostgreSQL",
        ", ".join(f"{host}:{port}" for host, port in addresses),
        "PARKWATCH_DATABASE_URL",
        "start it (e.g. `systemctl start postgresql`, or `pg_ctlcluster 15 main start` on Debian) "
        "or point PARKWATCH_DATABASE_URL at a running server",
    )


def check_broker(settings: Settings) -> ServiceUnreachableError | None:
    """None when the MQTT broker answers at the configured address, else what to tell the user."""
    target = settings.mqtt
    if reachable(target.host, target.port):
        return None
    return ServiceUnreachableError(
        "the MQTT broker",
        f"{target.host}:{target.port}",
        "PARKWATCH_MQTT_URL",
        "start Mosquitto with parkwatch's settings (`mosquitto -c deploy/mosquitto.conf`) "
        "or point PARKWATCH_MQTT_URL at a running broker",
    )


def refuse_to_serve(settings: Settings, *, ingest: bool) -> list[ServiceUnreachableError]:
    """What keeps `serve` from starting: the database, and the broker when the ingest runs.

    An ingest that has run here before (its registry cache is in the spool folder) starts anyway
    and spools, as it does when an outage begins while it runs: a restart during an outage must
    not leave the broker to queue alone. A first start with nothing there is a set-up mistake.
    """
    if ingest and (settings.SPOOL_DIR / REGISTRY_CACHE).exists():
        return []
    problems = [check_database(settings)]
    if ingest:
        problems.append(check_broker(settings))
    return [p for p in problems if p is not None]
