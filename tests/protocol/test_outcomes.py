"""Outcomes, incidents and vehicle time, fed to the monitor as the message sequences ArduPilot sends.

Failsafe texts and actions from ArduPilot's source: ArduCopter/ekf_check.cpp (failsafe_ekf_event:
"EKF variance", then "EKF Failsafe: changed to LAND Mode" after set_mode_land_with_pause), events.cpp
(announce_failsafe "GCS Failsafe", gpsglitch_check "GPS Glitch or Compass error"), crash_check.cpp
("Crash: Disarming: AngErr=..."), AC_Fence.cpp print_fence_message ("Polygon fence breached") and
ArduCopter/fence.cpp ("Fence breach cleared"); LAND is custom_mode 9 (ArduCopter/mode.h). A GPS lost
in flight (SITL: SIM_GPS1_ENABLE=0) shows as GPS_RAW_INT fix_type < 3 before the EKF gives up.
"""

from datetime import datetime, timedelta, timezone

from groundctl.core import mavcmd as C
from groundctl.protocol import FlightMonitor
from groundctl.protocol.monitor import distance_m
from tests.protocol.fakes import M, statustext, v
from tests.protocol.test_monitor import CRUISE, HUB, MID, ZONE, gripper_mission, payload_place_mission, spec, winch_mission

BOOT_UTC = datetime(2026, 5, 1, 9, 0, tzinfo=timezone.utc)  # the vehicle's UTC at time_boot_ms = 0
MODES = {"GUIDED": 4, "AUTO": 3, "RTL": 6, "LAND": 9, "SMART_RTL": 21, "ALT_HOLD": 2}
# 1.5 km west of the hub, on no route: where an EKF failsafe LAND comes down
AWAY = (HUB[0], HUB[1] - 0.0165)


class Vehicle:
    """Plays ArduCopter: heartbeat, position (with time_boot_ms), SYSTEM_TIME, GPS, battery, mission."""

    def __init__(self, monitor: FlightMonitor, *, ms0: int = 600_000):
        self.m = monitor
        self.rx = 0.0          # when we hear it (our monotonic clock)
        self.ms = ms0          # the vehicle's time_boot_ms
        self.armed, self.mode = False, "GUIDED"
        self.lat, self.lon, self.alt = HUB[0], HUB[1], 0.0
        self.seq, self.fix, self.battery, self.roll = 0, 3, 100, 0.0
        self.link = True

    def utc(self, ms=None):
        return BOOT_UTC + timedelta(milliseconds=self.ms if ms is None else ms)

    def feed(self, msg):
        self.m.feed(msg, self.rx)

    def messages(self):
        base = M.MAV_MODE_FLAG_CUSTOM_MODE_ENABLED | (M.MAV_MODE_FLAG_SAFETY_ARMED if self.armed else 0)
        us = int(self.utc().timestamp() * 1e6)
        return [v(M.MAVLink_heartbeat_message(2, 3, base, MODES[self.mode], 4, 3)),
                v(M.MAVLink_system_time_message(us, self.ms)),
                v(M.MAVLink_global_position_int_message(self.ms, round(self.lat * 1e7), round(self.lon * 1e7),
                                                        round((584 + self.alt) * 1000), round(self.alt * 1000),
                                                        0, 0, 0, 0)),
                v(M.MAVLink_attitude_message(self.ms, self.roll, 0, 0, 0, 0, 0)),
                v(M.MAVLink_gps_raw_int_message(0, self.fix, 0, 0, 0, 100, 100, 0, 0, 10)),
                v(M.MAVLink_sys_status_message(0, 0, 0, 0, 15000, 1000, self.battery, 0, 0, 0, 0, 0, 0)),
                v(M.MAVLink_mission_current_message(self.seq, 6, 2, 1))]

    def step(self, n=1, dt=1.0, **kw):
        for k, val in kw.items():
            setattr(self, k, val)
        for _ in range(n):
            self.rx += dt
            self.ms += int(dt * 1000)
            if self.link:
                for msg in self.messages():
                    self.feed(msg)
            self.m.poll(self.rx)

    def text(self, s):
        for c in statustext(s):
            self.feed(c)

    def kinds(self):
        return [e.kind for e in self.m.events]

    def incident(self, kind):
        found = [i for i in self.m.incidents(self.rx) if i.kind == kind]
        assert len(found) <= 1, found
        return found[0] if found else None


