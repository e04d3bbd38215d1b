"""Exports (docs/exports.md): CSV and XLSX of every kind, zh and en headings, values that round-trip, scope, errors, the CLI."""

from __future__ import annotations

import asyncio
import csv
import io
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
import httpx
import openpyxl
import orjson
import pytest

from api import export_csv, export_writers, export_xlsx
from api.routes import exports as export_route
from parkwatch import export_cmd
from parkwatch.settings import Settings
from tests.helpers import cli_env, fetch, run_cli, serving_api

CST = ZoneInfo("Asia/Shanghai")
URUMQI = ZoneInfo("Asia/Urumqi")
T0 = datetime(2026, 10, 1, tzinfo=UTC)  # 08:00 in Changsha
MINUTES = 12_000  # more than two cursor batches: rows keep coming long after the response began
SPAN = {"start": "2026-10-01T00:00:00+08:00", "end": "2026-10-10T08:00:00+08:00"}


def _value(sid: int, m: int) -> float:
    """A value that needs all of a double's digits to come back equal."""
    return round(sid * 1000 + m / 7, 12) + 1e-9


async def _seed(url: str) -> dict[str, Any]:
    """Readings of p1-stack (SO2, many) and p2-out (COD), rollups, verdicts and alerts of both parks."""
    conn = await asyncpg.connect(url)
    try:
        sids = {r["id"]: r["sid"] for r in await conn.fetch("SELECT id, sid FROM stations")}
        pids = {r["code"]: r["pid"] for r in await conn.fetch("SELECT code, pid FROM parameters")}
        await conn.execute("SET session_replication_role = replica")  # no alert inbox for synthetic verdicts
        await conn.execute("UPDATE stations SET name = $2 WHERE id = $1", "p1-stack", "=1+2 窑尾")
        await conn.execute(
            """INSERT INTO readings (sid, pid, iv, ts, value, flag, vmin, vmax, cou, zs)
               SELECT $1, $2, 1, $3::timestamptz + m * interval '1 minute', round($1 * 1000 + m / 7.0, 12) + 1e-9, 'N',
                      NULL, NULL, NULL, CASE WHEN m = 0 THEN 12.5 END
               FROM generate_series(0, $4 - 1) AS m""",
            sids["p1-stack"], pids["a21026"], T0, MINUTES,
        )  # fmt: skip
        await conn.execute(
            """INSERT INTO readings (sid, pid, iv, ts, value, flag) VALUES ($1, $2, 1, $3, 42.0, 'N'),
               ($1, $2, 2, $3, 41.5, 'N')""",
            sids["p2-out"], pids["w01018"], T0,
        )  # fmt: skip
        for station, code in (("p1-stack", "a21026"), ("p2-out", "w01018")):
            sid, pid = sids[station], pids[code]
            await conn.execute(
                """INSERT INTO rollup_hour (sid, pid, hour, source_iv, n_observed, n_valid, n_over_range,
                   observed_minutes, valid_minutes, measured_minutes, avg, vmin, vmax, avg_lower)
                   VALUES ($1, $2, $3::timestamptz, 1, 60, 58, 0, 60, 58, 58, 101.25, 90, 110, 101.25),
                          ($1, $2, $3::timestamptz + interval '1 hour', 1, 40, 40, 0, 40, 40, 40, 99.5, 95, 104, 99.5)""",
                sid, pid, T0,
            )  # fmt: skip
            await conn.execute(
                """INSERT INTO rollup_day (sid, pid, day, day_start, hours_expected, hours_observed, hours_valid,
                   n_observed, n_valid, avg, avg_flow_weighted, vmin, vmax)
                   VALUES ($1, $2, '2026-10-01', '2026-10-01T00:00:00+08:00', 24, 20, 19, 1200, 1100, 100.5, NULL,
                   80, 120)""",
                sid, pid,
            )  # fmt: skip
            await conn.execute(
                """INSERT INTO verdicts (sid, pid, window_kind, window_start, window_end, standard, class, verdict,
                   value, value_judged, limit_value, unit, exceedance_multiple, rule, coverage, closed, verdict_since)
                   VALUES ($1, $2, 'hour', $3::timestamptz, $3::timestamptz + interval '1 hour', 'GB4915-2013', 'kiln', 'exceedance',
                   250.0, 260.0, '200', 'mg/m3', 0.3, '{}', '{}', true, $3::timestamptz + interval '50 minutes'),
                   ($1, $2, 'day', $3, $3::timestamptz + interval '1 day', 'GB8978-1996', '1', 'compliant',
                   7.0, 7.0, '[6, 9]', NULL, NULL, '{}', '{}', false, $3::timestamptz)""",
                sid, pid, T0,
            )  # fmt: skip
            await conn.execute(
                """INSERT INTO alerts (sid, pid, rule, family, status, severity, first_seen, last_seen, value,
                   limit_value, unit, acked_at, acked_by)
                   VALUES ($1, $2, 'exceedance.hour', 'exceedance', 'active', 'major', $3, $3::timestamptz + interval '1 hour',
                   250.0, 200.0, 'mg/m3', $3::timestamptz + interval '2 hours', '@ops 张三')""",
                sid, pid, T0,
            )  # fmt: skip
        await conn.execute(
            """INSERT INTO alerts (park, rule, family, status, severity, first_seen, last_seen)
               VALUES ('p1', 'kpi.transmission_rate', 'data_quality', 'active', 'warning', $1, $1)""",
            T0,
        )
    finally:
        await conn.close()
    return {"sids": sids, "pids": pids}


