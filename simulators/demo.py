"""The demo: migrate, register the demo fleet, publish a day of history and live readings, serve it all."""

from __future__ import annotations

import asyncio
import logging

import asyncpg

from ingest.registry import load_registry_file
from parkwatch.serve import serve
from parkwatch.settings import Settings
from schemas.migrate import migrate
from schemas.registry import read_registry
from simulators.backfill import backfill
from simulators.publisher import demo_registry_path, publish_fleet

logger = logging.getLogger(__name__)

# Hours of minute-data history the demo publishes before going live.
BACKFILL_HOURS = 24


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
                    f"  hourly rollups  {base}/api/v1/readings?station_id={first.id}&interval=hour",
                    f"  verdicts        {base}/api/v1/compliance?park_id={first.park_id}&verdict=exceedance"
                    "&verdict=insufficient_data",
                    f"  AQI             {base}/api/v1/aqi?park_id={first.park_id}&period=1h",
                    f"  health          {base}/healthz",
                    f"  dead letters    {base}/api/v1/dead-letters/summary",
                    "Stop with Ctrl-C.",
                    "",
                ]
            ),
            flush=True,
        )

        async def publisher(stop: asyncio.Event) -> None:
            # The last day first, so that there are closed hours and a day to judge at once.
            sent = await backfill(settings, registry, hours=BACKFILL_HOURS)
            logger.info("demo: published the last %d hours of history (%d messages)", BACKFILL_HOURS, sent)
            await publish_fleet(settings, registry, interval=interval, stop=stop, duration=duration)
            if duration is not None:
                # Give the last messages a moment to be committed before stopping.
                await asyncio.sleep(1.0)
                stop.set()

        await serve(settings, extra=publisher)

    asyncio.run(main())
    return 0
