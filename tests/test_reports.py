"""Daily and monthly reports (compliance/reports.py, docs/kpis.md#reports): worked by hand through the pipeline,
read back cell by cell with openpyxl, as HTML and JSON, through the API, on schedule and on the command line."""

from __future__ import annotations

import asyncio
import html
import io
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import openpyxl
import pytest

from alerts.engine import AlertEngine
from api.app import create_app
from compliance.assessment import assessment
from compliance.report_render import render
from compliance.report_store import generate_due_reports, report_command
from compliance.reports import Scope, build_report
from compliance.targets import province_targets
from ingest.service import IngestService
from parkwatch.serve import serving_asgi
from parkwatch.settings import Settings
from schemas.registry import RegistryFile
from tests.conftest import ingest_for
from tests.helpers import make_key
from tests.test_compliance import CST, DAY, drain, minutes, obj, send

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
EVIL = "<script>alert('x')</script>园区"
REGISTRY = {
    "parks": [
        {"id": "rp", "name": "报表测试园区", "city": "长沙"},
        {"id": "rx", "name": EVIL, "city": "株洲"},
    ],
    "stations": [
        {"id": "rp-kiln", "park_id": "rp", "kind": "stack", "name": "水泥窑1#", "standard": "GB4915-2013",
         "class": "kiln", "parameters": ["a21026", "a19001"]},
        {"id": "rp-out", "park_id": "rp", "kind": "wastewater_outlet", "name": "总排口", "standard": "GB18918-2002",
         "class": "1A", "construction_date": "2010-05-01", "parameters": ["w01018", "w00000"],
         "caps": {"w01018": 5000}},
    ],
}  # fmt: skip


@pytest.fixture
async def park(settings: Settings) -> AsyncIterator[IngestService]:
    """Park rp (a cement kiln's stack, a plant's outlet with a COD cap) and park rx (no stations, a hostile name)."""
    async with ingest_for(settings, RegistryFile.model_validate(REGISTRY)) as service:
        yield service


@asynccontextmanager
async def serving(settings: Settings, ingest: IngestService) -> AsyncIterator[httpx.AsyncClient]:
    """The API over real HTTP, with the reports' router included if app.py does not include it yet."""
    app = create_app(settings, ingest=ingest)
    key = await make_key(settings.DATABASE_URL)
    async with (
        serving_asgi(app, "127.0.0.1", settings.API_PORT),
        httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{settings.API_PORT}", timeout=60, headers={"X-API-Key": key}
        ) as client,
    ):
        yield client


async def engine(settings: Settings) -> None:
    """Judge what arrived and apply the verdicts to alerts (what `serve` does continuously)."""
    await drain(settings)
    conn = await asyncpg.connect(settings.DATABASE_URL)
    try:
        await AlertEngine(settings).drain(conn)
    finally:
        await conn.close()


