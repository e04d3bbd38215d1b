"""Table-driven vectors for every standard edition and special rule, computed by hand from docs/reference/standards.md.

Every expected number below comes from docs/reference/standards.md (tables A1-A7, rules
B1-B6), never from the code: the arithmetic is written next to a vector where it is not obvious.
Each vector's pytest id names the clause it checks; the answer's `rule` is asserted as well.
Pure tests: no database, no broker.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from compliance.evaluate import evaluate
from schemas.catalogue import Standard, catalogue
from schemas.parameters import catalog as parameters

STANDARDS_DIR = Path(__file__).resolve().parent.parent / "schemas" / "standards"
EDITIONS = (
    "GB18918-2002",
    "GB8978-1996",
    "GB3095-2012",
    "GB3095-2026",
    "HJ633-2012",
    "HJ633-2026",
    "GB4915-2013",
    "GB13223-2011",
    "GB13271-2014",
    "GB28662-2012",
    "ULE-POWER-2015",
    "ULE-STEEL-2019",
    "ULE-CEMENT-2024",
)
D = "2024-06-01"  # a date on which every stack and water edition is in force
D12 = "2025-06-01"  # GB 3095-2012 / HJ 633-2012 in force
D26 = "2026-06-01"  # GB 3095-2026 transition / HJ 633-2026 in force


@pytest.fixture(scope="session", autouse=True)
def _services() -> None:
    """Pure tests: override the conftest check for PostgreSQL and Mosquitto."""


# --------------------------------------------------------------------------------------------
# Limit questions
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Want:
    """The expected answer to one limit question."""

    verdict: str
    limit: float | list[float] | None
    judged: float | None
    multiple: float | None
    standard: str
    table: str | None
    item: str | None
    note: str | None = None  # a fragment the rule's note must contain
    unit: str | None = None  # the answer's unit, when asserted
    value: float | None = None  # the value as given, in the limit's unit (unit conversions)
    confidence: str | None = None  # the rule's confidence, when asserted
    rel: float = 1e-9  # tolerance on value/value_judged (ppm conversions: the molar volume)
    multiple_abs: float = 1e-4  # the code rounds the multiple to 4 decimals


def q(
    standard: str,
    cls: str,
    parameter: str,
    period: str,
    value: Any,
    *,
    date: str = D,
    unit: str | None = None,
    **context: Any,
) -> dict[str, Any]:
    """A limit request."""
    doc: dict[str, Any] = {
        "standard": standard,
        "class": cls,
        "parameter": parameter,
        "period": period,
        "value": value,
        "date": date,
    }
    if unit is not None:
        doc["unit"] = unit
    if context:
        doc["context"] = context
    return doc


def ok(
    limit: float | list[float], judged: float, standard: str, table: str | None, item: str | None, **kw: Any
) -> Want:
    """A compliant answer (multiple 0 for a maximum, None for a range)."""
    multiple = None if isinstance(limit, list) else 0.0
    return Want("compliant", limit, judged, multiple, standard, table, item, **kw)


def over(
    limit: float | list[float],
    judged: float,
    multiple: float | None,
    standard: str,
    table: str | None,
    item: str | None,
    **kw: Any,
) -> Want:
    """An exceedance answer."""
    return Want("exceedance", limit, judged, multiple, standard, table, item, **kw)


def unsure(judged: float, standard: str, table: str | None, item: str | None, **kw: Any) -> Want:
    """insufficient_data: the limit depends on a fact not given."""
    return Want("insufficient_data", None, judged, None, standard, table, item, **kw)


def vec(ident: str, doc: dict[str, Any], want: Any, bug: str | None = None) -> Any:
    """One vector; `bug` marks a disagreement with docs/reference/standards.md (strict xfail)."""
    marks = [pytest.mark.xfail(reason=f"BUG: {bug}", strict=True)] if bug else []
    return pytest.param(doc, want, id=ident, marks=marks)


def _tables(label: str | None) -> set[int]:
    """Table numbers a rule's table label names: 'Table 1', 'Table 1 / Table 2', 'Tables 1-3'."""
    if not label:
        return set()
    numbers = {int(n) for n in re.findall(r"\d+", label)}
    for low, high in re.findall(r"(\d+)\s*-\s*(\d+)", label):
        numbers |= set(range(int(low), int(high) + 1))
    return numbers


def check_limit(got: dict[str, Any], want: Want) -> None:
    """Assert one limit answer against the hand-computed expectation."""
    assert "error" not in got, got
    assert got["verdict"] == want.verdict, got
    if isinstance(want.limit, list) or want.limit is None:
        assert got["limit"] == want.limit, got
    else:
        assert got["limit"] == pytest.approx(want.limit), got
    if want.judged is None:
        assert got["value_judged"] is None
    else:
        assert got["value_judged"] == pytest.approx(want.judged, rel=want.rel), got
    if want.multiple is None:
        assert got["exceedance_multiple"] is None, got
    else:
        assert got["exceedance_multiple"] == pytest.approx(want.multiple, abs=want.multiple_abs), got
    if want.value is not None:
        assert got["value"] == pytest.approx(want.value, rel=want.rel), got
    if want.unit is not None:
        assert got["unit"] == want.unit, got
    rule = got["rule"]
    assert rule["standard"] == want.standard, rule
    if want.table is None:
        assert rule["table"] is None, rule
    else:
        assert rule["table"] == want.table or _tables(want.table) <= _tables(rule["table"]), rule
    assert rule["item"] == want.item, rule
    if want.note is not None:
        assert want.note in (rule["note"] or ""), rule
    if want.confidence is not None:
        assert rule["confidence"] == want.confidence, rule


# GB 18918-2002 (docs/reference/standards.md A1): Table 1 daily averages, mg/L; Table 2 class-1 metals.
G18 = "GB18918-2002"
GB18918_VECTORS = [
    vec(
        "GB 18918-2002 Table 1 item 1 COD 1A: 50 = limit 50 -> compliant",
        q(G18, "1A", "w01018", "day", 50),
        ok(50, 50, G18, "Table 1", "1 COD"),
    ),
    # (50.1 - 50) / 50 = 0.002
    vec(
        "GB 18918-2002 Table 1 item 1 COD 1A: 50.1 > 50 -> exceedance 0.002",
        q(G18, "1A", "w01018", "day", 50.1),
        over(50, 50.1, 0.002, G18, "Table 1", "1 COD"),
    ),
    # (25 - 20) / 20 = 0.25
    vec(
        "GB 18918-2002 Table 1 item 3 SS 1B: 25 > 20 -> 0.25",
        q(G18, "1B", "w01012", "day", 25),
        over(20, 25, 0.25, G18, "Table 1", "3 SS"),
    ),
    vec(
        "GB 18918-2002 Table 1 item 11 pH 1A: 9.5 outside 6-9 -> exceedance",
        q(G18, "1A", "w01001", "day", 9.5),
        over([6, 9], 9.5, None, G18, "Table 1", "11 pH"),
    ),
    vec(
        "GB 18918-2002 Table 1 item 11 pH 2: 6.0 on the range bound -> compliant",
        q(G18, "2", "w01001", "day", 6.0),
        ok([6, 9], 6.0, G18, "Table 1", "11 pH"),
    ),
    vec(
        "GB 18918-2002 Table 1 item 12 fecal coliform 1A: 1000 count/L = 10^3 -> compliant",
        q(G18, "1A", "w02003", "day", 1000, unit="个/L"),
        ok(1000, 1000, G18, "Table 1", "12 粪大肠菌群数"),
    ),
    # (0.002 - 0.001) / 0.001 = 1.0
    vec(
        "GB 18918-2002 Table 2 total Hg class 2: 0.002 > 0.001 -> 1.0",
        q(G18, "2", "w20111", "day", 0.002),
        over(0.001, 0.002, 1.0, G18, "Table 2", "总汞"),
    ),
]

# GB 8978-1996 Table 4 (units built from 1998-01-01) and Table 1 (docs/reference/standards.md A2); sector "other" by default.
G89 = "GB8978-1996"
GB8978_VECTORS = [
    vec(
        "GB 8978-1996 Table 4 COD other units class 2: 150 = 150 -> compliant",
        q(G89, "2", "w01018", "day", 150),
        ok(150, 150, G89, "Table 4", "5 COD", note="其他排污单位"),
    ),
    # (66 - 60) / 60 = 0.1
    vec(
        "GB 8978-1996 Table 4 COD petrochemical class 1: 66 > 60 -> 0.1",
        q(G89, "1", "w01018", "day", 66, sector="petrochemical"),
        over(60, 66, 0.1, G89, "Table 4", "5 COD", note="石油化工"),
    ),
    # (30 - 25) / 25 = 0.2
    vec(
        "GB 8978-1996 Table 4 NH3-N other units class 2: 30 > 25 -> 0.2",
        q(G89, "2", "w21003", "day", 30, sector="other"),
        over(25, 30, 0.2, G89, "Table 4", "11 氨氮"),
    ),
    vec(
        "GB 8978-1996 Table 4 NH3-N dyes class 2: 45 <= 50 -> compliant",
        q(G89, "2", "w21003", "day", 45, sector="dyes"),
        ok(50, 45, G89, "Table 4", "11 氨氮"),
    ),
    # (350 - 300) / 300 = 0.16667
    vec(
        "GB 8978-1996 Table 4 SS mining class 2: 350 > 300 -> 0.1667",
        q(G89, "2", "w01012", "day", 350, sector="mining"),
        over(300, 350, 1 / 6, G89, "Table 4", "3 SS"),
    ),
    vec(
        "GB 8978-1996 Table 4 BOD5 cane sugar class 3: 600 = 600 -> compliant",
        q(G89, "3", "w01017", "day", 600, sector="cane_sugar"),
        ok(600, 600, G89, "Table 4", "4 BOD5"),
    ),
    vec(
        "GB 8978-1996 Table 1 total Hg (any class) class 3: 0.05 = 0.05 -> compliant",
        q(G89, "3", "w20111", "day", 0.05),
        ok(0.05, 0.05, G89, "Table 1", "1 总汞"),
    ),
]

# GB 3095-2012 Table 1/2 (docs/reference/standards.md A3), µg/m³ except CO mg/m³.
A12 = "GB3095-2012"
GB3095_2012_VECTORS = [
    vec(
        "GB 3095-2012 Table 1 item 6 PM2.5 24 h class 2: 75 = 75 -> compliant",
        q(A12, "2", "a34004", "24h", 75, date=D12),
        ok(75, 75, A12, "Table 1", "6 PM2.5 24 小时平均"),
    ),
    # (76 - 75) / 75 = 0.013333
    vec(
        "GB 3095-2012 Table 1 item 6 PM2.5 24 h class 2: 76 > 75 -> 0.0133",
        q(A12, "2", "a34004", "24h", 76, date=D12),
        over(75, 76, 1 / 75, A12, "Table 1", "6 PM2.5 24 小时平均"),
    ),
    # (150.5 - 150) / 150 = 0.003333
    vec(
        "GB 3095-2012 Table 1 item 1 SO2 1 h class 1: 150.5 > 150 -> 0.0033",
        q(A12, "1", "a21026", "1h", 150.5, date=D12),
        over(150, 150.5, 0.5 / 150, A12, "Table 1", "1 SO2 1 小时平均"),
    ),
    vec(
        "GB 3095-2012 Table 1 item 4 O3 daily max 8 h class 1: 100 = 100 -> compliant",
        q(A12, "1", "a05024", "8h", 100, date=D12),
        ok(100, 100, A12, "Table 1", "4 O3 日最大 8 小时平均"),
    ),
    vec(
        "GB 3095-2012 Table 1 item 3 CO 24 h: 4.4 mg/m3 > 4 -> 0.1",
        q(A12, "2", "a21005", "24h", 4.4, date=D12),
        over(4, 4.4, 0.1, A12, "Table 1", "3 CO 24 小时平均"),
    ),
    vec(
        "GB 3095-2012 Table 2 NOx 24 h: 120 > 100 -> 0.2",
        q(A12, "2", "a21002", "24h", 120, date=D12),
        over(100, 120, 0.2, A12, "Table 2", "2 NOx 24 小时平均"),
    ),
    vec(
        "GB 3095-2012 Table 1 item 5 PM10 annual class 2: 70 = 70 -> compliant",
        q(A12, "2", "a34002", "annual", 70, date=D12),
        ok(70, 70, A12, "Table 1", "5 PM10 年平均"),
    ),
]

