"""QGroundControl .plan files (and the older .mission files), read and written as QGC does.

Checked against QGroundControl's own loader and writer (src/MissionManager: MissionController
_loadJsonMissionFileV2, SimpleMissionItem::save/load, MissionItem::_convertJsonV1ToV2/_convertJsonV2ToV3,
QGroundControlQmlGlobal::AltMode):
- a SimpleItem is one MAVLink mission item: `frame`, `command`, `params` (7: param1-4, lat, lon, alt),
  `autoContinue`, `doJumpId`. What QGC uploads is `frame` and `params`; `AltitudeMode`, `Altitude`
  and `AMSLAltAboveTerrain` are its editor's view, written only for items that specify an altitude.
- QGC writes navigation items in the non-INT frames: 3 (relative), 0 (AMSL, also for altitudes it
  calculated above terrain) and 10 (terrain frame); items with no altitude in 2 (MAV_FRAME_MISSION).
- AltitudeMode: 1 relative, 2 absolute, 3 calculated above terrain (frame 0; params[6] holds the AMSL
  altitude QGC worked out from its terrain data, or null if it had none when it saved), 4 terrain
  frame, 0 mixed (globalPlanAltitudeMode only).
- QGC 3.x items: `coordinate` [lat, lon, alt] beside 4 params (V2), or `param1`..`param4` keys and
  type "missionItem" (V1). QGC converts both on load; so does this module.
- DO_JUMP param1 names the target's doJumpId, which QGC turns into a sequence number on load.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from groundctl.core import mavcmd as C
from groundctl.core.mission import MissionItem
from groundctl.core.planfiles_fence import fence_groups
from groundctl.errors import InputError

FIRMWARE_GENERIC, FIRMWARE_ARDUPILOT, FIRMWARE_PX4 = 0, 3, 12  # MAV_AUTOPILOT
VEHICLE_QUADROTOR = 2  # MAV_TYPE
# MAV_TYPE values of rotorcraft a copter firmware flies: quad, coaxial, helicopter, hexa, octa, tri, dodeca, deca
ROTORCRAFT = {2, 3, 4, 13, 14, 15, 29, 35}
ALT_MIXED, ALT_RELATIVE, ALT_ABSOLUTE, ALT_CALC_ABOVE_TERRAIN, ALT_TERRAIN_FRAME = 0, 1, 2, 3, 4

# AP_Mission::stored_in_location (AP_Mission.cpp), mission commands only: the items that keep a
# Location, so the items that have an altitude
LOCATION_COMMANDS = frozenset({16, 17, 18, 19, 21, 22, 30, 31, 82, 92, 179, 188, 189, 191, 195, 201, 84, 85, 94})
# AP_Mission::mavlink_int_to_mission_cmd: every command an ArduPilot mission takes; others are refused
# with MAV_MISSION_UNSUPPORTED, so a plan made for another autopilot that uses one cannot be flown
ARDUPILOT_MISSION_COMMANDS = frozenset({
    16, 17, 18, 19, 20, 21, 22, 30, 31, 82, 83, 84, 85, 92, 93, 94, 112, 114, 115, 177, 178, 179, 181, 182,
    183, 184, 188, 189, 191, 193, 194, 195, 197, 201, 202, 203, 205, 206, 207, 208, 210, 211, 212, 213, 215,
    216, 217, 218, 222, 223, 531, 532, 534, 600, 601, 1000, 2000, 2001, 2500, 2501, 3000, 42600, 42702, 42703,
})
_GLOBAL_FRAMES = {C.FRAME_GLOBAL, C.FRAME_GLOBAL_INT, C.FRAME_GLOBAL_RELATIVE_ALT, C.FRAME_GLOBAL_RELATIVE_ALT_INT,
                  C.FRAME_GLOBAL_TERRAIN_ALT, C.FRAME_GLOBAL_TERRAIN_ALT_INT}
_ALT_MODE_BY_FRAME = {C.FRAME_GLOBAL_RELATIVE_ALT: ALT_RELATIVE, C.FRAME_GLOBAL: ALT_ABSOLUTE,
                      C.FRAME_GLOBAL_TERRAIN_ALT: ALT_TERRAIN_FRAME}


@dataclass
class PlanLists:
    """A plan file's content: mission (item 0 = home), fence, rally, and what was converted on the way."""

    mission: list[MissionItem]
    fence: list[MissionItem] = field(default_factory=list)
    rally: list[MissionItem] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    kinds: tuple[int, ...] = (C.MISSION_TYPE_MISSION, C.MISSION_TYPE_FENCE, C.MISSION_TYPE_RALLY)


