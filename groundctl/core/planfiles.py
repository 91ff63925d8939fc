"""Plan file formats: QGroundControl .plan JSON, QGC WPL 110 .waypoints, GeoJSON of a plan.

The formats live in their own modules (planfiles_qgc: .plan and .mission as QGroundControl reads and
writes them; planfiles_wpl: .waypoints, and the fence and rally files Mission Planner loads;
planfiles_fence: fence items as shapes). This module reads any of them into lists, and writes the
files `groundctl plan` leaves for an operator.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from shapely.geometry import LineString, Point, mapping

from groundctl.core import mavcmd as C
from groundctl.core.mission import MissionItem
from groundctl.core.planfiles_fence import canonical_fence, fence_groups
from groundctl.core.planfiles_qgc import (FIRMWARE_ARDUPILOT, VEHICLE_QUADROTOR, PlanLists, from_qgc_plan,
                                          mission_frame_as_amsl, read_qgc, to_qgc_plan)
from groundctl.core.planfiles_wpl import from_wpl, to_wpl, to_wpl_fence, to_wpl_rally, wpl_kind
from groundctl.errors import InputError

__all__ = ["FIRMWARE_ARDUPILOT", "VEHICLE_QUADROTOR", "PlanLists", "canonical_fence", "fence_groups", "from_qgc_plan",
           "from_wpl", "plan_dumps", "plan_from_text", "plan_geojson", "read_plan", "to_qgc_plan", "to_wpl",
           "to_wpl_fence", "to_wpl_rally", "write_plan_files"]


def plan_dumps(doc: dict) -> str:
    """A .plan document as text. NaN is not JSON (QGC and every strict parser refuse the file), so a
    value that is not a number fails here rather than producing a file nothing can read."""
    return json.dumps(doc, indent=2, allow_nan=False)


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
    """Write .plan (QGC: mission, fence, rally), .waypoints (the mission), the fence and rally as
    Mission Planner loads them (.fence.waypoints, .rally.waypoints) and .geojson; returns the paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"plan": out / f"{stem}.plan", "waypoints": out / f"{stem}.waypoints",
             "fence_waypoints": out / f"{stem}.fence.waypoints", "rally_waypoints": out / f"{stem}.rally.waypoints",
             "geojson": out / f"{stem}.geojson"}
    doc = to_qgc_plan(plan.mission, plan.fence, plan.rally, cruise_speed_mps=plan.airframe.cruise_speed_mps)
    paths["plan"].write_text(plan_dumps(doc))
    paths["waypoints"].write_text(to_wpl(plan.mission))
    paths["fence_waypoints"].write_text(to_wpl_fence(canonical_fence(plan.fence), plan.mission[0]))
    paths["rally_waypoints"].write_text(to_wpl_rally(plan.rally, plan.mission[0]))
    paths["geojson"].write_text(json.dumps(plan_geojson(plan, airspace)))
    return paths


def read_plan(text: str, name: str, *, terrain: str = "refuse") -> PlanLists:
    """A .plan, .mission or .waypoints file's text as lists, with what was converted on the way.
    `kinds` says which lists the file holds (a .waypoints file holds one: mission, fence or rally).
    Errors name the file, then the field or line, and the reason."""
    try:
        if text.lstrip().startswith("QGC WPL"):
            kind, items = wpl_kind(from_wpl(text))
            lists = PlanLists([], kinds=(kind,))
            if kind == C.MISSION_TYPE_MISSION:
                lists.mission = mission_frame_as_amsl(items, lists.warnings)
            if kind == C.MISSION_TYPE_FENCE:
                lists.fence = items
            elif kind == C.MISSION_TYPE_RALLY:
                lists.rally = items
        else:
            try:
                doc = json.loads(text)
            except json.JSONDecodeError as e:
                raise InputError(f"neither a QGroundControl .plan (JSON: {e.msg} at line {e.lineno} column "
                                 f"{e.colno}) nor a QGC WPL 110 .waypoints file") from None
            lists = read_qgc(doc, terrain=terrain)
    except InputError as e:
        raise InputError(e.reason, field=f"{name}: {e.field}" if e.field else name) from None
    for kind, items in zip(("mission", "fence", "rally"), (lists.mission, lists.fence, lists.rally)):
        for seq, it in enumerate(items):
            for key in ("lat", "lon", "alt"):
                if not math.isfinite(getattr(it, key)):
                    raise InputError(f"{kind} item {seq} ({it.name}) has no {key}: every item sent to the "
                                     f"vehicle needs a number there", field=name)
    if C.MISSION_TYPE_MISSION in lists.kinds and not lists.mission:
        raise InputError("holds no mission, not even a home position", field=name)
    return lists


def plan_from_text(text: str, name: str) -> tuple[list[MissionItem], list[MissionItem], list[MissionItem]]:
    """A .plan or .waypoints file's text as (mission with home at 0, fence, rally); see read_plan."""
    p = read_plan(text, name)
    return p.mission, p.fence, p.rally
