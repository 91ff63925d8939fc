"""Temporary flight restrictions: a no-fly zone with a start and an end, like a NOTAM (an emergency, an
event, a crane). Written as one GeoJSON Feature:

    {"type": "Feature", "geometry": {"type": "Polygon", ...} | {"type": "Point", ...},
     "properties": {"name": "fire at the depot", "start": "2026-11-30T10:00:00Z", "end": "2026-11-30T16:00:00Z",
                    "floor_m": 0, "ceiling_m": 150, "altitude_ref": "agl", "radius_m": 300, "reason": "..."}}

A restriction affects a flight only while both are in time: the flight's window is from its departure to
its landing, with the dispatch allowance and the plan's uncertainty around it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from shapely.geometry.base import BaseGeometry

from groundctl.core import geojson as gj
from groundctl.core.airspace import NoFlyZone, circle_polygon, no_fly_zone
from groundctl.core.geo import LocalFrame
from groundctl.errors import InputError

PROPS = {"name", "start", "end", "floor_m", "ceiling_m", "altitude_ref", "radius_m", "reason", "description"}
MAX_DURATION = timedelta(days=90)  # a longer closure belongs in the airspace itself


@dataclass(frozen=True)
class Restriction:
    key: str  # stable id: "r<number>" once stored
    zone: NoFlyZone  # geometry and altitude band
    start: datetime
    end: datetime
    reason: str | None = None

    def active(self, t0: datetime, t1: datetime) -> bool:
        """In force at any moment of [t0, t1]?"""
        return self.start < t1 and t0 < self.end

    def geometry_xy(self, frame: LocalFrame) -> BaseGeometry:
        z = self.zone
        if z.is_circle:
            return circle_polygon(frame.to_xy(z.geometry_ll.x, z.geometry_ll.y), z.radius_m)
        return frame.project(z.geometry_ll)

    def geometry_ll(self, frame: LocalFrame) -> BaseGeometry:
        return frame.unproject(self.geometry_xy(frame)) if self.zone.is_circle else self.zone.geometry_ll

    def to_feature(self) -> dict:
        z = self.zone
        props: dict[str, Any] = {"name": z.name, "start": self.start.isoformat(), "end": self.end.isoformat(),
                                 "floor_m": z.floor_m, "altitude_ref": z.altitude_ref}
        if math.isfinite(z.ceiling_m):
            props["ceiling_m"] = z.ceiling_m
        if z.radius_m is not None:
            props["radius_m"] = z.radius_m
        if self.reason:
            props["reason"] = self.reason
        return {"type": "Feature", "id": self.key, "geometry": z.geometry_ll.__geo_interface__, "properties": props}


def _time(props: dict, key: str, field: str) -> datetime:
    v = props.get(key)
    if not isinstance(v, str):
        raise InputError("is required: an ISO 8601 date and time with its offset (2026-11-30T10:00:00Z)",
                         field=f"{field}.{key}")
    try:
        t = datetime.fromisoformat(v.replace("Z", "+00:00"))
    except ValueError:
        raise InputError(f"not an ISO 8601 date and time: {v!r}", field=f"{field}.{key}") from None
    if t.tzinfo is None:
        raise InputError(f"{v!r} has no UTC offset: say Z or +hh:mm, the time is ambiguous without it",
                         field=f"{field}.{key}")
    return t


def parse_restriction(obj: Any, key: str = "new", field: str = "restriction") -> Restriction:
    """One GeoJSON Feature; errors name the field and the reason."""
    if not isinstance(obj, dict) or obj.get("type") != "Feature":
        raise InputError("must be a GeoJSON Feature", field=field)
    pf = f"{field}.properties"
    p = gj.check_properties(obj.get("properties"), PROPS, pf, required={"name", "start", "end"})
    name = gj.string(p, "name", pf, required=True)
    reason = gj.string(p, "reason", pf, max_len=1000) or gj.string(p, "description", pf, max_len=1000)
    zone = no_fly_zone(name, obj.get("geometry"), p, field, what="restriction", max_radius_m=50_000,
                       description=reason)
    start, end = _time(p, "start", pf), _time(p, "end", pf)
    if end <= start:
        raise InputError(f"end {end.isoformat()} must be after start {start.isoformat()}", field=f"{pf}.end")
    if end - start > MAX_DURATION:
        raise InputError(f"lasts {(end - start).days} days; a restriction longer than {MAX_DURATION.days} days "
                         "belongs in the airspace (PUT /api/v1/airspace)", field=f"{pf}.end")
    return Restriction(key, zone, start, end, reason)


def blocking(restrictions: list[Restriction], t0: datetime, t1: datetime, top_agl_m: float,
             ground_amsl_m: float) -> list[Restriction]:
    """Those in force during [t0, t1] whose altitude band reaches a flight from the ground to top_agl_m."""
    return [r for r in restrictions if r.active(t0, t1) and r.zone.blocks(top_agl_m, ground_amsl_m)]


def crossing(route_xy: BaseGeometry, restrictions: list[Restriction], frame: LocalFrame,
             margin_m: float) -> list[Restriction]:
    """The restrictions a route (a LineString in the frame) passes within margin_m of."""
    return [r for r in restrictions if route_xy.distance(r.geometry_xy(frame)) < margin_m]