def has_altitude(item: MissionItem) -> bool:
    """True when the item carries a position with an altitude (what QGC calls specifiesAltitude)."""
    return item.command in LOCATION_COMMANDS and (item.frame in _GLOBAL_FRAMES or item.frame == C.FRAME_MISSION)


def mission_frame_as_amsl(items: list[MissionItem], warnings: list[str]) -> list[MissionItem]:
    """AP_Mission::mavlink_int_to_mission_cmd reads MAV_FRAME_MISSION on a position as AMSL (frame 0),
    and the read-back says 0: say so now rather than fail the verification later."""
    out = [it.with_(frame=C.FRAME_GLOBAL) if seq and it.command in LOCATION_COMMANDS and it.frame == C.FRAME_MISSION
           else it for seq, it in enumerate(items)]
    if out != items:
        warnings.append("items with a position in frame 2 (MAV_FRAME_MISSION) sent in frame 0 (AMSL), "
                        "which is how ArduPilot reads them")
    return out


def _num(v: float) -> float | None:
    """JSON has no NaN: QGC writes null for a parameter left unset (NaN), and reads null back as NaN."""
    return None if isinstance(v, float) and not math.isfinite(v) else v


# -- writing ----------------------------------------------------------------------------------------
def to_qgc_plan(mission: list[MissionItem], fence: list[MissionItem], rally: list[MissionItem], *,
                cruise_speed_mps: float = 12.0, hover_speed_mps: float = 5.0) -> dict[str, Any]:
    """The document QGroundControl would save for these lists (json.dumps it with allow_nan=False)."""
    home = mission[0]
    items, modes = [], set()
    for seq, it in enumerate(mission[1:], start=1):
        alt_item = has_altitude(it)
        frame = C.FRAME_MEANING.get(it.frame, it.frame) if alt_item else C.FRAME_MISSION
        if alt_item and frame == C.FRAME_MISSION:
            frame = C.FRAME_GLOBAL  # what ArduPilot makes of it (see mission_frame_as_amsl)
        lat, lon = it.lat, it.lon
        if it.command == C.NAV_TAKEOFF and lat == 0 and lon == 0:
            # copter takes off where it stands (ModeAuto::takeoff_start ignores lat/lon); QGC draws
            # the takeoff at the launch position, not at 0,0 in the Gulf of Guinea
            lat, lon = home.lat, home.lon
        doc: dict[str, Any] = {
            "type": "SimpleItem", "autoContinue": bool(it.autocontinue), "command": it.command, "doJumpId": seq,
            "frame": frame, "params": [_num(p) for p in (it.param1, it.param2, it.param3, it.param4, lat, lon, it.alt)],
        }
        if alt_item:
            mode = _ALT_MODE_BY_FRAME.get(frame, ALT_RELATIVE)
            modes.add(mode)
            doc.update(AltitudeMode=mode, Altitude=_num(it.alt), AMSLAltAboveTerrain=None)
        items.append(doc)
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
        "mission": {"version": 2, "firmwareType": FIRMWARE_ARDUPILOT, "vehicleType": VEHICLE_QUADROTOR,
                    "cruiseSpeed": cruise_speed_mps, "hoverSpeed": hover_speed_mps,
                    "globalPlanAltitudeMode": modes.pop() if len(modes) == 1 else ALT_MIXED,
                    "plannedHomePosition": [home.lat, home.lon, home.alt], "items": items},
        "geoFence": geofence,
        "rallyPoints": {"version": 2, "points": [[r.lat, r.lon, r.alt] for r in rally]},
    }


