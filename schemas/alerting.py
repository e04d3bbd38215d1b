"""The alerting contract: rule families, severities, and the channels and routes of the registry file."""

from __future__ import annotations

import os
import re
from datetime import timedelta
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"


class Family(StrEnum):
    """What kind of problem an alert is about (docs/alerts.md)."""

    EXCEEDANCE = "exceedance"  # a window judged over its limit
    EARLY_WARNING = "early_warning"  # a window still open that is heading over it
    DATA_QUALITY = "data_quality"  # offline, missing parameters, faults, clock drift
    SUSPICIOUS = "suspicious"  # patterns worth a look (弄虚作假 concerns); advisory only
    WATCHDOG = "watchdog"  # parkwatch itself: ingest stalled, backlog growing
    KPI = "kpi"  # a park's or an enterprise's figure off its target or cap (docs/kpis.md)


class Severity(StrEnum):
    """Ordered from the least to the most urgent."""

    ADVISORY = "advisory"
    WARNING = "warning"
    MAJOR = "major"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        """0 for advisory up to 3 for critical."""
        return list(Severity).index(self)


# 核实 outcomes the bureau records when it verifies an alert.
VERIFICATIONS = (
    "genuine_exceedance",
    "instrument_fault",
    "maintenance",
    "data_falsification_suspected",
    "false_alarm",
    "other",
)

ChannelKind = Literal["webhook", "dingtalk", "wecom", "feishu", "sms", "email", "mqtt"]

# Keys of a channel's settings that are secrets: stored, used, never shown by the API.
SECRET_KEYS = frozenset({"secret", "password", "access_key_secret", "token"})
_ENV_REF = re.compile(r"\$\{([A-Z_][A-Z0-9_]*)\}")


def expand_env(value: Any) -> Any:
    """`${NAME}` in a channel setting is read from the environment, so secrets can stay out of the file."""
    if isinstance(value, str):

        def sub(match: re.Match[str]) -> str:
            name = match.group(1)
            if name not in os.environ:
                raise ValueError(f"environment variable {name} is not set")
            return os.environ[name]

        return _ENV_REF.sub(sub, value)
    if isinstance(value, list):
        return [expand_env(v) for v in value]
    return value


def redact(config: dict[str, Any]) -> dict[str, Any]:
    """A channel's settings fit to show: secrets and the tokens robot URLs carry replaced by '***'."""
    out: dict[str, Any] = {}
    for key, value in config.items():
        if key in SECRET_KEYS:
            out[key] = "***"
        elif key == "url" and isinstance(value, str):
            out[key] = re.sub(
                r"((?:access_token|key|token)=)[^&]+", r"\1***", re.sub(r"/hook/[^/?]+", "/hook/***", value)
            )
            # credentials in the address itself (https://user:password@host/...)
            out[key] = re.sub(r"^([a-zA-Z][a-zA-Z0-9+.-]*://)[^/@]*@", r"\1***@", out[key])
        elif isinstance(value, dict):
            # a header block or the like: every value may be a credential (Authorization: Bearer ...)
            out[key] = dict.fromkeys(value, "***")
        else:
            out[key] = value
    return out


_REQUIRED: dict[str, tuple[str, ...]] = {
    "webhook": ("url",),
    "dingtalk": ("url",),
    "wecom": ("url",),
    "feishu": ("url",),
    "sms": ("url", "access_key_id", "access_key_secret", "sign_name", "template_code", "phones"),
    "email": ("host", "sender", "to"),
    "mqtt": (),
}


class ChannelSpec(BaseModel):
    """A channel as written in the registry file: an id, a kind and the kind's settings."""

    model_config = ConfigDict(extra="allow")

    id: str = Field(pattern=ID_PATTERN)
    kind: ChannelKind

    @model_validator(mode="after")
    def _settings(self) -> ChannelSpec:
        config = self.config()
        missing = [k for k in _REQUIRED[self.kind] if not config.get(k)]
        if missing:
            raise ValueError(f"channel {self.id!r} ({self.kind}) needs {', '.join(missing)}")
        url = config.get("url")
        if url is not None and not re.match(r"^https?://", str(url)):
            raise ValueError(f"channel {self.id!r}: url must be http:// or https://")
        return self

    def config(self) -> dict[str, Any]:
        """The kind's settings, `${NAME}` references read from the environment."""
        return {k: expand_env(v) for k, v in (self.model_extra or {}).items()}


class RouteSpec(BaseModel):
    """Which alerts go to which channels: by park (or every park), family and severity."""

    model_config = ConfigDict(extra="forbid")

    park: str | None = Field(default=None, pattern=ID_PATTERN)
    channels: list[str] = Field(min_length=1)
    min_severity: Severity = Severity.WARNING
    families: list[Family] = Field(default_factory=lambda: list(Family))
    # Only alerts nobody acknowledged in time (PARKWATCH_ALERT_ESCALATE_AFTER), e.g. to the bureau.
    escalation: bool = False
    # Send the notice that an alert has cleared too.
    resolved: bool = True
    # Remind while an alert is active and unacknowledged: "2h", "30m", "1d".
    repeat_every: timedelta | None = None

    @field_validator("repeat_every", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> Any:
        if isinstance(value, str):
            match = re.fullmatch(r"\s*(\d+)\s*([smhd])\s*", value)
            if match is None:
                raise ValueError("a duration like 30m, 2h or 1d")
            n, unit = int(match.group(1)), match.group(2)
            value = timedelta(**{{"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}[unit]: n})
        if isinstance(value, timedelta) and value < timedelta(minutes=1):
            raise ValueError("at least 1m")
        return value
