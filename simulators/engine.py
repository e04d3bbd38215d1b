"""The simulation: a fleet's records, tick by tick, with a scenario's episodes applied, in send order."""

from __future__ import annotations

import heapq
import itertools
import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from schemas.readings import EARLIEST_TS, MAX_FUTURE_SKEW
from schemas.registry import RegistryFile, StationSpec
from simulators.models import models_for
from simulators.scenario import FLAGS, Event, duration


@dataclass
class Record:
    """One minute record of one station as its logger sends it."""

    station: StationSpec
    ts: datetime  # the time the logger writes (its clock may be wrong)
    values: dict[str, tuple[float, str]]  # code → (value, data flag)
    send_at: datetime  # simulated time it is sent
    duplicate: bool = False  # a re-sent copy of the record before it
    alone: bool = False  # sent in a message of its own (a re-send, a faulty clock), never grouped
    refused: bool = False  # its timestamp is one the ingest must refuse

    @property
    def new_readings(self) -> int:
        """Readings this record adds to the database once stored (none for a copy or a refusal)."""
        return 0 if self.duplicate or self.refused else len(self.values)


@dataclass
class Malformed:
    """A payload the station's link garbles: it must become a dead letter, never a reading."""

    station: StationSpec
    send_at: datetime
    serial: int


@dataclass
class Tally:
    """What the simulation sent, and what parkwatch should therefore store."""

    records: int = 0
    duplicates: int = 0
    malformed: int = 0
    refused_records: int = 0  # records whose timestamps the ingest must refuse (clock faults)
    expected_readings: int = 0  # distinct readings parkwatch should store (each record is sent once,
    # bar the duplicates; a clock fault shifts every timestamp alike, so keys stay distinct)


class Simulation:
    """Records of every station from `start`, one per `step`, until `end` (None: forever)."""

    def __init__(
        self,
        registry: RegistryFile,
        *,
        start: datetime,
        step: timedelta,
        end: datetime | None = None,
        events: list[Event] | None = None,
        seed: int = 1,
    ) -> None:
        self.stations = registry.stations
        self.start = start
        self.step = step
        self.end = end
        self.events = events or []
        self.models = models_for(self.stations, seed)
        self.rng = random.Random(seed)
        self.tally = Tally()
        self._by_station: dict[str, list[Event]] = {}
        for e in self.events:
            self._by_station.setdefault(e.station, []).append(e)
        self._flat: dict[tuple[int, str], float] = {}
        # the stamps sent by each station whose clock a scenario shifts (few; bounded by the run)
        self._skewed: dict[str, set[datetime]] = {
            e.station: set() for e in events or [] if e.kind == "clock_skew" and e.station is not None
        }

    def __iter__(self) -> Iterator[Record | Malformed]:
        """Everything sent, in the order it is sent (late back-fill after what overtook it)."""
        delayed: list[tuple[datetime, int, Record]] = []
        order = itertools.count()
        malformed = sorted((e for e in self.events if e.kind == "malformed"), key=lambda e: e.start.astimezone(UTC))
        for t in self._ticks():
            now = t + self.step  # a minute record is sent when its minute is over
            while delayed and delayed[0][0] <= now:
                yield heapq.heappop(delayed)[2]
            while malformed and malformed[0].start <= now:
                event = malformed.pop(0)
                station = next(s for s in self.stations if s.id == event.station)
                for k in range(event.count):
                    self.tally.malformed += 1
                    yield Malformed(station, now, k)
            for station in self.stations:
                record = self._record(station, t, now)
                if record is None:
                    continue
                late = self._event(station, t, "backfill")
                if late is not None and late.end is not None:
                    record.send_at = late.end + duration(late.delay or "0s")
                    heapq.heappush(delayed, (record.send_at, next(order), record))
                    continue
                yield record
                if self._event(station, t, "duplicate") is not None:
                    self.tally.duplicates += 1
                    yield Record(station, record.ts, record.values, now, duplicate=True, alone=True)
        while delayed:
            yield heapq.heappop(delayed)[2]

    def _ticks(self) -> Iterator[datetime]:
        t = self.start
        while self.end is None or t < self.end:
            yield t
            t += self.step

    def _event(self, station: StationSpec, t: datetime, kind: str, code: str | None = None) -> Event | None:
        for e in self._by_station.get(station.id, ()):
            if e.kind == kind and e.covers(t, code):
                return e
        return None

    def _record(self, station: StationSpec, t: datetime, now: datetime) -> Record | None:
        local = t.astimezone(ZoneInfo(station.timezone))
        sampled = self.models[station.id].sample(local)
        if self._event(station, t, "offline") is not None:
            return None
        values: dict[str, tuple[float, str]] = {}
        for code, normal in sampled.items():
            value, flag = normal, "N"
            for kind, letter in FLAGS.items():
                if self._event(station, t, kind, code) is not None:
                    flag = letter
            spike = self._event(station, t, "exceedance", code)
            if spike is not None:
                base = spike.value if spike.value is not None else normal * (spike.factor or 1.0)
                value = round(base * (1 + self.rng.uniform(-0.02, 0.02)), 3)
            flat = self._event(station, t, "flatline", code)
            if flat is not None:
                value = self._flat.setdefault((id(flat), code), value)
            values[code] = (value, flag)
        skew = self._event(station, t, "clock_skew")
        ts = t + duration(skew.skew or "0s") if skew is not None else t
        self.tally.records += 1
        refused = ts < EARLIEST_TS or ts > datetime.now(UTC) + MAX_FUTURE_SKEW
        if refused:
            self.tally.refused_records += 1
        elif station.id in self._skewed:
            # A shifted clock can stamp a record with another record's time: parkwatch keeps the
            # first of the two, so each stamp counts once.
            stamps = self._skewed[station.id]
            if ts not in stamps:
                stamps.add(ts)
                self.tally.expected_readings += len(values)
        else:
            self.tally.expected_readings += len(values)
        return Record(station, ts, values, now, alone=skew is not None, refused=refused)
