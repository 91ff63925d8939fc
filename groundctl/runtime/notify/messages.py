"""What a recipient (or a merchant's system) is told, and when: delivery events -> notifications.

Pure functions of the stored rows, run inside the event's transaction (see outbox.enqueue_for_event).
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from groundctl.core.geo import geodesic_distance_m

log = logging.getLogger("groundctl.notify")

# every kind a recipient or an integration can subscribe to
KINDS = ("planned", "dispatched", "arriving", "holding_for_recipient", "delivered", "failed", "returned", "aborted",
         "zone_stale")
DELIVERED_OUTCOMES = ("delivered", "delivered_with_incidents")
# what a flight's outcome means to the person waiting for the parcel
_OUTCOME_KIND = {"returned_with_parcel": "returned", "misdelivered": "failed", "landed_away": "failed",
                 "lost": "failed", "crashed": "failed", "failed": "failed", "aborted": "aborted"}
_NEXT = {
    "returned": "the parcel is back at the hub; the operator will arrange another attempt",
    "failed": "the operator has been alerted and will contact you about another attempt",
    "aborted": "the operator stopped this delivery; the parcel stays with (or returns to) the hub",
    "recipient_absent": "the drone is flying the parcel back to the hub; the sender will contact you to arrange "
                        "another attempt (confirm you will be there next time, on the tracking page)",
}


def tracking_link(s, delivery_id: int) -> str | None:
    """The recipient's tracking page, when the tracking module provides one (it owns the capability link)."""
    try:
        from groundctl.runtime.tracking import tracking_url  # noqa: PLC0415
    except ImportError:
        return None
    try:
        return tracking_url(s, delivery_id)
    except Exception:  # a tracking problem must not stop the event (or its other notifications)
        log.exception("no tracking link for delivery %s", delivery_id)
        return None


def _minutes(seconds: float | None) -> str:
    return "" if seconds is None else f"{max(1, round(seconds / 60))} min"


def _proof(d, data: dict) -> dict | None:
    lat, lon = data.get("drop_lat"), data.get("drop_lon")
    dist = None
    if lat is not None and lon is not None:
        dist = round(geodesic_distance_m(d.zone["lon"], d.zone["lat"], lon, lat), 2)
    return {"time": data.get("drop_time"), "lat": lat, "lon": lon, "distance_from_zone_centre_m": dist}


def _attended(d) -> tuple[bool, float | None]:
    """(attended drop?, how long the drone waits above the zone, seconds)."""
    if not (d.parcel or {}).get("attended"):
        return False, None
    return True, (d.summary or {}).get("attended_hold_s")


def _presence_ask(hold_s: float | None) -> str:
    wait = f" The drone waits at most {_minutes(hold_s)} above the zone." if hold_s else ""
    return (" This parcel must be handed over in person: please confirm you will be there (\"I'll be there\" on "
            f"the tracking page).{wait} If nobody clears it to drop, it comes back with the parcel.")


def kind_for(ev) -> str | None:
    """The notification kind a stored event announces, if any (cheap: no database, no link)."""
    if ev.kind in ("planned", "dispatched", "arriving", "aborted", "failed", "holding_for_recipient"):
        return ev.kind
    if ev.kind == "recipient_absent":
        # the drone turns home now: the recipient hears it at once, not when it lands (the report's
        # "returned" then finds this one queued and is not sent twice)
        return "returned"
    if ev.kind == "refused":
        return "failed"
    if ev.kind == "report":
        outcome = (ev.data or {}).get("outcome") or ev.message
        return "delivered" if outcome in DELIVERED_OUTCOMES else _OUTCOME_KIND.get(outcome, "failed")
    return None