# GB 3095-2026 Table 1/2 (docs/reference/standards.md A3): transition to 2030-12-31, final from 2031-01-01.
A26 = "GB3095-2026"
GB3095_2026_VECTORS = [
    vec(
        "GB 3095-2026 Table 1 item 6 PM2.5 24 h class 2 transition (2026-03-01): 60 = 60 -> compliant",
        q(A26, "2", "a34004", "24h", 60, date="2026-03-01"),
        ok(60, 60, A26, "Table 1", "6 PM2.5 24 小时平均", note="transition"),
    ),
    # (55 - 50) / 50 = 0.1
    vec(
        "GB 3095-2026 Table 1 item 6 PM2.5 24 h class 2 final (2031-01-01): 55 > 50 -> 0.1",
        q(A26, "2", "a34004", "24h", 55, date="2031-01-01"),
        over(50, 55, 0.1, A26, "Table 1", "6 PM2.5 24 小时平均", note="final"),
    ),
    # final SO2 24 h class 2 is 50: (100 - 50) / 50 = 1.0
    vec(
        "GB 3095-2026 Table 1 item 1 SO2 24 h class 2 final: 100 > 50 -> 1.0",
        q(A26, "2", "a21026", "24h", 100, date="2031-01-01"),
        over(50, 100, 1.0, A26, "Table 1", "1 SO2 24 小时平均"),
    ),
    vec(
        "GB 3095-2026 Table 1 item 2 NO2 24 h final: 60 > 50 -> 0.2",
        q(A26, "1", "a21004", "24h", 60, date="2031-06-01"),
        over(50, 60, 0.2, A26, "Table 1", "2 NO2 24 小时平均"),
    ),
    vec(
        "GB 3095-2026 Table 1 item 5 PM10 annual class 2 final: 55 > 50 -> 0.1",
        q(A26, "2", "a34002", "annual", 55, date="2031-06-01"),
        over(50, 55, 0.1, A26, "Table 1", "5 PM10 年平均"),
    ),
    vec(
        "GB 3095-2026 Table 1 item 4 O3 daily max 8 h class 2: 160 = 160 -> compliant",
        q(A26, "2", "a05024", "8h", 160, date="2027-01-01"),
        ok(160, 160, A26, "Table 1", "4 O3 日最大 8 小时平均"),
    ),
    vec(
        "GB 3095-2026 Table 2 NOx 24 h to 2030-12-31: 100 = 100 -> compliant",
        q(A26, "1", "a21002", "24h", 100, date="2030-12-31"),
        ok(100, 100, A26, "Table 2", "2 NOx 24 小时平均"),
    ),
    # (100 - 70) / 70 = 0.428571
    vec(
        "GB 3095-2026 Table 2 NOx 24 h from 2031-01-01: 100 > 70 -> 0.4286",
        q(A26, "1", "a21002", "24h", 100, date="2031-01-01"),
        over(70, 100, 30 / 70, A26, "Table 2", "2 NOx 24 小时平均"),
    ),
]

# GB 4915-2013 (docs/reference/standards.md A5 cement, A6): kiln 10 % O2, independent-heat dryer 8 %, others as measured.
C13 = "GB4915-2013"
GB4915_VECTORS = [
    # 25 x (21-10)/(21-12) = 275/9 = 30.5556; (275/9 - 30)/30 = 1/54 = 0.018519
    vec(
        "GB 4915-2013 Table 1 kiln PM at 10% O2: 25 @ 12% -> 30.56 > 30",
        q(C13, "kiln", "a34013", "hour", 25, o2_pct=12),
        over(30, 275 / 9, 1 / 54, C13, "Table 1", "颗粒物"),
    ),
    # 170 x 11/13 = 143.846
    vec(
        "GB 4915-2013 Table 1 kiln SO2 at 10% O2: 170 @ 8% -> 143.85 <= 200",
        q(C13, "kiln", "a21026", "hour", 170, o2_pct=8),
        ok(200, 1870 / 13, C13, "Table 1", "二氧化硫"),
    ),
    vec(
        "GB 4915-2013 Table 1 kiln NOx: 400 @ 10% = limit 400 -> compliant",
        q(C13, "kiln", "a21002", "hour", 400, o2_pct=10),
        ok(400, 400, C13, "Table 1", "氮氧化物 (以 NO2 计)"),
    ),
    # (330 - 320) / 320 = 0.03125
    vec(
        "GB 4915-2013 Table 2 special kiln NOx: 330 @ 10% > 320 -> 0.0313",
        q(C13, "kiln-special", "a21002", "hour", 330, o2_pct=10),
        over(320, 330, 10 / 320, C13, "Table 2", "氮氧化物 (以 NO2 计)"),
    ),
    vec(
        "GB 4915-2013 Table 1 kiln NH3 (de-NOx with ammonia): 9 @ 10% <= 10",
        q(C13, "kiln", "a21001", "hour", 9, o2_pct=10),
        ok(10, 9, C13, "Table 1", "氨"),
    ),
    vec(
        "GB 4915-2013 Table 1 other ventilation PM, no reference O2: 22 as measured > 20 -> 0.1",
        q(C13, "ventilation", "a34013", "hour", 22),
        over(20, 22, 0.1, C13, "Table 1", "颗粒物"),
    ),
    # 21 x 11/7.7 = 30 exactly
    vec(
        "GB 4915-2013 Table 1 kiln PM: 21 @ 13.3% = exactly 30 -> compliant",
        q(C13, "kiln", "a34013", "hour", 21, o2_pct=13.3),
        ok(30, 30, C13, "Table 1", "颗粒物"),
    ),
]

# GB 13271-2014 (docs/reference/standards.md A5 boilers): coal 9 % O2, oil/gas 3.5 %.
B14 = "GB13271-2014"
GB13271_VECTORS = [
    # 40 x (21-9)/(21-12) = 53.333; (53.333 - 50)/50 = 0.066667
    vec(
        "GB 13271-2014 Table 2 new coal boiler PM at 9% O2: 40 @ 12% -> 53.33 > 50",
        q(B14, "coal-new", "a34013", "hour", 40, o2_pct=12),
        over(50, 160 / 3, 1 / 15, B14, "Table 2", "颗粒物"),
    ),
    # 150 x (21-3.5)/(21-8) = 2625/13 = 201.923; 1.923/200 = 0.009615
    vec(
        "GB 13271-2014 Table 2 new gas boiler NOx at 3.5% O2: 150 @ 8% -> 201.92 > 200",
        q(B14, "gas-new", "a21002", "hour", 150, o2_pct=8),
        over(200, 2625 / 13, (2625 / 13 - 200) / 200, B14, "Table 2", "氮氧化物"),
    ),
    # 160 x 17.5/14 = 200 exactly (exact in binary too)
    vec(
        "GB 13271-2014 Table 2 new gas boiler NOx: 160 @ 7% = exactly 200 -> compliant",
        q(B14, "gas-new", "a21002", "hour", 160, o2_pct=7),
        ok(200, 200, B14, "Table 2", "氮氧化物"),
    ),
    vec(
        "GB 13271-2014 Table 1 in-use coal boiler SO2, Guangxi/Chongqing/Sichuan/Guizhou 550: 550 @ 9%",
        q(B14, "coal-in-use-southwest", "a21026", "hour", 550, o2_pct=9),
        ok(550, 550, B14, "Table 1", "二氧化硫"),
    ),
    # (550 - 400) / 400 = 0.375
    vec(
        "GB 13271-2014 Table 1 in-use coal boiler SO2: 550 @ 9% > 400 -> 0.375",
        q(B14, "coal-in-use", "a21026", "hour", 550, o2_pct=9),
        over(400, 550, 0.375, B14, "Table 1", "二氧化硫"),
    ),
    # 90 x 17.5/16 = 98.4375
    vec(
        "GB 13271-2014 Table 3 special oil boiler SO2: 90 @ 5% -> 98.44 <= 100",
        q(B14, "oil-special", "a21026", "hour", 90, o2_pct=5),
        ok(100, 98.4375, B14, "Table 3", "二氧化硫"),
    ),
    # 36.25 x 12/8.7 = 50 exactly
    vec(
        "GB 13271-2014 Table 2 new coal boiler PM: 36.25 @ 12.3% = exactly 50 -> compliant",
        q(B14, "coal-new", "a34013", "hour", 36.25, o2_pct=12.3),
        ok(50, 50, B14, "Table 2", "颗粒物"),
    ),
]

# GB 13223-2011 (docs/reference/standards.md A5 thermal power): coal 6 % O2 [S2]; PM [M]; gas turbine 15 % [M].
P11 = "GB13223-2011"
GB13223_VECTORS = [
    vec(
        "GB 13223-2011 Table 1 new coal boiler SO2 100 [S1]: 110 @ 6% -> 0.1",
        q(P11, "coal-new", "a21026", "hour", 110, o2_pct=6),
        over(100, 110, 0.1, P11, "Table 1", "二氧化硫", confidence="S1"),
    ),
    # 90 x (21-6)/(21-8) = 1350/13 = 103.846; 3.846/100 = 0.038462
    vec(
        "GB 13223-2011 Table 1 new coal boiler NOx at 6% O2: 90 @ 8% -> 103.85 > 100",
        q(P11, "coal-new", "a21002", "hour", 90, o2_pct=8),
        over(100, 1350 / 13, (1350 / 13 - 100) / 100, P11, "Table 1", "氮氧化物 (以 NO2 计)"),
    ),
    vec(
        "GB 13223-2011 Table 1 W-flame / old coal boiler NOx 200: 190 @ 6% -> compliant",
        q(P11, "coal-existing-w-flame", "a21002", "hour", 190, o2_pct=6),
        ok(200, 190, P11, "Table 1", "氮氧化物 (以 NO2 计)"),
    ),
    vec(
        "GB 13223-2011 Table 1 coal boiler PM 30 [M, unconfirmed]: 28 @ 6% -> compliant, confidence M",
        q(P11, "coal-new", "a34013", "hour", 28, o2_pct=6),
        ok(30, 28, P11, "Table 1", "烟尘", confidence="M"),
    ),
    vec(
        "GB 13223-2011 Table 1 gas turbine NOx 50 at 15% O2 [M]: 50 @ 15% -> compliant",
        q(P11, "gas-turbine", "a21002", "hour", 50, o2_pct=15),
        ok(50, 50, P11, "Table 1", "氮氧化物 (以 NO2 计)"),
    ),
    # 58 x 15/8.7 = 100 exactly
    vec(
        "GB 13223-2011 Table 1 new coal boiler SO2: 58 @ 12.3% = exactly 100 -> compliant",
        q(P11, "coal-new", "a21026", "hour", 58, o2_pct=12.3),
        ok(100, 100, P11, "Table 1", "二氧化硫"),
    ),
]

# GB 28662-2012 (docs/reference/standards.md A5 steel): all numbers [M]; sinter 16 % O2, grate-kiln 18 % [S1].
S12 = "GB28662-2012"
GB28662_VECTORS = [
    vec(
        "GB 28662-2012 Table 2 sinter SO2 200 [M] at 16% O2: 180 @ 16% -> compliant, confidence M",
        q(S12, "sinter", "a21026", "hour", 180, o2_pct=16),
        ok(200, 180, S12, "Table 2", "二氧化硫", confidence="M"),
    ),
    # 40 x (21-16)/(21-18) = 66.667; (66.667 - 50)/50 = 0.33333
    vec(
        "GB 28662-2012 Table 2 sinter PM 50 [M]: 40 @ 18% -> 66.67 > 50 -> 0.3333",
        q(S12, "sinter", "a34013", "hour", 40, o2_pct=18),
        over(50, 200 / 3, 1 / 3, S12, "Table 2", "颗粒物"),
    ),
    # other equipment: no reference O2; (35 - 30)/30 = 0.16667
    vec(
        "GB 28662-2012 Table 2 other equipment PM 30 [M], as measured: 35 -> 0.1667",
        q(S12, "other", "a34013", "hour", 35),
        over(30, 35, 1 / 6, S12, "Table 2", "颗粒物"),
    ),
    # 200 x (21-18)/(21-19) = 300
    vec(
        "GB 28662-2012 Table 2 grate-kiln NOx 300 at 18% O2: 200 @ 19% = exactly 300 -> compliant",
        q(S12, "pellet-grate-kiln", "a21002", "hour", 200, o2_pct=19),
        ok(300, 300, S12, "Table 2", "氮氧化物 (以 NO2 计)"),
    ),
    vec(
        "GB 28662-2012 Table 1 existing sinter SO2 600 [M]: 600 @ 16% -> compliant",
        q(S12, "sinter-t1", "a21026", "hour", 600, o2_pct=16),
        ok(600, 600, S12, "Table 1", "二氧化硫"),
    ),
]

