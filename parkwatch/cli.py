"""The `parkwatch` console script."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from parkwatch import __version__, logs
from parkwatch.settings import Settings, SettingsError, load_settings
from schemas.alerting import VERIFICATIONS

EXIT_USAGE = 2


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="parkwatch",
        description=(
            "Environmental-compliance monitoring for industrial parks. Settings come from PARKWATCH_* variables."
        ),
    )
    p.add_argument("--version", action="version", version=f"parkwatch {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    sub.add_parser("migrate", help="create the database if missing and apply pending migrations")

    serve = sub.add_parser(
        "serve", help="run ingest, the compliance worker, alerts and the API (Ctrl-C or SIGTERM stops cleanly)"
    )
    serve.add_argument(
        "--only",
        type=_components,
        metavar="COMPONENTS",
        help="run just these components, comma-separated: ingest, compliance, alerts, api",
    )
    serve.add_argument("--stats-file", type=Path, help="write ingest counters as JSON here on exit")

    stations = sub.add_parser("stations", help="the registry of parks and stations")
    ssub = stations.add_subparsers(dest="action", required=True, metavar="ACTION")
    load = ssub.add_parser("load", help="upsert parks and stations from a YAML or JSON file")
    load.add_argument("file", type=Path)
    ls = ssub.add_parser("list", help="list registered stations")
    ls.add_argument("--json", action="store_true", help="one JSON object per line")

    dead = sub.add_parser("dead-letters", help="refused messages")
    dsub = dead.add_subparsers(dest="action", required=True, metavar="ACTION")
    dl = dsub.add_parser("list", help="list dead letters (open ones unless --all)")
    dl.add_argument("--json", action="store_true", help="one JSON object per line")
    dl.add_argument("--reason", help="only this reason code")
    dl.add_argument("--station", help="only this station id (as the topic named it)")
    dl.add_argument("--all", action="store_true", help="include resolved ones")
    dl.add_argument("--limit", type=int, default=100)
    dr = dsub.add_parser("replay", help="re-ingest open dead letters (e.g. after registering a station)")
    dr.add_argument("--id", type=int, action="append", dest="ids", help="this dead letter (repeatable)")
    dr.add_argument("--reason", help="every open dead letter with this reason")
    dr.add_argument("--all", action="store_true", help="every open dead letter")
    dr.add_argument("--limit", type=int, help="at most this many")

    gateway = sub.add_parser("gateway", help="HJ 212 TCP gateway: station connections → broker (QoS 1)")
    gateway.add_argument("--host", help="address to listen on (default PARKWATCH_GATEWAY_HOST)")
    gateway.add_argument("--port", type=int, help="port to listen on (default PARKWATCH_GATEWAY_PORT)")
    gateway.add_argument("--idle-timeout", type=float, help="seconds of silence before a connection is closed")

    hj = sub.add_parser("hj212", help="HJ 212 packets on the command line")
    hsub = hj.add_subparsers(dest="action", required=True, metavar="ACTION")
    hd = hsub.add_parser("decode", help="decode packets from stdin (one per line, or a raw stream) to JSON lines")
    hd.add_argument("--strict", action="store_true", help="accept only frames exactly as the standard says")
    hd.add_argument(
        "--crc",
        choices=("auto", "hj212", "modbus", "modbus-swapped"),
        default="auto",
        help="CRC routine accepted besides the standard's (auto: standard only, naming a MODBUS variant it sees)",
    )
    he = hsub.add_parser("encode", help="build one data packet (the simulators use the same encoder)")
    he.add_argument("--cn", required=True, help="command code, e.g. 2011, 2051, 2061, 2031")
    he.add_argument("--mn", required=True, help="device id (MN)")
    he.add_argument("--time", required=True, help="DataTime, ISO 8601 local time, e.g. 2026-11-26T08:00:00")
    he.add_argument(
        "--factor", action="append", default=[], help="CODE:Suffix=value,... e.g. w01018:Avg=32.1,Min=30,Flag=N"
    )
    he.add_argument("--st", default="32", help="system code (32 wastewater, 31 flue gas, 22 ambient air)")
    he.add_argument("--pw", default="123456")
    he.add_argument("--flag", type=int, default=5, help="4: no answer wanted, 5: answer (9014) wanted")
    he.add_argument("--qn", help="request id (default: from --time)")
    he.add_argument("--crc", choices=("auto", "hj212", "modbus", "modbus-swapped"), default="hj212")
    he.add_argument("--terminator", choices=("crlf", "lf", "none"), default="crlf")

    al = sub.add_parser("alerts", help="alerts: list, show, acknowledge, verify (核实), resolve")
    alsub = al.add_subparsers(dest="action", required=True, metavar="ACTION")
    all_ = alsub.add_parser("list", help="alerts, newest first (open ones unless --status)")
    all_.add_argument("--status", action="append", choices=("pending", "active", "cleared"), help="repeatable")
    all_.add_argument("--park", help="only this park")
    all_.add_argument("--station", action="append", help="only this station (repeatable)")
    all_.add_argument("--limit", type=int, default=50)
    all_.add_argument("--json", action="store_true", help="one JSON object per line")
    als = alsub.add_parser("show", help="one alert with its timeline and notices")
    als.add_argument("id", type=int)
    als.add_argument("--json", action="store_true")
    for name, text in (("ack", "acknowledge: seen, on it"), ("resolve", "close by hand (not exceedances)")):
        act = alsub.add_parser(name, help=text)
        act.add_argument("id", type=int)
        act.add_argument("--by", required=True, help="who")
        act.add_argument("--comment")
    alv = alsub.add_parser("verify", help="核实: record what the alert was")
    alv.add_argument("id", type=int)
    alv.add_argument("--by", required=True, help="who")
    alv.add_argument("--verification", required=True, choices=VERIFICATIONS)
    alv.add_argument("--comment")

    notify = sub.add_parser("notify", help="notification channels")
    nsub = notify.add_subparsers(dest="action", required=True, metavar="ACTION")
    nt = nsub.add_parser("test", help="send a test notice through a configured channel")
    nt.add_argument("channel", help="a channel id from the registry file")

    standards = sub.add_parser("standards", help="the catalogue of discharge and air-quality standards")
    stsub = standards.add_subparsers(dest="action", required=True, metavar="ACTION")
    stl = stsub.add_parser("list", help="every edition: id, medium, dates, number, title")
    stl.add_argument("--json", action="store_true", help="one JSON object per line")
    sts = stsub.add_parser("show", help="one edition: classes, limits with clauses, validity rules")
    sts.add_argument("id", help="GB18918-2002, or a family (GB3095) for the edition in force today")
    sts.add_argument("--json", action="store_true", help="the whole edition as JSON")

    sub.add_parser(
        "evaluate",
        help="what-if judgement: JSON lines on stdin (standard, class, parameter, period, value, ...) → JSON lines",
    )

    comp = sub.add_parser("compliance", help="rollups and verdicts")
    csub = comp.add_subparsers(dest="action", required=True, metavar="ACTION")
    csub.add_parser("catch-up", help="bring rollups, verdicts and AQI current once, then exit")
    rj = csub.add_parser("rejudge", help="judge stored hours again (after a profile or standard change)")
    rj.add_argument("--station", action="append", dest="stations", help="this station (repeatable)")
    rj.add_argument("--park", help="every station of this park")
    rj.add_argument("--start", required=True, help="ISO 8601 date or time (UTC unless it has an offset)")
    rj.add_argument("--end", required=True, help="exclusive")

    demo = sub.add_parser("demo", help="migrate, simulate a province of parks, and serve it judged")
    demo.add_argument("--parks", type=int, default=28, help="parks, dealt to Hunan's 14 cities (6 stations each)")
    demo.add_argument("--duration", type=float, help="stop after this many seconds (and once judged)")

    sim = sub.add_parser(
        "simulate", help="publish a simulated province (or a registry, or a scenario) as its stations would"
    )
    sim.add_argument("--parks", type=int, default=28, help="parks, dealt to Hunan's 14 cities in turn")
    sim.add_argument("--stations-per-park", type=int, default=6, help="plant inlet/outlet, air, kiln, sinter, boiler")
    sim.add_argument("--registry", type=Path, help="simulate the stations of this registry file instead")
    sim.add_argument("--scenario", type=Path, help="a scenario file: fleet, time span, episodes, expected outcomes")
    sim.add_argument("--interval", default="60s", help="one minute record per station per interval (60s)")
    sim.add_argument("--speed", type=float, default=1.0, help="simulated seconds per second; 0: as fast as possible")
    sim.add_argument("--format", choices=("json", "hj212", "hj212-tcp"), default="json", dest="fmt")
    sim.add_argument("--start", help="simulated start (ISO 8601; default now); a past start replays into the past")
    sim.add_argument("--duration", help="simulated span, e.g. 1d, 6h (default: until stopped)")
    sim.add_argument("--seed", type=int, default=1)
    sim.add_argument("--registry-out", type=Path, help="write the fleet's registry file (for stations load) and exit")
    sim.add_argument("--load", action="store_true", help="register the fleet in the database first")
    sim.add_argument(
        "--check", action="store_true", help="scenario: wait for serve to judge, then check the expected outcomes"
    )

    bench = sub.add_parser(
        "bench",
        help="benchmarks: the whole path (default), hj212, compliance, scale (data growth), alerts (notice latency)",
    )
    bench.add_argument(
        "target", nargs="?", choices=("ingest", "hj212", "compliance", "scale", "alerts"), default="ingest"
    )
    bench.add_argument("--connections", type=int, default=1000, help="hj212: loggers connected to the gateway at once")
    bench.add_argument("--duration", type=float, default=30.0, help="seconds of sustained load per run")
    bench.add_argument("--stations", type=int, default=200)
    bench.add_argument(
        "--rate", type=float, default=0.0, help="readings/s of the paced run (default 20,000); the other runs saturate"
    )
    bench.add_argument("--publishers", type=int, default=2, help="publisher processes")
    bench.add_argument("--tick-rate", type=float, default=1.0, help="compliance: minute ticks per second")
    bench.add_argument("--json", type=Path, help="also write the figures here")
    bench.add_argument(
        "--sizes",
        type=_millions,
        default=[1_000_000, 10_000_000, 100_000_000],
        metavar="M,M,...",
        help="scale: readings stored at each step, in millions (default 1,10,100)",
    )
    bench.add_argument("--keep", action="store_true", help="scale: keep the scratch database")
    bench.add_argument(
        "--processes",
        type=int,
        choices=(1, 2),
        default=2,
        help="ingest: parkwatch as one process (ingest and worker) or two (serve --only ingest, --only compliance)",
    )
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit status."""
    args = _parser().parse_args(argv)
    try:
        settings = load_settings()
    except SettingsError as exc:
        for line in exc.lines():
            print(f"parkwatch: {line}", file=sys.stderr)
        return EXIT_USAGE
    logs.configure(settings.LOG_LEVEL)
    handler = _COMMANDS[args.command]
    try:
        return handler(settings, args)
    except KeyboardInterrupt:
        return 130


