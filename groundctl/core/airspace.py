"""Airspace: a service area, no-fly zones with altitude bands, and an operating ceiling.

Loaded from GeoJSON (lon/lat), held in a local metric frame for every computation.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

import shapely
from shapely.geometry import Point, Polygon
from shapely.geometry.base import BaseGeometry
from shapely.strtree import STRtree

from groundctl.core import geojson as gj
from groundctl.core.geo import LocalFrame
from groundctl.errors import InputError

AltRef = Literal["agl", "amsl"]

SERVICE_PROPS = {"kind", "name", "ceiling_m", "ceiling_ref", "description"}
ZONE_PROPS = {"kind", "name", "radius_m", "floor_m", "ceiling_m", "altitude_ref", "description"}
CIRCLE_SEGMENTS = 64  # polygon approximation of a circle zone for geometry tests (inflated, see below)


def circle_polygon(center_xy: tuple[float, float], radius_m: float, segments: int = CIRCLE_SEGMENTS) -> Polygon:
    """A polygon that *contains* the circle: vertices on a slightly larger circle, so edges never cut in."""
    r = radius_m / math.cos(math.pi / segments)
    cx, cy = center_xy
    pts = [(cx + r * math.cos(2 * math.pi * i / segments), cy + r * math.sin(2 * math.pi * i / segments))
           for i in range(segments)]
    return Polygon(pts)


@dataclass(frozen=True)
class NoFlyZone:
    name: str
    geometry_ll: BaseGeometry  # Polygon/MultiPolygon, or a Point for a circle
    radius_m: float | None = None
    floor_m: float = 0.0
    ceiling_m: float = math.inf
    altitude_ref: AltRef = "agl"
    description: str | None = None

    @property
    def is_circle(self) -> bool:
        return self.radius_m is not None

    def band_agl(self, ground_amsl_m: float) -> tuple[float, float]:
        if self.altitude_ref == "agl":
            return self.floor_m, self.ceiling_m
        return self.floor_m - ground_amsl_m, self.ceiling_m - ground_amsl_m

    def blocks(self, top_agl_m: float, ground_amsl_m: float) -> bool:
        """Does this zone block a flight that spans ground level to top_agl_m?"""
        floor, ceil = self.band_agl(ground_amsl_m)
        return floor < top_agl_m and ceil > 0.0


@dataclass
class Airspace:
    name: str
    service_area_ll: BaseGeometry
    zones: list[NoFlyZone]
    ceiling_m: float = 120.0  # operating ceiling above ground
    frame: LocalFrame = field(default=None)  # type: ignore[assignment]

    def __post_init__(self) -> None:
        if self.frame is None:
            c = self.service_area_ll.centroid
            self.frame = LocalFrame(round(c.y, 6), round(c.x, 6))

    # -- local-frame geometry, computed once ------------------------------------------------------
    @cached_property
    def service_xy(self) -> BaseGeometry:
        return self.frame.project(self.service_area_ll)

    @cached_property
    def zones_xy(self) -> list[BaseGeometry]:
        out = []
        for z in self.zones:
            if z.is_circle:
                p = self.frame.project(z.geometry_ll)
                out.append(circle_polygon((p.x, p.y), z.radius_m))
            else:
                out.append(self.frame.project(z.geometry_ll))
        return out

    @cached_property
    def tree(self) -> STRtree:
        return STRtree(self.zones_xy)

    def blocking(self, top_agl_m: float, ground_amsl_m: float) -> list[int]:
        """Indices of the zones relevant to a flight up to top_agl_m."""
        return [i for i, z in enumerate(self.zones) if z.blocks(top_agl_m, ground_amsl_m)]

    def zones_hit(self, geom_xy: BaseGeometry, indices: list[int] | None = None, margin_m: float = 0.0) -> list[int]:
        """Indices of zones (optionally restricted) within margin_m of a local-frame geometry (index query)."""
        if margin_m > 0:
            hits = self.tree.query(geom_xy, predicate="dwithin", distance=margin_m)
        else:
            hits = self.tree.query(geom_xy, predicate="intersects")
        allowed = None if indices is None else set(indices)
        return sorted(int(i) for i in hits if allowed is None or int(i) in allowed)

    def to_geojson(self) -> dict:
        feats = [{
            "type": "Feature",
            "properties": {"kind": "service_area", "name": self.name, "ceiling_m": self.ceiling_m, "ceiling_ref": "agl"},
            "geometry": shapely.geometry.mapping(self.service_area_ll),
        }]
        for z in self.zones:
            props: dict[str, Any] = {"kind": "no_fly", "name": z.name, "floor_m": z.floor_m, "altitude_ref": z.altitude_ref}
            if math.isfinite(z.ceiling_m):
                props["ceiling_m"] = z.ceiling_m
            if z.radius_m is not None:
                props["radius_m"] = z.radius_m
            if z.description:
                props["description"] = z.description
            feats.append({"type": "Feature", "properties": props, "geometry": shapely.geometry.mapping(z.geometry_ll)})
        return {"type": "FeatureCollection", "features": feats}


def no_fly_zone(name: str, geometry: Any, p: dict, label: str, *, what: str = "zone",
                max_radius_m: float = 100_000, description: str | None = None) -> NoFlyZone:
    """A zone's geometry and altitude band from a feature's (already checked) properties: a Point needs
    radius_m, nothing else may have one; the ceiling must be above the floor. Errors name the field."""
    pf = f"{label}.properties"
    geom = gj.geometry(geometry, f"{label}.geometry", ("Polygon", "MultiPolygon", "Point"))
    radius = None
    if isinstance(geom, Point):
        if "radius_m" not in p:
            raise InputError(f"a Point {what} needs radius_m", field=f"{pf}.radius_m")
        radius = gj.number(p, "radius_m", pf, minimum=0, exclusive_min=True, maximum=max_radius_m)
    elif "radius_m" in p:
        raise InputError(f"radius_m only applies to a Point {what}", field=f"{pf}.radius_m")
    floor = gj.number(p, "floor_m", pf, default=0.0, minimum=-500, maximum=20_000)
    ceil = gj.number(p, "ceiling_m", pf, maximum=20_000)
    ceil = math.inf if ceil is None else ceil
    ref = gj.string(p, "altitude_ref", pf, default="agl", choices=("agl", "amsl"))
    if ceil <= floor:
        raise InputError(f"ceiling_m {ceil:g} must be above floor_m {floor:g}", field=f"{pf}.ceiling_m")
    return NoFlyZone(name, geom, radius, floor, ceil, ref, description if description is not None else p.get("description"))


def parse_airspace(obj: Any, *, source: str = "airspace") -> Airspace:
    """Validate a GeoJSON FeatureCollection and build an Airspace. Errors name the feature."""
    feats = gj.feature_collection(obj)
    service: list[tuple[str, BaseGeometry, dict]] = []
    zones: list[NoFlyZone] = []
    names: set[str] = set()
    for i, f in enumerate(feats):
        props = f.get("properties") or {}
        label = f"features[{i}]"
        if isinstance(props, dict) and isinstance(props.get("name"), str):
            label = f"features[{i}] ({props['name']})"
        kind = props.get("kind") if isinstance(props, dict) else None
        if kind == "service_area":
            gj.check_properties(props, SERVICE_PROPS, f"{label}.properties")
            geom = gj.geometry(f.get("geometry"), f"{label}.geometry", ("Polygon", "MultiPolygon"))
            ceiling = gj.number(props, "ceiling_m", f"{label}.properties", minimum=0, exclusive_min=True, default=120.0)
            gj.string(props, "ceiling_ref", f"{label}.properties", default="agl", choices=("agl",))
            service.append((gj.string(props, "name", f"{label}.properties", default="service area"), geom, {"ceiling_m": ceiling}))
        elif kind == "no_fly":
            p = gj.check_properties(props, ZONE_PROPS, f"{label}.properties", required={"name"})
            pf = f"{label}.properties"
            name = gj.string(p, "name", pf, required=True)
            if name in names:
                raise InputError(f"duplicate zone name {name!r}", field=f"{pf}.name")
            names.add(name)
            zones.append(no_fly_zone(name, f.get("geometry"), p, label))
        else:
            raise InputError(f"kind must be 'service_area' or 'no_fly', got {kind!r}", field=f"{label}.properties.kind")
    if not service:
        raise InputError("no feature with kind 'service_area'", field=source)
    if len(service) > 1:
        raise InputError("more than one service_area feature; merge them into one MultiPolygon", field=source)
    name, area, extra = service[0]
    return Airspace(name=name, service_area_ll=area, zones=zones, ceiling_m=extra["ceiling_m"])


def load_json(path: str | Path) -> Any:
    """A JSON file; missing, directory, empty, binary and non-UTF-8 files are InputErrors naming it."""
    from groundctl.core.textfile import read_text

    p = Path(path)
    text = read_text(p)
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise InputError(f"not valid JSON: {e.msg} at line {e.lineno} column {e.colno}", field=str(p)) from None
    except RecursionError:
        raise InputError("not usable JSON: nested too deeply", field=str(p)) from None


def load_airspace(path: str | Path) -> Airspace:
    try:
        return parse_airspace(load_json(path), source=str(path))
    except InputError as e:
        if e.field and not e.field.startswith(str(path)):
            raise InputError(e.reason, field=f"{Path(path).name}:{e.field}") from None
        raise
