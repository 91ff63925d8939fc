"""Plan files as other tools write and read them: QGroundControl's own sample plans (tests/data/qgc,
copied from its repository) read, written back and read again; what QGC writes (frames, altitude
keys, AltitudeMode, the takeoff at the launch position); terrain, PX4 and QGC 3.x files; the fence
and rally files Mission Planner loads."""

import copy
import json
import math
from pathlib import Path

import pytest

from groundctl.core import mavcmd as C
from groundctl.core.mission import MissionItem, compare
from groundctl.core.plan import Parcel, build_plan, make_planner
from groundctl.core.planfiles import (canonical_fence, plan_dumps, read_plan, to_qgc_plan, to_wpl_fence, to_wpl_rally,
                                      write_plan_files)
from groundctl.errors import InputError

DATA = Path(__file__).resolve().parents[1] / "data" / "qgc"
SAMPLES = sorted(p.name for p in DATA.iterdir() if p.suffix in (".plan", ".mission", ".waypoints"))


def strict_json(text: str):
    """json.loads as QGC's Qt parser and every strict reader take it: NaN and Infinity are not JSON."""
    def bad(name):
        raise ValueError(f"{name} is not JSON")
    return json.loads(text, parse_constant=bad)


def sample(name: str, **kw):
    return read_plan((DATA / name).read_text(), name, **kw)


def sample_doc(name: str) -> dict:
    return json.loads((DATA / name).read_text())


@pytest.fixture(scope="module")
def cmac_plan():
    from groundctl.core.scenario import load_scenario

    sc = load_scenario(Path(__file__).resolve().parents[2] / "missions" / "cmac")
    planner = make_planner(sc.airspace, sc.fleet.hub("cmac"), sc.fleet.operations)
    return sc, build_plan(sc.airspace, sc.fleet, "cmac", sc.zone("clinic-east"), Parcel(mass_kg=1.2),
                          method="payload_place", planner=planner)


# -- QGroundControl's sample plans, round trip ------------------------------------------------------
@pytest.mark.parametrize("name", SAMPLES)
def test_qgc_sample_reads_writes_and_reads_back_the_same(name):
    first = sample(name, terrain="frame")
    assert len(first.mission) >= 1
    text = plan_dumps(to_qgc_plan(first.mission, first.fence, first.rally))
    doc = strict_json(text)
    again = read_plan(text, f"{name} written back", terrain="refuse")  # nothing left to convert
    # once in groundctl's hands the file is a fixed point: the same lists, item for item
    assert again.mission == first.mission and again.fence == first.fence and again.rally == first.rally
    assert compare(first.mission, again.mission, C.MISSION_TYPE_MISSION) == []
    assert doc["mission"]["firmwareType"] == 3 and doc["fileType"] == "Plan"
    assert again.warnings == []  # written for ArduPilot, in today's format


def test_sample_counts_match_the_files():
    """What a reader of the files sees: every SimpleItem, polygon vertex and rally point, nothing lost."""
    for name in ("ArduPilotSITL-ArduCopter.plan", "PX4SITL-PX4-MultiRotor.plan", "ce_geofence_home_base.plan"):
        doc = sample_doc(name)
        p = sample(name, terrain="frame")
        assert len(p.mission) == 1 + len(doc["mission"]["items"])
        assert len(p.fence) == sum(len(pg["polygon"]) for pg in doc["geoFence"]["polygons"])
        assert (p.mission[0].lat, p.mission[0].lon, p.mission[0].alt) == tuple(doc["mission"]["plannedHomePosition"])
    gf = sample("ce_geofence_home_base.plan").fence
    assert [it.command for it in gf] == [C.NAV_FENCE_POLYGON_VERTEX_INCLUSION] * 4 + [C.NAV_FENCE_POLYGON_VERTEX_EXCLUSION] * 4
    assert all(it.param1 == 4 for it in gf)
    mp = sample("MissionPlanner.waypoints")
    assert mp.kinds == (C.MISSION_TYPE_MISSION,) and len(mp.mission) == 6 and mp.mission[1].alt == 100.0


