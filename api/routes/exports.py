"""Streaming exports of readings, verdicts and alerts (CSV, XLSX) within the caller's scope."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from collections.abc import AsyncGenerator, Callable
from pathlib import Path as FilePath
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from api import params
from api.deps import ConnDep, PrincipalDep, SettingsDep
from api.errors import ApiError
from api.export_csv import csv_chunks
from api.export_writers import (
    MEDIA_TYPES,
    SHEET_ROWS,
    Filters,
    Format,
    Kind,
    Lang,
    plan_export,
)
from api.export_xlsx import TooManyRowsError, write_xlsx
from api.routes.alerts import SeverityName, Status

router = APIRouter(prefix="/api/v1", tags=["exports"])

# An export holds one of the pool's connections (api/app.py POOL_MAX) for as long as it runs: a
# few at once per process leave the rest for everyone else's pages.
MAX_CONCURRENT = 3
# Of which one key or user holds at most this many: one slow client must not lock out the others.
MAX_PER_PRINCIPAL = 1
# An XLSX file is whole before its first byte can be sent (a zip's directory comes last), so
# the client waits while it is written, 12,000-17,000 rows/s (docs/benchmarks.md#exports): two
# full sheets are two to three minutes, and past that a spreadsheet is the wrong tool. CSV has
# no such limit.
MAX_XLSX_ROWS = 2 * SHEET_ROWS
FILE_CHUNK = 1024 * 1024
RETRY_AFTER_S = 30

EXPORT_DOC: dict[int | str, dict[str, Any]] = {
    200: {
        "content": {MEDIA_TYPES["csv"].split(";")[0]: {}, MEDIA_TYPES["xlsx"]: {}},
        "description": "the rows as a CSV or XLSX attachment",
    }
}


class ExportResponse(StreamingResponse):
    """A streamed export that stops cleanly when the client goes away, and lets go of what it holds however it ends.

    It runs inside the request's dependencies (FastAPI ≥ 0.118 exits them after the response), so
    the request's connection is still there while the body is read from it. Starlette's own
    streaming cancels the body on a disconnect; a cancellation landing in the middle of a fetch
    leaves the cursor's transaction open on a connection about to go back to the pool (every
    await of the rollback is cancelled again). Here a disconnect is noticed between two chunks
    instead, and the body is closed the ordinary way: its transaction rolls back on the spot.
    """

    def __init__(
        self, body: AsyncGenerator[bytes], *, media_type: str, headers: dict[str, str], on_close: Callable[[], None]
    ) -> None:
        super().__init__(body, media_type=media_type, headers=headers)
        self._body = body
        self._on_close = on_close

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:  # noqa: ARG002 - ASGI's signature
        """Send the body chunk by chunk until it ends or the client leaves; then close it and release."""
        gone = asyncio.Event()

        async def watch() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass
            gone.set()

        watcher = asyncio.create_task(watch())
        try:
            await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
            async for chunk in self._body:
                if gone.is_set():
                    return
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            watcher.cancel()
            try:
                await self._body.aclose()
            finally:
                self._on_close()


def _slots(request: Request) -> asyncio.Semaphore:
    slots: asyncio.Semaphore | None = getattr(request.app.state, "export_slots", None)
    if slots is None:
        slots = request.app.state.export_slots = asyncio.Semaphore(MAX_CONCURRENT)
    return slots


async def _file_chunks(path: FilePath) -> AsyncGenerator[bytes]:
    with path.open("rb") as f:
        while chunk := await asyncio.to_thread(f.read, FILE_CHUNK):
            yield chunk


@router.get("/exports/{kind}", response_class=StreamingResponse, responses=EXPORT_DOC)
async def export(
    request: Request,
    conn: ConnDep,
    principal: PrincipalDep,
    settings: SettingsDep,
    kind: Annotated[
        Kind,
        Path(description="readings (as stored), hourly and daily (the rollups), verdicts (judged windows), alerts"),
    ],
    station_id: Annotated[list[str] | None, Query(description="station ids (repeat or comma-separate)")] = None,
    park_id: Annotated[str | None, Query(description="every station of this park (and, for alerts, its own)")] = None,
    parameter: Annotated[list[str] | None, Query(description="HJ 212 codes or aliases")] = None,
    start: Annotated[
        str | None, Query(description="ISO 8601, inclusive; without an offset, the station's local time")
    ] = None,
    end: Annotated[str | None, Query(description="exclusive; default now (start: a day before end)")] = None,
    interval: Annotated[
        Literal["rtd", "min", "hour", "day"] | None,
        Query(description="readings: only this stored interval (hour and day: as the stations reported them)"),
    ] = None,
    verdict: Annotated[
        list[Literal["compliant", "exceedance", "insufficient_data"]] | None, Query(description="verdicts: only these")
    ] = None,
    window: Annotated[
        list[Literal["hour", "day", "1h", "8h", "24h"]] | None, Query(description="verdicts: only these windows")
    ] = None,
    status: Annotated[list[Status] | None, Query(description="alerts: only these states")] = None,
    severity: Annotated[list[SeverityName] | None, Query(description="alerts: only these severities")] = None,
    rule: Annotated[list[str] | None, Query(description="alerts: rules or families")] = None,
    fmt: Annotated[Format, Query(alias="format", description="csv (streamed) or xlsx (written, then sent)")] = "csv",
    lang: Annotated[Lang, Query(description="column headings in Chinese (zh) or English (en)")] = "zh",
    bom: Annotated[
        bool, Query(description="csv: start with a UTF-8 byte order mark, which Excel needs to read UTF-8")
    ] = True,
) -> ExportResponse:
    """Every row the filters select within the caller's scope, as a CSV or XLSX attachment (docs/exports.md).

    Without station_id or park_id, every station the caller may see. CSV is streamed as it is
    read, in constant memory whatever its size; XLSX is written whole first (at most 2,097,150
    rows, 1,048,575 a sheet), then sent with its length. Times are ISO 8601 with the station's offset.
    """
    slots = _slots(request)
    mine: dict[int, int] | None = getattr(request.app.state, "exports_by_principal", None)
    if mine is None:
        mine = request.app.state.exports_by_principal = {}
    if mine.get(principal.id, 0) >= MAX_PER_PRINCIPAL:
        raise ApiError(
            429, "exports_busy", f"this key or user has {MAX_PER_PRINCIPAL} export running; wait for it to end",
            headers={"Retry-After": str(RETRY_AFTER_S)},
        )  # fmt: skip
    if slots.locked():
        raise ApiError(
            503, "exports_busy", f"{MAX_CONCURRENT} exports are running in this process; retry shortly",
            headers={"Retry-After": str(RETRY_AFTER_S)},
        )  # fmt: skip
    await slots.acquire()
    mine[principal.id] = mine.get(principal.id, 0) + 1
    folder: FilePath | None = None

    def release() -> None:
        slots.release()
        # the count goes with its last export (a principal's entry lives only while it exports)
        if (left := mine.get(principal.id, 1) - 1) > 0:
            mine[principal.id] = left
        else:
            mine.pop(principal.id, None)
        if folder is not None:
            shutil.rmtree(folder, ignore_errors=True)

    try:
        filters = Filters(
            station_ids=params.split(station_id) or [],
            park_id=park_id,
            parameters=params.split(parameter) or [],
            start=start,
            end=end,
            interval=interval,
            verdicts=list(verdict or []),
            windows=list(window or []),
            statuses=list(status or []),
            severities=list(severity or []),
            rules=params.split(rule) or [],
        )
        plan = await plan_export(conn, kind, filters, default_zone=settings.DEFAULT_TIMEZONE, fmt=fmt, lang=lang)
        name = plan.filename(fmt)
        headers = {
            "Content-Disposition": f'attachment; filename="{name}"',
            # what a caller may see is theirs alone: no shared cache keeps it
            "Cache-Control": "no-store",
            "X-Content-Type-Options": "nosniff",
        }
        body: AsyncGenerator[bytes]
        if fmt == "csv":
            body = csv_chunks(conn, plan, lang, bom=bom)
        else:
            folder = FilePath(tempfile.mkdtemp(prefix="parkwatch-export-"))
            path = folder / name
            try:
                await write_xlsx(conn, plan, lang, path, max_rows=MAX_XLSX_ROWS)
            except TooManyRowsError as exc:
                raise ApiError(
                    413, "too_many_rows",
                    f"an XLSX export holds at most {exc.limit:,} rows; ask for format=csv or a shorter range",
                ) from None  # fmt: skip
            headers["Content-Length"] = str(path.stat().st_size)
            body = _file_chunks(path)
    except BaseException:
        release()
        raise
    return ExportResponse(body, media_type=MEDIA_TYPES[fmt], headers=headers, on_close=release)
