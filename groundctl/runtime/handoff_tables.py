"""Tables of the recipient's side of the handoff: tracking links and confirmations/disputes.

Declared on the store's Base so that create_all (and the migrations) see them; imported from
groundctl.runtime.tables.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from groundctl.runtime.store import Base, UTCDateTime, utcnow


class TrackingLink(Base):
    """One capability link per delivery.

    The token itself is never stored: it is HMAC(server secret, delivery id, nonce), so the service can
    put the same link in every notification, while a copy of the database alone opens no tracking page.
    Lookups go by the token's sha256. A new nonce rotates the link (the old one stops working).
    """

    __tablename__ = "tracking_links"
    delivery_id: Mapped[int] = mapped_column(ForeignKey("deliveries.id", ondelete="CASCADE"), primary_key=True)
    nonce: Mapped[str] = mapped_column(String(64))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True, index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class Confirmation(Base):
    """The recipient's one answer about a delivery: received, or a problem (a dispute) an operator resolves.

    The delivery id is the primary key: a second answer is refused by the database itself, whatever
    races between two browser tabs or an API client and the page.
    """

    __tablename__ = "delivery_confirmations"
    delivery_id: Mapped[int] = mapped_column(ForeignKey("deliveries.id", ondelete="CASCADE"), primary_key=True)
    status: Mapped[str] = mapped_column(String(20), index=True)  # received | not_received | damaged | wrong_place
    message: Mapped[str] = mapped_column(Text, default="")
    via: Mapped[str] = mapped_column(String(10))  # page (capability link) | api (recipient token)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    # disputes only: an operator's resolution
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)
    resolution: Mapped[str | None] = mapped_column(String(20))  # redelivered | refunded | rejected | other
    resolution_note: Mapped[str | None] = mapped_column(Text)

