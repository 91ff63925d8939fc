"""Temporary restrictions, stored: every API process and flight worker plans around the same set."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Integer, String, func, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from groundctl.core.restrictions import Restriction, parse_restriction
from groundctl.runtime.store import Base, UTCDateTime, utcnow


class RestrictionRow(Base):
    __tablename__ = "restrictions"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    feature: Mapped[Any] = mapped_column(JSON)  # the GeoJSON Feature as given (validated)
    start: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    end: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    lifted_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)


def key_of(row_id: int) -> str:
    return f"r{row_id}"


def to_restriction(row: RestrictionRow) -> Restriction:
    return parse_restriction(row.feature, key_of(row.id))


def generation(s: Session) -> tuple:
    """Changes whenever a restriction is added or lifted: planners re-read the set only then."""
    return tuple(s.execute(select(func.count(RestrictionRow.id), func.max(RestrictionRow.updated_at))).one())


def in_force(s: Session, t0: datetime, t1: datetime) -> list[Restriction]:
    rows = s.scalars(select(RestrictionRow).where(RestrictionRow.lifted_at.is_(None), RestrictionRow.start < t1,
                                                  RestrictionRow.end > t0).order_by(RestrictionRow.id))
    return [to_restriction(r) for r in rows]
