"""The demo: a simulated province publishing through ingest, judged, and served by the API."""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import asyncpg

from alerts.config import load_routing
from api.principals import Role, Scope, create_key, create_user
from compliance.delivery import local_today
from ingest.registry import load_registry_file
from parkwatch.embedded.process import pick_port
from parkwatch.serve import serve
from parkwatch.settings import Settings
from schemas.migrate import migrate
from schemas.registry import RegistryFile
from simulators.demo_inputs import REPORTER, store_inputs
from simulators.engine import Simulation
from simulators.fleet import province
from simulators.notice_sink import NoticeSink, Secrets, serving
from simulators.scenario import Event
from simulators.scratch import drop, with_db
from simulators.simulate import run_simulation

logger = logging.getLogger(__name__)

# The demo starts this far in the past and replays at full speed until it has caught up with the
# clock, so that closed hours are judged within a minute of starting; then it runs in real time.
HISTORY = timedelta(hours=6)
# The scripted exceedance a newcomer should find: the first cement kiln's SO2 at 340 mg/m³
# measured (about 330-350 at GB 4915's 10 % O2 reference, as the kiln's O2 wanders; limit 200)
# from 3 h to 1 h before the start. Well inside one severity (major: 0.5 to 1 times over the
# limit): at 300 the corrected hours fell either side of 0.5 by chance, and the one episode sent
# a second notice when its severity rose.
EXCURSION_FROM, EXCURSION_TO = timedelta(hours=3), timedelta(hours=1)
EXCURSION_SO2 = 340.0
# The demo's database, spool folder, MQTT client id and topic prefix are the configured ones with this suffix.
DEMO_SUFFIX = "_demo"
# With --duration, how long the demo waits for the last verdicts and notices before stopping.
SETTLE_TIMEOUT = 60.0
# Work still in the pipeline: hours to judge, verdict changes to apply, notices to deliver.
SETTLE_PENDING = """
SELECT (SELECT count(*) FROM rollup_queue) + (SELECT count(*) FROM alert_inbox)
     + (SELECT count(*) FROM notifications WHERE status IN ('queued', 'sending'))
"""
# The simulated readings and the parks' reported inputs are drawn from this seed: every demo alike.
SEED = 1
# The demo's webhook signs with this (a local receiver; nothing secret about it).
DEMO_WEBHOOK_SECRET = "parkwatch-demo"  # noqa: S105


def demo_database(settings: Settings) -> str:
    """The demo's own database, beside the configured one: `parkwatch` → `parkwatch_demo`."""
    return with_db(settings.DATABASE_URL, f"{settings.database_name}{DEMO_SUFFIX}")


def demo_settings(settings: Settings) -> dict[str, object]:
    """What the demo changes in the settings: its own database, spool, broker session and topics."""
    return {
        "DATABASE_URL": demo_database(settings),
        "SPOOL_DIR": settings.SPOOL_DIR.with_name(f"{settings.SPOOL_DIR.name}{DEMO_SUFFIX}"),
        "MQTT_CLIENT_ID": f"{settings.MQTT_CLIENT_ID}{DEMO_SUFFIX}",
        "TOPIC_PREFIX": f"{settings.TOPIC_PREFIX}{DEMO_SUFFIX}",
        # The province map opens at / with no sign-in, for this machine only (docs/dashboard.md).
        "DASHBOARD_LOCAL_VIEWER": True,
    }


