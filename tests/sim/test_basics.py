"""Heartbeat, readiness, modes, arming checks and parameters."""

import time

from tests.sim.mav import M, MavClient


def test_heartbeat_identifies_an_arducopter(gcs):
    hb = gcs.recv("HEARTBEAT", timeout=5)
    assert hb.type == M.MAV_TYPE_QUADROTOR
    assert hb.autopilot == M.MAV_AUTOPILOT_ARDUPILOTMEGA
    assert hb.base_mode & M.MAV_MODE_FLAG_CUSTOM_MODE_ENABLED
    assert not hb.base_mode & M.MAV_MODE_FLAG_SAFETY_ARMED
    assert hb.custom_mode == 0  # STABILIZE
    assert hb.get_srcSystem() == 1 and hb.get_srcComponent() == 1


def test_position_is_zero_until_ekf_origin(sim_factory):
    h = sim_factory("--speedup", "10", "--no-ekf-s", "6")
    c = MavClient(h.urls[0])
    gp = c.recv("GLOBAL_POSITION_INT", timeout=5)
    assert (gp.lat, gp.lon) == (0, 0)
    ekf = c.recv("EKF_STATUS_REPORT", timeout=5)
    assert not ekf.flags & M.EKF_POS_HORIZ_ABS
    # GUIDED needs a position estimate: the arm is refused with ArduPilot's text
    assert c.command(M.MAV_CMD_DO_SET_MODE, 1, 4) == M.MAV_RESULT_ACCEPTED
    assert c.command(M.MAV_CMD_COMPONENT_ARM_DISARM, 1) == M.MAV_RESULT_FAILED
    assert c.wait_text("Arm: Need Position Estimate", 2)
    c.seen.clear()
    st = c.recv("SYS_STATUS", timeout=5)
    assert not st.onboard_control_sensors_health & M.MAV_SYS_STATUS_PREARM_CHECK
    c.wait_ekf()
    gp = c.recv("GLOBAL_POSITION_INT", lambda m: m.lat != 0, timeout=5)
    assert abs(gp.lat - (-353632610)) < 10 and abs(gp.lon - 1491652300) < 10
    assert gp.alt == 584000 and gp.relative_alt == 0
    st = c.recv("SYS_STATUS", lambda m: m.onboard_control_sensors_health & M.MAV_SYS_STATUS_PREARM_CHECK, 5)
    assert st is not None
    c.send(M.MAVLink_command_long_message(1, 1, M.MAV_CMD_GET_HOME_POSITION, 0, 0, 0, 0, 0, 0, 0, 0))
    home = c.recv("HOME_POSITION", timeout=5)
    assert home.altitude == 584000
    assert c.command(M.MAV_CMD_COMPONENT_ARM_DISARM, 1) == M.MAV_RESULT_ACCEPTED
    hb = c.recv("HEARTBEAT", lambda m: m.base_mode & M.MAV_MODE_FLAG_SAFETY_ARMED, 5)
    # armed but still on the ground: ArduCopter reports STANDBY until it is flying
    assert hb.system_status == M.MAV_STATE_STANDBY and hb.custom_mode == 4
    assert c.command(M.MAV_CMD_NAV_TAKEOFF, 0, 0, 0, 0, 0, 0, 5) == M.MAV_RESULT_ACCEPTED
    assert c.recv("HEARTBEAT", lambda m: m.system_status == M.MAV_STATE_ACTIVE, 5)
    c.close()


def test_auto_arming_needs_auto_options(gcs):
    gcs.wait_ekf()
    assert gcs.command(M.MAV_CMD_DO_SET_MODE, 1, 3) == M.MAV_RESULT_ACCEPTED
    assert gcs.command(M.MAV_CMD_COMPONENT_ARM_DISARM, 1) == M.MAV_RESULT_FAILED
    assert gcs.wait_text("Arm: AUTO mode not armable", 2)
    gcs.set_param("AUTO_OPTIONS", 3, M.MAV_PARAM_TYPE_INT32)
    assert gcs.command(M.MAV_CMD_COMPONENT_ARM_DISARM, 1) == M.MAV_RESULT_ACCEPTED


