"""Delivery missions, fences and plan files: what an operator loads into QGroundControl or the vehicle."""

import json
import math

import pytest
from pymavlink.dialects.v20 import ardupilotmega as mavlink
from shapely.geometry import LineString, Point, Polygon

from groundctl.core import mavcmd as C
from groundctl.core.mission import MissionItem, compare
from groundctl.core.plan import Parcel, build_plan, make_planner
from groundctl.core.planfiles import from_qgc_plan, from_wpl, to_qgc_plan, to_wpl
from groundctl.errors import InputError, NoRouteError


def test_mavlink_numbers_match_pymavlink():
    for name in dir(C):
        if name.isupper() and isinstance(getattr(C, name), int):
            value = getattr(C, name)
            for prefix in ("MAV_CMD_", "MAV_", ""):
                cand = prefix + name
                if hasattr(mavlink, cand):
                    assert getattr(mavlink, cand) == value, cand
                    break
            else:
                if name not in ("FRAME_MEANING", "NAMES", "NAV_COMMANDS", "FENCE_COMMANDS", "STORED_IN_LOCATION"):
                    pytest.fail(f"{name} not found in pymavlink")


@pytest.fixture
def plans(cmac):
    planner = make_planner(cmac.airspace, cmac.fleet.hub("cmac"), cmac.fleet.operations)
    return {m: build_plan(cmac.airspace, cmac.fleet, "cmac", cmac.zone("clinic-east"), Parcel(mass_kg=1.2),
                          method=m, planner=planner) for m in ("payload_place", "gripper", "winch")}


def test_mission_shape(plans, cmac):
    hub = cmac.fleet.hub("cmac")
    for method, p in plans.items():
        m = p.mission
        assert m[0].frame == C.FRAME_GLOBAL and (m[0].lat, m[0].lon) == (hub.lat, hub.lon)  # home
        assert m[1].command == C.NAV_TAKEOFF and m[1].alt == p.cruise_alt_m
        assert m[-1].command == C.NAV_LAND and (m[-1].lat, m[-1].lon) == (hub.lat, hub.lon)
        drop = m[p.drop_seq]
        assert drop.command in (C.NAV_PAYLOAD_PLACE, C.DO_GRIPPER)
        # every waypoint before the drop is on the outbound route, in order, at cruise height
        wps = [it for it in m[2:p.drop_seq] if it.command == C.NAV_WAYPOINT and it.alt == p.cruise_alt_m]
        assert len(wps) >= len(p.route_out.points_ll) - 2


def test_payload_place_max_descent_exceeds_what_is_needed(plans):
    p = plans["payload_place"]
    item = p.mission[p.drop_seq]
    assert item.command == C.NAV_PAYLOAD_PLACE
    assert item.param1 > p.cruise_alt_m - p.zone_ground_rel_home_m  # else "Reached maximum descent"
    assert (item.lat, item.lon) == (round(p.zone.lat, 7), round(p.zone.lon, 7))


def test_gripper_and_winch_sequences(plans):
    g = [it.command for it in plans["gripper"].mission]
    i = g.index(C.DO_GRIPPER)
    assert g[i - 1] == C.NAV_WAYPOINT and g[i + 1] == C.NAV_LOITER_TIME  # release while hovering at drop height
    assert plans["gripper"].mission[i].param2 == C.GRIPPER_ACTION_RELEASE
    w = plans["winch"].mission
    winch = [it for it in w if it.command == C.DO_WINCH]
    assert len(winch) == 2 and winch[0].param3 > 0 and winch[1].param3 == -winch[0].param3
    assert winch[0].param2 == C.WINCH_RELATIVE_LENGTH_CONTROL


def test_route_clear_of_zones_and_inside_area(plans, cmac):
    p = plans["payload_place"]
    frame = cmac.airspace.frame
    line = LineString(p.route_out.points_xy)
    assert cmac.airspace.service_xy.covers(line)
    for i in cmac.airspace.blocking(70, 584):
        assert cmac.airspace.zones_xy[i].distance(line) >= cmac.fleet.operations.lateral_margin_m - 1e-6
    assert len(p.route_out.points_ll) > 2  # the CMAC example bends
    assert p.route_out.skirted
    straight = math.dist(p.route_out.points_xy[0], p.route_out.points_xy[-1])
    assert p.route_out.length_m > straight


def test_fence(plans, cmac):
    p = plans["payload_place"]
    f = p.fence
    assert f[-1].command == C.NAV_FENCE_RETURN_POINT
    assert len(f) <= cmac.fleet.operations.fence_max_vertices
    incl = [it for it in f if it.command == C.NAV_FENCE_POLYGON_VERTEX_INCLUSION]
    assert incl and all(it.param1 == len(incl) for it in incl)
    frame = cmac.airspace.frame
    poly = Polygon([frame.to_xy(it.lon, it.lat) for it in incl])
    assert poly.covers(LineString(p.route_out.points_xy).buffer(cmac.fleet.operations.fence_margin_m))
    circles = [it for it in f if it.command == C.NAV_FENCE_CIRCLE_EXCLUSION]
    assert circles and circles[0].param1 == 280  # the helipad, with its real radius
    assert p.params["FENCE_ALT_MAX"] == cmac.airspace.ceiling_m
    assert p.params["FENCE_ENABLE"] == 1 and p.params["FENCE_ACTION"] == 1
    assert [it.command for it in p.rally] == [C.NAV_RALLY_POINT]


