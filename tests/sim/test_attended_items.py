"""The simulator runs the attended hold as ArduCopter does, checked against its source:
- NAV_LOITER_TIME (ModeAuto::verify_loiter_time): the timer starts when the point is reached and the item
  completes p1 whole seconds later with "Reached command #N";
- DO_JUMP with repeat -1 (AP_Mission::get_next_cmd, AP_MISSION_JUMP_REPEAT_FOREVER) is followed when the
  mission advances past it: the items it skips never become current;
- MAV_CMD_DO_SET_MISSION_CURRENT (GCS_Common.cpp handle_command_do_set_mission_current ->
  AP_Mission::set_current_cmd) in a running mission starts the named item at once, ending the hold early.
Durations are the vehicle's (time_boot_ms)."""

import time

from tests.sim.mav import HOME, M, MavClient, item, offset
from tests.sim.test_flight import connect

HOLD_S = 20


def mission():
    a = offset(HOME[0], HOME[1], 40, 0)
    return [item(0, 16, M.MAV_FRAME_GLOBAL_INT, lat=HOME[0], lon=HOME[1]),
            item(1, M.MAV_CMD_NAV_TAKEOFF, alt=15),
            item(2, M.MAV_CMD_NAV_WAYPOINT, lat=a[0], lon=a[1], alt=15),
            item(3, M.MAV_CMD_NAV_LOITER_TIME, p1=HOLD_S, lat=a[0], lon=a[1], alt=15),   # the hold
            item(4, M.MAV_CMD_DO_JUMP, p1=6, p2=-1),                                      # timeout: skip 5
            item(5, M.MAV_CMD_NAV_WAYPOINT, lat=a[0], lon=a[1], alt=4),                   # the drop
            item(6, M.MAV_CMD_NAV_WAYPOINT, lat=HOME[0], lon=HOME[1], alt=15),            # home
            item(7, M.MAV_CMD_NAV_LAND, lat=HOME[0], lon=HOME[1])]


def start(sim_factory) -> MavClient:
    h = sim_factory("--speedup", "40", "--no-ekf-s", "1")
    c = connect(h.urls[0])
    assert c.upload(mission()) == M.MAV_MISSION_ACCEPTED
    c.wait_ekf()
    assert c.command(M.MAV_CMD_DO_SET_MODE, 1, 4) == M.MAV_RESULT_ACCEPTED
    assert c.command(M.MAV_CMD_COMPONENT_ARM_DISARM, 1) == M.MAV_RESULT_ACCEPTED
    assert c.command(M.MAV_CMD_MISSION_START) == M.MAV_RESULT_ACCEPTED
    return c


def watch(c: MavClient, until, timeout=15.0):
    """(time_boot_ms, mission seq, relative alt m) for every position until `until(record)` is true."""
    rec, seq = [], None
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        for m in c.poll():
            if m.get_type() == "MISSION_CURRENT":
                seq = m.seq
            elif m.get_type() == "GLOBAL_POSITION_INT":
                rec.append((m.time_boot_ms, seq, m.relative_alt / 1000))
                if until(rec):
                    return rec
    raise AssertionError(f"not reached; last {rec[-3:]} texts {c.texts[-8:]}")


def test_hold_times_out_and_jumps_past_the_drop(sim_factory):
    c = start(sim_factory)
    rec = watch(c, lambda r: r[-1][1] == 6, timeout=20)
    held = [r for r in rec if r[1] == 3]
    assert held, rec[-5:]
    # the item is current from the moment the previous waypoint is reached; its timer starts on arrival,
    # which is the same point here: it lasts the hold, give or take the arrival
    span = (held[-1][0] - held[0][0]) / 1000
    assert HOLD_S - 0.5 <= span <= HOLD_S + 2, span
    assert all(abs(r[2] - 15) < 0.5 for r in held[5:])
    assert 5 not in {r[1] for r in rec}, "the skipped drop item became current"
    assert any(t == "Reached command #3" for t in c.texts), c.texts[-8:]
    c.close()


def test_set_mission_current_ends_the_hold_early(sim_factory):
    c = start(sim_factory)
    rec = watch(c, lambda r: r[-1][1] == 3 and sum(1 for x in r if x[1] == 3) > 20)
    t0 = rec[-1][0]
    assert c.command(M.MAV_CMD_DO_SET_MISSION_CURRENT, 5) == M.MAV_RESULT_ACCEPTED
    rec = watch(c, lambda r: r[-1][1] == 6)
    drop = [r for r in rec if r[1] == 5]
    low = min(drop, key=lambda r: r[2])
    assert low[2] < 7.0, low  # flew the drop item: from the 15 m hold down towards its 4 m
    assert (low[0] - t0) / 1000 < HOLD_S  # down there before the hold would have ended
    assert not any(t == "Reached command #3" for t in c.texts)
    c.close()
