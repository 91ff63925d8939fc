"""The flight monitor fed with what ArduPilot sends during deliveries (texts from mode_auto.cpp,
AP_Gripper_Servo.cpp, AP_Mission.cpp; MISSION_CURRENT = current nav item)."""

from datetime import datetime, timezone

import pytest

from groundctl.core import mavcmd as C
from groundctl.core.mission import MissionItem
from groundctl.protocol import FlightMonitor, FlightSpec, VehicleState
from groundctl.protocol.monitor import distance_m
from tests.protocol.fakes import M, statustext, v

HUB = (-35.3632621, 149.1652374)
ZONE = (-35.3572621, 149.1712374)
MID = ((HUB[0] + ZONE[0]) / 2, (HUB[1] + ZONE[1]) / 2 + 0.001)
CRUISE = 40.0


def wp(lat, lon, alt=CRUISE, cmd=C.NAV_WAYPOINT, **kw):
    return MissionItem(cmd, C.FRAME_GLOBAL_RELATIVE_ALT_INT, lat=lat, lon=lon, alt=alt, **kw)


def payload_place_mission():
    return [MissionItem(C.NAV_WAYPOINT, C.FRAME_GLOBAL, lat=HUB[0], lon=HUB[1], alt=584),  # 0 home
            wp(0, 0, cmd=C.NAV_TAKEOFF),                                                   # 1
            MissionItem(C.DO_CHANGE_SPEED, C.FRAME_MISSION, param1=1, param2=12),           # 2
            wp(*MID),                                                                       # 3 out
            wp(*ZONE, cmd=C.NAV_PAYLOAD_PLACE, param1=50),                                  # 4 drop
            wp(*MID),                                                                       # 5 back
            wp(*HUB, alt=0, cmd=C.NAV_LAND)]                                                # 6


def gripper_mission():
    return [MissionItem(C.NAV_WAYPOINT, C.FRAME_GLOBAL, lat=HUB[0], lon=HUB[1], alt=584),  # 0
            wp(0, 0, cmd=C.NAV_TAKEOFF),                                                   # 1
            wp(*MID),                                                                       # 2
            wp(*ZONE),                                                                      # 3 over zone
            wp(*ZONE, alt=3),                                                               # 4 down
            MissionItem(C.DO_GRIPPER, C.FRAME_MISSION, param1=1, param2=0),                 # 5 drop
            wp(*ZONE, alt=3, cmd=C.NAV_LOITER_TIME, param1=3),                              # 6 let go
            wp(*ZONE),                                                                      # 7 climb back
            wp(*MID),                                                                       # 8 back
            wp(*HUB, alt=0, cmd=C.NAV_LAND)]                                                # 9


def winch_mission():
    return [MissionItem(C.NAV_WAYPOINT, C.FRAME_GLOBAL, lat=HUB[0], lon=HUB[1], alt=584),  # 0
            wp(0, 0, cmd=C.NAV_TAKEOFF),                                                   # 1
            wp(*MID),                                                                       # 2
            wp(*ZONE),                                                                      # 3 over zone
            wp(*ZONE, alt=20),                                                              # 4 winch height
            MissionItem(C.DO_WINCH, C.FRAME_MISSION, param1=1, param2=1, param3=20.5, param4=0.5),  # 5
            wp(*ZONE, alt=20, cmd=C.NAV_LOITER_TIME, param1=45),                            # 6 lowering
            MissionItem(C.DO_GRIPPER, C.FRAME_MISSION, param1=1, param2=0),                 # 7 drop
            wp(*ZONE, alt=20, cmd=C.NAV_LOITER_TIME, param1=3),                             # 8 let go
            MissionItem(C.DO_WINCH, C.FRAME_MISSION, param1=1, param2=1, param3=-20.5, param4=0.5),  # 9
            wp(*ZONE, alt=20, cmd=C.NAV_LOITER_TIME, param1=45),                            # 10 winding
            wp(*ZONE),                                                                      # 11 climb back
            wp(*MID),                                                                       # 12 back
            wp(*HUB, alt=0, cmd=C.NAV_LAND)]                                                # 13


