"""Flights: AUTO payload place, gripper jam, reboot, several vehicles, RTL, fence, battery."""

import time

from tests.sim.mav import HOME, M, MavClient, item, offset

GRIPPER_PARAMS = [("GRIP_ENABLE", 1, M.MAV_PARAM_TYPE_INT8), ("GRIP_TYPE", 1, M.MAV_PARAM_TYPE_INT8),
                  ("SERVO9_FUNCTION", 28, M.MAV_PARAM_TYPE_INT16),
                  ("SIM_GRPS_ENABLE", 1, M.MAV_PARAM_TYPE_INT8), ("SIM_GRPS_PIN", 9, M.MAV_PARAM_TYPE_INT8)]


def connect(url, timeout=5.0) -> MavClient:
    deadline = time.monotonic() + timeout
    while True:
        try:
            return MavClient(url)
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.02)


def reboot(c: MavClient, url: str) -> MavClient:
    assert c.command(M.MAV_CMD_PREFLIGHT_REBOOT_SHUTDOWN, 1) == M.MAV_RESULT_ACCEPTED
    deadline = time.monotonic() + 5
    while not c.closed and time.monotonic() < deadline:
        c.poll()
    assert c.closed, "a reboot closes the TCP connection"
    c.close()
    return connect(url)


def setup_gripper(c: MavClient, url: str) -> MavClient:
    for name, value, ptype in GRIPPER_PARAMS:
        assert c.set_param(name, value, ptype).param_value == value
    c = reboot(c, url)
    c.wait_ekf()
    assert c.command(M.MAV_CMD_DO_GRIPPER, 1, M.GRIPPER_ACTION_GRAB) == M.MAV_RESULT_ACCEPTED
    assert c.wait_text("Gripper load grabbed", 5)
    return c


def delivery(zone_dn=60.0, zone_de=20.0, alt=12.0, max_descent=0.0):
    zlat, zlon = offset(HOME[0], HOME[1], zone_dn, zone_de)
    return [
        item(0, 16, M.MAV_FRAME_GLOBAL_INT, lat=HOME[0], lon=HOME[1], alt=0),
        item(1, M.MAV_CMD_NAV_TAKEOFF, alt=alt),
        item(2, M.MAV_CMD_NAV_WAYPOINT, lat=zlat, lon=zlon, alt=alt),
        item(3, M.MAV_CMD_NAV_PAYLOAD_PLACE, p1=max_descent, lat=zlat, lon=zlon, alt=0),
        item(4, M.MAV_CMD_NAV_WAYPOINT, lat=HOME[0], lon=HOME[1], alt=alt),
        item(5, M.MAV_CMD_NAV_LAND, lat=HOME[0], lon=HOME[1], alt=0),
    ]


def fly(c: MavClient, timeout=12.0):
    """GUIDED, arm, MISSION_START; collect reached items and VFR_HUD until disarmed."""
    assert c.command(M.MAV_CMD_DO_SET_MODE, 1, 4) == M.MAV_RESULT_ACCEPTED
    assert c.command(M.MAV_CMD_COMPONENT_ARM_DISARM, 1) == M.MAV_RESULT_ACCEPTED
    assert c.command(M.MAV_CMD_MISSION_START) == M.MAV_RESULT_ACCEPTED
    reached, huds, statuses = [], [], []
    armed_seen = False
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        m = c.recv(("HEARTBEAT", "MISSION_ITEM_REACHED", "VFR_HUD", "SYS_STATUS"), timeout=1)
        if m is None:
            continue
        t = m.get_type()
        if t == "MISSION_ITEM_REACHED":
            reached.append(m.seq)
        elif t == "VFR_HUD":
            huds.append(m)
        elif t == "SYS_STATUS":
            statuses.append(m)
        elif t == "HEARTBEAT":
            armed = bool(m.base_mode & M.MAV_MODE_FLAG_SAFETY_ARMED)
            armed_seen |= armed
            if armed_seen and not armed:
                return reached, huds, statuses
    raise AssertionError(f"flight did not end; reached={reached} texts={c.texts[-10:]}")


def in_order(texts, wanted):
    it = iter(texts)
    return all(any(w in t for t in it) for w in wanted)


