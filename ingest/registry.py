"""The registry as the ingest sees it: an in-memory snapshot of stations and parameter ids."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg

from schemas.parameters import catalog
from schemas.registry import RegistryFile
from schemas.stations import CrcVariant, StationKind
from schemas.units import UnitError, converter, normalise

logger = logging.getLogger(__name__)

# NOTIFY channel `stations load` signals on, so a running ingest sees new stations at once.
REGISTRY_CHANNEL = "parkwatch_registry"
# The registry as last read from the database, kept in the spool folder so that an ingest started
# during a database outage still validates; its presence also shows the ingest has run here before.
REGISTRY_CACHE = "registry-cache.json"

SELECT_STATIONS = """
SELECT s.sid, s.id, s.park_id, s.kind, s.mn, s.timezone, s.pw, s.crc, s.sm4_key,
       coalesce(s.attrs->'ranges', '{}') AS ranges,
       coalesce((s.attrs->'hj212'->>'strict_codes')::boolean, false) AS strict_codes,
       coalesce(array_agg(p.code ORDER BY p.code) FILTER (WHERE p.code IS NOT NULL), '{}') AS codes,
       coalesce(jsonb_object_agg(p.code, sp.unit) FILTER (WHERE sp.unit IS NOT NULL), '{}') AS units
FROM stations s
LEFT JOIN station_parameters sp ON sp.sid = s.sid
LEFT JOIN parameters p ON p.pid = sp.pid
GROUP BY s.sid
"""
SELECT_PARAMETERS = "SELECT code, pid FROM parameters"
# Parameter names remembered per station (known ones always), and the longest worth remembering.
MAX_CACHED_NAMES = 512
MAX_NAME_LENGTH = 64
# Codes outside the HJ 212 tables registered as devices send them, at most (parameters.pid is a
# smallint: 32,767 in all). Past it, a new code's values are refused as unknown_parameter.
MAX_CODES_OUTSIDE_CATALOGUE = 5000

UPSERT_PARK = """
INSERT INTO parks (id, name, city, attrs) VALUES ($1, $2, $3, $4)
ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name, city = EXCLUDED.city, attrs = EXCLUDED.attrs,
    updated_at = now()
WHERE (parks.name, parks.city, parks.attrs) IS DISTINCT FROM (EXCLUDED.name, EXCLUDED.city, EXCLUDED.attrs)
"""
UPSERT_STATION = """
INSERT INTO stations (id, park_id, kind, name, mn, timezone, attrs, pw, crc, sm4_key)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
ON CONFLICT (id) DO UPDATE SET park_id = EXCLUDED.park_id, kind = EXCLUDED.kind, name = EXCLUDED.name,
    mn = EXCLUDED.mn, timezone = EXCLUDED.timezone, attrs = EXCLUDED.attrs, pw = EXCLUDED.pw,
    crc = EXCLUDED.crc, sm4_key = EXCLUDED.sm4_key, updated_at = now()
RETURNING sid
"""
# Only codes not yet there are offered to the INSERT: PostgreSQL draws the id (a smallint
# sequence) before it finds the conflict, so offering every code of every station at each load
# would use up the 32,767 ids in a few loads of a large registry.
INSERT_VENDOR_PARAMETERS = """
INSERT INTO parameters (code, in_catalogue)
SELECT DISTINCT c, false FROM unnest($1::text[]) AS c
WHERE NOT EXISTS (SELECT 1 FROM parameters p WHERE p.code = c)
ON CONFLICT (code) DO NOTHING
"""
DELETE_STATION_PARAMETERS = "DELETE FROM station_parameters WHERE sid = $1"
INSERT_STATION_PARAMETERS = """
INSERT INTO station_parameters (sid, pid, unit)
SELECT $1, p.pid, u.unit FROM unnest($2::text[], $3::text[]) AS u(code, unit)
JOIN parameters p ON p.code = u.code
"""
ENSURE_PARAMETERS = """
WITH new AS (
    SELECT DISTINCT c FROM unnest($1::text[]) AS c
    WHERE NOT EXISTS (SELECT 1 FROM parameters p WHERE p.code = c)
)
INSERT INTO parameters (code, in_catalogue)
SELECT c, false FROM new
WHERE (SELECT count(*) FROM parameters WHERE NOT in_catalogue) + (SELECT count(*) FROM new) <= $2
ON CONFLICT (code) DO NOTHING
"""
SELECT_PIDS = "SELECT code, pid FROM parameters WHERE code = any($1::text[])"
SELECT_PARK_IDS = "SELECT id FROM parks WHERE id = any($1::text[])"
SELECT_MN_OWNERS = "SELECT mn, id FROM stations WHERE mn = any($1::text[])"


class RegistryLoadError(Exception):
    """The registry file is consistent on its own but not with the database."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("; ".join(problems))