def _migrate(settings: Settings, _args: argparse.Namespace) -> int:
    import psycopg

    from schemas.migrate import MigrationError, migrate

    try:
        result = migrate(settings.DATABASE_URL, timescale=settings.TIMESCALE)
    except MigrationError as exc:
        print(f"parkwatch: {exc}", file=sys.stderr)
        return 1
    except psycopg.OperationalError as exc:
        print(f"parkwatch: cannot reach the database: {str(exc).strip()}", file=sys.stderr)
        return 1
    if result.created_database:
        print(f"created database {settings.database_name}")
    print(
        f"applied {len(result.applied)} migration(s)"
        + (f": {', '.join(result.applied)}" if result.applied else " (already up to date)")
        + f"; storage: {result.storage}"
    )
    return 0


COMPONENTS = ("ingest", "compliance", "alerts", "api")


def _components(text: str) -> set[str]:
    names = {n.strip() for n in text.split(",") if n.strip()}
    unknown = names - set(COMPONENTS)
    if not names or unknown:
        raise argparse.ArgumentTypeError(
            f"components are {', '.join(COMPONENTS)}; not {', '.join(sorted(unknown)) or 'none'}"
        )
    return names


def _serve(settings: Settings, args: argparse.Namespace) -> int:
    from parkwatch.preflight import refuse_to_serve
    from parkwatch.serve import serve

    only = args.only or set(COMPONENTS)
    problems = refuse_to_serve(settings, ingest="ingest" in only)
    for problem in problems:
        print(f"parkwatch: {problem.line()}", file=sys.stderr)
    if problems:
        return 1
    asyncio.run(
        serve(
            settings,
            ingest="ingest" in only,
            api="api" in only,
            compliance="compliance" in only,
            alerts="alerts" in only,
            stats_file=args.stats_file,
        )
    )
    return 0


