"""In-process checks of the storage conversions and helpers (no sockets)."""

import math

import pytest

from pymavlink.dialects.v20 import ardupilotmega as M

from sim import geo
from sim.battery import ocv_cell
from sim.cli import _glue_negative_values
from sim.failsafes import fence_names
from sim.mission import convert_fence_item, convert_mission_item, convert_rally_item, validate_fence


def d(cmd, frame=6, p=(0, 0, 0, 0), x=-353632610, y=1491652300, z=10.0):
    return {"command": cmd, "frame": frame, "param1": p[0], "param2": p[1], "param3": p[2],
            "param4": p[3], "x": x, "y": y, "z": z, "seq": 1, "current": 0, "autocontinue": 1,
            "mission_type": 0}


def test_mission_storage_round_trip_quirks():
    res, it = convert_mission_item(d(M.MAV_CMD_NAV_LAND, 5, (0, 0, 0, -0.3), z=0))
    assert res == M.MAV_MISSION_ACCEPTED and it.frame == M.MAV_FRAME_GLOBAL and it.param4 == -1.0
    res, it = convert_mission_item(d(M.MAV_CMD_NAV_LAND, 6, (0, 0, 0, float("nan"))))
    assert it.param4 == 1.0 and it.frame == M.MAV_FRAME_GLOBAL_RELATIVE_ALT
    res, it = convert_mission_item(d(M.MAV_CMD_NAV_WAYPOINT, 11, (2.9, 0, 0, 0), z=1.999))
    assert it.frame == M.MAV_FRAME_GLOBAL_TERRAIN_ALT and it.param1 == 2.0 and math.isclose(it.z, 1.99, abs_tol=1e-6)
    res, it = convert_mission_item(d(M.MAV_CMD_NAV_LOITER_TIME, 6, (30, 0, -5, 0)))
    assert (it.param1, it.param3) == (30.0, -1.0)
    res, it = convert_mission_item(d(M.MAV_CMD_NAV_PAYLOAD_PLACE, 6, (12.345, 0, 0, 0)))
    assert math.isclose(it.param1, 12.34, abs_tol=1e-5)
    res, it = convert_mission_item(d(M.MAV_CMD_DO_GRIPPER, 2, (1, 0, 0, 0), x=5, y=6, z=7))
    assert (it.frame, it.x, it.y, it.z) == (0, 0, 0, 0.0)
    assert convert_mission_item(d(M.MAV_CMD_NAV_WAYPOINT, 1))[0] == M.MAV_MISSION_UNSUPPORTED_FRAME
    assert convert_mission_item(d(31000))[0] == M.MAV_MISSION_UNSUPPORTED
    assert convert_mission_item(d(M.MAV_CMD_NAV_WAYPOINT, 6, (float("nan"), 0, 0, 0)))[0] == M.MAV_MISSION_INVALID_PARAM1
    assert convert_mission_item(d(M.MAV_CMD_NAV_WAYPOINT, 6, x=950000000))[0] == M.MAV_MISSION_INVALID_PARAM5_X


def test_fence_and_rally_conversions():
    res, it = convert_fence_item(d(M.MAV_CMD_NAV_FENCE_CIRCLE_INCLUSION, 6, (75.5, 0, 0, 0), z=30))
    assert res == M.MAV_MISSION_ACCEPTED and (it.frame, it.z, it.param1) == (0, 0.0, 75.5)
    assert convert_fence_item(d(M.MAV_CMD_NAV_FENCE_POLYGON_VERTEX_INCLUSION, 6, (300, 0, 0, 0)))[0] \
        == M.MAV_MISSION_INVALID_PARAM1
    assert convert_fence_item(d(M.MAV_CMD_NAV_WAYPOINT))[0] == M.MAV_MISSION_UNSUPPORTED
    res, it = convert_rally_item(d(M.MAV_CMD_NAV_RALLY_POINT, 5, z=33.9))
    assert (it.frame, it.z) == (M.MAV_FRAME_GLOBAL, 33.0)
    assert convert_rally_item(d(M.MAV_CMD_NAV_RALLY_POINT, 6, z=40000))[0] == M.MAV_MISSION_INVALID_PARAM7


def test_fence_validation_texts():
    texts = []
    poly = [convert_fence_item(d(M.MAV_CMD_NAV_FENCE_POLYGON_VERTEX_INCLUSION, 6, (3, 0, 0, 0)))[1] for _ in range(3)]
    assert validate_fence(poly, lambda sev, t: texts.append(t))
    ret = convert_fence_item(d(M.MAV_CMD_NAV_FENCE_RETURN_POINT))[1]
    assert not validate_fence(poly[:2] + [ret], lambda sev, t: texts.append(t))
    assert texts[-1].startswith("Received incorrect type")
    assert not validate_fence([ret, ret], lambda sev, t: texts.append(t))
    assert texts[-1] == "Multiple return points"


def test_geo_and_names():
    n, e = geo.ne_offset(-353632610, 1491652300, -353623627, 1491652300)
    assert math.isclose(n, 100.0, abs_tol=0.05) and abs(e) < 1e-9
    lat, lon = geo.offset_latlon(-353632610, 1491652300, 100.0, 50.0)
    n2, e2 = geo.ne_offset(-353632610, 1491652300, lat, lon)
    assert math.isclose(n2, 100.0, abs_tol=0.01) and math.isclose(e2, 50.0, abs_tol=0.01)
    sq = [(0, 0), (10, 0), (10, 10), (0, 10)]
    assert geo.point_in_polygon(5, 5, sq) and not geo.point_in_polygon(15, 5, sq)
    assert fence_names(4) == "Polygon fence"
    assert fence_names(1 | 4) == "Max Alt and Polygon fences"
    assert fence_names(1 | 2 | 4) == "Max Alt, Circle and Polygon fences"
    assert ocv_cell(1.0) > ocv_cell(0.5) > ocv_cell(0.0)


def test_cli_accepts_negative_latitudes():
    assert _glue_negative_values(["--home", "-35,149,584,0", "--obstacle", "-35,149,3,4", "--sysid", "2"]) == \
        ["--home=-35,149,584,0", "--obstacle=-35,149,3,4", "--sysid", "2"]


def test_param_set_rounding_like_ap_param():
    from sim.params import INT8, INT16, REAL32, coerce
    assert coerce(2.7, INT8) == 2.0          # truncated after +0.01, not rounded
    assert coerce(2.995, INT16) == 3.0       # the 0.01 nudge saves 2.999... from becoming 2
    assert coerce(-1.995, INT8) == -2.0
    assert coerce(300, INT8) == 127.0
    assert coerce(0.1, REAL32) != 0.1 and abs(coerce(0.1, REAL32) - 0.1) < 1e-8


def test_terrain_patch_moves_the_ground(tmp_path):
    """--terrain: a valley (or hilltop) round a point; the ground elsewhere stays at home."""
    from sim.vehicle import Options, Vehicle

    class _Runner:
        now = 0.0

    home = (-2.0847, 29.7563, 1850.0, 0.0)
    v = Vehicle(_Runner(), 1, Options(home=home, terrain=[(-2.0847, 29.7600, 100.0, -30.0)], obstacles=[
        (-2.0847, 29.7600, 5.0, -25.0)]))
    n, e = 0.0, (29.7600 - 29.7563) * 111320.0 * 0.99934
    assert v.ground_h(n, e) == pytest.approx(-25.0)  # a shed standing in the valley
    assert v.ground_h(n + 50, e) == pytest.approx(-30.0)
    assert v.ground_h(0.0, 0.0) == 0.0
