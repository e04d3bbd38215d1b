"""Logging set-up for the console script."""

from __future__ import annotations

import logging


def configure(level: str) -> None:
    """One line per record on stderr; chatty libraries turned down."""
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)-7s %(name)s: %(message)s")
    for noisy in ("uvicorn.access", "apscheduler", "mqtt"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLevelName(level)))