def for_event(s, d, ev) -> tuple[str, dict] | None:
    """(notification kind, data) announced by stored event `ev` of delivery `d`, or None for silent events."""
    zone = d.zone.get("name") if isinstance(d.zone, dict) else None
    base: dict[str, Any] = {"delivery_id": d.id, "zone_id": d.zone_id, "zone_name": zone,
                            "event_time": ev.time.isoformat()}
    data = ev.data or {}
    k = ev.kind
    if k == "planned":
        window = data.get("window") or {}
        span = window.get("after_dispatch_s")
        text = f"A delivery to {zone} is planned"
        if span:
            text += (f"; the parcel will be down between {_minutes(span[0])} and {_minutes(span[1])} after "
                     "it is dispatched")
        att, hold_s = _attended(d)
        if att:
            text += "." + _presence_ask(hold_s)
        return "planned", {**base, "window": window or None, "tracking_url": tracking_link(s, d.id), "text": text,
                           **_attended_fields(s, d, att, hold_s)}
    if k == "dispatched":
        eta = data.get("eta_promised")
        text = f"Your parcel is on its way to {zone}" + (f", expected at {eta}" if eta else "")
        att, hold_s = _attended(d)
        if att:
            text += "." + (_presence_ask(hold_s) if not _presence_given(s, d) else
                           f" Be at the zone: the drone waits at most {_minutes(hold_s)} for you to clear it to drop.")
        return "dispatched", {**base, "eta": eta, "tracking_url": tracking_link(s, d.id), "text": text,
                              **_attended_fields(s, d, att, hold_s)}
    if k == "holding_for_recipient":
        url = tracking_link(s, d.id)
        deadline = data.get("deadline")
        hold_s = data.get("hold_s")
        until = f" until {deadline}" if deadline else ""
        return "holding_for_recipient", {
            **base, "tracking_url": url, "deadline": deadline, "hold_s": hold_s,
            "text": (f"The drone is above {zone} and waiting for you{until} (at most {_minutes(hold_s)}). Come out, "
                     "check the zone is clear, and clear it to drop on the tracking page, or read your one-time "
                     "code to the sender; otherwise it flies back with the parcel")}
    if k == "recipient_absent":
        nxt = _NEXT["recipient_absent"]
        return "returned", {**base, "outcome": "returned_with_parcel", "reason": "recipient_absent", "next": nxt,
                            "tracking_url": tracking_link(s, d.id),
                            "text": f"Nobody cleared the drop at {zone} in time (recipient absent); {nxt}"}
    if k == "arriving":
        eta_s = data.get("eta_to_zone_s")
        return "arriving", {**base, "eta": data.get("eta_to_zone"), "eta_s": eta_s,
                            "tracking_url": tracking_link(s, d.id),
                            "text": f"Your parcel arrives at {zone} in about {_minutes(eta_s) or 'two minutes'}; "
                                    "keep the zone clear"}
    if k == "refused":
        return "failed", {**base, "reason": ev.message, "next": "this delivery will not fly as planned; "
                          "the operator will contact you", "text": f"The delivery to {zone} cannot fly: {ev.message}"}
    if k == "aborted":
        before = data.get("action") == "cancel"
        nxt = "the delivery is cancelled" if before else "the drone is flying back to the hub with your parcel"
        return "aborted", {**base, "reason": ev.message, "next": nxt,
                           "text": f"The delivery to {zone} was stopped ({ev.message}); {nxt}"}
    if k == "failed":
        return "failed", {**base, "reason": ev.message, "next": _NEXT["failed"],
                          "text": f"The delivery to {zone} failed ({ev.message}); {_NEXT['failed']}"}
    if k == "report":
        outcome = data.get("outcome") or ev.message
        if outcome in DELIVERED_OUTCOMES:
            proof = _proof(d, data)
            where = (f", {proof['distance_from_zone_centre_m']} m from the centre of {zone}"
                     if proof and proof["distance_from_zone_centre_m"] is not None else f" at {zone}")
            return "delivered", {**base, "outcome": outcome, "proof_of_delivery": proof,
                                 "tracking_url": tracking_link(s, d.id),
                                 "text": f"Your parcel was delivered{where}"}
        kind = _OUTCOME_KIND.get(outcome, "failed")
        reason = data.get("reason") or outcome
        return kind, {**base, "outcome": outcome, "reason": reason, "next": _NEXT[kind],
                      "text": f"The delivery to {zone} ended {outcome.replace('_', ' ')}; {_NEXT[kind]}"}
    return None


def _presence_given(s, d) -> bool:
    from groundctl.runtime.store import Event  # noqa: PLC0415 (the store imports the outbox, which imports this)
    from sqlalchemy import select  # noqa: PLC0415

    return s.scalar(select(Event.id).where(Event.delivery_id == d.id, Event.kind == "presence_confirmed")
                    .limit(1)) is not None


def _attended_fields(s, d, att: bool, hold_s: float | None) -> dict:
    if not att:
        return {}
    return {"attended": True, "hold_s": hold_s, "presence_confirmed": _presence_given(s, d)}


def zone_stale(zone, stale_at: datetime) -> dict:
    return {"zone_id": zone.id, "zone_name": zone.name, "confirmed_at": zone.confirmed_at.isoformat(),
            "stale_at": stale_at.isoformat(), "reconfirm": f"POST /api/v1/zones/{zone.id}/confirm",
            "text": f"Your landing zone {zone.name!r} needs reconfirming before {stale_at:%Y-%m-%d %H:%M} UTC, or "
                    "no delivery can be planned to it"}


SUBJECTS = {"planned": "Delivery planned", "dispatched": "Your parcel is on its way",
            "arriving": "Your parcel arrives in about two minutes", "delivered": "Your parcel was delivered",
            "failed": "Your delivery failed", "returned": "Your parcel went back to the hub",
            "aborted": "Your delivery was stopped", "zone_stale": "Please reconfirm your landing zone",
            "holding_for_recipient": "The drone is waiting for you: clear it to drop"}


def email_text(kind: str, data: dict) -> tuple[str, str]:
    """(subject, plain-text body)."""
    lines = [data.get("text", ""), ""]
    if data.get("eta"):
        lines.append(f"Expected: {data['eta']}")
    if data.get("deadline"):
        lines.append(f"The drone waits until: {data['deadline']}")
    p = data.get("proof_of_delivery")
    if p:
        lines.append(f"Dropped at {p.get('time')}: {p.get('lat')}, {p.get('lon')} "
                     f"({p.get('distance_from_zone_centre_m')} m from the zone centre)")
    if data.get("next"):
        lines.append(f"What happens next: {data['next']}")
    if data.get("reconfirm"):
        lines.append(f"Reconfirm: {data['reconfirm']}")
    if data.get("tracking_url"):
        lines.append(f"{'Clear it to drop' if kind == 'holding_for_recipient' else 'Track it'}: {data['tracking_url']}")
    subject = SUBJECTS.get(kind, "Delivery update")
    if data.get("delivery_id"):
        subject += f" (delivery {data['delivery_id']})"
    return subject, "\n".join(lines).strip() + "\n"
