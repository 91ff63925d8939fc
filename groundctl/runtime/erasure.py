"""Erasing a recipient: their personal data goes, the delivery records stay (anonymised) for the KPIs and
for whoever investigates a flight later.

What goes: the recipient's name and contact, their token, their landing zones (names, instructions,
contacts, outlines), webhook endpoints and notification preferences (email address), notifications not
yet sent to them, the bodies of those already sent, free-text messages of their confirmations, and their
tracking links. What stays: each delivery with its events, outcome, times, positions and the fact that it
was confirmed or disputed, under a recipient id that now names nobody.

The recipient row itself stays as a nameless tombstone: SQLite may hand a deleted row's id to the next
row inserted, and a new recipient must never inherit someone else's delivery history.

Refused (409) while a flight to them is running: the parcel is in the air and its zone still matters.
"""

from __future__ import annotations

import secrets
from datetime import datetime

from sqlalchemy import Integer, String, delete, select, update
from sqlalchemy.orm import Mapped, Session, mapped_column

from groundctl.errors import Conflict
from groundctl.runtime.events import DeliveryEvent
from groundctl.runtime.store import Base, Delivery, Recipient, Store, UTCDateTime, Zone, is_active

ERASED_NAME = "erased"
# what a delivery's zone snapshot keeps: where the drop was planned (a flight record), not who lives there
KEPT_ZONE_FIELDS = ("lat", "lon", "clear_radius_m", "elevation_m")


class RecipientErasure(Base):
    """One row per erased recipient: when, and on whose request (the recipient, or an operator)."""

    __tablename__ = "recipient_erasures"
    recipient_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    erased_at: Mapped[datetime] = mapped_column(UTCDateTime)
    requested_by: Mapped[str] = mapped_column(String(20))  # recipient | operator
    deliveries_kept: Mapped[int] = mapped_column(Integer, default=0)
    deliveries_cancelled: Mapped[int] = mapped_column(Integer, default=0)


def unusable_token_hash() -> str:
    """A value in the token_hash column that no token can hash to (sha256 hex never contains 'x')."""
    return "x" + secrets.token_hex(31)


def erase_recipient(store: Store, s: Session, recipient_id: int, now: datetime, requested_by: str) -> dict:
    """Erase in the caller's transaction (all of it or nothing). Raises Conflict while a flight is running."""
    r = s.get(Recipient, recipient_id, with_for_update=True)
    if r is None or s.get(RecipientErasure, recipient_id) is not None:
        from groundctl.errors import NotFound  # noqa: PLC0415

        raise NotFound(f"recipient {recipient_id} not found", field="recipient_id")
    rows = list(s.scalars(select(Delivery).where(Delivery.recipient_id == recipient_id).with_for_update()))
    flying = [d.id for d in rows if is_active(store.kinds(s, d.id))]
    if flying:
        raise Conflict(f"deliveries {flying} to this recipient are in flight; erasure is possible once they have "
                       f"ended (the zone and its instructions are still in use)", field="deliveries")
    cancelled = 0
    for d in rows:
        if d.state == "planned":
            # a planned delivery to nobody cannot be dispatched: cancel it, as an operator's cancel would
            store.append(s, d.id, DeliveryEvent("aborted", time=now, data={"action": "cancel"},
                                                message="cancelled before dispatch: the recipient was erased"))
            cancelled += 1
        zone = d.zone or {}
        # the texts as they were copied into the plan, the verdict and the events ("<name>'s yard")
        texts = [t for t in (zone.get("name"), zone.get("instructions"), zone.get("contact"), r.name, r.contact)
                 if isinstance(t, str) and len(t) >= 3]
        d.zone = {**{k: zone.get(k) for k in KEPT_ZONE_FIELDS}, "name": ERASED_NAME}
        d.summary, d.verdict = _scrub(d.summary, texts), _scrub(d.verdict, texts)
        for ev in store.events(s, d.id):
            message, data = _scrub(ev.message, texts), _scrub(ev.data, texts)
            if message != ev.message or data != ev.data:
                ev.message, ev.data = message, data
    ids = [d.id for d in rows]
    _erase_handoff(s, recipient_id, ids, now)
    s.execute(delete(Zone).where(Zone.recipient_id == recipient_id))
    r.name, r.contact, r.token_hash = ERASED_NAME, None, unusable_token_hash()
    s.add(RecipientErasure(recipient_id=recipient_id, erased_at=now, requested_by=requested_by,
                           deliveries_kept=len(ids), deliveries_cancelled=cancelled))
    s.flush()
    return {"recipient_id": recipient_id, "erased_at": now.isoformat(), "deliveries_kept": len(ids),
            "deliveries_cancelled": cancelled}


def _scrub(value, texts: list[str]):
    """value (JSON) with every occurrence of each text replaced by ERASED_NAME."""
    if isinstance(value, str):
        for t in sorted(texts, key=len, reverse=True):
            value = value.replace(t, ERASED_NAME)
        return value
    if isinstance(value, dict):
        return {k: _scrub(v, texts) for k, v in value.items()}
    if isinstance(value, list):
        return [_scrub(v, texts) for v in value]
    return value


def _erase_handoff(s: Session, recipient_id: int, delivery_ids: list[int], now: datetime) -> None:
    """The notification and handoff tables, where present (they belong to other modules)."""
    from groundctl.runtime import tables  # noqa: F401,PLC0415  (every table module, so the classes below load)

    try:
        from groundctl.runtime.notify.tables import NotifyPreference, OutboxMessage, WebhookEndpoint  # noqa: PLC0415
    except ImportError:  # pragma: no cover - a build without notifications
        NotifyPreference = OutboxMessage = WebhookEndpoint = None  # noqa: N806
    if OutboxMessage is not None:
        # messages addressed to the recipient (their endpoints, their email); an operator's integration
        # still hears what happens to the delivery (its cancellation, say)
        endpoints = select(WebhookEndpoint.id).where(WebhookEndpoint.recipient_id == recipient_id)
        theirs = (OutboxMessage.recipient_id == recipient_id) & (
            OutboxMessage.endpoint_id.in_(endpoints) | (OutboxMessage.channel == "email"))
        s.execute(delete(OutboxMessage).where(theirs, OutboxMessage.state == "pending"))
        # sent and dead-lettered messages stay countable for the operators' figures, without their contents
        # (the keys name the address too; each row's id keeps the unique one unique)
        for m in s.scalars(select(OutboxMessage).where(theirs)):
            m.body, m.email_to, m.last_error = '{"erased": true}', None, None
            m.dedupe_key, m.endpoint_key = f"erased:{m.id}", f"erased:{m.channel}"
        s.execute(delete(WebhookEndpoint).where(WebhookEndpoint.recipient_id == recipient_id))
        s.execute(delete(NotifyPreference).where(NotifyPreference.recipient_id == recipient_id))
    try:
        from groundctl.runtime.handoff_tables import Confirmation, TrackingLink  # noqa: PLC0415
    except ImportError:  # pragma: no cover
        return
    if delivery_ids:
        s.execute(update(Confirmation).where(Confirmation.delivery_id.in_(delivery_ids))
                  .values(message="", resolution_note=None))
        s.execute(update(TrackingLink).where(TrackingLink.delivery_id.in_(delivery_ids),
                                             TrackingLink.revoked_at.is_(None)).values(revoked_at=now))