@dataclass(frozen=True, slots=True)
class ParamSlot:
    """How one reported parameter name maps onto storage at one station."""

    pid: int
    code: str
    unit: str  # stored unit ("" for dimensionless or vendor codes)


@dataclass(slots=True)
class StationInfo:
    """One registered station, with lookups the validator needs on every reading."""

    sid: int
    id: str
    park_id: str
    kind: StationKind
    mn: str | None
    tz: ZoneInfo
    declared: frozenset[str]
    report_units: dict[str, str]
    pw: str | None = None
    crc: CrcVariant = CrcVariant.HJ212
    ranges: dict[str, tuple[float, float]] = field(default_factory=dict)  # instrument ranges by code
    strict_codes: bool = False  # HJ 212 values of undeclared codes refused (schemas/registry.py Hj212Profile)
    sm4_key: bytes | None = None  # HJ 212-2025 encryption key (ingest/hj212/sm4.py)
    _slots: dict[str, ParamSlot | None] = field(default_factory=dict)
    _factors: dict[tuple[str, str], float] = field(default_factory=dict)

    @classmethod
    def from_record(cls, r: Mapping[str, Any] | asyncpg.Record) -> StationInfo:
        """Build from a SELECT_STATIONS row or its cached JSON form (the same keys)."""
        units = r["units"]
        ranges = r.get("ranges")  # absent from caches written before instrument ranges existed
        if isinstance(ranges, str):
            ranges = json.loads(ranges)
        return cls(
            sid=r["sid"],
            id=r["id"],
            park_id=r["park_id"],
            kind=StationKind(r["kind"]),
            mn=r["mn"],
            tz=ZoneInfo(r["timezone"]),
            declared=frozenset(r["codes"]),
            report_units=units if isinstance(units, dict) else json.loads(units),
            pw=r["pw"],
            crc=CrcVariant(r["crc"]),
            ranges={code: (float(lo), float(hi)) for code, (lo, hi) in (ranges or {}).items()},
            strict_codes=bool(r.get("strict_codes", False)),  # absent from older caches
            sm4_key=bytes.fromhex(r["sm4_key"]) if r.get("sm4_key") else None,
        )

    def as_record(self) -> dict[str, Any]:
        """The JSON form from_record reads back."""
        return {
            "sid": self.sid,
            "id": self.id,
            "park_id": self.park_id,
            "kind": self.kind.value,
            "mn": self.mn,
            "timezone": self.tz.key,
            "codes": sorted(self.declared),
            "units": self.report_units,
            "pw": self.pw,
            "crc": self.crc.value,
            "ranges": {code: list(r) for code, r in self.ranges.items()},
            "strict_codes": self.strict_codes,
            "sm4_key": self.sm4_key.hex() if self.sm4_key else None,
        }

    def slot(self, name: str, pids: dict[str, int]) -> ParamSlot | None:
        """The storage slot for a reported parameter name, or None if it is unknown here."""
        try:
            return self._slots[name]
        except KeyError:
            pass
        code = catalog().resolve(name, self.kind)
        if code is None and name in self.declared:
            code = name
        result = None
        if code is not None and code in pids:
            param = catalog().by_code.get(code)
            result = ParamSlot(pid=pids[code], code=code, unit=param.unit_for(self.kind) if param else "")
        # Names a station sends are few; unknown ones are whatever a sender makes up, so they are
        # remembered only up to a bound (a flood of made-up names once took 689 MB).
        if result is not None or (len(name) <= MAX_NAME_LENGTH and len(self._slots) < MAX_CACHED_NAMES):
            self._slots[name] = result
        return result

    def factor(self, slot: ParamSlot, unit: str | None) -> float:
        """Multiplier from the reported unit (or the station's default) to the stored unit."""
        reported = unit if unit is not None else self.report_units.get(slot.code)
        if reported is None:
            return 1.0
        key = (slot.code, reported)
        cached = self._factors.get(key)
        if cached is not None:
            return cached
        if slot.code not in catalog().by_code:
            # A vendor code is stored in the unit the registry declares for it, as reported.
            declared = self.report_units.get(slot.code)
            if declared is not None and normalise(declared) == normalise(reported):
                return 1.0
            raise UnitError(reported, declared or "", slot.code)
        value = converter(reported, slot.unit, slot.code, stack=self.kind is StationKind.STACK)
        self._factors[key] = value
        return value