def test_auto_payload_place_delivery(sim_factory):
    h = sim_factory("--speedup", "40", "--no-ekf-s", "1", "--payload-kg", "1.0")
    c = setup_gripper(MavClient(h.urls[0]), h.urls[0])
    assert c.upload(delivery()) == M.MAV_MISSION_ACCEPTED
    reached, huds, statuses = fly(c)
    assert in_order(c.texts, [
        "Mission: 1 Takeoff", "Mission: 2 WP", "Reached command #2", "Mission: 3 PayloadPlace",
        "PayloadPlace: payload release thrust threshold: ", "PayloadPlace: Releasing the gripper",
        "Gripper load releasing", "Gripper load released", "Mission: 4 WP", "Mission: 5 Land",
        "Disarming motors"])
    assert not any("Reached maximum descent" in t for t in c.texts)
    # payload place is reached only after the climb back; never the final NAV_LAND
    assert reached == [1, 2, 3, 4]
    # lighter on the way home: hover throttle drops once the parcel is gone
    cruise = [m.throttle for m in huds if abs(m.alt - 596.0) < 0.5 and abs(m.climb) < 0.05]
    assert max(cruise) - min(cruise) >= 5
    cur = c.recv("MISSION_CURRENT", lambda m: m.seq == 1, 5)  # mission restarts at item 1
    assert cur is not None and cur.mission_state == M.MISSION_STATE_ACTIVE
    c.close()


def test_gripper_jam_keeps_the_load(sim_factory):
    currents = {}
    for jam in (False, True):
        args = ["--speedup", "40", "--no-ekf-s", "1", "--payload-kg", "1.5"] + (["--gripper-jam"] if jam else [])
        h = sim_factory(*args)
        c = setup_gripper(MavClient(h.urls[0]), h.urls[0])
        assert c.upload(delivery()) == M.MAV_MISSION_ACCEPTED
        _, huds, statuses = fly(c)
        assert in_order(c.texts, ["PayloadPlace: Releasing the gripper", "Gripper load released"])
        # current while cruising home (after the drop), level flight
        currents[jam] = statuses[-1].current_battery
        thr_home = [m.throttle for m in huds if abs(m.climb) < 0.05 and m.groundspeed > 5][-3:]
        currents[(jam, "thr")] = min(thr_home)
        c.close()
        h.stop()
    assert currents[(True, "thr")] > currents[(False, "thr")] + 3


def test_max_descent_aborts_the_drop(sim_factory):
    h = sim_factory("--speedup", "40", "--no-ekf-s", "1", "--payload-kg", "1.0")
    c = setup_gripper(MavClient(h.urls[0]), h.urls[0])
    assert c.upload(delivery(max_descent=5.0)) == M.MAV_MISSION_ACCEPTED
    reached, _, _ = fly(c)
    assert c.wait_text("PayloadPlace: Reached maximum descent", 1)
    assert not any("Releasing the gripper" in t for t in c.texts)
    assert 3 in reached
    c.close()


def test_obstacle_touchdown_on_top(sim_factory):
    zlat, zlon = offset(HOME[0], HOME[1], 60, 20)
    h = sim_factory("--speedup", "40", "--no-ekf-s", "1", "--payload-kg", "1.0",
                    "--obstacle", f"{zlat},{zlon},3,4")
    c = setup_gripper(MavClient(h.urls[0]), h.urls[0])
    assert c.upload(delivery()) == M.MAV_MISSION_ACCEPTED
    c.command(M.MAV_CMD_DO_SET_MODE, 1, 4)
    c.command(M.MAV_CMD_COMPONENT_ARM_DISARM, 1)
    c.command(M.MAV_CMD_MISSION_START)
    assert c.wait_text("PayloadPlace: Releasing the gripper", 12)
    gp = c.latest("GLOBAL_POSITION_INT", timeout=2)
    # released on top of a 4 m object, not at ground level
    assert 4.0 < gp.relative_alt / 1000 < 5.5
    c.close()


def test_reboot_keeps_params_and_mission(sim_factory):
    h = sim_factory("--speedup", "20", "--no-ekf-s", "1")
    c = MavClient(h.urls[0])
    assert c.upload(delivery()) == M.MAV_MISSION_ACCEPTED
    c.set_param("WPNAV_SPEED", 800)
    c = reboot(c, h.urls[0])
    c.send(M.MAVLink_param_request_read_message(1, 1, b"WPNAV_SPEED", -1))
    assert c.recv("PARAM_VALUE", lambda m: m.param_id == "WPNAV_SPEED", 5).param_value == 800
    assert len(c.download()) == 6
    # gripper params need that reboot: before it DO_GRIPPER is acknowledged and does nothing
    c.set_param("GRIP_ENABLE", 1, M.MAV_PARAM_TYPE_INT8)
    c.set_param("GRIP_TYPE", 1, M.MAV_PARAM_TYPE_INT8)
    c.set_param("SERVO9_FUNCTION", 28, M.MAV_PARAM_TYPE_INT16)
    assert c.command(M.MAV_CMD_DO_GRIPPER, 1, 1) == M.MAV_RESULT_ACCEPTED
    assert not c.wait_text("Gripper load grabbing", 1)
    c.close()


