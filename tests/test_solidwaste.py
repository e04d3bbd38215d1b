"""Industrial solid waste (compliance/solidwaste.py, docs/kpis.md): reports checked, stored and kept with
their history; the parks' rates worked by hand, directly and through the API served over HTTP.

Formulas (docs/reference/standards.md B7):
- 处置利用率 = (utilised + disposed) / (generated + earlier stock utilised + earlier stock disposed), definition [M];
- 综合利用率 = utilised / (generated + earlier stock utilised), [S2];
- NBS identity: generated = (utilised − from stock) + stored + (disposed − from stock) + dumped, [S1].
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import date
from typing import Any

import asyncpg
import pytest

from compliance.solidwaste import SolidWasteError, make_report, submit_report
from compliance.solidwaste_rates import solid_waste_rates
from parkwatch.settings import Settings
from tests.helpers import fetchval, serving_api

TODAY = date(2026, 12, 2)  # every month below is over: 2025's year has 12 months expected

# The reports both the direct and the API tests write (tonnes unless a unit is given).
SEED: list[dict[str, Any]] = [
    # p1, general, park level. December 2024 builds 20 t of stock; January draws 6 + 4 t of it.
    {"park_id": "p1", "month": "2024-12", "category": "general", "generated": 50, "utilised": 30, "disposed": 0, "stored": 20},
    {"park_id": "p1", "month": "2025-01", "category": "general", "generated": 40, "utilised": 36, "disposed": 12, "stored": 2,
     "utilised_from_stock": 6, "disposed_from_stock": 4},
    # the same month in kg: 30 t generated, 20 utilised, 10 disposed
    {"park_id": "p1", "month": "2025-02", "category": "general", "unit": "kg", "generated": 30_000, "utilised": 20_000,
     "disposed": 10_000, "stored": 0},
    {"park_id": "p1", "month": "2025-03", "category": "general", "generated": 30, "utilised": 15, "disposed": 5, "stored": 10},
    # p1, hazardous: stored in April and May, all 15 t sent to a licensed disposer in June
    {"park_id": "p1", "month": "2025-04", "category": "hazardous", "generated": 5, "utilised": 0, "disposed": 0, "stored": 5},
    {"park_id": "p1", "month": "2025-05", "category": "hazardous", "generated": 5, "utilised": 0, "disposed": 0, "stored": 5},
    {"park_id": "p1", "month": "2025-06", "category": "hazardous", "generated": 5, "utilised": 0, "disposed": 15, "stored": 0,
     "disposed_from_stock": 10},
    # p2, general, March: a park-level report and two enterprises' (which count); April park level only
    {"park_id": "p2", "month": "2025-03", "category": "general", "generated": 100, "utilised": 90, "disposed": 10, "stored": 0},
    {"park_id": "p2", "enterprise": "e1", "month": "2025-03", "category": "general", "generated": 60, "utilised": 50,
     "disposed": 10, "stored": 0},
    {"park_id": "p2", "enterprise": "e2", "month": "2025-03", "category": "general", "generated": 30, "utilised": 15,
     "disposed": 5, "stored": 10},
    {"park_id": "p2", "month": "2025-04", "category": "general", "generated": 50, "utilised": 25, "disposed": 25, "stored": 0},
    # p2, hazardous, in 万t: 2 t generated, 1.5 t disposed, 0.5 t dumped
    {"park_id": "p2", "month": "2025-03", "category": "hazardous", "unit": "万t", "generated": 0.0002, "utilised": 0,
     "disposed": 0.00015, "stored": 0, "dumped": 0.00005},
]  # fmt: skip

# (park, period, date) -> (处置利用率, 综合利用率), worked by hand from SEED.
EXPECTED: dict[tuple[str, str, str], tuple[float | None, float | None]] = {
    # January: (36 + 12) / (40 + 6 + 4) = 48 / 50; 36 / (40 + 6) = 36 / 46
    ("p1", "month", "2025-01-15"): (0.96, 0.782609),
    # Q1: generated 40 + 30 + 30 = 100, utilised 36 + 20 + 15 = 71, disposed 12 + 10 + 5 = 27, and the
    # 10 t January drew from December's stock: 98 / 110; 71 / 106
    ("p1", "quarter", "2025-02-01"): (0.890909, 0.669811),
    # Q2 (hazardous only): the 10 t drawn in June were stored in April and May, already counted as
    # generated there, so nothing was drawn from stock held before the quarter: 15 / 15; 0 / 15.
    # (Adding the 10 t again would give 15 / 25 = 0.6 for a park that disposed of everything.)
    ("p1", "quarter", "2025-05-01"): (1.0, 0.0),
    # June alone: the 10 t came from stock held before the month: 15 / (5 + 10); 0 / 5
    ("p1", "month", "2025-06-01"): (1.0, 0.0),
    # 2025: generated 100 + 15 = 115, utilised 71, disposed 27 + 15 = 42, earlier stock 6 + 4 (December's):
    # 113 / 125; 71 / 121
    ("p1", "year", "2025-07-01"): (0.904, 0.586777),
    # p2 in 2025: March counts e1 + e2 (the park-level 100 t is set aside), plus April and the hazardous
    # report: generated 60 + 30 + 50 + 2 = 142, utilised 50 + 15 + 25 = 90, disposed 10 + 5 + 25 + 1.5 = 41.5:
    # 131.5 / 142; 90 / 142
    ("p2", "year", "2025-01-01"): (0.926056, 0.633803),
    # nothing reported
    ("p1", "month", "2024-06-01"): (None, None),
}


@pytest.fixture
async def conn(settings: Settings, registry: None) -> AsyncIterator[asyncpg.Connection]:
    """A connection to this test's database, the test registry (parks p1 长沙, p2 株洲) loaded."""
    connection = await asyncpg.connect(settings.DATABASE_URL)
    try:
        yield connection
    finally:
        await connection.close()