@pytest.fixture
async def seeded(settings: Settings, registry: None) -> dict[str, Any]:
    """The test registry with readings, rollups, verdicts and alerts."""
    return await _seed(settings.DATABASE_URL)


@pytest.fixture
async def admin(settings: Settings, seeded: dict[str, Any]) -> AsyncIterator[httpx.AsyncClient]:
    """The API served, with an administrator's key."""
    async with serving_api(settings, None) as client:
        yield client


def _csv(resp: httpx.Response, *, bom: bool = True) -> list[list[str]]:
    body = resp.content
    assert body.startswith(export_writers.BOM) == bom
    return list(csv.reader(io.StringIO(body.decode("utf-8-sig"))))


async def test_readings_csv_round_trip(admin: httpx.AsyncClient, seeded: dict[str, Any]) -> None:
    resp = await admin.get("/api/v1/exports/readings", params={"station_id": "p1-stack", **SPAN})
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"] == "text/csv; charset=utf-8"
    assert resp.headers["content-disposition"] == (
        'attachment; filename="parkwatch-readings-p1-stack-20261001T0000-20261010T0800.csv"'
    )
    assert resp.headers["cache-control"] == "no-store"
    rows = _csv(resp)
    assert rows[0] == [
        "站点编号", "站点名称", "监测因子", "因子名称", "数据类型", "监测时间", "监测值", "单位", "数据标记",
        "最小值", "最大值", "累计值", "折算值",
    ]  # fmt: skip
    assert len(rows) == 1 + MINUTES  # every row, across several cursor batches
    sid = seeded["sids"]["p1-stack"]
    for m in (0, 1, 4_999, 5_000, MINUTES - 1):
        row = rows[1 + m]
        assert row[0] == "p1-stack"
        # a station name that starts like a formula does not become one in Excel
        assert row[1] == "'=1+2 窑尾"
        assert row[2:5] == ["a21026", "二氧化硫", "min"]
        ts = datetime.fromisoformat(row[5])
        assert ts.utcoffset() == timedelta(hours=8)
        assert ts == T0 + timedelta(minutes=m)
        assert float(row[6]) == _value(sid, m)
        assert row[7:9] == ["mg/m³", "N"]
        assert row[9:12] == ["", "", ""]
        assert row[12] == ("12.5" if m == 0 else "")
    assert rows[1][5] == "2026-10-01T08:00:00+08:00"


async def test_english_headings_without_bom_and_filters(admin: httpx.AsyncClient) -> None:
    params = {"park_id": "p2", "lang": "en", "bom": "false", "interval": "hour", **SPAN}
    resp = await admin.get("/api/v1/exports/readings", params=params)
    assert resp.status_code == 200, resp.text
    rows = _csv(resp, bom=False)
    assert rows[0][:6] == ["Station id", "Station name", "Parameter", "Parameter name", "Interval", "Time"]
    # only the hourly value p2-out reported, in its own zone (Urumqi, +06:00)
    assert [r[:3] + r[4:7] for r in rows[1:]] == [
        ["p2-out", "", "w01018", "hour", T0.astimezone(URUMQI).isoformat(), "41.5"]
    ]
    assert rows[1][3] == "COD (CODcr)"  # the catalogue's English name
    assert resp.headers["content-disposition"].startswith('attachment; filename="parkwatch-readings-p2-')


