"""The demo's services: the configured ones when they answer, embedded ones when they do not and were not named.

A service named explicitly (PARKWATCH_DATABASE_URL, PARKWATCH_MQTT_URL) is never replaced: its
absence is an error, with one line saying how to start it. `parkwatch serve` never comes here.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from parkwatch import brokerconf
from parkwatch.embedded.broker import EmbeddedBroker
from parkwatch.embedded.postgres import EmbeddedPostgres, default_folder
from parkwatch.preflight import check_broker, check_database, database_address
from parkwatch.settings import Settings


@dataclass
class Services:
    """Where the demo runs, and what to tell the user first about how it got there."""

    settings: Settings
    notes: list[str] = field(default_factory=list)


def embedded_folder(settings: Settings) -> Path:
    """PARKWATCH_EMBEDDED_DIR, or the per-user default."""
    return settings.EMBEDDED_DIR or default_folder()


@contextlib.contextmanager
def demo_services(settings: Settings) -> Iterator[Services]:
    """Settings for the demo, with embedded servers started (and stopped on exit) where needed.

    Raises ServiceUnreachableError for a missing service that was named explicitly, and EmbeddedError
    when an embedded server cannot start.
    """
    explicit = settings.model_fields_set
    services = Services(settings)
    with contextlib.ExitStack() as stack:
        if (missing := check_database(settings)) is not None:
            if "DATABASE_URL" in explicit:
                raise missing
            pg = stack.enter_context(
                EmbeddedPostgres(embedded_folder(settings), port=database_address(settings.DATABASE_URL)[1])
            )
            services.settings = services.settings.model_copy(update={"DATABASE_URL": pg.url(settings.database_name)})
            services.notes.append(
                f"PostgreSQL is not reachable at {missing.address}: using an embedded PostgreSQL {pg.version} "
                f"on 127.0.0.1:{pg.port}, data kept in {pg.data} (stopped with the demo)"
            )
        if (missing := check_broker(settings)) is not None:
            if "MQTT_URL" in explicit:
                raise missing
            broker = stack.enter_context(EmbeddedBroker(embedded_folder(settings), port=settings.mqtt.port))
            services.settings = services.settings.model_copy(update={"MQTT_URL": broker.url})
            services.notes.append(
                f"no MQTT broker at {missing.address}: using an embedded broker (amqtt) on 127.0.0.1:{broker.port}, "
                "enough for the demo; Mosquitto for anything more (docs/demo.md)"
            )
        else:
            services.notes.extend(_broker_settings_note(settings))
        yield services


def _broker_settings_note(settings: Settings) -> list[str]:
    """A note when the local Mosquitto we use runs without the settings parkwatch relies on."""
    target = settings.mqtt
    if urlsplit(settings.MQTT_URL).hostname not in ("127.0.0.1", "localhost", "::1"):
        return []
    found = brokerconf.differences(target.port)
    if found is None:
        return []
    broker, diff = found
    if not diff:
        return []
    started = f"mosquitto -c {broker.config}" if broker.config else "mosquitto with its defaults"
    changes = ", ".join(f"{key} {have} (parkwatch relies on {want})" for key, (have, want) in sorted(diff.items()))
    return [
        f"the broker on {target.host}:{target.port} ({started}) runs with {changes}: fine for the demo, "
        "but a long backlog could lose readings; run it with deploy/mosquitto.conf for real use"
    ]