def spec(mission, drop_seq, method, **kw):
    return FlightSpec(mission=mission, drop_seq=drop_seq, method=method, zone_lat=ZONE[0], zone_lon=ZONE[1],
                      hub_lat=HUB[0], hub_lon=HUB[1], battery_wh=400, **kw)


class Script:
    """Plays the vehicle: every `step` sends heartbeat, position, VFR_HUD, SYS_STATUS, MISSION_CURRENT."""

    def __init__(self, monitor: FlightMonitor):
        self.m = monitor
        self.t = 0.0
        self.armed, self.mode = False, "GUIDED"
        self.lat, self.lon, self.alt = HUB[0], HUB[1], 0.0
        self.seq = 0
        self.throttle, self.climb, self.gs = 0, 0.0, 0.0
        self.battery = 100
        self.heartbeat = True

    def feed(self, msg):
        self.m.feed(msg, self.t)

    def step(self, n=1, dt=1.0, **kw):
        for k, val in kw.items():
            setattr(self, k, val)
        for _ in range(n):
            self.t += dt
            modes = {"GUIDED": 4, "AUTO": 3, "RTL": 6, "LAND": 9}
            if self.heartbeat:
                base = M.MAV_MODE_FLAG_CUSTOM_MODE_ENABLED | (M.MAV_MODE_FLAG_SAFETY_ARMED if self.armed else 0)
                self.feed(v(M.MAVLink_heartbeat_message(2, 3, base, modes[self.mode], 4, 3)))
                self.feed(v(M.MAVLink_global_position_int_message(
                    0, round(self.lat * 1e7), round(self.lon * 1e7), round((584 + self.alt) * 1000),
                    round(self.alt * 1000), 0, 0, 0, 0)))
                self.feed(v(M.MAVLink_vfr_hud_message(self.gs, self.gs, 0, self.throttle, self.alt, self.climb)))
                self.feed(v(M.MAVLink_sys_status_message(0, 0, 0, 0, 15000, 1000, self.battery, 0, 0, 0, 0, 0, 0)))
                self.feed(v(M.MAVLink_mission_current_message(self.seq, 6, 2, 1)))
            self.m.poll(self.t)

    def text(self, s):
        for c in statustext(s):
            self.feed(c)

    def reached(self, seq):
        self.feed(v(M.MAVLink_mission_item_reached_message(seq)))

    def kinds(self):
        return [e.kind for e in self.m.events]


def take_off_and_cruise(s: Script, first_wp: int):
    s.step(3)                                      # on the ground, disarmed
    s.text("Gripper load grabbing")
    s.text("Gripper load grabbed")
    s.step(2, armed=True)                          # GUIDED armed
    s.step(1, mode="AUTO", seq=1, climb=2.5, throttle=55)
    s.step(3, alt=8.0)
    s.step(2, alt=CRUISE, climb=0.0)
    s.reached(1)
    s.step(6, seq=first_wp, gs=12.0, throttle=52, lat=MID[0] - 0.001, lon=MID[1])


