"""Operational intents, stored: the sky each dispatched flight has reserved, shared by every process.

The geometry and the deconfliction are core's (core/intents.py); here the intents live in a table, so
that two API processes or flight workers dispatching at once check against the same set. Dispatch
serialises on a process lock and, on PostgreSQL, on a transaction-scoped advisory lock.
"""

from __future__ import annotations

import threading
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Float, ForeignKey, Integer, String, select, text
from sqlalchemy.orm import Mapped, Session, mapped_column

from groundctl.core.intents import IntentIndex, OperationalIntent, intent_from_json, intent_to_json, intents_from_json
from groundctl.runtime.store import Base, UTCDateTime, utcnow

_LOCK = threading.Lock()
_LOCK_CACHE = threading.Lock()
_CACHE: dict[int, tuple[tuple, OperationalIntent]] = {}  # delivery id -> ((updated_at, frame), intent)
ADVISORY_KEY = 0x67636E74  # "gcnt": one lock for every dispatch's intent check


class IntentRow(Base):
    __tablename__ = "operational_intents"
    delivery_id: Mapped[int] = mapped_column(Integer, ForeignKey("deliveries.id"), primary_key=True)
    state: Mapped[str] = mapped_column(String(20), index=True)  # accepted, activated, ended
    departure: Mapped[float] = mapped_column(Float)  # UNIX seconds
    time_end: Mapped[float] = mapped_column(Float, index=True)
    cruise_alt_m: Mapped[float] = mapped_column(Float)
    data: Mapped[Any] = mapped_column(JSON)  # core.intents.intent_to_json
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


def serialise(s: Session) -> None:
    """Hold the dispatch lock for the rest of this transaction (PostgreSQL); SQLite serialises writers."""
    if s.get_bind().dialect.name == "postgresql":
        s.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": ADVISORY_KEY})


def active(s: Session, frame, now: float) -> IntentIndex:  # noqa: ANN001
    """Every intent still reserving sky at `now`, shrunk to what is left of it."""
    rows = list(s.scalars(select(IntentRow).where(IntentRow.state != "ended", IntentRow.time_end > now)))
    # parsing and projecting ten thousand outlines costs most of a second: only changed rows are parsed
    fkey = (frame.lat0, frame.lon0)
    with _LOCK_CACHE:
        fresh = [r for r in rows if _CACHE.get(r.delivery_id, (None,))[0] != (r.updated_at, fkey)]
        for r, it in zip(fresh, intents_from_json([r.data for r in fresh], frame)):
            _CACHE[r.delivery_id] = ((r.updated_at, fkey), it)
        live = {r.delivery_id for r in rows}
        for k in [k for k in _CACHE if k not in live]:
            del _CACHE[k]
        parsed = [_CACHE[r.delivery_id][1] for r in rows]
    return IntentIndex(it.shrink(now=now) for it in parsed)


def put(s: Session, delivery_id: int, intent: OperationalIntent, frame) -> None:  # noqa: ANN001
    row = s.get(IntentRow, delivery_id)
    data = intent_to_json(intent, frame)
    end = intent.time_end if intent.volumes else intent.departure
    if row is None:
        s.add(IntentRow(delivery_id=delivery_id, state=intent.state, departure=intent.departure, time_end=end,
                        cruise_alt_m=intent.cruise_alt_m, data=data, updated_at=utcnow()))
    else:
        row.state, row.departure, row.time_end, row.cruise_alt_m, row.data = (
            intent.state, intent.departure, end, intent.cruise_alt_m, data)
        row.updated_at = utcnow()


def layer_of(s: Session, delivery_id: int) -> float | None:
    """The cruise height the flight was deconflicted to, if it has an intent."""
    row = s.get(IntentRow, delivery_id)
    return None if row is None else row.cruise_alt_m


def progress(s: Session, delivery_id: int, frame, now: float, flown_m: float | None, ended: bool) -> None:  # noqa: ANN001
    """The flight moved on: release what it has flown through, or all of it at the end."""
    row = s.get(IntentRow, delivery_id)
    if row is None or row.state == "ended":
        return
    if ended:
        row.state, row.time_end, row.updated_at = "ended", now, utcnow()
        return
    it = intent_from_json(row.data, frame).shrink(now=now, flown_m=flown_m)
    put(s, delivery_id, it, frame)


def lock() -> threading.Lock:
    return _LOCK