def test_three_vehicles_one_process(sim_factory):
    h = sim_factory("--speedup", "20", "--no-ekf-s", "1", "--count", "3", "--sysid", "7")
    assert [s for s, _ in h.ready] == [7, 8, 9]
    assert len(set(h.urls)) == 3
    positions = []
    for sysid, url in zip((7, 8, 9), h.urls):
        c = MavClient(url)
        hb = c.recv("HEARTBEAT", timeout=5)
        assert hb.get_srcSystem() == sysid
        gp = c.recv("GLOBAL_POSITION_INT", lambda m: m.lat != 0, 5)
        positions.append((gp.lat, gp.lon))
        c.close()
    assert len(set(positions)) == 3


def test_guided_takeoff_rtl_to_nearest_rally(sim_factory):
    h = sim_factory("--speedup", "40", "--no-ekf-s", "1")
    c = MavClient(h.urls[0])
    c.wait_ekf()
    rlat, rlon = offset(HOME[0], HOME[1], 60, 0)
    rally = [item(0, M.MAV_CMD_NAV_RALLY_POINT, lat=rlat, lon=rlon, alt=15, mtype=M.MAV_MISSION_TYPE_RALLY)]
    assert c.upload(rally, M.MAV_MISSION_TYPE_RALLY) == M.MAV_MISSION_ACCEPTED
    c.command(M.MAV_CMD_DO_SET_MODE, 1, 4)
    assert c.command(M.MAV_CMD_COMPONENT_ARM_DISARM, 1) == M.MAV_RESULT_ACCEPTED
    assert c.command(M.MAV_CMD_NAV_TAKEOFF, 0, 0, 0, 0, 0, 0, 10) == M.MAV_RESULT_ACCEPTED
    assert c.recv("GLOBAL_POSITION_INT", lambda m: m.relative_alt > 9500, 5)
    # fly to a point nearer the rally point than home, then RTL
    tlat, tlon = offset(HOME[0], HOME[1], 90, 0)
    c.send(M.MAVLink_set_position_target_global_int_message(
        0, 1, 1, M.MAV_FRAME_GLOBAL_RELATIVE_ALT_INT, 0b110111111000,
        int(tlat * 1e7), int(tlon * 1e7), 10, 0, 0, 0, 0, 0, 0, 0, 0))
    assert c.recv("GLOBAL_POSITION_INT", lambda m: abs(m.lat - int(tlat * 1e7)) < 30, 6)
    assert c.command(M.MAV_CMD_NAV_RETURN_TO_LAUNCH) == M.MAV_RESULT_ACCEPTED
    hb = c.recv("HEARTBEAT", lambda m: not m.base_mode & M.MAV_MODE_FLAG_SAFETY_ARMED, 10)
    assert hb is not None and hb.custom_mode == 6
    gp = c.latest("GLOBAL_POSITION_INT", timeout=2)
    assert abs(gp.lat - int(rlat * 1e7)) < 30 and abs(gp.lon - int(rlon * 1e7)) < 30
    c.close()


def test_fence_breach_triggers_rtl(sim_factory):
    h = sim_factory("--speedup", "40", "--no-ekf-s", "1")
    c = MavClient(h.urls[0])
    c.wait_ekf()
    c.set_param("FENCE_ENABLE", 1, M.MAV_PARAM_TYPE_INT8)
    c.set_param("FENCE_ALT_MAX", 15)
    c.command(M.MAV_CMD_DO_SET_MODE, 1, 4)
    assert c.command(M.MAV_CMD_COMPONENT_ARM_DISARM, 1) == M.MAV_RESULT_ACCEPTED
    assert c.command(M.MAV_CMD_NAV_TAKEOFF, 0, 0, 0, 0, 0, 0, 25) == M.MAV_RESULT_ACCEPTED
    assert c.wait_text("Max Alt fence breached", 8)
    fs = c.recv("FENCE_STATUS", lambda m: m.breach_status == 1, 3)
    assert fs.breach_type == M.FENCE_BREACH_MAXALT
    assert c.recv("HEARTBEAT", lambda m: m.custom_mode == 6, 3)  # FENCE_ACTION 1 = RTL
    c.close()


