"""Deliveries: planning one (the plan and its verdict, stored with the event that says so) and the views
operators and recipients read. Flying them is the flight supervisor's (services/flights.py)."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError
from sqlalchemy import func, select

from groundctl.core.fleet import LandingZone, pydantic_to_input_error, zone_outline
from groundctl.core.geo import geodesic_distance_m
from groundctl.core.plan import FlightPlan, Parcel, build_plan
from groundctl.errors import Conflict, InputError, NoRouteError, NotFound, ValidationErrors
from groundctl.runtime.attended import attended_view
from groundctl.runtime.calibration import calibration_for
from groundctl.runtime import tracking
from groundctl.runtime.events import DeliveryEvent
from groundctl.runtime.services.airspace import AirspaceService
from groundctl.runtime.services.fleet import FleetService
from groundctl.runtime.services.handoff import delivery_fields
from groundctl.runtime.services.settings import Settings
from groundctl.runtime.services.zones import ZoneService
from groundctl.runtime.store import IN_FLIGHT_STATES, Delivery, Store
from groundctl.runtime.verdicts import time_to_drop_s, verdict_for


class DeliveryService:
    def __init__(self, settings: Settings, store: Store, fleet: FleetService, airspace: AirspaceService,
                 zones: ZoneService, progress: dict[int, dict]) -> None:
        self.settings = settings
        self.store = store
        self.fleet = fleet
        self.airspace = airspace
        self.zones = zones
        self.progress = progress  # delivery id -> latest progress, written by the flight supervisor
        self.now = settings.clock

    def plan_for(self, d: Delivery) -> FlightPlan:
        """Rebuild a delivery's plan from what was stored; core is deterministic, so it is the same plan."""
        version, airspace = self.airspace.current(d.airspace_version)
        fleet = self.fleet.current()
        zone = LandingZone.model_validate(d.zone)
        hub = fleet.hub(d.hub)
        return build_plan(airspace, fleet, d.hub, zone, Parcel.model_validate(d.parcel), airframe_name=d.airframe,
                          method=d.method, planner=self.airspace.planner(version, hub))

    def create(self, zone_id: int, parcel: dict, hub: str | None = None, method: str | None = None) -> dict:
        try:
            p = Parcel.model_validate(parcel)
        except ValidationError as e:
            raise pydantic_to_input_error(e, "parcel") from None
        with self.store.session() as s:
            z = self.zones.own(s, None, zone_id)
            view = self.zones.view(z)
            if view["stale"]:
                raise Conflict(f"zone {zone_id} was last confirmed {view['confirmed_at']}; the recipient must "
                               f"reconfirm it (POST /api/v1/zones/{zone_id}/confirm)", field="zone_id")
            try:
                outline = zone_outline(z.polygon) if z.polygon else None
            except InputError as e:  # written before outlines were validated: a reason, not a 500
                raise Conflict(f"zone {zone_id} has an invalid outline ({e}); the recipient must replace it "
                               f"(PUT /api/v1/zones/{zone_id})", field="zone_id") from None
            zone = LandingZone(name=z.name, lat=z.lat, lon=z.lon, clear_radius_m=z.clear_radius_m,
                               elevation_m=z.elevation_m, polygon=outline,
                               instructions=z.instructions, contact=z.contact)
            recipient_id, hub_name = z.recipient_id, hub or z.hub
        fleet = self.fleet.current()
        version, airspace = self.airspace.current()
        if hub_name is None or hub_name not in {h.name for h in fleet.hubs}:
            if hub is not None:
                raise NotFound(f"no hub named {hub!r}", field="hub")
            hub_name = fleet.hubs[0].name if fleet.hubs else None
        if hub_name is None:
            raise Conflict("the fleet has no hub", field="hub")
        failures: list[dict] = []
        plan = None
        verdict: dict = {}
        airframe_name = None
        try:
            plan = build_plan(airspace, fleet, hub_name, zone, p, method=method,
                              planner=self.airspace.planner(version, fleet.hub(hub_name)))
            airframe_name = plan.airframe.name
        except ValidationErrors as e:
            failures += [{"check": "plan", "field": x.field, "message": x.reason} for x in e.errors]
        except (InputError, NoRouteError) as e:
            failures.append({"check": "route" if isinstance(e, NoRouteError) else "plan", "field": e.field,
                             "message": e.reason})
        if plan is not None:
            # no vehicle yet: the airframe's real-aircraft calibration, or none (flagged in the verdict)
            v = verdict_for(plan, self.airspace.weather(), self.now(), airspace,
                            calibration_for(self.store, plan.airframe.name, "vehicle"))
            failures += v.failures
            verdict = v.detail
        state = "refused" if failures else "planned"
        now = self.now()
        with self.store.session() as s:
            d = Delivery(recipient_id=recipient_id, zone_id=zone_id, zone=zone.model_dump(mode="json"),
                         parcel=p.model_dump(mode="json"), hub=hub_name, airframe=airframe_name,
                         method=plan.method if plan else method, airspace_version=version,
                         summary=plan.summary() if plan else None,
                         route=[list(pt) for pt in plan.route_out.points_ll] if plan else None,
                         verdict={"go": not failures, "failures": failures, "detail": verdict},
                         state=state, created_at=now)
            s.add(d)
            s.flush()
            self.store.append(s, d.id, DeliveryEvent(state, time=now, message="; ".join(
                f"{f['check']}: {f['message']}" for f in failures),
                data={"failures": failures} if failures else {"window": self._window(plan)}))
            tracking.ensure_link(s, d.id)  # the recipient's capability link, from planning on (none if refused)
            return self.view(s, d, operator=True)

    def _window(self, plan: FlightPlan) -> dict:
        """The promise a planned delivery makes, counted from its dispatch: the parcel is down no sooner than
        the flight to the drop, and no later than the ETA promised at dispatch plus the on-time grace."""
        ttd = time_to_drop_s(plan)
        latest = self.settings.dispatch_allowance_s + ttd + self.settings.on_time_grace_s
        return {"time_to_drop_s": round(ttd, 1), "after_dispatch_s": [round(ttd, 1), round(latest, 1)]}

    # -- deliveries: views --------------------------------------------------------------------------
    def own(self, s, recipient_id: int | None, delivery_id: int) -> Delivery:
        d = s.get(Delivery, delivery_id)
        if d is None or (recipient_id is not None and d.recipient_id != recipient_id):
            raise NotFound(f"delivery {delivery_id} not found", field="delivery_id")
        return d

    def view(self, s, d: Delivery, operator: bool) -> dict:
        events = self.store.events(s, d.id)
        kinds = [e.kind for e in events]
        by = {e.kind: e for e in events}
        dispatched = by.get("dispatched")
        report = by.get("report")
        eta_promised = dispatched.data.get("eta_promised") if dispatched else None
        eta = None
        if d.state in IN_FLIGHT_STATES and "released" not in kinds:
            prog = self.progress.get(d.id)
            eta = prog.get("eta_to_zone") if prog else None
            eta = eta or eta_promised
        proof = None
        rel = by.get("released")
        rdata = (report.data if report else {}) or {}
        # released is not delivered: a jammed gripper or a parcel left on a roof released too
        parcel_ok = rdata.get("parcel") == "delivered" if "parcel" in rdata else "drop_failed" not in kinds
        if rel is not None and parcel_ok:
            zlat, zlon = d.zone["lat"], d.zone["lon"]
            lat, lon = rel.lat, rel.lon
            if rdata.get("drop_lat") is not None:
                lat, lon = rdata["drop_lat"], rdata["drop_lon"]
            elif "drop_lat" in rdata:
                lat = lon = None  # the report does not vouch for where (released during a link outage)
            dist = geodesic_distance_m(zlon, zlat, lon, lat) if lat is not None and lon is not None else None
            proof = {"time": (rdata.get("drop_time") or rel.time.isoformat()), "lat": lat, "lon": lon,
                     "distance_from_zone_centre_m": None if dist is None else round(dist, 2)}
        view: dict[str, Any] = {
            "id": d.id, "state": d.state, "zone_id": d.zone_id, "zone_name": d.zone.get("name"),
            "created_at": d.created_at.isoformat(), "eta": eta, "eta_promised": eta_promised,
            "delivered": rel is not None and parcel_ok, "proof_of_delivery": proof,
            "outcome": rdata.get("outcome") if report else None,
        }
        view.update(attended_view(d.parcel, events, rdata))  # awaiting_clearance while an attended drop holds
        # tracking_url, the recipient's confirmation or dispute, unconfirmed_overdue
        view.update(delivery_fields(s, d, events, view["delivered"], self.settings, self.now()))
        if operator:
            view.update({
                "recipient_id": d.recipient_id, "zone": d.zone, "parcel": d.parcel, "hub": d.hub,
                "airframe": d.airframe, "method": d.method, "vehicle": d.vehicle,
                "airspace_version": d.airspace_version, "plan": d.summary, "route": d.route,
                "failures": (d.verdict or {}).get("failures", []), "verdict": d.verdict,
                "progress": self.progress.get(d.id),
                # where the parcel ended up (delivered, aboard, misdelivered); "parcel" is what was sent
                "parcel_at": rdata.get("parcel"), "incidents": rdata.get("incidents", []),
                "end": {k: rdata.get(k) for k in ("end_lat", "end_lon", "end_distance_from_hub_m", "end_mode")}
                if report else None,
                "events": [e.to_dict() for e in events],
            })
        else:
            view["events"] = [{"kind": e.kind, "time": e.time.isoformat()} for e in events
                              if e.kind in ("planned", "dispatched", "taking_off", "en_route", "at_zone",
                                            "released", "returning", "landed", "aborted", "failed",
                                            "zone_changed", "instructions_changed", "confirmed", "disputed",
                                            "dispute_resolved")]
        return view

    def get(self, recipient_id: int | None, delivery_id: int) -> dict:
        with self.store.session() as s:
            return self.view(s, self.own(s, recipient_id, delivery_id), recipient_id is None)

    def list(self, recipient_id: int | None, state: str | None, limit: int, offset: int,
                        vehicle: str | None = None) -> dict:
        with self.store.session() as s:
            conds = []
            if recipient_id is not None:
                conds.append(Delivery.recipient_id == recipient_id)
            if state is not None:
                conds.append(Delivery.state == state)
            if vehicle is not None:
                conds.append(Delivery.vehicle == vehicle)
            total = s.scalar(select(func.count()).select_from(Delivery).where(*conds)) or 0
            rows = list(s.scalars(select(Delivery).where(*conds).order_by(Delivery.id.desc()).limit(limit).offset(offset)))
            return {"items": [self.view(s, d, recipient_id is None) for d in rows], "total": total,
                    "limit": limit, "offset": offset}