def run_demo(settings: Settings, *, parks: int, duration: float | None) -> int:
    """The `parkwatch demo` command."""
    # A fresh database each start: a second demo within six hours would otherwise find the first
    # one's readings stored for the same minutes (the first value of a key stands), and show the
    # old episode instead of its own. Never the configured database, which may hold real data;
    # nor the real ingest's spool, broker session or topics: a demo beside a real installation
    # must neither take the real stations' messages nor leave its own for the real ingest.
    settings = settings.model_copy(update=demo_settings(settings))
    asyncio.run(drop(settings.DATABASE_URL))
    result = migrate(settings.DATABASE_URL, timescale=settings.TIMESCALE, partition=settings.READINGS_PARTITION)
    registry = province(parks=parks)
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    kiln = next(s for s in registry.stations if s.id.endswith("cement-k1"))
    excursion = Event(
        kind="exceedance",
        station=kiln.id,
        parameter="a21026",
        value=EXCURSION_SO2,
        start=now - EXCURSION_FROM,
        end=now - EXCURSION_TO,
    )
    sim = Simulation(registry, start=now - HISTORY, step=timedelta(minutes=1), events=[excursion], seed=SEED)

    sink = NoticeSink(secrets=Secrets(webhook=DEMO_WEBHOOK_SECRET))
    sink_port = pick_port(settings.API_PORT + 1)
    sink_base = f"http://127.0.0.1:{sink_port}"
    routing = RegistryFile.model_validate(
        {
            "channels": [
                {"id": "demo-webhook", "kind": "webhook", "url": f"{sink_base}/webhook", "secret": DEMO_WEBHOOK_SECRET}
            ],
            "routes": [{"channels": ["demo-webhook"], "min_severity": "warning"}],
        }
    )

    async def main() -> None:
        conn = await asyncpg.connect(settings.DATABASE_URL)
        park = kiln.park_id
        operator = f"operator-{park}"
        password = secrets.token_urlsafe(9)
        try:
            await load_registry_file(conn, registry)
            await load_routing(conn, routing)
            # What a newcomer needs to try the access rules (docs/access.md): a read-only key for
            # the whole province and the kiln's park operator, who acknowledges its alerts.
            _, key = await create_key(
                conn, name="demo-read-only", role=Role.INSPECTOR, scopes=[Scope("province")], created_by="demo"
            )
            await create_user(
                conn, name=operator, password=password, role=Role.OPERATOR, scopes=[Scope("park", park)],
                created_by="demo",
            )  # fmt: skip
            # What parks report (volumes, solid waste, two indicators) for this month and the last,
            # so that the assessment ranks every park at once and cards the bottom three.
            reported = await store_inputs(conn, registry, today=local_today(settings.DEFAULT_TIMEZONE), seed=SEED)
        finally:
            await conn.close()
        base = f"http://{settings.API_HOST}:{settings.API_PORT}"
        print(
            "\n".join(
                [
                    "",
                    f"parkwatch demo: database {settings.database_name} ({result.storage} storage); "
                    f"{len(registry.stations)} stations in {len(registry.parks)} parks of Hunan's cities, "
                    f"minute data from {HISTORY.total_seconds() / 3600:g} h ago (replayed fast), then live.",
                    f"  scripted: {kiln.id} SO2 at {EXCURSION_SO2:g} mg/m³ from "
                    f"{(now - EXCURSION_FROM).astimezone(ZoneInfo(kiln.timezone)):%H:%M} to "
                    f"{(now - EXCURSION_TO).astimezone(ZoneInfo(kiln.timezone)):%H:%M} local",
                    f"  dashboard       {base}/  (the province map; read-only from this machine, no sign-in)",
                    f"  read-only key   {key}  (inspector, whole province; send it as X-API-Key)",
                    f"  operator        {operator} / {password}  (park {park}; sign in at {base}/login)",
                    f'  try             curl -H "X-API-Key: {key}" "{base}/api/v1/alerts?park_id={park}"',
                    f"  API docs        {base}/docs",
                    f"  alerts          {base}/api/v1/alerts?park_id={park}",
                    f"  notices sent    {sink_base}/received  (a local webhook the demo runs)",
                    f"  live events     {base}/api/v1/events  (server-sent events)",
                    f"  exceedances     {base}/api/v1/compliance?park_id={park}&verdict=exceedance",
                    f"  all verdicts    {base}/api/v1/compliance?park_id={park}",
                    f"  hourly rollups  {base}/api/v1/readings?station_id={kiln.id}&parameter=so2&interval=hour",
                    f"  AQI             {base}/api/v1/aqi?park_id={park}&period=1h",
                    f"  stations        {base}/api/v1/stations?park_id={park}",
                    f"  KPIs            {base}/api/v1/kpis?period=month&park_id={park}",
                    f"  assessment      {base}/api/v1/assessment?period=month  (the ranking and its yellow "
                    f"cards; {base}/assessment on the dashboard)",
                    f"  reported        {' and '.join(f'{m:%Y-%m}' for m in reported.months)} for every park, "
                    f'by "{REPORTER}": volumes, solid waste, facility coverage, energy intensity'
                    + (f"; lagging: {', '.join(reported.laggards)}" if reported.laggards else ""),
                    f"  health          {base}/healthz",
                    "Stop with Ctrl-C.",
                    "",
                ]
            ),
            flush=True,
        )

        async def publisher(stop: asyncio.Event) -> None:
            mine = asyncio.Event()
            task = asyncio.create_task(run_simulation(settings, sim, fmt="json", speed=0, stop=mine))
            try:
                if duration is None:
                    await stop.wait()
                else:
                    await asyncio.wait({task, asyncio.create_task(stop.wait())}, timeout=duration)
            finally:
                mine.set()
                tally = await task
                logger.info("demo: sent %d records (%d readings)", tally.records, tally.expected_readings)
            if duration is not None:
                await _settle(settings)
                stop.set()

        async with serving(sink, sink_port):
            await serve(settings, extra=publisher)

    asyncio.run(main())
    return 0


async def _settle(settings: Settings) -> None:
    """Wait until what was sent is stored and judged (the demo's --duration runs end clean)."""
    conn = await asyncpg.connect(settings.DATABASE_URL)
    try:
        deadline = time.monotonic() + SETTLE_TIMEOUT
        idle = 0
        while time.monotonic() < deadline and idle < 3:
            pending = await conn.fetchval(SETTLE_PENDING)
            idle = idle + 1 if not pending else 0
            await asyncio.sleep(1.0)
    finally:
        await conn.close()
