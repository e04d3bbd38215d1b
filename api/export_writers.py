"""Exports of readings, rollups, verdicts and alerts: their columns (zh, en), plan and rows, read in batches."""

from __future__ import annotations

import re
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass, field
from datetime import datetime, tzinfo
from typing import Any, Final, Literal, get_args
from zoneinfo import ZoneInfo

import asyncpg
import orjson

from api.errors import ApiError
from api.export_queries import (
    COUNT_ALERTS,
    COUNT_DAILY,
    COUNT_HOURLY,
    COUNT_READINGS,
    COUNT_VERDICTS,
    NO_SORT,
    SELECT_ALERTS,
    SELECT_DAILY,
    SELECT_HOURLY,
    SELECT_PARAMETER_IDS,
    SELECT_PARAMETERS,
    SELECT_PARK,
    SELECT_READINGS,
    SELECT_STATIONS,
    SELECT_VERDICTS,
)
from api.timeparams import bounds, parse_instant
from compliance.windows import HOUR_MIN_MINUTES, SOURCE_NAMES
from schemas.parameters import catalog
from schemas.readings import INTERVAL_NAMES, INTERVALS
from schemas.stations import StationKind

Kind = Literal["readings", "hourly", "daily", "verdicts", "alerts"]
Format = Literal["csv", "xlsx"]
Lang = Literal["zh", "en"]
KINDS: Final[tuple[str, ...]] = get_args(Kind)
FORMATS: Final[tuple[str, ...]] = get_args(Format)

MEDIA_TYPES: Final[dict[str, str]] = {
    "csv": "text/csv; charset=utf-8",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}
# Excel (the Chinese editions above all) reads a CSV file as the system's ANSI code page (GBK)
# unless it starts with this mark; with it, Chinese headers and station names open correctly.
BOM: Final = "\ufeff".encode()
# Rows a cursor hands over at once: ~0.5 MB of CSV, few enough round trips that the database is
# not the bottleneck, small enough that a batch in flight is nothing beside the process.
BATCH_ROWS: Final = 5_000
# Rows of an XLSX sheet (its limit, 1,048,576, less the header); beyond, a new sheet.
SHEET_ROWS: Final = 1_048_575
# A cell Excel would read as a formula when it opens a CSV file (CWE-1236): free text people
# typed (station names, who acknowledged) is prefixed with an apostrophe; codes and numbers are
# never touched.
FORMULA_START: Final = ("=", "+", "-", "@", "\t", "\r")


@dataclass(frozen=True, slots=True)
class Column:
    """One column of an export: its heading in each language, how its cells are typed and sized."""

    zh: str
    en: str
    # text | number | integer | boolean | free (text people typed: kept from becoming a formula)
    type: str = "text"
    width: float = 12.0

    def heading(self, lang: Lang) -> str:
        """The heading in `lang`."""
        return self.zh if lang == "zh" else self.en


_STATION = Column("站点编号", "Station id", width=16)
_STATION_NAME = Column("站点名称", "Station name", "free", 20)
_PARK = Column("园区编号", "Park id", width=12)
_PARAMETER = Column("监测因子", "Parameter", width=10)
_PARAMETER_NAME = Column("因子名称", "Parameter name", width=14)
_UNIT = Column("单位", "Unit", width=8)
_MIN = Column("最小值", "Min", "number")
_MAX = Column("最大值", "Max", "number")
_COUNT = Column("数据个数", "Values", "integer", 10)
_VALID_COUNT = Column("有效数据个数", "Valid values", "integer", 10)
_TIME = 27.0  # the width of an ISO 8601 time with its offset