def test_low_battery_failsafe_rtl(sim_factory):
    h = sim_factory("--speedup", "40", "--no-ekf-s", "1", "--battery-pct", "24")
    c = MavClient(h.urls[0])
    c.wait_ekf()
    c.command(M.MAV_CMD_DO_SET_MODE, 1, 4)
    assert c.command(M.MAV_CMD_COMPONENT_ARM_DISARM, 1) == M.MAV_RESULT_ACCEPTED
    assert c.command(M.MAV_CMD_NAV_TAKEOFF, 0, 0, 0, 0, 0, 0, 20) == M.MAV_RESULT_ACCEPTED
    assert c.wait_text("Battery 1 is low", 10)
    assert c.recv("HEARTBEAT", lambda m: m.custom_mode == 6, 3)
    st = c.latest("SYS_STATUS", timeout=3)
    assert st.battery_remaining <= 24
    c.close()


def test_auto_on_ground_without_auto_options_disarms(sim_factory):
    h = sim_factory("--speedup", "40", "--no-ekf-s", "1")
    c = MavClient(h.urls[0])
    assert c.upload(delivery()) == M.MAV_MISSION_ACCEPTED
    c.wait_ekf()
    c.command(M.MAV_CMD_DO_SET_MODE, 1, 4)
    assert c.command(M.MAV_CMD_COMPONENT_ARM_DISARM, 1) == M.MAV_RESULT_ACCEPTED
    assert c.command(M.MAV_CMD_DO_SET_MODE, 1, 3) == M.MAV_RESULT_ACCEPTED
    # the takeoff waits for throttle that never comes; DISARM_DELAY (10 s) disarms
    hb = c.recv("HEARTBEAT", lambda m: not m.base_mode & M.MAV_MODE_FLAG_SAFETY_ARMED, 5)
    assert hb is not None
    gp = c.latest("GLOBAL_POSITION_INT", timeout=2)
    assert gp.relative_alt == 0
    c.close()


def test_winch_pays_out_and_reports(sim_factory):
    h = sim_factory("--speedup", "40", "--no-ekf-s", "1")
    c = MavClient(h.urls[0])
    assert c.command(M.MAV_CMD_DO_WINCH, 1, 1, 5, 1) == M.MAV_RESULT_FAILED  # no winch configured
    c.set_param("WINCH_TYPE", 1, M.MAV_PARAM_TYPE_INT8)
    c = reboot(c, h.urls[0])
    assert c.command(M.MAV_CMD_DO_WINCH, 1, M.WINCH_RELATIVE_LENGTH_CONTROL, 5, 1) == M.MAV_RESULT_ACCEPTED
    ws = c.recv("WINCH_STATUS", lambda m: m.line_length > 4.9, 5)
    assert ws is not None and ws.status & M.MAV_WINCH_STATUS_HEALTHY
    c.close()


def test_link_cut_after_takeoff(sim_factory):
    h = sim_factory("--speedup", "20", "--no-ekf-s", "1", "--cut-after-takeoff", "5", "--cut-for", "20")
    c = MavClient(h.urls[0])
    c.wait_ekf()
    c.command(M.MAV_CMD_DO_SET_MODE, 1, 4)
    c.command(M.MAV_CMD_COMPONENT_ARM_DISARM, 1)
    assert c.command(M.MAV_CMD_NAV_TAKEOFF, 0, 0, 0, 0, 0, 0, 30) == M.MAV_RESULT_ACCEPTED
    t0 = time.monotonic()
    gaps, last = [], time.monotonic()
    while time.monotonic() - t0 < 3:
        if c.recv("HEARTBEAT", timeout=0.1) is not None:
            now = time.monotonic()
            gaps.append(now - last)
            last = now
    # 20 sim seconds of silence at speedup 20 is ~1 s of wall time
    assert max(gaps) > 0.8
    c.close()