async def a_day_with_two_exceedances(settings: Settings, api: httpx.AsyncClient) -> dict[str, int]:
    """10 June 2025 at park rp, the alerts handled; returns the alert ids by station."""
    ten = DAY.replace(hour=10)
    # the kiln: SO2 250 mg/m³ at the reference 10 % O2 for two hours (GB 4915-2013 Table 1: 200)
    await send(settings, "rp-kiln", [obj("rp-kiln", t, "min", {"a21026": 250, "a19001": 10}) for t in minutes(ten, 120)],
               park="rp")  # fmt: skip
    # the outlet: an hourly record each hour, COD 80 mg/L (GB 18918-2002 1A: 50) at 50 L/s
    await send(settings, "rp-out", [obj("rp-out", DAY.replace(hour=h), "hour", {"w01018": 80, "w00000": 50})
                                    for h in range(24)], park="rp")  # fmt: skip
    await engine(settings)
    conn = await asyncpg.connect(settings.DATABASE_URL)
    try:
        ids = {r["id"]: r["aid"] for r in await conn.fetch(
            "SELECT s.id, x.id AS aid FROM alerts x JOIN stations s USING (sid)")}  # fmt: skip
    finally:
        await conn.close()
    kiln = ids["rp-kiln"]
    assert (await api.post(f"/api/v1/alerts/{kiln}/ack", json={"by": "张工", "comment": "检查脱硫"})).status_code == 200
    explained = await api.post(
        f"/api/v1/alerts/{kiln}/explanation", json={"by": "企业", "text": "脱硫浆液泵故障，已更换"}
    )
    assert explained.status_code == 200
    verified = await api.post(
        f"/api/v1/alerts/{kiln}/verify", json={"by": "环保局", "verification": "genuine_exceedance"}
    )
    assert verified.status_code == 200
    # two compliant hours after (SO2 150) clear the kiln's alert (alerts/rules.py CLEAR_AFTER_WINDOWS)
    await send(settings, "rp-kiln", [obj("rp-kiln", t, "min", {"a21026": 150, "a19001": 10})
                                     for t in minutes(ten + timedelta(hours=2), 120)], park="rp")  # fmt: skip
    await engine(settings)
    conn = await asyncpg.connect(settings.DATABASE_URL)
    try:
        # The test's clock runs in seconds: the kiln's alert is taken back to 37 minutes before its
        # acknowledgement, and a day passes without the outlet's 情况说明.
        await conn.execute("UPDATE alerts SET raised_at = acked_at - interval '37 minutes' WHERE id = $1", kiln)
        await conn.execute("UPDATE alerts SET explanation_due_at = now() - interval '1 hour' WHERE id = $1",
                           ids["rp-out"])  # fmt: skip
    finally:
        await conn.close()
    return ids


def sheet_rows(ws: Any) -> list[list[Any]]:
    """A sheet's values, row by row, header first."""
    return [list(r) for r in ws.iter_rows(values_only=True)]


def column(ws: Any, heading: str) -> int:
    """The 1-based index of the column under a heading."""
    return [c.value for c in ws[1]].index(heading) + 1


