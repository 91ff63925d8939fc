import time

from groundctl.protocol import VehicleState
from tests.protocol.fakes import M, roundtrip, statustext, v

LONG = ("PayloadPlace: payload release thrust threshold: 0.312345 and then some more words to pass "
        "one hundred characters in total")


def hb(armed=False, mode=3, sysid=1, comp=1, mav_type=M.MAV_TYPE_QUADROTOR):
    base = M.MAV_MODE_FLAG_CUSTOM_MODE_ENABLED | (M.MAV_MODE_FLAG_SAFETY_ARMED if armed else 0)
    return v(M.MAVLink_heartbeat_message(mav_type, M.MAV_AUTOPILOT_ARDUPILOTMEGA, base, mode, 4, 3), sysid, comp)


def test_heartbeat_mode_armed_link():
    s = VehicleState(1, 1)
    assert not s.link_ok(0)
    s.update(hb(armed=True, mode=4), 10.0)
    assert s.armed and s.mode == "GUIDED" and s.system_status == 4
    assert s.link_ok(12.9) and not s.link_ok(13.1)
    s.update(hb(mode=21), 11)
    assert s.mode == "SMART_RTL" and not s.armed
    s.update(hb(mode=99), 12)
    assert s.mode == "MODE_99"
    s.update(hb(armed=True, comp=154), 13)  # a gimbal's heartbeat
    s.update(hb(armed=True, sysid=2), 13)
    s.update(hb(armed=True, mav_type=M.MAV_TYPE_GCS), 13)
    anyone = VehicleState()
    companion = hb(armed=True, mav_type=M.MAV_TYPE_ONBOARD_CONTROLLER, comp=191)
    companion.autopilot = M.MAV_AUTOPILOT_INVALID
    anyone.update(companion, 13)
    assert anyone.last_heartbeat is None
    assert not s.armed and s.last_heartbeat == 12


def test_position_zero_means_none_yet():
    s = VehicleState()
    s.update(v(M.MAVLink_global_position_int_message(1, 0, 0, 0, 0, 0, 0, 0, 65535)), 1)
    assert not s.has_position and s.lat is None
    s.update(v(M.MAVLink_global_position_int_message(2, -353632621, 1491652374, 584_500, 12_250, 100, -200, 50, 9000)), 2)
    assert abs(s.lat + 35.3632621) < 1e-9 and abs(s.lon - 149.1652374) < 1e-9
    assert s.alt_amsl_m == 584.5 and s.alt_rel_m == 12.25 and s.heading_deg == 90 and s.vz_mps == 0.5


