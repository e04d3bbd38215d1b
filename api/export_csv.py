"""An export as CSV, streamed chunk by chunk."""

from __future__ import annotations

import contextlib
import csv
import io
from collections.abc import AsyncGenerator, Callable

import asyncpg

from api.export_writers import BATCH_ROWS, BOM, Lang, Plan, batches, headings


async def csv_chunks(
    conn: asyncpg.Connection,
    plan: Plan,
    lang: Lang,
    *,
    bom: bool = True,
    progress: Callable[[int], None] | None = None,
    batch_rows: int | None = None,
) -> AsyncGenerator[bytes]:
    """The export as CSV (RFC 4180: comma, CRLF, quoted as needed), UTF-8, one chunk per batch of rows."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(headings(plan.kind, lang))
    head = buffer.getvalue().encode()
    yield (BOM + head) if bom else head
    done = 0
    # aclosing: when this generator is closed early (the client went away), the cursor's
    # transaction ends now, on this connection, not whenever the event loop finalises it.
    async with contextlib.aclosing(batches(conn, plan, batch_rows=batch_rows or BATCH_ROWS)) as source:
        async for rows in source:
            buffer.seek(0)
            buffer.truncate()
            writer.writerows(map(plan.row, rows))
            done += len(rows)
            yield buffer.getvalue().encode()
            if progress is not None:
                progress(done)
