"""Recipients' landing zones: every reason a zone cannot be served, at once, before anything is stored."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from pydantic import ValidationError
from shapely.geometry import Point, Polygon
from sqlalchemy import func, select

from groundctl.core.energy import plan_energy
from groundctl.core.fleet import (LandingZone, outline_geojson, pydantic_to_input_error, validate_landing_zone,
                                  zone_outline)
from groundctl.core.plan import Parcel, build_plan, choose_airframe
from groundctl.errors import Conflict, InputError, NoRouteError, NotFound, ValidationErrors
from groundctl.runtime.services.airspace import AirspaceService
from groundctl.runtime.services.fleet import FleetService
from groundctl.runtime.services.settings import Settings
from groundctl.runtime.store import IN_FLIGHT_STATES, Delivery, Recipient, Store, Zone


class ZoneService:
    def __init__(self, settings: Settings, store: Store, fleet: FleetService, airspace: AirspaceService) -> None:
        self.settings = settings
        self.store = store
        self.fleet = fleet
        self.airspace = airspace
        self.now = settings.clock

    def check(self, body: dict) -> tuple[LandingZone, str, dict]:
        """Every reason a zone cannot be served, at once; else (zone, serving hub, reach per hub)."""
        errors: list[InputError] = []
        poly_ring = None
        if body.get("polygon") is not None:
            try:
                ring = zone_outline(body["polygon"], "polygon")
                if not Polygon(ring).covers(Point(body["lon"], body["lat"])):
                    errors.append(InputError("the outline does not contain the centre (lat, lon)", field="polygon"))
                else:
                    poly_ring = ring
            except InputError as e:
                errors.append(e)
        try:
            zone = LandingZone(name=body["name"], lat=body["lat"], lon=body["lon"],
                               clear_radius_m=body["clear_radius_m"], elevation_m=body.get("elevation_m"),
                               polygon=poly_ring, instructions=body.get("instructions"), contact=body.get("contact"))
        except ValidationError as e:
            err = pydantic_to_input_error(e)
            errors += err.errors if isinstance(err, ValidationErrors) else [err]
            raise ValidationErrors(errors) if len(errors) > 1 else errors[0]
        fleet = self.fleet.current()
        version, airspace = self.airspace.current()
        ops = fleet.operations
        parcel = Parcel(mass_kg=ops.reference_parcel_kg) if ops.reference_parcel_kg > 0 else Parcel(mass_kg=0.001)
        if not fleet.hubs:
            errors.append(InputError("no hub in the fleet can serve any zone", field="position"))
        # the airframe a reference parcel would fly on from each hub sets the clear-radius floor and range
        frames = {h.name: fleet.airframe(choose_airframe(fleet, h, parcel, ops.drop_method)) for h in fleet.hubs}
        smallest = min(frames.values(), key=lambda a: a.min_clear_radius_m, default=None)
        try:
            validate_landing_zone(zone, airspace, ops, smallest, field="zone", outline_field="polygon")
        except ValidationErrors as e:
            errors += e.errors
        except InputError as e:
            errors.append(e)
        geometry_ok = not any(e.field and (e.field.endswith("position") or e.field.startswith("polygon"))
                              for e in errors)
        reach: dict[str, Any] = {}
        best: tuple[float, str] | None = None
        if geometry_ok and fleet.hubs:
            reasons = []
            for hub in fleet.hubs:
                try:
                    plan = build_plan(airspace, fleet, hub.name, zone, parcel, airframe_name=frames[hub.name].name,
                                      planner=self.airspace.planner(version, hub, temporary=False))
                except NoRouteError as e:
                    reach[hub.name] = {"ok": False, "reason": e.reason}
                    reasons.append(f"hub {hub.name!r}: {e.reason}")
                    continue
                except InputError as e:
                    reach[hub.name] = {"ok": False, "reason": e.reason}
                    continue  # already reported by validate_landing_zone (e.g. radius)
                # range is a property of the zone, not of today's wind: still air, reference parcel
                e = plan_energy(plan, None, limits=False)  # the margin is all a range check needs
                ok = e.ok
                reach[hub.name] = {"ok": ok, "round_trip_m": round(plan.distance_m, 1), "airframe": plan.airframe.name,
                                   "energy_needed_wh": round(e.needed_wh, 1),
                                   "energy_budget_wh": round(e.usable_wh - e.reserve_wh, 1)}
                if ok and (best is None or plan.distance_m < best[0]):
                    best = (plan.distance_m, hub.name)
                if not ok:
                    reasons.append(f"hub {hub.name!r}: out of range: a {plan.distance_m / 1000:.1f} km round trip with a "
                                   f"{parcel.mass_kg:g} kg reference parcel needs {e.needed_wh:.0f} Wh plus "
                                   f"{e.uncertainty_wh:.0f} Wh for model error, {e.usable_wh - e.reserve_wh:.0f} Wh "
                                   "usable after the reserve")
            if best is None and reasons:
                errors.append(InputError("no hub can reach this zone and return: " + " | ".join(reasons),
                                         field="zone.position"))
        if errors:
            raise errors[0] if len(errors) == 1 else ValidationErrors(errors)
        assert best is not None
        return zone, best[1], reach

    def view(self, z: Zone) -> dict:
        ops = self.fleet.current().operations
        stale_at = z.confirmed_at + timedelta(days=ops.zone_stale_after_days)
        return {"id": z.id, "name": z.name, "lat": z.lat, "lon": z.lon, "clear_radius_m": z.clear_radius_m,
                "elevation_m": z.elevation_m, "polygon": z.polygon, "instructions": z.instructions,
                "contact": z.contact, "hub": z.hub, "reach": z.reach,
                "confirmed_at": z.confirmed_at.isoformat(), "stale_at": stale_at.isoformat(),
                "stale": self.now() >= stale_at, "created_at": z.created_at.isoformat(),
                "updated_at": z.updated_at.isoformat()}

    def own(self, s, recipient_id: int | None, zone_id: int) -> Zone:
        z = s.get(Zone, zone_id)
        # another recipient's zone is indistinguishable from a missing one: 404, never 403
        if z is None or (recipient_id is not None and z.recipient_id != recipient_id):
            raise NotFound(f"zone {zone_id} not found", field="zone_id")
        return z

    def create(self, recipient_id: int, body: dict) -> dict:
        zone, hub, reach = self.check(body)  # raises before anything is written
        now = self.now()
        with self.store.session() as s:
            self._within_quota(s, recipient_id)
            z = Zone(recipient_id=recipient_id, name=zone.name, lat=zone.lat, lon=zone.lon,
                     clear_radius_m=zone.clear_radius_m, elevation_m=zone.elevation_m, polygon=outline_geojson(zone.polygon),
                     instructions=zone.instructions, contact=zone.contact, hub=hub, reach=reach,
                     confirmed_at=now, created_at=now, updated_at=now)
            s.add(z)
            s.flush()
            return self.view(z)

    def _within_quota(self, s, recipient_id: int) -> None:
        """Counted in the writing transaction, with the recipient's row locked (PostgreSQL), so that
        concurrent creates on several API processes cannot pass the quota together."""
        s.get(Recipient, recipient_id, with_for_update=True)
        quota = self.settings.max_zones_per_recipient
        n = s.scalar(select(func.count()).select_from(Zone).where(Zone.recipient_id == recipient_id)) or 0
        if n >= quota:
            raise Conflict(f"quota reached: at most {quota} landing zones per recipient; delete one first",
                           field="zones")

    def update(self, recipient_id: int, zone_id: int, body: dict) -> dict:
        with self.store.session() as s:
            self.own(s, recipient_id, zone_id)
        zone, hub, reach = self.check(body)
        now = self.now()
        with self.store.session() as s:
            z = self.own(s, recipient_id, zone_id)
            self.refuse_if_busy(s, zone_id, "change")
            for k in ("name", "lat", "lon", "clear_radius_m", "elevation_m", "instructions", "contact"):
                setattr(z, k, getattr(zone, k))
            z.polygon, z.hub, z.reach = outline_geojson(zone.polygon), hub, reach
            z.updated_at = z.confirmed_at = now  # a fresh write is a confirmation
            return self.view(z)

    def refuse_if_busy(self, s, zone_id: int, verb: str) -> None:
        busy = s.scalar(select(Delivery.id).where(Delivery.zone_id == zone_id,
                                                  Delivery.state.in_(IN_FLIGHT_STATES)))
        if busy is not None:
            raise Conflict(f"cannot {verb} the zone while delivery {busy} is on its way to it", field="zone_id")

    def confirm(self, recipient_id: int, zone_id: int) -> dict:
        with self.store.session() as s:
            z = self.own(s, recipient_id, zone_id)
            body = {"name": z.name, "lat": z.lat, "lon": z.lon, "clear_radius_m": z.clear_radius_m,
                    "elevation_m": z.elevation_m, "polygon": z.polygon, "instructions": z.instructions,
                    "contact": z.contact}
        # the airspace or fleet may have changed since the zone was written: confirm re-validates
        _, hub, reach = self.check(body)
        with self.store.session() as s:
            z = self.own(s, recipient_id, zone_id)
            z.confirmed_at, z.hub, z.reach = self.now(), hub, reach
            return self.view(z)

    def delete(self, recipient_id: int, zone_id: int) -> None:
        with self.store.session() as s:
            z = self.own(s, recipient_id, zone_id)
            self.refuse_if_busy(s, zone_id, "delete")
            s.delete(z)

    def get(self, recipient_id: int | None, zone_id: int) -> dict:
        with self.store.session() as s:
            return self.view(self.own(s, recipient_id, zone_id))

    def list(self, recipient_id: int | None, limit: int, offset: int) -> dict:
        with self.store.session() as s:
            q = select(Zone)
            cq = select(func.count()).select_from(Zone)
            if recipient_id is not None:
                q, cq = q.where(Zone.recipient_id == recipient_id), cq.where(Zone.recipient_id == recipient_id)
            total = s.scalar(cq) or 0
            rows = list(s.scalars(q.order_by(Zone.id).limit(limit).offset(offset)))
            return {"items": [self.view(z) for z in rows], "total": total, "limit": limit, "offset": offset}