def _stations(settings: Settings, args: argparse.Namespace) -> int:
    return asyncio.run(_stations_async(settings, args))


async def _stations_async(settings: Settings, args: argparse.Namespace) -> int:
    import asyncpg

    from alerts.config import RoutingError, load_routing
    from ingest.registry import RegistryLoadError, load_registry_file
    from schemas.registry import RegistryFileError, read_registry

    if args.action == "load":
        try:
            registry = read_registry(args.file)
        except RegistryFileError as exc:
            print(f"parkwatch: {exc.path}: refused, nothing loaded:", file=sys.stderr)
            for problem in exc.problems:
                print(f"  - {problem}", file=sys.stderr)
            return 1
        conn = await asyncpg.connect(settings.DATABASE_URL)
        try:
            async with conn.transaction():
                counts = await load_registry_file(conn, registry)
                counts |= await load_routing(conn, registry)
        except (RegistryLoadError, RoutingError) as exc:
            print(f"parkwatch: {args.file}: refused, nothing loaded:", file=sys.stderr)
            for problem in exc.problems:
                print(f"  - {problem}", file=sys.stderr)
            return 1
        finally:
            await conn.close()
        unknown = sorted(
            {k for s in registry.stations for k in s.extra()} | {k for p in registry.parks for k in p.attrs()}
        )
        if unknown:
            print(f"note: kept extra keys verbatim for later use: {', '.join(unknown)}", file=sys.stderr)
        routing = (
            f"; {counts['channels']} alert channel(s), {counts['routes']} route(s)"
            if registry.channels or registry.routes
            else ""
        )
        print(f"loaded {counts['parks']} park(s) and {counts['stations']} station(s){routing} from {args.file}")
        return 0
    conn = await asyncpg.connect(settings.DATABASE_URL)
    try:
        rows = await conn.fetch("SELECT id, park_id, kind, mn, timezone FROM stations ORDER BY id")
    finally:
        await conn.close()
    for r in rows:
        if args.json:
            print(json.dumps(dict(r), ensure_ascii=False))
        else:
            print(f"{r['id']:<32} {r['park_id']:<20} {r['kind']:<18} {r['mn'] or '-':<26} {r['timezone']}")
    return 0