async def test_every_kind_in_both_languages(admin: httpx.AsyncClient) -> None:
    expected = {"readings": MINUTES + 2, "hourly": 4, "daily": 2, "verdicts": 4, "alerts": 3}
    for kind, count in expected.items():
        for lang in ("zh", "en"):
            resp = await admin.get(f"/api/v1/exports/{kind}", params={"lang": lang, **SPAN})
            assert resp.status_code == 200, (kind, resp.text)
            rows = _csv(resp)
            assert rows[0] == export_writers.headings(kind, lang)
            assert len(rows) - 1 == count, kind
            assert all(len(r) == len(rows[0]) for r in rows)


async def test_rollups_verdicts_alerts_values(admin: httpx.AsyncClient) -> None:
    hourly = _csv(await admin.get("/api/v1/exports/hourly", params={"station_id": "p1-stack", "lang": "en", **SPAN}))
    head = hourly[0]
    first = dict(zip(head, hourly[1], strict=True))
    assert first["Hour"] == "2026-10-01T08:00:00+08:00"
    assert (first["Hourly mean"], first["Values"], first["Valid minutes"]) == ("101.25", "60", "58")
    assert (first["Valid hour"], dict(zip(head, hourly[2], strict=True))["Valid hour"]) == ("true", "false")
    assert first["Source"] == "min"

    daily = _csv(await admin.get("/api/v1/exports/daily", params={"station_id": "p2-out", **SPAN}))
    day = dict(zip(daily[0], daily[1], strict=True))
    assert (day["监测日期"], day["日均值"], day["有效小时数"]) == ("2026-10-01", "100.5", "19")
    # the day as the station's zone has it (p2-out keeps Urumqi time): the stored start, with its offset
    assert datetime.fromisoformat(day["日开始时间"]) == datetime(2026, 10, 1, tzinfo=CST)

    verdicts = _csv(await admin.get("/api/v1/exports/verdicts", params={"station_id": "p1-stack", **SPAN}))
    by_window = {r[5]: dict(zip(verdicts[0], r, strict=True)) for r in verdicts[1:]}
    assert by_window["hour"]["评价结果"] == "exceedance"
    assert (by_window["hour"]["标准限值"], by_window["hour"]["超标倍数"]) == ("200", "0.3")
    assert by_window["hour"]["结论时间"] == "2026-10-01T08:50:00+08:00"
    assert (by_window["day"]["标准限值"], by_window["day"]["时段已结束"]) == ("[6, 9]", "false")

    alerts = _csv(await admin.get("/api/v1/exports/alerts", params={"park_id": "p1", "lang": "en"}))
    got = [dict(zip(alerts[0], r, strict=True)) for r in alerts[1:]]
    assert sorted(a["Rule"] for a in got) == ["exceedance.hour", "kpi.transmission_rate"]
    station = next(a for a in got if a["Station id"])
    assert station["Acknowledged by"] == "'@ops 张三"
    assert station["Acknowledged at"] == "2026-10-01T10:00:00+08:00"
    park = next(a for a in got if not a["Station id"])
    assert (park["Park id"], park["Station name"], park["Parameter"]) == ("p1", "", "")