def test_full_payload_place_delivery():
    m = FlightMonitor(spec(payload_place_mission(), 4, "payload_place"),
                      clock_anchor=(0.0, datetime(2026, 5, 1, 10, 0, tzinfo=timezone.utc)))
    s = Script(m)
    take_off_and_cruise(s, 3)
    s.reached(3)
    s.step(1, seq=4)
    s.text("Mission: 4 PayloadPlace")
    s.step(5, lat=ZONE[0] + 0.0002, lon=ZONE[1])  # approaching
    assert "at_zone" not in s.kinds()
    s.step(2, lat=ZONE[0], lon=ZONE[1], gs=0.2, throttle=53)  # over the zone, hovering
    assert s.kinds()[-1] == "at_zone"
    s.step(8, climb=-1.0, alt=30.0, throttle=45)
    s.step(10, alt=0.8)
    assert s.kinds()[-1] == "lowering"
    s.text("PayloadPlace: payload release thrust threshold: 0.312500")  # > 50 chars: chunked
    s.text("PayloadPlace: Releasing the gripper")
    s.text("Gripper load releasing")
    s.step(1)
    s.text("Gripper load released")
    assert s.kinds()[-1] == "released"
    released = m.events[-1]
    assert released.lat == pytest.approx(ZONE[0]) and released.alt_rel_m == pytest.approx(0.8)
    assert released.data["drop_distance_m"] < 1.0
    assert (m.drop_lat, m.drop_lon) == (pytest.approx(ZONE[0]), pytest.approx(ZONE[1]))
    s.step(5, climb=2.0, alt=20)
    s.step(3, climb=0.0, alt=CRUISE)
    s.reached(4)                                  # only after the climb back
    s.step(8, seq=5, gs=12.0, throttle=44, lat=MID[0], lon=MID[1])
    assert s.kinds()[-1] == "returning"
    s.step(5, seq=6, lat=HUB[0], lon=HUB[1], climb=-1.5, alt=5)
    s.step(3, alt=0.0, climb=0.0, armed=False, throttle=0, gs=0)
    s.step(3, seq=1)                              # the mission resets to item 1 after disarm
    assert s.kinds() == ["armed", "taking_off", "en_route", "at_zone", "lowering", "released", "returning", "landed"]
    assert m.take_reactions() == []
    assert m.events[1].time == datetime(2026, 5, 1, 10, 0, 6, tzinfo=timezone.utc)
    assert m.takeoff_time and m.landed_time and m.drop_time
    assert all(e.kind != "drop_failed" for e in m.events)


def test_gripper_drop():
    m = FlightMonitor(spec(gripper_mission(), 5, "gripper"))
    s = Script(m)
    take_off_and_cruise(s, 2)
    s.reached(2)
    s.step(6, seq=3, lat=ZONE[0] + 0.00005, lon=ZONE[1])  # 5 m out: inside the zone radius
    assert s.kinds()[-1] == "at_zone"
    s.step(3, gs=0.0, throttle=53)                # hover samples while loaded
    s.reached(3)
    s.step(8, seq=4, climb=-1.5, alt=10)
    assert s.kinds()[-1] == "lowering"
    s.step(3, alt=3.0, climb=0.0)
    s.reached(4)
    s.step(1, seq=6)                              # DO_GRIPPER starts with the loiter after it
    s.text("Mission: 5 Gripper")
    s.text("Gripper load releasing")
    assert s.kinds()[-1] == "released"
    s.step(1)
    s.text("Gripper load released")
    s.step(5, throttle=45)                        # lighter
    s.reached(6)
    s.step(4, seq=7, climb=2.0, alt=20)
    assert s.kinds()[-1] == "released"            # climbing back over the zone is not yet returning
    s.step(4, seq=8, climb=0.0, alt=CRUISE, gs=12.0, throttle=43, lat=MID[0], lon=MID[1])
    s.step(3, seq=9, armed=False, alt=0)
    assert s.kinds() == ["armed", "taking_off", "en_route", "at_zone", "lowering", "released", "returning", "landed"]


def test_winch_drop_uses_winch_status():
    m = FlightMonitor(spec(winch_mission(), 7, "winch"))
    s = Script(m)
    take_off_and_cruise(s, 2)
    s.step(4, seq=3, lat=ZONE[0], lon=ZONE[1], gs=0.0)
    s.reached(3)
    s.step(4, seq=4, alt=20)
    assert s.kinds()[-1] == "at_zone"  # descending to winch height is not lowering the parcel yet
    s.reached(4)
    s.text("Mission: 5 Winch")
    s.feed(v(M.MAVLink_winch_status_message(0, 3.0, 0.5, 0, 0, 0, 0, 0)))
    s.step(1, seq=6)
    assert s.kinds()[-1] == "lowering"
    s.feed(v(M.MAVLink_winch_status_message(0, 20.5, 0.0, 0, 0, 0, 0, 0)))
    s.reached(6)
    s.step(1, seq=8)
    s.text("Mission: 7 Gripper")
    s.text("Gripper load releasing")
    assert s.kinds()[-1] == "released"
    s.step(3, seq=10)
    s.step(3, seq=11, alt=CRUISE)
    s.step(3, seq=12, lat=MID[0], lon=MID[1], gs=12)
    assert s.kinds()[-1] == "returning"
    assert "drop_failed" not in s.kinds()


