"""Plan file formats: QGroundControl .plan JSON, QGC WPL 110 .waypoints, GeoJSON of a plan.

.plan layout follows QGroundControl's PlanMasterController / MissionController / GeoFenceController /
RallyPointController (fileType "Plan", mission v2 with plannedHomePosition and SimpleItems whose
params carry lat/lon/alt in slots 5-7, geoFence v2 with polygons, circles and breachReturn, rallyPoints
v2). Fence items are written in a canonical order (inclusion polygons, exclusion polygons, circles,
return point), which is also the order groundctl builds them in, so a round trip is exact.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import shapely
from shapely.geometry import LineString, Point, mapping

from groundctl.core import mavcmd as C
from groundctl.core.mission import MissionItem
from groundctl.errors import InputError

FIRMWARE_ARDUPILOT = 3  # MAV_AUTOPILOT_ARDUPILOTMEGA
VEHICLE_MULTIROTOR = 2  # MAV_TYPE_QUADROTOR


def _num(v: float) -> float | None:
    return None if isinstance(v, float) and math.isnan(v) else v


def canonical_fence(items: list[MissionItem]) -> list[MissionItem]:
    """Order fence items as the .plan format stores them; polygons keep their vertex order."""
    groups: dict[int, list[list[MissionItem]]] = {k: [] for k in (5001, 5002, 5003, 5004, 5000)}
    i = 0
    while i < len(items):
        it = items[i]
        if it.command in (C.NAV_FENCE_POLYGON_VERTEX_INCLUSION, C.NAV_FENCE_POLYGON_VERTEX_EXCLUSION):
            n = int(it.param1)
            groups[it.command].append(items[i:i + n])
            i += n
        else:
            groups[it.command].append([it])
            i += 1
    return [it for k in (5001, 5002, 5003, 5004, 5000) for grp in groups[k] for it in grp]


def fence_groups(items: list[MissionItem]) -> list[list[MissionItem]]:
    """Fence items grouped into shapes, in canonical order: each polygon's vertices together, then
    each circle and the return point alone."""
    items = canonical_fence(items)
    groups, i = [], 0
    while i < len(items):
        it = items[i]
        n = int(it.param1) if it.command in (C.NAV_FENCE_POLYGON_VERTEX_INCLUSION,
                                             C.NAV_FENCE_POLYGON_VERTEX_EXCLUSION) else 1
        groups.append(items[i:i + n])
        i += n
    return groups


def to_qgc_plan(mission: list[MissionItem], fence: list[MissionItem], rally: list[MissionItem], *,
                cruise_speed_mps: float = 12.0, hover_speed_mps: float = 5.0) -> dict[str, Any]:
    home = mission[0]
    items = []
    for seq, it in enumerate(mission[1:], start=1):
        items.append({
            "type": "SimpleItem", "autoContinue": bool(it.autocontinue), "command": it.command,
            "doJumpId": seq, "frame": it.frame,
            "params": [_num(it.param1), _num(it.param2), _num(it.param3), _num(it.param4), it.lat, it.lon, it.alt],
            "AMSLAltAboveTerrain": None, "Altitude": it.alt,
            "AltitudeMode": 1 if C.FRAME_MEANING.get(it.frame) == C.FRAME_GLOBAL_RELATIVE_ALT else 2,
        })
    polygons, circles, breach = [], [], None
    for group in fence_groups(fence):
        it = group[0]
        if it.command in (C.NAV_FENCE_POLYGON_VERTEX_INCLUSION, C.NAV_FENCE_POLYGON_VERTEX_EXCLUSION):
            polygons.append({"inclusion": it.command == C.NAV_FENCE_POLYGON_VERTEX_INCLUSION, "version": 1,
                             "polygon": [[v.lat, v.lon] for v in group]})
        elif it.command in (C.NAV_FENCE_CIRCLE_INCLUSION, C.NAV_FENCE_CIRCLE_EXCLUSION):
            circles.append({"inclusion": it.command == C.NAV_FENCE_CIRCLE_INCLUSION, "version": 1,
                            "circle": {"center": [it.lat, it.lon], "radius": it.param1}})
        elif it.command == C.NAV_FENCE_RETURN_POINT:
            breach = [it.lat, it.lon, it.alt]
    geofence: dict[str, Any] = {"version": 2, "polygons": polygons, "circles": circles}
    if breach is not None:
        geofence["breachReturn"] = breach
    return {
        "fileType": "Plan", "version": 1, "groundStation": "groundctl",
        "mission": {"version": 2, "firmwareType": FIRMWARE_ARDUPILOT, "vehicleType": VEHICLE_MULTIROTOR,
                    "cruiseSpeed": cruise_speed_mps, "hoverSpeed": hover_speed_mps, "globalPlanAltitudeMode": 1,
                    "plannedHomePosition": [home.lat, home.lon, home.alt], "items": items},
        "geoFence": geofence,
        "rallyPoints": {"version": 2, "points": [[r.lat, r.lon, r.alt] for r in rally]},
    }


def _req(obj: Any, key: str, kind: type | tuple, field: str) -> Any:
    if not isinstance(obj, dict) or key not in obj:
        raise InputError("is missing", field=f"{field}.{key}" if field else key)
    v = obj[key]
    if not isinstance(v, kind) or isinstance(v, bool) and kind is not bool:
        raise InputError(f"has the wrong type {type(v).__name__}", field=f"{field}.{key}" if field else key)
    return v


def _f(v: Any, field: str) -> float:
    if v is None:
        return math.nan
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise InputError(f"{v!r} is not a number", field=field)
    return float(v)


def from_qgc_plan(obj: Any) -> tuple[list[MissionItem], list[MissionItem], list[MissionItem]]:
    """Parse a .plan document into (mission with home at 0, fence, rally)."""
    if not isinstance(obj, dict) or obj.get("fileType") != "Plan":
        raise InputError("not a QGroundControl plan (fileType must be 'Plan')", field="fileType")
    m = _req(obj, "mission", dict, "")
    home = _req(m, "plannedHomePosition", list, "mission")
    if len(home) != 3:
        raise InputError("must be [lat, lon, alt]", field="mission.plannedHomePosition")
    mission = [MissionItem(C.NAV_WAYPOINT, C.FRAME_GLOBAL, lat=_f(home[0], "home"), lon=_f(home[1], "home"),
                           alt=_f(home[2], "home"))]
    for i, it in enumerate(_req(m, "items", list, "mission")):
        f = f"mission.items[{i}]"
        if not isinstance(it, dict) or it.get("type") != "SimpleItem":
            raise InputError("only SimpleItem is supported (complex survey items are not)", field=f)
        p = _req(it, "params", list, f)
        if len(p) != 7:
            raise InputError("params must have 7 entries", field=f"{f}.params")
        vals = [_f(v, f"{f}.params[{k}]") for k, v in enumerate(p)]
        mission.append(MissionItem(int(_req(it, "command", int, f)), int(_req(it, "frame", int, f)), *vals[:4],
                                   lat=vals[4], lon=vals[5], alt=vals[6], autocontinue=int(bool(it.get("autoContinue", True)))))
    fence: list[MissionItem] = []
    gf = obj.get("geoFence") or {}
    for i, poly in enumerate(gf.get("polygons", [])):
        f = f"geoFence.polygons[{i}]"
        verts = _req(poly, "polygon", list, f)
        if len(verts) < 3:
            raise InputError("a fence polygon needs at least 3 vertices", field=f)
        cmd = C.NAV_FENCE_POLYGON_VERTEX_INCLUSION if poly.get("inclusion", True) else C.NAV_FENCE_POLYGON_VERTEX_EXCLUSION
        for k, v in enumerate(verts):
            fence.append(MissionItem(cmd, C.FRAME_GLOBAL, param1=len(verts), lat=_f(v[0], f"{f}.polygon[{k}]"),
                                     lon=_f(v[1], f"{f}.polygon[{k}]")))
    for i, circ in enumerate(gf.get("circles", [])):
        f = f"geoFence.circles[{i}]"
        c = _req(circ, "circle", dict, f)
        center = _req(c, "center", list, f"{f}.circle")
        cmd = C.NAV_FENCE_CIRCLE_INCLUSION if circ.get("inclusion", True) else C.NAV_FENCE_CIRCLE_EXCLUSION
        fence.append(MissionItem(cmd, C.FRAME_GLOBAL, param1=_f(c.get("radius"), f"{f}.circle.radius"),
                                 lat=_f(center[0], f), lon=_f(center[1], f)))
    if gf.get("breachReturn"):
        b = gf["breachReturn"]
        fence.append(MissionItem(C.NAV_FENCE_RETURN_POINT, C.FRAME_GLOBAL, lat=_f(b[0], "geoFence.breachReturn"),
                                 lon=_f(b[1], "geoFence.breachReturn"), alt=_f(b[2], "geoFence.breachReturn") if len(b) > 2 else 0.0))
    rally = []
    for i, pt in enumerate((obj.get("rallyPoints") or {}).get("points", [])):
        f = f"rallyPoints.points[{i}]"
        rally.append(MissionItem(C.NAV_RALLY_POINT, C.FRAME_GLOBAL_RELATIVE_ALT_INT, lat=_f(pt[0], f), lon=_f(pt[1], f),
                                 alt=_f(pt[2], f)))
    return mission, fence, rally


def to_wpl(mission: list[MissionItem]) -> str:
    """QGC WPL 110: one line per item, tab separated; item 0 is home with current=1."""
    lines = ["QGC WPL 110"]
    for seq, it in enumerate(mission):
        vals = [seq, 1 if seq == 0 else 0, it.frame, it.command, it.param1, it.param2, it.param3, it.param4,
                f"{it.lat:.8f}", f"{it.lon:.8f}", f"{it.alt:.6f}", it.autocontinue]
        lines.append("\t".join(str(v) if not isinstance(v, float) else repr(v) for v in vals))
    return "\n".join(lines) + "\n"


def from_wpl(text: str) -> list[MissionItem]:
    lines = [ln for ln in text.splitlines() if ln.strip()]
    if not lines or not lines[0].startswith("QGC WPL 110"):
        raise InputError("first line must be 'QGC WPL 110'", field="line 1")
    out = []
    for n, ln in enumerate(lines[1:], start=2):
        parts = ln.split("\t") if "\t" in ln else ln.split()
        if len(parts) != 12:
            raise InputError(f"expected 12 fields, got {len(parts)}", field=f"line {n}")
        try:
            seq, _cur, frame, cmd = (int(p) for p in parts[:4])
            p1, p2, p3, p4, lat, lon, alt = (float(p) for p in parts[4:11])
            auto = int(parts[11])
        except ValueError as e:
            raise InputError(f"not a number: {e}", field=f"line {n}") from None
        if seq != len(out):
            raise InputError(f"sequence {seq} out of order (expected {len(out)})", field=f"line {n}")
        out.append(MissionItem(cmd, frame, p1, p2, p3, p4, lat=lat, lon=lon, alt=alt, autocontinue=auto))
    return out


def plan_geojson(plan, airspace) -> dict:
    """The plan for a map: route, zones, landing zone, hub and fence, as one FeatureCollection."""
    feats = [dict(f, properties={**f["properties"], "layer": "airspace"}) for f in airspace.to_geojson()["features"]]
    feats.append({"type": "Feature", "properties": {"layer": "route", "name": "out", "length_m": round(plan.route_out.length_m, 1)},
                  "geometry": mapping(LineString(plan.route_out.points_ll))})
    feats.append({"type": "Feature", "properties": {"layer": "hub", "name": plan.hub.name},
                  "geometry": mapping(Point(plan.hub.lon, plan.hub.lat))})
    feats.append({"type": "Feature", "properties": {"layer": "landing_zone", "name": plan.zone.name,
                                                    "clear_radius_m": plan.zone.clear_radius_m},
                  "geometry": mapping(Point(plan.zone.lon, plan.zone.lat))})
    for group in fence_groups(plan.fence):
        it = group[0]
        if it.command in (C.NAV_FENCE_POLYGON_VERTEX_INCLUSION, C.NAV_FENCE_POLYGON_VERTEX_EXCLUSION):
            ring = [[v.lon, v.lat] for v in group]
            feats.append({"type": "Feature", "properties": {"layer": "fence", "inclusion": it.command == 5001},
                          "geometry": {"type": "Polygon", "coordinates": [ring + [ring[0]]]}})
        elif it.command in (C.NAV_FENCE_CIRCLE_INCLUSION, C.NAV_FENCE_CIRCLE_EXCLUSION):
            feats.append({"type": "Feature", "properties": {"layer": "fence", "inclusion": it.command == 5003,
                                                            "radius_m": it.param1},
                          "geometry": mapping(Point(it.lon, it.lat))})
    for r in plan.rally:
        feats.append({"type": "Feature", "properties": {"layer": "rally", "alt_rel_m": r.alt},
                      "geometry": mapping(Point(r.lon, r.lat))})
    return {"type": "FeatureCollection", "features": feats}


def write_plan_files(plan, airspace, out_dir: str | Path, stem: str) -> dict[str, Path]:
    """Write .plan, .waypoints and .geojson; returns the paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"plan": out / f"{stem}.plan", "waypoints": out / f"{stem}.waypoints", "geojson": out / f"{stem}.geojson"}
    doc = to_qgc_plan(plan.mission, plan.fence, plan.rally, cruise_speed_mps=plan.airframe.cruise_speed_mps)
    paths["plan"].write_text(json.dumps(doc, indent=2))
    paths["waypoints"].write_text(to_wpl(plan.mission))
    paths["geojson"].write_text(json.dumps(plan_geojson(plan, airspace)))
    return paths