def monitor(mission=None, drop_seq=4, method="payload_place", **kw):
    return FlightMonitor(spec(mission or payload_place_mission(), drop_seq, method, **kw),
                         clock_anchor=(0.0, BOOT_UTC + timedelta(minutes=10)))


def fly_out(s: Vehicle):
    s.step(2)
    s.step(2, armed=True)
    s.step(1, mode="AUTO", seq=1)
    s.step(10, alt=CRUISE)
    s.step(20, seq=3, lat=MID[0], lon=MID[1])


def deliver_payload_place(s: Vehicle):
    s.step(5, seq=4, lat=ZONE[0], lon=ZONE[1])
    s.step(10, alt=0.5)
    s.text("PayloadPlace: payload release thrust threshold: 0.51")
    s.text("PayloadPlace: Releasing the gripper")
    s.step(10, alt=CRUISE)


def test_clean_delivery_is_delivered_with_no_incidents():
    m = monitor()
    s = Vehicle(m)
    fly_out(s)
    deliver_payload_place(s)
    s.step(20, seq=5, lat=MID[0], lon=MID[1])
    s.step(10, seq=6, lat=HUB[0], lon=HUB[1], alt=0)
    s.step(2, armed=False)
    assert s.kinds()[-1] == "landed"
    assert m.outcome() == "delivered" and m.parcel == "delivered" and m.incidents(s.rx) == []


def test_ekf_failsafe_on_the_way_home_is_landed_away_not_delivered():
    """What SITL did in issue 8: GPS lost on the way home, EKF failsafe, LAND 1.5 km from the hub."""
    m = monitor()
    s = Vehicle(m)
    fly_out(s)
    deliver_payload_place(s)
    s.step(20, seq=5, lat=MID[0], lon=MID[1])
    s.step(10, seq=6, lat=AWAY[0], lon=AWAY[1] + 0.002)
    s.step(5, fix=1)                                  # SIM_GPS1_ENABLE=0: no fix
    t_fs = s.utc()
    s.text("EKF variance")
    s.text("EKF Failsafe: changed to LAND Mode")
    s.step(1, mode="LAND")
    s.step(30, lat=AWAY[0], lon=AWAY[1], alt=0)
    s.step(2, armed=False)
    assert m.outcome() == "landed_away", s.kinds()
    assert m.parcel == "delivered"
    assert 1300 < m.end_distance_m() < 1700
    assert m.end_mode == "LAND"
    fs, mode, gps = s.incident("failsafe"), s.incident("mode_change"), s.incident("gps_loss")
    assert fs.detail == ["EKF"] and fs.count == 1 and fs.first == t_fs
    assert mode.worst == "LAND" and "not commanded" in mode.message and "EKF" in mode.message
    assert gps.worst == 1.0 and gps.duration_s > 30
    k = s.kinds()
    assert k.count("failsafe") == 1 and k.count("mode_change") == 1 and k.count("gps_loss") == 1
    landed = m.events[-1]
    assert "LAND" in landed.message and "m from the hub" in landed.message


def test_ekf_failsafe_on_the_way_out_is_landed_away_with_the_parcel():
    m = monitor()
    s = Vehicle(m)
    fly_out(s)
    s.step(3, fix=0)
    s.text("EKF Failsafe: changed to LAND Mode")
    s.step(1, mode="LAND")
    s.step(30, alt=0)
    s.step(2, armed=False)
    assert m.outcome() == "landed_away" and m.parcel == "aboard"  # never returned_with_parcel
    assert "drop_failed" not in s.kinds()