async def test_a_daily_report_read_back_cell_by_cell(settings: Settings, park: IngestService) -> None:
    """Park rp on 10 June 2025 (docs/kpis.md for each formula):

    - effective transmission rate = valid / expected minutes (docs/kpis.md, data delivery): expected
      2 stations × 2 parameters × 1,440 = 5,760; received and valid: the kiln's 2 × 240 minutes, the
      outlet's 2 × 24 hourly records of 60 minutes: 480 + 2,880 = 3,360 → 0.583333, below the 0.9 target;
    - compliance rate = compliant / valid judged windows (docs/reference/standards.md B7 [M]): the kiln's
      4 hours, 2 compliant, and the outlet's day, in exceedance: 2 / 5 = 0.4; the plant outlet alone
      (treated water): 0 / 1 = 0, below 1.0;
    - exceedance multiple (C − limit) / limit: SO2 (250 − 200) / 200 = 0.25 for 10:00 and 11:00 (GB 4915-2013
      Table 1 at 10 % O2, no correction); COD (80 − 50) / 50 = 0.6 for the day (GB 18918-2002 1A);
    - the kiln's alert is acknowledged 37 minutes after it was raised, explained and verified; the outlet's
      explanation is overdue;
    - COD load C × V × 10⁻³ kg (docs/reference/standards.md B8): 80 mg/L × 50 L/s × 86.4 m³ = 345.6 kg
      of a 5,000 kg cap (0.06912); 1 January – 10 June is 161 days, 160 without a load; projected at
      the run rate 345.6 × 365 / 161 = 783.503106 kg."""
    async with serving(settings, park) as api:
        ids = await a_day_with_two_exceedances(settings, api)
        got = await api.get("/api/v1/reports/daily", params={"date": "2025-06-10", "park_id": "rp", "format": "xlsx"})
        assert got.status_code == 200, got.text
        assert got.headers["content-type"] == XLSX
        assert got.headers["content-disposition"] == 'attachment; filename="parkwatch-daily-rp-2025-06-10.xlsx"'
        page = await api.get("/api/v1/reports/daily", params={"date": "2025-06-10", "park_id": "rp", "format": "html"})
        english = await api.get("/api/v1/reports/daily",
                                params={"date": "2025-06-10", "park_id": "rp", "format": "html", "lang": "en"})  # fmt: skip
        doc = (await api.get("/api/v1/reports/daily", params={"date": "2025-06-10", "park_id": "rp"})).json()
    conn = await asyncpg.connect(settings.DATABASE_URL)
    try:
        [kiln] = await conn.fetch("SELECT raised_at, cleared_at FROM alerts WHERE id = $1", ids["rp-kiln"])
        stored = await conn.fetch("SELECT kind, park_id, generated_by FROM reports")
    finally:
        await conn.close()
    clear_minutes = round((kiln["cleared_at"] - kiln["raised_at"]).total_seconds() / 60, 1)
    # a day that is over is stored at its first request, and served as stored after
    assert [tuple(r) for r in stored] == [("daily", "rp", "request")]

    book = openpyxl.load_workbook(io.BytesIO(got.content))
    assert book.sheetnames == ["概况", "主要指标", "超标记录", "报警处置", "报警统计", "总量控制"]
    assert all(book[name].freeze_panes == "A2" for name in book.sheetnames)

    summary = dict(sheet_rows(book["概况"])[1:])
    assert summary["报表"] == "报表测试园区 环境监测日报 2025-06-10"
    assert summary["期间"] == "2025-06-10 – 2025-06-10"
    assert (summary["超标时段数"], summary["报警数"], summary["已确认报警"], summary["情况说明逾期"]) == (3, 2, 1, 1)
    assert summary["总量核算截至"] == datetime(2025, 6, 11, 0, 0)

    kpi = book["主要指标"]
    assert [c.value for c in kpi[1]][:7] == ["园区编号", "园区名称", "城市", "传输率", "有效率", "有效传输率", "达标率"]
    assert [kpi["A2"].value, kpi["B2"].value, kpi["C2"].value] == ["rp", "报表测试园区", "长沙"]
    effective = kpi.cell(2, column(kpi, "有效传输率"))
    assert effective.value == pytest.approx(0.583333) and effective.number_format == "0.0%"
    assert effective.font.color.rgb == "FFB00020"  # below its target: flagged
    assert kpi.cell(2, column(kpi, "传输率")).value == pytest.approx(0.583333)
    assert kpi.cell(2, column(kpi, "有效率")).value == 1
    assert kpi.cell(2, column(kpi, "达标率")).value == pytest.approx(0.4)
    assert kpi.cell(2, column(kpi, "尾水达标率")).value == 0
    assert kpi.cell(2, column(kpi, "污水处理率")).value is None  # no plant inlet: no treatment rate
    assert kpi.cell(2, column(kpi, "目标: 有效传输率")).value == 0.9
    assert kpi.cell(2, column(kpi, "目标: 污水处理率")).value == 0.95
    assert kpi.cell(2, column(kpi, "未达目标")).value == "有效传输率 58.3% < 90.0%; 尾水达标率 0.0% < 100.0%"
    assert kpi.max_row == 2

    exceedances = sheet_rows(book["超标记录"])
    assert exceedances[0] == ["园区编号", "站点编号", "站点名称", "因子代码", "因子名称", "时段", "开始时间", "结束时间",
                              "判定值", "实测值", "限值", "单位", "超标倍数", "执行标准", "类别"]  # fmt: skip
    ten = datetime(2025, 6, 10, 10, 0)
    assert exceedances[1:] == [
        ["rp", "rp-kiln", "水泥窑1#", "a21026", "二氧化硫", "小时均值", ten, ten + timedelta(hours=1), 250, 250, 200,
         "mg/m³", 0.25, "GB4915-2013", "kiln"],
        ["rp", "rp-kiln", "水泥窑1#", "a21026", "二氧化硫", "小时均值", ten + timedelta(hours=1),
         ten + timedelta(hours=2), 250, 250, 200, "mg/m³", 0.25, "GB4915-2013", "kiln"],
        ["rp", "rp-out", "总排口", "w01018", "化学需氧量", "日均值", datetime(2025, 6, 10), datetime(2025, 6, 11), 80, 80,
         50, "mg/L", 0.6, "GB18918-2002", "1A"],
    ]  # fmt: skip
    assert book["超标记录"]["G2"].number_format == "yyyy-mm-dd hh:mm"

    alerts = book["报警处置"]
    rows = {r[0]: dict(zip(sheet_rows(alerts)[0], r, strict=True)) for r in sheet_rows(alerts)[1:]}
    assert list(rows) == [ids["rp-out"], ids["rp-kiln"]]  # by when the condition began: the day, then 10:00
    water, stack = rows[ids["rp-out"]], rows[ids["rp-kiln"]]
    assert (water["因子代码"], water["等级"], water["状态"], water["情况说明"]) == (
        "w01018",
        "较重",
        "未消除",
        "逾期未说明",
    )
    assert water["确认时间"] is None and water["确认用时(分钟)"] is None and water["补报"] == "是"
    assert water["异常开始"] == datetime(2025, 6, 10)
    stack["确认人"] = stack["确认人"].split(" [key:")[0]  # the person, then the key that vouched
    assert (stack["规则"], stack["等级"], stack["状态"], stack["确认人"]) == (
        "exceedance.hour",
        "一般",
        "已消除",
        "张工",
    )
    assert stack["确认用时(分钟)"] == 37.0
    assert stack["消除用时(分钟)"] == clear_minutes and clear_minutes >= 37.0
    assert (stack["核实结果"], stack["情况说明"], stack["说明内容"]) == ("确属超标", "已说明", "脱硫浆液泵故障，已更换")
    assert stack["异常开始"] == ten
    assert alerts.cell(3, column(alerts, "确认用时(分钟)")).number_format == "0.0"
    assert alerts.cell(2, column(alerts, "情况说明")).font.color.rgb == "FFB00020"

    assert sheet_rows(book["报警统计"]) == [
        ["报警类别", "等级", "数量", "已确认", "已消除", "说明逾期"],
        ["超标", "较重", 1, 0, 0, 1],
        ["超标", "一般", 1, 1, 1, 0],
    ]
    caps = sheet_rows(book["总量控制"])
    cap = dict(zip(caps[0], caps[1], strict=True))
    assert len(caps) == 2
    assert (cap["站点编号"], cap["因子代码"], cap["年度"], cap["许可排放量(kg)"]) == ("rp-out", "w01018", 2025, 5000)
    assert cap["累计排放量(kg)"] == pytest.approx(345.6) and cap["占许可量"] == pytest.approx(0.06912)
    # one day of loads in 161: too few to project from (docs/kpis.md#loads: 7 days)
    assert cap["预计全年(kg)"] is None
    assert (cap["已超许可量"], cap["预计超许可量"], cap["缺失"]) == ("否", "否", "160 天")

    # the JSON form holds the same content; times in the stations' local time
    assert doc["kpis"][0]["shortfalls"]["effective_transmission_rate"] == {"value": 0.583333, "target": 0.9}
    assert doc["exceedances"][0]["window_start"] == "2025-06-10T10:00:00+08:00"
    assert doc["exceedances"][0]["class"] == "kiln"
    assert [a["ack_minutes"] for a in doc["alerts"]] == [None, 37.0]
    assert doc["assessment"] is None and doc["complete"] is True

    # the printable page: self-contained, every value there
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    assert "default-src 'none'" in page.headers["content-security-policy"]
    text = page.text
    assert text.startswith("<!DOCTYPE html>") and '<html lang="zh-CN">' in text and "@media print" in text
    for shown in ("报表测试园区 环境监测日报 2025-06-10", "58.3%", "40.0%", "二氧化硫", "2025-06-10 10:00", "0.25",
                  "37.0", "张工", "逾期未说明", "345.6", "6.9%"):  # fmt: skip
        assert shown in text, shown
    assert not any(ref in text for ref in ("<script", "src=", "href=", "http://", "https://", "@import"))
    assert (
        '<html lang="en">' in english.text
        and "Exceedances" in english.text
        and "Minutes to acknowledge" in english.text
    )


