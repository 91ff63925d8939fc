"""Attended drop, service side: the recipient's clearance reaching the flight, and one-time clear codes.

The flight itself (runtime.fly DeliveryFlight.clear_to_drop, protocol.attended) holds above the zone
and drops on clearance. Here: who may clear (whoever holds the tracking link, or the recipient or an
operator with the one-time code the recipient was given), the codes (stored salted and hashed, used
once, locked after a few wrong tries), and the view fields a delivery shows while it holds
(`awaiting_clearance`), derived from the stored events so that any API process can answer.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import secrets
from datetime import datetime
from typing import Any, Iterable

from sqlalchemy import Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from groundctl.errors import Conflict, GroundctlError
from groundctl.runtime.store import Base, UTCDateTime

CODE_DIGITS = 6
MAX_WRONG = 5  # a 6-digit code with 5 tries: one chance in 200 000 of guessing it
# a delivery in one of these has nothing left to clear
_OVER = {"cleared_to_drop", "recipient_absent", "aborted", "return_route", "returning", "released", "landed",
         "failed", "lost", "crashed"}


class WrongCode(GroundctlError):
    status = 403
    title = "wrong clear code"


class ClearCode(Base):
    """The one-time code that lets the recipient (or an operator they read it to) clear an attended drop."""

    __tablename__ = "attended_clear_codes"
    delivery_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    salt: Mapped[str] = mapped_column(String(32))
    code_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    wrong_tries: Mapped[int] = mapped_column(Integer, default=0)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


def _hash(salt: str, code: str) -> str:
    return hashlib.sha256(f"{salt}:{code}".encode()).hexdigest()


def attended_view(parcel: dict | None, events: Iterable[Any], report: dict | None = None) -> dict:
    """Fields for a delivery view: `attended`, `awaiting_clearance` (the drone holds above the zone for
    the recipient right now), the hold's deadline (vehicle time), how the hold ended, and the reason the
    flight report gives for its outcome (returned_with_parcel: recipient_absent)."""
    attended = bool((parcel or {}).get("attended"))
    reason = (report or {}).get("reason")
    if not attended:
        return {"attended": False, "awaiting_clearance": False, "outcome_reason": reason}
    evs = list(events)
    kinds = {e.kind for e in evs}
    hold = next((e for e in evs if e.kind == "holding_for_recipient"), None)
    awaiting = hold is not None and not (kinds & _OVER)
    ended = ("cleared" if "cleared_to_drop" in kinds else "recipient_absent" if "recipient_absent" in kinds
             else None)
    return {"attended": True, "awaiting_clearance": awaiting,
            "hold_deadline": (hold.data or {}).get("deadline") if hold is not None else None,
            "hold_s": (hold.data or {}).get("hold_s") if hold is not None else None,
            "hold_ended": ended, "outcome_reason": reason}


class AttendedService:
    """Over the composed Service: its store, deliveries (own, get) and flight supervisor, looked up at each
    use, because a scaled API process swaps the supervisor for one whose flights live in workers
    (services/remote_flights.py: the clearance becomes a command the owning worker carries out)."""

    def __init__(self, service) -> None:
        self.service = service

    @property
    def store(self):
        return self.service.store

    @property
    def deliveries(self):
        return self.service.deliveries

    def clock(self) -> datetime:
        return self.service.settings.clock()

    # -- codes (synchronous: database only, for a worker thread) ---------------------------------
    def issue_code(self, recipient_id: int | None, delivery_id: int) -> dict:
        """A new one-time code (any earlier one stops working). Shown once: only its hash is kept."""
        with self.store.session() as s:
            d = self.deliveries.own(s, recipient_id, delivery_id)
            if not (d.parcel or {}).get("attended"):
                raise Conflict(f"delivery {delivery_id} is not an attended drop: it has nothing to clear",
                               field="delivery_id")
            if d.state in ("refused", "landed", "aborted", "failed", "released", "returning"):
                raise Conflict(f"delivery {delivery_id} is {d.state}: no clearance can matter now", field="delivery_id")
            code = f"{secrets.randbelow(10 ** CODE_DIGITS):0{CODE_DIGITS}d}"
            salt = secrets.token_hex(8)
            row = s.get(ClearCode, delivery_id)
            if row is None:
                row = ClearCode(delivery_id=delivery_id)
                s.add(row)
            row.salt, row.code_hash, row.created_at, row.wrong_tries, row.used_at = \
                salt, _hash(salt, code), self.clock(), 0, None
            s.commit()
        return {"delivery_id": delivery_id, "code": code, "single_use": True, "wrong_tries_allowed": MAX_WRONG}

    def check_code(self, recipient_id: int | None, delivery_id: int, code: str) -> None:
        with self.store.session() as s:
            self.deliveries.own(s, recipient_id, delivery_id)
            row = s.get(ClearCode, delivery_id)
            if row is None:
                raise Conflict(f"no clear code was issued for delivery {delivery_id} "
                               f"(POST /api/v1/deliveries/{delivery_id}/clear-code)", field="code")
            if row.used_at is not None:
                raise Conflict("this clear code was already used", field="code")
            if row.wrong_tries >= MAX_WRONG:
                raise Conflict(f"{MAX_WRONG} wrong codes: this code is locked; issue a new one", field="code")
            if not hmac.compare_digest(row.code_hash, _hash(row.salt, code)):
                row.wrong_tries += 1
                s.commit()
                raise WrongCode(f"wrong code ({MAX_WRONG - row.wrong_tries} tries left)", field="code")

    def use_code(self, delivery_id: int) -> None:
        with self.store.session() as s:
            row = s.get(ClearCode, delivery_id)
            if row is not None:
                row.used_at = self.clock()
                s.commit()

    # -- clearance -------------------------------------------------------------------------------
    async def clear(self, delivery_id: int, *, by: str, recipient_id: int | None = None,
                    code: str | None = None) -> dict:
        """Send the clearance to the delivery's flight. `code` is checked (and used up) when given."""
        if code is not None:
            await asyncio.to_thread(self.check_code, recipient_id, delivery_id, code)
        else:
            await asyncio.to_thread(self._exists, recipient_id, delivery_id)
        flight = self.service.flights.flights.get(delivery_id)
        if flight is None:
            raise Conflict(f"delivery {delivery_id} is not in flight here: nothing is holding for a clearance",
                           field="delivery_id")
        hold = await flight.clear_to_drop(by)
        if code is not None:
            await asyncio.to_thread(self.use_code, delivery_id)
        view = await asyncio.to_thread(self.deliveries.get, recipient_id, delivery_id)
        return {**view, "clearance": hold}

    def _exists(self, recipient_id: int | None, delivery_id: int) -> None:
        with self.store.session() as s:
            self.deliveries.own(s, recipient_id, delivery_id)