COLUMNS: Final[dict[str, tuple[Column, ...]]] = {
    "readings": (
        _STATION, _STATION_NAME, _PARAMETER, _PARAMETER_NAME,
        Column("数据类型", "Interval", width=8),
        Column("监测时间", "Time", width=_TIME),
        Column("监测值", "Value", "number"),
        _UNIT,
        Column("数据标记", "Flag", width=8),
        _MIN, _MAX,
        Column("累计值", "Cumulative", "number"),
        Column("折算值", "Converted", "number"),
    ),
    "hourly": (
        _STATION, _STATION_NAME, _PARAMETER, _PARAMETER_NAME,
        Column("监测时间", "Hour", width=_TIME),
        Column("小时均值", "Hourly mean", "number"),
        _UNIT, _MIN, _MAX, _COUNT, _VALID_COUNT,
        Column("超量程个数", "Over range", "integer", 10),
        Column("有数据分钟数", "Minutes observed", "integer", 10),
        Column("有效分钟数", "Valid minutes", "integer", 10),
        Column("有效小时", "Valid hour", "boolean", 8),
        Column("数据来源", "Source", width=8),
    ),
    "daily": (
        _STATION, _STATION_NAME, _PARAMETER, _PARAMETER_NAME,
        Column("监测日期", "Date", width=11),
        Column("日开始时间", "Day start", width=_TIME),
        Column("日均值", "Daily mean", "number"),
        Column("流量加权日均值", "Flow-weighted mean", "number"),
        _UNIT, _MIN, _MAX, _COUNT, _VALID_COUNT,
        Column("应有小时数", "Hours expected", "integer", 10),
        Column("有数据小时数", "Hours observed", "integer", 10),
        Column("有效小时数", "Valid hours", "integer", 10),
    ),
    "verdicts": (
        _STATION, _STATION_NAME, _PARK, _PARAMETER, _PARAMETER_NAME,
        Column("评价时段", "Window", width=8),
        Column("时段开始", "Window start", width=_TIME),
        Column("时段结束", "Window end", width=_TIME),
        Column("评价结果", "Verdict", width=16),
        Column("监测值", "Value", "number"),
        Column("评价值", "Value judged", "number"),
        Column("标准限值", "Limit", "number"),
        _UNIT,
        Column("超标倍数", "Exceedance multiple", "number"),
        Column("执行标准", "Standard", width=16),
        Column("标准类别", "Class", width=12),
        Column("时段已结束", "Closed", "boolean", 8),
        Column("修订次数", "Revision", "integer", 8),
        Column("评价时间", "Judged at", width=_TIME),
        Column("结论时间", "Verdict since", width=_TIME),
    ),
    "alerts": (
        Column("报警编号", "Alert id", "integer", 10),
        _STATION, _STATION_NAME, _PARK, _PARAMETER, _PARAMETER_NAME,
        Column("报警规则", "Rule", width=24),
        Column("类别", "Family", width=14),
        Column("状态", "Status", width=9),
        Column("级别", "Severity", width=9),
        Column("开始时间", "First seen", width=_TIME),
        Column("最近时间", "Last seen", width=_TIME),
        Column("报警时间", "Raised at", width=_TIME),
        Column("解除时间", "Cleared at", width=_TIME),
        Column("解除原因", "Clear reason", width=16),
        Column("次数", "Occurrences", "integer", 8),
        Column("监测值", "Value", "number"),
        Column("限值", "Limit", "number"),
        _UNIT,
        Column("执行标准", "Standard", width=16),
        Column("超标倍数", "Exceedance multiple", "number"),
        Column("确认时间", "Acknowledged at", width=_TIME),
        Column("确认人", "Acknowledged by", "free", 14),
        Column("核实结论", "Verification", width=20),
        Column("核实时间", "Verified at", width=_TIME),
        Column("核实人", "Verified by", "free", 14),
    ),
}  # fmt: skip

# The sheet of each kind, in each language (an XLSX sheet name: at most 31 characters).
SHEETS: Final[dict[str, tuple[str, str]]] = {
    "readings": ("监测数据", "Readings"),
    "hourly": ("小时数据", "Hourly"),
    "daily": ("日数据", "Daily"),
    "verdicts": ("达标评价", "Verdicts"),
    "alerts": ("报警记录", "Alerts"),
}


def headings(kind: str, lang: Lang) -> list[str]:
    """The header row of `kind` in `lang`."""
    return [c.heading(lang) for c in COLUMNS[kind]]


@dataclass(frozen=True)
class Filters:
    """What an export asks for; the route and the command line fill it from their arguments."""

    station_ids: list[str] = field(default_factory=list)
    park_id: str | None = None
    parameters: list[str] = field(default_factory=list)
    start: str | None = None
    end: str | None = None
    # readings only: the stored interval (rtd, min, hour, day)
    interval: str | None = None
    # verdicts only
    verdicts: list[str] = field(default_factory=list)
    windows: list[str] = field(default_factory=list)
    # alerts only
    statuses: list[str] = field(default_factory=list)
    severities: list[str] = field(default_factory=list)
    rules: list[str] = field(default_factory=list)


