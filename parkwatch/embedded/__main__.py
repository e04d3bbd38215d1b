"""Run a command beside an embedded PostgreSQL and broker: `python -m parkwatch.embedded -- pytest -q`.

The test command uses it on a machine without the services (deploy/quickstart.sh): the command
sees PARKWATCH_TEST_PG, PARKWATCH_TEST_MQTT_HOST and PARKWATCH_TEST_MQTT_PORT (tests/services.py),
and both servers stop when it ends. Only what is unreachable at the default addresses is started.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from contextlib import ExitStack

from parkwatch.embedded.broker import EmbeddedBroker
from parkwatch.embedded.fallback import embedded_folder
from parkwatch.embedded.postgres import EmbeddedPostgres
from parkwatch.embedded.process import EmbeddedError
from parkwatch.preflight import check_broker, check_database
from parkwatch.settings import Settings


def main(argv: list[str]) -> int:
    """Start what is missing, run argv with the test variables set, stop, return its status."""
    if argv[:1] == ["--"]:
        argv = argv[1:]
    if not argv:
        print("usage: python -m parkwatch.embedded -- COMMAND [ARGS...]", file=sys.stderr)  # noqa: T201
        return 2
    logging.basicConfig(level=logging.INFO, format="embedded: %(message)s")
    settings = Settings()
    env = dict(os.environ)
    try:
        with ExitStack() as stack:
            if check_database(settings) is not None:
                pg = stack.enter_context(EmbeddedPostgres(embedded_folder(settings)))
                env["PARKWATCH_TEST_PG"] = pg.url("postgres")
            if check_broker(settings) is not None:
                broker = stack.enter_context(EmbeddedBroker(embedded_folder(settings)))
                env["PARKWATCH_TEST_MQTT_HOST"] = "127.0.0.1"
                env["PARKWATCH_TEST_MQTT_PORT"] = str(broker.port)
            return subprocess.run(argv, env=env, check=False).returncode  # noqa: S603 - the user's own command
    except EmbeddedError as exc:
        print(f"parkwatch: {exc.line()}", file=sys.stderr)  # noqa: T201
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