async def test_a_monthly_province_report_ranks_the_parks_and_escapes_their_names(
    settings: Settings, park: IngestService
) -> None:
    """June 2025, the province: a KPI row per park and the province's own. rp's transmission rate over the
    month: 3,360 minutes received of 2 stations × 2 parameters × 30 days × 1,440 = 172,800 expected →
    0.019444 (docs/kpis.md, data delivery); its compliance rates as on the day (0.4, and 0 for the treated
    water): the month has no other judged window. rx has no station: no figures, the province's targets.
    The ranking is compliance/assessment.py's, carried as it is. rx's name is hostile markup: the page shows
    it as text, the workbook as the text it is."""
    async with serving(settings, park) as api:
        await a_day_with_two_exceedances(settings, api)
        got = await api.get("/api/v1/reports/monthly", params={"month": "2025-06", "format": "xlsx"})
        assert got.status_code == 200, got.text
        assert got.headers["content-disposition"] == 'attachment; filename="parkwatch-monthly-province-2025-06.xlsx"'
        page = (await api.get("/api/v1/reports/monthly", params={"month": "2025-06", "format": "html"})).text
        doc = (await api.get("/api/v1/reports/monthly", params={"month": "2025-06", "park_id": "rx"})).json()
    conn = await asyncpg.connect(settings.DATABASE_URL)
    try:
        ranking = (await assessment(conn, period="month", on=DAY.date(), now=datetime.now(CST),
                                    targets=province_targets(settings))).as_json()  # fmt: skip
    finally:
        await conn.close()

    book = openpyxl.load_workbook(io.BytesIO(got.content))
    assert book.sheetnames == [
        "概况",
        "主要指标",
        "超标记录",
        "报警处置",
        "报警统计",
        "总量控制",
        "考核排名",
        "考核指标",
    ]
    assert dict(sheet_rows(book["概况"])[1:])["报表"] == "全省 环境监测月报 2025-06"
    kpi = book["主要指标"]
    assert [kpi.cell(r, 1).value for r in (2, 3)] == ["rp", "rx"] and kpi.max_row == 4
    assert kpi["B3"].value == EVIL and kpi["B4"].value == "全省合计"
    transmission, compliance = column(kpi, "传输率"), column(kpi, "达标率")
    assert kpi.cell(2, transmission).value == pytest.approx(3360 / 172800, abs=1e-6)
    assert kpi.cell(2, compliance).value == pytest.approx(0.4)
    assert kpi.cell(2, column(kpi, "尾水达标率")).value == 0
    assert kpi.cell(3, transmission).value is None and kpi.cell(3, column(kpi, "目标: 污水处理率")).value == 0.95
    assert kpi.cell(4, transmission).value == pytest.approx(3360 / 172800, abs=1e-6)
    assert kpi.cell(4, column(kpi, "目标: 污水处理率")).value is None
    assert len(sheet_rows(book["超标记录"])) == 4 and len(sheet_rows(book["报警处置"])) == 3

    ranked = sheet_rows(book["考核排名"])
    expected = [[r["rank"], r["park_id"], r["score"], "是" if r["yellow_card"] else "否"] for r in ranking["results"]]
    assert [[r[0], r[1], r[4], r[7]] for r in ranked[1:]] == expected
    indicators = sheet_rows(book["考核指标"])
    rp_treated = [r for r in indicators[1:] if r[0] == "rp" and r[1] == "尾水达标率"]
    assert rp_treated == [
        ["rp", "尾水达标率", 0, 1, 0, ranking["weights"]["treated_water_compliance_rate"], "在线监测"]
    ]

    # the park's own monthly report: its rows of the province's ranking
    assert [r["park_id"] for r in doc["assessment"]["results"]] == ["rx"]
    assert doc["assessment"]["parks"] == 2 and doc["park"]["name"] == EVIL
    assert doc["kpis"][0]["figures"]["transmission_rate"] is None and doc["alerts"] == []

    assert html.escape(EVIL, quote=True) in page
    assert "<script" not in page
    # a name that reads as a spreadsheet formula stays text in the workbook
    doc["park"]["name"] = doc["parks"][0]["name"] = doc["kpis"][0]["park_name"] = '=HYPERLINK("http://x","y")'
    cell = openpyxl.load_workbook(io.BytesIO(render(doc, "xlsx")))["主要指标"]["B2"]
    assert (cell.value, cell.data_type) == ('=HYPERLINK("http://x","y")', "s")


