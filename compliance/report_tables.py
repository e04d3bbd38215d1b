"""A report's content laid out as tables, one per part: what the XLSX sheets and the HTML sections show."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from compliance.assessment import DEFAULT_WEIGHTS
from compliance.report_labels import Lang, value_word, word
from compliance.reports import HEADLINE
from schemas.kpis import TARGET_NAMES

# How a column's values are written: the XLSX number format and the HTML text follow it.
KINDS = ("text", "percent", "number", "kg", "ratio", "score", "minutes", "integer", "datetime")
# Assessment indicators that are not fractions (shown as numbers, not percentages).
NOT_FRACTIONS = frozenset({"energy_intensity"})


@dataclass(frozen=True)
class Column:
    """A column: its key in the content, its heading, how its values are written, its width in characters."""

    key: str
    heading: str
    kind: str = "text"
    width: int = 12


@dataclass(frozen=True)
class Cell:
    """A value that is not written as its column says (`kind`), or that is flagged (below target, over cap)."""

    value: Any
    kind: str | None = None
    flag: bool = False


@dataclass
class Table:
    """One part of a report: a name (the XLSX sheet), columns and rows."""

    key: str
    title: str
    columns: list[Column]
    rows: list[list[Any]] = field(default_factory=list)


def title(content: Mapping[str, Any], lang: Lang) -> str:
    """The report's title: whom it is about, what it is, over when."""
    who = content["park"]["name"] if content["park"] else word("province", lang)
    when = content["period_start"] if content["kind"] == "daily" else content["period_start"][:7]
    return f"{who} {word(content['kind'], lang)} {when}"


def tables(content: Mapping[str, Any], lang: Lang) -> list[Table]:
    """Every part of the report, in the order it is read."""
    parts = [_summary(content, lang), _kpis(content, lang), _exceedances(content, lang), _alerts(content, lang),
             _alert_counts(content, lang), _caps(content, lang)]  # fmt: skip
    if content["assessment"] is not None:
        parts += [_ranking(content, lang), _indicators(content, lang)]
    return parts


def _columns(lang: Lang, *spec: tuple[str, str, int]) -> list[Column]:
    return [Column(key, word(key, lang), kind, width) for key, kind, width in spec]