def test_gcs_failsafe_rtl_home_after_delivery_is_delivered_with_incidents():
    m = monitor()
    s = Vehicle(m)
    fly_out(s)
    deliver_payload_place(s)
    s.text("GCS Failsafe")                           # events.cpp announce_failsafe("GCS")
    s.step(1, mode="RTL")
    s.step(30, lat=HUB[0], lon=HUB[1], alt=0)
    s.text("GCS Failsafe Cleared")
    s.step(2, armed=False)
    assert m.outcome() == "delivered_with_incidents"
    assert {i.kind for i in m.incidents(s.rx)} == {"failsafe", "mode_change"}
    assert s.incident("failsafe").detail == ["GCS"] and not s.incident("failsafe").open


def test_commanded_modes_are_not_incidents():
    m = monitor()
    s = Vehicle(m)
    fly_out(s)
    m.expect_mode("SMART_RTL")                        # the runtime is about to command it
    s.step(20, mode="SMART_RTL", lat=HUB[0], lon=HUB[1], alt=0)
    s.step(2, armed=False)
    assert s.incident("mode_change") is None
    assert m.outcome() == "returned_with_parcel"


def test_fence_breach_flickering_88_times_is_one_incident_and_one_event():
    m = monitor()
    s = Vehicle(m)
    fly_out(s)
    s.feed(v(M.MAVLink_fence_status_message(0, 0, 0, 0)))
    for i in range(88):
        s.text("Polygon fence breached")
        s.feed(v(M.MAVLink_fence_status_message(1, i + 1, 4, s.ms)))
        s.step(1, dt=0.5)
        s.text("Fence breach cleared")
        s.feed(v(M.MAVLink_fence_status_message(0, i + 1, 0, s.ms)))
        s.step(1, dt=0.5)
    assert s.kinds().count("fence_breach") == 1
    inc = s.incident("fence_breach")
    assert inc.count == 88 and not inc.open and 40 < inc.duration_s < 48
    deliver_payload_place(s)
    s.step(10, seq=6, lat=HUB[0], lon=HUB[1], alt=0)
    s.step(2, armed=False)
    assert m.outcome() == "delivered_with_incidents"


def test_breaches_between_two_fence_reports_still_count():
    """FENCE_STATUS comes at 1 Hz: its breach_count tallies the flickers that fell between two reports."""
    m = monitor()
    s = Vehicle(m)
    fly_out(s)
    s.feed(v(M.MAVLink_fence_status_message(0, 2, 0, 0)))   # two breaches before this flight
    s.feed(v(M.MAVLink_fence_status_message(1, 7, 4, s.ms - 3000)))
    assert s.kinds().count("fence_breach") == 1 and s.incident("fence_breach").count == 5
    # dated by FENCE_STATUS.breach_time, the vehicle's time of the breach, not when we heard of it
    assert m.events[-1].time == s.utc(s.ms - 3000)


def test_crash_text_is_crashed():
    m = monitor()
    s = Vehicle(m)
    fly_out(s)
    s.text("Crash: Disarming: AngErr=47>30, Accel=0.2<3.0")
    s.step(1, armed=False, alt=0, roll=1.4)
    assert m.outcome() == "crashed" and s.kinds().count("crashed") == 1


def test_disarmed_on_its_side_is_crashed_even_without_the_text():
    m = monitor()
    s = Vehicle(m)
    fly_out(s)
    s.step(1, roll=1.5)
    s.step(1, armed=False, alt=0)
    assert m.outcome() == "crashed"


