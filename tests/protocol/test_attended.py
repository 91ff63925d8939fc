"""The attended hold, fed with what ArduPilot sends (MISSION_CURRENT = the current nav item; a DO_JUMP is
followed inside AP_Mission and never shows): hold, clearance, timeout, the overdue backstop, a restart.
Times are the vehicle's (time_boot_ms in GLOBAL_POSITION_INT)."""

from groundctl.core import mavcmd as C
from groundctl.core.mission import MissionItem
from groundctl.core.plan import AttendedHold
from groundctl.protocol import FlightMonitor
from groundctl.protocol.attended import CLEAR_MARGIN_S, OVERDUE_S
from tests.protocol.fakes import M, v
from tests.protocol.test_monitor import CRUISE, HUB, MID, ZONE, Script, spec, wp

HOLD = AttendedHold(hold_seq=4, jump_seq=5, clear_seq=6, absent_seq=9, hold_s=60.0)


def attended_mission():
    return [MissionItem(C.NAV_WAYPOINT, C.FRAME_GLOBAL, lat=HUB[0], lon=HUB[1], alt=584),  # 0 home
            wp(0, 0, cmd=C.NAV_TAKEOFF),                                                   # 1
            wp(*MID),                                                                       # 2 out
            wp(*ZONE, param1=5),                                                            # 3 over zone: weigh
            wp(*ZONE, cmd=C.NAV_LOITER_TIME, param1=60),                                    # 4 hold
            MissionItem(C.DO_JUMP, C.FRAME_MISSION, param1=9, param2=-1),                   # 5 absent: jump
            wp(*ZONE, alt=3),                                                               # 6 down (clear here)
            MissionItem(C.DO_GRIPPER, C.FRAME_MISSION, param1=1, param2=0),                 # 7 drop
            wp(*ZONE, alt=3, cmd=C.NAV_LOITER_TIME, param1=3),                              # 8 let go
            wp(*ZONE),                                                                      # 9 climb back
            wp(*MID),                                                                       # 10 back
            wp(*HUB, alt=0, cmd=C.NAV_LAND)]                                                # 11


class Timed(Script):
    """The scripted vehicle, with its own clock: time_boot_ms runs with the script's time."""

    def step(self, n=1, dt=1.0, **kw):
        for k, val in kw.items():
            setattr(self, k, val)
        for _ in range(n):
            self.t += dt
            modes = {"GUIDED": 4, "AUTO": 3, "RTL": 6, "LAND": 9}
            base = M.MAV_MODE_FLAG_CUSTOM_MODE_ENABLED | (M.MAV_MODE_FLAG_SAFETY_ARMED if self.armed else 0)
            self.feed(v(M.MAVLink_heartbeat_message(2, 3, base, modes[self.mode], 4, 3)))
            self.feed(v(M.MAVLink_global_position_int_message(
                round(self.t * 1000), round(self.lat * 1e7), round(self.lon * 1e7), round((584 + self.alt) * 1000),
                round(self.alt * 1000), 0, 0, 0, 0)))
            self.feed(v(M.MAVLink_vfr_hud_message(self.gs, self.gs, 0, self.throttle, self.alt, self.climb)))
            self.feed(v(M.MAVLink_mission_current_message(self.seq, 11, 2, 1)))
            self.m.poll(self.t)


def to_hold(seen=()):
    m = FlightMonitor(spec(attended_mission(), 7, "gripper", hold=HOLD), seen=seen)
    s = Timed(m)
    s.step(3)
    s.step(2, armed=True)
    s.step(1, mode="AUTO", seq=1, climb=2.5, throttle=55)
    s.step(3, alt=CRUISE, climb=0.0)
    s.reached(1)
    s.step(3, seq=2, gs=12.0, lat=MID[0], lon=MID[1])
    assert m.clearance_refusal() == "the drone is not holding above the zone yet"
    s.step(3, seq=3, gs=0.0, lat=ZONE[0], lon=ZONE[1])
    s.step(2, seq=4)
    return m, s