def _dead_letters(settings: Settings, args: argparse.Namespace) -> int:
    return asyncio.run(_dead_letters_async(settings, args))


async def _dead_letters_async(settings: Settings, args: argparse.Namespace) -> int:
    import asyncpg

    from ingest.deadletters import list_dead_letters, replay_dead_letters
    from ingest.store import Store

    conn = await asyncpg.connect(settings.DATABASE_URL)
    try:
        if args.action == "list":
            rows = await list_dead_letters(
                conn, reason=args.reason, include_resolved=args.all, station_id=args.station, limit=args.limit
            )
            for row in rows:
                if args.json:
                    print(json.dumps(row, ensure_ascii=False))
                else:
                    state = "resolved" if row["resolved_at"] else "open"
                    print(
                        f"{row['id']:>8}  {row['received_at']}  {row['reason']:<18} {state:<8} "
                        f"{row['topic']}  {row['message']}"
                    )
            return 0
        if not (args.ids or args.reason or args.all):
            print("parkwatch: dead-letters replay needs --id, --reason or --all", file=sys.stderr)
            return EXIT_USAGE
        store = Store(settings.DATABASE_URL)
        try:
            report = await replay_dead_letters(
                conn, store, prefix=settings.TOPIC_PREFIX, ids=args.ids, reason=args.reason, limit=args.limit
            )
        finally:
            await store.close()
        print(
            f"examined {report.examined}: {report.resolved} resolved, {report.still_refused} still refused; "
            f"{report.readings_new} readings stored, {report.readings_duplicate} already present"
        )
        for reason, count in sorted(report.refused_reasons.items()):
            print(f"  still refused, {reason}: {count}")
        return 0
    finally:
        await conn.close()