@dataclass(frozen=True, slots=True)
class Registry:
    """An immutable snapshot; the ingest swaps in a new one when the registry changes."""

    stations: dict[str, StationInfo]
    by_mn: dict[str, StationInfo]
    pids: dict[str, int]

    @classmethod
    def empty(cls) -> Registry:
        """A registry with nothing in it."""
        return cls({}, {}, {})

    @classmethod
    def of(cls, stations: list[StationInfo], pids: dict[str, int]) -> Registry:
        """A snapshot of these stations, indexed by id and by MN."""
        return cls(stations={s.id: s for s in stations}, by_mn={s.mn: s for s in stations if s.mn}, pids=pids)


async def fetch_registry(conn: asyncpg.Connection) -> Registry:
    """Read the whole registry from the database."""
    pids = {r["code"]: r["pid"] for r in await conn.fetch(SELECT_PARAMETERS)}
    return Registry.of([StationInfo.from_record(r) for r in await conn.fetch(SELECT_STATIONS)], pids)


async def ensure_parameters(conn: asyncpg.Connection, codes: list[str]) -> dict[str, int]:
    """Ids for these codes, registering unknown ones as codes outside the catalogue while under the bound."""
    await conn.execute(ENSURE_PARAMETERS, codes, MAX_CODES_OUTSIDE_CATALOGUE)
    return {r["code"]: r["pid"] for r in await conn.fetch(SELECT_PIDS, codes)}


SELECT_STATION_KINDS = "SELECT id, kind FROM stations WHERE id = any($1::text[])"
LIST_STATIONS = "SELECT id, park_id, kind, mn, timezone FROM stations ORDER BY id"


async def list_stations(conn: asyncpg.Connection) -> list[asyncpg.Record]:
    """Every registered station, by id: what `parkwatch stations list` shows."""
    return list(await conn.fetch(LIST_STATIONS))