def plan_from_text(text: str, name: str) -> tuple[list[MissionItem], list[MissionItem], list[MissionItem]]:
    """A .plan or .waypoints file's text as (mission with home at 0, fence, rally); a .waypoints
    file has no fence or rally. Errors name the file, then the field or line, and the reason."""
    try:
        if text.lstrip().startswith("QGC WPL"):
            lists = from_wpl(text), [], []
        else:
            try:
                doc = json.loads(text)
            except json.JSONDecodeError as e:
                raise InputError(f"neither a QGroundControl .plan (JSON: {e.msg} at line {e.lineno} column "
                                 f"{e.colno}) nor a QGC WPL 110 .waypoints file") from None
            lists = from_qgc_plan(doc)
    except InputError as e:
        raise InputError(e.reason, field=f"{name}: {e.field}" if e.field else name) from None
    for kind, items in zip(("mission", "fence", "rally"), lists):
        for seq, it in enumerate(items):
            for key in ("lat", "lon", "alt"):
                if not math.isfinite(getattr(it, key)):
                    # a null altitude in a QGC plan, or a terrain-relative item without one
                    raise InputError(f"{kind} item {seq} ({it.name}) has no {key}: every item sent to the "
                                     f"vehicle needs a number there", field=name)
    if not lists[0]:
        raise InputError("holds no mission, not even a home position", field=name)
    return lists