# -- reading ----------------------------------------------------------------------------------------
def _where(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _req(obj: Any, key: str, kind: type | tuple, path: str) -> Any:
    if not isinstance(obj, dict) or key not in obj:
        raise InputError("is missing", field=_where(path, key))
    v = obj[key]
    if not isinstance(v, kind) or (isinstance(v, bool) and kind not in (bool, (bool,))):
        raise InputError(f"has the wrong type {type(v).__name__}", field=_where(path, key))
    return v


def _f(v: Any, path: str) -> float:
    """A number, or NaN for null (QGC's unset parameter)."""
    if v is None:
        return math.nan
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise InputError(f"{v!r} is not a number", field=path)
    return float(v)


def _int(obj: dict, key: str, path: str) -> int:
    v = _req(obj, key, (int, float), path)
    if v != int(v):
        raise InputError(f"{v!r} is not a whole number", field=_where(path, key))
    return int(v)


def _point(v: Any, path: str, n: int) -> list[float]:
    if not isinstance(v, list) or len(v) < n:
        raise InputError(f"must be a list of {n} numbers ([lat, lon{', alt' if n == 3 else ''}])", field=path)
    return [_f(x, f"{path}[{k}]") for k, x in enumerate(v[:n])]


def _params_v3(it: dict, path: str, notes: set[str]) -> list[Any]:
    """params as 7 entries, converting QGC 3.x items the way MissionItem::load does."""
    if "params" not in it and all(f"param{k}" in it for k in range(1, 5)):
        notes.add("QGC 3.x items (param1..param4 keys) converted")
        params = [it[f"param{k}"] for k in range(1, 5)]
    else:
        params = list(_req(it, "params", list, path))
    if "coordinate" in it:
        if len(params) != 4:
            raise InputError("an item with a 'coordinate' must have 4 params", field=f"{path}.params")
        notes.add("QGC 3.x items ('coordinate' beside 4 params) converted")
        coord = it["coordinate"]
        if not isinstance(coord, list) or len(coord) != 3:
            raise InputError("must be [lat, lon, alt]", field=f"{path}.coordinate")
        params = params + coord
    if len(params) != 7:
        raise InputError(f"params must have 7 entries, not {len(params)}", field=f"{path}.params")
    return params


def _mission_item(it: Any, path: str, terrain: str, notes: set[str], warnings: list[str]) -> MissionItem:
    if not isinstance(it, dict):
        raise InputError("is not an object", field=path)
    kind = it.get("type")
    if kind == "ComplexItem":
        raise InputError(f"a {it.get('complexItemType', 'complex')} item: QGroundControl makes its waypoints when "
                         f"it uploads; upload the plan from QGroundControl once and download it with "
                         f"`groundctl mission download`, or save it as .waypoints from QGC", field=path)
    if kind not in ("SimpleItem", "missionItem"):
        raise InputError(f"unknown item type {kind!r} (expected SimpleItem)", field=path)
    params = _params_v3(it, path, notes)
    vals = [_f(v, f"{path}.params[{k}]") for k, v in enumerate(params)]
    command, frame = _int(it, "command", path), _int(it, "frame", path)
    mode = it.get("AltitudeMode")
    if command in LOCATION_COMMANDS and mode == ALT_CALC_ABOVE_TERRAIN and not math.isfinite(vals[6]):
        above = it.get("Altitude")
        if terrain != "frame":
            raise InputError(
                f"altitude {above} m above terrain (QGC 'calculated above terrain', AltitudeMode 3) was never "
                f"turned into an AMSL altitude: QGroundControl had no terrain data for this point when it saved, "
                f"so params[6] is null and there is no altitude to send. Open the plan in QGroundControl with "
                f"terrain data and save it again, use relative altitude (AltitudeMode 1), or upload with "
                f"--terrain-frame to fly it {above} m above ArduPilot's own terrain data (frame 10)",
                field=f"{path}.params[6]")
        if not isinstance(above, (int, float)) or isinstance(above, bool):
            raise InputError("AltitudeMode 3 with no Altitude: nothing to fly", field=f"{path}.Altitude")
        warnings.append(f"{path}: {above} m 'calculated above terrain' had no AMSL altitude; sent as "
                        f"{above} m in the terrain frame (10): ArduPilot then follows its own terrain data "
                        f"along the leg (needs TERRAIN_ENABLE=1 and terrain data, or a rangefinder)")
        frame, vals[6] = C.FRAME_GLOBAL_TERRAIN_ALT, float(above)
    if command not in LOCATION_COMMANDS:
        # an item with no position: QGC writes zeros there; a null would not fit MISSION_ITEM_INT's int32
        vals[4:7] = [0.0 if not math.isfinite(v) else v for v in vals[4:7]]
    auto = it.get("autoContinue", True)
    if not isinstance(auto, bool):
        raise InputError(f"{auto!r} is not true or false", field=f"{path}.autoContinue")
    return MissionItem(command, frame, *vals[:4], lat=vals[4], lon=vals[5], alt=vals[6], autocontinue=int(auto))


def _check_firmware(m: dict, items: list[MissionItem], warnings: list[str]) -> None:
    fw = m.get("firmwareType", FIRMWARE_ARDUPILOT)
    vt = m.get("vehicleType", VEHICLE_QUADROTOR)
    if fw == FIRMWARE_ARDUPILOT:
        pass
    elif fw in (FIRMWARE_PX4, FIRMWARE_GENERIC):
        who = "PX4 (firmwareType 12)" if fw == FIRMWARE_PX4 else "a generic autopilot (firmwareType 0)"
        foreign = sorted({it.command for it in items[1:]} - ARDUPILOT_MISSION_COMMANDS)
        if foreign:
            raise InputError(f"made for {who}, and uses commands ArduPilot's missions do not take: "
                             f"{', '.join(C.NAMES.get(c, f'MAV_CMD {c}') for c in foreign)}",
                             field="mission.firmwareType")
        warnings.append(f"mission.firmwareType: made for {who}; converted to ArduPilot: the commands are the "
                        f"same MAVLink commands, but check what differs (a copter takes off where it stands, "
                        f"PX4's NaN yaw and acceptance radius are not ArduPilot's)")
    else:
        raise InputError(f"made for MAV_AUTOPILOT {fw}, not ArduPilot (3) or PX4 (12)", field="mission.firmwareType")
    if vt not in ROTORCRAFT:
        warnings.append(f"mission.vehicleType: planned for MAV_TYPE {vt}, not a multirotor: groundctl flies copters")


def _read_mission(m: dict, path: str, terrain: str, warnings: list[str]) -> list[MissionItem]:
    version = m.get("version", 2)
    if not isinstance(version, int) or isinstance(version, bool) or version > 2:
        raise InputError(f"mission version {version!r}: this file is from a newer QGroundControl than groundctl "
                         f"reads (versions 1 and 2)", field=_where(path, "version"))
    home_doc = _req(m, "plannedHomePosition", (list, dict), path)
    if isinstance(home_doc, dict):  # mission version 1: home is an item with a coordinate
        home_doc = home_doc.get("coordinate")
    lat, lon, alt = _point(home_doc, _where(path, "plannedHomePosition"), 3)
    mission = [MissionItem(C.NAV_WAYPOINT, C.FRAME_GLOBAL, lat=lat, lon=lon, alt=alt)]
    notes: set[str] = set()
    raw = _req(m, "items", list, path)
    jump_ids: dict[int, int] = {}
    for i, it in enumerate(raw):
        p = f"{_where(path, 'items')}[{i}]"
        mission.append(_mission_item(it, p, terrain, notes, warnings))
        jid = it.get("doJumpId", it.get("id"))
        if isinstance(jid, int) and not isinstance(jid, bool):
            jump_ids[jid] = i + 1
    for seq, it in enumerate(mission[1:], start=1):
        if it.command == C.DO_JUMP:
            target = int(it.param1) if math.isfinite(it.param1) else -1
            if target not in jump_ids and jump_ids:
                raise InputError(f"jumps to doJumpId {target}, which no item has",
                                 field=f"{_where(path, 'items')}[{seq - 1}].params[0]")
            mission[seq] = it.with_(param1=float(jump_ids.get(target, target)))
    warnings.extend(sorted(notes))
    mission = mission_frame_as_amsl(mission, warnings)
    _check_firmware(m, mission, warnings)
    return mission


def _read_fence(gf: Any) -> list[MissionItem]:
    if gf is None:
        return []
    if not isinstance(gf, dict):
        raise InputError("is not an object", field="geoFence")
    fence: list[MissionItem] = []
    polys = list(gf.get("polygons") or [])
    if gf.get("polygon"):  # geoFence version 1: one inclusion polygon
        polys.insert(0, {"inclusion": True, "polygon": gf["polygon"]})
    for i, poly in enumerate(polys):
        p = f"geoFence.polygons[{i}]"
        verts = _req(poly, "polygon", list, p)
        if len(verts) < 3:
            raise InputError(f"a fence polygon needs at least 3 vertices, not {len(verts)}", field=p)
        cmd = C.NAV_FENCE_POLYGON_VERTEX_INCLUSION if poly.get("inclusion", True) else C.NAV_FENCE_POLYGON_VERTEX_EXCLUSION
        for k, v in enumerate(verts):
            lat, lon = _point(v, f"{p}.polygon[{k}]", 2)
            fence.append(MissionItem(cmd, C.FRAME_GLOBAL, param1=len(verts), lat=lat, lon=lon))
    for i, circ in enumerate(gf.get("circles") or []):
        p = f"geoFence.circles[{i}]"
        c = _req(circ, "circle", dict, p)
        lat, lon = _point(_req(c, "center", list, f"{p}.circle"), f"{p}.circle.center", 2)
        radius = _f(c.get("radius"), f"{p}.circle.radius")
        if not radius > 0:
            raise InputError(f"radius {c.get('radius')!r} must be a positive number of metres", field=f"{p}.circle.radius")
        cmd = C.NAV_FENCE_CIRCLE_INCLUSION if circ.get("inclusion", True) else C.NAV_FENCE_CIRCLE_EXCLUSION
        fence.append(MissionItem(cmd, C.FRAME_GLOBAL, param1=radius, lat=lat, lon=lon))
    if gf.get("breachReturn"):
        b = gf["breachReturn"]
        lat, lon = _point(b, "geoFence.breachReturn", 2)
        alt = _f(b[2], "geoFence.breachReturn[2]") if len(b) > 2 else 0.0
        fence.append(MissionItem(C.NAV_FENCE_RETURN_POINT, C.FRAME_GLOBAL, lat=lat, lon=lon, alt=alt))
    return fence


def _read_rally(rp: Any) -> list[MissionItem]:
    if rp is None:
        return []
    if not isinstance(rp, dict):
        raise InputError("is not an object", field="rallyPoints")
    rally = []
    for i, pt in enumerate(rp.get("points") or []):
        lat, lon, alt = _point(pt, f"rallyPoints.points[{i}]", 3)
        rally.append(MissionItem(C.NAV_RALLY_POINT, C.FRAME_GLOBAL_RELATIVE_ALT_INT, lat=lat, lon=lon, alt=alt))
    return rally


def read_qgc(obj: Any, *, terrain: str = "refuse") -> PlanLists:
    """A .plan document (or an older QGC .mission document) as lists. terrain: what to do with an item
    whose altitude QGC was to calculate above terrain but never did: "refuse" (the default: say why),
    or "frame": send it in the terrain frame, with a warning."""
    if not isinstance(obj, dict):
        raise InputError("not a QGroundControl plan (the file is JSON but not an object)", field="fileType")
    ftype = obj.get("fileType")
    warnings: list[str] = []
    if ftype in (None, "Mission") and "items" in obj and "plannedHomePosition" in obj:
        warnings.append("a QGroundControl .mission file (before .plan): mission only, no fence or rally")
        mission = _read_mission(obj, "", terrain, warnings)
        return PlanLists(mission, warnings=warnings, kinds=(C.MISSION_TYPE_MISSION,))
    if ftype != "Plan":
        raise InputError(f"not a QGroundControl plan (fileType must be 'Plan', not {ftype!r})", field="fileType")
    version = obj.get("version", 1)
    if version != 1:
        raise InputError(f"plan version {version!r}: QGroundControl writes version 1", field="version")
    mission = _read_mission(_req(obj, "mission", dict, ""), "mission", terrain, warnings)
    return PlanLists(mission, _read_fence(obj.get("geoFence")), _read_rally(obj.get("rallyPoints")), warnings)


def from_qgc_plan(obj: Any) -> tuple[list[MissionItem], list[MissionItem], list[MissionItem]]:
    """Parse a .plan document into (mission with home at 0, fence, rally)."""
    p = read_qgc(obj)
    return p.mission, p.fence, p.rally