# Coal-power ultra-low (docs/reference/standards.md A5): 10 / 35 / 50 at 6 % O2.
UP = "ULE-POWER-2015"
ULE_POWER_VECTORS = [
    vec(
        "ULE-POWER-2015 PM 10 at 6% O2: 10 @ 6% -> compliant",
        q(UP, "coal", "a34013", "hour", 10, o2_pct=6),
        ok(10, 10, UP, None, "烟尘"),
    ),
    # 30 x 15/12 = 37.5; 2.5/35 = 0.071429
    vec(
        "ULE-POWER-2015 SO2 35 at 6% O2: 30 @ 9% -> 37.5 > 35",
        q(UP, "coal", "a21026", "hour", 30, o2_pct=9),
        over(35, 37.5, 2.5 / 35, UP, None, "二氧化硫"),
    ),
    # 45 x 15/18 = 37.5
    vec(
        "ULE-POWER-2015 NOx 50 at 6% O2: 45 @ 3% -> 37.5 <= 50",
        q(UP, "coal", "a21002", "hour", 45, o2_pct=3),
        ok(50, 37.5, UP, None, "氮氧化物"),
    ),
    # 13.3 x 15/5.7 = 35 exactly
    vec(
        "ULE-POWER-2015 SO2 35: 13.3 @ 15.3% = exactly 35 -> compliant",
        q(UP, "coal", "a21026", "hour", 13.3, o2_pct=15.3),
        ok(35, 35, UP, None, "二氧化硫"),
    ),
]

# Steel ultra-low (docs/reference/standards.md A5): sinter head 10/35/50 at 16 % O2 [M]; other sources 10/50/200 as measured.
US = "ULE-STEEL-2019"
ULE_STEEL_VECTORS = [
    # 40 x 5/4 = 50
    vec(
        "ULE-STEEL-2019 sinter head NOx 50 at 16% O2: 40 @ 17% = exactly 50 -> compliant",
        q(US, "sinter-head", "a21002", "hour", 40, o2_pct=17),
        ok(50, 50, US, None, "氮氧化物"),
    ),
    # 30 x 5/3 = 50; (50 - 35)/35 = 0.428571
    vec(
        "ULE-STEEL-2019 sinter head SO2 35: 30 @ 18% -> 50 > 35 -> 0.4286",
        q(US, "sinter-head", "a21026", "hour", 30, o2_pct=18),
        over(35, 50, 15 / 35, US, None, "二氧化硫"),
    ),
    vec(
        "ULE-STEEL-2019 sinter head PM 10: 12 @ 16% -> 0.2",
        q(US, "sinter-head", "a34013", "hour", 12, o2_pct=16),
        over(10, 12, 0.2, US, None, "颗粒物"),
    ),
    vec(
        "ULE-STEEL-2019 other sources NOx 200, as measured: 210 -> 0.05",
        q(US, "other", "a21002", "hour", 210),
        over(200, 210, 0.05, US, None, "氮氧化物"),
    ),
    vec(
        "ULE-STEEL-2019 other sources SO2 50, as measured: 50 -> compliant",
        q(US, "other", "a21026", "hour", 50),
        ok(50, 50, US, None, "二氧化硫"),
    ),
    # Pellet roasting on a grate-kiln or belt machine is corrected to 18 % (GB 28662 amendment to
    # 4.9), not to the sinter head's 16 %: 30 @ 19 % -> 30 x 3/2 = 45 > 35 (at 16 % it was 75).
    vec(
        "ULE-STEEL-2019 grate-kiln pellet SO2 35 at 18% O2 (GB 28662 4.9 amendment): 30 @ 19% -> 45 -> 0.2857",
        q(US, "pellet-grate-kiln", "a21026", "hour", 30, o2_pct=19),
        over(35, 45, 10 / 35, US, None, "二氧化硫"),
    ),
]

# Cement ultra-low (docs/reference/standards.md A5): kiln 10 / 35 / 50 at 10 % O2 [S1].
UC = "ULE-CEMENT-2024"
ULE_CEMENT_VECTORS = [
    # 9 x 11/9 = 11; (11 - 10)/10 = 0.1
    vec(
        "ULE-CEMENT-2024 kiln PM 10 at 10% O2: 9 @ 12% -> 11 > 10 -> 0.1",
        q(UC, "kiln", "a34013", "hour", 9, o2_pct=12),
        over(10, 11, 0.1, UC, None, "颗粒物"),
    ),
    vec(
        "ULE-CEMENT-2024 kiln NOx 50: 50 @ 10% -> compliant",
        q(UC, "kiln", "a21002", "hour", 50, o2_pct=10),
        ok(50, 50, UC, None, "氮氧化物"),
    ),
    # 30 x 11/10 = 33
    vec(
        "ULE-CEMENT-2024 kiln SO2 35: 30 @ 11% -> 33 <= 35",
        q(UC, "kiln", "a21026", "hour", 30, o2_pct=11),
        ok(35, 33, UC, None, "二氧化硫"),
    ),
    # 7 x 11/7.7 = 10 exactly
    vec(
        "ULE-CEMENT-2024 kiln PM 10: 7 @ 13.3% = exactly 10 -> compliant",
        q(UC, "kiln", "a34013", "hour", 7, o2_pct=13.3),
        ok(10, 10, UC, None, "颗粒物"),
    ),
]

# GB 18918 Table 1 item 8 note 2 (docs/reference/standards.md A1 ②, B1.3): > 12 C outside brackets, <= 12 C in brackets.
NH3 = "8 NH3-N"
WINTER_NH3N_VECTORS = [
    vec(
        "GB 18918-2002 Table 1 item 8 note 2: 1A at 12.5 C (> 12) -> 5; 6 -> 0.2",
        q(G18, "1A", "w21003", "day", 6, water_temp_c=12.5),
        over(5, 6, 0.2, G18, "Table 1", NH3, note="> 12"),
    ),
    vec(
        "GB 18918-2002 Table 1 item 8 note 2: 1A at 12 C (<= 12) -> (8); 6 compliant",
        q(G18, "1A", "w21003", "day", 6, water_temp_c=12),
        ok(8, 6, G18, "Table 1", NH3, note="≤ 12"),
    ),
    vec(
        "GB 18918-2002 Table 1 item 8 note 2: class 2 at 10 C -> (30); 28 compliant",
        q(G18, "2", "w21003", "day", 28, water_temp_c=10),
        ok(30, 28, G18, "Table 1", NH3),
    ),
    # (28 - 25)/25 = 0.12
    vec(
        "GB 18918-2002 Table 1 item 8 note 2: class 2 at 15 C -> 25; 28 -> 0.12",
        q(G18, "2", "w21003", "day", 28, water_temp_c=15),
        over(25, 28, 0.12, G18, "Table 1", NH3),
    ),
    vec(
        "GB 18918-2002 Table 1 item 8 note 2: 1B at 12 C -> (15); 15 = limit -> compliant",
        q(G18, "1B", "w21003", "day", 15, water_temp_c=12),
        ok(15, 15, G18, "Table 1", NH3),
    ),
    # (15.1 - 15)/15 = 0.006667
    vec(
        "GB 18918-2002 Table 1 item 8 note 2: 1B at 11 C -> (15); 15.1 -> 0.0067",
        q(G18, "1B", "w21003", "day", 15.1, water_temp_c=11),
        over(15, 15.1, 0.1 / 15, G18, "Table 1", NH3),
    ),
    vec(
        "GB 18918-2002 Table 1 item 8 note 2: temperature unknown, 1A 4 meets 5 and 8 -> compliant",
        q(G18, "1A", "w21003", "day", 4),
        ok(5, 4, G18, "Table 1", NH3),
    ),
    vec(
        "GB 18918-2002 Table 1 item 8 note 2: temperature unknown, 1A 5 meets 5 and 8 -> compliant",
        q(G18, "1A", "w21003", "day", 5),
        ok(5, 5, G18, "Table 1", NH3),
    ),
    # exceeds both 5 and (8): the lenient limit's multiple (9 - 8)/8 = 0.125
    vec(
        "GB 18918-2002 Table 1 item 8 note 2: temperature unknown, 1A 9 exceeds 5 and 8 -> exceedance",
        q(G18, "1A", "w21003", "day", 9),
        over(8, 9, 0.125, G18, "Table 1", NH3),
    ),
    vec(
        "GB 18918-2002 Table 1 item 8 note 2: temperature unknown, 1A 6 (> 5, <= 8) -> insufficient_data",
        q(G18, "1A", "w21003", "day", 6),
        unsure(6, G18, "Table 1", NH3),
    ),
]

# GB 18918 Table 1 item 9 TP by construction (EIA approval) date, 4.5 (docs/reference/standards.md A1 9a/9b, B1.4).
TP = "9 TP"
TP_VECTORS = [
    vec(
        "GB 18918-2002 Table 1 item 9a TP 1A built 2005-12-31 -> 1; 0.8 compliant",
        q(G18, "1A", "w21011", "day", 0.8, construction_date="2005-12-31"),
        ok(1, 0.8, G18, "Table 1", TP),
    ),
    # (0.8 - 0.5)/0.5 = 0.6
    vec(
        "GB 18918-2002 Table 1 item 9b TP 1A built 2006-01-01 -> 0.5; 0.8 -> 0.6",
        q(G18, "1A", "w21011", "day", 0.8, construction_date="2006-01-01"),
        over(0.5, 0.8, 0.6, G18, "Table 1", TP),
    ),
    vec(
        "GB 18918-2002 Table 1 item 9a TP 1B built 2005-06-01 -> 1.5; 1.5 compliant",
        q(G18, "1B", "w21011", "day", 1.5, construction_date="2005-06-01"),
        ok(1.5, 1.5, G18, "Table 1", TP),
    ),
    vec(
        "GB 18918-2002 Table 1 item 9b TP 1B built 2010-01-01 -> 1; 1.5 -> 0.5",
        q(G18, "1B", "w21011", "day", 1.5, construction_date="2010-01-01"),
        over(1, 1.5, 0.5, G18, "Table 1", TP),
    ),
    vec(
        "GB 18918-2002 Table 1 item 9 TP 1A date unknown: 0.8 (<= 1, > 0.5) -> insufficient_data",
        q(G18, "1A", "w21011", "day", 0.8),
        unsure(0.8, G18, "Table 1", TP),
    ),
    vec(
        "GB 18918-2002 Table 1 item 9 TP 1A date unknown: 0.4 meets 1 and 0.5 -> compliant",
        q(G18, "1A", "w21011", "day", 0.4),
        ok(0.5, 0.4, G18, "Table 1", TP),
    ),
    # class 2: 3 both before and after; (3.5 - 3)/3 = 0.16667
    vec(
        "GB 18918-2002 Table 1 item 9 TP class 2 date unknown: 3 either way; 3.5 -> 0.1667",
        q(G18, "2", "w21011", "day", 3.5),
        over(3, 3.5, 1 / 6, G18, "Table 1", TP),
    ),
    # 1B: exceeds 1.5 and 1; the lenient limit's multiple (2 - 1.5)/1.5 = 0.3333
    vec(
        "GB 18918-2002 Table 1 item 9 TP 1B date unknown: 2 exceeds 1.5 and 1 -> exceedance",
        q(G18, "1B", "w21011", "day", 2),
        over(1.5, 2, 1 / 3, G18, "Table 1", TP),
    ),
]

