"""An export as an XLSX workbook, written row by row in constant memory."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import asyncpg
import xlsxwriter

from api.export_writers import BATCH_ROWS, COLUMNS, SHEET_ROWS, SHEETS, Lang, Plan, batches


class TooManyRowsError(Exception):
    """An XLSX export went past the rows its caller allows."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        super().__init__(f"more than {limit:,} rows")


class _Book:
    """An XLSX workbook written row by row in constant memory, a new sheet every SHEET_ROWS rows."""

    def __init__(self, path: Path, kind: str, lang: Lang) -> None:
        # constant_memory: each row goes to a temporary file as soon as the next begins (strings
        # inline, no shared table), so memory stays flat however many rows. Text is only ever
        # text: a station name starting with '=' must not become a formula.
        self.book = xlsxwriter.Workbook(
            str(path),
            {
                "constant_memory": True,
                "tmpdir": str(path.parent),
                "strings_to_formulas": False,
                "strings_to_urls": False,
                "strings_to_numbers": False,
                "nan_inf_to_errors": True,
                # only used by a sheet whose XML passes 4 GB; without it such a file fails
                "use_zip64": True,
            },
        )
        self.book.set_properties({"title": f"parkwatch {kind}", "author": "parkwatch"})
        self.kind = kind
        self.lang = lang
        self.columns = COLUMNS[kind]
        self.header = self.book.add_format({"bold": True, "bg_color": "#E8EEF5", "border": 1})
        self.sheets = 0
        self.sheet: Any = None
        self.row = 0

    def _next_sheet(self) -> None:
        self._finish_sheet()
        self.sheets += 1
        title = SHEETS[self.kind][0 if self.lang == "zh" else 1]
        self.sheet = self.book.add_worksheet(title if self.sheets == 1 else f"{title} ({self.sheets})")
        for i, column in enumerate(self.columns):
            self.sheet.set_column(i, i, column.width)
            self.sheet.write_string(0, i, column.heading(self.lang), self.header)
        self.sheet.freeze_panes(1, 0)
        self.row = 0

    def _finish_sheet(self) -> None:
        if self.sheet is not None and self.row:
            self.sheet.autofilter(0, 0, self.row, len(self.columns) - 1)

    def write(self, rows: Sequence[Sequence[Any]]) -> None:
        """Append rows (blocking: run it in a thread)."""
        for cells in rows:
            if self.sheet is None or self.row >= SHEET_ROWS:
                self._next_sheet()
            self.row += 1
            sheet, r = self.sheet, self.row
            for c, value in enumerate(cells):
                if value is None:
                    continue
                if isinstance(value, str):
                    sheet.write_string(r, c, value)
                elif isinstance(value, bool):
                    sheet.write_boolean(r, c, value)
                else:
                    sheet.write_number(r, c, value)

    def abandon(self) -> None:
        """Let go of the sheets' temporary files without assembling anything (the caller removes them)."""
        for sheet in self.book.worksheets():
            # constant_memory's row file (private, no public way): close() would compress it all
            sheet._opt_close()

    def close(self) -> None:
        """Finish the last sheet and assemble the file (blocking: it compresses every sheet)."""
        if self.sheet is None:
            self._next_sheet()
        self._finish_sheet()
        self.book.close()


def _check_rows(done: int, max_rows: int | None) -> None:
    if max_rows is not None and done > max_rows:
        raise TooManyRowsError(max_rows)


async def write_xlsx(
    conn: asyncpg.Connection,
    plan: Plan,
    lang: Lang,
    path: Path,
    *,
    max_rows: int | None = None,
    progress: Callable[[int], None] | None = None,
    batch_rows: int | None = None,
) -> int:
    """Write the export to `path` as XLSX; returns its rows. TooManyRowsError past `max_rows` (the file is left)."""
    book = _Book(path, plan.kind, lang)
    done = 0
    try:
        async with contextlib.aclosing(batches(conn, plan, batch_rows=batch_rows or BATCH_ROWS)) as source:
            async for rows in source:
                done += len(rows)
                _check_rows(done, max_rows)
                # The cells are made here, the writing (most of the time) in a thread, so that
                # the event loop keeps serving meanwhile.
                await asyncio.to_thread(book.write, list(map(plan.row, rows)))
                if progress is not None:
                    progress(done)
    except BaseException:
        book.abandon()
        raise
    await asyncio.to_thread(book.close)
    return done