def test_unreachable_and_invalid_zones(cmac):
    with pytest.raises(NoRouteError, match="Wetland reserve"):
        build_plan(cmac.airspace, cmac.fleet, "cmac", cmac.zone("island"), Parcel(mass_kg=1))
    with pytest.raises(InputError, match="Hospital helipad"):
        build_plan(cmac.airspace, cmac.fleet, "cmac", cmac.zone("helipad-roof"), Parcel(mass_kg=1))
    with pytest.raises(InputError, match="cannot drop by 'gripper'"):
        build_plan(cmac.airspace, cmac.fleet, "cmac", cmac.zone("clinic-east"), Parcel(mass_kg=1),
                   airframe_name="hexa-heavy", method="gripper")


def test_straight_when_nothing_in_the_way(cmac):
    p = build_plan(cmac.airspace, cmac.fleet, "cmac", cmac.zone("lab-south"), Parcel(mass_kg=1))
    assert len(p.route_out.points_ll) == 2  # the radio-mast zone is above the flight band
    assert not p.route_out.skirted


@pytest.mark.parametrize("method", ["payload_place", "gripper", "winch"])
def test_plan_and_wpl_round_trip(plans, method):
    p = plans[method]
    strip = lambda items: [it.with_(label="") for it in items]
    doc = json.loads(json.dumps(to_qgc_plan(p.mission, p.fence, p.rally)))
    m, f, r = from_qgc_plan(doc)
    # the .plan says it QGC's way (frame 3 for 6, the takeoff drawn at the launch position): same meaning
    home = p.mission[0]
    launch = [it.with_(lat=home.lat, lon=home.lon) if it.command == C.NAV_TAKEOFF else it for it in p.mission]
    assert len(m) == len(p.mission) and compare(launch, m, C.MISSION_TYPE_MISSION) == []
    assert f == strip(p.fence) and r == strip(p.rally)
    assert from_wpl(to_wpl(p.mission)) == strip(p.mission)


def test_qgc_plan_structure(plans):
    doc = to_qgc_plan(plans["payload_place"].mission, plans["payload_place"].fence, plans["payload_place"].rally)
    assert doc["fileType"] == "Plan" and doc["mission"]["firmwareType"] == 3
    for it in doc["mission"]["items"]:
        assert it["type"] == "SimpleItem" and len(it["params"]) == 7
    gf = doc["geoFence"]
    assert gf["version"] == 2 and any(pg["inclusion"] for pg in gf["polygons"])
    assert len(gf["breachReturn"]) == 3 and doc["rallyPoints"]["version"] == 2


def test_bad_plan_files():
    with pytest.raises(InputError, match="fileType"):
        from_qgc_plan({"fileType": "Mission"})
    with pytest.raises(InputError) as ei:
        from_qgc_plan({"fileType": "Plan", "mission": {"plannedHomePosition": [0, 0, 0],
                                                       "items": [{"type": "SimpleItem", "command": 16, "frame": 3, "params": [0]}]}})
    assert ei.value.field == "mission.items[0].params"
    with pytest.raises(InputError, match="12 fields"):
        from_wpl("QGC WPL 110\n0\t1\t0\t16\n")
    with pytest.raises(InputError, match="QGC WPL 110"):
        from_wpl("hello")


def test_readback_comparison_ignores_ardupilot_quirks():
    sent = [MissionItem(C.NAV_WAYPOINT, 0, lat=1, lon=2, alt=500),
            MissionItem(C.NAV_TAKEOFF, C.FRAME_GLOBAL_RELATIVE_ALT_INT, alt=60),
            MissionItem(C.NAV_LAND, C.FRAME_GLOBAL_RELATIVE_ALT_INT, param4=37.5, lat=-35.1, lon=149.1),
           MissionItem(C.NAV_LOITER_TIME, C.FRAME_GLOBAL_RELATIVE_ALT_INT, param1=3, lat=-35.1, lon=149.1, alt=3)]
    got = [MissionItem(C.NAV_WAYPOINT, 0, lat=-35.0, lon=149.0, alt=584.1),  # real home
           MissionItem(C.NAV_TAKEOFF, C.FRAME_GLOBAL_RELATIVE_ALT, alt=60),
           MissionItem(C.NAV_LAND, C.FRAME_GLOBAL_RELATIVE_ALT, param4=1.0, lat=-35.1, lon=149.1),
           MissionItem(C.NAV_LOITER_TIME, C.FRAME_GLOBAL_RELATIVE_ALT, param1=3, param3=1, lat=-35.1, lon=149.1, alt=3)]
    assert compare(sent, got, C.MISSION_TYPE_MISSION) == []
    wrong = got[:2] + [got[2].with_(lat=-35.2), got[3]]
    assert "item 2 (NAV_LAND): position" in compare(sent, wrong, C.MISSION_TYPE_MISSION)[0]
    ccw = got[:3] + [got[3].with_(param3=-1)]  # a loiter read back turning the other way is a real difference
    assert "param3" in compare(sent, ccw, C.MISSION_TYPE_MISSION)[0]
    fence_sent = [MissionItem(C.NAV_FENCE_CIRCLE_EXCLUSION, C.FRAME_GLOBAL, param1=280, lat=1, lon=2, alt=10)]
    fence_got = [MissionItem(C.NAV_FENCE_CIRCLE_EXCLUSION, 0, param1=280, lat=1, lon=2, alt=0)]
    assert compare(fence_sent, fence_got, C.MISSION_TYPE_FENCE) == []
    rally_sent = [MissionItem(C.NAV_RALLY_POINT, C.FRAME_GLOBAL_RELATIVE_ALT_INT, lat=1, lon=2, alt=60.4)]
    rally_got = [MissionItem(C.NAV_RALLY_POINT, C.FRAME_GLOBAL_RELATIVE_ALT, lat=1, lon=2, alt=60)]
    assert compare(rally_sent, rally_got, C.MISSION_TYPE_RALLY) == []
    assert compare(rally_sent, rally_got[:0], C.MISSION_TYPE_RALLY) == ["1 items sent, 0 read back"]
