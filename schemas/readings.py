"""The MQTT reading contract: topics, intervals, data flags, limits and dead-letter reasons."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Final

# Topic a station publishes on: {prefix}/{park_id}/{station_id}/readings (QoS 1).
READINGS_SUFFIX: Final = "readings"
# Raw HJ 212 packets (from stations, or from the TCP gateway): {prefix}/hj212/{MN} (QoS 1).
HJ212_LEVEL: Final = "hj212"
GATEWAY_LEVEL: Final = "gateway"

# interval name → the small integer stored in readings.iv (keeps the hot table narrow).
INTERVALS: Final[dict[str, int]] = {"rtd": 0, "min": 1, "hour": 2, "day": 3}
INTERVAL_NAMES: Final[dict[int, str]] = {v: k for k, v in INTERVALS.items()}

# HJ 212-2017 table 8 data flags, plus P (power failure) still sent by HJ/T 212-2005 devices.
FLAGS: Final = frozenset("NFMSDCTBP")
DEFAULT_FLAG: Final = "N"

# A payload above this is refused whole (too_large): the largest honest backfill is a day of
# minute data for one station, ~1,440 objects of ~300 bytes, well under the limit.
MAX_PAYLOAD_BYTES: Final = 256 * 1024

# HJ 212 data loggers keep their own clocks; anything earlier than 2000 is a reset clock, and
# more than ten minutes ahead of ours is skew we refuse rather than store in the future.
EARLIEST_TS: Final = datetime(2000, 1, 1, tzinfo=UTC)
MAX_FUTURE_SKEW: Final = timedelta(minutes=10)


class Reason(StrEnum):
    """Why an input was refused; stored with every dead letter and counted."""

    INVALID_JSON = "invalid_json"
    SCHEMA = "schema"
    UNKNOWN_STATION = "unknown_station"
    UNKNOWN_PARAMETER = "unknown_parameter"
    STATION_MISMATCH = "station_mismatch"
    BAD_TIMESTAMP = "bad_timestamp"
    NON_FINITE = "non_finite"
    TOO_LARGE = "too_large"
    # A value no instrument can report (the physical range of its quantity, the station's
    # instrument range, or a magnitude beyond any measurement): schemas/ranges.py.
    OUT_OF_RANGE = "out_of_range"
    # HJ 212: a frame the station's configuration does not accept (CRC, framing), and a wrong
    # access password.
    INVALID_FRAME = "invalid_frame"
    BAD_PASSWORD = "bad_password"  # noqa: S105 - a reason code, not a secret
    # The HJ 212 gateway refused the frame: sent from outside its park's networks, or as an MN
    # connected from elsewhere (ingest/hj212/access.py).
    REFUSED_BY_GATEWAY = "refused_by_gateway"
    # The database refused rows that passed validation (a bug or a schema drift); kept so that
    # nothing is lost, and replayable once fixed.
    REJECTED_BY_DATABASE = "rejected_by_database"


def readings_topic(prefix: str, park_id: str, station_id: str) -> str:
    """The topic a station publishes its readings on."""
    return f"{prefix}/{park_id}/{station_id}/{READINGS_SUFFIX}"


def readings_subscription(prefix: str) -> str:
    """The subscription that covers every station's readings topic."""
    return f"{prefix}/+/+/{READINGS_SUFFIX}"


def hj212_topic(prefix: str, mn: str) -> str:
    """The topic raw HJ 212 packets of one device are published on."""
    return f"{prefix}/{HJ212_LEVEL}/{mn}"


def gateway_events_topic(prefix: str) -> str:
    """The topic the HJ 212 gateway reports refused frames and changed sources on (schemas/gateway.py)."""
    return f"{prefix}/{GATEWAY_LEVEL}/events"


def hj212_subscription(prefix: str) -> str:
    """The subscription that covers every device's raw HJ 212 topic."""
    return f"{prefix}/{HJ212_LEVEL}/+"
