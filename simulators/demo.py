"""The demo: migrate, register the demo fleet, publish simulated readings, serve ingest and API."""

from __future__ import annotations

import asyncio
import logging

import asyncpg

from ingest.registry import load_registry_file
from parkwatch.serve import serve
from parkwatch.settings import Settings
from schemas.migrate import migrate
from schemas.registry import read_registry
from simulators.publisher import demo_registry_path, publish_fleet

logger = logging.getLogger(__name__)


def run_demo(settings: Settings, *, interval: float, duration: float | None) -> int:
    """The `parkwatch demo` command."""
    result = migrate(settings.DATABASE_URL, timescale=settings.TIMESCALE)
    registry = read_registry(demo_registry_path())

    async def main() -> None:
        conn = await asyncpg.connect(settings.DATABASE_URL)
        try:
            await load_registry_file(conn, registry)
        finally:
            await conn.close()
        base = f"http://{settings.API_HOST}:{settings.API_PORT}"
        first = registry.stations[1]
        print(
            "\n".join(
                [
                    "",
                    f"parkwatch demo: database {settings.database_name} ({result.storage} storage), "
                    f"{len(registry.stations)} stations in {len(registry.parks)} parks "
                    f"publishing every {interval:g}s.",
                    f"  API docs        {base}/docs",
                    f"  stations        {base}/api/v1/stations",
                    f"  latest readings {base}/api/v1/readings?station_id={first.id}&parameter=cod",
                    f"  health          {base}/healthz",
                    f"  dead letters    {base}/api/v1/dead-letters/summary",
                    "Stop with Ctrl-C.",
                    "",
                ]
            ),
            flush=True,
        )

        async def publisher(stop: asyncio.Event) -> None:
            await publish_fleet(settings, registry, interval=interval, stop=stop, duration=duration)
            if duration is not None:
                # Give the last messages a moment to be committed before stopping.
                await asyncio.sleep(1.0)
                stop.set()

        await serve(settings, extra=publisher)

    asyncio.run(main())
    return 0
