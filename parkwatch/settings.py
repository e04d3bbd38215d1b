"""The one settings object, read from PARKWATCH_* environment variables and validated at start-up."""

from __future__ import annotations

import re
import ssl
from functools import lru_cache
from pathlib import Path
from typing import Literal
from urllib.parse import unquote, urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, Field, ValidationError, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from pydantic_settings import SettingsError as EnvParseError

from schemas.kpis import ASSESSMENT_INDICATORS

ENV_PREFIX = "PARKWATCH_"

# A topic level may not hold MQTT wildcards or separators; the prefix may hold several levels.
_TOPIC_PREFIX_RE = re.compile(r"^[^#+/\s]+(/[^#+/\s]+)*$")
_TOPIC_LEVEL_RE = re.compile(r"^[^#+/\s]+$")


class MqttTarget(BaseModel):
    """Where and how to reach the broker, parsed from PARKWATCH_MQTT_URL."""

    host: str
    port: int
    tls: bool
    username: str | None = None
    password: str | None = None
    ca_file: Path | None = None

    def ssl_context(self) -> ssl.SSLContext | None:
        """The TLS context of an mqtts:// target: the system's CAs, and ca_file's if set; None for mqtt://."""
        if not self.tls:
            return None
        context = ssl.create_default_context()
        if self.ca_file is not None:
            context.load_verify_locations(cafile=self.ca_file)
        return context