def test_modes_and_set_mode_message(gcs):
    gcs.wait_ekf()
    for mode in (4, 5, 0):
        gcs.send(M.MAVLink_set_mode_message(1, M.MAV_MODE_FLAG_CUSTOM_MODE_ENABLED, mode))
        assert gcs.recv("HEARTBEAT", lambda m, mode=mode: m.custom_mode == mode, 5)
    assert gcs.command(M.MAV_CMD_DO_SET_MODE, 1, 99) == M.MAV_RESULT_FAILED
    assert gcs.command(M.MAV_CMD_DO_SET_MODE, 1, 17) == M.MAV_RESULT_ACCEPTED  # BRAKE
    assert gcs.command(M.MAV_CMD_NAV_TAKEOFF, 0, 0, 0, 0, 0, 0, 10) == M.MAV_RESULT_FAILED  # disarmed
    assert gcs.command(31999) == M.MAV_RESULT_UNSUPPORTED


def test_fence_enabled_arming_checks(gcs):
    gcs.wait_ekf()
    gcs.set_param("FENCE_ENABLE", 1, M.MAV_PARAM_TYPE_INT8)
    gcs.set_param("FENCE_RADIUS", 1, M.MAV_PARAM_TYPE_REAL32)
    gcs.command(M.MAV_CMD_DO_SET_MODE, 1, 4)
    assert gcs.command(M.MAV_CMD_COMPONENT_ARM_DISARM, 1) == M.MAV_RESULT_FAILED
    assert gcs.wait_text("Arm: Circle FENCE_MARGIN is greater than FENCE_RADIUS", 2)
    gcs.set_param("FENCE_RADIUS", 300)
    fs = gcs.recv("FENCE_STATUS", timeout=5)
    assert fs.breach_status == 0
    assert gcs.command(M.MAV_CMD_COMPONENT_ARM_DISARM, 1) == M.MAV_RESULT_ACCEPTED


def test_params_list_read_set(gcs):
    gcs.send(M.MAVLink_param_request_list_message(1, 1))
    seen = {}
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        m = gcs.recv("PARAM_VALUE", timeout=1)
        if m is None:
            break
        seen[m.param_id] = m
        if len(seen) == m.param_count:
            break
    assert len(seen) == next(iter(seen.values())).param_count
    assert seen["WPNAV_SPEED"].param_value == 1000 and seen["WPNAV_SPEED"].param_type == M.MAV_PARAM_TYPE_REAL32
    assert seen["RTL_ALT"].param_type == M.MAV_PARAM_TYPE_INT32
    assert seen["FENCE_ENABLE"].param_type == M.MAV_PARAM_TYPE_INT8
    assert "GRIP_TYPE" not in seen  # hidden while GRIP_ENABLE=0, as AP_PARAM_FLAG_ENABLE does
    gcs.send(M.MAVLink_param_request_read_message(1, 1, b"LAND_SPEED", -1))
    m = gcs.recv("PARAM_VALUE", lambda m: m.param_id == "LAND_SPEED", 5)
    assert m.param_value == 50 and m.param_type == M.MAV_PARAM_TYPE_INT16
    m = gcs.set_param("WPNAV_SPEED", 750)
    assert m.param_value == 750
    # unknown names get no PARAM_VALUE at all
    gcs.send(M.MAVLink_param_set_message(1, 1, b"NOT_A_PARAM", 1, M.MAV_PARAM_TYPE_REAL32))
    assert gcs.recv("PARAM_VALUE", lambda m: m.param_id == "NOT_A_PARAM", 1) is None