def test_payload_place_max_descent_is_a_failed_drop():
    m = FlightMonitor(spec(payload_place_mission(), 4, "payload_place"))
    s = Script(m)
    take_off_and_cruise(s, 3)
    s.step(3, seq=4, lat=ZONE[0], lon=ZONE[1], gs=0)
    s.step(10, climb=-1.0, alt=-10)
    s.text("PayloadPlace: Reached maximum descent")
    assert s.kinds()[-1] == "drop_failed" and "maximum descent" in m.events[-1].message
    s.step(5, climb=1.0, alt=CRUISE)
    s.reached(4)
    s.step(3, seq=5, lat=MID[0], lon=MID[1], gs=12)
    s.step(2, seq=6, armed=False)
    assert "released" not in s.kinds()
    assert s.kinds()[-3:] == ["drop_failed", "returning", "landed"]
    assert s.kinds().count("drop_failed") == 1


def test_payload_place_abort_and_mission_moving_on_without_release():
    m = FlightMonitor(spec(payload_place_mission(), 4, "payload_place"))
    s = Script(m)
    take_off_and_cruise(s, 3)
    s.step(3, seq=4, lat=ZONE[0], lon=ZONE[1])
    s.text("PayloadPlace: Abort: Gripper Open")
    assert s.kinds()[-1] == "drop_failed"

    m = FlightMonitor(spec(gripper_mission(), 5, "gripper"))
    s = Script(m)
    take_off_and_cruise(s, 2)
    s.step(2, seq=3, lat=ZONE[0], lon=ZONE[1])
    s.step(2, seq=4, alt=3)
    s.step(3, seq=6)
    s.text("Mission: 5 Gripper")                  # commanded, but no gripper configured: no release text
    s.reached(6)
    s.step(2, seq=7)
    assert s.kinds()[-1] == "drop_failed" and "no release seen" in m.events[-1].message


def test_gripper_jam_hover_throttle_stays_loaded():
    m = FlightMonitor(spec(gripper_mission(), 5, "gripper"))
    s = Script(m)
    take_off_and_cruise(s, 2)
    s.step(4, seq=3, lat=ZONE[0], lon=ZONE[1], gs=0.0, throttle=53)
    s.step(6, seq=4, climb=-1.5, alt=3)
    s.step(3, climb=0.0, throttle=53)
    s.step(1, seq=6)
    s.text("Gripper load releasing")
    s.step(1)
    s.text("Gripper load released")
    s.step(8, throttle=53)                        # still carrying the parcel
    assert s.kinds()[-1] == "drop_failed"
    assert "gripper jam" in m.events[-1].message and m.events[-1].data["throttle_after_pct"] == 53
    s.step(10, throttle=53)
    assert s.kinds().count("drop_failed") == 1


def test_fence_breach_status_and_text_once_per_breach():
    m = FlightMonitor(spec(payload_place_mission(), 4, "payload_place"))
    s = Script(m)
    take_off_and_cruise(s, 3)
    s.feed(v(M.MAVLink_fence_status_message(0, 0, 0, 0)))
    s.text("Polygon fence breached")
    s.feed(v(M.MAVLink_fence_status_message(1, 1, 4, 1000)))  # the same breach, by status
    s.feed(v(M.MAVLink_fence_status_message(1, 1, 4, 1000)))
    assert s.kinds().count("fence_breach") == 1
    assert m.events[-1].message == "Polygon fence breached" and m.events[-1].lat is not None
    s.step(2, mode="RTL")
    assert s.kinds()[-1] == "returning"
    s.text("Fence breach cleared")
    s.feed(v(M.MAVLink_fence_status_message(0, 1, 0, 1000)))
    s.feed(v(M.MAVLink_fence_status_message(1, 2, 1, 2000)))  # a second breach, seconds later
    # the same incident, counted again: one event, not one per flicker (issue 8: 88 events)
    assert s.kinds().count("fence_breach") == 1
    (inc,) = [i for i in m.incidents(s.t) if i.kind == "fence_breach"]
    assert inc.count == 2 and inc.open


