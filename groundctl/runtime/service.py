"""The ground-station service: recipients, zones, fleet, deliveries and their flights, over the store.

Faces (the HTTP API) call this; it calls core for every decision (zone validation, planning, the
go/no-go verdict) and runtime.fly for flying. Synchronous methods touch only the database and core and
are safe to run in a worker thread; the async ones own flights and live subscribers on the event loop.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import os
import secrets
import threading
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Callable

from pydantic import ValidationError
from shapely.geometry import Point, Polygon
from sqlalchemy import func, select

from groundctl.core.airspace import Airspace, parse_airspace
from groundctl.core.fleet import (Airframe, Fleet, Hub, LandingZone, Vehicle, outline_geojson, parse_fleet,
                                  pydantic_to_input_error, validate_landing_zone, zone_outline)
from groundctl.core.energy import plan_energy
from groundctl.runtime.calibration import calibration_for, flight_from_report
from groundctl.runtime.calibration import record as record_flight
from groundctl.core.geo import geodesic_distance_m
from groundctl.core.plan import FlightPlan, Parcel, build_plan, choose_airframe, make_planner
from groundctl.core.weather import Weather, weather_from_dict, weather_from_values
from groundctl.errors import (CheckFailure, Conflict, GroundctlError, InputError, NoRouteError, NotFound,
                              PlanRefused, ValidationErrors)
from groundctl.runtime.events import DeliveryEvent, Progress
from groundctl.runtime.kpis import kpis
from groundctl.runtime.live import LiveHub
from groundctl.runtime.verdicts import time_to_drop_s, verdict_for
from groundctl.runtime.store import (IN_FLIGHT_STATES, AirspaceVersion, Delivery, FleetItem, Recipient, Store,
                                     Zone, database_url, is_active, token_hash, utcnow)

log = logging.getLogger("groundctl.service")

SCENARIO_DIR = Path(__file__).resolve().parents[2] / "missions" / "cmac"


@dataclass
class Settings:
    data_dir: Path | None = None  # default ./data or $GROUNDCTL_DATA
    database_url: str | None = None  # default $DATABASE_URL, else SQLite in data_dir
    operator_keys: tuple[str, ...] = ()  # default $GROUNDCTL_OPERATOR_KEYS (comma-separated)
    scenario_dir: Path = SCENARIO_DIR  # airspace.geojson + fleet.toml seeding an empty database
    max_body_bytes: int = 1_000_000
    live_hz: float = 10.0
    resume_flights: bool = True
    dispatch_allowance_s: float = 60.0  # promised ETA = dispatch + this (upload, arm) + planned time to drop
    on_time_grace_s: float = 60.0
    # With no weather set by an operator (PUT /api/v1/weather) the verdict would refuse every flight; a
    # development station flying a simulator assumes calm air instead. Turn off where real weather matters.
    assume_calm: bool = False  # only the simulated demo fleet may fly without a weather report
    clock: Callable[[], datetime] = utcnow

    @classmethod
    def from_env(cls, **over: Any) -> "Settings":
        keys = tuple(k.strip() for k in os.environ.get("GROUNDCTL_OPERATOR_KEYS", "").split(",") if k.strip())
        s = cls(operator_keys=keys)
        for k, v in over.items():
            setattr(s, k, v)
        return s


# -- verdicts ----------------------------------------------------------------------------------------

def _fleet_kind_model(kind: str):
    return {"hub": Hub, "airframe": Airframe, "vehicle": Vehicle}[kind]


class Service:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.store = Store(database_url(settings.data_dir, settings.database_url))
        self.now = settings.clock
        self._lock = threading.RLock()
        self._fleet: Fleet | None = None
        self._airspaces: dict[int, Airspace] = {}
        self._airspace_current: int | None = None
        self._planners: dict[tuple, Any] = {}
        self.flights: dict[int, Any] = {}  # delivery id -> DeliveryFlight
        self.tasks: dict[int, asyncio.Task] = {}
        self.progress: dict[int, dict] = {}  # delivery id -> latest progress
        self.live = LiveHub(settings.live_hz)
        self._seed()

    # -- configuration ------------------------------------------------------------------------------
    def _seed(self) -> None:
        """An empty database starts from the scenario's airspace and fleet."""
        import tomllib  # noqa: PLC0415

        with self.store.session() as s:
            if s.scalar(select(func.count()).select_from(AirspaceVersion)) == 0:
                geo = json.loads((self.settings.scenario_dir / "airspace.geojson").read_text())
                parse_airspace(geo)
                s.add(AirspaceVersion(geojson=geo, created_at=self.now()))
            if s.scalar(select(func.count()).select_from(FleetItem)) == 0:
                fleet = parse_fleet(tomllib.loads((self.settings.scenario_dir / "fleet.toml").read_text()))
                for kind, items in (("hub", fleet.hubs), ("airframe", fleet.airframes), ("vehicle", fleet.vehicles)):
                    for it in items:
                        s.add(FleetItem(kind=kind, name=it.name, data=it.model_dump(mode="json")))
                s.add(FleetItem(kind="operations", name="operations", data=fleet.operations.model_dump(mode="json")))

    def weather(self) -> Weather | None:
        with self.store.session() as s:
            row = s.get(FleetItem, ("weather", "current"))
            data = row.data if row is not None else None
        if data is not None:
            return weather_from_dict(data)
        if self.settings.assume_calm:
            return weather_from_values(now=self.now(), wind_mps=0.0, gust_mps=0.0, precip_mmph=0.0,
                                       visibility_m=10_000.0, temp_c=15.0,
                                       source="assumed calm: no weather set (PUT /api/v1/weather)")
        return None

    def set_weather(self, data: dict) -> dict:
        w = weather_from_dict(data)  # refuses bad input, naming the field
        with self.store.session() as s:
            row = s.get(FleetItem, ("weather", "current"))
            if row is None:
                s.add(FleetItem(kind="weather", name="current", data=w.to_dict(), updated_at=self.now()))
            else:
                row.data, row.updated_at = w.to_dict(), self.now()
        return w.to_dict()

    def fleet(self) -> Fleet:
        with self._lock:
            if self._fleet is None:
                with self.store.session() as s:
                    rows = list(s.scalars(select(FleetItem)))
                data: dict[str, Any] = {"hub": [], "airframe": [], "vehicle": []}
                ops = {}
                for r in sorted(rows, key=lambda r: r.name):
                    if r.kind == "operations":
                        ops = r.data
                    elif r.kind in data:
                        data[r.kind].append(r.data)
                self._fleet = Fleet.model_validate({**data, "operations": ops})
            return self._fleet

    def airspace(self, version: int | None = None) -> tuple[int, Airspace]:
        with self._lock:
            if version is None:
                if self._airspace_current is None:
                    with self.store.session() as s:
                        self._airspace_current = s.scalar(select(func.max(AirspaceVersion.id)))
                version = self._airspace_current
            if version not in self._airspaces:
                with self.store.session() as s:
                    row = s.get(AirspaceVersion, version)
                    if row is None:
                        raise NotFound(f"airspace version {version} not found", field="airspace_version")
                    self._airspaces[version] = parse_airspace(row.geojson)
            return version, self._airspaces[version]

    def planner(self, version: int, hub: Hub):
        """Visibility graphs cost tens of milliseconds to build; reuse one per (airspace, hub, ops)."""
        fleet = self.fleet()
        key = (version, hub, fleet.operations)
        with self._lock:
            p = self._planners.get(key)
        if p is None:
            p = make_planner(self.airspace(version)[1], hub, fleet.operations)
            with self._lock:
                self._planners[key] = p
        return p

    def _invalidate_fleet(self) -> None:
        with self._lock:
            self._fleet = None

    def set_airspace(self, geo: Any) -> dict:
        parse_airspace(geo)  # raises InputError naming the feature
        with self.store.session() as s:
            row = AirspaceVersion(geojson=geo, created_at=self.now())
            s.add(row)
            s.flush()
            vid = row.id
        with self._lock:
            self._airspace_current = vid
        return {"version": vid}

    def simulator_links(self) -> tuple[dict[str, str], set[str]]:
        """(vehicle -> connection URL that `serve` gave it for a simulator, vehicles flying right now)."""
        with self.store.session() as s:
            managed = {r.name: r.data for r in s.scalars(select(FleetItem).where(FleetItem.kind == "simulated"))}
            busy = set(s.scalars(select(Delivery.vehicle).where(Delivery.state.in_(IN_FLIGHT_STATES))))
        return managed, busy

    def vehicle_kind(self, vehicle: str) -> str:
        """"sim" for a vehicle `serve` flies on its own simulator, else "vehicle": their energy
        calibrations are kept apart, as they are different machines under one airframe name."""
        managed, _ = self.simulator_links()
        return "sim" if vehicle in managed and managed[vehicle] == self.fleet().vehicle(vehicle).connection else "vehicle"

    def use_simulator(self, vehicle: str, url: str) -> None:
        """Point a vehicle at a simulator, remembering that the link is ours to replace on the next start."""
        v = self.fleet().vehicle(vehicle)
        self.put_fleet_item("vehicle", vehicle, {**v.model_dump(mode="json"), "connection": url})
        with self.store.session() as s:
            row = s.get(FleetItem, ("simulated", vehicle))
            if row is None:
                s.add(FleetItem(kind="simulated", name=vehicle, data=url, updated_at=self.now()))
            else:
                row.data, row.updated_at = url, self.now()

    def fleet_items(self, kind: str) -> list[dict]:
        f = self.fleet()
        items = {"hub": f.hubs, "airframe": f.airframes, "vehicle": f.vehicles}[kind]
        return [it.model_dump(mode="json") for it in items]

    def fleet_item(self, kind: str, name: str) -> dict:
        for it in self.fleet_items(kind):
            if it["name"] == name:
                return it
        raise NotFound(f"no {kind} named {name!r}", field="name")

    def put_fleet_item(self, kind: str, name: str, data: dict) -> tuple[dict, bool]:
        """Create or replace a hub/airframe/vehicle; the whole fleet must stay consistent."""
        model = _fleet_kind_model(kind)
        data = {**data, "name": name}
        try:
            item = model.model_validate(data)
        except ValidationError as e:
            raise pydantic_to_input_error(e) from None
        with self._lock, self.store.session() as s:
            if kind == "vehicle":
                self._refuse_if_flying(s, name)
            existing = s.get(FleetItem, (kind, name))
            created = existing is None
            trial = self._fleet_dict(s)
            trial[kind] = [d for d in trial[kind] if d["name"] != name] + [item.model_dump(mode="json")]
            self._check_fleet(trial)
            if existing is None:
                s.add(FleetItem(kind=kind, name=name, data=item.model_dump(mode="json"), updated_at=self.now()))
            else:
                existing.data = item.model_dump(mode="json")
                existing.updated_at = self.now()
            self._fleet = None
        return item.model_dump(mode="json"), created

    def delete_fleet_item(self, kind: str, name: str) -> None:
        with self._lock, self.store.session() as s:
            row = s.get(FleetItem, (kind, name))
            if row is None:
                raise NotFound(f"no {kind} named {name!r}", field="name")
            if kind == "vehicle":
                self._refuse_if_flying(s, name)
            trial = self._fleet_dict(s)
            trial[kind] = [d for d in trial[kind] if d["name"] != name]
            self._check_fleet(trial, deleting=f"{kind} {name!r}")
            s.delete(row)
            self._fleet = None

    def _fleet_dict(self, s) -> dict:
        out: dict[str, Any] = {"hub": [], "airframe": [], "vehicle": [], "operations": {}}
        for r in s.scalars(select(FleetItem)):
            if r.kind == "operations":
                out["operations"] = r.data
            elif r.kind in out:
                out[r.kind].append(r.data)
        return out

    @staticmethod
    def _check_fleet(d: dict, deleting: str | None = None) -> None:
        try:
            Fleet.model_validate(d)
        except ValidationError as e:
            msg = "; ".join(err["msg"].removeprefix("Value error, ") for err in e.errors())
            if deleting:
                raise Conflict(f"cannot delete {deleting}: {msg}", field="name") from None
            raise Conflict(msg, field="name") from None

    def _refuse_if_flying(self, s, vehicle: str) -> None:
        busy = s.scalar(select(Delivery.id).where(Delivery.vehicle == vehicle, Delivery.state.in_(IN_FLIGHT_STATES)))
        if busy is not None:
            raise Conflict(f"vehicle {vehicle!r} is flying delivery {busy}", field="vehicle")

    # -- recipients ---------------------------------------------------------------------------------
    def register(self, name: str, contact: str | None) -> tuple[dict, str]:
        token = "gct_" + secrets.token_urlsafe(32)
        with self.store.session() as s:
            r = Recipient(name=name, contact=contact, token_hash=token_hash(token), created_at=self.now())
            s.add(r)
            s.flush()
            view = {"id": r.id, "name": r.name, "contact": r.contact, "created_at": r.created_at.isoformat()}
        return view, token

    def recipient_for_token(self, token: str) -> dict | None:
        with self.store.session() as s:
            r = s.scalar(select(Recipient).where(Recipient.token_hash == token_hash(token)))
            if r is None:
                return None
            return {"id": r.id, "name": r.name, "contact": r.contact, "created_at": r.created_at.isoformat()}

    # -- zones --------------------------------------------------------------------------------------
    def check_zone(self, body: dict) -> tuple[LandingZone, str, dict]:
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
        fleet = self.fleet()
        version, airspace = self.airspace()
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
                                      planner=self.planner(version, hub))
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

    def zone_view(self, z: Zone) -> dict:
        ops = self.fleet().operations
        stale_at = z.confirmed_at + timedelta(days=ops.zone_stale_after_days)
        return {"id": z.id, "name": z.name, "lat": z.lat, "lon": z.lon, "clear_radius_m": z.clear_radius_m,
                "elevation_m": z.elevation_m, "polygon": z.polygon, "instructions": z.instructions,
                "contact": z.contact, "hub": z.hub, "reach": z.reach,
                "confirmed_at": z.confirmed_at.isoformat(), "stale_at": stale_at.isoformat(),
                "stale": self.now() >= stale_at, "created_at": z.created_at.isoformat(),
                "updated_at": z.updated_at.isoformat()}

    def _own_zone(self, s, recipient_id: int | None, zone_id: int) -> Zone:
        z = s.get(Zone, zone_id)
        # another recipient's zone is indistinguishable from a missing one: 404, never 403
        if z is None or (recipient_id is not None and z.recipient_id != recipient_id):
            raise NotFound(f"zone {zone_id} not found", field="zone_id")
        return z

    def create_zone(self, recipient_id: int, body: dict) -> dict:
        zone, hub, reach = self.check_zone(body)  # raises before anything is written
        now = self.now()
        with self.store.session() as s:
            z = Zone(recipient_id=recipient_id, name=zone.name, lat=zone.lat, lon=zone.lon,
                     clear_radius_m=zone.clear_radius_m, elevation_m=zone.elevation_m, polygon=outline_geojson(zone.polygon),
                     instructions=zone.instructions, contact=zone.contact, hub=hub, reach=reach,
                     confirmed_at=now, created_at=now, updated_at=now)
            s.add(z)
            s.flush()
            return self.zone_view(z)

    def update_zone(self, recipient_id: int, zone_id: int, body: dict) -> dict:
        with self.store.session() as s:
            self._own_zone(s, recipient_id, zone_id)
        zone, hub, reach = self.check_zone(body)
        now = self.now()
        with self.store.session() as s:
            z = self._own_zone(s, recipient_id, zone_id)
            self._refuse_if_zone_busy(s, zone_id, "change")
            for k in ("name", "lat", "lon", "clear_radius_m", "elevation_m", "instructions", "contact"):
                setattr(z, k, getattr(zone, k))
            z.polygon, z.hub, z.reach = outline_geojson(zone.polygon), hub, reach
            z.updated_at = z.confirmed_at = now  # a fresh write is a confirmation
            return self.zone_view(z)

    def _refuse_if_zone_busy(self, s, zone_id: int, verb: str) -> None:
        busy = s.scalar(select(Delivery.id).where(Delivery.zone_id == zone_id,
                                                  Delivery.state.in_(IN_FLIGHT_STATES)))
        if busy is not None:
            raise Conflict(f"cannot {verb} the zone while delivery {busy} is on its way to it", field="zone_id")

    def confirm_zone(self, recipient_id: int, zone_id: int) -> dict:
        with self.store.session() as s:
            z = self._own_zone(s, recipient_id, zone_id)
            body = {"name": z.name, "lat": z.lat, "lon": z.lon, "clear_radius_m": z.clear_radius_m,
                    "elevation_m": z.elevation_m, "polygon": z.polygon, "instructions": z.instructions,
                    "contact": z.contact}
        # the airspace or fleet may have changed since the zone was written: confirm re-validates
        _, hub, reach = self.check_zone(body)
        with self.store.session() as s:
            z = self._own_zone(s, recipient_id, zone_id)
            z.confirmed_at, z.hub, z.reach = self.now(), hub, reach
            return self.zone_view(z)

    def delete_zone(self, recipient_id: int, zone_id: int) -> None:
        with self.store.session() as s:
            z = self._own_zone(s, recipient_id, zone_id)
            self._refuse_if_zone_busy(s, zone_id, "delete")
            s.delete(z)

    def get_zone(self, recipient_id: int | None, zone_id: int) -> dict:
        with self.store.session() as s:
            return self.zone_view(self._own_zone(s, recipient_id, zone_id))

    def list_zones(self, recipient_id: int | None, limit: int, offset: int) -> dict:
        with self.store.session() as s:
            q = select(Zone)
            cq = select(func.count()).select_from(Zone)
            if recipient_id is not None:
                q, cq = q.where(Zone.recipient_id == recipient_id), cq.where(Zone.recipient_id == recipient_id)
            total = s.scalar(cq) or 0
            rows = list(s.scalars(q.order_by(Zone.id).limit(limit).offset(offset)))
            return {"items": [self.zone_view(z) for z in rows], "total": total, "limit": limit, "offset": offset}

    # -- deliveries: planning -----------------------------------------------------------------------
    def _plan_for(self, d: Delivery) -> FlightPlan:
        """Rebuild a delivery's plan from what was stored; core is deterministic, so it is the same plan."""
        version, airspace = self.airspace(d.airspace_version)
        fleet = self.fleet()
        zone = LandingZone.model_validate(d.zone)
        hub = fleet.hub(d.hub)
        return build_plan(airspace, fleet, d.hub, zone, Parcel.model_validate(d.parcel), airframe_name=d.airframe,
                          method=d.method, planner=self.planner(version, hub))

    def create_delivery(self, zone_id: int, parcel: dict, hub: str | None = None, method: str | None = None) -> dict:
        try:
            p = Parcel.model_validate(parcel)
        except ValidationError as e:
            raise pydantic_to_input_error(e, "parcel") from None
        with self.store.session() as s:
            z = self._own_zone(s, None, zone_id)
            view = self.zone_view(z)
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
        fleet = self.fleet()
        version, airspace = self.airspace()
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
                              planner=self.planner(version, fleet.hub(hub_name)))
            airframe_name = plan.airframe.name
        except ValidationErrors as e:
            failures += [{"check": "plan", "field": x.field, "message": x.reason} for x in e.errors]
        except (InputError, NoRouteError) as e:
            failures.append({"check": "route" if isinstance(e, NoRouteError) else "plan", "field": e.field,
                             "message": e.reason})
        if plan is not None:
            # no vehicle yet: the airframe's real-aircraft calibration, or none (flagged in the verdict)
            v = verdict_for(plan, self.weather(), self.now(), airspace,
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
                f"{f['check']}: {f['message']}" for f in failures), data={"failures": failures} if failures else {}))
            return self.delivery_view(s, d, operator=True)

    # -- deliveries: views --------------------------------------------------------------------------
    def _own_delivery(self, s, recipient_id: int | None, delivery_id: int) -> Delivery:
        d = s.get(Delivery, delivery_id)
        if d is None or (recipient_id is not None and d.recipient_id != recipient_id):
            raise NotFound(f"delivery {delivery_id} not found", field="delivery_id")
        return d

    def delivery_view(self, s, d: Delivery, operator: bool) -> dict:
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
                                            "released", "returning", "landed", "aborted", "failed")]
        return view

    def get_delivery(self, recipient_id: int | None, delivery_id: int) -> dict:
        with self.store.session() as s:
            return self.delivery_view(s, self._own_delivery(s, recipient_id, delivery_id), recipient_id is None)

    def list_deliveries(self, recipient_id: int | None, state: str | None, limit: int, offset: int,
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
            return {"items": [self.delivery_view(s, d, recipient_id is None) for d in rows], "total": total,
                    "limit": limit, "offset": offset}

    # -- deliveries: flying -------------------------------------------------------------------------
    def _pick_vehicle(self, s, d: Delivery, name: str | None) -> Vehicle:
        fleet = self.fleet()
        busy = set(s.scalars(select(Delivery.vehicle).where(Delivery.state.in_(IN_FLIGHT_STATES))))
        if name is not None:
            v = next((v for v in fleet.vehicles if v.name == name), None)
            if v is None:
                raise NotFound(f"no vehicle named {name!r}", field="vehicle")
            problems = []
            if v.hub != d.hub:
                problems.append(f"is based at hub {v.hub!r}, the delivery leaves from {d.hub!r}")
            if v.airframe != d.airframe:
                problems.append(f"is a {v.airframe!r}, the delivery was planned for {d.airframe!r}")
            if not v.connection:
                problems.append("has no MAVLink connection configured")
            if v.name in busy:
                problems.append("is flying another delivery")
            if problems:
                raise Conflict(f"vehicle {name!r} " + "; ".join(problems), field="vehicle")
            return v
        for v in fleet.vehicles:
            if v.hub == d.hub and v.airframe == d.airframe and v.connection and v.name not in busy:
                return v
        raise Conflict(f"no idle {d.airframe!r} with a connection at hub {d.hub!r}", field="vehicle")

    async def dispatch(self, delivery_id: int, vehicle: str | None) -> dict:
        with self.store.session() as s:
            d = self._own_delivery(s, None, delivery_id)
            if d.state != "planned":
                raise Conflict(f"delivery {delivery_id} is {d.state}; only a planned delivery can be dispatched",
                               field="delivery_id")
            z = s.get(Zone, d.zone_id)
            if z is not None and self.zone_view(z)["stale"]:
                raise Conflict(f"zone {d.zone_id} is stale; the recipient must reconfirm it", field="zone_id")
            v = self._pick_vehicle(s, d, vehicle)
            plan = self._plan_for(d)
            now = self.now()
            # the weather at dispatch, not at planning, decides
            verdict = verdict_for(plan, self.weather(), now, self.airspace(d.airspace_version)[1],
                                  calibration_for(self.store, plan.airframe.name, self.vehicle_kind(v.name)))
            if not verdict.go:
                raise PlanRefused([CheckFailure(f["check"], f["message"]) for f in verdict.failures])
            eta = now + timedelta(seconds=self.settings.dispatch_allowance_s + time_to_drop_s(plan))
            d.vehicle = v.name
            self.store.append(s, d.id, DeliveryEvent("dispatched", time=now, message=f"dispatched on {v.name}",
                                                     data={"vehicle": v.name, "connection": v.connection,
                                                           "eta_promised": eta.isoformat()}))
            view = self.delivery_view(s, d, operator=True)
        self._start_flight(delivery_id, plan, v, resume=False, seen=())
        return view

    def _start_flight(self, delivery_id: int, plan: FlightPlan, vehicle: Vehicle, *, resume: bool,
                      seen: tuple[str, ...]) -> None:
        task = asyncio.get_running_loop().create_task(self._fly(delivery_id, plan, vehicle, resume, seen),
                                                      name=f"delivery-{delivery_id}")
        self.tasks[delivery_id] = task

    async def _fly(self, delivery_id: int, plan: FlightPlan, vehicle: Vehicle, resume: bool,
                   seen: tuple[str, ...]) -> None:
        def on_event(ev: DeliveryEvent) -> None:
            self.store.append_event(delivery_id, ev)
            self.live.publish({"type": "event", "delivery": delivery_id, "vehicle": vehicle.name, **ev.to_dict()})

        def on_progress(p: Progress) -> None:
            self._on_progress(delivery_id, vehicle.name, plan, p)

        try:
            from groundctl.runtime.fly import DeliveryFlight  # noqa: PLC0415
            kind = await asyncio.to_thread(self.vehicle_kind, vehicle.name)
            cal = await asyncio.to_thread(calibration_for, self.store, plan.airframe.name, kind)
            weather = self.weather()
            prediction = await asyncio.to_thread(plan_energy, plan, weather, limits=False, calibration=cal)
            flight = DeliveryFlight(plan, vehicle.connection, sysid=vehicle.sysid, on_event=on_event,
                                    on_progress=on_progress, resume=resume, seen_events=seen, prediction=prediction)
            self.flights[delivery_id] = flight
            report = await flight.run()
            sample = flight_from_report(plan.airframe.name, kind, report.energy)
            if sample is not None:
                await asyncio.to_thread(record_flight, self.store, sample, vehicle=vehicle.name, delivery_id=delivery_id)
            data = report.to_dict()
            data.pop("events", None)
            self.store.append_event(delivery_id, DeliveryEvent("report", message=report.outcome, data=data))
        except asyncio.CancelledError:
            # the service is stopping: the flight is not over, and the next start resumes it
            raise
        except Exception as e:  # any failure of the flight machinery ends in a recorded 'failed'
            log.exception("delivery %s failed", delivery_id)
            msg = f"{type(e).__name__}: {e}"
            self.store.append_event(delivery_id, DeliveryEvent("failed", message=msg))
            self.live.publish({"type": "event", "delivery": delivery_id, "vehicle": vehicle.name, "kind": "failed",
                               "message": msg})
        finally:
            self.flights.pop(delivery_id, None)
            self.tasks.pop(delivery_id, None)

    def _on_progress(self, delivery_id: int, vehicle: str, plan: FlightPlan, p: Progress) -> None:
        data = asdict(p)
        now = self.now()
        data.update({"vehicle": vehicle, "delivery": delivery_id, "time": now.isoformat()})
        # the flight's eta_s runs to the landing at the hub; a recipient wants the drop: subtract the way back
        if p.phase in ("preflight", "taking_off", "en_route") and p.distance_to_go_m is not None:
            a = plan.airframe
            to_zone = max(0.0, p.distance_to_go_m - plan.route_back.length_m)
            gs = p.groundspeed_mps if p.groundspeed_mps and p.groundspeed_mps > 1.0 else a.cruise_speed_mps
            lower_s = max(0.0, plan.cruise_alt_m - plan.zone_ground_rel_home_m) / a.descent_speed_mps
            climb_s = 0.0 if p.phase != "preflight" else plan.cruise_alt_m / a.climb_speed_mps
            eta_s = to_zone / gs + lower_s + climb_s
            data["eta_to_zone_s"] = round(eta_s, 1)
            data["eta_to_zone"] = (now + timedelta(seconds=eta_s)).isoformat()
        for k, v in list(data.items()):
            if isinstance(v, float) and not math.isfinite(v):
                data[k] = None
        self.progress[delivery_id] = data
        self.live.update(vehicle, data)

    async def abort(self, delivery_id: int, action: str) -> dict:
        with self.store.session() as s:
            d = self._own_delivery(s, None, delivery_id)
            state, kinds = d.state, self.store.kinds(s, d.id)
        if state == "planned":
            self.store.append_event(delivery_id, DeliveryEvent("aborted", message="cancelled before dispatch",
                                                               data={"action": "cancel"}))
        elif is_active(kinds):
            flight = self.flights.get(delivery_id)
            if flight is None:
                raise Conflict(f"delivery {delivery_id} has no live link to its vehicle right now", field="delivery_id")
            await flight.abort(action)
            # the flight records the abort itself, with the vehicle's position; only if it stays silent
            # (a link that is down, say) is the operator's request recorded here
            for _ in range(30):
                await asyncio.sleep(0.1)
                with self.store.session() as s:
                    if "aborted" in self.store.kinds(s, delivery_id):
                        break
            else:
                self.store.append_event(delivery_id, DeliveryEvent("aborted", message=f"operator abort: {action}",
                                                                   data={"action": action}))
        else:
            raise Conflict(f"delivery {delivery_id} is {state}; nothing to abort", field="delivery_id")
        return self.get_delivery(None, delivery_id)

    async def resume_all(self) -> list[int]:
        """Reconnect to every flight that was in the air when the service stopped."""
        resumed = []
        with self.store.session() as s:
            rows = list(s.scalars(select(Delivery).where(Delivery.state.in_(IN_FLIGHT_STATES + ("aborted",)))))
            todo = [(d, tuple(self.store.kinds(s, d.id))) for d in rows]
        fleet = self.fleet()
        for d, kinds in todo:
            if not is_active(kinds) or d.id in self.tasks:
                continue
            v = next((v for v in fleet.vehicles if v.name == d.vehicle), None)
            if v is None or not v.connection:
                self.store.append_event(d.id, DeliveryEvent("failed", message=f"cannot resume: vehicle {d.vehicle!r} "
                                                            "is no longer in the fleet or has no connection"))
                continue
            try:
                plan = self._plan_for(d)
            except GroundctlError as e:
                self.store.append_event(d.id, DeliveryEvent("failed", message=f"cannot rebuild plan: {e}"))
                continue
            self._start_flight(d.id, plan, v, resume=True, seen=kinds)
            resumed.append(d.id)
        return resumed

    async def stop(self) -> None:
        for t in list(self.tasks.values()):
            t.cancel()
        for t in list(self.tasks.values()):
            try:
                await t
            except (asyncio.CancelledError, Exception):
                pass
        await self.live.stop()

    # -- KPIs ---------------------------------------------------------------------------------------
    def kpis(self, since: datetime | None, until: datetime | None) -> dict:
        return kpis(self.store, since, until, on_time_grace_s=self.settings.on_time_grace_s)

    # -- map ----------------------------------------------------------------------------------------
    def map_data(self, operator: bool) -> dict:
        version, airspace = self.airspace()
        fleet = self.fleet()
        out: dict[str, Any] = {"airspace": airspace.to_geojson(), "airspace_version": version,
                               "hubs": [h.model_dump(mode="json") for h in fleet.hubs], "zones": [], "routes": [],
                               "vehicles": list(self.live.vehicles.values())}
        if operator:
            with self.store.session() as s:
                out["zones"] = [{"id": z.id, "name": z.name, "lat": z.lat, "lon": z.lon,
                                 "clear_radius_m": z.clear_radius_m, "polygon": z.polygon}
                                for z in s.scalars(select(Zone).order_by(Zone.id).limit(5000))]
                rows = s.scalars(select(Delivery).where(Delivery.state.in_(("planned",) + IN_FLIGHT_STATES))
                                 .order_by(Delivery.id.desc()).limit(200))
                out["routes"] = [{"delivery": d.id, "state": d.state, "vehicle": d.vehicle, "points": d.route}
                                 for d in rows if d.route]
        return out
