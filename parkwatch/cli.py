"""The `parkwatch` console script."""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path

from parkwatch import logs
from parkwatch.cliparser import COMPONENTS, build_parser
from parkwatch.settings import Settings, SettingsError, load_settings

EXIT_USAGE = 2
DEFAULT_CLIENT_ID = Settings.model_fields["MQTT_CLIENT_ID"].default
# The benchmarks' fleet unless --stations says otherwise (national: the country's 50,000).
DEFAULT_BENCH_STATIONS = 200


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit status."""
    args = build_parser().parse_args(argv)
    try:
        settings = load_settings()
    except SettingsError as exc:
        for line in exc.lines():
            print(f"parkwatch: {line}", file=sys.stderr)
        return EXIT_USAGE
    logs.configure(settings.LOG_LEVEL, settings.LOG_FORMAT, part=getattr(args, "log_tag", None))
    handler = _COMMANDS[args.command]
    try:
        return handler(settings, args)
    except KeyboardInterrupt:
        return 130


def _migrate(settings: Settings, _args: argparse.Namespace) -> int:
    import psycopg

    from schemas.migrate import MigrationError, migrate

    try:
        result = migrate(settings.DATABASE_URL, timescale=settings.TIMESCALE, partition=settings.READINGS_PARTITION)
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
        + f"; storage: {result.storage}, {result.partition}-wide partitions"
    )
    return 0


def _serve(settings: Settings, args: argparse.Namespace) -> int:
    from parkwatch.ingestplan import members, replan
    from parkwatch.preflight import refuse_to_serve
    from parkwatch.serve import serve
    from parkwatch.supervisor import PART_ORDER, want_processes

    only = args.only or set(COMPONENTS)
    if "ingest" in only and settings.MQTT_SHARE_GROUP and settings.MQTT_CLIENT_ID == DEFAULT_CLIENT_ID:
        # Two members with one client id would take each other's session over and over.
        print(
            "parkwatch: PARKWATCH_MQTT_SHARE_GROUP needs PARKWATCH_MQTT_CLIENT_ID set to a name of this "
            "ingest instance's own (e.g. parkwatch-ingest-1; docs/scale.md)",
            file=sys.stderr,
        )
        return EXIT_USAGE
    problems = refuse_to_serve(settings, ingest="ingest" in only)
    for problem in problems:
        print(f"parkwatch: {problem.line()}", file=sys.stderr)
    if problems:
        return 1
    if args.retire:
        if only != {"ingest"}:
            print("parkwatch: --retire goes with --only ingest", file=sys.stderr)
            return EXIT_USAGE
        asyncio.run(serve(settings, ingest=True, api=False, compliance=False, alerts=False, retire=True))
        return 0
    parts = [name for name in PART_ORDER if name in only]
    ingests = settings.INGEST_PROCESSES if "ingest" in parts else 0
    if want_processes(parts, single=args.single_process, ingests=ingests):
        return asyncio.run(_supervise(settings, parts, ingests, args.stats_file))
    if "ingest" in parts:
        asyncio.run(replan(settings, members(settings, 1)))
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


async def _supervise(settings: Settings, parts: list[str], ingests: int, stats_file: Path | None) -> int:
    from parkwatch import ingestplan
    from parkwatch.serve import install_stop_signals
    from parkwatch.supervisor import Part, Supervisor, part_command

    stop = asyncio.Event()
    install_stop_signals(stop)
    children = []
    for name in parts:
        if name != "ingest":
            children.append(Part(name, part_command(name, name)))
            continue
        sessions = await ingestplan.choose(settings, ingests)
        await ingestplan.replan(settings, sessions)
        for k, member in enumerate(sessions):
            tag = "ingest" if len(sessions) == 1 else f"ingest-{k}"
            stats = (
                stats_file
                if stats_file is None or len(sessions) == 1
                else stats_file.with_stem(f"{stats_file.stem}-{k}")
            )
            children.append(Part(tag, part_command("ingest", tag, stats_file=stats), env=member.env()))
    if stop.is_set():  # stopped while sessions were being retired
        return 0
    return await Supervisor(children).run(stop)


def _stations(settings: Settings, args: argparse.Namespace) -> int:
    return asyncio.run(_stations_async(settings, args))


async def _stations_async(settings: Settings, args: argparse.Namespace) -> int:
    import asyncpg

    from alerts.config import RoutingError, load_routing
    from ingest.registry import RegistryLoadError, list_stations, load_registry_file
    from parkwatch.access_cmd import audit_cli
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
                # a registry change is audited with the change itself (docs/access.md#audit)
                await audit_cli(conn, "stations load", str(args.file), dict(counts))
        except (RegistryLoadError, RoutingError) as exc:
            print(f"parkwatch: {args.file}: refused, nothing loaded:", file=sys.stderr)
            for problem in exc.problems:
                print(f"  - {problem}", file=sys.stderr)
            return 1
        finally:
            await conn.close()
        unknown = sorted(
            {k for s in registry.stations for k in s.extra()} | {k for p in registry.parks for k in p.model_extra or {}}
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
        rows = await list_stations(conn)
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
                conn, store, prefix=settings.TOPIC_PREFIX, ids=args.ids, reason=args.reason, limit=args.limit,
                clock_shift=timedelta(seconds=args.clock_shift),
            )  # fmt: skip
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


def _report(settings: Settings, args: argparse.Namespace) -> int:
    from compliance.report_store import report_command

    return report_command(
        settings, kind=args.kind, on=args.date, park_id=args.park, fmt=args.fmt, output=args.output, lang=args.lang,
        refresh=args.refresh,
    )  # fmt: skip


def _assessment(settings: Settings, args: argparse.Namespace) -> int:
    from compliance.cli import assessment_command
    from compliance.delivery import local_today

    return assessment_command(
        sys.stdout,
        settings,
        period=args.period,
        on=args.date or local_today(settings.DEFAULT_TIMEZONE),
        city=args.city,
        as_json=args.json,
    )


def _kpis(settings: Settings, args: argparse.Namespace) -> int:
    from compliance.cli import kpis_command
    from compliance.delivery import local_today
    from compliance.targets import province_targets

    return kpis_command(
        sys.stdout,
        settings.DATABASE_URL,
        period=args.period,
        on=args.date or local_today(settings.DEFAULT_TIMEZONE),
        level=args.level,
        park_id=args.park,
        city=args.city,
        as_json=args.json,
        targets=province_targets(settings),
    )


def _access(settings: Settings, args: argparse.Namespace) -> int:
    from parkwatch import access_cmd

    return access_cmd.run(settings.DATABASE_URL, args)


def _export(settings: Settings, args: argparse.Namespace) -> int:
    from parkwatch import export_cmd

    return export_cmd.run(settings, args)


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


def _bench(settings: Settings, args: argparse.Namespace) -> int:
    if args.target == "national":
        from simulators import bench_national

        return bench_national.run(
            settings,
            stations=args.stations or bench_national.NATIONAL_STATIONS,
            duration=args.duration,
            publishers=args.publishers,
            instances=args.instances,
            json_path=args.json,
        )
    if args.stations is None:
        args.stations = DEFAULT_BENCH_STATIONS
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
    if args.target == "kpis":
        from simulators import bench_kpis

        return bench_kpis.run(settings, parks=args.parks, stations=args.stations, json_path=args.json, days=args.days)
    if args.target == "export":
        from simulators import bench_export

        return bench_export.run(
            settings, rows=args.rows, small=args.small, xlsx=args.xlsx, keep=args.keep, reuse=args.reuse,
            json_path=args.json,
        )  # fmt: skip
    if args.target == "access":
        from simulators import bench_access

        return bench_access.run(settings, parks=args.parks, stations=args.stations, json_path=args.json)
    if args.target == "dashboard":
        from simulators import bench_dashboard

        return bench_dashboard.run(settings, parks=args.parks, stations=args.stations, json_path=args.json)
    if args.target == "drain":
        from simulators import bench_drain

        return bench_drain.run(
            settings,
            readings=args.readings,
            instances=args.instances,
            stations=args.stations,
            publishers=args.publishers,
            json_path=args.json,
        )
    if args.target == "hj212":
        from simulators import bench_hj212

        return bench_hj212.run(settings, connections=args.connections, duration=args.duration)
    from simulators.bench_run import run_bench

    return run_bench(
        settings,
        duration=args.duration,
        stations=args.stations,
        rate=args.rate,
        publishers=args.publishers,
        json_path=args.json,
        processes=args.processes,
        instances=args.instances,
    )


def _alerts(settings: Settings, args: argparse.Namespace) -> int:
    from alerts.cli import alerts_command

    return asyncio.run(alerts_command(settings, args, sys.stdout, sys.stderr))


def _notify(settings: Settings, args: argparse.Namespace) -> int:
    from alerts.cli import notify_test

    return asyncio.run(notify_test(settings, args.channel, sys.stdout, sys.stderr))


def _broker_auth(settings: Settings, args: argparse.Namespace) -> int:
    import asyncpg

    from parkwatch import brokerauth
    from schemas.registry import RegistryFileError

    try:
        if args.registry:
            stations = brokerauth.stations_from_file(args.registry)
        else:
            stations = asyncio.run(brokerauth.stations_from_database(settings.DATABASE_URL))
        outcome = brokerauth.generate(args.out, settings.TOPIC_PREFIX, stations, rotate=args.rotate)
    except RegistryFileError as exc:
        print(f"parkwatch: {exc.path}: refused:", file=sys.stderr)
        for problem in exc.problems:
            print(f"  - {problem}", file=sys.stderr)
        return 1
    except (OSError, asyncpg.PostgresError, ValueError) as exc:
        print(f"parkwatch: broker-auth: {exc}", file=sys.stderr)
        return 1
    print(
        f"{len(stations)} station(s): {len(outcome.issued)} password(s) issued, {len(outcome.kept)} kept, "
        f"{len(outcome.removed)} removed"
    )
    print(f"wrote {args.out / brokerauth.PASSWD} and {args.out / brokerauth.ACL}; reload the broker (SIGHUP)")
    if outcome.issued:
        print(f"new passwords are in {args.out / brokerauth.CREDENTIALS}: hand them out, then delete the file")
    return 0


def _fuzz(settings: Settings, args: argparse.Namespace) -> int:
    from simulators import fuzz

    edges = [e.strip() for e in args.edges.split(",") if e.strip()]
    unknown = sorted(set(edges) - set(fuzz.EDGES))
    if unknown:
        print(f"parkwatch: unknown fuzz edges: {', '.join(unknown)} (known: {', '.join(fuzz.EDGES)})", file=sys.stderr)
        return EXIT_USAGE
    return fuzz.run(
        settings, edges=edges, inputs=args.inputs, seconds=args.seconds, seed=args.seed, out=args.out,
        json_path=args.json,
    )  # fmt: skip


def _chaos(_settings: Settings, args: argparse.Namespace) -> int:
    from simulators import chaos

    faults = [f.strip() for f in args.faults.split(",") if f.strip()]
    unknown = sorted(set(faults) - set(chaos.FAULTS))
    if unknown or not faults:
        print(f"parkwatch: unknown faults: {', '.join(unknown)} (known: {', '.join(chaos.FAULTS)})", file=sys.stderr)
        return EXIT_USAGE
    folder = args.dir
    if folder is None:
        # Under /var/tmp and opened for reading: as root, the embedded PostgreSQL runs as an
        # unprivileged user who must reach its folder (docs/demo.md).
        folder = Path(tempfile.mkdtemp(prefix="parkwatch-chaos-", dir="/var/tmp"))
        folder.chmod(0o755)
    from parkwatch.embedded.process import EmbeddedError

    try:
        return chaos.run(
            folder=folder, seconds=args.seconds, every=args.every, faults=faults, stations=args.stations,
            rate=args.rate, json_path=args.json,
        )  # fmt: skip
    except (chaos.ChaosError, EmbeddedError, subprocess.CalledProcessError) as exc:
        print(f"parkwatch chaos: {exc}", file=sys.stderr)
        return 1


_COMMANDS = {
    "migrate": _migrate,
    "serve": _serve,
    "stations": _stations,
    "dead-letters": _dead_letters,
    "standards": _standards,
    "evaluate": _evaluate,
    "kpis": _kpis,
    "assessment": _assessment,
    "report": _report,
    "export": _export,
    "keys": _access,
    "users": _access,
    "compliance": _compliance,
    "demo": _demo,
    "alerts": _alerts,
    "notify": _notify,
    "broker-auth": _broker_auth,
    "gateway": _gateway,
    "hj212": _hj212,
    "simulate": _simulate,
    "bench": _bench,
    "fuzz": _fuzz,
    "chaos": _chaos,
}

if __name__ == "__main__":
    sys.exit(main())
