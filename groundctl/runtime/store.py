"""Durable state of the ground-station service (SQLAlchemy 2).

SQLite in WAL mode in a data directory by default; any SQLAlchemy URL (PostgreSQL) otherwise.
A delivery's history is an append-only list of events; its `state` column is a projection of those
events, rewritten in the same transaction as every append so that it can never disagree with them.
"""

from __future__ import annotations

import hashlib
import os
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable, Iterator

from sqlalchemy import (JSON, DateTime, Float, ForeignKey, Integer, String, Text, TypeDecorator, UniqueConstraint,
                        create_engine, event, func, select)
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker

from groundctl.runtime.events import DeliveryEvent


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class UTCDateTime(TypeDecorator):
    """Timezone-aware UTC in, timezone-aware UTC out, on every backend.

    SQLite has no timezone type and SQLAlchemy hands back naive datetimes from it; storing naive UTC and
    re-attaching UTC on the way out keeps comparisons with aware datetimes from raising.
    """

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store; use timezone-aware UTC")
        return value.astimezone(timezone.utc).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect) -> datetime | None:
        return None if value is None else value.replace(tzinfo=timezone.utc)


class Base(DeclarativeBase):
    pass


class Recipient(Base):
    __tablename__ = "recipients"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    contact: Mapped[str | None] = mapped_column(String(200))
    # sha256 of a high-entropy token: a leaked database does not leak usable tokens, and no slow KDF is
    # needed because the secret is random, not a password.
    token_hash: Mapped[str] = mapped_column(String(64), unique=True, index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Zone(Base):
    __tablename__ = "zones"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    recipient_id: Mapped[int] = mapped_column(ForeignKey("recipients.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    lat: Mapped[float] = mapped_column(Float)
    lon: Mapped[float] = mapped_column(Float)
    clear_radius_m: Mapped[float] = mapped_column(Float)
    elevation_m: Mapped[float | None] = mapped_column(Float)
    polygon: Mapped[Any | None] = mapped_column(JSON)  # GeoJSON Polygon as given
    instructions: Mapped[str | None] = mapped_column(Text)
    contact: Mapped[str | None] = mapped_column(String(200))
    hub: Mapped[str | None] = mapped_column(String(100))  # nearest hub that can reach it
    reach: Mapped[Any | None] = mapped_column(JSON)  # per-hub reference-parcel check, as validated
    confirmed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class FleetItem(Base):
    """Hubs, airframes and vehicles as validated JSON (core.fleet models are the schema)."""

    __tablename__ = "fleet_items"
    kind: Mapped[str] = mapped_column(String(20), primary_key=True)
    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    data: Mapped[Any] = mapped_column(JSON)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class AirspaceVersion(Base):
    """Every airspace ever in force; a delivery names the version it was planned in, so a resumed
    flight is rebuilt against the same geometry even if an operator has since replaced the airspace."""

    __tablename__ = "airspace_versions"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    geojson: Mapped[Any] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Delivery(Base):
    __tablename__ = "deliveries"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    recipient_id: Mapped[int] = mapped_column(Integer, index=True)
    zone_id: Mapped[int] = mapped_column(Integer, index=True)
    zone: Mapped[Any] = mapped_column(JSON)  # snapshot: later edits of the zone do not move a planned drop
    parcel: Mapped[Any] = mapped_column(JSON)
    hub: Mapped[str | None] = mapped_column(String(100))
    airframe: Mapped[str | None] = mapped_column(String(100))
    method: Mapped[str | None] = mapped_column(String(20))
    vehicle: Mapped[str | None] = mapped_column(String(100), index=True)
    airspace_version: Mapped[int] = mapped_column(Integer)
    summary: Mapped[Any | None] = mapped_column(JSON)
    route: Mapped[Any | None] = mapped_column(JSON)  # [[lon, lat], ...] out and back, for the map
    verdict: Mapped[Any | None] = mapped_column(JSON)
    state: Mapped[str] = mapped_column(String(20), index=True)  # projection of the events
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)


class Event(Base):
    __tablename__ = "delivery_events"
    __table_args__ = (UniqueConstraint("delivery_id", "kind", "occurrence", name="uq_event_occurrence"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    delivery_id: Mapped[int] = mapped_column(ForeignKey("deliveries.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(30))
    occurrence: Mapped[int] = mapped_column(Integer)
    time: Mapped[datetime] = mapped_column(UTCDateTime)
    lat: Mapped[float | None] = mapped_column(Float)
    lon: Mapped[float | None] = mapped_column(Float)
    alt_rel_m: Mapped[float | None] = mapped_column(Float)
    message: Mapped[str] = mapped_column(Text, default="")
    data: Mapped[Any] = mapped_column(JSON, default=dict)

    def to_dict(self) -> dict:
        return {"kind": self.kind, "occurrence": self.occurrence, "time": self.time.isoformat(), "lat": self.lat,
                "lon": self.lon, "alt_rel_m": self.alt_rel_m, "message": self.message, "data": self.data or {}}


# -- state, derived from events ---------------------------------------------------------------------

# A flight reports each of these at most once; a repeat (after a restart, say) is the same event.
ONCE_KINDS = frozenset({
    "planned", "refused", "dispatched", "uploaded", "armed", "taking_off", "en_route", "at_zone", "lowering",
    "released", "returning", "landed", "aborted", "failed", "report", "drop_failed", "lost", "crashed", "return_route",
    "arriving",
})
# Kinds that move the delivery along; faults (link_lost, low_battery, ...) are recorded but do not.
_PROGRESS = {
    "planned": "planned", "refused": "refused", "dispatched": "dispatched", "uploaded": "dispatched",
    "armed": "dispatched", "taking_off": "taking_off", "en_route": "en_route", "at_zone": "at_zone",
    "lowering": "lowering", "released": "released", "returning": "returning", "landed": "landed",
}
STATES = ("planned", "refused", "dispatched", "taking_off", "en_route", "at_zone", "lowering", "released",
          "returning", "landed", "aborted", "failed", "lost", "crashed")
IN_FLIGHT_STATES = ("dispatched", "taking_off", "en_route", "at_zone", "lowering", "released", "returning")


def derive_state(kinds: Iterable[str]) -> str:
    """Current state from the kinds of the events, in the order they were appended."""
    kinds = list(kinds)
    # how it ended outranks where it got to: a crash or a lost vehicle is that, whatever came before
    for final in ("crashed", "lost", "failed", "aborted"):
        if final in kinds:
            return final
    state = "planned"
    for k in kinds:
        state = _PROGRESS.get(k, state)
    return state


def is_active(kinds: Iterable[str]) -> bool:
    """Is a flight running (or should one be resumed) for a delivery with these events?"""
    ks = set(kinds)
    return "dispatched" in ks and not ({"report", "failed"} & ks)


class EnergyFlight(Base):
    """One flown flight's predicted (uncalibrated model) and measured energy: what calibration learns from.
    The vehicle kind keeps the simulator, SITL and real aircraft of one airframe name apart."""

    __tablename__ = "energy_flights"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    airframe: Mapped[str] = mapped_column(String(100), index=True)
    vehicle_kind: Mapped[str] = mapped_column(String(20))
    vehicle: Mapped[str | None] = mapped_column(String(100))
    delivery_id: Mapped[int | None] = mapped_column(Integer)
    predicted_wh: Mapped[float] = mapped_column(Float)
    used_wh: Mapped[float] = mapped_column(Float)
    phases: Mapped[Any] = mapped_column(JSON, default=dict)
    flown_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


# -- the store --------------------------------------------------------------------------------------

def database_url(data_dir: str | Path | None = None, url: str | None = None) -> str:
    url = url or os.environ.get("DATABASE_URL")
    if url:
        # Heroku-style URLs name the scheme "postgres"; SQLAlchemy wants "postgresql".
        return "postgresql" + url[len("postgres"):] if url.startswith("postgres://") else url
    d = Path(data_dir or os.environ.get("GROUNDCTL_DATA") or "./data")
    # recipients' addresses and contacts live here: only the service's user may list or read it. An
    # existing directory is left as its owner set it (it may be shared on purpose); the files are not.
    d.mkdir(mode=0o700, parents=True, exist_ok=True)
    return f"sqlite:///{(d / 'groundctl.db').resolve()}"


DB_MODE = 0o600


def _private_sqlite_files(path: str) -> None:
    """The database, its WAL and its shared-memory index readable by the service's user only.

    SQLite creates -wal and -shm with the database file's permissions, so creating the database 0600
    covers new files; the chmod covers files an older version or another umask left readable.
    """
    if not os.path.exists(path):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT, DB_MODE))
    for p in (path, path + "-wal", path + "-shm"):
        try:
            if os.stat(p).st_mode & 0o777 != DB_MODE:
                os.chmod(p, DB_MODE)
        except FileNotFoundError:
            pass


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest Alembic revision (groundctl/migrations), with every module's tables."""
    from groundctl import migrations  # noqa: PLC0415 - env.py imports this module's tables
    from groundctl.runtime import tables  # noqa: F401, PLC0415

    migrations.upgrade(engine, metadata=Base.metadata)


class Store:
    def __init__(self, url: str) -> None:
        self.url = url
        if url.startswith("sqlite"):
            db_path = make_url(url).database
            file_backed = bool(db_path) and db_path != ":memory:" and not db_path.startswith("file:")
            if file_backed:
                _private_sqlite_files(db_path)
            self.engine: Engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

            @event.listens_for(self.engine, "connect")
            def _pragmas(conn, _record) -> None:  # noqa: ANN001
                cur = conn.cursor()
                # WAL: readers (the API) never wait for the writer (a flight appending events), and a
                # killed process leaves a consistent database; NORMAL sync is durable at checkpoints.
                cur.execute("PRAGMA journal_mode=WAL")
                cur.execute("PRAGMA synchronous=NORMAL")
                cur.execute("PRAGMA foreign_keys=ON")
                cur.execute("PRAGMA busy_timeout=30000")
                cur.close()
                if file_backed:
                    _private_sqlite_files(db_path)  # -wal/-shm now exist

            @event.listens_for(self.engine, "savepoint")
            def _savepoint_inside_a_transaction(conn, _name) -> None:  # noqa: ANN001
                # Python's sqlite3 opens a transaction only before INSERT/UPDATE/DELETE, so a SAVEPOINT that
                # comes first opens one of its own, and its RELEASE commits: a later rollback of the session
                # would leave the savepoint's rows written. Open the real transaction first (IMMEDIATE: a
                # savepoint is there to write, so take the write lock now, waiting out busy_timeout).
                raw = conn.connection.dbapi_connection
                if not raw.in_transaction:
                    raw.execute("BEGIN IMMEDIATE")
        else:
            self.engine = create_engine(url, pool_pre_ping=True)
        migrate(self.engine)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    @contextmanager
    def session(self) -> Iterator[Session]:
        """One transaction: committed on success, rolled back on any error (nothing half-written)."""
        s = self._sessions()
        try:
            yield s
            s.commit()
        except BaseException:
            s.rollback()
            raise
        finally:
            s.close()

    def close(self) -> None:
        self.engine.dispose()

    # -- events -----------------------------------------------------------------------------------
    def kinds(self, s: Session, delivery_id: int) -> list[str]:
        return list(s.scalars(select(Event.kind).where(Event.delivery_id == delivery_id).order_by(Event.id)))

    def events(self, s: Session, delivery_id: int) -> list[Event]:
        return list(s.scalars(select(Event).where(Event.delivery_id == delivery_id).order_by(Event.id)))

    def append(self, s: Session, delivery_id: int, ev: DeliveryEvent) -> Event | None:
        """Append an event in the caller's transaction; None if it is a repeat of a once-only kind."""
        if ev.kind in ONCE_KINDS:
            occurrence = 1
            exists = s.scalar(select(Event.id).where(Event.delivery_id == delivery_id, Event.kind == ev.kind))
            if exists is not None:
                return None
        else:
            n = s.scalar(select(func.count()).select_from(Event)
                         .where(Event.delivery_id == delivery_id, Event.kind == ev.kind)) or 0
            occurrence = n + 1
        row = Event(delivery_id=delivery_id, kind=ev.kind, occurrence=occurrence, time=ev.time, lat=ev.lat,
                    lon=ev.lon, alt_rel_m=ev.alt_rel_m, message=ev.message or "", data=_jsonable(ev.data))
        try:
            with s.begin_nested():
                s.add(row)
                s.flush()
        except IntegrityError:
            # a concurrent writer appended the same (delivery, kind, occurrence): the constraint is the
            # arbiter, and the event is already there
            return None
        d = s.get(Delivery, delivery_id)
        if d is not None:
            d.state = derive_state(self.kinds(s, delivery_id))
        # notifications leave through an outbox written in this same transaction: no event is announced
        # that was not stored, and none is stored without its announcements
        from groundctl.runtime.notify.outbox import enqueue_for_event  # noqa: PLC0415 (it imports this module)
        enqueue_for_event(s, delivery_id, row)
        return row

    def append_event(self, delivery_id: int, ev: DeliveryEvent) -> Event | None:
        with self.session() as s:
            return self.append(s, delivery_id, ev)


def _jsonable(v: Any) -> Any:
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    if isinstance(v, datetime):
        return v.isoformat()
    if isinstance(v, float) and v != v:  # NaN is not JSON
        return None
    if v is None or isinstance(v, (str, int, float, bool)):
        return v
    return str(v)
