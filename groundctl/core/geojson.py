"""Strict GeoJSON geometry parsing with errors that name the field and the reason.

The API and the file loaders both go through here, so a hostile request and a bad file are refused
the same way: never a shapely/GEOS exception, always `field: reason`.
"""

from __future__ import annotations

import math
from typing import Any

import shapely
from shapely.geometry import Point, Polygon, MultiPolygon
from shapely.geometry.base import BaseGeometry

from groundctl.errors import InputError

MAX_VERTICES = 10_000  # per polygon; guards the planner against absurd inputs


def position(value: Any, field: str) -> tuple[float, float]:
    """A GeoJSON position [lon, lat(, alt)] -> (lon, lat), range-checked."""
    if not isinstance(value, (list, tuple)) or not 2 <= len(value) <= 3:
        raise InputError("a position must be [longitude, latitude] or [longitude, latitude, altitude]", field=field)
    for v in value:
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise InputError(f"coordinate {v!r} is not a finite number", field=field)
    lon, lat = float(value[0]), float(value[1])
    if not -180.0 <= lon <= 180.0:
        raise InputError(f"longitude {lon} out of range [-180, 180]", field=field)
    if not -90.0 <= lat <= 90.0:
        raise InputError(f"latitude {lat} out of range [-90, 90]", field=field)
    return lon, lat


def _ring(value: Any, field: str) -> list[tuple[float, float]]:
    if not isinstance(value, list):
        raise InputError("a linear ring must be a list of positions", field=field)
    if len(value) > MAX_VERTICES:
        raise InputError(f"{len(value)} positions, more than the limit of {MAX_VERTICES}", field=field)
    pts = [position(p, f"{field}[{i}]") for i, p in enumerate(value)]
    if len(pts) < 4:
        raise InputError(f"a linear ring needs at least 4 positions (closed triangle), got {len(pts)}", field=field)
    if pts[0] != pts[-1]:
        raise InputError(
            f"ring is not closed: first position {list(pts[0])} differs from last {list(pts[-1])}", field=field
        )
    if len(set(pts[:-1])) < 3:
        raise InputError("ring has fewer than 3 distinct positions", field=field)
    return pts


def _check_valid(geom: BaseGeometry, field: str) -> None:
    if not geom.is_valid:
        reason = shapely.is_valid_reason(geom)
        # GEOS says "Self-intersection[149.1 -35.3]": reformat as "self-intersection at (lon, lat)"
        if "[" in reason:
            kind, _, where = reason.partition("[")
            coords = where.rstrip("]").split()
            reason = f"{kind.strip().lower()} at ({', '.join(coords[:2])})"
        raise InputError(reason, field=field)
    if geom.area <= 0:
        raise InputError("polygon has zero area", field=field)


def polygon(coords: Any, field: str) -> Polygon:
    if not isinstance(coords, list) or not coords:
        raise InputError("polygon coordinates must be a non-empty list of rings", field=field)
    rings = [_ring(r, f"{field}[{i}]") for i, r in enumerate(coords)]
    poly = Polygon(rings[0], rings[1:])
    _check_valid(poly, field)
    return poly


def geometry(obj: Any, field: str, allowed: tuple[str, ...] = ("Polygon", "MultiPolygon", "Point")) -> BaseGeometry:
    """Parse a GeoJSON geometry object of one of the allowed types (lon/lat)."""
    if not isinstance(obj, dict):
        raise InputError("geometry must be a GeoJSON object", field=field)
    gtype = obj.get("type")
    if gtype not in allowed:
        raise InputError(f"geometry type {gtype!r} not allowed here (expected one of {', '.join(allowed)})", field=field)
    coords = obj.get("coordinates")
    if coords is None:
        raise InputError("geometry has no coordinates", field=f"{field}.coordinates")
    cf = f"{field}.coordinates"
    if gtype == "Point":
        return Point(position(coords, cf))
    if gtype == "Polygon":
        return polygon(coords, cf)
    if not isinstance(coords, list) or not coords:
        raise InputError("multipolygon coordinates must be a non-empty list of polygons", field=cf)
    mp = MultiPolygon([polygon(p, f"{cf}[{i}]") for i, p in enumerate(coords)])
    _check_valid(mp, cf)
    return mp


def check_properties(props: Any, allowed: set[str], field: str, required: set[str] = frozenset()) -> dict:
    if props is None:
        props = {}
    if not isinstance(props, dict):
        raise InputError("properties must be an object", field=field)
    unknown = sorted(set(props) - allowed)
    if unknown:
        raise InputError(
            f"unknown propert{'y' if len(unknown) == 1 else 'ies'} {', '.join(map(repr, unknown))}"
            f" (allowed: {', '.join(sorted(allowed))})",
            field=field,
        )
    missing = sorted(required - set(props))
    if missing:
        raise InputError(f"missing required {', '.join(map(repr, missing))}", field=field)
    return props


def number(props: dict, key: str, field: str, *, minimum: float | None = None, maximum: float | None = None,
           exclusive_min: bool = False, default: float | None = None) -> float | None:
    v = props.get(key, default)
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        raise InputError(f"must be a finite number, got {v!r}", field=f"{field}.{key}")
    v = float(v)
    if minimum is not None and (v <= minimum if exclusive_min else v < minimum):
        raise InputError(f"must be {'>' if exclusive_min else '>='} {minimum:g}, got {v:g}", field=f"{field}.{key}")
    if maximum is not None and v > maximum:
        raise InputError(f"must be <= {maximum:g}, got {v:g}", field=f"{field}.{key}")
    return v


def string(props: dict, key: str, field: str, *, required: bool = False, default: str | None = None,
           choices: tuple[str, ...] | None = None, max_len: int = 200) -> str | None:
    v = props.get(key, default)
    if v is None:
        if required:
            raise InputError("is required", field=f"{field}.{key}")
        return None
    if not isinstance(v, str) or not v.strip():
        raise InputError(f"must be a non-empty string, got {v!r}", field=f"{field}.{key}")
    if len(v) > max_len:
        raise InputError(f"longer than {max_len} characters", field=f"{field}.{key}")
    if choices is not None and v not in choices:
        raise InputError(f"{v!r} is not one of {', '.join(choices)}", field=f"{field}.{key}")
    return v


def feature_collection(obj: Any, field: str = "") -> list[dict]:
    if not isinstance(obj, dict) or obj.get("type") != "FeatureCollection":
        raise InputError("expected a GeoJSON FeatureCollection", field=field or "type")
    feats = obj.get("features")
    if not isinstance(feats, list):
        raise InputError("must be a list", field=f"{field}features" if not field else f"{field}.features")
    if not feats:
        raise InputError("the collection is empty", field="features" if not field else f"{field}.features")
    for i, f in enumerate(feats):
        if not isinstance(f, dict) or f.get("type") != "Feature":
            raise InputError("expected a GeoJSON Feature", field=f"features[{i}]")
    return feats