# GB 18918 Table 1 note 1 (docs/reference/standards.md A1 ①, B1.5): class 3, influent COD > 350 -> removal > 60 %,
# influent BOD > 160 -> removal > 50 %; the answer's limit and value_judged are percentages, and a
# removal rate has no exceedance multiple (None).
N1 = "注①"
REMOVAL_VECTORS = [
    # 1 - 160/400 = 60 %, not strictly above 60 %
    vec(
        "GB 18918-2002 Table 1 note 1 COD class 3: influent 400, effluent 160 -> removal exactly 60 % -> exceedance",
        q(G18, "3", "w01018", "day", 160, influent_cod=400),
        over(60, 60, None, G18, "Table 1", "1", note=N1, unit="%"),
    ),
    # 1 - 150/400 = 62.5 % > 60 % (although 150 > the concentration limit 120)
    vec(
        "GB 18918-2002 Table 1 note 1 COD class 3: influent 400, effluent 150 -> 62.5 % -> compliant",
        q(G18, "3", "w01018", "day", 150, influent_cod=400),
        Want("compliant", 60, 62.5, None, G18, "Table 1", "1", note=N1, unit="%"),
    ),
    # influent 350 is not > 350: the concentration limit 120; (130 - 120)/120 = 0.083333
    vec(
        "GB 18918-2002 Table 1 item 1 COD class 3: influent 350 (not > 350) -> limit 120; 130 -> 0.0833",
        q(G18, "3", "w01018", "day", 130, influent_cod=350),
        over(120, 130, 10 / 120, G18, "Table 1", "1 COD", unit="mg/L"),
    ),
    vec(
        "GB 18918-2002 Table 1 item 1 COD class 3: influent 300 -> limit 120; 120 compliant",
        q(G18, "3", "w01018", "day", 120, influent_cod=300),
        ok(120, 120, G18, "Table 1", "1 COD"),
    ),
    # influent unknown: C <= 120 passes the limit, and above 350 the removal is >= 1 - 120/350 = 65.7 %
    vec(
        "GB 18918-2002 Table 1 note 1 COD class 3: influent unknown, 100 passes either way -> compliant",
        q(G18, "3", "w01018", "day", 100),
        ok(120, 100, G18, "Table 1", "1 COD"),
    ),
    # influent unknown: 130 > 120 fails the limit, but with influent 400 removal is 67.5 % -> undecided
    vec(
        "GB 18918-2002 Table 1 note 1 COD class 3: influent unknown, 130 -> insufficient_data",
        q(G18, "3", "w01018", "day", 130),
        unsure(130, G18, "Table 1", "1 COD"),
    ),
    # 1 - 90/200 = 55 % > 50 %
    vec(
        "GB 18918-2002 Table 1 note 1 BOD5 class 3: influent 200, effluent 90 -> 55 % -> compliant",
        q(G18, "3", "w01017", "day", 90, influent_bod=200),
        Want("compliant", 50, 55, None, G18, "Table 1", "2", note=N1, unit="%"),
    ),
    # 1 - 85/170 = 50 %, not strictly above
    vec(
        "GB 18918-2002 Table 1 note 1 BOD5 class 3: influent 170, effluent 85 -> exactly 50 % -> exceedance",
        q(G18, "3", "w01017", "day", 85, influent_bod=170),
        over(50, 50, None, G18, "Table 1", "2", note=N1, unit="%"),
    ),
    # (65 - 60)/60 = 0.083333
    vec(
        "GB 18918-2002 Table 1 item 2 BOD5 class 3: influent 160 (not > 160) -> limit 60; 65 -> 0.0833",
        q(G18, "3", "w01017", "day", 65, influent_bod=160),
        over(60, 65, 5 / 60, G18, "Table 1", "2 BOD5"),
    ),
    # influent <= 160 -> 70 > 60 fails; influent 200 -> 65 % passes
    vec(
        "GB 18918-2002 Table 1 note 1 BOD5 class 3: influent unknown, 70 -> insufficient_data",
        q(G18, "3", "w01017", "day", 70),
        unsure(70, G18, "Table 1", "2 BOD5"),
    ),
    vec(
        "GB 18918-2002 Table 1 item 1 COD 1A: the removal rule is class 3 only; influent 400, 55 -> 0.1",
        q(G18, "1A", "w01018", "day", 55, influent_cod=400),
        over(50, 55, 0.1, G18, "Table 1", "1 COD"),
    ),
    # 1 - 140.2/350.5 = 0.6 exactly
    vec(
        "GB 18918-2002 Table 1 note 1 COD class 3: influent 350.5, effluent 140.2 -> exactly 60 % -> exceedance",
        q(G18, "3", "w01018", "day", 140.2, influent_cod=350.5),
        over(60, 60, None, G18, "Table 1", "1", note=N1, unit="%"),
    ),
]

# Reference-oxygen correction (docs/reference/standards.md B5, A6): C x (21 - ref) / (21 - O2).
O2_VECTORS = [
    # 300 x 11/7 = 471.43; (471.43 - 400)/400 = 0.178571
    vec(
        "B5 / GB 4915-2013 formula (1) kiln 10%: NOx 300 @ 14% -> 471.43 > 400",
        q(C13, "kiln", "a21002", "hour", 300, o2_pct=14),
        over(400, 3300 / 7, (3300 / 7 - 400) / 400, C13, "Table 1", "氮氧化物 (以 NO2 计)"),
    ),
    # 250 x 12/10 = 300
    vec(
        "B5 / GB 13271-2014 5.2 coal 9%: SO2 250 @ 11% -> 300 = limit -> compliant",
        q(B14, "coal-new", "a21026", "hour", 250, o2_pct=11),
        ok(300, 300, B14, "Table 2", "二氧化硫"),
    ),
    # 280 x 12/16 = 210: below the reference O2 the correction lowers the value
    vec(
        "B5 / GB 13271-2014 5.2 coal 9%: SO2 280 @ 5% -> 210 <= 300",
        q(B14, "coal-new", "a21026", "hour", 280, o2_pct=5),
        ok(300, 210, B14, "Table 2", "二氧化硫"),
    ),
    # 15 x 17.5/11 = 23.864; (23.864 - 20)/20 = 0.193182
    vec(
        "B5 / GB 13271-2014 5.2 gas 3.5%: PM 15 @ 10% -> 23.86 > 20",
        q(B14, "gas-new", "a34013", "hour", 15, o2_pct=10),
        over(20, 262.5 / 11, (262.5 / 11 - 20) / 20, B14, "Table 2", "颗粒物"),
    ),
    # 25 x 15/12 = 31.25; 1.25/30 = 0.041667
    vec(
        "B5 / GB 13223-2011 coal 6%: PM 25 @ 9% -> 31.25 > 30",
        q(P11, "coal-new", "a34013", "hour", 25, o2_pct=9),
        over(30, 31.25, 1.25 / 30, P11, "Table 1", "烟尘"),
    ),
    vec(
        "B5 / GB 4915-2013 other ventilation has no reference O2: 18 @ 19% judged as measured 18",
        q(C13, "ventilation", "a34013", "hour", 18, o2_pct=19),
        ok(20, 18, C13, "Table 1", "颗粒物"),
    ),
    vec(
        "B5 / GB 28662-2012 other equipment has no reference O2: 25 @ 20% judged as measured",
        q(S12, "other", "a34013", "hour", 25, o2_pct=20),
        ok(30, 25, S12, "Table 2", "颗粒物"),
    ),
]

# Edition by date (docs/reference/standards.md 0.1, B9): before 2026-03-01 -> 2012, then 2026 transition, from 2031 final.
EDITION_VECTORS = [
    vec(
        "B9 GB3095 on 2026-02-28 -> GB 3095-2012: PM10 24 h class 2 limit 150; 130 compliant",
        q("GB3095", "2", "a34002", "24h", 130, date="2026-02-28"),
        ok(150, 130, A12, "Table 1", "5 PM10 24 小时平均"),
    ),
    # (130 - 120)/120 = 0.083333
    vec(
        "B9 GB3095 on 2026-03-01 -> GB 3095-2026 transition: PM10 24 h class 2 limit 120; 130 -> 0.0833",
        q("GB3095", "2", "a34002", "24h", 130, date="2026-03-01"),
        over(120, 130, 10 / 120, A26, "Table 1", "5 PM10 24 小时平均"),
    ),
    vec(
        "B9 GB3095 on 2030-12-31 -> GB 3095-2026 transition: PM2.5 24 h class 2 limit 60; 55 compliant",
        q("GB3095", "2", "a34004", "24h", 55, date="2030-12-31"),
        ok(60, 55, A26, "Table 1", "6 PM2.5 24 小时平均", note="transition"),
    ),
    vec(
        "B9 GB3095 on 2031-01-01 -> GB 3095-2026 final: PM2.5 24 h class 2 limit 50; 55 -> 0.1",
        q("GB3095", "2", "a34004", "24h", 55, date="2031-01-01"),
        over(50, 55, 0.1, A26, "Table 1", "6 PM2.5 24 小时平均", note="final"),
    ),
    vec(
        "B9 GB3095 on 2030-12-31: SO2 1 h class 2 transition 500; 400 compliant",
        q("GB3095", "2", "a21026", "1h", 400, date="2030-12-31"),
        ok(500, 400, A26, "Table 1", "1 SO2 1 小时平均"),
    ),
    # (400 - 150)/150 = 1.6667
    vec(
        "B9 GB3095 on 2031-01-01: SO2 1 h class 2 final 150; 400 -> 1.6667",
        q("GB3095", "2", "a21026", "1h", 400, date="2031-01-01"),
        over(150, 400, 250 / 150, A26, "Table 1", "1 SO2 1 小时平均"),
    ),
]

# Unit conversion into the limit's unit (docs/reference/standards.md B5: stack mg/m3 at 273 K, 101.3 kPa, dry gas).
# ppm -> mg/m3 = ppm x M / 22.4 (L/mol at 273 K, 101.3 kPa); M(SO2) = 32.06 + 2 x 16.00 = 64.06,
# M(NO2) = 14.01 + 2 x 16.00 = 46.01; tolerance 2e-3 for the molar volume's last digits.
SO2_PPM = 64.06 / 22.4  # 2.8598 mg/m3 per ppm
NO2_PPM = 46.01 / 22.4  # 2.0540 mg/m3 per ppm
UNIT_VECTORS = [
    # 1.5 µg/L = 0.0015 mg/L; (0.0015 - 0.001)/0.001 = 0.5
    vec(
        "GB 18918-2002 Table 2 total Hg given in µg/L: 1.5 µg/L = 0.0015 mg/L > 0.001 -> 0.5",
        q(G18, "2", "w20111", "day", 1.5, unit="µg/L"),
        over(0.001, 0.0015, 0.5, G18, "Table 2", "总汞", value=0.0015),
    ),
    vec(
        "GB 18918-2002 Table 1 item 1 COD given in ug/L: 45000 ug/L = 45 mg/L <= 50",
        q(G18, "1A", "w01018", "day", 45000, unit="ug/L"),
        ok(50, 45, G18, "Table 1", "1 COD", value=45),
    ),
    vec(
        "GB 3095-2012 Table 1 item 3 CO 24 h given in µg/m3: 4400 = 4.4 mg/m3 > 4 -> 0.1",
        q(A12, "2", "a21005", "24h", 4400, date=D12, unit="µg/m3"),
        over(4, 4.4, 0.1, A12, "Table 1", "3 CO 24 小时平均", value=4.4),
    ),
    vec(
        "GB 13271-2014 Table 2 new coal SO2 given in ppm: 100 ppm @ 9% = 285.98 mg/m3 <= 300",
        q(B14, "coal-new", "a21026", "hour", 100, unit="ppm", o2_pct=9),
        ok(300, 100 * SO2_PPM, B14, "Table 2", "二氧化硫", value=100 * SO2_PPM, rel=2e-3),
    ),
    # 285.98 x 12/11 = 311.98; (311.98 - 300)/300 = 0.0399
    vec(
        "GB 13271-2014 Table 2 new coal SO2 given in ppm: 100 ppm @ 10% -> 311.98 > 300",
        q(B14, "coal-new", "a21026", "hour", 100, unit="ppm", o2_pct=10),
        over(
            300,
            100 * SO2_PPM * 12 / 11,
            (100 * SO2_PPM * 12 / 11 - 300) / 300,
            B14,
            "Table 2",
            "二氧化硫",
            value=100 * SO2_PPM,
            rel=2e-3,
            multiple_abs=2e-3,
        ),
    ),
    # 200 ppm NOx as NO2 = 410.8 mg/m3; (410.8 - 400)/400 = 0.027
    vec(
        "GB 4915-2013 Table 1 kiln NOx (as NO2) given in ppm: 200 ppm @ 10% = 410.8 mg/m3 > 400",
        q(C13, "kiln", "a21002", "hour", 200, unit="ppm", o2_pct=10),
        over(
            400,
            200 * NO2_PPM,
            (200 * NO2_PPM - 400) / 400,
            C13,
            "Table 1",
            "氮氧化物 (以 NO2 计)",
            value=200 * NO2_PPM,
            rel=2e-3,
            multiple_abs=2e-3,
        ),
    ),
]