async def count_reports(settings: Settings) -> int:
    conn = await asyncpg.connect(settings.DATABASE_URL)
    try:
        return int(await conn.fetchval("SELECT count(*) FROM reports"))
    finally:
        await conn.close()


async def test_scheduled_reports_are_stored_once_and_listed(settings: Settings, park: IngestService) -> None:
    """The schedule (compliance/report_store.py, docs/kpis.md#reports) makes yesterday's reports once an hour
    of today has passed, and last month's in a month's first week, for each park and the province: 3 a
    period here (rp, rx, province). 11 June 02:00: the 10th's (3). Again: nothing. 1 July 00:30: the hour
    has not passed, so 29 June's (3); 01:30: 30 June's and June's (6); 3 July: 2 July's (3), June's being
    stored already. Again: nothing. 15 stored. A park's report cut from the province's is the report made
    for the park alone."""
    ten = DAY.replace(hour=10)
    await send(settings, "rp-kiln", [obj("rp-kiln", t, "min", {"a21026": 250, "a19001": 10}) for t in minutes(ten, 60)],
               park="rp")  # fmt: skip
    await engine(settings)
    conn = await asyncpg.connect(settings.DATABASE_URL)
    try:
        june11 = datetime(2025, 6, 11, 2, 0, tzinfo=CST)
        assert await generate_due_reports(conn, settings, now=june11) == 3
        assert await generate_due_reports(conn, settings, now=june11) == 0
        assert await generate_due_reports(conn, settings, now=datetime(2025, 7, 1, 0, 30, tzinfo=CST)) == 3
        assert await generate_due_reports(conn, settings, now=datetime(2025, 7, 1, 1, 30, tzinfo=CST)) == 6
        assert await generate_due_reports(conn, settings, now=datetime(2025, 7, 3, 9, 0, tzinfo=CST)) == 3  # 2 July's
        assert await generate_due_reports(conn, settings, now=datetime(2025, 7, 3, 9, 0, tzinfo=CST)) == 0
        rows = await conn.fetch("SELECT kind, park_id, period_start, generated_by FROM reports ORDER BY id")
        stored = json.loads(await conn.fetchval(
            "SELECT content FROM reports WHERE kind = 'daily' AND park_id = 'rp' AND period_start = '2025-06-10'"))  # fmt: skip
        alone = await build_report(conn, Scope.of("daily", DAY.date(), "rp"), now=june11,
                                   targets=province_targets(settings))  # fmt: skip
    finally:
        await conn.close()
    assert len(rows) == 15 and {r["generated_by"] for r in rows} == {"schedule"}
    assert sorted({(r["kind"], r["period_start"].isoformat()) for r in rows}) == [
        ("daily", "2025-06-10"), ("daily", "2025-06-29"), ("daily", "2025-06-30"), ("daily", "2025-07-02"),
        ("monthly", "2025-06-01"),
    ]  # fmt: skip
    assert stored == alone
    assert [e["window_start"] for e in stored["exceedances"]] == ["2025-06-10T10:00:00+08:00"]

    async with serving(settings, park) as api:
        seen, cursor = [], None
        while True:
            page = await api.get("/api/v1/reports", params={"limit": 4, **({"cursor": cursor} if cursor else {})})
            assert page.status_code == 200, page.text
            seen += page.json()["results"]
            cursor = page.json()["next_cursor"]
            if cursor is None:
                break
        assert len(seen) == 15 and len({r["id"] for r in seen}) == 15
        assert [r["period_start"] for r in seen[:3]] == ["2025-07-02"] * 3  # newest period first
        first = next(r for r in seen if r["park_id"] == "rp" and r["period_start"] == "2025-06-10")
        assert (first["scope"], first["park_name"], first["exceedances"], first["alerts"]) == (
            "park",
            "报表测试园区",
            1,
            1,
        )
        assert first["links"]["xlsx"] == "/api/v1/reports/daily?date=2025-06-10&park_id=rp&format=xlsx"
        province = (await api.get("/api/v1/reports", params={"scope": "province"})).json()["results"]
        assert len(province) == 5 and {r["park_id"] for r in province} == {None}
        monthly = (await api.get("/api/v1/reports", params={"kind": "monthly", "park_id": "rx"})).json()["results"]
        assert [(r["kind"], r["park_id"], r["period_start"]) for r in monthly] == [("monthly", "rx", "2025-06-01")]

        # served as stored: the same content, made at 02:00 on 11 June
        served = (await api.get("/api/v1/reports/daily", params={"date": "2025-06-10", "park_id": "rp"})).json()
        assert served["generated_at"] == "2025-06-11T02:00:00+08:00"
        # made again on request: the stored one replaced, not doubled
        again = await api.get(
            "/api/v1/reports/daily", params={"date": "2025-06-10", "park_id": "rp", "refresh": "true"}
        )
        assert again.status_code == 200 and again.json()["generated_at"] != served["generated_at"]
        replaced = await api.get("/api/v1/reports", params={"park_id": "rp", "kind": "daily"})
        row = next(r for r in replaced.json()["results"] if r["period_start"] == "2025-06-10")
        assert (row["id"], row["generated_by"]) == (first["id"], "request")
        assert await count_reports(settings) == 15

        # bad input: a clear 4xx, nothing stored
        for params, status, code in [
            ({"date": "2025-13-01"}, 422, "bad_date"),
            ({"date": "1999-12-31"}, 422, "bad_date"),
            ({"date": "2025-06-10", "park_id": "nowhere"}, 404, "unknown_park"),
            ({"date": "2099-06-10"}, 422, "future_period"),
            ({"date": "2025-06-10", "format": "pdf"}, 422, "invalid_request"),
        ]:
            answer = await api.get("/api/v1/reports/daily", params=params)
            assert (answer.status_code, answer.json()["error"]) == (status, code), params
        for month in ("2025-6", "2025-06-10", "2025-13"):
            answer = await api.get("/api/v1/reports/monthly", params={"month": month})
            assert (answer.status_code, answer.json()["error"]) == (422, "bad_month"), month
        assert (await api.get("/api/v1/reports", params={"cursor": "forged.cursor"})).json()["error"] == "bad_cursor"
        # today's report is made on request but not stored: the day is not over
        today = await api.get("/api/v1/reports/daily", params={"date": datetime.now(CST).date().isoformat()})
        assert today.status_code == 200 and today.json()["complete"] is False
        assert "数据不完整" in (await api.get("/api/v1/reports/daily", params={
            "date": datetime.now(CST).date().isoformat(), "format": "html"})).text  # fmt: skip
    assert await count_reports(settings) == 15


