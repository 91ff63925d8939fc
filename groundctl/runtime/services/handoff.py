"""The recipient's side of a delivery: the tracking page's data, changing one's mind before dispatch, and
confirming receipt or disputing it afterwards; the operators' view of disputes and unconfirmed deliveries.

A recipient acts either with their bearer token (the API) or with the delivery's capability link (the
page). Both reach the same methods; the link only ever opens the one delivery it was made for.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError

from groundctl.core.fleet import LandingZone, outline_geojson, zone_outline
from groundctl.core.plan import Parcel, build_plan
from groundctl.errors import CheckFailure, Conflict, InputError, NoRouteError, NotFound, PlanRefused, ValidationErrors
from groundctl.runtime import tracking
from groundctl.runtime.calibration import calibration_for
from groundctl.runtime.events import DeliveryEvent
from groundctl.runtime.handoff_tables import Confirmation
from groundctl.runtime.store import Delivery, Event, Zone
from groundctl.runtime.verdicts import verdict_for

PROBLEMS = ("not_received", "damaged", "wrong_place")
ANSWERS = ("received",) + PROBLEMS
RESOLUTIONS = ("redelivered", "refunded", "rejected", "other")
MESSAGE_MAX = 1000
# the drone is shown from dispatch until the parcel leaves it: afterwards it is flying home, which is not
# the recipient's business, and before dispatch there is no drone of theirs
APPROACH_STATES = ("dispatched", "taking_off", "en_route", "at_zone", "lowering")
PUBLIC_EVENTS = ("planned", "dispatched", "taking_off", "en_route", "at_zone", "lowering", "released", "returning",
                 "landed", "aborted", "failed", "instructions_changed", "zone_changed", "confirmed", "disputed")


def unconfirmed_after_s(settings) -> float:
    return float(settings.unconfirmed_after_s)


def confirmation_view(c: Confirmation | None) -> dict | None:
    if c is None:
        return None
    return {"status": c.status, "message": c.message, "via": c.via, "time": c.created_at.isoformat(),
            "dispute": c.status in PROBLEMS,
            "resolved_at": c.resolved_at.isoformat() if c.resolved_at else None,
            "resolution": c.resolution, "resolution_note": c.resolution_note}


def claim_planned(s, delivery_id: int) -> bool:
    """Take the delivery for this transaction if it is still planned; False if it is not.

    A write first, then the reads: on PostgreSQL the UPDATE locks the row (a concurrent dispatch waits,
    then finds it no longer matches or sees the change); on SQLite it takes the database's write lock, so
    what is read next is the latest and nobody can commit in between. A dispatch that claims the same way
    can never fly a plan that a change of mind has just replaced."""
    r = s.execute(update(Delivery).where(Delivery.id == delivery_id, Delivery.state == "planned")
                  .values(state=Delivery.state))
    return r.rowcount == 1


def released_at(s, delivery_id: int) -> datetime | None:
    return s.scalar(select(Event.time).where(Event.delivery_id == delivery_id, Event.kind == "released"))


def delivery_fields(s, d: Delivery, events: list, delivered: bool, settings, now: datetime) -> dict:
    """What the delivery view (operator and recipient) adds: the tracking link, the recipient's answer,
    and whether a delivered parcel has waited longer than the settings allow for one."""
    c = s.get(Confirmation, d.id)
    rel = next((e.time for e in events if e.kind == "released"), None)
    overdue = (c is None and delivered and rel is not None
               and now - rel >= timedelta(seconds=unconfirmed_after_s(settings)))
    return {"tracking_url": tracking.tracking_url(s, d.id, events=events), "confirmation": confirmation_view(c),
            "unconfirmed_overdue": bool(overdue)}


class HandoffService:
    def __init__(self, settings, store, fleet, airspace, zones, deliveries) -> None:
        self.settings = settings
        self.store = store
        self.fleet = fleet
        self.airspace = airspace
        self.zones = zones
        self.deliveries = deliveries
        self.now = settings.clock
        # the links this database's deliveries get: made with this secret, valid this long, at this address
        tracking.configure(store.engine, data_dir=settings.data_dir, link_days=settings.tracking_link_days,
                           public_url=settings.public_url or None, clock=settings.clock)

    # -- the tracking page ----------------------------------------------------------------------------
    def delivery_for_token(self, token: str) -> int:
        with self.store.session() as s:
            did = tracking.delivery_for_token(s, token)
        if did is None:
            raise NotFound("no such tracking link (wrong, revoked or expired)", field="token")
        return did

    def track(self, token: str) -> dict:
        """Everything the tracking page shows, for the one delivery the link opens."""
        with self.store.session() as s:
            did = tracking.delivery_for_token(s, token)
            if did is None:
                raise NotFound("no such tracking link (wrong, revoked or expired)", field="token")
            d = s.get(Delivery, did)
            view = self.deliveries.view(s, d, operator=False)
            c = s.get(Confirmation, did)
            zones = []
            if d.state == "planned":
                zones = [{"id": z.id, "name": z.name}
                         for z in s.scalars(select(Zone).where(Zone.recipient_id == d.recipient_id).order_by(Zone.id))
                         if not self.zones.view(z)["stale"]]
            events = [{"kind": e.kind, "time": e.time.isoformat()} for e in self.store.events(s, did)
                      if e.kind in PUBLIC_EVENTS]
            kinds = {e["kind"] for e in events}
            drone = None
            prog = self.deliveries.progress.get(did)
            if (d.state in APPROACH_STATES and "released" not in kinds and prog and prog.get("delivery") == did
                    and prog.get("vehicle") == d.vehicle and prog.get("lat") is not None):
                drone = {k: prog.get(k) for k in ("lat", "lon", "alt_rel_m", "heading_deg", "groundspeed_mps",
                                                  "phase", "time", "eta_to_zone_s")}
            expires = tracking.expires_at(s, did)
            zone = d.zone or {}
            route = d.route or []
            return {
                "delivery": did, "state": d.state, "created_at": d.created_at.isoformat(),
                "eta": view.get("eta"), "eta_promised": view.get("eta_promised"),
                "zone": {**{k: zone.get(k) for k in ("name", "lat", "lon", "clear_radius_m")},
                         "polygon": outline_geojson(zone["polygon"]) if zone.get("polygon") else None},
                "zone_id": d.zone_id, "instructions": zone.get("instructions"),
                # where the drone comes from: the hub is on the public map anyway
                "hub": {"lon": route[0][0], "lat": route[0][1]} if route else None,
                "route": route, "drone": drone,
                "delivered": view.get("delivered"), "outcome": view.get("outcome"),
                "proof_of_delivery": view.get("proof_of_delivery"),
                "awaiting_clearance": bool(view.get("awaiting_clearance", False)),
                "can_change": d.state == "planned", "zones": zones,
                "can_confirm": c is None and "released" in kinds,
                "confirmation": confirmation_view(c),
                "events": events, "link_expires_at": expires.isoformat() if expires else None,
            }

    # -- changing one's mind --------------------------------------------------------------------------
    def change(self, delivery_id: int, recipient_id: int | None, *, zone_id: int | None = None,
               instructions: str | None = None, set_instructions: bool = False, via: str) -> dict:
        """Until dispatch: other drop instructions, or another of the recipient's valid zones (planned and
        checked again; a plan that would be refused leaves the delivery as it was). recipient_id None means
        the caller holds the delivery's link, which is already proof enough."""
        if zone_id is None and not set_instructions:
            raise InputError("give zone_id or instructions (or both)", field="body")
        if instructions is not None and len(instructions) > 2000:
            raise InputError("at most 2000 characters", field="instructions")
        with self.store.session() as s:
            d = self.deliveries.own(s, recipient_id, delivery_id)
            self._refuse_unless_planned(d)
            before = (d.zone_id, dict(d.zone or {}), d.airspace_version)
            parcel, method, old_hub = Parcel.model_validate(d.parcel), d.method, d.hub
            moving = zone_id is not None and zone_id != d.zone_id
            if moving:
                z = self.zones.own(s, d.recipient_id, zone_id)  # another recipient's zone is a missing one
                if self.zones.view(z)["stale"]:
                    raise Conflict(f"zone {zone_id} is stale; confirm it first (POST /api/v1/zones/{zone_id}/confirm)",
                                   field="zone_id")
                try:
                    outline = zone_outline(z.polygon) if z.polygon else None
                except InputError as e:
                    raise Conflict(f"zone {zone_id} has an invalid outline ({e}); replace it first",
                                   field="zone_id") from None
                zone = LandingZone(name=z.name, lat=z.lat, lon=z.lon, clear_radius_m=z.clear_radius_m,
                                   elevation_m=z.elevation_m, polygon=outline, contact=z.contact,
                                   instructions=instructions if set_instructions else z.instructions)
                hub = z.hub or old_hub
            else:
                zone = LandingZone.model_validate({**before[1], "instructions": instructions})
                hub = old_hub
        summary = route = verdict = None
        version = before[2]
        airframe = None
        if moving:
            # planning is the expensive part: done outside any transaction, then written only if nothing
            # changed meanwhile (optimistic: a dispatch or another change in between wins)
            fleet = self.fleet.current()
            version, airspace = self.airspace.current()
            if hub not in {h.name for h in fleet.hubs}:
                hub = old_hub
            try:
                plan = build_plan(airspace, fleet, hub, zone, parcel, method=method,
                                  planner=self.airspace.planner(version, fleet.hub(hub)))
            except ValidationErrors as e:
                raise PlanRefused([CheckFailure("plan", f"{x.field}: {x.reason}") for x in e.errors]) from None
            except (InputError, NoRouteError) as e:
                raise PlanRefused([CheckFailure("route" if isinstance(e, NoRouteError) else "plan", str(e))]) from None
            v = verdict_for(plan, self.airspace.weather(), self.now(), airspace,
                            calibration_for(self.store, plan.airframe.name, "vehicle"))
            if not v.go:
                raise PlanRefused([CheckFailure(f["check"], f["message"]) for f in v.failures])
            summary, airframe, verdict = plan.summary(), plan.airframe.name, {"go": True, "failures": [],
                                                                               "detail": v.detail}
            route = [list(pt) for pt in plan.route_out.points_ll]
        now = self.now()
        with self.store.session() as s:
            d = self.deliveries.own(s, recipient_id, delivery_id)
            if not claim_planned(s, delivery_id):
                s.refresh(d)
                self._refuse_unless_planned(d)
            s.refresh(d)  # as it is now that no dispatch can slip in
            if (d.zone_id, d.zone, d.airspace_version) != before:
                raise Conflict(f"delivery {delivery_id} was changed meanwhile; read it again and retry",
                               field="delivery_id")
            old_zone_id = d.zone_id
            d.zone = zone.model_dump(mode="json")
            if moving:
                d.zone_id, d.hub, d.airframe, d.airspace_version = zone_id, hub, airframe, version
                d.summary, d.route, d.verdict = summary, route, verdict
                self.store.append(s, d.id, DeliveryEvent(
                    "zone_changed", time=now, message=f"the recipient moved the drop to zone {zone_id} ({zone.name})",
                    data={"from_zone_id": old_zone_id, "to_zone_id": zone_id, "via": via, "hub": hub,
                          "distance_out_m": summary.get("distance_out_m")}))
            if set_instructions and (instructions or None) != (before[1].get("instructions") or None):
                # the text itself lives in the delivery's zone snapshot, where erasing the recipient finds it;
                # events keep only that it changed
                self.store.append(s, d.id, DeliveryEvent("instructions_changed", time=now,
                                                         message="the recipient changed the drop instructions",
                                                         data={"via": via}))
            return self.deliveries.view(s, d, operator=False)

    @staticmethod
    def _refuse_unless_planned(d: Delivery) -> None:
        if d.state != "planned":
            why = ("it is already on its way: the drone carries the plan it was given"
                   if d.state not in ("refused", "aborted", "failed") else "it will not fly")
            raise Conflict(f"delivery {d.id} is {d.state}; it can be changed only before dispatch ({why})",
                           field="delivery_id")

    # -- confirmation and disputes --------------------------------------------------------------------
    def confirm(self, delivery_id: int, recipient_id: int | None, status: str, message: str, via: str) -> dict:
        if status not in ANSWERS:
            raise InputError(f"must be one of {', '.join(ANSWERS)}", field="status")
        if len(message) > MESSAGE_MAX:
            raise InputError(f"at most {MESSAGE_MAX} characters", field="message")
        now = self.now()
        with self.store.session() as s:
            d = self.deliveries.own(s, recipient_id, delivery_id)
            if released_at(s, d.id) is None:
                raise Conflict(f"delivery {d.id} is {d.state}; it can be confirmed or disputed once the parcel "
                               "has been released", field="delivery_id")
            old = s.get(Confirmation, d.id)
            if old is not None:
                raise Conflict(f"delivery {d.id} was already answered ({old.status}) at {old.created_at.isoformat()}",
                               field="delivery_id")
            try:
                with s.begin_nested():
                    s.add(Confirmation(delivery_id=d.id, status=status, message=message, via=via, created_at=now))
                    s.flush()
            except IntegrityError:  # the other tab was faster
                raise Conflict(f"delivery {d.id} was already answered", field="delivery_id") from None
            kind = "confirmed" if status == "received" else "disputed"
            # the recipient's words stay in the confirmation row (erasure blanks them there), not in events
            self.store.append(s, d.id, DeliveryEvent(kind, time=now, message=status,
                                                     data={"status": status, "via": via}))
            return confirmation_view(s.get(Confirmation, d.id))

    def disputes(self, status: str, limit: int, offset: int) -> dict:
        conds = [Confirmation.status.in_(PROBLEMS)]
        if status == "open":
            conds.append(Confirmation.resolved_at.is_(None))
        elif status == "resolved":
            conds.append(Confirmation.resolved_at.is_not(None))
        with self.store.session() as s:
            total = s.scalar(select(func.count()).select_from(Confirmation).where(*conds)) or 0
            rows = list(s.scalars(select(Confirmation).where(*conds)
                                  .order_by(Confirmation.created_at, Confirmation.delivery_id)
                                  .limit(limit).offset(offset)))
            items = []
            for c in rows:
                d = s.get(Delivery, c.delivery_id)
                items.append({"delivery": c.delivery_id, "recipient_id": d.recipient_id if d else None,
                              "zone_id": d.zone_id if d else None, "state": d.state if d else None,
                              "proof_of_delivery": self.deliveries.view(s, d, operator=False)["proof_of_delivery"]
                              if d else None, **confirmation_view(c)})
        return {"items": items, "total": total, "limit": limit, "offset": offset}

    def resolve(self, delivery_id: int, resolution: str, note: str) -> dict:
        if resolution not in RESOLUTIONS:
            raise InputError(f"must be one of {', '.join(RESOLUTIONS)}", field="resolution")
        now = self.now()
        with self.store.session() as s:
            c = s.get(Confirmation, delivery_id)
            if c is None or c.status not in PROBLEMS:
                raise NotFound(f"no dispute about delivery {delivery_id}", field="delivery_id")
            if c.resolved_at is not None:
                raise Conflict(f"the dispute about delivery {delivery_id} was resolved at {c.resolved_at.isoformat()}",
                               field="delivery_id")
            c.resolved_at, c.resolution, c.resolution_note = now, resolution, note
            self.store.append(s, delivery_id, DeliveryEvent("dispute_resolved", time=now, message=resolution,
                                                            data={"resolution": resolution}))
            return confirmation_view(c)

    def unconfirmed(self, limit: int, offset: int) -> dict:
        """Delivered parcels nobody confirmed or disputed within the configured time, oldest first.

        Most recipients never answer, so this list only grows: it is found with two queries over ids and
        small event rows, and only the page asked for is loaded."""
        now = self.now()
        cutoff = now - timedelta(seconds=unconfirmed_after_s(self.settings))
        with self.store.session() as s:
            q = (select(Event.delivery_id, Event.time)
                 .outerjoin(Confirmation, Confirmation.delivery_id == Event.delivery_id)
                 .where(Event.kind == "released", Event.time <= cutoff, Confirmation.delivery_id.is_(None))
                 .order_by(Event.time, Event.delivery_id))
            released = list(s.execute(q))
            ids = [did for did, _ in released]
            failed, reported = set(), {}
            for did, kind, data in s.execute(select(Event.delivery_id, Event.kind, Event.data)
                                             .where(Event.delivery_id.in_(ids),
                                                    Event.kind.in_(("report", "drop_failed")))) if ids else ():
                if kind == "drop_failed":
                    failed.add(did)
                else:
                    reported[did] = data or {}
            # as the delivery view judges "delivered": the report's word on the parcel, else no failed drop;
            # a failed drop is the operator's incident, not the recipient's to confirm
            delivered = [(did, rel) for did, rel in released
                         if (reported[did].get("parcel") == "delivered" if "parcel" in reported.get(did, {})
                             else did not in failed)]
            page = delivered[offset:offset + limit]
            rows = {d.id: d for d in s.scalars(select(Delivery).where(Delivery.id.in_([p[0] for p in page])))} \
                if page else {}
            items = [{"delivery": did, "recipient_id": rows[did].recipient_id, "zone_id": rows[did].zone_id,
                      "released_at": rel.isoformat(), "state": rows[did].state,
                      "waiting_s": round((now - rel).total_seconds(), 1)} for did, rel in page]
        return {"items": items, "total": len(delivered), "limit": limit, "offset": offset,
                "unconfirmed_after_s": unconfirmed_after_s(self.settings)}