async def load_registry_file(conn: asyncpg.Connection, registry: RegistryFile) -> dict[str, int]:
    """Upsert the file's parks and stations in one transaction; returns counts."""
    async with conn.transaction():
        problems = []
        park_ids = {p.id for p in registry.parks}
        wanted = sorted({s.park_id for s in registry.stations} - park_ids)
        if wanted:
            known = {r["id"] for r in await conn.fetch(SELECT_PARK_IDS, wanted)}
            problems += [
                f"station park_id {p!r} is neither in the file nor registered" for p in wanted if p not in known
            ]
        mns = [s.mn for s in registry.stations if s.mn]
        owners = {r["mn"]: r["id"] for r in await conn.fetch(SELECT_MN_OWNERS, mns)}
        for s in registry.stations:
            if s.mn and owners.get(s.mn, s.id) != s.id:
                problems.append(f"station {s.id!r}: mn {s.mn!r} already belongs to station {owners[s.mn]!r}")
        in_file = {s.id for s in registry.stations}
        outside = sorted({s.discharges_to for s in registry.stations if s.discharges_to} - in_file)
        if outside:
            inlets = {r["id"]: r["kind"] for r in await conn.fetch(SELECT_STATION_KINDS, outside)}
            problems += [
                f"discharges_to {plant!r} is {'not registered' if plant not in inlets else 'not a wastewater inlet'}"
                for plant in outside
                if inlets.get(plant) != "wastewater_inlet"
            ]
        if problems:
            raise RegistryLoadError(problems)
        await conn.execute(INSERT_VENDOR_PARAMETERS, sorted({c for st in registry.stations for c in st.parameters}))
        for park in registry.parks:
            await conn.execute(UPSERT_PARK, park.id, park.name, park.city, json.dumps(park.attrs(), ensure_ascii=False))
        for st in registry.stations:
            sid = await conn.fetchval(
                UPSERT_STATION,
                st.id,
                st.park_id,
                st.kind.value,
                st.name,
                st.mn,
                st.timezone,
                json.dumps(st.attrs(), ensure_ascii=False),
                st.pw,
                st.crc.value,
                st.sm4_key,
            )
            await conn.execute(DELETE_STATION_PARAMETERS, sid)
            await conn.execute(INSERT_STATION_PARAMETERS, sid, st.parameters, [st.units.get(c) for c in st.parameters])
        await conn.execute("SELECT pg_notify($1, 'load')", REGISTRY_CHANNEL)
    return {"parks": len(registry.parks), "stations": len(registry.stations)}


class RegistryWatcher:
    """Keeps a Registry snapshot current: LISTEN for changes, plus a periodic re-read.

    Each snapshot read from the database is also saved to a cache file, so an ingest that
    starts while PostgreSQL is down can still validate (and spool) what stations send.
    """

    # A NOTIFY can be missed while the connection is down; a re-read this often bounds how long
    # a newly registered station could still be refused as unknown in that case.
    REFRESH_INTERVAL = 30.0

    def __init__(self, *, cache_path: Path | None = None) -> None:
        self.current = Registry.empty()
        self._cache_path = cache_path
        self._changed = asyncio.Event()

    def _on_notify(self, *_args: object) -> None:
        self._changed.set()

    async def refresh(self, conn: asyncpg.Connection) -> None:
        """Re-read the registry now."""
        self.current = await fetch_registry(conn)
        self._save_cache()
        logger.debug("registry refreshed: %d stations", len(self.current.stations))

    def _save_cache(self) -> None:
        if self._cache_path is None:
            return
        doc = {"pids": self.current.pids, "stations": [s.as_record() for s in self.current.stations.values()]}
        tmp = self._cache_path.with_suffix(".tmp")
        try:
            # It holds stations' passwords and SM4 keys: readable by this user only.
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                out.write(json.dumps(doc, ensure_ascii=False))
            tmp.chmod(0o600)  # a leftover tmp from an older version may have had wider rights
            tmp.replace(self._cache_path)
        except OSError as exc:
            logger.warning("cannot save the registry cache %s: %s", self._cache_path, exc)

    def load_cache(self) -> bool:
        """Load the last saved snapshot; False when there is none."""
        if self._cache_path is None or not self._cache_path.exists():
            return False
        try:
            doc = json.loads(self._cache_path.read_text())
            self.current = Registry.of([StationInfo.from_record(d) for d in doc["stations"]], doc["pids"])
        except (OSError, ValueError, KeyError) as exc:
            logger.warning("registry cache %s unreadable: %s", self._cache_path, exc)
            return False
        return True

    async def run(self, conn: asyncpg.Connection, *, on_loaded: Callable[[], None] | None = None) -> None:
        """Follow registry changes on this (dedicated) connection until it fails or is cancelled."""
        await conn.add_listener(REGISTRY_CHANNEL, self._on_notify)
        try:
            while True:
                self._changed.clear()  # before the read, so a NOTIFY during it is not lost
                await self.refresh(conn)
                if on_loaded is not None:
                    on_loaded()
                try:
                    async with asyncio.timeout(self.REFRESH_INTERVAL):
                        await self._changed.wait()
                except TimeoutError:
                    pass
        finally:
            if not conn.is_closed():
                with contextlib.suppress(Exception):
                    await conn.remove_listener(REGISTRY_CHANNEL, self._on_notify)