def test_winch_delivery_mission(sim_factory):
    h = sim_factory("--speedup", "50", "--no-ekf-s", "1", "--payload-kg", "1.5")
    c = MavClient(h.urls[0])
    c.set_param("WINCH_TYPE", 1, M.MAV_PARAM_TYPE_INT8)
    c = setup_gripper(c, h.urls[0])
    zlat, zlon = offset(HOME[0], HOME[1], 40, 0)
    mission = [
        item(0, 16, M.MAV_FRAME_GLOBAL_INT, lat=HOME[0], lon=HOME[1]),
        item(1, M.MAV_CMD_NAV_TAKEOFF, alt=15),
        item(2, M.MAV_CMD_NAV_WAYPOINT, lat=zlat, lon=zlon, alt=15),
        item(3, M.MAV_CMD_DO_WINCH, M.MAV_FRAME_MISSION, p1=1, p2=M.WINCH_RELATIVE_LENGTH_CONTROL, p3=16, p4=1),
        item(4, M.MAV_CMD_NAV_LOITER_TIME, p1=25, lat=zlat, lon=zlon, alt=15),
        item(5, M.MAV_CMD_DO_GRIPPER, M.MAV_FRAME_MISSION, p1=1, p2=M.GRIPPER_ACTION_RELEASE),
        item(6, M.MAV_CMD_NAV_LOITER_TIME, p1=3, lat=zlat, lon=zlon, alt=15),
        item(7, M.MAV_CMD_DO_WINCH, M.MAV_FRAME_MISSION, p1=1, p2=M.WINCH_RELATIVE_LENGTH_CONTROL, p3=-16, p4=1),
        item(8, M.MAV_CMD_NAV_LOITER_TIME, p1=20, lat=zlat, lon=zlon, alt=15),
        item(9, M.MAV_CMD_NAV_WAYPOINT, lat=HOME[0], lon=HOME[1], alt=15),
        item(10, M.MAV_CMD_NAV_LAND, lat=HOME[0], lon=HOME[1]),
    ]
    assert c.upload(mission) == M.MAV_MISSION_ACCEPTED
    assert c.command(M.MAV_CMD_SET_MESSAGE_INTERVAL, M.MAVLINK_MSG_ID_WINCH_STATUS, 200000) == M.MAV_RESULT_ACCEPTED
    c.command(M.MAV_CMD_DO_SET_MODE, 1, 4)
    c.command(M.MAV_CMD_COMPONENT_ARM_DISARM, 1)
    c.command(M.MAV_CMD_MISSION_START)
    lengths, reached = [], []
    deadline = time.monotonic() + 12
    while time.monotonic() < deadline:
        m = c.recv(("WINCH_STATUS", "MISSION_ITEM_REACHED", "HEARTBEAT"), timeout=1)
        if m is None:
            continue
        if m.get_type() == "WINCH_STATUS":
            lengths.append(m.line_length)
        elif m.get_type() == "MISSION_ITEM_REACHED":
            reached.append(m.seq)
        elif not m.base_mode & M.MAV_MODE_FLAG_SAFETY_ARMED and reached:
            break
    assert max(lengths) > 15.5 and lengths[-1] < 0.5
    # DO_WINCH is verified through Copter's verify_command, so it is "reached"; DO_GRIPPER is not
    assert reached == [1, 2, 3, 4, 6, 7, 8, 9]
    assert in_order(c.texts, ["Mission: 3 Winch", "Mission: 4 LoitTime", "Mission: 5 Gripper",
                              "Gripper load releasing", "Gripper load released", "Mission: 7 Winch"])
    c.close()


def test_rtl_item_in_mission_and_gcs_failsafe(sim_factory):
    h = sim_factory("--speedup", "50", "--no-ekf-s", "1")
    c = MavClient(h.urls[0])
    c.hb_period = 0.02  # 1 sim second at speedup 50, well inside FS_GCS_TIMEOUT
    c.set_param("FS_GCS_ENABLE", 1, M.MAV_PARAM_TYPE_INT8)
    zlat, zlon = offset(HOME[0], HOME[1], 40, 0)
    mission = [item(0, 16, M.MAV_FRAME_GLOBAL_INT, lat=HOME[0], lon=HOME[1]),
               item(1, M.MAV_CMD_NAV_TAKEOFF, alt=10),
               item(2, M.MAV_CMD_NAV_WAYPOINT, lat=zlat, lon=zlon, alt=10),
               item(3, M.MAV_CMD_NAV_RETURN_TO_LAUNCH)]
    assert c.upload(mission) == M.MAV_MISSION_ACCEPTED
    c.wait_ekf()
    c.command(M.MAV_CMD_DO_SET_MODE, 1, 4)
    c.command(M.MAV_CMD_COMPONENT_ARM_DISARM, 1)
    c.command(M.MAV_CMD_MISSION_START)
    assert c.recv("MISSION_ITEM_REACHED", lambda m: m.seq == 3, 10)
    assert c.recv("HEARTBEAT", lambda m: not m.base_mode & M.MAV_MODE_FLAG_SAFETY_ARMED, 5)
    # now fly again and go silent: the GCS failsafe brings it home
    c.command(M.MAV_CMD_DO_SET_MODE, 1, 4)
    c.command(M.MAV_CMD_COMPONENT_ARM_DISARM, 1)
    assert c.command(M.MAV_CMD_NAV_TAKEOFF, 0, 0, 0, 0, 0, 0, 10) == M.MAV_RESULT_ACCEPTED
    c.heartbeat = False
    assert c.wait_text("GCS Failsafe", 5)
    assert c.recv("HEARTBEAT", lambda m: m.custom_mode == 6 and m.system_status == M.MAV_STATE_CRITICAL, 3)
    c.close()


