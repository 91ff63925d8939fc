"""Attended drop, service side: the recipient's clearance reaching the flight, and one-time clear codes.

The flight itself (runtime.fly DeliveryFlight.clear_to_drop, protocol.attended) holds above the zone
and drops on clearance. Here: the recipient's word that they will be there (`presence_confirmed`, asked
for in the planned and dispatched notices; dispatch refuses an attended parcel without it unless the
operator forces it, see faces/api/README.md), who may clear (whoever holds the tracking link, or the recipient or an
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

from sqlalchemy import Integer, String, select
from sqlalchemy.orm import Mapped, mapped_column

from groundctl.errors import Conflict, GroundctlError
from groundctl.runtime.events import DeliveryEvent
from groundctl.runtime.store import Base, Event, UTCDateTime

CODE_DIGITS = 6
MAX_WRONG = 5  # a 6-digit code with 5 tries: one chance in 200 000 of guessing it
# a delivery in one of these has nothing left to clear
_OVER = {"cleared_to_drop", "recipient_absent", "aborted", "return_route", "returning", "released", "landed",
         "failed", "lost", "crashed"}


# presence can still be promised while the drone has not yet begun (or ended) its hold
_PRESENCE_OPEN = {"planned", "dispatched", "taking_off", "en_route", "at_zone"}


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
    presence = next((e for e in evs if e.kind == "presence_confirmed"), None)
    hold = next((e for e in evs if e.kind == "holding_for_recipient"), None)
    awaiting = hold is not None and not (kinds & _OVER)
    ended = ("cleared" if "cleared_to_drop" in kinds else "recipient_absent" if "recipient_absent" in kinds
             else None)
    return {"attended": True, "awaiting_clearance": awaiting,
            "hold_deadline": (hold.data or {}).get("deadline") if hold is not None else None,
            "hold_s": (hold.data or {}).get("hold_s") if hold is not None else None,
            "hold_ended": ended, "outcome_reason": reason,
            "presence_confirmed": presence is not None,
            "presence_confirmed_at": presence.time.isoformat() if presence is not None else None}


def presence_refusal(s, d) -> str | None:
    """Why an attended delivery may not be dispatched yet (nobody said they will be there), or None."""
    if not (d.parcel or {}).get("attended"):
        return None
    found = s.scalar(select(Event.id).where(Event.delivery_id == d.id, Event.kind == "presence_confirmed").limit(1))
    if found is not None:
        return None
    return (f"delivery {d.id} is an attended drop and the recipient has not confirmed they will be there "
            f"(tracking page \"I'll be there\", or POST /api/v1/deliveries/{d.id}/presence); flying now would most "
            "likely hold above an empty zone and bring the parcel back. Dispatch with force=true to fly anyway")


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

    # -- presence (synchronous: database only, for a worker thread) ------------------------------
    def confirm_presence(self, recipient_id: int | None, delivery_id: int, *, by: str, via: str) -> dict:
        """The recipient will be at the zone: recorded once (a repeat answers the same, records nothing).
        recipient_id None: the caller holds the tracking link, or is an operator the recipient told."""
        with self.store.session() as s:
            d = self.deliveries.own(s, recipient_id, delivery_id)
            if not (d.parcel or {}).get("attended"):
                raise Conflict(f"delivery {delivery_id} is not an attended drop: nobody needs to be there",
                               field="delivery_id")
            kinds = set(self.store.kinds(s, delivery_id))
            if "presence_confirmed" not in kinds:
                if d.state not in _PRESENCE_OPEN or kinds & _OVER:
                    raise Conflict(f"delivery {delivery_id} is {d.state}: it is too late to confirm presence",
                                   field="delivery_id")
                # a concurrent confirmation loses on the (delivery, kind, occurrence) constraint: still once
                self.store.append(s, delivery_id, DeliveryEvent(
                    "presence_confirmed", time=self.clock(), message=f"the recipient will be there (via {via})",
                    data={"by": by, "via": via}))
            view = self.deliveries.view(s, d, operator=False)
        return {k: view.get(k) for k in ("id", "state", "attended", "presence_confirmed", "presence_confirmed_at")}

    async def hold(self, delivery_id: int) -> dict:
        """What the tracking page shows of the attended drop: presence, and while the drone holds, how long
        it still waits. hold_left_s is in vehicle seconds from the flight when this process flies it (the
        vehicle's clock decides when the hold ends); otherwise from the stored deadline."""
        view = await asyncio.to_thread(self.deliveries.get, None, delivery_id)
        out = {k: view.get(k) for k in ("id", "state", "attended", "presence_confirmed", "presence_confirmed_at",
                                        "awaiting_clearance", "hold_s", "hold_deadline", "hold_ended")}
        if out["hold_s"] is None and out["attended"]:  # before the hold: how long the plan says it will wait
            out["hold_s"] = (view.get("plan") or {}).get("attended_hold_s")
        out["can_confirm_presence"] = bool(view.get("attended") and not view.get("presence_confirmed")
                                           and view.get("state") in _PRESENCE_OPEN and not view.get("hold_ended")
                                           and not view.get("awaiting_clearance"))
        left = None
        if view.get("awaiting_clearance"):
            flight = self.service.flights.flights.get(delivery_id)
            hv = flight.hold_view() if flight is not None and hasattr(flight, "hold_view") else None
            left = (hv or {}).get("hold_left_s")
            if left is None and view.get("hold_deadline"):
                left = (datetime.fromisoformat(view["hold_deadline"]) - self.clock()).total_seconds()
        out["hold_left_s"] = None if left is None else round(max(0.0, left), 1)
        return out

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
