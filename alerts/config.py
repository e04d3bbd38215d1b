"""Alert routing from the registry file: channels by id, and the routes that choose them."""

from __future__ import annotations

import json

import asyncpg

from schemas.registry import RegistryFile

UPSERT_CHANNEL = """
INSERT INTO alert_channels (id, kind, config) VALUES ($1, $2, $3::jsonb)
ON CONFLICT (id) DO UPDATE SET kind = EXCLUDED.kind, config = EXCLUDED.config, updated_at = now()
"""
SELECT_CHANNEL_IDS = "SELECT id FROM alert_channels WHERE id = any($1::text[])"
SELECT_PARK_IDS = "SELECT id FROM parks WHERE id = any($1::text[])"
DELETE_ROUTES = "DELETE FROM alert_routes"
INSERT_ROUTE = """
INSERT INTO alert_routes (park_id, channel_id, min_severity, families, escalation, resolved, repeat_every)
VALUES ($1, $2, $3, $4::text[], $5, $6, $7)
"""


class RoutingError(Exception):
    """Routes name channels or parks that exist neither in the file nor in the database."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("; ".join(problems))


async def load_routing(conn: asyncpg.Connection, registry: RegistryFile) -> dict[str, int]:
    """Upsert the file's channels; replace every route when the file lists routes. One transaction."""
    async with conn.transaction():
        for channel in registry.channels:
            await conn.execute(
                UPSERT_CHANNEL, channel.id, channel.kind, json.dumps(channel.config(), ensure_ascii=False)
            )
        if registry.routes is None:
            return {"channels": len(registry.channels), "routes": 0}
        wanted_channels = sorted({c for r in registry.routes for c in r.channels})
        known_channels = {r["id"] for r in await conn.fetch(SELECT_CHANNEL_IDS, wanted_channels)}
        wanted_parks = sorted({r.park for r in registry.routes if r.park})
        known_parks = {r["id"] for r in await conn.fetch(SELECT_PARK_IDS, wanted_parks)}
        problems = [
            f"routes name channel {c!r}, which is not defined" for c in wanted_channels if c not in known_channels
        ]
        problems += [f"routes name park {p!r}, which is not registered" for p in wanted_parks if p not in known_parks]
        if problems:
            raise RoutingError(problems)
        await conn.execute(DELETE_ROUTES)
        n = 0
        for route in registry.routes:
            for channel_id in route.channels:
                await conn.execute(
                    INSERT_ROUTE,
                    route.park,
                    channel_id,
                    route.min_severity.value,
                    [f.value for f in route.families],
                    route.escalation,
                    route.resolved,
                    route.repeat_every,
                )
                n += 1
        return {"channels": len(registry.channels), "routes": n}
