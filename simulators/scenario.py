"""Scenario files: what happens to which station when, and the outcomes parkwatch must produce.

A scenario is YAML (see simulators/scenarios/). Its events script the episodes a real fleet
has — exceedances, instrument faults (D), calibration (C) and maintenance (M) windows, offline
gaps, flatlines, duplicates, late back-fill (补发), malformed payloads, clock faults — and its
`expect` list states the outcomes: verdicts of given windows and dead letters by reason. With
`strict: true` nothing else may come out: no other non-compliant verdict, no other dead letter.
Later capabilities (alerts) add their own kinds of expectation beside these.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from schemas.registry import RegistryFile, read_registry
from simulators.fleet import province

EventKind = Literal[
    "exceedance",
    "fault",
    "calibration",
    "maintenance",
    "offline",
    "flatline",
    "duplicate",
    "backfill",
    "malformed",
    "clock_skew",
]
# The data flag each instrument-state event writes (HJ 212-2017 table 8).
FLAGS = {"fault": "D", "calibration": "C", "maintenance": "M"}
_DURATION = re.compile(r"^([+-]?\d+(?:\.\d+)?)\s*(s|m|h|d|y)$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "y": 365 * 86400}


class ScenarioError(Exception):
    """A scenario file that cannot be run; `path` names it."""

    def __init__(self, path: str, detail: str) -> None:
        self.path = path
        super().__init__(f"{path}: {detail}")


def duration(text: str | float) -> timedelta:
    """'90s', '15m', '2h', '1d', '-30y' (or seconds as a number)."""
    if isinstance(text, int | float):
        return timedelta(seconds=float(text))
    match = _DURATION.match(str(text).strip())
    if not match:
        raise ValueError(f"{text!r} is not a duration like 90s, 15m, 2h, 1d")
    return timedelta(seconds=float(match.group(1)) * _UNITS[match.group(2)])


class Event(BaseModel):
    """One scripted episode."""

    model_config = ConfigDict(extra="forbid")

    kind: EventKind
    station: str
    parameter: str | None = None  # one HJ 212 code; None: every parameter of the station
    start: datetime
    end: datetime | None = None  # exclusive; None for the instant events (malformed)
    value: float | None = None  # exceedance: the measured value during the episode
    factor: float | None = None  # exceedance: or this multiple of the normal value
    delay: str | None = None  # backfill: sent this long after `end`
    skew: str | None = None  # clock_skew: the logger's clock is off by this much
    count: int = Field(default=1, ge=1)  # malformed: how many bad payloads

    @model_validator(mode="after")
    def _complete(self) -> Event:
        if self.kind != "malformed" and self.end is None:
            raise ValueError(f"{self.kind} needs an end")
        if self.end is not None and self.end <= self.start:
            raise ValueError("end must be after start")
        if self.kind == "exceedance" and (self.parameter is None or (self.value is None) == (self.factor is None)):
            raise ValueError("exceedance needs a parameter and either value or factor")
        if self.kind == "flatline" and self.parameter is None:
            raise ValueError("flatline needs a parameter")
        if self.kind == "backfill":
            duration(self.delay or "")
        if self.kind == "clock_skew":
            duration(self.skew or "")
        return self

    def covers(self, ts: datetime, code: str | None = None) -> bool:
        """True when the event applies to this instant (and parameter)."""
        if code is not None and self.parameter is not None and code != self.parameter:
            return False
        return self.start <= ts < (self.end or self.start)


class Expect(BaseModel):
    """One outcome: a window's verdict, or a number of dead letters with a reason."""

    model_config = ConfigDict(extra="forbid")

    verdict: Literal["compliant", "exceedance", "insufficient_data"] | None = None
    station: str | None = None
    parameter: str | None = None
    window: Literal["hour", "day", "1h", "8h", "24h"] | None = None
    start: datetime | None = None  # the window's start (local time with offset)
    # this many dead letters with this reason; either may depend on the output format
    # ({json: invalid_json, hj212: invalid_frame}): a garbled JSON payload and a garbled frame
    # are refused for different reasons
    dead_letters: int | dict[str, int] | None = None
    reason: str | dict[str, str] | None = None

    def letters(self, fmt: str) -> tuple[str, int] | None:
        """(reason, count) for this output format; None when it expects none in that format."""
        if self.dead_letters is None or self.reason is None:
            return None
        reason = self.reason if isinstance(self.reason, str) else self.reason.get(fmt)
        count = self.dead_letters if isinstance(self.dead_letters, int) else self.dead_letters.get(fmt, 0)
        return (reason, count) if reason else None

    @model_validator(mode="after")
    def _one_kind(self) -> Expect:
        if self.verdict is not None:
            if None in (self.station, self.parameter, self.window, self.start):
                raise ValueError("a verdict expectation needs station, parameter, window and start")
        elif self.dead_letters is None or self.reason is None:
            raise ValueError(
                "an expectation is a verdict (verdict, station, parameter, window, start) "
                "or dead letters (dead_letters: N, reason)"
            )
        return self


class FleetSpec(BaseModel):
    """A generated province, or a registry file."""

    model_config = ConfigDict(extra="forbid")

    parks: int = Field(default=1, ge=1)
    stations_per_park: int = Field(default=6, ge=1)
    registry: str | None = None  # a registry file, relative to the scenario


class Scenario(BaseModel):
    """A whole scenario file."""

    model_config = ConfigDict(extra="forbid")

    name: str
    description: str = ""
    seed: int = 1
    start: datetime
    duration: str = "1d"
    interval: str = "1m"  # one minute record per station and interval
    fleet: FleetSpec = Field(default_factory=FleetSpec)
    events: list[Event] = Field(default_factory=list)
    expect: list[Expect] = Field(default_factory=list)
    strict: bool = True
    path: Path | None = Field(default=None, exclude=True)

    @field_validator("start")
    @classmethod
    def _aware(cls, value: datetime) -> datetime:
        if value.tzinfo is None:
            raise ValueError("start needs an offset, e.g. 2026-06-01T00:00:00+08:00")
        return value

    @property
    def end(self) -> datetime:
        """When the simulated span ends."""
        return self.start + duration(self.duration)

    @property
    def step(self) -> timedelta:
        """The record interval."""
        return duration(self.interval)

    def registry(self) -> RegistryFile:
        """The fleet the scenario runs."""
        if self.fleet.registry:
            base = self.path.parent if self.path else Path()
            return read_registry(base / self.fleet.registry)
        return province(parks=self.fleet.parks, stations_per_park=self.fleet.stations_per_park)


def load_scenario(path: Path) -> Scenario:
    """Read and check a scenario file: its events name stations of its fleet."""
    try:
        doc: Any = yaml.safe_load(path.read_text(encoding="utf-8"))
        scenario = Scenario.model_validate(doc)
    except (OSError, yaml.YAMLError, ValueError) as exc:
        raise ScenarioError(str(path), str(exc)) from None
    scenario.path = path
    stations = {s.id: s for s in scenario.registry().stations}
    for event in scenario.events:
        station = stations.get(event.station)
        if station is None:
            raise ScenarioError(str(path), f"event names station {event.station!r}, not in the fleet")
        if event.parameter is not None and event.parameter not in station.parameters:
            raise ScenarioError(str(path), f"{event.station} does not report {event.parameter}")
    for expect in scenario.expect:
        if expect.station is not None and expect.station not in stations:
            raise ScenarioError(str(path), f"expectation names station {expect.station!r}, not in the fleet")
    return scenario