class Settings(BaseSettings):
    """Every knob an operator can turn; each maps to PARKWATCH_<NAME>."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore", frozen=True)

    DATABASE_URL: str = "postgresql://postgres@127.0.0.1:5432/parkwatch"
    MQTT_URL: str = "mqtt://127.0.0.1:1883"
    # A CA certificate (PEM) to trust for an mqtts:// broker besides the system's: a private CA
    # (docs/deployment.md#tls).
    MQTT_CA_FILE: Path | None = None
    TOPIC_PREFIX: str = "parkwatch"
    API_HOST: str = "127.0.0.1"
    API_PORT: int = Field(default=8000, ge=1, le=65535)

    # The ingest's MQTT session: a fixed client id is what makes the session persistent, so the
    # broker keeps our unacknowledged messages across a restart.
    MQTT_CLIENT_ID: str = Field(default="parkwatch-ingest", min_length=1, max_length=64)
    # Several ingest instances share the readings through a shared subscription of this group
    # ($share/<group>/...; docs/scale.md): each instance needs a client id of its own. Unset, one
    # ingest takes every reading.
    MQTT_SHARE_GROUP: str | None = Field(default=None, min_length=1, max_length=64)
    # Ingest processes `serve` runs. Above one they share the readings as members of one shared
    # group (client ids MQTT_CLIENT_ID-0, -1, ...): more readings/s, but Mosquitto 2.0 does not
    # restore shared subscriptions after a restart of its own (docs/scale.md#caveats).
    INGEST_PROCESSES: int = Field(default=1, ge=1, le=64)
    # Where batches go, fsynced, while PostgreSQL is unreachable (see ingest/spool.py).
    SPOOL_DIR: Path = Path(".parkwatch/spool")
    DEFAULT_TIMEZONE: str = "Asia/Shanghai"
    # auto: use TimescaleDB when the extension can be created; on: require it; off: never.
    TIMESCALE: Literal["auto", "on", "off"] = "auto"
    # The width of the readings partitions (TimescaleDB: chunks), decided when `parkwatch
    # migrate` first applies migration 0020 and kept after (docs/storage.md#partitions): a
    # week's primary key stays in memory where a month's outgrew it (docs/benchmarks.md, "Scale").
    READINGS_PARTITION: Literal["day", "week", "month"] = "week"
    # Raw readings older than this many days are dropped, a whole partition or chunk at a time
    # and only once its hours are rolled up (docs/storage.md#retention); rollups and verdicts are
    # kept for ever. Unset: raw readings are kept for ever.
    READINGS_RETENTION_DAYS: int | None = Field(default=None, ge=1)
    LOG_LEVEL: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    # text: a line per record for a terminal; json: a JSON object per line for a log collector.
    LOG_FORMAT: Literal["text", "json"] = "text"
    # The HJ 212 TCP gateway (`parkwatch gateway`). Loggers are on other hosts: bind 0.0.0.0 (or
    # the station network's address) in production.
    GATEWAY_HOST: str = "127.0.0.1"
    GATEWAY_PORT: int = Field(default=9212, ge=0, le=65535)
    # Loggers send at least every few minutes (minute data, heartbeats); a connection silent
    # for this long is dead on the far side and is closed.
    GATEWAY_IDLE_TIMEOUT: float = Field(default=600.0, gt=0)
    # A second listener, TLS, for loggers that support it (docs/deployment.md#tls): a port, and
    # the server certificate and key in PEM (deploy/make-certs.sh writes both).
    GATEWAY_TLS_CERT: Path | None = None
    GATEWAY_TLS_KEY: Path | None = None
    GATEWAY_TLS_PORT: int | None = Field(default=None, ge=0, le=65535)
    # Connections held at once; past it a new one is closed at once. A province has thousands of
    # loggers at most, and an idle socket costs the gateway a few kilobytes: the bound keeps a
    # flood of idle connections from exhausting memory and file descriptors.
    GATEWAY_MAX_CONNECTIONS: int = Field(default=5000, ge=1)
    # Signs the API's paging cursors; unset, one is generated once and kept in the database, so
    # that every API process reads the others' cursors.
    API_SECRET: str | None = Field(default=None, min_length=16)
    # Access (docs/access.md). Requests a key or a user may make per minute, each API process.
    API_RATE_LIMIT: int = Field(default=600, ge=1)
    # A dashboard session lasts this many hours from sign-in.
    SESSION_HOURS: float = Field(default=12.0, gt=0, le=24 * 30)
    # /metrics without a key (a Prometheus that sends none); off, it needs an administrator's key.
    METRICS_PUBLIC: bool = False
    # The dashboard without signing in, read-only, for visitors on this machine (docs/dashboard.md):
    # a request from a loopback address with no key or session acts as the inspector key
    # `local-viewer` (whole province), which the API creates. The demo turns it on; behind a
    # reverse proxy on the same host every visitor is local, so leave it off there.
    DASHBOARD_LOCAL_VIEWER: bool = False
    # Alerts (docs/alerts.md). Links in notices point here; default http://API_HOST:API_PORT.
    PUBLIC_URL: str | None = None
    # Exceedance multiple ((C - limit) / limit) from which an exceedance is major, and critical;
    # below the first it is a warning.
    ALERT_MAJOR_AT: float = Field(default=0.5, ge=0)
    ALERT_CRITICAL_AT: float = Field(default=1.0, ge=0)
    # An active alert nobody acknowledged within this many minutes goes to the escalation routes.
    ALERT_ESCALATE_AFTER: float = Field(default=30.0, gt=0)
    # Hours the enterprise has to explain an exceedance (情况说明) before it is overdue.
    ALERT_EXPLANATION_HOURS: float = Field(default=24.0, gt=0)
    # Minutes without data after which a station is offline (a station's `offline_after` in the
    # registry overrides it).
    ALERT_OFFLINE_AFTER: float = Field(default=10.0, gt=0)
    # The provincial plan's targets (docs/kpis.md#targets), fractions; a park's `targets` in the
    # registry overrides them. A figure below its target raises a kpi alert.
    TARGET_TREATMENT_RATE: float = Field(default=0.95, gt=0, le=1)
    TARGET_TREATED_WATER_COMPLIANCE_RATE: float = Field(default=1.0, gt=0, le=1)
    TARGET_SOLID_WASTE_RATE: float = Field(default=0.90, gt=0, le=1)
    # The platforms' usual requirement for automatic monitoring data (有效传输率 ≥ 90 %); not in
    # docs/reference/standards.md, so a setting.
    TARGET_EFFECTIVE_TRANSMISSION_RATE: float = Field(default=0.90, gt=0, le=1)
    # The park assessment's weights, figure → weight (docs/kpis.md#assessment); JSON in the
    # environment. Empty: the defaults of compliance/assessment.py.
    ASSESSMENT_WEIGHTS: dict[str, float] = Field(default_factory=dict)

    @field_validator("ASSESSMENT_WEIGHTS")
    @classmethod
    def _weights(cls, value: dict[str, float]) -> dict[str, float]:
        unknown = sorted(set(value) - set(ASSESSMENT_INDICATORS))
        if unknown:
            raise ValueError(f"unknown indicator(s) {', '.join(unknown)}; known: {', '.join(ASSESSMENT_INDICATORS)}")
        if any(not 0 <= w < 1e6 for w in value.values()):
            raise ValueError("weights are non-negative numbers")
        if set(value) == set(ASSESSMENT_INDICATORS) and not sum(value.values()):
            raise ValueError("at least one indicator must weigh something")
        return value

    # The watchdog's own way out (docs/alerts.md): parkwatch failing (database unreachable,
    # ingest stalled, compliance behind) is posted here directly, needing no database.
    WATCHDOG_WEBHOOK_URL: str | None = None
    WATCHDOG_WEBHOOK_SECRET: str | None = None
    # Where the demo keeps its embedded PostgreSQL and broker log when the real services are not
    # there (docs/demo.md). Default: ~/.local/share/parkwatch, or /var/lib/parkwatch as root.
    EMBEDDED_DIR: Path | None = None

    @field_validator("DATABASE_URL")
    @classmethod
    def _postgres_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("postgresql", "postgres"):
            raise ValueError("must be a postgresql:// URL")
        if not parts.path.strip("/"):
            raise ValueError("must name a database, e.g. postgresql://host:5432/parkwatch")
        return value

    @field_validator("MQTT_URL")
    @classmethod
    def _mqtt_url(cls, value: str) -> str:
        parse_mqtt_url(value)
        return value

    @field_validator("MQTT_CA_FILE")
    @classmethod
    def _ca_file(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_file():
            raise ValueError(f"no such file: {value}")
        return value

    @field_validator("GATEWAY_TLS_CERT", "GATEWAY_TLS_KEY")
    @classmethod
    def _pem_file(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_file():
            raise ValueError(f"no such file: {value}")
        return value

    @field_validator("GATEWAY_TLS_PORT")
    @classmethod
    def _gateway_tls(cls, value: int | None, info: ValidationInfo) -> int | None:
        if value is not None and (
            info.data.get("GATEWAY_TLS_CERT") is None or info.data.get("GATEWAY_TLS_KEY") is None
        ):
            raise ValueError("needs PARKWATCH_GATEWAY_TLS_CERT and PARKWATCH_GATEWAY_TLS_KEY")
        return value

    def gateway_tls_context(self) -> ssl.SSLContext | None:
        """The gateway's TLS listener context, when one is configured."""
        if self.GATEWAY_TLS_PORT is None or self.GATEWAY_TLS_CERT is None or self.GATEWAY_TLS_KEY is None:
            return None
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.GATEWAY_TLS_CERT, self.GATEWAY_TLS_KEY)
        return context

    @field_validator("MQTT_SHARE_GROUP")
    @classmethod
    def _share_group(cls, value: str | None) -> str | None:
        if value is not None and not _TOPIC_LEVEL_RE.match(value):
            raise ValueError("must be one topic level: no '/', '+', '#' or spaces")
        return value

    @field_validator("TOPIC_PREFIX")
    @classmethod
    def _topic_prefix(cls, value: str) -> str:
        if not _TOPIC_PREFIX_RE.match(value):
            raise ValueError("must be one or more topic levels without '#', '+', spaces or empty levels")
        return value

    @field_validator("DEFAULT_TIMEZONE")
    @classmethod
    def _timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown IANA time zone {value!r}") from None
        return value

    @property
    def public_url(self) -> str:
        """The base of links in notices."""
        return (self.PUBLIC_URL or f"http://{self.API_HOST}:{self.API_PORT}").rstrip("/")

    @property
    def mqtt(self) -> MqttTarget:
        """The broker address, credentials and the CA to trust."""
        return parse_mqtt_url(self.MQTT_URL).model_copy(update={"ca_file": self.MQTT_CA_FILE})

    @property
    def database_name(self) -> str:
        """The database named in DATABASE_URL."""
        return urlsplit(self.DATABASE_URL).path.strip("/")


