"""Who flies which delivery when flights run in `groundctl worker` processes: leases and commands.

A lease row per dispatched delivery says which worker owns its flight (`owner`), until when (`expires_at`,
pushed forward by the owner's heartbeat) and how many times it has been claimed (`generation`, a fencing
token: a worker that lost its lease finds its generation gone and stops). A worker claims rows whose lease
has run out with SELECT ... FOR UPDATE SKIP LOCKED, so two workers never claim the same flight and neither
waits for the other. Times are the database's clock, so workers on machines whose clocks disagree still
agree on when a lease ran out.

Commands from the API processes (abort, clear-to-drop) are rows the owning worker picks up and answers in
the same table; NOTIFY wakes the workers (and the API processes waiting for an answer) on PostgreSQL,
polling is the fallback and the only way on SQLite.

These functions are synchronous (database only): call them from a thread.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from sqlalchemy import JSON, ForeignKey, Integer, String, select, text, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, Session, mapped_column

from groundctl.runtime.store import IN_FLIGHT_STATES, Base, Delivery, Store, UTCDateTime, is_active, utcnow

log = logging.getLogger("groundctl.leases")

# NOTIFY channels
WORK = "groundctl_work"  # a flight may be claimable now (dispatch, a released lease)
COMMANDS = "groundctl_commands"  # a command for a worker
ANSWERS = "groundctl_answers"  # a worker answered a command
LIVE = "groundctl_live"  # positions and events for the API processes' live feeds

EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


class FlightLease(Base):
    __tablename__ = "flight_leases"
    delivery_id: Mapped[int] = mapped_column(ForeignKey("deliveries.id", ondelete="CASCADE"), primary_key=True)
    owner: Mapped[str | None] = mapped_column(String(200))
    generation: Mapped[int] = mapped_column(Integer, default=0)
    claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    heartbeat_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    done_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # the owner before the last claim, and when its lease ran out: what a takeover took over
    previous_owner: Mapped[str | None] = mapped_column(String(200))
    previous_expired_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class FlightCommand(Base):
    __tablename__ = "flight_commands"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    delivery_id: Mapped[int] = mapped_column(ForeignKey("deliveries.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(30))
    data: Mapped[Any] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # None: carry it out whenever possible
    done_at: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)
    done_by: Mapped[str | None] = mapped_column(String(200))
    result: Mapped[Any | None] = mapped_column(JSON)  # {"ok": ...} or {"error": {"type", "message", "field"}}


def db_now(s: Session) -> datetime:
    """The database's clock (UTC), so that every process judges expiry by the same clock."""
    if s.get_bind().dialect.name == "postgresql":
        t = s.execute(text("SELECT timezone('utc', clock_timestamp())")).scalar_one()
        return t.replace(tzinfo=timezone.utc)
    return utcnow()


def notify(s: Session, channel: str, payload: str = "") -> None:
    """NOTIFY at commit of the caller's transaction (PostgreSQL); nothing elsewhere (they poll)."""
    if s.get_bind().dialect.name == "postgresql":
        s.execute(text("SELECT pg_notify(:c, :p)"), {"c": channel, "p": payload})


# -- leases -------------------------------------------------------------------------------------------

def offer(store: Store, delivery_id: int) -> None:
    """Make a dispatched delivery's flight claimable now (idempotent) and wake the workers."""
    with store.session() as s:
        _offer(s, delivery_id)
        notify(s, WORK, str(delivery_id))


def _offer(s: Session, delivery_id: int) -> bool:
    if s.get(FlightLease, delivery_id) is not None:
        return False
    try:
        with s.begin_nested():
            s.add(FlightLease(delivery_id=delivery_id, expires_at=EPOCH))
            s.flush()
    except IntegrityError:  # offered by another process at the same moment
        return False
    return True


def adopt_unleased(store: Store) -> list[int]:
    """Offer every flight in the air that has no lease: dispatched by an API process that died before it
    offered it, or left running by a single-process `serve` before the switch to workers."""
    with store.session() as s:
        rows = list(s.scalars(select(Delivery.id).where(
            Delivery.state.in_(IN_FLIGHT_STATES + ("aborted",)),
            ~Delivery.id.in_(select(FlightLease.delivery_id)))))
        adopted = [did for did in rows if is_active(store.kinds(s, did)) and _offer(s, did)]
        if adopted:
            notify(s, WORK)
    return adopted


@dataclass(frozen=True)
class Claim:
    delivery_id: int
    generation: int
    previous_owner: str | None
    previous_expired_at: datetime | None
    claimed_at: datetime