# The filters only some kinds take, and which.
_ONLY_FOR: Final[dict[str, tuple[str, ...]]] = {
    "interval": ("readings",),
    "verdicts": ("verdicts",),
    "windows": ("verdicts",),
    "statuses": ("alerts",),
    "severities": ("alerts",),
    "rules": ("alerts",),
}
_FILTER_NAMES: Final[dict[str, str]] = {
    "verdicts": "verdict", "windows": "window", "statuses": "status", "severities": "severity", "rules": "rule",
}  # fmt: skip


@dataclass(frozen=True, slots=True)
class Station:
    """What an export writes of a station."""

    sid: int
    id: str
    park_id: str
    kind: StationKind
    name: str | None
    tz: ZoneInfo


Row = tuple[Any, ...]


@dataclass
class Plan:
    """One export made ready: the query and its arguments, how each row becomes cells, its name."""

    kind: str
    query: str
    count_query: str
    args: tuple[Any, ...]
    row: Callable[[asyncpg.Record], Row]
    zone: tzinfo
    lo: datetime | None
    hi: datetime | None
    scope: str

    def filename(self, fmt: Format) -> str:
        """parkwatch-<kind>-<station, park or all>-<from>-<to>.<format>, in characters every header takes."""
        parts = ["parkwatch", self.kind, re.sub(r"[^A-Za-z0-9._-]", "_", self.scope)]
        parts += [t.astimezone(self.zone).strftime("%Y%m%dT%H%M") for t in (self.lo, self.hi) if t is not None]
        return "-".join(parts) + f".{fmt}"


async def plan_export(
    conn: asyncpg.Connection, kind: str, filters: Filters, *, default_zone: str, fmt: Format, lang: Lang
) -> Plan:
    """Check the filters against what the connection sees and prepare the query; ApiError when they do not hold.

    Times without an offset are read in the station's zone (over several stations, `default_zone`),
    as the list routes read them; the rows' cells are made for `fmt`, parameter names in `lang`.
    """
    if kind not in KINDS:
        raise ApiError(404, "unknown_export", f"no export {kind!r}; there are {', '.join(KINDS)}")
    for name, kinds in _ONLY_FOR.items():
        if getattr(filters, name) and kind not in kinds:
            shown = _FILTER_NAMES.get(name, name)
            raise ApiError(422, "bad_filter", f"{shown} applies to the {' and '.join(kinds)} export only")
    if filters.interval is not None and filters.interval not in INTERVALS:
        raise ApiError(422, "bad_filter", f"interval is one of {', '.join(INTERVALS)}")
    stations = await _stations(conn, filters.station_ids, filters.park_id)
    pids = await _parameter_ids(conn, filters.parameters)
    names = {
        r["pid"]: (r["code"], r["name_zh"] if lang == "zh" else r["name"]) for r in await conn.fetch(SELECT_PARAMETERS)
    }
    ctx = _Context(stations, names, _no_formula if fmt == "csv" else _same, _csv_bool if fmt == "csv" else _same)
    only = next(iter(stations.values())) if len(stations) == 1 else None
    zone = only.tz if only is not None else ZoneInfo(default_zone)
    scope = (
        only.id
        if only is not None and filters.station_ids
        else filters.park_id or ("stations" if filters.station_ids else "all")
    )
    sids = list(stations)
    if kind == "alerts":
        lo = parse_instant(filters.start, "start", zone) if filters.start else None
        hi = parse_instant(filters.end, "end", zone) if filters.end else None
        if lo is not None and hi is not None and lo >= hi:
            raise ApiError(422, "bad_time", "start must be before end")
        asked = bool(filters.station_ids or filters.park_id)
        args: tuple[Any, ...] = (
            sids if asked else None, filters.park_id, pids, lo, hi,
            filters.statuses or None, filters.severities or None, filters.rules or None,
        )  # fmt: skip
        row = _alert_row(ctx, ZoneInfo(default_zone))
        return Plan(kind, SELECT_ALERTS, COUNT_ALERTS, args, row, zone, lo, hi, scope)
    lo, hi = bounds(filters.start, filters.end, zone)
    queries = {
        "readings": (SELECT_READINGS, COUNT_READINGS, _reading_row),
        "hourly": (SELECT_HOURLY, COUNT_HOURLY, _hour_row),
        "daily": (SELECT_DAILY, COUNT_DAILY, _day_row),
        "verdicts": (SELECT_VERDICTS, COUNT_VERDICTS, _verdict_row),
    }
    query, count_query, make_row = queries[kind]
    args = (sids, pids)
    if kind == "readings":
        args += (INTERVALS[filters.interval] if filters.interval else None,)
    args += (lo, hi)
    if kind == "verdicts":
        args += (filters.verdicts or None, filters.windows or None)
    return Plan(kind, query, count_query, args, make_row(ctx), zone, lo, hi, scope)