def test_items_keep_what_qgc_would_send():
    p = sample("ArduPilotSITL-ArduCopter.plan", terrain="frame")
    by_id = {seq: it for seq, it in enumerate(p.mission)}
    assert (by_id[1].command, by_id[1].frame, by_id[1].alt) == (C.NAV_TAKEOFF, 3, 30.0)
    assert (by_id[4].frame, by_id[4].alt) == (0, 734.0)  # AltitudeMode 2: AMSL as written
    assert (by_id[8].frame, by_id[8].alt) == (10, 50.0)  # AltitudeMode 4: terrain frame as written
    assert math.isnan(by_id[2].param4)  # null param: "unchanged", sent as NaN as QGC does
    assert (by_id[3].command, by_id[3].param2) == (C.DO_CHANGE_SPEED, 10.0)


# -- what QGC writes -------------------------------------------------------------------------------
def test_written_plan_uses_qgc_frames_and_altitude_keys(cmac_plan):
    _, plan = cmac_plan
    assert any(it.frame == C.FRAME_GLOBAL_RELATIVE_ALT_INT for it in plan.mission)  # groundctl sends 6
    doc = strict_json(plan_dumps(to_qgc_plan(plan.mission, plan.fence, plan.rally)))
    items = doc["mission"]["items"]
    home = doc["mission"]["plannedHomePosition"]
    for it in items:
        keys = {"AltitudeMode", "Altitude", "AMSLAltAboveTerrain"}
        if it["command"] in (C.DO_CHANGE_SPEED, C.DO_GRIPPER, C.DO_WINCH, C.DO_JUMP, C.NAV_RETURN_TO_LAUNCH):
            assert it["frame"] == C.FRAME_MISSION and not keys & it.keys(), it
        else:
            assert it["frame"] in (0, 3, 10), it  # never 6: QGC shows that only in its raw editor
            assert keys <= it.keys() and it["Altitude"] == it["params"][6], it
            assert it["AltitudeMode"] == {3: 1, 0: 2, 10: 4}[it["frame"]], it
    takeoff = next(it for it in items if it["command"] == C.NAV_TAKEOFF)
    assert takeoff["params"][4:6] == home[:2]  # drawn at the launch position, not at 0,0
    assert doc["mission"]["globalPlanAltitudeMode"] == 1  # every altitude item is relative
    assert [it["doJumpId"] for it in items] == list(range(1, len(items) + 1))


def test_terrain_frame_item_written_with_terrain_altitude_mode():
    m = [MissionItem(C.NAV_WAYPOINT, 0, lat=1, lon=2, alt=500),
         MissionItem(C.NAV_WAYPOINT, C.FRAME_GLOBAL_TERRAIN_ALT_INT, lat=1.001, lon=2, alt=40),
         MissionItem(C.NAV_WAYPOINT, C.FRAME_GLOBAL_INT, lat=1.002, lon=2, alt=620)]
    items = to_qgc_plan(m, [], [])["mission"]["items"]
    assert [(it["frame"], it["AltitudeMode"]) for it in items] == [(10, 4), (0, 2)]
    assert to_qgc_plan(m, [], [])["mission"]["globalPlanAltitudeMode"] == 0  # mixed


def test_nan_parameter_is_written_as_null_never_as_nan():
    m = [MissionItem(C.NAV_WAYPOINT, 0, lat=1, lon=2, alt=500),
         MissionItem(C.NAV_WAYPOINT, 3, param4=math.nan, lat=1.001, lon=2, alt=40)]
    text = plan_dumps(to_qgc_plan(m, [], []))
    assert "NaN" not in text and strict_json(text)["mission"]["items"][0]["params"][3] is None
    back = read_plan(text, "x.plan")
    assert math.isnan(back.mission[1].param4)


def test_write_plan_files_leaves_files_qgc_and_mission_planner_load(cmac_plan, tmp_path):
    sc, plan = cmac_plan
    paths = write_plan_files(plan, sc.airspace, tmp_path, "p")
    strict_json(paths["plan"].read_text())
    fence_lines = paths["fence_waypoints"].read_text().splitlines()
    assert fence_lines[0] == "QGC WPL 110"
    home = fence_lines[1].split("\t")
    assert home[:4] == ["0", "1", "0", "16"]
    # Mission Planner (FlightPlanner.readQGC110wpfile) drops the first item for FENCE and RALLY:
    # what is left must be the fence, in the order ArduPilot needs (each polygon's vertices together)
    rows = [ln.split("\t") for ln in fence_lines[2:]]
    assert [int(r[0]) for r in rows] == list(range(1, len(plan.fence) + 1))
    assert [int(r[3]) for r in rows] == [it.command for it in canonical_fence(plan.fence)]
    f = read_plan(paths["fence_waypoints"].read_text(), "p.fence.waypoints")
    assert f.kinds == (C.MISSION_TYPE_FENCE,) and compare(canonical_fence(plan.fence), f.fence, C.MISSION_TYPE_FENCE) == []
    r = read_plan(paths["rally_waypoints"].read_text(), "p.rally.waypoints")
    assert r.kinds == (C.MISSION_TYPE_RALLY,) and compare(plan.rally, r.rally, C.MISSION_TYPE_RALLY) == []
    assert len(r.rally) == len(plan.rally) >= 1