# What the standards audit found missing or miscited (issue "standards audit", docs/compliance.md).
AUDIT_VECTORS = [
    vec(
        "GB 13271-2014 4.1: in-use boiler over 10 t/h in 2016-01 -> Table 1 SO2 400: 300 @ 9% compliant",
        q(B14, "coal-in-use", "a21026", "hour", 300, date="2016-01-15", o2_pct=9, capacity_t_h=20),
        ok(400, 300, B14, "Table 1", "二氧化硫"),
    ),
    vec(
        "GB 4915-2013 4.1.1: a kiln built 2014-06 is a new plant, Table 1 at once: 150 @ 10% in 2015-03",
        q(C13, "kiln", "a21026", "hour", 150, date="2015-03-01", o2_pct=10, construction_date="2014-06-01"),
        ok(200, 150, C13, "Table 1", "二氧化硫"),
    ),
    vec(
        "GB 18918-2002 Table 1 item 4 animal & vegetable oil 1A 1: 1.2 -> 0.2",
        q(G18, "1A", "w22002", "day", 1.2),
        over(1, 1.2, 0.2, G18, "Table 1", "4 动植物油"),
    ),
    vec(
        "GB 18918-2002 Table 1 item 4 animal & vegetable oil class 3 20: 20 -> compliant",
        q(G18, "3", "w22002", "day", 20),
        ok(20, 20, G18, "Table 1", "4 动植物油"),
    ),
    vec(
        "GB 18918-2002 Table 2 alkyl mercury not detectable (4.1.1.2): 0 -> compliant",
        q(G18, "1B", "w20113", "day", 0),
        ok(0, 0, G18, "Table 2", "烷基汞"),
    ),
    vec(
        "GB 18918-2002 Table 2 alkyl mercury not detectable: 0.00001 detected -> exceedance",
        q(G18, "1B", "w20113", "day", 0.00001),
        over(0, 0.00001, None, G18, "Table 2", "烷基汞"),
    ),
    vec(
        "GB 8978-1996 Table 1 item 2 alkyl mercury not detectable: 0.00002 -> exceedance",
        q(G89, "2", "w20113", "day", 0.00002),
        over(0, 0.00002, None, G89, "Table 1", "2 烷基汞"),
    ),
    vec(
        "GB 8978-1996 Table 4 item 7 animal & vegetable oil class 3 100: 90 -> compliant",
        q(G89, "3", "w22002", "day", 90),
        ok(100, 90, G89, "Table 4", "7 动植物油"),
    ),
    vec(
        "GB 8978-1996 Table 4 item 12 fluoride, yellow phosphorus class 2 15: 12 -> compliant",
        q(G89, "2", "w21017", "day", 12, sector="yellow_phosphorus"),
        ok(15, 12, G89, "Table 4", "12 氟化物", confidence="S1"),
    ),
    vec(
        "GB 8978-1996 Table 4 item 12 fluoride, low-fluoride area class 3 30: 33 -> 0.1",
        q(G89, "3", "w21017", "day", 33, sector="low_fluoride_area"),
        over(30, 33, 0.1, G89, "Table 4", "12 氟化物", confidence="S1"),
    ),
    vec(
        "GB 8978-1996 Table 4 item 12 fluoride, other units class 2 10: 12 -> 0.2",
        q(G89, "2", "w21017", "day", 12, sector="dyes"),
        over(10, 12, 0.2, G89, "Table 4", "12 氟化物"),
    ),
    vec(
        "GB 8978-1996 Table 4 item 17 LAS (not 14) class 1 5: 6 -> 0.2",
        q(G89, "1", "w19002", "day", 6),
        over(5, 6, 0.2, G89, "Table 4", "17 阴离子表面活性剂 (LAS)"),
    ),
    vec(
        "GB 8978-1996 Table 4 item 18 total copper (not 15) class 1 0.5: 0.5 -> compliant",
        q(G89, "1", "w20122", "day", 0.5),
        ok(0.5, 0.5, G89, "Table 4", "18 总铜"),
    ),
    vec(
        "GB 8978-1996 Table 4 item 19 total zinc (not 16) class 2 5: 6 -> 0.2",
        q(G89, "2", "w20123", "day", 6),
        over(5, 6, 0.2, G89, "Table 4", "19 总锌"),
    ),
    # 150 x (21-15)/(21-15) = 150 > 100 for a new oil turbine, compliant for an existing one (200)
    vec(
        "GB 13223-2011 Table 1 existing oil-fired gas turbine SO2 200 [M]: 150 @ 15% -> compliant",
        q(P11, "oil-turbine-existing", "a21026", "hour", 150, o2_pct=15),
        ok(200, 150, P11, "Table 1", "二氧化硫", confidence="M"),
    ),
    vec(
        "GB 13223-2011 Table 1 other gaseous fuel boiler NOx 200 [S1]: 210 @ 3% -> 0.05",
        q(P11, "other-gas-boiler", "a21002", "hour", 210, o2_pct=3),
        over(200, 210, 0.05, P11, "Table 1", "氮氧化物 (以 NO2 计, 其他气体燃料)", confidence="S1"),
    ),
    vec(
        "GB 13223-2011 Table 1 other gaseous fuel turbine SO2 100 [S1]: 100 @ 15% -> compliant",
        q(P11, "other-gas-turbine", "a21026", "hour", 100, o2_pct=15),
        ok(100, 100, P11, "Table 1", "二氧化硫 (其他气体燃料)", confidence="S1"),
    ),
]

LIMIT_VECTORS = (
    AUDIT_VECTORS
    + GB18918_VECTORS
    + GB8978_VECTORS
    + GB3095_2012_VECTORS
    + GB3095_2026_VECTORS
    + GB4915_VECTORS
    + GB13271_VECTORS
    + GB13223_VECTORS
    + GB28662_VECTORS
    + ULE_POWER_VECTORS
    + ULE_STEEL_VECTORS
    + ULE_CEMENT_VECTORS
)


@pytest.mark.parametrize(("doc", "want"), LIMIT_VECTORS)
def test_edition_vector(doc: dict[str, Any], want: Want) -> None:
    """A limit of one edition, judged as docs/reference/standards.md tables A1-A5 say."""
    check_limit(evaluate(doc), want)


@pytest.mark.parametrize(("doc", "want"), WINTER_NH3N_VECTORS)
def test_winter_nh3n(doc: dict[str, Any], want: Want) -> None:
    """GB 18918 note 2: the NH3-N limit by water temperature, unknown -> agree or insufficient_data."""
    check_limit(evaluate(doc), want)


@pytest.mark.parametrize(("doc", "want"), TP_VECTORS)
def test_tp_by_construction_date(doc: dict[str, Any], want: Want) -> None:
    """GB 18918 item 9: the TP limit by construction date, unknown -> agree or insufficient_data."""
    check_limit(evaluate(doc), want)


@pytest.mark.parametrize(("doc", "want"), REMOVAL_VECTORS)
def test_class3_removal_rate(doc: dict[str, Any], want: Want) -> None:
    """GB 18918 note 1: class 3 judged by removal rate strictly above 60 % / 50 % above the influent threshold."""
    check_limit(evaluate(doc), want)


@pytest.mark.parametrize(("doc", "want"), O2_VECTORS)
def test_oxygen_correction(doc: dict[str, Any], want: Want) -> None:
    """B5: corrected to the class's reference O2, or judged as measured where there is none."""
    check_limit(evaluate(doc), want)


@pytest.mark.parametrize(("doc", "want"), EDITION_VECTORS)
def test_ambient_edition_by_date(doc: dict[str, Any], want: Want) -> None:
    """B9: the GB 3095 edition and phase in force on the date."""
    check_limit(evaluate(doc), want)


@pytest.mark.parametrize(("doc", "want"), UNIT_VECTORS)
def test_unit_conversion(doc: dict[str, Any], want: Want) -> None:
    """A value in another unit is converted into the limit's unit before judging."""
    check_limit(evaluate(doc), want)


# --------------------------------------------------------------------------------------------
# AQI questions (docs/reference/standards.md A4, B4)
# --------------------------------------------------------------------------------------------

# Table of A4 categories: level, category, category (en), colour, colour (en), RGB.
BANDS = {
    "I": ("一级", "优", "excellent", "绿", "green", [0, 228, 0]),
    "II": ("二级", "良", "good", "黄", "yellow", [255, 255, 0]),
    "III": ("三级", "轻度污染", "light", "橙", "orange", [255, 126, 0]),
    "IV": ("四级", "中度污染", "moderate", "红", "red", [255, 0, 0]),
    "V": ("五级", "重度污染", "heavy", "紫", "purple", [153, 0, 76]),
    "VI": ("六级", "严重污染", "severe", "褐红", "maroon", [126, 0, 35]),
}
# Report indicators (A4 "report indicators"): the IAQI keys each answer must list (None = NA).
R12_24H = ("so2", "no2", "co", "pm10", "pm25", "o3_8h", "o3_1h")  # 7 indicators
R12_1H = ("so2", "no2", "co", "o3_1h", "o3_8h", "pm10", "pm25")  # 1 h + O3 8 h + PM 24 h moving
R26_24H = ("so2", "no2", "co", "pm10", "pm25", "o3_8h")  # 6 indicators
R26_1H = ("so2", "no2", "co", "o3_1h", "pm10", "pm25")  # 6 indicators


@dataclass(frozen=True)
class AqiWant:
    """The expected answer to one AQI question."""

    standard: str
    aqi: int | None
    iaqi: dict[str, int | None]
    level: str | None  # roman numeral of the A4 category
    primary: tuple[str, ...] = ()
    exceeding: tuple[str, ...] = ()


def iaqi(keys: tuple[str, ...], **values: int) -> dict[str, int | None]:
    """Every report indicator's IAQI, None (NA) for those not given."""
    assert set(values) <= set(keys), values
    return {k: values.get(k) for k in keys}


def aq(
    ident: str,
    standard: str,
    period: str,
    conc: dict[str, float],
    want: AqiWant,
    *,
    date: str | None = None,
    bug: str | None = None,
) -> Any:
    """One AQI vector."""
    doc = {
        "standard": standard,
        "period": period,
        "concentrations": conc,
        "date": date or (D12 if standard.endswith("2012") else D26),
    }
    return vec(ident, doc, want, bug)


def check_aqi(got: dict[str, Any], want: AqiWant) -> None:
    """Assert one AQI answer against the hand-computed expectation."""
    assert "error" not in got, got
    assert got["standard"] == want.standard, got
    assert got["aqi"] == want.aqi, got
    assert got["iaqi"] == want.iaqi, got
    if want.level is None:
        assert got["level"] is None, got
    else:
        level, category, category_en, colour, colour_en, rgb = BANDS[want.level]
        assert got["level_roman"] == want.level, got
        assert got["level"] == level, got
        assert got["category"] == category, got
        assert got["category_en"].startswith(category_en), got
        assert got["color"].startswith(colour), got
        assert got["color_en"] == colour_en, got
        assert got["rgb"] == rgb, got
    assert sorted(got["primary"]) == sorted(want.primary), got
    assert sorted(got["exceeding"]) == sorted(want.exceeding), got


H12, H26 = "HJ633-2012", "HJ633-2026"
LOW26 = {"so2": 5, "no2": 10, "co": 0.4, "pm10": 20, "o3_8h": 40}  # IAQI 5, 13 (12.5), 10, 20, 20
LOW26_IAQI = {"so2": 5, "no2": 13, "co": 10, "pm10": 20, "o3_8h": 20}