def test_ekf_sys_status_battery_gps_vfr_and_mission():
    s = VehicleState()
    s.update(v(M.MAVLink_ekf_status_report_message(M.EKF_ATTITUDE | M.EKF_VELOCITY_HORIZ, 0, 0, 0, 0, 0)), 1)
    assert not s.position_ready
    s.update(v(M.MAVLink_ekf_status_report_message(M.EKF_ATTITUDE | M.EKF_POS_HORIZ_ABS, 0, 0, 0, 0, 0)), 1)
    assert s.position_ready
    pre = M.MAV_SYS_STATUS_PREARM_CHECK
    s.update(v(M.MAVLink_sys_status_message(pre, pre, 0, 500, 15_800, 1250, 87, 0, 0, 0, 0, 0, 0)), 1)
    assert s.prearm_ok is False and s.voltage_v == 15.8 and s.current_a == 12.5 and s.battery_pct == 87
    s.update(v(M.MAVLink_sys_status_message(pre, pre, pre, 500, 65535, -1, -1, 0, 0, 0, 0, 0, 0)), 1)
    assert s.prearm_ok is True and s.voltage_v is None and s.battery_pct is None
    s.update(v(M.MAVLink_battery_status_message(0, 0, 0, 2500, [15800] + [65535] * 9, 1300, 2200, 36_00, 61)), 2)
    assert s.battery_pct == 61 and s.energy_consumed_wh == 100.0 and s.current_a == 13
    s.update(v(M.MAVLink_gps_raw_int_message(0, 3, 0, 0, 0, 120, 65535, 0, 65535, 14)), 3)
    assert s.gps_fix_type == 3 and s.satellites == 14 and s.gps_eph == 1.2
    s.update(v(M.MAVLink_vfr_hud_message(11.5, 11.9, 90, 46, 40, -0.4)), 3)
    assert (s.groundspeed_mps, s.throttle_pct) == (11.9, 46) and abs(s.climb_mps + 0.4) < 1e-6
    s.update(v(M.MAVLink_mission_current_message(5, 12, 3, 1)), 4)
    s.update(v(M.MAVLink_mission_item_reached_message(4)), 4)
    assert (s.mission_seq, s.mission_total, s.last_reached_seq) == (5, 12, 4)
    s.update(v(M.MAVLink_home_position_message(-353632621, 1491652374, 584000, 0, 0, 0, [1, 0, 0, 0], 0, 0, 0)), 5)
    assert s.home_alt_amsl_m == 584.0
    s.update(v(M.MAVLink_wind_message(270, 6.5, 0.1)), 5)
    s.update(v(M.MAVLink_fence_status_message(1, 2, 4, 1234)), 5)
    s.update(v(M.MAVLink_winch_status_message(0, 7.5, 0.5, 0, 0, 0, 0, 0)), 5)
    assert s.wind_speed_mps == 6.5 and s.fence_breach_status == 1 and s.winch_line_m == 7.5
    assert "lat" in s.snapshot()


def test_statustext_chunks_joined_as_ardupilot_sends_them():
    s = VehicleState()
    chunks = statustext(LONG)
    assert len(chunks) == 3 and chunks[0].id != 0
    assert [s.update(roundtrip(c, 1, 1), 1.0) for c in chunks[:-1]] == [None, None]
    st = s.update(roundtrip(chunks[-1], 1, 1), 1.1)
    assert st.text == LONG and s.texts[-1] is st
    # short text: one message, id 0
    assert s.update(statustext("Gripper load released")[0], 2).text == "Gripper load released"
    # exactly 50 characters, id 0: complete at once
    fifty = "x" * 50
    assert s.update(statustext(fifty)[0], 3).text == fifty


def test_statustext_exact_multiple_of_50_ends_with_empty_chunk():
    s = VehicleState()
    text = "y" * 100
    chunks = statustext(text)
    assert len(chunks) == 3 and chunks[-1].text in ("", b"")
    assert [s.update(c, 1) for c in chunks][-1].text == text


def test_statustext_lost_chunk_is_not_joined_wrongly():
    s = VehicleState()
    chunks = statustext(LONG)
    s.update(chunks[0], 1)
    assert s.update(chunks[2], 1) is None  # middle one lost
    assert not s.texts
    # duplicated first chunk restarts the text
    for c in [chunks[0], chunks[0], chunks[1], chunks[2]]:
        out = s.update(c, 2)
    assert out.text == LONG


def test_cheap_enough_for_hundreds_of_vehicles():
    states = [VehicleState(i, 1) for i in range(1, 301)]
    msgs = []
    for i in range(1, 301):
        msgs += [hb(True, 3, sysid=i), v(M.MAVLink_global_position_int_message(2, -353632621, 1491652374, 1, 2, 0, 0, 0, 0), i),
                 v(M.MAVLink_vfr_hud_message(11.5, 11.9, 90, 46, 40, -0.4), i), v(M.MAVLink_attitude_message(0, 0, 0, 0, 0, 0, 0), i)]
    t0 = time.perf_counter()
    for _ in range(20):
        for m in msgs:
            states[m.get_srcSystem() - 1].update(m, 1.0)
    per_msg = (time.perf_counter() - t0) / (20 * len(msgs))
    assert per_msg < 20e-6, per_msg  # generous: ~1 µs expected