def test_events_are_dated_by_the_vehicle_clock_not_by_arrival():
    """A link that stalls and then delivers its backlog (TCP, a radio with a buffer): every event gets
    the vehicle time of the messages around it, not the moment the burst arrived."""
    m = monitor()
    s = Vehicle(m)
    fly_out(s)
    assert m.events[-1].kind == "en_route"
    s.link = False
    s.step(6)                                          # silence: link_lost after 3 s
    assert s.kinds()[-1] == "link_lost"
    lost_at = m.events[-1].time
    assert lost_at == s.utc(s.ms - 6000)               # the last the vehicle said
    # the vehicle meanwhile: 60 s at the zone, placed the parcel; we hear nothing of it ...
    backlog = []
    for i in range(30):
        s.ms += 1000
        s.seq, s.lat, s.lon = 4, ZONE[0], ZONE[1]
        backlog += s.messages()
        if i == 10:
            backlog += statustext("PayloadPlace: Releasing the gripper")
            release_ms = s.ms
    # ... then all of it at once, 40 s late
    s.rx += 40
    for msg in backlog:
        s.feed(msg)
    rel = next(e for e in m.events if e.kind == "released")
    assert rel.time == s.utc(release_ms), (rel.time, s.utc(release_ms))
    restored = next(e for e in m.events if e.kind == "link_restored")
    assert lost_at < restored.time < rel.time
    # the backlog carried the positions too: the drop is placed where the vehicle said it was then
    assert distance_m(m.drop_lat, m.drop_lon, *ZONE) < 1


def test_phase_inferred_after_an_outage_is_dated_inside_it():
    """UDP drops what it cannot send: at_zone is inferred when the link comes back, and dated between
    the last and the first vehicle time around the outage, where the vehicle passed the zone."""
    m = monitor()
    s = Vehicle(m)
    fly_out(s)
    s.link = False
    s.step(60, seq=4, lat=ZONE[0], lon=ZONE[1])
    lost = next(e for e in m.events if e.kind == "link_lost")
    s.link = True
    s.step(1, seq=5, lat=MID[0], lon=MID[1])
    first_heard = s.utc()
    s.step(1)
    at_zone = next(e for e in m.events if e.kind == "at_zone")
    lo, hi = (datetime.fromisoformat(x) for x in at_zone.data["time_bounds"])
    assert lo == lost.time and hi == first_heard
    assert lo < at_zone.time < hi and at_zone.data["time_source"] == "interpolated"
    (inc,) = [i for i in m.incidents(s.rx) if i.kind == "link_loss"]
    assert 59 < inc.duration_s < 63  # vehicle seconds


def test_return_entry_follows_the_route_back():
    # gripper mission: 2 out (MID), 3 over zone, 4 down, 5 DO_GRIPPER, 6 let go, 7 climb back, 8 back (MID), 9 land
    m = monitor(gripper_mission(), 5, "gripper")
    s = Vehicle(m)
    s.step(2)
    s.step(2, armed=True)
    s.step(1, mode="AUTO", seq=1)
    s.step(10, alt=CRUISE)
    s.step(3, seq=2, lat=HUB[0] + 0.0005, lon=HUB[1] + 0.0005)
    assert m.return_entry() == 9                       # first leg: straight back to the hub
    s.step(3, seq=3, lat=MID[0] + 0.001, lon=MID[1])
    mid_back = m.return_entry()
    assert mid_back == 8 and distance_m(m.spec.mission[8].lat, m.spec.mission[8].lon, *MID) < 1
    s.step(3, seq=4, lat=ZONE[0], lon=ZONE[1], alt=3)
    assert m.return_entry() == 7                       # at the zone: climb back first, DO_GRIPPER skipped
    m.turning_back(7)
    s.step(3, seq=7, alt=CRUISE)
    m.turned_back(7, s.rx)
    s.step(10, seq=8, lat=MID[0], lon=MID[1])
    assert "drop_failed" not in s.kinds() and "returning" in s.kinds()
    assert m.homeward() and m.return_entry() is None
    s.step(10, seq=9, lat=HUB[0], lon=HUB[1], alt=0)
    s.step(2, armed=False)
    assert m.outcome() == "returned_with_parcel" and m.parcel == "aboard"


def test_return_entry_winds_the_winch_in_first():
    m = monitor(winch_mission(), 7, "winch")
    s = Vehicle(m)
    fly_out(s)
    s.step(3, seq=4, lat=ZONE[0], lon=ZONE[1], alt=20)
    s.feed(v(M.MAVLink_winch_status_message(0, 8.0, 0.5, 0, 0, 0, 0, 0)))
    s.step(2, seq=6)
    entry = m.return_entry()
    assert m.spec.mission[entry].command == C.DO_WINCH and m.spec.mission[entry].param3 < 0


