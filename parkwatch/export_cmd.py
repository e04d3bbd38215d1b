"""`parkwatch export`: the API's exports (docs/exports.md) written straight from the database, to a file or stdout."""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import sys
import tempfile
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from parkwatch.progress import Bar

if TYPE_CHECKING:
    import asyncpg

    from api.export_writers import Format, Plan
    from parkwatch.settings import Settings

# api/export_writers.py KINDS (tests/test_exports.py keeps the two equal); spelled out here so that
# building the command line's grammar does not import the API.
KINDS = ("readings", "hourly", "daily", "verdicts", "alerts")
EXIT_USAGE = 2


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The grammar of `parkwatch export`."""
    p.description = (
        "Every row the filters select, as CSV (streamed) or XLSX, with Chinese or English headings; the same "
        "files as GET /api/v1/exports/KIND, over the whole database (whoever holds its credentials sees all)."
    )
    p.add_argument("kind", choices=KINDS, help="readings (as stored), hourly, daily (rollups), verdicts, alerts")
    p.add_argument(
        "--from", dest="start", metavar="TIME",
        help="ISO 8601 date or time, inclusive; without an offset, the station's local time (default: a day before "
        "--to; alerts: all)",
    )  # fmt: skip
    p.add_argument("--to", dest="end", metavar="TIME", help="exclusive (default: now; alerts: all)")
    p.add_argument("--station", action="append", dest="stations", default=[], metavar="ID", help="repeatable")
    p.add_argument("--park", metavar="ID", help="every station of this park (alerts: and its own)")
    p.add_argument(
        "--parameter",
        action="append",
        dest="parameters",
        default=[],
        metavar="P",
        help="HJ 212 code or alias (repeatable)",
    )
    p.add_argument("--interval", choices=("rtd", "min", "hour", "day"), help="readings: only this stored interval")
    p.add_argument(
        "--verdict", action="append", dest="verdicts", default=[],
        choices=("compliant", "exceedance", "insufficient_data"), help="verdicts: only these (repeatable)",
    )  # fmt: skip
    p.add_argument(
        "--window", action="append", dest="windows", default=[], choices=("hour", "day", "1h", "8h", "24h"),
        help="verdicts: only these windows (repeatable)",
    )  # fmt: skip
    p.add_argument(
        "--status", action="append", dest="statuses", default=[], choices=("pending", "active", "cleared"),
        help="alerts: only these states (repeatable)",
    )  # fmt: skip
    p.add_argument(
        "--severity", action="append", dest="severities", default=[],
        choices=("advisory", "warning", "major", "critical"), help="alerts: only these (repeatable)",
    )  # fmt: skip
    p.add_argument(
        "--rule",
        action="append",
        dest="rules",
        default=[],
        metavar="RULE",
        help="alerts: a rule or family (repeatable)",
    )
    p.add_argument(
        "--format", dest="fmt", choices=("csv", "xlsx"), help="default: xlsx when -o names a .xlsx file, else csv"
    )
    p.add_argument("--lang", choices=("zh", "en"), default="zh", help="headings in Chinese (default) or English")
    p.add_argument("--no-bom", dest="bom", action="store_false", help="csv: no UTF-8 byte order mark at the start")
    p.add_argument("-o", "--output", type=Path, metavar="FILE", help="write here (default: stdout)")


def _say(message: str) -> None:
    """A refusal or failure, on stderr (stdout may be the export itself)."""
    sys.stderr.write(f"parkwatch: export: {message}\n")


def run(settings: Settings, args: argparse.Namespace) -> int:
    """Run `parkwatch export`; returns the exit status."""
    fmt: Format = args.fmt or ("xlsx" if args.output is not None and args.output.suffix.lower() == ".xlsx" else "csv")
    if fmt == "xlsx" and args.output is None and sys.stdout.isatty():
        _say("an XLSX file is binary: give -o FILE.xlsx or redirect stdout")
        return EXIT_USAGE
    try:
        return asyncio.run(_export(settings, args, fmt))
    except BrokenPipeError:
        # The reader went away (`parkwatch export ... | head`): nothing the export did wrong. Python
        # would complain again flushing stdout at exit; point it at /dev/null first.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


async def _export(settings: Settings, args: argparse.Namespace, fmt: Format) -> int:
    import asyncpg  # noqa: PLC0415 - the grammar above is built on every command; this only here

    from api.errors import ApiError  # noqa: PLC0415
    from api.export_writers import Filters, count, plan_export  # noqa: PLC0415

    try:
        conn = await asyncpg.connect(settings.DATABASE_URL)
    except (OSError, asyncpg.PostgresError) as exc:
        _say(f"cannot reach the database: {exc}")
        return 1
    bar = Bar()
    try:
        filters = Filters(
            station_ids=args.stations, park_id=args.park, parameters=args.parameters, start=args.start,
            end=args.end, interval=args.interval, verdicts=args.verdicts, windows=args.windows,
            statuses=args.statuses, severities=args.severities, rules=args.rules,
        )  # fmt: skip
        try:
            plan = await plan_export(
                conn, args.kind, filters, default_zone=settings.DEFAULT_TIMEZONE, fmt=fmt, lang=args.lang
            )
        except ApiError as exc:
            _say(f"{exc.detail} ({exc.code})")
            return EXIT_USAGE
        progress: Callable[[int], None] | None = None
        if bar.shown:
            # Only for the bar: counting is a pass over the rows of its own.
            total = await count(conn, plan)
            stage = f"export {args.kind}"
            bar(stage, 0, total)

            def progress(done: int) -> None:
                bar(stage, done, max(total, done))

        try:
            rows = await _write(conn, plan, fmt, args, progress)
        except asyncpg.PostgresError as exc:
            _say(f"the database failed the export: {exc}")
            return 1
    finally:
        bar.close()
        await conn.close()
    if args.output is not None:
        sys.stderr.write(f"{rows:,} rows written to {args.output}\n")
    return 0


async def _write(
    conn: asyncpg.Connection, plan: Plan, fmt: Format, args: argparse.Namespace, progress: Callable[[int], None] | None
) -> int:
    """Write the export where asked; returns its rows. A file appears under its name only once complete."""
    from api.export_csv import csv_chunks  # noqa: PLC0415
    from api.export_xlsx import write_xlsx  # noqa: PLC0415

    lang: Any = args.lang
    output: Path | None = args.output
    written = 0

    def tick(done: int) -> None:
        nonlocal written
        written = done
        if progress is not None:
            progress(done)

    # Made beside its destination (or in the temporary folder, for stdout) and renamed into place:
    # an export that fails half-way leaves no file that looks whole.
    folder = Path(tempfile.mkdtemp(prefix=".parkwatch-export-", dir=output.parent if output else None))
    try:
        path = folder / (output.name if output else plan.filename(fmt))
        if fmt == "xlsx":
            await write_xlsx(conn, plan, lang, path, progress=tick)
            if output is None:
                with path.open("rb") as workbook:
                    shutil.copyfileobj(workbook, sys.stdout.buffer)
        elif output is None:
            await _csv_to(sys.stdout.buffer, csv_chunks(conn, plan, lang, bom=args.bom, progress=tick))
        else:
            with path.open("wb") as f:
                await _csv_to(f, csv_chunks(conn, plan, lang, bom=args.bom, progress=tick))
        if output is None:
            sys.stdout.buffer.flush()
        else:
            path.replace(output)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return written


async def _csv_to(out: BinaryIO, chunks: AsyncIterator[bytes]) -> None:
    async for chunk in chunks:
        out.write(chunk)