def claim(store: Store, owner: str, lease_s: float, limit: int) -> list[Claim]:
    """Take up to `limit` flights whose lease ran out (or that nobody has claimed yet).

    Each take is a compare-and-set on the generation, so two claimers can never both win a flight; on
    PostgreSQL, FOR UPDATE SKIP LOCKED also keeps them from even trying the same rows."""
    if limit <= 0:
        return []
    with store.session() as s:
        now = db_now(s)
        rows = s.execute(select(FlightLease.delivery_id, FlightLease.generation, FlightLease.owner,
                                FlightLease.expires_at)
                         .where(FlightLease.done_at.is_(None), FlightLease.expires_at < now)
                         .order_by(FlightLease.expires_at).limit(limit)
                         .with_for_update(skip_locked=True)).all()
        out = []
        for did, gen, prev, prev_exp in rows:
            values = dict(owner=owner, generation=gen + 1, claimed_at=now, heartbeat_at=now,
                          expires_at=now + timedelta(seconds=lease_s))
            if prev is not None:
                values.update(previous_owner=prev, previous_expired_at=prev_exp)
            won = s.execute(update(FlightLease)
                            .where(FlightLease.delivery_id == did, FlightLease.generation == gen,
                                   FlightLease.done_at.is_(None), FlightLease.expires_at < now)
                            .values(**values)).rowcount
            if won:
                out.append(Claim(did, gen + 1, prev, prev_exp if prev is not None else None, now))
    return out


def heartbeat(store: Store, owner: str, held: dict[int, int], lease_s: float) -> set[int]:
    """Extend the leases this worker still holds ({delivery: generation}); the ones it still holds."""
    if not held:
        return set()
    kept: set[int] = set()
    with store.session() as s:
        now = db_now(s)
        for did, gen in held.items():
            n = s.execute(update(FlightLease)
                          .where(FlightLease.delivery_id == did, FlightLease.owner == owner,
                                 FlightLease.generation == gen, FlightLease.done_at.is_(None))
                          .values(heartbeat_at=now, expires_at=now + timedelta(seconds=lease_s))).rowcount
            if n:
                kept.add(did)
    return kept


def finish(store: Store, delivery_id: int, owner: str, generation: int) -> None:
    """The flight is over (reported or failed): nobody needs to claim it again."""
    with store.session() as s:
        s.execute(update(FlightLease).where(FlightLease.delivery_id == delivery_id, FlightLease.owner == owner,
                                            FlightLease.generation == generation)
                  .values(done_at=db_now(s)))


def release(store: Store, delivery_id: int, owner: str, generation: int) -> None:
    """The worker stops (SIGTERM) with the flight still going: another may claim it at once."""
    with store.session() as s:
        now = db_now(s)
        n = s.execute(update(FlightLease).where(FlightLease.delivery_id == delivery_id, FlightLease.owner == owner,
                                                FlightLease.generation == generation, FlightLease.done_at.is_(None))
                      .values(expires_at=now)).rowcount
        if n:
            notify(s, WORK, str(delivery_id))


def holder(store: Store, delivery_id: int) -> FlightLease | None:
    """The delivery's lease while its flight is not over (claimed or waiting for a worker), else None."""
    with store.session() as s:
        row = s.get(FlightLease, delivery_id)
        return row if row is not None and row.done_at is None else None


# -- commands -----------------------------------------------------------------------------------------

def send(store: Store, delivery_id: int, kind: str, data: dict, ttl_s: float | None) -> int:
    with store.session() as s:
        now = db_now(s)
        c = FlightCommand(delivery_id=delivery_id, kind=kind, data=data, created_at=now,
                          expires_at=None if ttl_s is None else now + timedelta(seconds=ttl_s))
        s.add(c)
        s.flush()
        notify(s, COMMANDS, json.dumps({"id": c.id, "delivery": delivery_id}))
        return c.id


def pending(store: Store, delivery_ids: list[int]) -> list[FlightCommand]:
    if not delivery_ids:
        return []
    with store.session() as s:
        return list(s.scalars(select(FlightCommand).where(FlightCommand.delivery_id.in_(delivery_ids),
                                                          FlightCommand.done_at.is_(None))
                              .order_by(FlightCommand.id)))


def answer(store: Store, command_id: int, owner: str, result: dict) -> bool:
    """Record the answer once; False if the command was already answered (by an earlier owner)."""
    with store.session() as s:
        n = s.execute(update(FlightCommand).where(FlightCommand.id == command_id, FlightCommand.done_at.is_(None))
                      .values(done_at=db_now(s), done_by=owner, result=result)).rowcount
        if n:
            notify(s, ANSWERS, str(command_id))
        return bool(n)


def expired(c: FlightCommand, now: datetime) -> bool:
    return c.expires_at is not None and c.expires_at < now


def outcome(store: Store, command_id: int) -> dict | None:
    with store.session() as s:
        c = s.get(FlightCommand, command_id)
        return None if c is None or c.done_at is None else (c.result or {})


def listen_url(engine: Engine) -> str | None:
    """A libpq connection string for LISTEN (PostgreSQL only)."""
    if engine.dialect.name != "postgresql":
        return None
    url = engine.url.set(drivername="postgresql")
    return url.render_as_string(hide_password=False)
