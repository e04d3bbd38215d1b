"""The park assessment (compliance/assessment.py, docs/kpis.md#assessment): scores, ties, parks not ranked,
yellow cards; worked by hand, then through the pipeline and the API."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Any

import asyncpg
import pytest

from compliance.assessment import DEFAULT_WEIGHTS, Scorecard, assessment, build_card, score_and_rank, weights_from
from compliance.targets import province_targets
from ingest.service import IngestService
from parkwatch.settings import Settings, SettingsError, load_settings
from schemas.kpis import ASSESSMENT_INDICATORS
from schemas.registry import RegistryFile
from tests.conftest import ingest_for
from tests.helpers import cli_env, run_cli, serving_api
from tests.test_compliance import DAY, drain, hourly, send

# Half the points on each of the plan's two water targets; the other indicators weigh nothing.
HALVES = dict.fromkeys(weights_from(None), 0.0) | {"treatment_rate": 50, "treated_water_compliance_rate": 50}
TARGETS = {"treatment_rate": 0.95, "treated_water_compliance_rate": 1.0}


def card(park: str, treatment: float | None, treated: float | None) -> Scorecard:
    values = dict.fromkeys(HALVES, (None, None, "measured"))
    values["treatment_rate"] = (treatment, TARGETS["treatment_rate"], "measured")
    values["treated_water_compliance_rate"] = (treated, TARGETS["treated_water_compliance_rate"], "measured")
    return build_card(Scorecard(park_id=park, park_name=park, city="长沙" if park < "d" else "株洲"), values, HALVES)


def test_scores_ties_and_yellow_cards_worked_by_hand() -> None:
    """Score = 100 × value / target (at most 100), weighted: a 0.95 → 100 and 1.0 → 100: 100;
    b 0.855 → 90, 0.9 → 90: 90; c and g 0.95 → 100, 0.8 → 80: 90, tied with b on the score, after b
    on the first tie-break (treated water 0.9 > 0.8), tied with each other on everything (c before g
    by id, both marked tied); d 0.76 → 80, 0.9 → 90: 85; e 0.475 → 50, 1.0 → 100: 75; f has no
    treatment rate: half the weight, under the 70 % needed, so not ranked. Ranks a b c g d e; the
    bottom three g, d, e get the yellow card; f is listed, unranked, with no card."""
    cards = [card("a", 0.95, 1.0), card("b", 0.855, 0.9), card("c", 0.95, 0.8), card("d", 0.76, 0.9),
             card("e", 0.475, 1.0), card("f", None, 1.0), card("g", 0.95, 0.8)]  # fmt: skip
    score_and_rank(cards, HALVES)
    got = [(c.park_id, c.score, c.rank, c.tied, c.yellow_card) for c in cards]
    assert got == [
        ("a", 100.0, 1, False, False),
        ("b", 90.0, 2, False, False),
        ("c", 90.0, 3, True, False),
        ("g", 90.0, 4, True, True),
        ("d", 85.0, 5, False, True),
        ("e", 75.0, 6, False, True),
        ("f", None, None, False, False),
    ]
    f = cards[-1]
    assert f.status == "insufficient_data" and "treatment_rate" in f.missing
    e = cards[-2]
    assert e.card_reasons == ["treatment_rate: 47.5% (score 50.0 of 100, weight 50)"]
    assert [c.city_rank for c in cards[:6]] == [1, 2, 3, 1, 2, 3]  # 长沙 a b c; 株洲 g d e
    with pytest.raises(ValueError, match="unknown assessment indicator"):
        weights_from({"beauty": 10})


def park_registry(n: int) -> RegistryFile:
    """n parks, each a plant (inlet, outlet) and one enterprise discharging to it."""
    parks = [{"id": f"ap{k}", "name": f"考核园区{k}", "city": "长沙"} for k in range(n)]
    stations: list[dict[str, Any]] = []
    for k in range(n):
        stations += [
            {"id": f"ap{k}-in", "park_id": f"ap{k}", "kind": "wastewater_inlet", "parameters": ["w00000"]},
            {"id": f"ap{k}-out", "park_id": f"ap{k}", "kind": "wastewater_outlet", "standard": "GB18918-2002",
             "class": "1A", "construction_date": "2010-05-01", "inlet": f"ap{k}-in",
             "parameters": ["w01018", "w00000"]},
            {"id": f"ap{k}-e1", "park_id": f"ap{k}", "kind": "wastewater_outlet", "discharges_to": f"ap{k}-in",
             "parameters": ["w00000"]},
        ]  # fmt: skip
    return RegistryFile.model_validate({"parks": parks, "stations": stations})


@pytest.fixture
async def parks(settings: Settings) -> AsyncIterator[IngestService]:
    """Five parks ap0..ap4, and a sixth with no data at all."""
    registry = park_registry(5)
    registry.parks.append(registry.parks[0].model_copy(update={"id": "ap-empty", "name": "无数据园区"}))
    async with ingest_for(settings, registry) as service:
        yield service


async def test_a_yellow_card_from_simulated_inlet_and_outlet_data(settings: Settings, parks: IngestService) -> None:
    """1 June 2025, assessed for June as of 2 June 00:30 (one complete day), with the two water
    targets weighing half each. Enterprise outlets 100 L/s everywhere; the inlets 100, 98, 96, 80
    and 60 L/s: treatment rates 1, 0.98, 0.96, 0.8, 0.6, scoring 100, 100, 100, 84.21 and 63.16
    (value / 0.95). Outlet COD 20 mg/L (compliant with 1A's 50) except ap4's 70: its treated water
    scores 0. Scores 100, 100, 100, 92.1, 31.58; ap0-ap2 tie and are ordered by the treatment rate
    (the second tie-break, the first being equal). The bottom three ap2, ap3, ap4 get the yellow
    card; ap4's names its treated water first (the larger weighted loss), then its treatment rate.
    ap-empty has no data: not ranked, no card."""
    first = datetime(2025, 6, 1, tzinfo=DAY.tzinfo)
    for k, flow in enumerate([100, 98, 96, 80, 60]):
        await send(settings, f"ap{k}-in", hourly(f"ap{k}-in", first, range(24), {"w00000": flow}), park=f"ap{k}")
        await send(settings, f"ap{k}-e1", hourly(f"ap{k}-e1", first, range(24), {"w00000": 100}), park=f"ap{k}")
        cod = 70 if k == 4 else 20
        await send(settings, f"ap{k}-out", hourly(f"ap{k}-out", first, range(24), {"w00000": flow, "w01018": cod}),
                   park=f"ap{k}")  # fmt: skip
    await drain(settings)
    conn = await asyncpg.connect(settings.DATABASE_URL)
    try:
        june = await assessment(conn, period="month", on=first.date(), now=first + timedelta(days=1, minutes=30),
                                targets=province_targets(settings), weights=HALVES)  # fmt: skip
    finally:
        await conn.close()
    cards = {c.park_id: c for c in june.cards}
    assert [c.park_id for c in june.cards] == ["ap0", "ap1", "ap2", "ap3", "ap4", "ap-empty"]
    assert [cards[f"ap{k}"].indicators["treatment_rate"]["value"] for k in range(5)] == [1.0, 0.98, 0.96, 0.8, 0.6]
    assert cards["ap3"].score == pytest.approx((80 / 0.95 + 100) / 2, abs=1e-3)
    assert cards["ap4"].score == pytest.approx((60 / 0.95) / 2, abs=1e-3)
    assert [k for k, c in cards.items() if c.yellow_card] == ["ap2", "ap3", "ap4"]
    assert cards["ap4"].card_reasons[0].startswith("treated_water_compliance_rate: 0.0%")
    assert cards["ap4"].card_reasons[1].startswith("treatment_rate: 60.0%")
    assert cards["ap-empty"].status == "insufficient_data" and not cards["ap-empty"].yellow_card

    async with serving_api(settings, parks) as api:
        reported = await api.post("/api/v1/assessment/inputs", json={
            "park_id": "ap0", "period": "month", "date": "2025-06-15", "indicator": "facility_coverage",
            "value": 0.8, "reported_by": "园区管委会"})  # fmt: skip
        assert reported.status_code == 201, reported.text
        for body, code in [({"value": 1.8}, "bad_value"), ({"indicator": "beauty"}, "unknown_indicator")]:
            bad = await api.post("/api/v1/assessment/inputs", json={**reported.json(), "date": "2025-06-15", **body})
            assert (bad.status_code, bad.json()["error"]) == (422, code)
        listed = (await api.get("/api/v1/assessment", params={"period": "month", "date": "2025-06-01"})).json()
    ap0 = {c["park_id"]: c for c in listed["results"]}["ap0"]
    assert ap0["indicators"]["facility_coverage"]["reported_by"].startswith("园区管委会 [key:admin")
    assert ap0["indicators"]["facility_coverage"] | {"reported_at": None, "reported_by": "园区管委会"} == {
        "value": 0.8, "target": None, "weight": 5.0, "score": 80.0, "source": "reported",
        "reported_by": "园区管委会", "reported_at": None,
    }  # fmt: skip
    assert listed["tie_break"][0] == "treated_water_compliance_rate"

    printed = run_cli("assessment", "--period", "month", "--date", "2025-06-01", "--json", env=cli_env(settings))
    assert printed.returncode == 0, printed.stderr
    assert {c["park_id"] for c in json.loads(printed.stdout)["results"]} >= {"ap0", "ap-empty"}
    table = run_cli("assessment", "--period", "month", "--date", "2025-06-01", env=cli_env(settings))
    assert "ap-empty" in table.stdout and "insufficient_data" in table.stdout


def test_the_weights_setting_names_known_indicators_and_is_refused_clearly(monkeypatch: pytest.MonkeyPatch) -> None:
    assert tuple(DEFAULT_WEIGHTS) == ASSESSMENT_INDICATORS
    monkeypatch.setenv("PARKWATCH_ASSESSMENT_WEIGHTS", '{"treatment_rate": 30, "energy_intensity": 0}')
    assert load_settings().ASSESSMENT_WEIGHTS == {"treatment_rate": 30, "energy_intensity": 0}
    for value, says in [("{not json", "not valid JSON"), ('{"beauty": 3}', "unknown indicator(s) beauty"),
                        ('{"treatment_rate": -1}', "non-negative"),
                        (json.dumps(dict.fromkeys(ASSESSMENT_INDICATORS, 0)), "weigh something")]:  # fmt: skip
        monkeypatch.setenv("PARKWATCH_ASSESSMENT_WEIGHTS", value)
        with pytest.raises(SettingsError) as refused:
            load_settings()
        assert refused.value.problems[0][0] == "PARKWATCH_ASSESSMENT_WEIGHTS" and says in refused.value.problems[0][1]


def test_card_reasons_show_rates_as_percentages_and_energy_intensity_as_itself() -> None:
    from compliance.assessment import _shown  # noqa: PLC0415

    assert _shown("treatment_rate", 0.849) == "84.9%"
    assert _shown("energy_intensity", 0.567) == "0.567"  # tce per 10,000 yuan, not 56.7 %
    assert _shown("energy_intensity", 1.25) == "1.25"