def test_message_interval_and_request(gcs):
    gcs.recv("HEARTBEAT", timeout=5)
    assert gcs.command(M.MAV_CMD_SET_MESSAGE_INTERVAL, M.MAVLINK_MSG_ID_VFR_HUD, 50000) == M.MAV_RESULT_ACCEPTED
    gcs.recv("VFR_HUD", timeout=2)
    t0 = time.monotonic()
    n = 0
    while time.monotonic() - t0 < 0.5:
        if gcs.recv("VFR_HUD", timeout=0.5):
            n += 1
    # 20 Hz of sim time at speedup 20 is ~400/s of wall time; leave room for a loaded host
    assert n > 20
    assert gcs.command(M.MAV_CMD_SET_MESSAGE_INTERVAL, M.MAVLINK_MSG_ID_VFR_HUD, -1) == M.MAV_RESULT_ACCEPTED
    gcs.barrier()
    assert gcs.recv("VFR_HUD", timeout=0.5) is None
    assert gcs.command(M.MAV_CMD_REQUEST_MESSAGE, M.MAVLINK_MSG_ID_VFR_HUD) == M.MAV_RESULT_ACCEPTED
    assert gcs.command(M.MAV_CMD_REQUEST_MESSAGE, M.MAVLINK_MSG_ID_AUTOPILOT_VERSION) == M.MAV_RESULT_ACCEPTED
    assert gcs.recv("AUTOPILOT_VERSION", timeout=2) is not None
    gcs.send(M.MAVLink_request_data_stream_message(1, 1, M.MAV_DATA_STREAM_ALL, 0, 0))
    gcs.barrier()
    assert gcs.recv("ATTITUDE", timeout=0.5) is None
    assert gcs.recv("HEARTBEAT", timeout=2) is not None  # heartbeat is not a stream


def test_long_statustext_is_chunked(gcs):
    gcs.wait_ekf()
    # exactly 50 characters: one STATUSTEXT, id 0 (GCS::send_textv only numbers longer texts)
    gcs.send(M.MAVLink_mission_count_message(1, 1, 1, M.MAV_MISSION_TYPE_RALLY))
    gcs.recv("MISSION_REQUEST", timeout=5)
    gcs.send(M.MAVLink_mission_item_message(1, 1, 0, 3, M.MAV_CMD_NAV_RALLY_POINT, 0, 1,
                                            0, 0, 0, 0, -35.3632, 149.1652, 30, M.MAV_MISSION_TYPE_RALLY))
    m = gcs.recv("STATUSTEXT", lambda m: m.text.startswith("got MISSION_ITEM"), 5)
    assert m.id == 0 and m.text == "got MISSION_ITEM; GCS should send MISSION_ITEM_INT"
    assert gcs.recv("MISSION_ACK", timeout=5).type == M.MAV_MISSION_ACCEPTED
    # 54 characters: two chunks sharing an id
    gcs.set_param("FENCE_ENABLE", 1, M.MAV_PARAM_TYPE_INT8)
    gcs.set_param("FENCE_RADIUS", 1)
    gcs.command(M.MAV_CMD_DO_SET_MODE, 1, 4)
    gcs.seen.clear()
    gcs.command(M.MAV_CMD_COMPONENT_ARM_DISARM, 1)
    first = gcs.recv("STATUSTEXT", lambda m: m.id != 0 and m.chunk_seq == 0, 5)
    second = gcs.recv("STATUSTEXT", lambda m: m.id == first.id and m.chunk_seq == 1, 5)
    assert len(first.text) == 50
    assert first.text + second.text == "Arm: Circle FENCE_MARGIN is greater than FENCE_RADIUS"


def test_malformed_command_does_not_kill_the_sim(gcs):
    nan = float("nan")
    gcs.send(M.MAVLink_command_long_message(1, 1, M.MAV_CMD_DO_SET_MODE, 0, nan, nan, 0, 0, 0, 0, 0))
    gcs.send(M.MAVLink_command_long_message(1, 1, M.MAV_CMD_SET_MESSAGE_INTERVAL, 0, nan, 1e30, 0, 0, 0, 0, 0))
    gcs.send(M.MAVLink_param_set_message(1, 1, b"WPNAV_SPEED", nan, M.MAV_PARAM_TYPE_REAL32))
    gcs.seen.clear()
    assert gcs.recv("HEARTBEAT", timeout=3) is not None
    assert gcs.command(M.MAV_CMD_DO_SET_MODE, 1, 4) == M.MAV_RESULT_ACCEPTED