async def _stations(conn: asyncpg.Connection, station_ids: list[str], park_id: str | None) -> dict[int, Station]:
    rows = await conn.fetch(SELECT_STATIONS, station_ids or None, park_id)
    # A station or park outside the caller's scope is invisible, so it is "not registered" as
    # well: the answer does not tell one from the other.
    missing = sorted(set(station_ids) - {r["id"] for r in rows})
    if missing:
        raise ApiError(404, "unknown_station", f"not registered: {', '.join(missing)}")
    if (
        park_id is not None
        and not any(r["park_id"] == park_id for r in rows)
        and not await conn.fetchval(SELECT_PARK, park_id)
    ):
        raise ApiError(404, "unknown_park", f"park {park_id!r} is not registered")
    return {
        r["sid"]: Station(r["sid"], r["id"], r["park_id"], StationKind(r["kind"]), r["name"], ZoneInfo(r["timezone"]))
        for r in rows
    }


async def _parameter_ids(conn: asyncpg.Connection, names: list[str]) -> list[int] | None:
    if not names:
        return None
    codes = [catalog().resolve_any(n) or n for n in names]
    found = {r["code"]: r["pid"] for r in await conn.fetch(SELECT_PARAMETER_IDS, codes)}
    unknown = [n for n, c in zip(names, codes, strict=True) if c not in found]
    if unknown:
        raise ApiError(422, "unknown_parameter", f"unknown parameter code or alias: {', '.join(unknown)}")
    return [found[c] for c in codes]


# -- rows ----------------------------------------------------------------------------------------


def _same(value: Any) -> Any:
    return value


def _no_formula(value: Any) -> Any:
    return "'" + value if isinstance(value, str) and value.startswith(FORMULA_START) else value


def _csv_bool(value: Any) -> Any:
    return None if value is None else ("true" if value else "false")


Labels = tuple[str, Any, str, str | None, str | None, tzinfo]


@dataclass(frozen=True)
class _Context:
    """What the rows of one export are made with."""

    stations: dict[int, Station]
    # pid → (code, name in the export's language)
    names: dict[int, tuple[str, str | None]]
    # free text people typed, as the format must have it (CSV: never a formula)
    free: Callable[[Any], Any]
    # a boolean, as the format writes it (CSV: true, false)
    boolean: Callable[[Any], Any]

    def labels(self) -> Callable[[int, int], Labels]:
        """(station id, station name, code, parameter name, unit, zone) of a series, worked out once a series."""
        memo: dict[tuple[int, int], Labels] = {}

        def labels(sid: int, pid: int) -> Labels:
            got = memo.get((sid, pid))
            if got is None:
                station = self.stations[sid]
                code, name = self.names.get(pid, (str(pid), None))
                param = catalog().by_code.get(code)
                unit = (param.unit_for(station.kind) or None) if param else None
                got = memo[(sid, pid)] = (station.id, self.free(station.name), code, name, unit, station.tz)
            return got

        return labels


def _local(ts: datetime | None, tz: tzinfo) -> str | None:
    return ts.astimezone(tz).isoformat() if ts is not None else None


def _reading_row(ctx: _Context) -> Callable[[asyncpg.Record], Row]:
    labels = ctx.labels()

    def row(r: asyncpg.Record) -> Row:
        sid, pid, iv, ts, value, flag, vmin, vmax, cou, zs = r
        station, station_name, code, pname, unit, tz = labels(sid, pid)
        return (
            station, station_name, code, pname, INTERVAL_NAMES.get(iv, iv), ts.astimezone(tz).isoformat(),
            value, unit, flag, vmin, vmax, cou, zs,
        )  # fmt: skip

    return row


