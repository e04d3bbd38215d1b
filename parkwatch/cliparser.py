"""The `parkwatch` command line's grammar: every subcommand, argument and option, and their checks."""

from __future__ import annotations

import argparse
from datetime import date
from pathlib import Path

from parkwatch import __version__
from schemas.alerting import VERIFICATIONS

COMPONENTS = ("ingest", "compliance", "alerts", "api")
# The edges of `parkwatch fuzz` (simulators/fuzz.py EDGES; a test keeps the two equal).
FUZZ_EDGES = ("json", "hj212", "stream", "registry", "settings", "api", "pipeline")
# The faults of `parkwatch chaos` (simulators/chaos.py FAULTS; a test keeps the two equal).
CHAOS_FAULTS = (
    "ingest-kill",
    "ingest-term",
    "broker-kill",
    "broker-restart",
    "db-restart",
    "db-crash",
    "db-failover",
    "disk-full",
    "db-disk-full",
)


def _components(text: str) -> set[str]:
    names = {n.strip() for n in text.split(",") if n.strip()}
    unknown = names - set(COMPONENTS)
    if not names or unknown:
        raise argparse.ArgumentTypeError(
            f"components are {', '.join(COMPONENTS)}; not {', '.join(sorted(unknown)) or 'none'}"
        )
    return names


def _millions(text: str) -> list[int]:
    try:
        sizes = [round(float(part) * 1_000_000) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"sizes are millions of readings, comma-separated, not {text!r}") from None
    if not sizes or min(sizes) <= 0:
        raise argparse.ArgumentTypeError("give at least one positive size")
    return sizes


