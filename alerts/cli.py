"""`parkwatch alerts ...` and `parkwatch notify test`: alerts read and acted on, a channel checked, from a terminal."""

from __future__ import annotations

import argparse
import json
from typing import Any, TextIO

import asyncpg
import httpx

from alerts import actions, queries
from alerts.channels import Context, DeliveryError, deliver
from alerts.channels.mqtt import Publisher
from alerts.dispatcher import DELIVERY_TIMEOUT
from alerts.messages import test_notice
from parkwatch.settings import Settings

SELECT_CHANNEL = "SELECT kind, config FROM alert_channels WHERE id = $1"


def _line(a: dict[str, Any]) -> str:
    parameter = a["parameter"] or "-"
    return (
        f"{a['id']:>7}  {a['raised_at']:%Y-%m-%d %H:%M}  {a['status']:<8} {a['severity']:<8} "
        f"{a['station_id']:<24} {parameter:<8} {a['rule']:<22} x{a['occurrences']}"
        + (f"  {a['value']:.4g}/{a['limit']:.4g} {a['unit'] or ''}" if a["value"] is not None and a["limit"] else "")
        + ("  acked" if a["acknowledged"] else "")
    )


async def alerts_command(settings: Settings, args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    """The `alerts` subcommands; returns the exit status."""
    conn = await asyncpg.connect(settings.DATABASE_URL)
    try:
        if args.action == "list":
            rows = await queries.list_alerts(
                conn,
                status=args.status or ["pending", "active"],
                park_id=args.park,
                stations=args.station,
                limit=args.limit,
            )
            for row in rows:
                out.write((json.dumps(row, default=str, ensure_ascii=False) if args.json else _line(row)) + "\n")
            return 0
        if args.action == "show":
            found = await queries.get_alert(conn, args.id)
            if found is None:
                err.write(f"parkwatch: no alert {args.id}" + "\n")
                return 1
            if args.json:
                out.write(json.dumps(found, default=str, ensure_ascii=False, indent=2) + "\n")
                return 0
            out.write(_line(found) + "\n")
            for e in found["timeline"]:
                detail = json.dumps(e["detail"], ensure_ascii=False)
                out.write(f"  {e['at']:%Y-%m-%d %H:%M:%S}  {e['kind']:<20} {e['actor']:<16} {detail}\n")
            for n in found["notifications"]:
                out.write(
                    f"  notice {n['id']} → {n['channel_id']}: {n['status']} ({n['attempts']} attempt(s))"
                    + (f" {n['last_error']}" if n["last_error"] else "")
                    + "\n"
                )
            return 0
        try:
            if args.action == "ack":
                await actions.acknowledge(conn, args.id, by=args.by, comment=args.comment)
            elif args.action == "verify":
                await actions.verify(conn, args.id, by=args.by, verification=args.verification, comment=args.comment)
            else:
                await actions.resolve(conn, args.id, by=args.by, comment=args.comment)
        except actions.ActionError as exc:
            err.write(f"parkwatch: {exc.code}: {exc.detail}" + "\n")
            return 1
        out.write(f"alert {args.id}: {args.action} recorded\n")
        return 0
    finally:
        await conn.close()


async def notify_test(settings: Settings, channel_id: str, out: TextIO, err: TextIO) -> int:
    """Send a test notice through one configured channel, directly; 0 when the far end took it."""
    conn = await asyncpg.connect(settings.DATABASE_URL)
    try:
        row = await conn.fetchrow(SELECT_CHANNEL, channel_id)
    finally:
        await conn.close()
    if row is None:
        err.write(f"parkwatch: no channel {channel_id!r} (load it with `parkwatch stations load FILE`)" + "\n")
        return 1
    publisher = Publisher(settings.mqtt, client_id=f"{settings.MQTT_CLIENT_ID}-notify-test")
    try:
        async with httpx.AsyncClient(timeout=DELIVERY_TIMEOUT) as http:
            ctx = Context(http=http, mqtt=publisher, topic_prefix=settings.TOPIC_PREFIX)
            await deliver(row["kind"], queries.decode(row["config"]), test_notice(channel_id, settings.public_url), ctx)
    except DeliveryError as exc:
        err.write(f"parkwatch: {channel_id} ({row['kind']}): not delivered: {exc.reason}" + "\n")
        return 1
    finally:
        await publisher.close()
    out.write(f"{channel_id} ({row['kind']}): test notice delivered\n")
    return 0