async def test_the_command_line_writes_a_report(settings: Settings, park: IngestService, tmp_path: Path) -> None:
    """`parkwatch report` (report_command): the XLSX written to a file, HTML to stdout, errors said."""
    await send(settings, "rp-kiln", [obj("rp-kiln", t, "min", {"a21026": 250, "a19001": 10})
                                     for t in minutes(DAY.replace(hour=10), 60)], park="rp")  # fmt: skip
    await drain(settings)
    target = tmp_path / "june.xlsx"
    code = await asyncio.to_thread(report_command, settings, kind="monthly", on="2025-06", park_id="rp", fmt="xlsx",
                                   output=target)  # fmt: skip
    assert code == 0
    book = openpyxl.load_workbook(target)
    exceedances = sheet_rows(book["超标记录"])
    assert [r[1:4] for r in exceedances[1:]] == [["rp-kiln", "水泥窑1#", "a21026"]]
    assert book["主要指标"]["A2"].value == "rp"

    out, err = io.BytesIO(), io.StringIO()
    code = await asyncio.to_thread(report_command, settings, kind="daily", on="2025-06-10", park_id="rp", fmt="html",
                                   output=None, lang="en", out=out, err=err)  # fmt: skip
    assert code == 0 and b'<html lang="en">' in out.getvalue() and b"rp-kiln" in out.getvalue()
    failures: list[tuple[dict[str, Any], int, str]] = [
        ({"kind": "daily", "on": "2025-06-10", "park_id": "nowhere", "fmt": "json"}, 1, "not registered: nowhere"),
        ({"kind": "daily", "on": "10/06/2025", "park_id": None, "fmt": "json"}, 2, "is not YYYY-MM-DD"),
        ({"kind": "daily", "on": "2025-06-10", "park_id": None, "fmt": "xlsx"}, 2, "needs --output"),
    ]
    for args, status, said in failures:
        err = io.StringIO()
        code = await asyncio.to_thread(report_command, settings, output=None, out=io.BytesIO(), err=err, **args)
        assert code == status and said in err.getvalue(), (args, err.getvalue())