def test_low_battery_reserve_used_and_the_return_reaction():
    m = monitor(wh_per_m=0.1, reserve_wh=40)
    s = Vehicle(m)
    fly_out(s)
    s.step(4, battery=40)                              # 160 Wh left, the rest needs more + reserve
    assert s.kinds().count("low_battery") == 1
    assert m.take_reactions()[0][0] == "return"
    s.step(3, battery=8)                               # 32 Wh: into the reserve
    assert s.kinds().count("reserve_used") == 1
    s.step(3, battery=7)
    reserve = s.incident("reserve_used")
    assert reserve.worst == 28.0 and reserve.unit == "Wh" and s.kinds().count("reserve_used") == 1
    assert s.incident("low_battery").worst == 28.0


def test_outcome_table():
    """Every outcome from one place; `lost` when the runtime gives up on a silent vehicle."""
    m = monitor()
    s = Vehicle(m)
    assert m.outcome() == "failed"
    m.abort(s.rx, "operator")
    assert m.outcome() == "aborted"
    m = monitor()
    s = Vehicle(m)
    fly_out(s)
    s.link = False
    s.step(10)
    assert m.outcome(lost=True) == "lost" and m.parcel == "aboard"


def test_resume_from_stored_events_keeps_incidents_and_the_parcel():
    """After a restart the stored events bring back what the kinds alone cannot: the incidents so far
    (a resumed flight that breached the fence is not a clean delivery) and a parcel left off target."""
    from groundctl.protocol.events import DeliveryEvent

    stored = [DeliveryEvent("armed"), DeliveryEvent("taking_off"), DeliveryEvent("en_route"),
              DeliveryEvent("fence_breach", message="Polygon fence breached"), DeliveryEvent("at_zone"),
              DeliveryEvent("released"), DeliveryEvent("drop_failed", data={"parcel": "left"})]
    m = FlightMonitor(spec(payload_place_mission(), 4, "payload_place"), seen=stored)
    assert [i.kind for i in m.incidents(0.0)] == ["fence_breach"]
    assert m.parcel == "misdelivered"
    m = FlightMonitor(spec(payload_place_mission(), 4, "payload_place"), seen=[e.kind for e in stored[:6]])
    s = Vehicle(m)
    s.armed, s.mode, s.seq, s.alt = True, "AUTO", 5, CRUISE
    s.step(10, lat=MID[0], lon=MID[1])
    s.step(10, seq=6, lat=HUB[0], lon=HUB[1], alt=0)
    s.step(2, armed=False)
    assert m.outcome() == "delivered_with_incidents"  # the breach before the restart still counts


def test_vehicle_clock_anchors():
    """The vehicle's own UTC when it agrees with ours (a real GPS clock); our clock at the first
    timestamp when it does not (a simulator run faster than real time); a reboot re-anchors."""
    from groundctl.protocol import VehicleState
    from groundctl.protocol.incidents import VehicleClock

    ours = datetime(2026, 5, 1, 12, 0, tzinfo=timezone.utc)
    st = VehicleState()
    clock = VehicleClock(st, lambda now: ours + timedelta(seconds=now))
    st.update(v(M.MAVLink_attitude_message(5_000, 0, 0, 0, 0, 0, 0)), 10.0)
    assert clock.now(10.0) == ours + timedelta(seconds=10) and clock.source == "boot_ms"
    st.update(v(M.MAVLink_attitude_message(65_000, 0, 0, 0, 0, 0, 0)), 13.0)  # 60 vehicle s in 3 of ours
    assert clock.now(13.0) == ours + timedelta(seconds=70)
    true = ours + timedelta(seconds=10, milliseconds=300)  # the vehicle's GPS clock, 0.3 s from ours
    us = int((true + timedelta(seconds=60)).timestamp() * 1e6)
    st.update(v(M.MAVLink_system_time_message(us, 65_000)), 13.1)
    assert clock.now(13.1) == true + timedelta(seconds=60) and clock.source == "vehicle_utc"
    st.update(v(M.MAVLink_attitude_message(2_000, 0, 0, 0, 0, 0, 0)), 20.0)  # rebooted
    assert st.boots == 1 and clock.now(20.0) == ours + timedelta(seconds=20)
    st.update(v(M.MAVLink_attitude_message(1_500, 0, 0, 0, 0, 0, 0)), 20.1)  # a late one: no running back
    assert clock.now(20.1) == ours + timedelta(seconds=20)


