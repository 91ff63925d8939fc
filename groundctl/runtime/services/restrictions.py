"""Temporary restrictions: operators add and lift them; planning honours them for their time window at
once (an overlay on the prepared planner, services/airspace.py); planned deliveries that now cross one
are re-planned around it, or refused with the reason. Flights already in the air are the flight
supervisor's to reroute."""

from __future__ import annotations

import logging
import time
from datetime import datetime
from typing import Any, Callable

from shapely.geometry import LineString
from sqlalchemy import select

from groundctl.core.restrictions import Restriction, parse_restriction
from groundctl.errors import Conflict, GroundctlError, NotFound
from groundctl.runtime import restrictions as rs
from groundctl.runtime.events import DeliveryEvent
from groundctl.runtime.services.airspace import AirspaceService
from groundctl.runtime.services.deliveries import DeliveryService
from groundctl.runtime.services.settings import Settings
from groundctl.runtime.store import Delivery, Store
from groundctl.runtime.verdicts import verdict_for


def status(r: Restriction, lifted_at: datetime | None, now: datetime) -> str:
    if lifted_at is not None:
        return "lifted"
    return "upcoming" if now < r.start else "in_force" if now < r.end else "ended"


class RestrictionService:
    def __init__(self, settings: Settings, store: Store, airspace: AirspaceService,
                 deliveries: DeliveryService) -> None:
        self.settings = settings
        self.store = store
        self.airspace = airspace
        self.deliveries = deliveries
        self.now = settings.clock
        # told after every add or lift (the flight supervisor: flights in the air are rerouted at once)
        self.listeners: list[Callable[[], None]] = []

    def _changed(self) -> None:
        for fn in self.listeners:
            try:
                fn()
            except Exception:  # a listener's trouble is not the operator's: the restriction stands
                logging.getLogger(__name__).exception("restriction listener")

    def view(self, row: rs.RestrictionRow) -> dict:
        r = rs.to_restriction(row)
        frame = self.airspace.current()[1].frame
        feature = r.to_feature()
        feature["geometry"] = r.geometry_ll(frame).__geo_interface__ if r.zone.is_circle else feature["geometry"]
        feature["properties"].update({"id": row.id, "status": status(r, row.lifted_at, self.now()),
                                      "lifted_at": row.lifted_at.isoformat() if row.lifted_at else None,
                                      "created_at": row.created_at.isoformat()})
        return feature

    def add(self, feature: Any) -> dict:
        r = parse_restriction(feature)  # refuses bad input, naming the field, before anything is written
        if r.end <= self.now():
            raise Conflict(f"the restriction ended at {r.end.isoformat()}: nothing to restrict", field="restriction.properties.end")
        t0 = time.perf_counter()
        with self.store.session() as s:
            row = rs.RestrictionRow(name=r.zone.name, feature=feature, start=r.start, end=r.end,
                                    created_at=self.now(), updated_at=self.now())
            s.add(row)
            s.flush()
            rid = row.id
        # takes effect for planning now: the next route query lays it over the prepared free space
        self._changed()
        affected = self.replan_planned()
        with self.store.session() as s:
            out = self.view(s.get(rs.RestrictionRow, rid))
        out["properties"]["effect"] = {**affected, "applied_in_s": round(time.perf_counter() - t0, 3)}
        return out

    def lift(self, rid: int) -> dict:
        with self.store.session() as s:
            row = s.get(rs.RestrictionRow, rid)
            if row is None:
                raise NotFound(f"restriction {rid} not found", field="restriction_id")
            if row.lifted_at is not None:
                raise Conflict(f"restriction {rid} was lifted at {row.lifted_at.isoformat()}", field="restriction_id")
            row.lifted_at = row.updated_at = self.now()
        self._changed()
        affected = self.replan_planned()
        with self.store.session() as s:
            out = self.view(s.get(rs.RestrictionRow, rid))
        out["properties"]["effect"] = affected
        return out

    def list(self, include_past: bool = False) -> dict:
        now = self.now()
        with self.store.session() as s:
            q = select(rs.RestrictionRow).order_by(rs.RestrictionRow.id)
            if not include_past:
                q = q.where(rs.RestrictionRow.lifted_at.is_(None), rs.RestrictionRow.end > now)
            return {"type": "FeatureCollection", "features": [self.view(row) for row in s.scalars(q.limit(5000))]}

    def get(self, rid: int) -> dict:
        with self.store.session() as s:
            row = s.get(rs.RestrictionRow, rid)
            if row is None:
                raise NotFound(f"restriction {rid} not found", field="restriction_id")
            return self.view(row)

    def replan_planned(self) -> dict:
        """Every planned (not yet dispatched) delivery planned again on the airspace as it now stands: a new
        route if its old one is no longer the one to fly, refused if none is left."""
        replanned, refused = [], []
        with self.store.session() as s:
            ids = list(s.scalars(select(Delivery.id).where(Delivery.state == "planned")))
        now = self.now()
        for did in ids:
            with self.store.session() as s:
                d = s.get(Delivery, did)
                if d is None or d.state != "planned":
                    continue
                try:
                    plan = self.deliveries.plan_for(d)
                except GroundctlError as e:
                    self.store.append(s, did, DeliveryEvent("refused", time=now, message=f"re-planned after an airspace "
                                                             f"restriction changed: {e}",
                                                             data={"failures": [{"check": "route", "field": e.field,
                                                                                 "message": getattr(e, 'reason', str(e))}]}))
                    refused.append(did)
                    continue
                route = [list(pt) for pt in plan.route_out.points_ll]
                if d.route is not None and _same_route(d.route, route):
                    continue
                old_len = (d.summary["distance_out_m"] + d.summary["distance_back_m"]
                           if isinstance(d.summary, dict) and "distance_out_m" in d.summary else None)
                v = verdict_for(plan, self.airspace.weather(), now, self.airspace.current(d.airspace_version)[1])
                d.route, d.summary = route, plan.summary()
                d.verdict = {"go": not v.failures, "failures": v.failures, "detail": v.detail}
                self.store.append(s, did, DeliveryEvent(
                    "replanned", time=now, message="route changed by a temporary restriction: "
                    f"{plan.distance_m / 1000:.2f} km round trip" + (f" (was {old_len / 1000:.2f} km)" if old_len else ""),
                    data={"distance_m": round(plan.distance_m, 1), "skirted": plan.route_out.skirted}))
                replanned.append(did)
        return {"replanned": replanned, "refused": refused}


def _same_route(a: list, b: list, tol_deg: float = 1e-6) -> bool:
    if len(a) != len(b):
        return False
    return LineString(a).hausdorff_distance(LineString(b)) < tol_deg