async def _seed(conn: asyncpg.Connection) -> None:
    for body in SEED:
        await submit_report(conn, make_report(**body, reported_by="alice"), today=TODAY)


async def _counts(conn: asyncpg.Connection) -> tuple[int, int]:
    reports = await conn.fetchval("SELECT count(*) FROM solid_waste_reports")
    replaced = await conn.fetchval("SELECT count(*) FROM solid_waste_report_history")
    return reports, replaced


# --- a report on its own -------------------------------------------------------------------------


def test_units_are_converted_to_tonnes() -> None:
    """kg / 1,000 and 万t × 10,000 (docs/kpis.md); the identity then holds in tonnes."""
    kg = make_report(**SEED[2], reported_by="a")
    assert (kg.generated, kg.utilised, kg.disposed, kg.stored) == (30.0, 20.0, 10.0, 0.0)
    wan = make_report(**SEED[-1], reported_by="a")
    assert (wan.generated, wan.disposed, wan.dumped) == (2.0, 1.5, 0.5)
    assert wan.month == date(2025, 3, 1)


def test_identity_holds_within_one_percent_or_10_kg() -> None:
    """The NBS identity (docs/reference/standards.md B7 [S1]) within max(1 %, 0.01 t): 100 t against
    100.9 t (0.9 <= 1.009) passes, against 101.5 t (1.5 > 1.015) fails; 0.5 t against 0.509 t
    (0.009 <= 0.01) passes, against 0.52 t fails."""
    base: dict[str, Any] = {
        "park_id": "p1",
        "month": "2025-01",
        "category": "general",
        "disposed": 0,
        "reported_by": "a",
    }
    make_report(**base, generated=100, utilised=60, stored=40.9)
    make_report(**base, generated=0.5, utilised=0.509, stored=0)
    with pytest.raises(SolidWasteError) as refused:
        make_report(**base, generated=100, utilised=60, stored=41.5)
    assert refused.value.code == "identity_broken"
    assert "generated 100 t" in refused.value.detail and "= 101.5 t" in refused.value.detail
    with pytest.raises(SolidWasteError, match=r"off by 0\.02 t"):
        make_report(**base, generated=0.5, utilised=0.52, stored=0)


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"generated": -1}, "negative_quantity"),
        ({"dumped": -0.5}, "negative_quantity"),
        ({"unit": "lb"}, "unknown_unit"),
        ({"generated": 41}, "identity_broken"),
        ({"utilised_from_stock": 40}, "from_stock_exceeds"),
        ({"generated": float("nan")}, "bad_quantity"),
        ({"category": "radioactive"}, "unknown_category"),
        ({"month": "2025-01-15"}, "bad_month"),
        ({"month": "2025-13"}, "bad_month"),
        ({"enterprise": "bad id!"}, "bad_enterprise"),
        ({"reported_by": "  "}, "missing_reporter"),
    ],
)
def test_a_bad_report_is_refused_with_its_code(change: dict[str, Any], code: str) -> None:
    body = {**SEED[1], "reported_by": "alice", **change}
    with pytest.raises(SolidWasteError) as refused:
        make_report(**body)
    assert refused.value.code == code and refused.value.status == 422