def _return_paths(plan, mon):
    """(where the vehicle is, the mission item it would be sent to) for every outbound leg (start, middle,
    end) and over the zone, as the monitor sees it."""
    m = plan.mission
    navs = [i for i, it in enumerate(m) if it.is_nav and not (it.lat == 0 and it.lon == 0) and 0 < i <= mon._zone_seq]
    prev = (plan.hub.lat, plan.hub.lon)
    for k in navs:
        for f in (0.05, 0.5, 0.95):
            lat, lon = prev[0] + f * (m[k].lat - prev[0]), prev[1] + f * (m[k].lon - prev[1])
            yield k, (lat, lon), "en_route"
        prev = (m[k].lat, m[k].lon)
    for k in range(mon._zone_seq, plan.drop_seq + 2):
        yield k, (plan.zone.lat, plan.zone.lon), "lowering"


def test_return_entry_stays_on_cleared_legs_for_every_bundled_flight():
    """For every bundled scenario, zone and drop method: wherever the vehicle is on its way out, the
    way home the monitor picks (straight to the jump target, then the mission from there) keeps the
    planned clearance from every no-fly zone, where the straight line home often does not."""
    from shapely.geometry import LineString

    from groundctl.core.plan import Parcel, build_plan, make_planner
    from groundctl.core.scenario import bundled, load_scenario
    from groundctl.protocol import FlightSpec

    checked = straight_hits = 0
    for name in bundled():
        sc = load_scenario(name)
        ops, air = sc.fleet.operations, sc.airspace
        for hub in sc.fleet.hubs:
            planner = make_planner(air, hub, ops)
            blocking = air.blocking(ops.cruise_alt_m + ops.vertical_margin_m, hub.elevation_m)
            for zone in sc.zones:
                for method in ("payload_place", "gripper", "winch"):
                    try:
                        plan = build_plan(air, sc.fleet, hub.name, zone, Parcel(mass_kg=1.0), method=method,
                                          planner=planner)
                    except Exception:
                        continue  # no route, zone out of range, method not carried: nothing to fly
                    mon = FlightMonitor(FlightSpec.from_plan(plan))
                    m = plan.mission
                    for k, (lat, lon), phase in _return_paths(plan, mon):
                        mon.state.mission_seq, mon.state.lat, mon.state.lon, mon.phase = k, lat, lon, phase
                        j = mon.return_entry()
                        assert j is not None, (name, zone.name, method, k)
                        pts = [(lon, lat)] + [(it.lon, it.lat) for it in m[j:] if it.is_nav and (it.lat or it.lon)]
                        path = LineString([air.frame.to_xy(*p) for p in pts])
                        clear = min((air.zones_xy[i].distance(path) for i in blocking), default=1e9)
                        assert clear > ops.lateral_margin_m - 1.0, (name, zone.name, method, k, j, clear)
                        straight = LineString([air.frame.to_xy(lon, lat), air.frame.to_xy(hub.lon, hub.lat)])
                        straight_hits += air.zones_hit(straight, blocking, margin_m=ops.lateral_margin_m - 1.0) != []
                        checked += 1
    assert checked > 100, checked
    assert straight_hits > 0  # some of these would have gone through a zone on a straight RTL
    print(f"{checked} return paths checked, {straight_hits} where the straight line home is not clear")
