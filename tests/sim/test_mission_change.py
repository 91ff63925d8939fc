"""The simulator treats a mission replaced in flight as ArduCopter does (issue 11, item 3), checked against
its source:
- an upload is applied item by item (MissionItemProtocol::handle_mission_item -> AP_Mission::replace_cmd),
  and in AUTO the change detector (AP_Mission_ChangeDetector::check_for_mission_change, called from
  ModeAuto::run) restarts the running waypoint command from storage as soon as the next nav commands
  differ: "Auto mission changed, restarted command", and the vehicle turns to the new item at once;
- outside AUTO the mission is stopped (ModeAuto::exit -> AP_Mission::stop): an upload changes nothing the
  vehicle does, DO_SET_MISSION_CURRENT only moves the index (AP_Mission::set_current_cmd), and AUTO
  resumes there (MIS_RESTART 0)."""

import math

from tests.sim.mav import HOME, M, MavClient, item, offset
from tests.sim.test_attended_items import watch
from tests.sim.test_flight import connect

NORTH = offset(HOME[0], HOME[1], 400, 0)
EAST = offset(HOME[0], HOME[1], 0, 400)


def mission(target):
    return [item(0, 16, M.MAV_FRAME_GLOBAL_INT, lat=HOME[0], lon=HOME[1]),
            item(1, M.MAV_CMD_NAV_TAKEOFF, alt=15),
            item(2, M.MAV_CMD_NAV_WAYPOINT, lat=target[0], lon=target[1], alt=15),
            item(3, M.MAV_CMD_NAV_LAND, lat=HOME[0], lon=HOME[1])]


def start(sim_factory) -> MavClient:
    c = connect(sim_factory("--speedup", "40", "--no-ekf-s", "1").urls[0])
    assert c.upload(mission(NORTH)) == M.MAV_MISSION_ACCEPTED
    c.wait_ekf()
    assert c.command(M.MAV_CMD_DO_SET_MODE, 1, 4) == M.MAV_RESULT_ACCEPTED
    assert c.command(M.MAV_CMD_COMPONENT_ARM_DISARM, 1) == M.MAV_RESULT_ACCEPTED
    assert c.command(M.MAV_CMD_MISSION_START) == M.MAV_RESULT_ACCEPTED
    watch(c, lambda r: r[-1][1] == 2 and r[-1][2] > 14, timeout=20)
    return c


def heading_to(c, target, n=15):
    """Where the vehicle is going: bearing of its velocity against the bearing to `target` (degrees apart)."""
    pos = [c.recv("GLOBAL_POSITION_INT") for _ in range(n)][-1]
    course = math.degrees(math.atan2(pos.vy, pos.vx))
    dn = (target[0] - pos.lat * 1e-7) * 111_320
    de = (target[1] - pos.lon * 1e-7) * 111_320 * math.cos(math.radians(HOME[0]))
    return abs((course - math.degrees(math.atan2(de, dn)) + 180) % 360 - 180)


def test_upload_in_auto_restarts_the_running_waypoint_from_the_new_mission(sim_factory):
    c = start(sim_factory)
    assert heading_to(c, NORTH) < 20
    assert c.upload(mission(EAST)) == M.MAV_MISSION_ACCEPTED
    assert c.wait_text("Auto mission changed, restarted command", timeout=5)
    assert heading_to(c, EAST, n=40) < 30  # turned to the new item 2 without any command
    c.close()


def test_upload_in_guided_waits_for_set_current_and_auto(sim_factory):
    c = start(sim_factory)
    assert c.command(M.MAV_CMD_DO_SET_MODE, 1, 4) == M.MAV_RESULT_ACCEPTED  # GUIDED: holds where it is
    assert c.upload(mission(EAST)) == M.MAV_MISSION_ACCEPTED
    held = [c.recv("GLOBAL_POSITION_INT") for _ in range(40)][-1]
    assert math.hypot(held.vx, held.vy) < 100  # cm/s: stopped, not off to either item
    assert not any("mission changed" in t for t in c.texts), c.texts[-5:]
    assert c.command(M.MAV_CMD_DO_SET_MISSION_CURRENT, 2) == M.MAV_RESULT_ACCEPTED
    assert c.command(M.MAV_CMD_DO_SET_MODE, 1, 3) == M.MAV_RESULT_ACCEPTED  # AUTO resumes at item 2
    assert heading_to(c, EAST, n=40) < 30
    c.close()
