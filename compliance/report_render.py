"""A report's content written out: an XLSX workbook (a sheet per part), a printable HTML page, or JSON."""

from __future__ import annotations

import html
import io
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Literal

import orjson
import xlsxwriter

from compliance.report_labels import Lang, word
from compliance.report_tables import Cell, Column, Table, tables, title

Format = Literal["json", "html", "xlsx"]
MEDIA_TYPES: dict[str, str] = {
    "json": "application/json",
    "html": "text/html; charset=utf-8",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}
# Excel's number format per column kind; a kind not listed is written as it comes (General).
NUMBER_FORMATS = {
    "percent": "0.0%",
    "kg": "#,##0.0",
    "ratio": "0.00",
    "score": "0.0",
    "minutes": "0.0",
    "integer": "0",
    "datetime": "yyyy-mm-dd hh:mm",
}
# The same, as the HTML page writes a number.
TEXT_FORMATS = {"percent": ".1%", "kg": ",.1f", "ratio": ".2f", "score": ".1f", "minutes": ".1f", "integer": ".0f"}
FLAG_COLOUR = "#B00020"
# A sheet's name may not hold these, nor be longer than 31 characters (Excel's rules).
SHEET_NAME_BAD = re.compile(r"[\[\]:*?/\\]")

CSS = """
body { font-family: "Noto Sans CJK SC", "Microsoft YaHei", "PingFang SC", "Source Han Sans SC", sans-serif;
       font-size: 13px; color: #222; margin: 24px; }
h1 { font-size: 20px; margin: 0 0 4px; }
h2 { font-size: 16px; border-bottom: 2px solid #2b5d8a; padding-bottom: 2px; margin: 28px 0 6px; }
.meta { color: #555; margin: 0; }
.partial { color: #b00020; font-weight: 600; }
table { border-collapse: collapse; width: 100%; }
th, td { border: 1px solid #bbb; padding: 3px 6px; vertical-align: top; }
th { background: #e8eef5; text-align: left; font-weight: 600; }
td.num { text-align: right; white-space: nowrap; }
td.flag { color: #b00020; font-weight: 600; }
.none { color: #777; font-style: italic; }
@media print {
  @page { size: A4 landscape; margin: 12mm; }
  body { margin: 0; font-size: 9.5px; }
  thead { display: table-header-group; }
  tr, th, td { page-break-inside: avoid; break-inside: avoid; }
  h2 { page-break-after: avoid; break-after: avoid; }
}
"""


def render(content: Mapping[str, Any], fmt: Format, lang: Lang = "zh") -> bytes:
    """The report in the format asked for."""
    if fmt == "xlsx":
        return xlsx(content, lang)
    if fmt == "html":
        return page(content, lang).encode()
    return orjson.dumps(content, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS)


def filename(content: Mapping[str, Any], fmt: Format) -> str:
    """parkwatch-daily-<park or province>-<period>.<format>, in characters every header and file system takes."""
    scope = re.sub(r"[^A-Za-z0-9._-]", "_", content["park_id"] or "province")
    period = content["period_start"] if content["kind"] == "daily" else content["period_start"][:7]
    return f"parkwatch-{content['kind']}-{scope}-{period}.{fmt}"


def _cell(value: Any, column: Column) -> tuple[Any, str, bool]:
    """The value, its kind and its flag."""
    if isinstance(value, Cell):
        return value.value, value.kind or column.kind, value.flag
    return value, column.kind, False


# -- XLSX ----------------------------------------------------------------------------------------