# --- stored, and the rates --------------------------------------------------------------------


async def test_rates_worked_by_hand(conn: asyncpg.Connection) -> None:
    """Every vector of EXPECTED (hand-worked in its comments from SEED, formulas of
    docs/reference/standards.md B7), with the tonnes behind them."""
    await _seed(conn)
    for (park, period, on), (disposal, comprehensive) in EXPECTED.items():
        [row] = await solid_waste_rates(conn, period=period, on=date.fromisoformat(on), park_id=park, today=TODAY)  # type: ignore[arg-type]
        assert (row.disposal_utilisation_rate, row.comprehensive_utilisation_rate) == (disposal, comprehensive), (
            park,
            period,
            on,
        )

    [january] = await solid_waste_rates(conn, period="month", on=date(2025, 1, 1), park_id="p1", today=TODAY)
    assert january.inputs == {
        "generated_t": 40.0, "utilised_t": 36.0, "disposed_t": 12.0, "stored_t": 2.0, "utilised_from_stock_t": 6.0,
        "disposed_from_stock_t": 4.0, "dumped_t": 0.0, "utilised_from_prior_stock_t": 6.0,
        "disposed_from_prior_stock_t": 4.0, "reports": 1, "months_reported": 1, "months_expected": 1,
        "park_reports_set_aside": 0,
    }  # fmt: skip
    assert january.period_start == "2025-01-01" and january.city == "长沙" and january.reasons == {}
    assert january.hazardous_dumped is None  # no hazardous report that month: unknown, not "no"

    [q1] = await solid_waste_rates(conn, period="quarter", on=date(2025, 2, 1), park_id="p1", today=TODAY)
    assert q1.period_start == "2025-01-01"
    assert (q1.inputs["months_reported"], q1.inputs["months_expected"], q1.inputs["reports"]) == (3, 3, 3)
    assert (q1.inputs["generated_t"], q1.inputs["utilised_t"], q1.inputs["disposed_t"]) == (100.0, 71.0, 27.0)

    [q2] = await solid_waste_rates(conn, period="quarter", on=date(2025, 5, 1), park_id="p1", today=TODAY)
    assert q2.inputs["disposed_from_stock_t"] == 10.0 and q2.inputs["disposed_from_prior_stock_t"] == 0.0
    assert q2.hazardous_dumped is False
    assert q2.categories["general"].disposal_utilisation_rate is None
    assert (
        q2.categories["general"].reasons["disposal_utilisation_rate"]
        == "no general solid waste was reported for the period"
    )

    [p2] = await solid_waste_rates(conn, period="year", on=date(2025, 1, 1), park_id="p2", today=TODAY)
    assert p2.hazardous_dumped is True  # 0.5 t dumped in March: the eco-indicator's condition fails
    assert p2.inputs["park_reports_set_aside"] == 1 and p2.inputs["reports"] == 4
    assert (p2.inputs["months_reported"], p2.inputs["months_expected"]) == (2, 12)
    general = p2.categories["general"]  # 130 / 140; 90 / 140
    assert (general.disposal_utilisation_rate, general.comprehensive_utilisation_rate) == (0.928571, 0.642857)
    hazardous = p2.categories["hazardous"]  # 1.5 / 2; 0 / 2
    assert (hazardous.disposal_utilisation_rate, hazardous.comprehensive_utilisation_rate) == (0.75, 0.0)

    [empty] = await solid_waste_rates(conn, period="month", on=date(2024, 6, 1), park_id="p1", today=TODAY)
    assert empty.reasons == {
        "disposal_utilisation_rate": "no solid waste was reported for the period",
        "comprehensive_utilisation_rate": "no solid waste was reported for the period",
    }
    assert (empty.inputs["reports"], empty.inputs["months_expected"], empty.hazardous_dumped) == (0, 1, None)

    by_city = await solid_waste_rates(conn, period="year", on=date(2025, 1, 1), city="株洲", today=TODAY)
    assert [r.park_id for r in by_city] == ["p2"]
    with pytest.raises(SolidWasteError) as refused:
        await solid_waste_rates(conn, period="day", on=date(2025, 1, 1))
    assert refused.value.code == "bad_period"


