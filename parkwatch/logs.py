"""Logging set-up for the console script: text lines for a terminal, or JSON lines for a log collector."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Literal

LogFormat = Literal["text", "json"]
TEXT_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"


class JsonLines(logging.Formatter):
    """One JSON object a record: time (UTC, ISO 8601), level, logger, message, and the exception if any."""

    def __init__(self, part: str | None = None) -> None:
        super().__init__()
        self.part = part

    def format(self, record: logging.LogRecord) -> str:
        """The record as one line of JSON."""
        doc = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if self.part is not None:
            doc["part"] = self.part
        if record.exc_info:
            doc["exception"] = self.formatException(record.exc_info)
        return json.dumps(doc, ensure_ascii=False)


def configure(level: str, fmt: LogFormat = "text", *, part: str | None = None) -> None:
    """One line per record on stderr, tagged with the part of a supervised serve; chatty libraries turned down."""
    handler = logging.StreamHandler()
    text = TEXT_FORMAT if part is None else TEXT_FORMAT.replace("%(name)s", f"[{part}] %(name)s")
    handler.setFormatter(JsonLines(part) if fmt == "json" else logging.Formatter(text))
    logging.basicConfig(level=level, handlers=[handler])
    for noisy in ("uvicorn.access", "apscheduler", "mqtt"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLevelName(level)))