def xlsx(content: Mapping[str, Any], lang: Lang) -> bytes:
    """A workbook written row by row in constant memory: a sheet per part, a frozen header row, number formats."""
    out = io.BytesIO()
    # Text is only ever written as text: a park name or an explanation starting with '=' must not
    # become a formula in the inspector's spreadsheet.
    book = xlsxwriter.Workbook(out, {"constant_memory": True, "strings_to_formulas": False, "strings_to_urls": False})
    made = datetime.fromisoformat(content["generated_at"]).astimezone(UTC).replace(tzinfo=None)
    # The creation time is the report's, so the same content always gives the same workbook.
    book.set_properties({"title": title(content, lang), "author": "parkwatch", "created": made})
    header = book.add_format({"bold": True, "bg_color": "#E8EEF5", "border": 1, "text_wrap": True, "valign": "top"})
    formats: dict[tuple[str, bool], Any] = {}

    def fmt_of(kind: str, flag: bool) -> Any:
        key = (kind, flag)
        if key not in formats:
            spec: dict[str, Any] = {"num_format": NUMBER_FORMATS[kind]} if kind in NUMBER_FORMATS else {}
            if flag:
                spec |= {"font_color": FLAG_COLOUR, "bold": True}
            formats[key] = book.add_format(spec)
        return formats[key]

    names: set[str] = set()
    for table in tables(content, lang):
        sheet = book.add_worksheet(_sheet_name(table.title, names))
        for i, column in enumerate(table.columns):
            sheet.set_column(i, i, column.width)
        sheet.freeze_panes(1, 0)
        for i, column in enumerate(table.columns):
            sheet.write_string(0, i, column.heading, header)
        for r, row in enumerate(table.rows, start=1):
            for i, column in enumerate(table.columns):
                value, kind, flag = _cell(row[i], column)
                _write(sheet, r, i, value, fmt_of(kind, flag))
        if not table.rows:
            sheet.write_string(1, 0, word("none", lang))
        else:
            sheet.autofilter(0, 0, len(table.rows), len(table.columns) - 1)
    book.close()
    return out.getvalue()


def _write(sheet: Any, row: int, col: int, value: Any, fmt: Any) -> None:
    if value is None:
        sheet.write_blank(row, col, None, fmt)
    elif isinstance(value, datetime):
        # Excel has no time zones: the wall-clock time of the station's zone, which the content keeps.
        sheet.write_datetime(row, col, value.replace(tzinfo=None), fmt)
    elif isinstance(value, int | float) and not isinstance(value, bool):
        sheet.write_number(row, col, value, fmt)
    else:
        sheet.write_string(row, col, str(value), fmt)


def _sheet_name(text: str, taken: set[str]) -> str:
    name = SHEET_NAME_BAD.sub("_", text)[:31]
    n = 2
    while name.lower() in taken:
        name = f"{name[:28]}~{n}"
        n += 1
    taken.add(name.lower())
    return name


# -- HTML ----------------------------------------------------------------------------------------


def page(content: Mapping[str, Any], lang: Lang) -> str:
    """A self-contained printable page: inline CSS, no script, no external asset; every value escaped."""
    heading = _e(title(content, lang))
    parts = tables(content, lang)
    made = datetime.fromisoformat(content["generated_at"]).strftime("%Y-%m-%d %H:%M")
    meta = f"{_e(word('generated_at', lang))}: {_e(made)} ({_e(content['timezone'])})"
    body = [f'<header><h1>{heading}</h1><p class="meta">{meta}</p>']
    if not content["complete"]:
        body.append(f'<p class="partial">{_e(word("incomplete", lang))}</p>')
    if content.get("data_changed_since"):
        body.append(f'<p class="partial">{_e(word("data_changed", lang))}</p>')
    body.append("</header>")
    for n, table in enumerate(parts, start=1):
        body.append(_section(n, table, lang))
    html_lang = "zh-CN" if lang == "zh" else "en"
    return (
        f'<!DOCTYPE html>\n<html lang="{html_lang}">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{heading}</title>\n<style>{CSS}</style>\n</head>\n<body>\n" + "\n".join(body) + "\n</body>\n</html>\n"
    )


def _section(n: int, table: Table, lang: Lang) -> str:
    head = "".join(f"<th>{_e(c.heading)}</th>" for c in table.columns)
    out = [f'<section id="{table.key}"><h2>{n}. {_e(table.title)}</h2>']
    if not table.rows:
        out.append(f'<p class="none">{_e(word("none", lang))}</p></section>')
        return "".join(out)
    out.append(f"<table><thead><tr>{head}</tr></thead><tbody>")
    for row in table.rows:
        cells = []
        for value, column in zip(row, table.columns, strict=True):
            shown, kind, flag = _cell(value, column)
            classes = " ".join(c for c in ("num" if kind != "text" else "", "flag" if flag else "") if c)
            attr = f' class="{classes}"' if classes else ""
            cells.append(f"<td{attr}>{_e(_text(shown, kind))}</td>")
        out.append(f"<tr>{''.join(cells)}</tr>")
    out.append("</tbody></table></section>")
    return "".join(out)


def _text(value: Any, kind: str) -> str:
    """A value as the page shows it, following the column's kind."""
    if value is None or value == "":
        return "—"
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M")
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    return format(value, TEXT_FORMATS.get(kind, "g"))


def _e(text: str) -> str:
    return html.escape(text, quote=True)