async def test_refused_reports_store_nothing(conn: asyncpg.Connection) -> None:
    """Draws from stock never reported, a correction that would leave later draws without stock,
    a month to come, a park unknown: refused with their codes, the tables as they were."""
    await _seed(conn)
    before = await _counts(conn)
    # acme reported no stock: 5 t utilised from it in January has nothing to come from
    acme = {"park_id": "p1", "enterprise": "acme", "month": "2025-01", "category": "general", "generated": 10,
            "utilised": 15, "disposed": 0, "stored": 0, "utilised_from_stock": 5, "reported_by": "bob"}  # fmt: skip
    # December's stock cut from 20 t to 5 t, but January draws 10 t of it
    december = {**SEED[0], "utilised": 45, "stored": 5, "reported_by": "bob"}
    cases = [
        (acme, "stock_negative", 422),
        (december, "stock_negative", 422),
        ({**SEED[1], "month": "2027-01", "reported_by": "bob"}, "future_month", 422),
        ({**SEED[1], "park_id": "nowhere", "reported_by": "bob"}, "unknown_park", 404),
    ]
    details = []
    for body, code, status in cases:
        with pytest.raises(SolidWasteError) as refused:
            await submit_report(conn, make_report(**body), today=TODAY)
        assert (refused.value.code, refused.value.status) == (code, status)
        details.append(refused.value.detail)
    assert "p1/(park)/general draws 10 t from stock in 2025-01 but held 5 t" in details[1]
    assert await _counts(conn) == before
    assert await conn.fetchval("SELECT stored_t FROM solid_waste_reports WHERE month = '2024-12-01'") == 20.0


async def test_a_correction_is_kept_in_history(conn: asyncpg.Connection) -> None:
    """February corrected by bob (utilised 25, disposed 5 instead of 20 and 10): alice's version stays
    in the history; Q1's 综合利用率 becomes (36 + 25 + 15) / 106 = 76 / 106, 处置利用率 still 98 / 110."""
    await _seed(conn)
    fixed = await submit_report(
        conn, make_report(**{**SEED[2], "unit": "t", "generated": 30, "utilised": 25, "disposed": 5}, reported_by="bob"),
        today=TODAY,
    )  # fmt: skip
    assert fixed.replaced and fixed.report.reported_by == "bob"
    [old] = await conn.fetch("SELECT * FROM solid_waste_report_history")
    assert (old["utilised_t"], old["disposed_t"], old["reported_by"], old["replaced_by"]) == (
        20.0,
        10.0,
        "alice",
        "bob",
    )
    assert old["report_id"] == fixed.id and old["replaced_at"] >= old["reported_at"]
    [q1] = await solid_waste_rates(conn, period="quarter", on=date(2025, 1, 1), park_id="p1", today=TODAY)
    assert (q1.disposal_utilisation_rate, q1.comprehensive_utilisation_rate) == (0.890909, 0.716981)


# --- through the API ---------------------------------------------------------------------------