def parse_mqtt_url(value: str) -> MqttTarget:
    """Parse mqtt://[user[:password]@]host[:port] (mqtts:// for TLS)."""
    parts = urlsplit(value)
    if parts.scheme not in ("mqtt", "mqtts"):
        raise ValueError("must be an mqtt:// or mqtts:// URL")
    if not parts.hostname:
        raise ValueError("must name a host, e.g. mqtt://127.0.0.1:1883")
    try:
        port = parts.port
    except ValueError:
        raise ValueError("has an invalid port") from None
    tls = parts.scheme == "mqtts"
    return MqttTarget(
        host=parts.hostname,
        port=port or (8883 if tls else 1883),
        tls=tls,
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
    )


class SettingsError(Exception):
    """Start-up refused: one or more settings are invalid."""

    def __init__(self, problems: list[tuple[str, str]]) -> None:
        self.problems = problems
        super().__init__("; ".join(f"{name}: {msg}" for name, msg in problems))

    def lines(self) -> list[str]:
        """One line per bad setting, naming it the way the operator set it."""
        return [f"invalid setting {name}: {msg}" for name, msg in self.problems]


def load_settings() -> Settings:
    """Read and validate the settings, or raise SettingsError naming each bad one."""
    try:
        return Settings()
    except EnvParseError as exc:  # a JSON setting (ASSESSMENT_WEIGHTS) that is not JSON
        raise SettingsError([(_named(str(exc)), "not valid JSON")]) from None
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            field = str(err["loc"][0]) if err["loc"] else "?"
            msg = err["msg"].removeprefix("Value error, ")
            problems.append((f"{ENV_PREFIX}{field}", msg))
        raise SettingsError(problems) from None


def _named(message: str) -> str:
    """The setting a pydantic-settings parse error names ('error parsing value for field "X" ...')."""
    found = re.search(r'field "([A-Z_]+)"', message)
    return f"{ENV_PREFIX}{found.group(1)}" if found else "settings"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings (validated once)."""
    return load_settings()