def test_hold_announces_its_deadline_in_vehicle_time():
    m, s = to_hold()
    (hold,) = [e for e in m.events if e.kind == "holding_for_recipient"]
    start_ms = round((s.t - 1) * 1000)  # the vehicle time of the first MISSION_CURRENT showing the hold
    assert hold.data["deadline_boot_ms"] == start_ms + 60_000
    assert m.awaiting_clearance and m.clearance_refusal() is None
    assert 58 <= m.hold_left_s() <= 60
    assert m.hold_view()["awaiting_clearance"] is True


def test_timeout_jump_is_recipient_absent_not_a_failed_drop():
    m, s = to_hold()
    s.step(30)
    assert m.awaiting_clearance
    s.step(29)
    assert m.clearance_refusal() == "the hold is over: the drone is on its way home with the parcel"
    s.step(1)
    s.step(3, seq=9)  # the vehicle's hold ran out; AP_Mission followed the DO_JUMP to the climb-back
    k = [e.kind for e in m.events]
    assert "recipient_absent" in k and "drop_failed" not in k and "lowering" not in k, k
    assert m.phase == "returning" and not m.awaiting_clearance
    assert m.clearance_refusal() == "the drone has left the zone with the parcel"
    s.step(3, seq=10, lat=MID[0], lon=MID[1])
    s.step(2, seq=11, lat=HUB[0], lon=HUB[1], alt=0.0)
    s.step(2, armed=False)
    assert m.outcome() == "returned_with_parcel" and m.outcome_reason() == "recipient_absent"
    assert m.parcel == "aboard"
    gone = next(e for e in m.events if e.kind == "recipient_absent")
    assert gone.data["reason"] == "recipient_absent" and 60 <= gone.data["held_s"] <= 64


def test_clearance_then_drop():
    m, s = to_hold()
    s.step(10)
    m.clearing(True)
    assert not m.awaiting_clearance  # said before the command: MISSION_CURRENT may move first
    s.step(1, seq=6, alt=20)
    m.cleared(s.t, "recipient")
    s.step(3, alt=3)
    s.text("Gripper load releasing")
    k = [e.kind for e in m.events]
    assert k.index("holding_for_recipient") < k.index("cleared_to_drop") < k.index("released"), k
    assert m.clearance_refusal() == "the drop is already cleared"
    clear = next(e for e in m.events if e.kind == "cleared_to_drop")
    assert clear.data["by"] == "recipient" and 10 <= clear.data["held_s"] <= 12


def test_refused_close_to_the_deadline():
    m, s = to_hold()
    s.step(int(60 - CLEAR_MARGIN_S) - 1)
    assert m.clearance_refusal() is None
    s.step(2)
    assert "hold is over" in m.clearance_refusal()


def test_an_autopilot_that_keeps_holding_is_sent_home():
    m, s = to_hold()
    s.step(60 + int(OVERDUE_S) - 1)
    assert m.take_reactions() == []
    s.step(3)
    assert m.take_reactions() == [("return", "recipient absent: the hold ran out")]
    assert "recipient_absent" in [e.kind for e in m.events]
    # the runtime jumps home along the route: the climb-back over the zone, then the return leg
    assert m.return_entry() == 9


def test_a_restart_in_the_hold_keeps_the_vehicle_deadline():
    m, s = to_hold()
    s.step(20)
    stored = list(m.events)
    again = FlightMonitor(spec(attended_mission(), 7, "gripper", hold=HOLD), seen=stored)
    s2 = Timed(again)
    s2.t, s2.seq, s2.armed, s2.mode, s2.lat, s2.lon, s2.alt = s.t, 4, True, "AUTO", ZONE[0], ZONE[1], CRUISE
    s2.step(2)
    assert [e.kind for e in again.events] == []  # nothing announced twice
    assert again.awaiting_clearance
    assert abs(again.hold_left_s() - m.hold_left_s() + 2) < 0.01  # the same deadline, two vehicle seconds on


def test_no_clearance_over_a_dead_link():
    m, s = to_hold()
    s.step(5)
    assert m.clearance_refusal() is None
    s.heartbeat = False
    for _ in range(5):  # silence: the vehicle's clock is not heard either
        s.t += 1.0
        m.poll(s.t)
    assert m.link_lost and "link to the drone is down" in m.clearance_refusal()