def test_fence_file_without_home_line_as_mavproxy_saves_it(cmac_plan):
    _, plan = cmac_plan
    text = to_wpl_fence(canonical_fence(plan.fence), plan.mission[0]).splitlines()
    no_home = [text[0]] + ["\t".join([str(i)] + ln.split("\t")[1:]) for i, ln in enumerate(text[2:])]
    f = read_plan("\n".join(no_home) + "\n", "f.waypoints")
    assert f.kinds == (C.MISSION_TYPE_FENCE,) and len(f.fence) == len(plan.fence)
    rally = read_plan(to_wpl_rally(plan.rally, plan.mission[0]), "r.waypoints")
    assert rally.kinds == (C.MISSION_TYPE_RALLY,)


# -- terrain ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["ArduPilotSITL-ArduCopter.plan", "PX4SITL-PX4-MultiRotor.plan"])
def test_calculated_above_terrain_without_amsl_is_refused_with_the_reason(name):
    with pytest.raises(InputError) as ei:
        sample(name)
    e = ei.value
    assert e.field == f"{name}: mission.items[5].params[6]"
    assert "80 m above terrain" in e.reason and "no terrain data" in e.reason and "--terrain-frame" in e.reason


def test_calculated_above_terrain_with_amsl_flies_the_amsl_qgc_computed():
    doc = sample_doc("ArduPilotSITL-ArduCopter.plan")
    doc["mission"]["items"][5]["params"][6] = 672.5  # QGC had terrain: 592.5 m ground + 80 m
    doc["mission"]["items"][5]["AMSLAltAboveTerrain"] = 672.5
    p = read_plan(json.dumps(doc), "t.plan")
    it = p.mission[6]
    assert (it.frame, it.alt) == (C.FRAME_GLOBAL, 672.5) and not p.warnings


def test_terrain_frame_option_converts_and_says_so():
    p = sample("ArduPilotSITL-ArduCopter.plan", terrain="frame")
    it = p.mission[6]
    assert (it.frame, it.alt) == (C.FRAME_GLOBAL_TERRAIN_ALT, 80.0)
    assert any("items[5]" in w and "terrain frame (10)" in w for w in p.warnings)


# -- PX4, QGC 3.x, DO_JUMP ---------------------------------------------------------------------------
def test_px4_plan_converted_with_a_warning():
    p = sample("PX4SITL-PX4-MultiRotor.plan", terrain="frame")
    assert any("made for PX4 (firmwareType 12)" in w for w in p.warnings)


def test_px4_plan_with_a_command_ardupilot_lacks_is_refused_naming_it():
    doc = sample_doc("PX4SITL-PX4-MultiRotor.plan")
    doc["mission"]["items"] = [it for it in doc["mission"]["items"] if it.get("AltitudeMode") != 3]
    doc["mission"]["items"].append({"type": "SimpleItem", "command": 187, "frame": 2, "autoContinue": True,
                                    "doJumpId": 12, "params": [1, 0, 0, 0, 0, 0, 0]})  # DO_SET_ACTUATOR
    with pytest.raises(InputError) as ei:
        read_plan(json.dumps(doc), "px4.plan")
    assert ei.value.field == "px4.plan: mission.firmwareType" and "MAV_CMD 187" in ei.value.reason


