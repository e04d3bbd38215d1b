"""Station compliance profiles as the worker reads them from the registry tables."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg

from compliance.context import Context, JudgementError
from compliance.judge import standard_for
from schemas.catalogue import Standard
from schemas.stations import StationKind

SELECT_PROFILES = """
SELECT s.sid, s.id, s.park_id, s.kind, s.timezone, s.attrs, i.sid AS inlet_sid
FROM stations s
LEFT JOIN stations i ON i.id = s.attrs->>'inlet'
"""
SELECT_CODES = "SELECT pid, code FROM parameters"
# Cheap change detector: the worker reloads profiles when this moves.
SELECT_REGISTRY_VERSION = "SELECT count(*), max(updated_at) FROM stations"


@dataclass(frozen=True)
class Profile:
    """What judging one station needs: its kind, clock, standard and class, permit limits, context."""

    sid: int
    id: str
    park_id: str
    kind: StationKind
    tz: ZoneInfo
    standard: str | None = None
    cls: str | None = None
    limits: dict[str, float] = field(default_factory=dict)
    construction_date: date | None = None
    sector: str | None = None
    capacity_t_h: float | None = None
    inlet_sid: int | None = None
    min_interval: int = 1

    @classmethod
    def from_record(cls, r: Mapping[str, Any] | asyncpg.Record) -> Profile:
        """From a stations row joined to its inlet."""
        attrs = r["attrs"]
        if isinstance(attrs, str):
            attrs = json.loads(attrs)
        built = attrs.get("construction_date")
        return cls(
            sid=r["sid"],
            id=r["id"],
            park_id=r["park_id"],
            kind=StationKind(r["kind"]),
            tz=ZoneInfo(r["timezone"]),
            standard=attrs.get("standard"),
            cls=None if attrs.get("class") is None else str(attrs["class"]),
            limits={str(k): float(v) for k, v in (attrs.get("limits") or {}).items()},
            construction_date=date.fromisoformat(built) if built else None,
            sector=attrs.get("sector"),
            capacity_t_h=float(attrs["capacity_t_h"]) if attrs.get("capacity_t_h") is not None else None,
            inlet_sid=r["inlet_sid"],
            min_interval=int(attrs.get("min_interval") or 1),
        )

    @property
    def medium(self) -> str:
        """stack, ambient or water: which averaging rules apply."""
        if self.kind is StationKind.STACK:
            return "stack"
        if self.kind is StationKind.AMBIENT_AIR:
            return "ambient"
        return "water"

    def standard_on(self, on: date) -> Standard | None:
        """The edition of the station's standard in force on a date; None without one."""
        if self.standard is None:
            return None
        try:
            return standard_for(self.standard, on)
        except JudgementError:
            return None  # no edition in force that day: nothing to judge against

    def context(self) -> Context:
        """The facts of the station itself; the day's water temperature and influent are added per day."""
        return Context(construction_date=self.construction_date, sector=self.sector, capacity_t_h=self.capacity_t_h)


@dataclass
class Profiles:
    """Every station's profile and the parameter codes, reloaded when the registry changes."""

    by_sid: dict[int, Profile] = field(default_factory=dict)
    codes: dict[int, str] = field(default_factory=dict)
    pids: dict[str, int] = field(default_factory=dict)
    outlets_of: dict[int, list[int]] = field(default_factory=dict)  # inlet sid → outlets judged with it
    version: tuple[Any, ...] | None = None

    async def refresh(self, conn: asyncpg.Connection, *, force: bool = False) -> bool:
        """Reload when stations changed (or when forced); True when reloaded."""
        row = await conn.fetchrow(SELECT_REGISTRY_VERSION)
        version = tuple(row) if row is not None else None
        if not force and version == self.version:
            return False
        self.by_sid = {r["sid"]: Profile.from_record(r) for r in await conn.fetch(SELECT_PROFILES)}
        self.codes = {r["pid"]: r["code"] for r in await conn.fetch(SELECT_CODES)}
        self.pids = {code: pid for pid, code in self.codes.items()}
        self.outlets_of = {}
        for p in self.by_sid.values():
            if p.inlet_sid is not None:
                self.outlets_of.setdefault(p.inlet_sid, []).append(p.sid)
        self.version = version
        return True