def test_low_battery_asks_to_return_once():
    # 0.1 Wh per metre: the ~1.6 km flight needs ~160 Wh, reserve 40 Wh, battery 400 Wh
    m = FlightMonitor(spec(payload_place_mission(), 4, "payload_place", wh_per_m=0.1, reserve_wh=40))
    s = Script(m)
    take_off_and_cruise(s, 3)
    need = m.needed_wh()
    assert 100 < need < 250
    s.step(3, battery=60)
    assert "low_battery" not in s.kinds()
    s.step(1, battery=40)                         # one low sample: could be a sag
    assert "low_battery" not in s.kinds()
    s.step(3, battery=40)
    assert s.kinds().count("low_battery") == 1
    (reaction,) = m.take_reactions()
    assert reaction[0] == "return" and "Wh" in reaction[1]
    s.step(5, battery=30)
    assert s.kinds().count("low_battery") == 1 and m.take_reactions() == []


def test_low_battery_with_energy_callable_and_not_on_the_ground():
    calls = []

    def need(state, seq):
        calls.append(seq)
        return 1000.0

    m = FlightMonitor(spec(payload_place_mission(), 4, "payload_place", energy_needed_wh=need))
    s = Script(m)
    s.step(5)
    assert calls == [] and m.events == []
    take_off_and_cruise(s, 3)
    assert "low_battery" in s.kinds() and calls


def test_link_lost_and_restored_each_occurrence():
    m = FlightMonitor(spec(payload_place_mission(), 4, "payload_place"))
    s = Script(m)
    take_off_and_cruise(s, 3)
    s.step(2, dt=1.0, heartbeat=False)
    assert "link_lost" not in s.kinds()
    s.step(3, heartbeat=False)
    assert s.kinds().count("link_lost") == 1
    s.step(1, heartbeat=True)
    assert s.kinds()[-1] == "link_restored"
    s.step(6, heartbeat=False)
    s.step(2, heartbeat=True)
    # a second outage within a minute: the same link-loss incident, counted, not a second pair of events
    assert s.kinds().count("link_lost") == 1 and s.kinds().count("link_restored") == 1
    (inc,) = [i for i in m.incidents(s.t) if i.kind == "link_loss"]
    assert inc.count == 2 and not inc.open and inc.duration_s >= 4
    s.step(70)
    s.step(6, heartbeat=False)
    s.step(2, heartbeat=True)
    assert s.kinds().count("link_lost") == 2 and s.kinds().count("link_restored") == 2


def test_operator_abort():
    m = FlightMonitor(spec(payload_place_mission(), 4, "payload_place"))
    m.abort(0.0, "recipient cancelled")
    assert m.take_reactions() == [("cancel", "recipient cancelled")]
    s = Script(m)
    take_off_and_cruise(s, 3)
    m.abort(s.t, "again")  # one abort per flight
    assert m.take_reactions() == []
    m2 = FlightMonitor(spec(payload_place_mission(), 4, "payload_place"))
    s2 = Script(m2)
    take_off_and_cruise(s2, 3)
    m2.abort(s2.t, "operator")
    assert m2.take_reactions() == [("rtl", "operator")] and s2.kinds()[-1] == "aborted"


def test_resume_does_not_repeat_events():
    def fly_to_release(m):
        s = Script(m)
        take_off_and_cruise(s, 3)
        s.step(3, seq=4, lat=ZONE[0], lon=ZONE[1], gs=0)
        s.step(10, climb=-1.0, alt=0.5)
        s.text("PayloadPlace: Releasing the gripper")
        s.feed(v(M.MAVLink_fence_status_message(1, 1, 4, 1000)))
        s.step(6, heartbeat=False)
        return s

    first = FlightMonitor(spec(payload_place_mission(), 4, "payload_place"))
    s1 = fly_to_release(first)
    seen = s1.kinds()
    assert seen[-3:] == ["released", "fence_breach", "link_lost"]
    # the process restarts; the vehicle keeps sending the same state
    again = FlightMonitor(spec(payload_place_mission(), 4, "payload_place"), seen=seen)
    assert again.phase == "released" and again.released and again.link_lost
    s2 = Script(again)
    s2.seq, s2.armed, s2.mode, s2.lat, s2.lon, s2.alt = 4, True, "AUTO", ZONE[0], ZONE[1], 0.5
    s2.step(3)
    s2.feed(v(M.MAVLink_fence_status_message(1, 1, 4, 1000)))
    s2.text("Gripper load released")
    assert s2.kinds() == ["link_restored"]
    s2.step(3, seq=5, lat=MID[0], lon=MID[1], alt=CRUISE)
    s2.step(2, armed=False)
    assert s2.kinds() == ["link_restored", "returning", "landed"]