async def test_a_stored_report_says_when_late_data_changed_its_period(settings: Settings, park: IngestService) -> None:
    """An issued report stays as issued (docs/kpis.md#reports), and says so when its period's data
    changed after it was made: back-filled hours of rp-out on 10 June mark the stored daily
    report, in JSON and on the printed page; a refresh takes the new data in and the mark away."""
    conn = await asyncpg.connect(settings.DATABASE_URL)
    try:
        assert await generate_due_reports(conn, settings, now=datetime(2025, 6, 11, 2, 0, tzinfo=CST)) >= 1
    finally:
        await conn.close()
    params = {"date": "2025-06-10", "park_id": "rp"}
    async with serving(settings, park) as api:
        before = (await api.get("/api/v1/reports/daily", params=params)).json()
        assert before["data_changed_since"] is False and before["exceedances"] == []
        await send(settings, "rp-out", [obj("rp-out", DAY.replace(hour=h), "hour", {"w01018": 80, "w00000": 50})
                                        for h in range(24)], park="rp")  # fmt: skip
        await engine(settings)
        after = (await api.get("/api/v1/reports/daily", params=params)).json()
        page = (await api.get("/api/v1/reports/daily", params={**params, "format": "html"})).text
        fresh = (await api.get("/api/v1/reports/daily", params={**params, "refresh": "true"})).json()
    assert after["data_changed_since"] is True and after["exceedances"] == []  # as issued
    assert "本报表生成后，该期间的数据有更新" in page
    assert fresh["data_changed_since"] in (None, False) and len(fresh["exceedances"]) == 1