def test_qgc3_mission_file_converted():
    p = sample("OldFileFormat.mission")
    assert p.kinds == (C.MISSION_TYPE_MISSION,) and len(p.mission) == 7
    takeoff, turns = p.mission[1], p.mission[2]
    # frame 2 on a position is AMSL to ArduPilot (AP_Mission reads MAV_FRAME_MISSION as relative_alt 0)
    assert (takeoff.command, takeoff.frame, takeoff.alt) == (C.NAV_TAKEOFF, C.FRAME_GLOBAL, 50.0)
    assert (turns.command, turns.param1, turns.lat, turns.alt) == (18, 1.0, 47.660316610000002, 10.0)
    assert any("QGC 3.x items" in w for w in p.warnings)


def test_qgc_v1_items_with_param_keys_converted():
    doc = {"fileType": "Plan", "version": 1, "mission": {
        "version": 2, "firmwareType": 3, "plannedHomePosition": [47.6, -122.1, 10],
        "items": [{"type": "missionItem", "command": 16, "frame": 3, "autoContinue": True, "doJumpId": 1,
                   "param1": 5, "param2": 0, "param3": 0, "param4": 0, "coordinate": [47.61, -122.1, 30]}]}}
    p = read_plan(json.dumps(doc), "v1.plan")
    assert (p.mission[1].param1, p.mission[1].lat, p.mission[1].alt) == (5.0, 47.61, 30.0)


def test_do_jump_target_found_by_do_jump_id():
    def wp(jid, lat):
        return {"type": "SimpleItem", "command": 16, "frame": 3, "autoContinue": True, "doJumpId": jid,
                "params": [0, 0, 0, 0, lat, 8.5, 30]}
    items = [wp(10, 47.40), wp(20, 47.41),
             {"type": "SimpleItem", "command": 177, "frame": 2, "autoContinue": True, "doJumpId": 30,
              "params": [20, 3, 0, 0, 0, 0, 0]}]
    doc = {"fileType": "Plan", "version": 1,
           "mission": {"version": 2, "firmwareType": 3, "plannedHomePosition": [47.4, 8.5, 400], "items": items}}
    p = read_plan(json.dumps(doc), "jump.plan")
    assert (p.mission[3].command, p.mission[3].param1) == (C.DO_JUMP, 2.0)  # doJumpId 20 is item 2
    bad = copy.deepcopy(doc)
    bad["mission"]["items"][2]["params"][0] = 99
    with pytest.raises(InputError, match="doJumpId 99"):
        read_plan(json.dumps(bad), "jump.plan")


# -- refusals name the field and the reason ---------------------------------------------------------
@pytest.mark.parametrize("change,field,needle", [
    (lambda d: d.update(version=2), "version", "QGroundControl writes version 1"),
    (lambda d: d["mission"].update(version=3), "mission.version", "newer QGroundControl"),
    (lambda d: d["mission"].update(firmwareType=8), "mission.firmwareType", "MAV_AUTOPILOT 8"),
    (lambda d: d["mission"]["items"].append({"type": "ComplexItem", "complexItemType": "survey"}),
     "mission.items[11]", "survey item"),
    (lambda d: d["geoFence"]["circles"].append({"inclusion": True, "circle": {"center": [1, 2], "radius": -5}}),
     "geoFence.circles[0].circle.radius", "positive"),
    (lambda d: d["rallyPoints"]["points"].append([1, 2, None]), None, "rally item 0 (NAV_RALLY_POINT) has no alt"),
])
def test_bad_plans_refused_naming_the_field(change, field, needle):
    doc = sample_doc("ArduPilotSITL-ArduCopter.plan")
    doc["mission"]["items"][5]["params"][6] = 600.0
    change(doc)
    with pytest.raises(InputError) as ei:
        read_plan(json.dumps(doc), "bad.plan")
    assert ei.value.field == (f"bad.plan: {field}" if field else "bad.plan") and needle in ei.value.reason


def test_waypoints_position_in_frame_2_sent_as_ardupilot_reads_it():
    text = ("QGC WPL 110\n0\t1\t0\t16\t0\t0\t0\t0\t47.66\t-122.1\t5.0\t1\n"
            "1\t0\t2\t22\t0\t0\t0\t0\t0\t0\t50.0\t1\n2\t0\t2\t178\t1\t10\t-1\t0\t0\t0\t0\t1\n")
    p = read_plan(text, "f2.waypoints")
    assert [(it.command, it.frame) for it in p.mission[1:]] == [(C.NAV_TAKEOFF, 0), (C.DO_CHANGE_SPEED, 2)]
    assert any("frame 2 (MAV_FRAME_MISSION)" in w for w in p.warnings)