def _hour_row(ctx: _Context) -> Callable[[asyncpg.Record], Row]:
    labels = ctx.labels()
    water = {
        s.sid for s in ctx.stations.values() if s.kind in (StationKind.WASTEWATER_OUTLET, StationKind.WASTEWATER_INLET)
    }
    boolean = ctx.boolean

    def row(r: asyncpg.Record) -> Row:
        sid, pid, hour, avg, vmin, vmax, n_obs, n_valid, n_over, observed, valid_minutes, source_iv = r
        station, station_name, code, pname, unit, tz = labels(sid, pid)
        # as /readings?interval=hour says it: ≥ 45 valid minutes (HJ 75, GB 3095), or at a water
        # outlet one valid analyser value
        valid = n_valid > 0 if sid in water else valid_minutes >= HOUR_MIN_MINUTES
        return (
            station, station_name, code, pname, hour.astimezone(tz).isoformat(), avg, unit, vmin, vmax, n_obs,
            n_valid, n_over, observed, valid_minutes, boolean(valid), SOURCE_NAMES.get(source_iv, str(source_iv)),
        )  # fmt: skip

    return row


def _day_row(ctx: _Context) -> Callable[[asyncpg.Record], Row]:
    labels = ctx.labels()

    def row(r: asyncpg.Record) -> Row:
        sid, pid, day, day_start, avg, flow_weighted, vmin, vmax, n_obs, n_valid, expected, observed, valid = r
        station, station_name, code, pname, unit, tz = labels(sid, pid)
        return (
            station, station_name, code, pname, day.isoformat(), day_start.astimezone(tz).isoformat(), avg,
            flow_weighted, unit, vmin, vmax, n_obs, n_valid, expected, observed, valid,
        )  # fmt: skip

    return row


def _limit(value: str | None) -> Any:
    """A verdict's limit: a number as a number, a range ([6, 9]) as its JSON text."""
    if value is None:
        return None
    parsed = orjson.loads(value)
    return parsed if isinstance(parsed, int | float) and not isinstance(parsed, bool) else value


def _verdict_row(ctx: _Context) -> Callable[[asyncpg.Record], Row]:
    labels = ctx.labels()
    boolean = ctx.boolean

    def row(r: asyncpg.Record) -> Row:
        (sid, pid, window, start, end, verdict, value, judged, limit, unit, multiple, standard, klass, closed,
         revision, judged_at, since) = r  # fmt: skip
        station, station_name, code, pname, _, tz = labels(sid, pid)
        return (
            station, station_name, ctx.stations[sid].park_id, code, pname, window,
            start.astimezone(tz).isoformat(), end.astimezone(tz).isoformat(), verdict, value, judged, _limit(limit),
            unit, multiple, standard, klass, boolean(closed), revision, _local(judged_at, tz), _local(since, tz),
        )  # fmt: skip

    return row


def _alert_row(ctx: _Context, default_zone: tzinfo) -> Callable[[asyncpg.Record], Row]:
    free = ctx.free

    def row(r: asyncpg.Record) -> Row:
        station = ctx.stations.get(r["sid"]) if r["sid"] is not None else None
        # a park's own alert has no station: its times in the province's zone
        tz = station.tz if station is not None else default_zone
        code, name = ctx.names.get(r["pid"], (None, None)) if r["pid"] is not None else (None, None)
        return (
            r["id"],
            station.id if station else None,
            free(station.name) if station else None,
            station.park_id if station else r["park"],
            code,
            name,
            r["rule"],
            r["family"],
            r["status"],
            r["severity"],
            _local(r["first_seen"], tz),
            _local(r["last_seen"], tz),
            _local(r["raised_at"], tz),
            _local(r["cleared_at"], tz),
            r["clear_reason"],
            r["occurrences"],
            r["value"],
            r["limit_value"],
            r["unit"],
            r["standard"],
            r["exceedance_multiple"],
            _local(r["acked_at"], tz),
            free(r["acked_by"]),
            r["verification"],
            _local(r["verified_at"], tz),
            free(r["verified_by"]),
        )

    return row


# -- reading ---------------------------------------------------------------------------------------


async def batches(
    conn: asyncpg.Connection, plan: Plan, *, batch_rows: int = BATCH_ROWS
) -> AsyncGenerator[list[asyncpg.Record]]:
    """The export's rows, a batch at a time, from a server-side cursor in one read-only snapshot."""
    async with conn.transaction(readonly=True, isolation="repeatable_read"):
        await conn.execute(NO_SORT)
        cursor = await conn.cursor(plan.query, *plan.args)
        while rows := await cursor.fetch(batch_rows):
            yield rows


async def count(conn: asyncpg.Connection, plan: Plan) -> int:
    """How many rows the export has (for a progress bar: it costs a pass over the rows)."""
    return int(await conn.fetchval(plan.count_query, *plan.args))