def test_wind_slows_upwind_leg_and_costs_energy(sim_factory):
    """A moderate wind gives translational lift: holding position in 8 m/s draws less than in
    still air (flight logs show cruise below hover, e.g. discuss.ardupilot.org/t/32200). A strong
    wind (16 m/s) costs more than still air, and flying 10 m/s into 8 m/s (18 m/s through the air)
    costs more than 10 m/s in still air."""
    results = {}
    for wind in ("0", "8", "16"):
        h = sim_factory("--speedup", "50", "--no-ekf-s", "1", "--wind-mps", wind, "--wind-dir-deg", "0")
        c = MavClient(h.urls[0])
        c.wait_ekf()
        c.command(M.MAV_CMD_DO_SET_MODE, 1, 4)
        c.command(M.MAV_CMD_COMPONENT_ARM_DISARM, 1)
        assert c.command(M.MAV_CMD_NAV_TAKEOFF, 0, 0, 0, 0, 0, 0, 10) == M.MAV_RESULT_ACCEPTED
        assert c.recv("GLOBAL_POSITION_INT", lambda m: m.relative_alt > 9700, 5)
        hover = c.latest("SYS_STATUS").current_battery
        w = c.latest("WIND")
        tlat, tlon = offset(HOME[0], HOME[1], 400, 0)  # north, into the wind
        c.send(M.MAVLink_set_position_target_global_int_message(
            0, 1, 1, M.MAV_FRAME_GLOBAL_RELATIVE_ALT_INT, 0b110111111000,
            int(tlat * 1e7), int(tlon * 1e7), 10, 0, 0, 0, 0, 0, 0, 0, 0))
        hud = c.recv("VFR_HUD", lambda m: m.groundspeed > (9.5 if wind != "16" else 4.5), 5)
        cruise = c.latest("SYS_STATUS").current_battery
        results[wind] = (hover, cruise, hud.airspeed - hud.groundspeed, w.speed, w.direction)
        c.close()
        h.stop()
    assert results["0"][3] == 0 and results["8"][3] == 8 and results["8"][4] == 0
    assert abs(results["8"][2] - 8) < 0.5      # airspeed = groundspeed + headwind
    assert results["8"][0] < results["0"][0] < results["16"][0]
    assert results["8"][1] > results["0"][1]


def test_set_mission_current_and_mission_change_in_flight(sim_factory):
    h = sim_factory("--speedup", "40", "--no-ekf-s", "1")
    c = MavClient(h.urls[0])
    far = offset(HOME[0], HOME[1], 300, 0)
    near = offset(HOME[0], HOME[1], 30, 0)
    mission = [item(0, 16, M.MAV_FRAME_GLOBAL_INT, lat=HOME[0], lon=HOME[1]),
               item(1, M.MAV_CMD_NAV_TAKEOFF, alt=10),
               item(2, M.MAV_CMD_NAV_WAYPOINT, lat=far[0], lon=far[1], alt=10),
               item(3, M.MAV_CMD_NAV_WAYPOINT, lat=near[0], lon=near[1], alt=10),
               item(4, M.MAV_CMD_NAV_LAND)]
    assert c.upload(mission) == M.MAV_MISSION_ACCEPTED
    assert c.command(M.MAV_CMD_DO_SET_MISSION_CURRENT, 9) == M.MAV_RESULT_DENIED
    c.wait_ekf()
    c.command(M.MAV_CMD_DO_SET_MODE, 1, 4)
    c.command(M.MAV_CMD_COMPONENT_ARM_DISARM, 1)
    c.command(M.MAV_CMD_MISSION_START)
    assert c.recv("MISSION_CURRENT", lambda m: m.seq == 2, 5)
    assert c.command(M.MAV_CMD_DO_SET_MISSION_CURRENT, 3) == M.MAV_RESULT_ACCEPTED
    assert c.recv("MISSION_ITEM_REACHED", lambda m: m.seq == 3, 5)
    assert not any("Reached command #2" in t for t in c.texts)
    c.close()