HJ633_2012_VECTORS = [
    # so2 50/50x10 = 10; no2 50/40x30 = 37.5 -> 38; co 50/2x0.5 = 12.5 -> 13; pm10 50+50/100x10 = 55;
    # pm25 100+50/40x5 = 106.25 -> 107; o3_1h 50/160x100 = 31.25 -> 32; o3_8h 50/100x90 = 45
    aq(
        "HJ 633-2012 Table 1 24 h, formula (1), ceil: PM2.5 80 -> 107, AQI 107 III, primary PM2.5",
        H12,
        "24h",
        {"so2": 10, "no2": 30, "co": 0.5, "pm10": 60, "pm25": 80, "o3_1h": 100, "o3_8h": 90},
        AqiWant(
            H12,
            107,
            iaqi(R12_24H, so2=10, no2=38, co=13, pm10=55, pm25=107, o3_1h=32, o3_8h=45),
            "III",
            ("PM2.5",),
            ("PM2.5",),
        ),
    ),
    # so2_1h 50+50/350x50 = 57.14 -> 58; no2_1h 50+50/100x50 = 75; co_1h 50+50/5x1 = 60; o3_1h 50+50/40x20 = 75;
    # o3_8h 50+50/60x20 = 66.67 -> 67; pm10 50+50/100x50 = 75; pm25 50+50/40x15 = 68.75 -> 69
    aq(
        "HJ 633-2012 Table 1 1 h report: ties at 75 -> primary NO2, O3, PM10",
        H12,
        "1h",
        {"so2": 200, "no2": 150, "co": 6, "o3_1h": 180, "o3_8h": 120, "pm10": 100, "pm25": 50},
        AqiWant(
            H12,
            75,
            iaqi(R12_1H, so2=58, no2=75, co=60, o3_1h=75, o3_8h=67, pm10=75, pm25=69),
            "II",
            ("NO2", "O3", "PM10"),
        ),
    ),
    aq(
        "HJ 633-2012 B4: AQI 50 (ties at 50) -> level I, no primary pollutant",
        H12,
        "24h",
        {"so2": 5, "no2": 40, "co": 2, "pm10": 50, "pm25": 35, "o3_1h": 160, "o3_8h": 100},
        AqiWant(H12, 50, iaqi(R12_24H, so2=5, no2=50, co=50, pm10=50, pm25=50, o3_1h=50, o3_8h=50), "I"),
    ),
    # pm25 50/35x4.9 = 7 exactly (float 7.000000000000001); no2 50/40x4 = 5; co 50/2x0.2 = 5;
    # o3_1h 50/160x16 = 5; o3_8h 50/100x6 = 3
    aq(
        "HJ 633-2012 6.2 ceil on exact arithmetic: PM2.5 4.9 -> exactly 7 (not 8)",
        H12,
        "24h",
        {"so2": 2, "no2": 4, "co": 0.2, "pm10": 6, "pm25": 4.9, "o3_1h": 16, "o3_8h": 6},
        AqiWant(H12, 7, iaqi(R12_24H, so2=2, no2=5, co=5, pm10=6, pm25=7, o3_1h=5, o3_8h=3), "I"),
    ),
    # co 50+50/2x0.2 = 55 exactly (float 55.00000000000001); o3_8h 50+50/60x2.4 = 52 exactly (float 52.000...01)
    aq(
        "HJ 633-2012 6.2 ceil on exact arithmetic: CO 2.2 -> exactly 55, O3 8 h 102.4 -> exactly 52",
        H12,
        "24h",
        {"so2": 2, "no2": 4, "co": 2.2, "pm10": 6, "pm25": 4.9, "o3_1h": 16, "o3_8h": 102.4},
        AqiWant(H12, 55, iaqi(R12_24H, so2=2, no2=5, co=55, pm10=6, pm25=7, o3_1h=5, o3_8h=52), "II", ("CO",)),
    ),
    # no pre-rounding in 2012: pm25 50+50/40x0.4 = 50.5 -> 51; o3_1h 50/160x60 = 18.75 -> 19
    aq(
        "HJ 633-2012 no pre-rounding: PM2.5 35.4 -> 50.5 -> 51 (2026 would give 50)",
        H12,
        "24h",
        {**LOW26, "pm25": 35.4, "o3_1h": 60},
        AqiWant(H12, 51, iaqi(R12_24H, **LOW26_IAQI, pm25=51, o3_1h=19), "II", ("PM2.5",)),
    ),
    aq(
        "HJ 633-2012 B4 implementation choice: PM2.5 600 above the table -> capped at 500",
        H12,
        "24h",
        {"so2": 5, "no2": 10, "co": 0.4, "pm10": 20, "pm25": 600, "o3_1h": 60, "o3_8h": 40},
        AqiWant(H12, 500, iaqi(R12_24H, **LOW26_IAQI, pm25=500, o3_1h=19), "VI", ("PM2.5",), ("PM2.5",)),
    ),
]

HJ633_2026_VECTORS = [
    # pm10 50+50/70x10 = 57.14 -> 58; pm25 50+50/25x5 = 60; no2 38; co 13
    aq(
        "HJ 633-2026 Table 1 24 h (6 indicators, no O3 1 h): PM10/PM2.5 new breakpoints -> AQI 60",
        H26,
        "24h",
        {"so2": 10, "no2": 30, "co": 0.5, "pm10": 60, "pm25": 40, "o3_8h": 90},
        AqiWant(H26, 60, iaqi(R26_24H, so2=10, no2=38, co=13, pm10=58, pm25=60, o3_8h=45), "II", ("PM2.5",)),
    ),
    # 1 h report, PM on the daily breakpoints: pm10 100+50/130x80 = 130.77 -> 131; pm25 100+50/55x40 = 136.36 -> 137
    # so2_1h 50/150x100 = 33.3 -> 34; no2_1h 50/100x80 = 40; co_1h 50/5x2 = 20; o3_1h 50/160x150 = 46.875 -> 47
    aq(
        "HJ 633-2026 Table 1 1 h report: PM 1 h on daily breakpoints -> AQI 137 III, primary PM2.5",
        H26,
        "1h",
        {"so2": 100, "no2": 80, "co": 2, "o3_1h": 150, "pm10": 200, "pm25": 100},
        AqiWant(H26, 137, iaqi(R26_1H, so2=34, no2=40, co=20, o3_1h=47, pm10=131, pm25=137), "III", ("PM2.5",)),
    ),
    # pm10 250 -> 100+50/130x130 = 150 exactly
    aq(
        "HJ 633-2026 Table 1 PM10 24 h 250 -> exactly 150, level III",
        H26,
        "24h",
        {**LOW26, "pm10": 250, "pm25": 20},
        AqiWant(H26, 150, iaqi(R26_24H, **{**LOW26_IAQI, "pm10": 150}, pm25=29), "III", ("PM10",)),
    ),
]

# HJ 633-2026 4.2 (docs/reference/standards.md A4, B4): GB/T 8170 half-to-even pre-rounding, then IAQI rounded up.
ROUNDING_VECTORS = [
    aq(
        "HJ 633-2026 4.2 GB/T 8170: PM2.5 35.4 -> 35 -> IAQI 50, no primary",
        H26,
        "24h",
        {**LOW26, "pm25": 35.4},
        AqiWant(H26, 50, iaqi(R26_24H, **LOW26_IAQI, pm25=50), "I"),
    ),
    # 36 -> 50 + 50/25 x 1 = 52
    aq(
        "HJ 633-2026 4.2 GB/T 8170: PM2.5 35.5 -> 36 (half to even) -> IAQI 52",
        H26,
        "24h",
        {**LOW26, "pm25": 35.5},
        AqiWant(H26, 52, iaqi(R26_24H, **LOW26_IAQI, pm25=52), "II", ("PM2.5",)),
    ),
    # 34 -> 50/35 x 34 = 48.57 -> 49
    aq(
        "HJ 633-2026 4.2 GB/T 8170: PM2.5 34.5 -> 34 (half to even) -> IAQI 49",
        H26,
        "24h",
        {**LOW26, "pm25": 34.5},
        AqiWant(H26, 49, iaqi(R26_24H, **LOW26_IAQI, pm25=49), "I"),
    ),
    # 36.5 -> 36 (not 37 -> 54)
    aq(
        "HJ 633-2026 4.2 GB/T 8170: PM2.5 36.5 -> 36 (half to even) -> IAQI 52",
        H26,
        "24h",
        {**LOW26, "pm25": 36.5},
        AqiWant(H26, 52, iaqi(R26_24H, **LOW26_IAQI, pm25=52), "II", ("PM2.5",)),
    ),
    # co 2.05 -> 2.0 (half to even) -> 50 (unrounded: 51.25 -> 52); pm25 20 -> 50/35x20 = 28.57 -> 29
    aq(
        "HJ 633-2026 4.2 GB/T 8170: CO 2.05 -> 2.0 -> IAQI 50",
        H26,
        "24h",
        {**LOW26, "co": 2.05, "pm25": 20},
        AqiWant(H26, 50, iaqi(R26_24H, **{**LOW26_IAQI, "co": 50}, pm25=29), "I"),
    ),
    # co 2.15 -> 2.2 (half to even) -> 50 + 25 x 0.2 = 55 exactly (float 55.00000000000001)
    aq(
        "HJ 633-2026 4.2 GB/T 8170: CO 2.15 -> 2.2 -> exactly 55",
        H26,
        "24h",
        {**LOW26, "co": 2.15, "pm25": 20},
        AqiWant(H26, 55, iaqi(R26_24H, **{**LOW26_IAQI, "co": 55}, pm25=29), "II", ("CO",)),
    ),
    # pm10 121.5 -> 122 -> 100 + 50/130 x 2 = 100.77 -> 101
    aq(
        "HJ 633-2026 4.2 GB/T 8170: PM10 121.5 -> 122 -> IAQI 101",
        H26,
        "24h",
        {**LOW26, "pm10": 121.5, "pm25": 20},
        AqiWant(H26, 101, iaqi(R26_24H, **{**LOW26_IAQI, "pm10": 101}, pm25=29), "III", ("PM10",)),
    ),
]

# A4 note b: SO2 1 h above 800 -> 2012 from the 24 h average (NA without it), 2026 IAQI 200.
# Common: no2_1h 50 -> 25; co_1h 1.0 -> 10; o3_1h 100 -> 31.25 -> 32; o3_8h 80 -> 40; pm10 40 -> 40;
# pm25 20 -> 50/35x20 = 28.57 -> 29.
HOUR = {"no2": 50, "co": 1.0, "o3_1h": 100, "pm10": 40, "pm25": 20}
HOUR_IAQI = {"no2": 25, "co": 10, "o3_1h": 32, "pm10": 40, "pm25": 29}
SO2_VECTORS = [
    # so2_24h 200 -> 100 + 50/325 x 50 = 107.69 -> 108
    aq(
        "HJ 633-2012 Table 1 note 2: SO2 1 h 900 > 800 -> IAQI from 24 h 200 = 108",
        H12,
        "1h",
        {**HOUR, "o3_8h": 80, "so2": 900, "so2_24h": 200},
        AqiWant(H12, 108, iaqi(R12_1H, **HOUR_IAQI, o3_8h=40, so2=108), "III", ("SO2",), ("SO2",)),
    ),
    # so2_24h 40 -> 50/50 x 40 = 40: AQI 40 (ties PM10, O3 8 h) -> no primary
    aq(
        "HJ 633-2012 Table 1 note 2: SO2 1 h 801 -> IAQI from 24 h 40 = 40, AQI 40 no primary",
        H12,
        "1h",
        {**HOUR, "o3_8h": 80, "so2": 801, "so2_24h": 40},
        AqiWant(H12, 40, iaqi(R12_1H, **HOUR_IAQI, o3_8h=40, so2=40), "I"),
    ),
    aq(
        "HJ 633-2012 Table 1 note 2: SO2 1 h 900 without a 24 h average -> SO2 IAQI NA",
        H12,
        "1h",
        {**HOUR, "o3_8h": 80, "so2": 900},
        AqiWant(H12, 40, iaqi(R12_1H, **HOUR_IAQI, o3_8h=40), "I"),
    ),
    aq(
        "HJ 633-2012 Table 1: SO2 1 h exactly 800 is in the table -> 200",
        H12,
        "1h",
        {**HOUR, "o3_8h": 80, "so2": 800},
        AqiWant(H12, 200, iaqi(R12_1H, **HOUR_IAQI, o3_8h=40, so2=200), "IV", ("SO2",), ("SO2",)),
    ),
    aq(
        "HJ 633-2026 Table 1 note: SO2 1 h 900 > 800 -> IAQI 200",
        H26,
        "1h",
        {**HOUR, "so2": 900},
        AqiWant(H26, 200, iaqi(R26_1H, **HOUR_IAQI, so2=200), "IV", ("SO2",)),
    ),
    aq(
        "HJ 633-2026 Table 1 note: SO2 1 h 5000 > 800 -> IAQI 200 (not from a 24 h value)",
        H26,
        "1h",
        {**HOUR, "so2": 5000, "so2_24h": 40},
        AqiWant(H26, 200, iaqi(R26_1H, **HOUR_IAQI, so2=200), "IV", ("SO2",)),
    ),
]