def _gateway(settings: Settings, args: argparse.Namespace) -> int:
    from ingest.hj212.gateway import Gateway
    from parkwatch.serve import install_stop_signals

    gateway = Gateway(
        settings,
        host=args.host or settings.GATEWAY_HOST,
        port=settings.GATEWAY_PORT if args.port is None else args.port,
        idle_timeout=args.idle_timeout or settings.GATEWAY_IDLE_TIMEOUT,
    )

    async def main() -> None:
        stop = asyncio.Event()
        install_stop_signals(stop)
        await gateway.run(stop)

    asyncio.run(main())
    return 0


def _hj212(_settings: Settings, args: argparse.Namespace) -> int:
    from datetime import datetime

    from ingest.hj212.cli import decode_command, encode_command

    if args.action == "decode":
        return decode_command(sys.stdin.buffer, sys.stdout, strict=args.strict, crc=args.crc)
    try:
        return encode_command(
            sys.stdout.buffer,
            cn=args.cn,
            mn=args.mn,
            data_time=datetime.fromisoformat(args.time),
            factors=args.factor,
            st=args.st,
            pw=args.pw,
            flag=args.flag,
            qn=args.qn,
            crc=args.crc,
            terminator={"crlf": b"\r\n", "lf": b"\n", "none": b""}[args.terminator],
        )
    except ValueError as exc:
        print(f"parkwatch: {exc}", file=sys.stderr)
        return EXIT_USAGE


def _standards(_settings: Settings, args: argparse.Namespace) -> int:
    from compliance.cli import standards_command

    return standards_command(sys.stdout, action=args.action, ident=getattr(args, "id", None), as_json=args.json)


def _evaluate(_settings: Settings, _args: argparse.Namespace) -> int:
    from compliance.cli import evaluate_command

    return evaluate_command(sys.stdin, sys.stdout)


def _compliance(settings: Settings, args: argparse.Namespace) -> int:
    from datetime import UTC, datetime

    from compliance.cli import catch_up, rejudge

    if args.action == "catch-up":
        hours, seconds = asyncio.run(catch_up(settings.DATABASE_URL))
        if hours is None:
            print("a running compliance worker (parkwatch serve) leads: it keeps rollups and verdicts current")
            return 0
        print(f"{hours} station-hour(s) brought current in {seconds:.1f}s")
        return 0
    if not (args.stations or args.park):
        print("parkwatch: compliance rejudge needs --station or --park", file=sys.stderr)
        return EXIT_USAGE
    try:
        start, end = (datetime.fromisoformat(v) for v in (args.start, args.end))
    except ValueError as exc:
        print(f"parkwatch: --start/--end: {exc}", file=sys.stderr)
        return EXIT_USAGE
    start, end = (t if t.tzinfo else t.replace(tzinfo=UTC) for t in (start, end))
    queued = asyncio.run(rejudge(settings.DATABASE_URL, stations=args.stations, park=args.park, start=start, end=end))
    print(f"queued {queued} station-hour(s) for judgement; a running `serve` (or `compliance catch-up`) does it")
    return 0