async def test_xlsx_readable_with_new_sheets(
    admin: httpx.AsyncClient, seeded: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    # a sheet of 5,000 rows instead of Excel's 1,048,575: the same code path, a test's size
    monkeypatch.setattr(export_xlsx, "SHEET_ROWS", 5_000)
    resp = await admin.get("/api/v1/exports/readings", params={"station_id": "p1-stack", "format": "xlsx", **SPAN})
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"] == export_writers.MEDIA_TYPES["xlsx"]
    assert resp.headers["content-disposition"].endswith('.xlsx"')
    assert int(resp.headers["content-length"]) == len(resp.content)
    book = openpyxl.load_workbook(io.BytesIO(resp.content), read_only=True)
    assert book.sheetnames == ["监测数据", "监测数据 (2)", "监测数据 (3)"]
    rows: list[tuple[Any, ...]] = []
    for sheet in book.worksheets:
        cells = list(sheet.iter_rows(values_only=True))
        assert list(cells[0]) == export_writers.headings("readings", "zh")
        rows += cells[1:]
    assert len(rows) == MINUTES
    assert rows[0][:6] == ("p1-stack", "=1+2 窑尾", "a21026", "二氧化硫", "min", "2026-10-01T08:00:00+08:00")
    sid = seeded["sids"]["p1-stack"]
    assert rows[0][6] == _value(sid, 0)
    assert rows[-1][6] == _value(sid, MINUTES - 1)
    assert rows[0][12] == 12.5
    assert rows[1][12] is None


async def test_xlsx_verdicts_types_and_english(admin: httpx.AsyncClient) -> None:
    resp = await admin.get("/api/v1/exports/verdicts", params={"format": "xlsx", "lang": "en", **SPAN})
    assert resp.status_code == 200, resp.text
    book = openpyxl.load_workbook(io.BytesIO(resp.content), read_only=True)
    assert book.sheetnames == ["Verdicts"]
    cells = list(book.worksheets[0].iter_rows(values_only=True))
    assert list(cells[0]) == export_writers.headings("verdicts", "en")
    rows = [dict(zip(cells[0], r, strict=True)) for r in cells[1:]]
    assert len(rows) == 4
    hour = next(r for r in rows if r["Window"] == "hour")
    assert (hour["Limit"], hour["Closed"], hour["Revision"]) == (200, True, 1)


async def test_xlsx_row_cap(admin: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(export_route, "MAX_XLSX_ROWS", 100)
    resp = await admin.get("/api/v1/exports/readings", params={"format": "xlsx", **SPAN})
    assert resp.status_code == 413
    assert resp.json()["error"] == "too_many_rows"
    # the slot and the temporary files were let go: the next export runs
    ok = await admin.get("/api/v1/exports/daily", params={"format": "xlsx", **SPAN})
    assert ok.status_code == 200


async def test_operator_exports_only_their_park(settings: Settings, seeded: dict[str, Any]) -> None:
    async with serving_api(settings, None, role="operator", parks=["p1"]) as api:
        for kind in export_writers.KINDS:
            for asked in ({"station_id": "p2-out"}, {"station_id": "p1-stack,p2-out"}):
                resp = await api.get(f"/api/v1/exports/{kind}", params={**asked, **SPAN})
                assert resp.status_code == 404, (kind, resp.text)
                assert resp.json()["error"] == "unknown_station"
                assert "p2-out" in resp.json()["detail"]
            resp = await api.get(f"/api/v1/exports/{kind}", params={"park_id": "p2", **SPAN})
            assert (resp.status_code, resp.json()["error"]) == (404, "unknown_park")
            # asking for nothing in particular: everything in scope, nothing else
            for fmt in ("csv", "xlsx"):
                resp = await api.get(f"/api/v1/exports/{kind}", params={"format": fmt, **SPAN})
                assert resp.status_code == 200, (kind, resp.text)
                if fmt == "csv":
                    rows = _csv(resp)[1:]
                else:
                    sheet = openpyxl.load_workbook(io.BytesIO(resp.content), read_only=True).worksheets[0]
                    rows = [[str(c) if c is not None else "" for c in r] for r in sheet.iter_rows(values_only=True)][1:]
                assert rows, kind
                text = repr(rows)
                assert "p2-out" not in text and "'p2'" not in text, kind
                at = 1 if kind == "alerts" else 0
                assert {r[at] for r in rows} <= {"p1-stack", "p1-out", "p1-air", ""}


async def test_inspector_exports_are_audited(settings: Settings, seeded: dict[str, Any]) -> None:
    async with serving_api(settings, None, role="inspector", province=True) as api:
        resp = await api.get("/api/v1/exports/readings", params={"station_id": "p1-stack", **SPAN})
        assert resp.status_code == 200
        assert len(_csv(resp)) == MINUTES + 1
    rows = await fetch(settings.DATABASE_URL, "SELECT action, status, detail FROM audit_log WHERE role = 'inspector'")
    # written once the stream had ended, on the request's own connection, with the outcome
    assert [(r["action"], r["status"]) for r in rows] == [("GET /api/v1/exports/{kind}", 200)]
    assert "station_id=p1-stack" in orjson.loads(rows[0]["detail"])["query"]


async def test_a_client_that_leaves_ends_the_export_cleanly(
    settings: Settings, seeded: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The stream stops at the next chunk, its transaction rolls back, the connection is clean for the pool."""
    monkeypatch.setattr(export_csv, "BATCH_ROWS", 100)
    conn = await asyncpg.connect(settings.DATABASE_URL)
    try:
        plan = await export_writers.plan_export(
            conn, "readings", export_writers.Filters(station_ids=["p1-stack"], **SPAN),
            default_zone="Asia/Shanghai", fmt="csv", lang="zh",
        )  # fmt: skip
        sent: list[dict[str, Any]] = []
        leave = asyncio.Event()
        released: list[bool] = []

        async def receive() -> dict[str, Any]:
            await leave.wait()
            return {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)
            if len(sent) == 3:  # the start, the header row, a first batch: then the client is gone,
                leave.set()  # noticed while the next batch is being fetched

        response = export_route.ExportResponse(
            export_csv.csv_chunks(conn, plan, "zh"), media_type="text/csv", headers={},
            on_close=lambda: released.append(True),
        )  # fmt: skip
        await response({"type": "http"}, receive, send)  # type: ignore[arg-type]
        assert 3 <= len(sent) < MINUTES // 100
        assert all(m.get("more_body", True) for m in sent)  # never told the client it was complete
        assert released == [True]
        assert not conn.is_in_transaction()
        assert await conn.fetchval("SELECT count(*) FROM readings") == MINUTES + 2  # the connection works
    finally:
        await conn.close()


@pytest.mark.parametrize(
    ("path", "params", "status", "code"),
    [
        ("/api/v1/exports/nothing", {}, 422, "invalid_request"),
        ("/api/v1/exports/readings", {"format": "pdf"}, 422, "invalid_request"),
        ("/api/v1/exports/readings", {"lang": "fr"}, 422, "invalid_request"),
        ("/api/v1/exports/readings", {"start": "yesterday"}, 422, "bad_time"),
        ("/api/v1/exports/readings", {"start": "2026-10-02", "end": "2026-10-01"}, 422, "bad_time"),
        ("/api/v1/exports/alerts", {"start": "2026-10-02", "end": "2026-10-01"}, 422, "bad_time"),
        ("/api/v1/exports/readings", {"start": "0001-01-01"}, 422, "bad_time"),
        ("/api/v1/exports/readings", {"parameter": "unobtainium"}, 422, "unknown_parameter"),
        ("/api/v1/exports/readings", {"station_id": "nowhere"}, 404, "unknown_station"),
        ("/api/v1/exports/hourly", {"park_id": "nowhere"}, 404, "unknown_park"),
        ("/api/v1/exports/hourly", {"interval": "min"}, 422, "bad_filter"),
        ("/api/v1/exports/readings", {"verdict": "exceedance"}, 422, "bad_filter"),
        ("/api/v1/exports/verdicts", {"status": "active"}, 422, "bad_filter"),
        ("/api/v1/exports/alerts", {"severity": "apocalyptic"}, 422, "invalid_request"),
    ],
)
async def test_bad_input_is_a_clear_error(
    admin: httpx.AsyncClient, path: str, params: dict[str, str], status: int, code: str
) -> None:
    resp = await admin.get(path, params=params)
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert body["error"] == code
    assert body["detail"]


def test_cli_kinds_are_the_api_kinds() -> None:
    assert export_cmd.KINDS == export_writers.KINDS


async def test_cli_export_to_file_and_stdout(settings: Settings, seeded: dict[str, Any], tmp_path: Path) -> None:
    env = cli_env(settings)
    out = tmp_path / "so2.csv"
    done = run_cli(
        "export", "readings", "--from", SPAN["start"], "--to", SPAN["end"], "--station", "p1-stack", "-o", str(out),
        env=env,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert f"{MINUTES:,} rows written to {out}" in done.stderr
    assert [p.name for p in tmp_path.iterdir()] == ["so2.csv"]  # no temporary file left beside it
    rows = list(csv.reader(io.StringIO(out.read_bytes().decode("utf-8-sig"))))
    assert out.read_bytes().startswith(export_writers.BOM)
    assert len(rows) == MINUTES + 1
    assert float(rows[-1][6]) == _value(seeded["sids"]["p1-stack"], MINUTES - 1)

    # to stdout: the same bytes as the API's (the CLI sees everything; here one park asked for)
    piped = run_cli("export", "alerts", "--park", "p2", "--lang", "en", "--no-bom", env=env)
    assert piped.returncode == 0, piped.stderr
    lines = list(csv.reader(io.StringIO(piped.stdout)))
    assert lines[0] == export_writers.headings("alerts", "en")
    assert [r[1] for r in lines[1:]] == ["p2-out"]

    book = tmp_path / "verdicts.xlsx"
    made = run_cli("export", "verdicts", "--from", SPAN["start"], "--to", SPAN["end"], "-o", str(book), env=env)
    assert made.returncode == 0, made.stderr
    sheet = openpyxl.load_workbook(book, read_only=True).worksheets[0]
    assert len(list(sheet.iter_rows(values_only=True))) == 1 + 4

    bad = run_cli("export", "readings", "--station", "nowhere", env=env)
    assert bad.returncode == 2
    assert "not registered: nowhere (unknown_station)" in bad.stderr
    assert bad.stdout == ""