# A4 note c: O3 8 h above 800 -> 2012 from the 1 h value, 2026 IAQI 300.
# Common: so2 10; no2 38; co 13; pm10 2012 55 / 2026 58; pm25 40 -> 2012 50+50/40x5 = 56.25 -> 57 / 2026 60.
DAY = {"so2": 10, "no2": 30, "co": 0.5, "pm10": 60, "pm25": 40}
O3_VECTORS = [
    # o3_1h 900 -> 300 + 100/200 x 100 = 350
    aq(
        "HJ 633-2012 Table 1 note 3: O3 8 h 850 > 800 -> IAQI from 1 h 900 = 350, level VI",
        H12,
        "24h",
        {**DAY, "o3_1h": 900, "o3_8h": 850},
        AqiWant(
            H12,
            350,
            iaqi(R12_24H, so2=10, no2=38, co=13, pm10=55, pm25=57, o3_1h=350, o3_8h=350),
            "VI",
            ("O3",),
            ("O3",),
        ),
    ),
    aq(
        "HJ 633-2012 Table 1 note 3: O3 8 h 850 without a 1 h value -> O3 IAQI NA, AQI 57",
        H12,
        "24h",
        {**DAY, "o3_8h": 850},
        AqiWant(H12, 57, iaqi(R12_24H, so2=10, no2=38, co=13, pm10=55, pm25=57), "II", ("PM2.5",)),
    ),
    aq(
        "HJ 633-2012 Table 1: O3 8 h exactly 800 is in the table -> 300",
        H12,
        "24h",
        {**DAY, "o3_1h": 100, "o3_8h": 800},
        AqiWant(
            H12, 300, iaqi(R12_24H, so2=10, no2=38, co=13, pm10=55, pm25=57, o3_1h=32, o3_8h=300), "V", ("O3",), ("O3",)
        ),
    ),
    aq(
        "HJ 633-2026 Table 1 note: O3 8 h 850 > 800 -> IAQI 300, level V",
        H26,
        "24h",
        {**DAY, "o3_8h": 850},
        AqiWant(H26, 300, iaqi(R26_24H, so2=10, no2=38, co=13, pm10=58, pm25=60, o3_8h=300), "V", ("O3",)),
    ),
    aq(
        "HJ 633-2026 Table 1: O3 8 h exactly 800 -> 300",
        H26,
        "24h",
        {**DAY, "o3_8h": 800},
        AqiWant(H26, 300, iaqi(R26_24H, so2=10, no2=38, co=13, pm10=58, pm25=60, o3_8h=300), "V", ("O3",)),
    ),
]

# B4 / B9: the HJ 633 edition by date. 2012: pm10 120 -> 50+50/100x70 = 85; 2026: 120 -> 100.
# pm25 20 -> 29; o3_1h 60 -> 18.75 -> 19 (2012 only: not a 2026 daily indicator).
BY_DATE = {**LOW26, "pm10": 120, "pm25": 20, "o3_1h": 60}
AQI_EDITION_VECTORS = [
    aq(
        "B9 HJ633 on 2026-02-28 -> HJ 633-2012: PM10 120 -> 85",
        "HJ633",
        "24h",
        BY_DATE,
        AqiWant(H12, 85, iaqi(R12_24H, **{**LOW26_IAQI, "pm10": 85}, pm25=29, o3_1h=19), "II", ("PM10",)),
        date="2026-02-28",
    ),
    aq(
        "B9 HJ633 on 2026-03-01 -> HJ 633-2026: PM10 120 -> 100, no O3 1 h in the daily report",
        "HJ633",
        "24h",
        BY_DATE,
        AqiWant(H26, 100, iaqi(R26_24H, **{**LOW26_IAQI, "pm10": 100}, pm25=29), "II", ("PM10",)),
        date="2026-03-01",
    ),
    aq(
        "B9 HJ633 on 2025-12-31 (2012): PM2.5 60 -> 50+50/40x25 = 81.25 -> 82",
        "HJ633",
        "24h",
        {**LOW26, "pm25": 60, "o3_1h": 60},
        AqiWant(H12, 82, iaqi(R12_24H, **LOW26_IAQI, pm25=82, o3_1h=19), "II", ("PM2.5",)),
        date="2025-12-31",
    ),
    aq(
        "B9 HJ633 on 2031-01-01 (2026): PM2.5 60 -> 100",
        "HJ633",
        "24h",
        {**LOW26, "pm25": 60},
        AqiWant(H26, 100, iaqi(R26_24H, **LOW26_IAQI, pm25=100), "II", ("PM2.5",)),
        date="2031-01-01",
    ),
]

# HJ 633-2026 5.3 (docs/reference/standards.md A4): a missing pollutant is NA; AQI from the others, published only if > 100.
MISSING_VECTORS = [
    # pm25 100 -> 100 + 50/55 x 40 = 136.36 -> 137
    aq(
        "HJ 633-2026 5.3: only PM2.5 100 given -> AQI 137 > 100 is published, others NA",
        H26,
        "24h",
        {"pm25": 100},
        AqiWant(H26, 137, iaqi(R26_24H, pm25=137), "III", ("PM2.5",)),
    ),
    # pm25 50 -> 50 + 2 x 15 = 80 <= 100
    aq(
        "HJ 633-2026 5.3: only PM2.5 50 given -> IAQI 80, AQI <= 100 with a pollutant missing -> AQI NA",
        H26,
        "24h",
        {"pm25": 50},
        AqiWant(H26, None, iaqi(R26_24H, pm25=80), None),
    ),
    aq(
        "HJ 633-2012: a missing pollutant is NA in the report; PM2.5 80 -> 107 from the others",
        H12,
        "24h",
        {"pm25": 80},
        AqiWant(H12, 107, iaqi(R12_24H, pm25=107), "III", ("PM2.5",), ("PM2.5",)),
    ),
]


@pytest.mark.parametrize(("doc", "want"), HJ633_2012_VECTORS + HJ633_2026_VECTORS)
def test_aqi_edition_vector(doc: dict[str, Any], want: AqiWant) -> None:
    """IAQI, AQI, level, category, colour and primary pollutants of one HJ 633 edition."""
    check_aqi(evaluate(doc), want)


@pytest.mark.parametrize(("doc", "want"), ROUNDING_VECTORS)
def test_aqi_rounding(doc: dict[str, Any], want: AqiWant) -> None:
    """HJ 633-2026 4.2: GB/T 8170 half-to-even pre-rounding, then IAQI rounded up on exact arithmetic."""
    check_aqi(evaluate(doc), want)


@pytest.mark.parametrize(("doc", "want"), SO2_VECTORS)
def test_aqi_so2_above_800(doc: dict[str, Any], want: AqiWant) -> None:
    """A4 note b: SO2 1 h above 800 differs between 2012 and 2026."""
    check_aqi(evaluate(doc), want)


@pytest.mark.parametrize(("doc", "want"), O3_VECTORS)
def test_aqi_o3_8h_above_800(doc: dict[str, Any], want: AqiWant) -> None:
    """A4 note c: O3 8 h above 800 differs between 2012 and 2026."""
    check_aqi(evaluate(doc), want)


@pytest.mark.parametrize(("doc", "want"), AQI_EDITION_VECTORS)
def test_aqi_edition_by_date(doc: dict[str, Any], want: AqiWant) -> None:
    """B9: HJ 633-2012 before 2026-03-01, HJ 633-2026 from then."""
    check_aqi(evaluate(doc), want)


@pytest.mark.parametrize(("doc", "want"), MISSING_VECTORS)
def test_aqi_missing_pollutant(doc: dict[str, Any], want: AqiWant) -> None:
    """A4 / HJ 633-2026 5.3: missing pollutants are NA."""
    check_aqi(evaluate(doc), want)


# --------------------------------------------------------------------------------------------
# Error paths: evaluate answers {"error": code, "message": ...} and never raises
# --------------------------------------------------------------------------------------------

ERROR_VECTORS = [
    vec("unknown standard", q("GB9999-2000", "1", "w01018", "day", 1), "unknown_standard"),
    vec("unknown class (GB 18918 has 1A, 1B, 2, 3)", q(G18, "4", "w01018", "day", 1), "unknown_class"),
    vec("GB 18918-2002 4.1.4.2: daily averages only, no hourly limit", q(G18, "1A", "w01018", "hour", 1), "no_limit"),
    vec("GB 3095-2012 Table 1: no PM2.5 1 h limit", q(A12, "2", "a34004", "1h", 1, date=D12), "no_limit"),
    vec("GB 18918-2002 Table 1 item 7: TN class 2 is '—'", q(G18, "2", "w21001", "day", 1), "no_limit"),
    vec("GB 18918-2002 Table 1 item 8: NH3-N class 3 is '—'", q(G18, "3", "w21003", "day", 1), "no_limit"),
    vec("GB 8978-1996 A2: no total-phosphorus row", q(G89, "1", "w21011", "day", 1), "no_limit"),
    vec("GB 8978-1996 Table 4: colour class 3 is '—'", q(G89, "3", "w01002", "day", 1), "no_limit"),
    vec(
        "GB 8978-1996 4.2.2.3: built 1997-12-31 -> Table 2 (not shipped)",
        q(G89, "1", "w01018", "day", 1, construction_date="1997-12-31"),
        "not_covered",
    ),
    vec("bad unit: furlongs", q(G18, "1A", "w01018", "day", 1, unit="furlongs"), "bad_unit"),
    vec("bad unit: mg/m3 for a mg/L limit", q(G18, "1A", "w01018", "day", 1, unit="mg/m3"), "bad_unit"),
    vec(
        "bad unit: ppm at an ambient (298.15 K) limit is not converted",
        q(A12, "2", "a21026", "1h", 1, date=D12, unit="ppm"),
        "bad_unit",
    ),
    vec("bad date: month 13", q(G18, "1A", "w01018", "day", 1, date="2024-13-01"), "bad_date"),
    vec("bad date: not a string", q(G18, "1A", "w01018", "day", 1, date=20240601), "bad_date"),
    vec("missing value", {k: v for k, v in q(G18, "1A", "w01018", "day", 1).items() if k != "value"}, "bad_value"),
    vec("value as a string", q(G18, "1A", "w01018", "day", "12"), "bad_value"),
    vec("value as a boolean", q(G18, "1A", "w01018", "day", True), "bad_value"),
    vec("value NaN", q(G18, "1A", "w01018", "day", math.nan), "bad_value"),
    vec("value infinite", q(G18, "1A", "w01018", "day", math.inf), "bad_value"),
    vec("B5 missing O2: GB 4915 kiln", q(C13, "kiln", "a34013", "hour", 20), "missing_o2"),
    vec("B5 missing O2: GB 13271 gas boiler", q(B14, "gas-new", "a21002", "hour", 20), "missing_o2"),
    vec("B5 missing O2: GB 13223 coal boiler", q(P11, "coal-new", "a21026", "hour", 20), "missing_o2"),
    vec("B5 missing O2: ULE-POWER coal", q(UP, "coal", "a21026", "hour", 20), "missing_o2"),
    vec("B5 O2 = 21 %", q(C13, "kiln", "a34013", "hour", 20, o2_pct=21), "o2_out_of_range"),
    vec("B5 O2 = 25 %", q(B14, "coal-new", "a34013", "hour", 20, o2_pct=25), "o2_out_of_range"),
    # A stopped sinter machine breathes ambient air: 10 mg/m³ at 20.9 % would be corrected to 500.
    vec(
        "B5 near-ambient O2 20.9 %: GB 28662 sinter",
        q(S12, "sinter", "a21026", "hour", 10, o2_pct=20.9),
        "o2_out_of_range",
    ),
    vec(
        "B5 near-ambient O2 20 %: ULE-STEEL sinter head",
        q(US, "sinter-head", "a21026", "hour", 10, o2_pct=20),
        "o2_out_of_range",
    ),
    # Transition periods (GB 13271-2014 4.1-4.2, GB 4915-2013 4.1.1): never the later table.
    vec(
        "GB 13271-2014 4.1: in-use boiler in 2015-03 -> GB 13271-2001 applied",
        q(B14, "coal-in-use", "a21026", "hour", 300, date="2015-03-01", o2_pct=9, capacity_t_h=20),
        "earlier_edition",
    ),
    vec(
        "GB 13271-2014 4.1: in-use boiler in 2016-01, capacity unknown -> which date applies is unknown",
        q(B14, "coal-in-use", "a21026", "hour", 300, date="2016-01-15", o2_pct=9),
        "missing_capacity",
    ),
    vec(
        "GB 13271-2014 4.1: in-use boiler of 4 t/h in 2016-01 -> still GB 13271-2001",
        q(B14, "gas-in-use", "a21002", "hour", 300, date="2016-01-15", o2_pct=3.5, capacity_t_h=4),
        "earlier_edition",
    ),
    vec(
        "GB 4915-2013 4.1.1: existing kiln (built 2010) in 2015-03 -> GB 4915-2004 applied",
        q(C13, "kiln", "a21026", "hour", 150, date="2015-03-01", o2_pct=10, construction_date="2010-05-01"),
        "earlier_edition",
    ),
    vec(
        "GB 4915-2013 4.1.1: kiln of unknown age in 2015-03 -> the construction date decides",
        q(C13, "kiln", "a21026", "hour", 150, date="2015-03-01", o2_pct=10),
        "missing_construction_date",
    ),
    vec("B5 negative O2 is no measurement", q(S12, "sinter", "a21026", "hour", 10, o2_pct=-1), "o2_invalid"),
    vec("B5 negative O2: GB 13271 boiler", q(B14, "coal-new", "a34013", "hour", 20, o2_pct=-0.5), "o2_invalid"),
    vec("unknown context key", q(G18, "1A", "w01018", "day", 1, temperature=10), "bad_context"),
    vec(
        "construction_date not YYYY-MM-DD",
        q(G18, "1A", "w21011", "day", 1, construction_date="2005/12/31"),
        "bad_context",
    ),
    vec(
        "construction_date not a string",
        q(G18, "1A", "w21011", "day", 0.8, construction_date=20051231),
        "bad_context",
    ),
    vec("not an object", ["GB18918-2002"], "bad_request"),
    vec("no standard", {"class": "1A", "parameter": "w01018", "period": "day", "value": 1}, "bad_request"),
    vec("unknown request key", {**q(G18, "1A", "w01018", "day", 1), "colour": "red"}, "bad_request"),
    vec("AQI: period 8h", {"standard": H26, "period": "8h", "concentrations": {"pm25": 10}}, "bad_period"),
    vec("AQI: unknown pollutant key", {"standard": H26, "period": "24h", "concentrations": {"pm1": 10}}, "bad_input"),
    vec("AQI: negative concentration", {"standard": H26, "period": "24h", "concentrations": {"pm25": -1}}, "bad_input"),
    vec("AQI: no concentrations", {"standard": H26, "period": "24h", "concentrations": {}}, "bad_request"),
    vec(
        "AQI: bad date",
        {"standard": "HJ633", "period": "24h", "date": "2026-02-30", "concentrations": {"pm25": 10}},
        "bad_date",
    ),
]