def _when(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None


def _summary(c: Mapping[str, Any], lang: Lang) -> Table:
    t = Table("summary", word("summary", lang), _columns(lang, ("item", "text", 18), ("content", "text", 40)))
    alerts = c["alerts"]
    changed = bool(c.get("data_changed_since"))
    scope = f"{c['park']['name']} ({c['park']['id']})" if c["park"] else word("province", lang)
    t.rows = [
        [word("report", lang), title(c, lang)],
        [word("scope", lang), scope],
        [word("period", lang), f"{c['period_start']} – {c['period_end']}"],
        [word("timezone", lang), c["timezone"]],
        [word("generated_at", lang), Cell(_when(c["generated_at"]), "datetime")],
        [word("complete", lang), Cell(value_word(c["complete"], lang), flag=not c["complete"])],
        [word("data_changed_since", lang), Cell(value_word(changed, lang), flag=changed)],
        [word("n_exceedances", lang), Cell(len(c["exceedances"]), "integer")],
        [word("n_alerts", lang), Cell(len(alerts), "integer")],
        [word("n_acknowledged", lang), Cell(sum(a["acked_at"] is not None for a in alerts), "integer")],
        [word("n_overdue", lang), Cell(sum(a["explanation_state"] == "overdue" for a in alerts), "integer")],
        [word("caps_as_of", lang), Cell(_when(c["caps_as_of"]), "datetime")],
    ]
    return t


def _kpis(c: Mapping[str, Any], lang: Lang) -> Table:
    columns = _columns(lang, ("park_id", "text", 12), ("park_name", "text", 20), ("city", "text", 8))
    columns += [Column(n, word(n, lang), "percent", 11) for n in HEADLINE]
    columns += [Column(f"target.{n}", f"{word('target', lang)}: {word(n, lang)}", "percent", 11) for n in TARGET_NAMES]
    columns += _columns(lang, ("shortfalls", "text", 36), ("removal_efficiency", "text", 24), ("reasons", "text", 48))
    t = Table("kpis", word("kpis", lang), columns)
    for k in c["kpis"]:
        short = k["shortfalls"]
        province = k["level"] == "province"
        row: list[Any] = [k["park_id"] or "", word("province_total", lang) if province else k["park_name"], k["city"]]
        row += [Cell(k["figures"][n], flag=n in short) for n in HEADLINE]
        row += [(k["targets"] or {}).get(n) for n in TARGET_NAMES]
        # Stored content comes back with its keys in jsonb's order: parts are listed in a fixed one.
        shown = [f"{word(n, lang)} {short[n]['value']:.1%} < {short[n]['target']:.1%}" for n in _ordered(short)]
        row.append("; ".join(shown))
        removal = k["removal_efficiency"] or {}
        row.append("; ".join(f"{code} {_pct(removal[code])}" for code in sorted(removal)))
        row.append("; ".join(f"{word(n, lang)}: {r}" for n in _ordered(k["reasons"]) for r in k["reasons"][n]))
        t.rows.append(row)
    return t


def _ordered(names: Mapping[str, Any], order: tuple[str, ...] = HEADLINE) -> list[str]:
    """The keys in the given order, any other after them by name."""
    rank = {n: i for i, n in enumerate(order)}
    return sorted(names, key=lambda n: (rank.get(n, len(rank)), n))


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{value:.1%}"


def _exceedances(c: Mapping[str, Any], lang: Lang) -> Table:
    t = Table("exceedances", word("exceedances", lang), _columns(
        lang, ("park_id", "text", 10), ("station_id", "text", 14), ("station_name", "text", 16),
        ("parameter", "text", 9), ("parameter_name", "text", 12), ("window_kind", "text", 12),
        ("window_start", "datetime", 17), ("window_end", "datetime", 17), ("value", "number", 10),
        ("measured", "number", 10), ("limit", "number", 9), ("unit", "text", 8), ("multiple", "ratio", 9),
        ("standard", "text", 14), ("class", "text", 10),
    ))  # fmt: skip
    for e in c["exceedances"]:
        limit = e["limit"]
        shown = f"{limit[0]:g}–{limit[1]:g}" if isinstance(limit, list) else limit
        t.rows.append([
            e["park_id"], e["station_id"], e["station_name"], e["parameter"], e["parameter_name"],
            value_word(e["window_kind"], lang), _when(e["window_start"]), _when(e["window_end"]), e["value"],
            e["measured"], shown, e["unit"], e["multiple"], e["standard"], e["class"],
        ])  # fmt: skip
    return t


def _alerts(c: Mapping[str, Any], lang: Lang) -> Table:
    t = Table("alerts", word("alerts", lang), _columns(
        lang, ("id", "integer", 7), ("park_id", "text", 10), ("station_id", "text", 14), ("parameter", "text", 9),
        ("rule", "text", 22), ("family", "text", 10), ("severity", "text", 7), ("status", "text", 8),
        ("first_seen", "datetime", 17), ("raised_at", "datetime", 17), ("late", "text", 6),
        ("acked_at", "datetime", 17), ("acked_by", "text", 10), ("ack_minutes", "minutes", 10),
        ("cleared_at", "datetime", 17), ("clear_minutes", "minutes", 10), ("clear_reason", "text", 12),
        ("verification", "text", 12), ("explanation_state", "text", 12), ("explanation_due_at", "datetime", 17),
        ("explanation", "text", 40),
    ))  # fmt: skip
    for a in c["alerts"]:
        t.rows.append([
            a["id"], a["park_id"], a["station_id"], a["parameter"], a["rule"], value_word(a["family"], lang),
            value_word(a["severity"], lang), value_word(a["status"], lang), _when(a["first_seen"]),
            _when(a["raised_at"]), value_word(a["late"], lang), _when(a["acked_at"]), a["acked_by"],
            a["ack_minutes"], _when(a["cleared_at"]), a["clear_minutes"], a["clear_reason"],
            value_word(a["verification"], lang),
            Cell(value_word(a["explanation_state"], lang), flag=a["explanation_state"] == "overdue"),
            _when(a["explanation_due_at"]), a["explanation"],
        ])  # fmt: skip
    return t


def _alert_counts(c: Mapping[str, Any], lang: Lang) -> Table:
    t = Table("alert_counts", word("alert_counts", lang), _columns(
        lang, ("family", "text", 12), ("severity", "text", 8), ("count", "integer", 8), ("acknowledged", "integer", 9),
        ("cleared", "integer", 9), ("explanations_overdue", "integer", 10),
    ))  # fmt: skip
    for n in c["alert_counts"]:
        t.rows.append([value_word(n["family"], lang), value_word(n["severity"], lang), n["count"], n["acknowledged"],
                       n["cleared"], Cell(n["explanations_overdue"], flag=n["explanations_overdue"] > 0)])  # fmt: skip
    return t


def _caps(c: Mapping[str, Any], lang: Lang) -> Table:
    t = Table("caps", word("caps", lang), _columns(
        lang, ("park_id", "text", 10), ("station_id", "text", 14), ("parameter", "text", 9), ("year", "integer", 7),
        ("cap_kg", "kg", 14), ("cumulative_kg", "kg", 14), ("substituted_kg", "kg", 12),
        ("share_of_cap", "percent", 10), ("projected_kg", "kg", 14), ("projected_share", "percent", 10),
        ("over_cap", "text", 9), ("projected_over_cap", "text", 9), ("missing", "text", 10),
    ))  # fmt: skip
    for p in c["caps"]:
        unit = "hours" if "missing_hours" in p else "days"
        t.rows.append([
            p["park_id"], p["station_id"], p["parameter"], p["year"], p["cap_kg"], p["cumulative_kg"],
            p["substituted_kg"], Cell(p["share_of_cap"], flag=p["over_cap"]), p["projected_kg"],
            Cell(p["projected_share"], flag=p["projected_over_cap"]), Cell(value_word(p["over_cap"], lang),
            flag=p["over_cap"]), Cell(value_word(p["projected_over_cap"], lang), flag=p["projected_over_cap"]),
            f"{p[f'missing_{unit}']} {word(unit, lang)}",
        ])  # fmt: skip
    return t


def _ranking(c: Mapping[str, Any], lang: Lang) -> Table:
    t = Table("assessment", word("assessment", lang), _columns(
        lang, ("rank", "integer", 6), ("park_id", "text", 10), ("park_name", "text", 20), ("city", "text", 8),
        ("score", "score", 8), ("city_rank", "integer", 8), ("status", "text", 10), ("yellow_card", "text", 6),
        ("card_reasons", "text", 48), ("missing", "text", 30),
    ))  # fmt: skip
    for r in c["assessment"]["results"]:
        t.rows.append([
            r["rank"], r["park_id"], r["park_name"], r["city"], r["score"], r["city_rank"],
            value_word(r["status"], lang), Cell(value_word(r["yellow_card"], lang), flag=r["yellow_card"]),
            "; ".join(r["card_reasons"]), "; ".join(word(m, lang) for m in r["missing"]),
        ])  # fmt: skip
    return t


def _indicators(c: Mapping[str, Any], lang: Lang) -> Table:
    t = Table("assessment_indicators", word("assessment_indicators", lang), _columns(
        lang, ("park_id", "text", 10), ("indicator", "text", 22), ("indicator_value", "percent", 10),
        ("target", "percent", 10), ("score", "score", 8), ("weight", "score", 8), ("source", "text", 10),
    ))  # fmt: skip
    for r in c["assessment"]["results"]:
        for name in _ordered(r["indicators"], tuple(DEFAULT_WEIGHTS)):
            i = r["indicators"][name]
            kind = "number" if name in NOT_FRACTIONS else None
            t.rows.append([r["park_id"], word(name, lang), Cell(i["value"], kind), Cell(i["target"], kind), i["score"],
                           i["weight"], word(f"{i['source']}_source", lang)])  # fmt: skip
    return t