def test_servo_output_shows_gripper_pwm(sim_factory):
    h = sim_factory("--speedup", "20", "--no-ekf-s", "1")
    c = setup_gripper(MavClient(h.urls[0]), h.urls[0])
    assert c.command(M.MAV_CMD_SET_MESSAGE_INTERVAL, M.MAVLINK_MSG_ID_SERVO_OUTPUT_RAW, 100000) == M.MAV_RESULT_ACCEPTED
    assert c.recv("SERVO_OUTPUT_RAW", lambda m: m.servo9_raw == 1900, 3)
    c.command(M.MAV_CMD_DO_GRIPPER, 1, M.GRIPPER_ACTION_RELEASE)
    assert c.recv("SERVO_OUTPUT_RAW", lambda m: m.servo9_raw == 1100 and m.servo1_raw == 1000, 3)
    assert c.command(M.MAV_CMD_SET_MESSAGE_INTERVAL, 99999, 100000) == M.MAV_RESULT_DENIED
    c.close()


def test_guided_goto_by_mission_item_and_reposition(sim_factory):
    h = sim_factory("--speedup", "40", "--no-ekf-s", "1")
    c = MavClient(h.urls[0])
    c.wait_ekf()
    c.command(M.MAV_CMD_DO_SET_MODE, 1, 4)
    c.command(M.MAV_CMD_COMPONENT_ARM_DISARM, 1)
    assert c.command(M.MAV_CMD_NAV_TAKEOFF, 0, 0, 0, 0, 0, 0, 8) == M.MAV_RESULT_ACCEPTED
    assert c.recv("GLOBAL_POSITION_INT", lambda m: m.relative_alt > 7700, 5)
    a = offset(HOME[0], HOME[1], 0, 50)
    goto = M.MAVLink_mission_item_int_message(1, 1, 0, M.MAV_FRAME_GLOBAL_RELATIVE_ALT_INT, 16, 2, 1,
                                              0, 0, 0, 0, int(a[0] * 1e7), int(a[1] * 1e7), 12, 0)
    c.send(goto)
    assert c.recv("MISSION_ACK", timeout=3).type == M.MAV_MISSION_ACCEPTED
    assert c.recv("GLOBAL_POSITION_INT", lambda m: abs(m.lon - int(a[1] * 1e7)) < 20 and m.relative_alt > 11700, 6)
    b = offset(HOME[0], HOME[1], -40, 0)
    c.send(M.MAVLink_command_int_message(1, 1, M.MAV_FRAME_GLOBAL_INT, M.MAV_CMD_DO_REPOSITION, 0, 0,
                                         -1, 0, 0, 0, int(b[0] * 1e7), int(b[1] * 1e7), 584 + 9))
    assert c.recv("COMMAND_ACK", lambda m: m.command == M.MAV_CMD_DO_REPOSITION, 3).result == M.MAV_RESULT_ACCEPTED
    assert c.recv("GLOBAL_POSITION_INT", lambda m: abs(m.lat - int(b[0] * 1e7)) < 20 and abs(m.relative_alt - 9000) < 300, 6)
    c.close()


def test_arm_in_auto_with_auto_options_takes_off(sim_factory):
    h = sim_factory("--speedup", "40", "--no-ekf-s", "1")
    c = MavClient(h.urls[0])
    assert c.upload(delivery()) == M.MAV_MISSION_ACCEPTED
    c.set_param("AUTO_OPTIONS", 3, M.MAV_PARAM_TYPE_INT32)
    c.wait_ekf()
    assert c.command(M.MAV_CMD_DO_SET_MODE, 1, 3) == M.MAV_RESULT_ACCEPTED
    assert c.command(M.MAV_CMD_COMPONENT_ARM_DISARM, 1) == M.MAV_RESULT_ACCEPTED
    assert c.recv("MISSION_ITEM_REACHED", lambda m: m.seq == 1, 5)
    assert c.latest("GLOBAL_POSITION_INT").relative_alt > 11000
    c.close()