@pytest.mark.parametrize(("doc", "code"), ERROR_VECTORS)
def test_error_answer(doc: Any, code: str) -> None:
    """A question that cannot be answered gets {"error": code, "message": ...}, never an exception."""
    got = evaluate(doc)
    assert set(got) == {"error", "message"}, got
    assert got["error"] == code, got
    assert isinstance(got["message"], str)
    assert got["message"]


# --------------------------------------------------------------------------------------------
# The catalogue
# --------------------------------------------------------------------------------------------


def test_every_edition_loads() -> None:
    """The catalogue holds exactly the thirteen editions, one per YAML file."""
    files = sorted(p.stem for p in STANDARDS_DIR.glob("*.yaml"))
    assert files == sorted(EDITIONS)
    assert sorted(catalogue().by_id) == sorted(EDITIONS)


@pytest.mark.parametrize("edition", EDITIONS)
def test_file_validates_and_id_matches(edition: str) -> None:
    """Each file validates on its own and its id is its file name."""
    raw = yaml.safe_load((STANDARDS_DIR / f"{edition}.yaml").read_text(encoding="utf-8"))
    standard = Standard.model_validate(raw)
    assert standard.id == edition
    assert catalogue().by_id[edition].id == edition


@pytest.mark.parametrize("edition", EDITIONS)
def test_limit_parameters_are_catalogue_codes(edition: str) -> None:
    """Every limit's parameter is an HJ 212 code of schemas.parameters."""
    codes = parameters().by_code
    unknown = sorted({lim.parameter for lim in catalogue().by_id[edition].limits} - set(codes))
    assert not unknown, unknown


@pytest.mark.parametrize("edition", EDITIONS)
def test_limit_classes_are_declared(edition: str) -> None:
    """Every class a limit row names is one of the edition's classes."""
    standard = catalogue().by_id[edition]
    for limit in standard.limits:
        assert set(limit.values) <= set(standard.classes), (limit.parameter, limit.values)
    assert set(standard.reference_o2) <= set(standard.classes)


def _confidence(edition: str, parameter: str, cls: str) -> set[str]:
    standard = catalogue().by_id[edition]
    return {lim.confidence for lim in standard.limits if lim.parameter == parameter and cls in lim.values}


# docs/reference/standards.md A5: which shipped values are [M] (from memory), spot checks.
UNCONFIRMED = [
    *(
        pytest.param("GB28662-2012", p, c, id=f"A5 GB 28662-2012 all numbers [M]: {p} {c}")
        for p in ("a34013", "a21026", "a21002", "a21018")
        for c in ("sinter-t1", "sinter", "sinter-special", "pellet-grate-kiln")
    ),
    *(
        pytest.param("GB28662-2012", "a34013", c, id=f"A5 GB 28662-2012 other equipment PM [M]: {c}")
        for c in ("other-t1", "other", "other-special")
    ),
    *(
        pytest.param("GB13223-2011", "a34013", c, id=f"A5 GB 13223-2011 PM [M]: {c}")
        for c in ("coal-new", "coal-existing", "oil-new", "gas-boiler", "gas-turbine", "special-coal")
    ),
    pytest.param("GB13223-2011", "a21026", "oil-new", id="A5 GB 13223-2011 oil SO2 [M]"),
    pytest.param("GB13223-2011", "a21026", "special-coal", id="A5 GB 13223-2011 special SO2 [M]"),
    pytest.param("GB13223-2011", "a21002", "oil-turbine", id="A5 GB 13223-2011 oil turbine NOx 120 [M]"),
    pytest.param("GB13223-2011", "a21002", "special-gas-boiler", id="A5 GB 13223-2011 special gas NOx [M]"),
]


@pytest.mark.parametrize(("edition", "parameter", "cls"), UNCONFIRMED)
def test_unconfirmed_values_carry_m(edition: str, parameter: str, cls: str) -> None:
    """A value docs/reference/standards.md tags [M] is shipped with confidence M."""
    assert _confidence(edition, parameter, cls) == {"M"}


@pytest.mark.parametrize(
    ("edition", "setting"),
    [
        pytest.param("GB18918-2002", "day_min_valid_hours", id="A7 HJ 356 minimum valid share of a day [M]"),
        pytest.param("GB8978-1996", "day_min_valid_hours", id="A7 HJ 356 minimum valid share of a day [M] (GB 8978)"),
        pytest.param("GB3095-2012", "o3_daily_max_min_windows", id="B3 HJ 663 (not read) O3 8 h windows [M] 2012"),
        pytest.param("GB3095-2026", "o3_daily_max_min_windows", id="B3 HJ 663 (not read) O3 8 h windows [M] 2026"),
    ],
)
def test_unconfirmed_settings_carry_m(edition: str, setting: str) -> None:
    """A validity minimum docs/reference/standards.md leaves unconfirmed is shipped with confidence M."""
    assert catalogue().by_id[edition].validity[setting].confidence == "M"


@pytest.mark.parametrize(
    ("edition", "cls", "expected"),
    [
        pytest.param("GB13223-2011", "gas-boiler", "M", id="A6 GB 13223 oil/gas boiler 3 % [M]"),
        pytest.param("GB13223-2011", "gas-turbine", "M", id="A6 GB 13223 gas turbine 15 % [M]"),
        pytest.param("GB13223-2011", "coal-new", "S2", id="A6 GB 13223 coal 6 % [S2]"),
        pytest.param("ULE-STEEL-2019", "sinter-head", "M", id="A5 steel ultra-low sinter head 16 % [M]"),
        pytest.param("GB28662-2012", "sinter", "S1", id="A6 GB 28662 amendment sinter 16 % [S1]"),
        pytest.param("GB4915-2013", "kiln", "P", id="A6 GB 4915 kiln 10 % [P]"),
        pytest.param("GB13271-2014", "coal-new", "P", id="A6 GB 13271 coal 9 % [P]"),
    ],
)
def test_reference_o2_confidence(edition: str, cls: str, expected: str) -> None:
    """A reference O2 carries the confidence docs/reference/standards.md A6 gives it."""
    assert catalogue().by_id[edition].reference_o2[cls].confidence == expected


@pytest.mark.parametrize(
    ("edition", "cls", "o2"),
    [
        ("GB4915-2013", "kiln", 10),
        ("GB4915-2013", "dryer", 8),
        ("GB13271-2014", "coal-new", 9),
        ("GB13271-2014", "gas-new", 3.5),
        ("GB13271-2014", "oil-in-use", 3.5),
        ("GB13223-2011", "coal-new", 6),
        ("GB28662-2012", "sinter", 16),
        ("GB28662-2012", "pellet-grate-kiln", 18),
        ("ULE-POWER-2015", "coal", 6),
        ("ULE-CEMENT-2024", "kiln", 10),
        ("ULE-STEEL-2019", "sinter-head", 16),
    ],
)
def test_reference_o2_values(edition: str, cls: str, o2: float) -> None:
    """A6: the reference O2 of each class that has one."""
    assert catalogue().by_id[edition].reference_o2[cls].value == o2


@pytest.mark.parametrize(
    ("edition", "cls"),
    [("GB4915-2013", "ventilation"), ("GB28662-2012", "other"), ("ULE-STEEL-2019", "other")],
)
def test_no_reference_o2(edition: str, cls: str) -> None:
    """B5: classes the standard gives no reference O2 are judged as measured."""
    assert cls not in catalogue().by_id[edition].reference_o2


# docs/reference/standards.md A4, transcribed by hand: IAQI 0..500 breakpoints per indicator.
A4_COMMON = {
    "so2_24h": [0, 50, 150, 475, 800, 1600, 2100, 2620],
    "so2_1h": [0, 150, 500, 650, 800],
    "no2_24h": [0, 40, 80, 180, 280, 565, 750, 940],
    "no2_1h": [0, 100, 200, 700, 1200, 2340, 3090, 3840],
    "co_24h": [0, 2, 4, 14, 24, 36, 48, 60],
    "co_1h": [0, 5, 10, 35, 60, 90, 120, 150],
    "o3_1h": [0, 160, 200, 300, 400, 800, 1000, 1200],
    "o3_8h": [0, 100, 160, 215, 265, 800],
}
A4 = {
    "HJ633-2012": {
        **A4_COMMON,
        "pm10_24h": [0, 50, 150, 250, 350, 420, 500, 600],
        "pm25_24h": [0, 35, 75, 115, 150, 250, 350, 500],
    },
    "HJ633-2026": {
        **A4_COMMON,
        "pm10_24h": [0, 50, 120, 250, 350, 420, 500, 600],
        "pm25_24h": [0, 35, 60, 115, 150, 250, 350, 500],
    },
}


@pytest.mark.parametrize("edition", ["HJ633-2012", "HJ633-2026"])
def test_aqi_breakpoints(edition: str) -> None:
    """HJ 633 Table 1 breakpoints equal docs/reference/standards.md A4 (SO2 24 h is not the aqi-hub table)."""
    table = catalogue().by_id[edition].aqi
    assert table is not None
    assert table.iaqi == [0, 50, 100, 150, 200, 300, 400, 500]
    assert table.breakpoints == A4[edition]
    assert table.primary_above == 50


def test_every_limit_cites_its_clause_and_every_unconfirmed_figure_its_source() -> None:
    """A citation without a source fails here: every limit names its table or item, and every
    figure not read in the standard itself ([S2], [S1], [M]) names the section of
    docs/reference/standards.md it comes from, which must exist."""
    reference = (Path(__file__).resolve().parent.parent / "docs/reference/standards.md").read_text()
    sections = set(re.findall(r"^### ([A-D]\d+)\.", reference, re.MULTILINE))
    missing = []
    for standard in catalogue().by_id.values():
        for limit in standard.limits:
            where = f"{standard.id} {limit.parameter} {limit.period}"
            if not (limit.clause.table or limit.clause.item):
                missing.append(f"{where}: no table or item")
            if limit.confidence != "P":
                cited = re.findall(r"docs/reference/standards\.md ([A-D]\d+)", limit.source or "")
                if not cited or not set(cited) <= sections:
                    missing.append(f"{where} [{limit.confidence}]: source {limit.source!r}")
    assert not missing, "\n".join(missing)