def test_other_vehicles_messages_are_ignored():
    state = VehicleState(sysid=1)
    m = FlightMonitor(spec(payload_place_mission(), 4, "payload_place"), state)
    base = M.MAV_MODE_FLAG_CUSTOM_MODE_ENABLED | M.MAV_MODE_FLAG_SAFETY_ARMED
    m.feed(v(M.MAVLink_heartbeat_message(2, 3, base, 3, 4, 3), sysid=2), 1.0)
    for c in statustext("Gripper load releasing"):
        m.feed(v(c, sysid=2), 1.0)
    assert m.events == [] and not state.armed


def test_remaining_path_and_from_plan_shape():
    sp = spec(payload_place_mission(), 4, "payload_place")
    m = FlightMonitor(sp)
    full = m.remaining_path_m()
    out = distance_m(*HUB, *MID) + distance_m(*MID, *ZONE)
    assert full == pytest.approx(2 * out, rel=1e-6)

    class Obj:
        pass
    plan = Obj()
    plan.mission, plan.drop_seq, plan.method = payload_place_mission(), 4, "payload_place"
    plan.zone, plan.hub, plan.airframe = Obj(), Obj(), Obj()
    plan.zone.lat, plan.zone.lon, plan.hub.lat, plan.hub.lon = *ZONE, *HUB
    plan.airframe.battery_wh, plan.airframe.battery_usable_fraction = 500, 0.8
    fs = FlightSpec.from_plan(plan, wh_per_m=0.05)
    assert fs.battery_wh == 400 and fs.drop_seq == 4 and fs.wh_per_m == 0.05


def test_release_far_from_the_zone_is_reported():
    m = FlightMonitor(spec(gripper_mission(), 5, "gripper"))
    s = Script(m)
    take_off_and_cruise(s, 2)
    s.text("Gripper load releasing")  # someone sent DO_GRIPPER on the way
    assert s.kinds()[-2:] == ["released", "drop_failed"]
    assert "m from the zone centre" in m.events[-1].message


def test_rtl_before_the_drop_then_restart_keeps_parcel_aboard():
    m = FlightMonitor(spec(payload_place_mission(), 4, "payload_place"))
    s = Script(m)
    take_off_and_cruise(s, 3)
    s.step(2, mode="RTL")
    assert s.kinds()[-1] == "returning"
    again = FlightMonitor(spec(payload_place_mission(), 4, "payload_place"), seen=s.kinds())
    assert again.phase == "returning" and not again.released and again.airborne


def test_duplicated_messages_do_not_duplicate_events():
    class Twice(Script):
        def feed(self, msg):
            self.m.feed(msg, self.t)
            self.m.feed(msg, self.t)

    m = FlightMonitor(spec(payload_place_mission(), 4, "payload_place"))
    s = Twice(m)
    take_off_and_cruise(s, 3)
    s.step(3, seq=4, lat=ZONE[0], lon=ZONE[1], gs=0)
    s.step(10, climb=-1.0, alt=0.5)
    s.text("PayloadPlace: payload release thrust threshold: 0.312500")
    s.text("PayloadPlace: Releasing the gripper")
    s.text("Gripper load releasing")
    s.step(3, seq=5, lat=MID[0], lon=MID[1], alt=CRUISE)
    s.step(2, armed=False)
    assert s.kinds() == ["armed", "taking_off", "en_route", "at_zone", "lowering", "released", "returning", "landed"]