def build_parser() -> argparse.ArgumentParser:
    """The parser of `parkwatch` and all its subcommands."""
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
    serve.add_argument(
        "--single-process",
        action="store_true",
        help="run the components in this one process (default with more than one core: a process each, "
        "supervised; docs/scale.md)",
    )
    serve.add_argument("--log-tag", help=argparse.SUPPRESS)  # set by the supervisor: which part logs
    serve.add_argument(
        "--retire",
        action="store_true",
        help="with --only ingest: drain this ingest's MQTT session (PARKWATCH_MQTT_CLIENT_ID), leave its "
        "subscriptions, and stop: for an instance taken out of service (docs/scale.md)",
    )

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
    dr.add_argument(
        "--clock-shift",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="the receiving host's clock was this far behind (negative: ahead) when they arrived: "
        "their receipt time is corrected before validation",
    )

    ba = sub.add_parser(
        "broker-auth",
        help="write Mosquitto's password and ACL files from the registry, and the new credentials once",
    )
    ba.add_argument("--out", type=Path, required=True, help="folder for passwd, acl and credentials.json")
    ba.add_argument("--registry", type=Path, help="take the stations from this file, not the database")
    ba.add_argument("--rotate", action="append", default=[], metavar="USER", help="issue a new password (repeatable)")

    fz = sub.add_parser("fuzz", help="hostile input at every edge for a budget; counts crashes, hangs, memory, losses")
    fz.add_argument("--edges", default=",".join(FUZZ_EDGES), help=f"comma-separated, of {', '.join(FUZZ_EDGES)}")
    fz.add_argument("--inputs", type=int, default=1_000_000, help="inputs per edge (default 1,000,000)")
    fz.add_argument("--seconds", type=float, default=3600.0, help="time per edge at most (default 3600)")
    fz.add_argument("--seed", type=int, default=1, help="the same seed replays the same inputs")
    fz.add_argument("--out", type=Path, default=Path("fuzz-failures"), help="where failing inputs are saved")
    fz.add_argument("--json", type=Path, help="also write the report as JSON here")

    ch = sub.add_parser("chaos", help="faults against a private running pipeline for a time; a report of losses")
    ch.add_argument("--seconds", type=float, default=300.0, help="how long stations publish (default 300)")
    ch.add_argument("--every", type=float, default=10.0, help="seconds between faults (default 10)")
    ch.add_argument("--faults", default=",".join(CHAOS_FAULTS), help=f"comma-separated, of {', '.join(CHAOS_FAULTS)}")
    ch.add_argument("--stations", type=int, default=8, help="stations publishing (default 8)")
    ch.add_argument("--rate", type=float, default=20.0, help="messages per second per station (default 20)")
    ch.add_argument("--dir", type=Path, help="folder for the private servers and logs (default: a new temporary one)")
    ch.add_argument("--json", type=Path, help="also write the report as JSON here")

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

    kp = sub.add_parser(
        "kpis", help="KPIs (data delivery, compliance, treatment, solid waste) per station, park, city or province"
    )
    kp.add_argument("--period", choices=["day", "month", "quarter", "year"], default="day")
    kp.add_argument("--date", type=date.fromisoformat, help="a day of the period, YYYY-MM-DD (default: today)")
    kp.add_argument("--level", choices=["station", "park", "city", "province"], default="park")
    kp.add_argument("--park", help="this park's stations only")
    kp.add_argument("--city", help="this city's parks only")
    kp.add_argument("--json", action="store_true", help="one JSON object per line")

    rp = sub.add_parser("report", help="a daily or monthly report (日报, 月报) of a park or the province")
    rp.add_argument("--kind", choices=("daily", "monthly"), required=True)
    rp.add_argument("--date", required=True, help="YYYY-MM-DD (monthly also YYYY-MM)")
    rp.add_argument("--park", help="this park's report (default: the province's)")
    rp.add_argument("--format", dest="fmt", choices=("json", "html", "xlsx"), default="json")
    rp.add_argument("--output", type=Path, help="write here (required for xlsx)")
    rp.add_argument("--lang", choices=("zh", "en"), default="zh", help="headings in Chinese (default) or English")
    rp.add_argument("--refresh", action="store_true", help="regenerate a stored report")

    from parkwatch import export_cmd  # noqa: PLC0415 - its grammar lives beside its command

    export_cmd.add_arguments(
        sub.add_parser("export", help="readings, hourly, daily, verdicts or alerts as CSV or XLSX (zh or en headings)")
    )

    from parkwatch import access_cmd  # noqa: PLC0415 - its grammar lives beside its commands

    access_cmd.add_arguments(
        sub.add_parser("keys", help="API keys: create (shown once), list, revoke"),
        sub.add_parser("users", help="dashboard accounts: add, list, passwd, disable"),
    )

    asm = sub.add_parser("assessment", help="the park assessment: scores, ranking and yellow cards")
    asm.add_argument("--period", choices=["month", "quarter", "year"], default="month")
    asm.add_argument("--date", type=date.fromisoformat, help="a day of the period, YYYY-MM-DD (default: today)")
    asm.add_argument("--city", help="rank this city's parks only")
    asm.add_argument("--json", action="store_true", help="the whole assessment as one JSON document")

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
        help="benchmarks: the whole path (default), hj212, compliance, scale (data growth), alerts (notice latency), "
        "kpis (a province's KPIs and assessment), access (what each role's row-level security costs reads), "
        "export (a 10-million-row CSV export: rows/s and peak RSS), dashboard (the province page's first paint), "
        "drain (a broker backlog drained by each way of running parkwatch), national (the country's reading rate "
        "through the pipeline: CPU per part, bytes per reading, a year extrapolated)",
    )
    bench.add_argument(
        "target",
        nargs="?",
        choices=(
            *("ingest", "drain", "national", "hj212", "compliance", "scale"),
            *("alerts", "kpis", "access", "export", "dashboard"),
        ),
        default="ingest",
    )
    bench.add_argument("--parks", type=int, default=150, help="kpis, access, dashboard: simulated parks")
    bench.add_argument("--days", type=int, default=30, help="kpis: days of rollups and verdicts")
    bench.add_argument("--connections", type=int, default=1000, help="hj212: loggers connected to the gateway at once")
    bench.add_argument("--duration", type=float, default=30.0, help="seconds of sustained load per run")
    bench.add_argument("--stations", type=int, help="stations of the fleet (default 200; national: 50,000)")
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
    bench.add_argument("--keep", action="store_true", help="scale, export: keep the scratch database")
    bench.add_argument("--rows", type=int, default=10_000_000, help="export: readings of the large export")
    bench.add_argument("--small", type=int, default=1_000_000, help="export: readings of the small export")
    bench.add_argument("--xlsx", action="store_true", help="export: also one station's readings as XLSX")
    bench.add_argument("--reuse", action="store_true", help="export: a kept scratch database filled for --rows")
    bench.add_argument(
        "--processes",
        type=int,
        choices=(1, 2),
        default=2,
        help="ingest: parkwatch as one process (serve --single-process) or as serve runs it (a process per part)",
    )
    bench.add_argument(
        "--instances",
        type=int,
        default=1,
        help="ingest, drain: this many ingest instances sharing the readings (a shared subscription) "
        "beside one compliance process",
    )
    bench.add_argument("--readings", type=int, default=320_000, help="drain: the broker backlog, in readings")
    return p
