"""Notification tables: webhook endpoints, recipients' preferences, and the outbox the sender drains."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from groundctl.runtime.store import Base, UTCDateTime, utcnow


class WebhookEndpoint(Base):
    """Where signed webhooks go: a recipient's own endpoint (recipient_id set) or an operator's integration
    (a merchant's order system: recipient_id NULL, it hears about every delivery)."""

    __tablename__ = "webhook_endpoints"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    recipient_id: Mapped[int | None] = mapped_column(ForeignKey("recipients.id", ondelete="CASCADE"), index=True)
    url: Mapped[str] = mapped_column(String(2000))
    # "whsec_<base64>": the receiver needs the raw key to verify, so it is stored as is (not hashed), shown
    # once at creation and never logged or listed
    secret: Mapped[str] = mapped_column(String(100))
    kinds: Mapped[Any | None] = mapped_column(JSON)  # None: every kind
    description: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class NotifyPreference(Base):
    """A recipient's choices: which kinds they want at all (every channel), and email on or off."""

    __tablename__ = "notify_preferences"
    recipient_id: Mapped[int] = mapped_column(ForeignKey("recipients.id", ondelete="CASCADE"), primary_key=True)
    kinds: Mapped[Any | None] = mapped_column(JSON)  # None: every kind
    email_enabled: Mapped[bool] = mapped_column(Boolean, default=False)
    email: Mapped[str | None] = mapped_column(String(254))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class OutboxMessage(Base):
    """One notification to one endpoint (or one email address), written in the transaction of the event it
    announces. msg_id is the webhook-id: the same on every attempt, so receivers can drop duplicates."""

    __tablename__ = "notify_outbox"
    __table_args__ = (Index("ix_notify_outbox_due", "state", "next_attempt_at"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    msg_id: Mapped[str] = mapped_column(String(64), unique=True)
    # at most one message per (delivery, notification kind, endpoint), or per (zone, staleness period, ...)
    dedupe_key: Mapped[str] = mapped_column(String(200), unique=True)
    channel: Mapped[str] = mapped_column(String(10))  # webhook | email
    # the unit of isolation: one endpoint's backlog or timeouts never hold another's messages
    endpoint_key: Mapped[str] = mapped_column(String(300), index=True)
    endpoint_id: Mapped[int | None] = mapped_column(ForeignKey("webhook_endpoints.id", ondelete="SET NULL"))
    email_to: Mapped[str | None] = mapped_column(String(254))
    recipient_id: Mapped[int | None] = mapped_column(Integer, index=True)
    delivery_id: Mapped[int | None] = mapped_column(Integer, index=True)
    event_id: Mapped[int | None] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(30))
    body: Mapped[str] = mapped_column(Text)  # the exact bytes signed and sent (JSON)
    state: Mapped[str] = mapped_column(String(10), default="pending")  # pending | sent | dead
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_error: Mapped[str | None] = mapped_column(Text)
    last_status: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    dead_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class ZoneStaleMark(Base):
    """The staleness period (named by the zone's confirmed_at) whose warning was already queued, so the
    periodic scan only ever looks at zones it has not handled yet."""

    __tablename__ = "notify_zone_marks"
    zone_id: Mapped[int] = mapped_column(ForeignKey("zones.id", ondelete="CASCADE"), primary_key=True)
    confirmed_at: Mapped[datetime] = mapped_column(UTCDateTime)