def _demo(settings: Settings, args: argparse.Namespace) -> int:
    from parkwatch.embedded.fallback import demo_services
    from parkwatch.embedded.process import EmbeddedError
    from parkwatch.preflight import ServiceUnreachableError
    from simulators.demo import run_demo

    try:
        with demo_services(settings) as services:
            for note in services.notes:
                print(f"parkwatch demo: {note}", flush=True)
            return run_demo(services.settings, parks=args.parks, duration=args.duration)
    except (ServiceUnreachableError, EmbeddedError) as exc:
        print(f"parkwatch: {exc.line()}", file=sys.stderr)
        return 1


def _simulate(settings: Settings, args: argparse.Namespace) -> int:
    from simulators.command import SimulateArgs, run_simulate
    from simulators.scenario import ScenarioError

    try:
        return run_simulate(
            settings,
            SimulateArgs(
                parks=args.parks,
                stations_per_park=args.stations_per_park,
                registry=args.registry,
                scenario=args.scenario,
                interval=args.interval,
                speed=args.speed,
                fmt=args.fmt,
                start=args.start,
                duration=args.duration,
                seed=args.seed,
                registry_out=args.registry_out,
                load=args.load,
                check=args.check,
            ),
        )
    except (ScenarioError, ValueError) as exc:
        print(f"parkwatch: {exc}", file=sys.stderr)
        return EXIT_USAGE


def _millions(text: str) -> list[int]:
    try:
        sizes = [round(float(part) * 1_000_000) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"sizes are millions of readings, comma-separated, not {text!r}") from None
    if not sizes or min(sizes) <= 0:
        raise argparse.ArgumentTypeError("give at least one positive size")
    return sizes


def _bench(settings: Settings, args: argparse.Namespace) -> int:
    if args.target == "alerts":
        from simulators import bench_alerts

        return bench_alerts.run(
            settings,
            stations=args.stations,
            rate=args.rate,
            duration=args.duration,
            publishers=args.publishers,
            json_path=args.json,
        )
    if args.target == "scale":
        from simulators import bench_scale

        return bench_scale.run(settings, sizes=args.sizes, json_path=args.json, keep=args.keep)
    if args.target == "compliance":
        from simulators import bench_compliance

        return bench_compliance.run(
            settings, stations=args.stations, json_path=args.json, duration=args.duration, tick_rate=args.tick_rate
        )
    if args.target == "hj212":
        from simulators import bench_hj212

        return bench_hj212.run(settings, connections=args.connections, duration=args.duration)
    from simulators.bench import run_bench

    return run_bench(
        settings,
        duration=args.duration,
        stations=args.stations,
        rate=args.rate,
        publishers=args.publishers,
        json_path=args.json,
        processes=args.processes,
    )


def _alerts(settings: Settings, args: argparse.Namespace) -> int:
    from alerts.cli import alerts_command

    return asyncio.run(alerts_command(settings, args, sys.stdout, sys.stderr))


def _notify(settings: Settings, args: argparse.Namespace) -> int:
    from alerts.cli import notify_test

    return asyncio.run(notify_test(settings, args.channel, sys.stdout, sys.stderr))


_COMMANDS = {
    "migrate": _migrate,
    "serve": _serve,
    "stations": _stations,
    "dead-letters": _dead_letters,
    "standards": _standards,
    "evaluate": _evaluate,
    "compliance": _compliance,
    "demo": _demo,
    "alerts": _alerts,
    "notify": _notify,
    "gateway": _gateway,
    "hj212": _hj212,
    "simulate": _simulate,
    "bench": _bench,
}

if __name__ == "__main__":
    sys.exit(main())