async def test_through_the_api(settings: Settings, registry: None) -> None:
    """The same reports POSTed over HTTP give the same hand-worked rates (EXPECTED); refusals answer
    422 with their code and store nothing; a correction shows in the history; lists page by cursor."""
    async with serving_api(settings, None) as api:
        for body in SEED:
            answer = await api.post("/api/v1/solid-waste", json={**body, "reported_by": "alice"})
            assert answer.status_code == 201, answer.text
        stored = answer.json()
        assert stored["unit"] == "t" and stored["dumped"] == 0.5 and stored["month"] == "2025-03-01"
        assert stored["replaced"] is False and stored["reported_by"].startswith("alice [key:")

        before = await fetchval(settings.DATABASE_URL, "SELECT count(*) FROM solid_waste_reports")
        refusals = [
            ({**SEED[1], "generated": -40}, "negative_quantity"),
            ({**SEED[1], "unit": "lb"}, "unknown_unit"),
            ({**SEED[1], "generated": 41}, "identity_broken"),
            ({**SEED[1], "enterprise": "acme"}, "stock_negative"),  # acme holds no stock to draw 10 t from
            ({**SEED[1], "reported_by": ""}, "invalid_request"),  # omitted, the key is the reporter
        ]
        for body, code in refusals:
            answer = await api.post("/api/v1/solid-waste", json={"reported_by": "bob", **body})
            assert (answer.status_code, answer.json()["error"]) == (422, code), answer.text
        answer = await api.post("/api/v1/solid-waste", json={**SEED[1], "park_id": "nowhere", "reported_by": "bob"})
        assert (answer.status_code, answer.json()["error"]) == (404, "unknown_park")
        missing = {k: v for k, v in SEED[1].items() if k != "generated"}
        answer = await api.post("/api/v1/solid-waste", json={**missing, "reported_by": "bob"})
        assert (answer.status_code, answer.json()["error"]) == (422, "invalid_request")
        assert await fetchval(settings.DATABASE_URL, "SELECT count(*) FROM solid_waste_reports") == before

        for (park, period, on), (disposal, comprehensive) in EXPECTED.items():
            answer = await api.get("/api/v1/solid-waste/rates", params={"period": period, "date": on, "park_id": park})
            assert answer.status_code == 200, answer.text
            [row] = answer.json()["results"]
            assert (row["disposal_utilisation_rate"], row["comprehensive_utilisation_rate"]) == (
                disposal,
                comprehensive,
            )
        every = (await api.get("/api/v1/solid-waste/rates", params={"period": "year", "date": "2025-01-01"})).json()
        assert [r["park_id"] for r in every["results"]] == ["p1", "p2"]
        assert every["results"][1]["hazardous_dumped"] is True
        assert every["results"][0]["period_start"] == "2025-01-01"
        bad = await api.get("/api/v1/solid-waste/rates", params={"period": "day"})
        assert (bad.status_code, bad.json()["error"]) == (422, "invalid_request")
        bad = await api.get("/api/v1/solid-waste/rates", params={"park_id": "nowhere"})
        assert (bad.status_code, bad.json()["error"]) == (404, "unknown_park")

        # correction of February, then the history of that month
        fixed = await api.post(
            "/api/v1/solid-waste",
            json={**SEED[2], "unit": "t", "generated": 30, "utilised": 25, "disposed": 5, "reported_by": "bob"},
        )
        assert fixed.status_code == 201 and fixed.json()["replaced"] is True
        history = (await api.get("/api/v1/solid-waste/history", params={"park_id": "p1", "month": "2025-02"})).json()
        [old] = history["results"]
        person = {k: old[k].split(" [key:")[0] for k in ("reported_by", "replaced_by")}  # then the key
        assert (old["utilised"], old["disposed"], person["reported_by"], person["replaced_by"]) == (
            20.0,
            10.0,
            "alice",
            "bob",
        )
        assert history["next_cursor"] is None
        empty = await api.get("/api/v1/solid-waste/history", params={"park_id": "p1", "month": "2025-01"})
        assert empty.json()["results"] == []

        # p1's seven reports, three a page, by month
        months, cursor = [], None
        while True:
            params: dict[str, Any] = {"park_id": "p1", "limit": 3, **({"cursor": cursor} if cursor else {})}
            page = (await api.get("/api/v1/solid-waste", params=params)).json()
            months += [r["month"] for r in page["results"]]
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert months == [
            "2024-12-01",
            "2025-01-01",
            "2025-02-01",
            "2025-03-01",
            "2025-04-01",
            "2025-05-01",
            "2025-06-01",
        ]
        ranged = await api.get(
            "/api/v1/solid-waste", params={"park_id": "p2", "month_from": "2025-03", "month_to": "2025-03"}
        )
        assert len(ranged.json()["results"]) == 4
        park_level = await api.get("/api/v1/solid-waste", params={"park_id": "p2", "enterprise": "-"})
        assert len(park_level.json()["results"]) == 3
        bad = await api.get("/api/v1/solid-waste", params={"month_from": "March"})
        assert (bad.status_code, bad.json()["error"]) == (422, "bad_month")
        schema = (await api.get("/openapi.json")).json()
        assert {"/api/v1/solid-waste", "/api/v1/solid-waste/history", "/api/v1/solid-waste/rates"} <= set(
            schema["paths"]
        )