def test_polygon_fence_breach_triggers_rtl(sim_factory):
    from tests.sim.test_mission import fence_items
    h = sim_factory("--speedup", "40", "--no-ekf-s", "1")
    c = MavClient(h.urls[0])
    c.wait_ekf()
    assert c.upload(fence_items(HOME[:2], half=40.0), M.MAV_MISSION_TYPE_FENCE) == M.MAV_MISSION_ACCEPTED
    c.set_param("FENCE_ENABLE", 1, M.MAV_PARAM_TYPE_INT8)
    c.set_param("FENCE_TYPE", 4, M.MAV_PARAM_TYPE_INT8)
    c.command(M.MAV_CMD_DO_SET_MODE, 1, 4)
    assert c.command(M.MAV_CMD_COMPONENT_ARM_DISARM, 1) == M.MAV_RESULT_ACCEPTED
    assert c.command(M.MAV_CMD_NAV_TAKEOFF, 0, 0, 0, 0, 0, 0, 10) == M.MAV_RESULT_ACCEPTED
    assert c.recv("GLOBAL_POSITION_INT", lambda m: m.relative_alt > 9700, 5)
    out = offset(HOME[0], HOME[1], 0, -80)
    c.send(M.MAVLink_set_position_target_global_int_message(
        0, 1, 1, M.MAV_FRAME_GLOBAL_RELATIVE_ALT_INT, 0b110111111000,
        int(out[0] * 1e7), int(out[1] * 1e7), 10, 0, 0, 0, 0, 0, 0, 0, 0))
    assert c.wait_text("Polygon fence breached", 6)
    fs = c.recv("FENCE_STATUS", lambda m: m.breach_status == 1, 3)
    assert fs.breach_type == M.FENCE_BREACH_BOUNDARY
    assert c.recv("HEARTBEAT", lambda m: m.custom_mode == 6, 3)
    assert c.wait_text("Fence breach cleared", 8)
    c.close()


def test_pause_and_continue_in_auto(sim_factory):
    h = sim_factory("--speedup", "40", "--no-ekf-s", "1")
    c = MavClient(h.urls[0])
    far = offset(HOME[0], HOME[1], 400, 0)
    mission = [item(0, 16, M.MAV_FRAME_GLOBAL_INT, lat=HOME[0], lon=HOME[1]),
               item(1, M.MAV_CMD_NAV_TAKEOFF, alt=10),
               item(2, M.MAV_CMD_NAV_WAYPOINT, lat=far[0], lon=far[1], alt=10)]
    assert c.upload(mission) == M.MAV_MISSION_ACCEPTED
    c.wait_ekf()
    assert c.command(M.MAV_CMD_DO_PAUSE_CONTINUE, 0) == M.MAV_RESULT_FAILED  # not flying a WP
    c.command(M.MAV_CMD_DO_SET_MODE, 1, 4)
    c.command(M.MAV_CMD_COMPONENT_ARM_DISARM, 1)
    c.command(M.MAV_CMD_MISSION_START)
    assert c.recv("VFR_HUD", lambda m: m.groundspeed > 9, 5)
    assert c.command(M.MAV_CMD_DO_PAUSE_CONTINUE, 0) == M.MAV_RESULT_ACCEPTED
    assert c.recv("VFR_HUD", lambda m: m.groundspeed < 0.1, 3)
    held = c.latest("GLOBAL_POSITION_INT")
    time.sleep(0.3)
    assert abs(c.latest("GLOBAL_POSITION_INT").lat - held.lat) < 5
    assert c.command(M.MAV_CMD_DO_PAUSE_CONTINUE, 1) == M.MAV_RESULT_ACCEPTED
    assert c.recv("MISSION_ITEM_REACHED", lambda m: m.seq == 2, 8)
    c.close()


def test_critical_battery_lands(sim_factory):
    h = sim_factory("--speedup", "40", "--no-ekf-s", "1", "--battery-pct", "30")
    c = MavClient(h.urls[0])
    c.wait_ekf()
    c.set_param("BATT_LOW_MAH", 2010)  # 30 % of 6756 mAh is 2027 mAh left
    c.set_param("BATT_CRT_MAH", 1960)
    c.set_param("BATT_FS_CRT_ACT", 1, M.MAV_PARAM_TYPE_INT8)
    c.command(M.MAV_CMD_DO_SET_MODE, 1, 4)
    assert c.command(M.MAV_CMD_COMPONENT_ARM_DISARM, 1) == M.MAV_RESULT_ACCEPTED
    assert c.command(M.MAV_CMD_NAV_TAKEOFF, 0, 0, 0, 0, 0, 0, 20) == M.MAV_RESULT_ACCEPTED
    assert c.wait_text("Battery 1 is low", 5)
    assert c.recv("HEARTBEAT", lambda m: m.custom_mode == 6, 3)
    assert c.wait_text("Battery 1 is critical", 10)
    assert c.recv("HEARTBEAT", lambda m: m.custom_mode == 9, 3)
    c.close()
