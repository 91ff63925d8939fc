"""Telemetry of the simulated copter: per-link stream schedules and every message
it can produce (GCS_MAVLINK::try_send_message and friends)."""

from __future__ import annotations

import math

from pymavlink.dialects.v20 import ardupilotmega as mavlink

from . import geo
from .battery import CELLS
from .defs import FENCE_ALT_MAX, FENCE_ALT_MIN, FENCE_CIRCLE, FENCE_POLYGON, REQUIRES_GPS

M = mavlink
PREARM_BIT = M.MAV_SYS_STATUS_PREARM_CHECK
SENSORS = (M.MAV_SYS_STATUS_SENSOR_3D_GYRO | M.MAV_SYS_STATUS_SENSOR_3D_ACCEL
           | M.MAV_SYS_STATUS_SENSOR_3D_MAG | M.MAV_SYS_STATUS_SENSOR_ABSOLUTE_PRESSURE
           | M.MAV_SYS_STATUS_SENSOR_GPS | M.MAV_SYS_STATUS_SENSOR_ANGULAR_RATE_CONTROL
           | M.MAV_SYS_STATUS_SENSOR_ATTITUDE_STABILIZATION | M.MAV_SYS_STATUS_SENSOR_YAW_POSITION
           | M.MAV_SYS_STATUS_SENSOR_Z_ALTITUDE_CONTROL | M.MAV_SYS_STATUS_SENSOR_XY_POSITION_CONTROL
           | M.MAV_SYS_STATUS_SENSOR_MOTOR_OUTPUTS | M.MAV_SYS_STATUS_AHRS
           | M.MAV_SYS_STATUS_SENSOR_BATTERY)

EKF_READY_FLAGS = (M.EKF_ATTITUDE | M.EKF_VELOCITY_HORIZ | M.EKF_VELOCITY_VERT | M.EKF_POS_HORIZ_REL
                   | M.EKF_POS_HORIZ_ABS | M.EKF_POS_VERT_ABS | M.EKF_PRED_POS_HORIZ_REL
                   | M.EKF_PRED_POS_HORIZ_ABS)
EKF_INIT_FLAGS = M.EKF_ATTITUDE | M.EKF_VELOCITY_VERT | M.EKF_POS_VERT_ABS | M.EKF_CONST_POS_MODE

# telemetry: message name -> (REQUEST_DATA_STREAM group, default rate Hz)
STREAMS = {
    "SYS_STATUS": (M.MAV_DATA_STREAM_EXTENDED_STATUS, 2),
    "MISSION_CURRENT": (M.MAV_DATA_STREAM_EXTENDED_STATUS, 2),
    "GPS_RAW_INT": (M.MAV_DATA_STREAM_EXTENDED_STATUS, 2),
    "FENCE_STATUS": (M.MAV_DATA_STREAM_EXTENDED_STATUS, 2),
    "NAV_CONTROLLER_OUTPUT": (M.MAV_DATA_STREAM_EXTENDED_STATUS, 0),
    "GLOBAL_POSITION_INT": (M.MAV_DATA_STREAM_POSITION, 4),
    "LOCAL_POSITION_NED": (M.MAV_DATA_STREAM_POSITION, 0),
    "ATTITUDE": (M.MAV_DATA_STREAM_EXTRA1, 4),
    "WINCH_STATUS": (M.MAV_DATA_STREAM_EXTRA1, 2),
    "VFR_HUD": (M.MAV_DATA_STREAM_EXTRA2, 4),
    "SERVO_OUTPUT_RAW": (M.MAV_DATA_STREAM_RC_CHANNELS, 0),
    "SYSTEM_TIME": (M.MAV_DATA_STREAM_EXTRA3, 1),
    "WIND": (M.MAV_DATA_STREAM_EXTRA3, 2),
    "EKF_STATUS_REPORT": (M.MAV_DATA_STREAM_EXTRA3, 2),
    "BATTERY_STATUS": (M.MAV_DATA_STREAM_EXTRA3, 2),
    "HOME_POSITION": (None, 0),
    "GPS_GLOBAL_ORIGIN": (None, 0),
    "AUTOPILOT_VERSION": (None, 0),
    "HEARTBEAT": (None, 1),
}
MSG_IDS = {name: getattr(M, "MAVLINK_MSG_ID_" + name) for name in STREAMS}
MSG_NAMES = {v: k for k, v in MSG_IDS.items()}


class Telemetry:
    """Mixin of sim.vehicle.Vehicle; methods use the vehicle's state through self."""

    def telemetry(self) -> None:
        now = self.now
        nxt = now + 10.0
        made: dict = {}  # one message object per name per step, packed for each link
        for link in self.links:
            if link.next_due > now:
                nxt = min(nxt, link.next_due)
                continue
            lnxt = now + 10.0
            for name, s in link.sched.items():
                if s[1] <= now:
                    s[1] += s[0]
                    if s[1] <= now:
                        s[1] = now + s[0]
                    if name in made:
                        m = made[name]
                    else:
                        m = made[name] = self.make_msg(name)
                    if m is not None:
                        self.send_to(link, m)
                if s[1] < lnxt:
                    lnxt = s[1]
            link.next_due = lnxt
            nxt = min(nxt, lnxt)
        self.next_due = nxt

    def make_msg(self, name: str):
        t_boot_ms = int((self.now - self.boot_time) * 1000) & 0xFFFFFFFF
        if name == "HEARTBEAT":
            # GCS_MAVLINK_Copter::base_mode / vehicle_system_status
            base = (M.MAV_MODE_FLAG_STABILIZE_ENABLED | M.MAV_MODE_FLAG_MANUAL_INPUT_ENABLED
                    | M.MAV_MODE_FLAG_CUSTOM_MODE_ENABLED)
            if self.armed:
                base |= M.MAV_MODE_FLAG_SAFETY_ARMED
            if self.mode in REQUIRES_GPS and not self.land_complete:
                base |= M.MAV_MODE_FLAG_GUIDED_ENABLED  # horizontal position controller active
            if self.batt_failsafe or self.gcs_failsafe:
                status = M.MAV_STATE_CRITICAL
            elif self.land_complete:
                status = M.MAV_STATE_STANDBY  # also when armed on the ground
            else:
                status = M.MAV_STATE_ACTIVE
            if self.now - self.boot_time < 1.0:
                status = M.MAV_STATE_BOOT
            return M.MAVLink_heartbeat_message(M.MAV_TYPE_QUADROTOR, M.MAV_AUTOPILOT_ARDUPILOTMEGA,
                                               base, self.mode, status, 3)
        if name == "GLOBAL_POSITION_INT":
            if not self.ekf_ready:
                return M.MAVLink_global_position_int_message(t_boot_ms, 0, 0, 0, 0, 0, 0, 0, 65535)
            lat, lon = self.latlon()
            return M.MAVLink_global_position_int_message(
                t_boot_ms, lat, lon, int((self.home_alt + self.h) * 1000), int(self.h * 1000),
                int(self.vn * 100), int(self.ve * 100), int(-self.vu * 100),
                int(self.yaw * 100) % 36000)
        if name == "ATTITUDE":
            y = math.radians(self.yaw)
            if y > math.pi:
                y -= 2 * math.pi
            return M.MAVLink_attitude_message(t_boot_ms, self.roll, self.pitch, y, 0, 0, 0)
        if name == "VFR_HUD":
            wn, we = self.wind()
            airspeed = math.hypot(self.vn - wn, self.ve - we)
            return M.MAVLink_vfr_hud_message(airspeed, math.hypot(self.vn, self.ve),
                                             int(self.yaw) % 360, int(round(self.thrust * 100)),
                                             self.home_alt + self.h, self.vu)
        if name == "SYS_STATUS":
            health = SENSORS
            if not self.prearm_failures():
                health |= PREARM_BIT
            if not self.ekf_ready:
                health &= ~M.MAV_SYS_STATUS_SENSOR_GPS
            return M.MAVLink_sys_status_message(
                SENSORS | PREARM_BIT, SENSORS | PREARM_BIT, health, 200,
                int(self.voltage * 1000), int(self.current_a * 100), self.remaining_pct(),
                0, 0, 0, 0, 0, 0, 0, 0, 0)
        if name == "BATTERY_STATUS":
            cells = [int(self.voltage * 1000 / CELLS)] * CELLS + [65535] * 6
            return M.MAVLink_battery_status_message(
                0, M.MAV_BATTERY_FUNCTION_ALL, M.MAV_BATTERY_TYPE_LIPO, 32767, cells,
                int(self.current_a * 100), int(self.consumed_mah), int(self.consumed_wh * 36),
                self.remaining_pct(), 0,
                M.MAV_BATTERY_CHARGE_STATE_LOW if self.batt_failsafe else M.MAV_BATTERY_CHARGE_STATE_OK,
                [0, 0, 0, 0], 0, 0)
        if name == "GPS_RAW_INT":
            if not self.ekf_ready:
                return M.MAVLink_gps_raw_int_message(int((self.now - self.boot_time) * 1e6), 1, 0, 0, 0,
                                                     65535, 65535, 0, 65535, 0)
            lat, lon = self.latlon()
            cog = int(math.degrees(math.atan2(self.ve, self.vn)) * 100) % 36000
            return M.MAVLink_gps_raw_int_message(
                int((self.now - self.boot_time) * 1e6), 6, lat, lon,
                int((self.home_alt + self.h) * 1000), 121, 65535,
                int(math.hypot(self.vn, self.ve) * 100), cog, 10)
        if name == "EKF_STATUS_REPORT":
            flags = EKF_READY_FLAGS if self.ekf_ready else EKF_INIT_FLAGS
            return M.MAVLink_ekf_status_report_message(flags, 0.02, 0.03, 0.01, 0.02, 0.0, 0.0)
        if name == "MISSION_CURRENT":
            return self._mission_current_msg(self.current_nav_index())
        if name == "HOME_POSITION":
            if not self.home_set:
                return None
            return M.MAVLink_home_position_message(
                self.home_lat, self.home_lon, int(self.home_alt * 1000), 0, 0, 0,
                [1, 0, 0, 0], 0, 0, 0, int((self.now - self.boot_time) * 1e6))
        if name == "GPS_GLOBAL_ORIGIN":
            if not self.ekf_ready:
                return None
            lat, lon, alt = self.origin
            return M.MAVLink_gps_global_origin_message(lat, lon, int(alt * 1000),
                                                       int(self.runner.epoch_us()))
        if name == "WIND":
            spd = self.params["SIM_WIND_SPD"]
            return M.MAVLink_wind_message(self.params["SIM_WIND_DIR"] if spd > 0 else 0.0, spd, 0.0)
        if name == "FENCE_STATUS":
            if not self.fence_enabled:
                return None  # GCS_MAVLINK::send_fence_status: nothing while the fence is off
            bt = M.FENCE_BREACH_NONE
            if self.breaches & FENCE_ALT_MIN:
                bt = M.FENCE_BREACH_MINALT
            if self.breaches & FENCE_ALT_MAX:
                bt = M.FENCE_BREACH_MAXALT
            if self.breaches & (FENCE_CIRCLE | FENCE_POLYGON):
                bt = M.FENCE_BREACH_BOUNDARY
            return M.MAVLink_fence_status_message(1 if self.breaches else 0, self.breach_count, bt,
                                                  self.breach_time, M.FENCE_MITIGATE_NONE)
        if name == "SYSTEM_TIME":
            return M.MAVLink_system_time_message(int(self.runner.epoch_us()), t_boot_ms)
        if name == "WINCH_STATUS":
            if not self.winch_enabled:
                return None
            return M.MAVLink_winch_status_message(
                int((self.now - self.boot_time) * 1e6), self.winch_len, self.winch_rate,
                float("nan"), float("nan"), float("nan"), 32767, M.MAV_WINCH_STATUS_HEALTHY)
        if name == "NAV_CONTROLLER_OUTPUT":
            if self.tgt is None:
                return M.MAVLink_nav_controller_output_message(0, 0, 0, 0, 0, 0, 0, 0)
            d = geo.dist(self.n, self.e, self.tgt[0], self.tgt[1])
            brg = int(math.degrees(math.atan2(self.tgt[1] - self.e, self.tgt[0] - self.n)))
            alt_err = (self.tgt[2] - self.h) if self.tgt[2] is not None else 0.0
            return M.MAVLink_nav_controller_output_message(0, 0, brg, brg, min(int(d), 65535),
                                                           alt_err, 0, 0)
        if name == "SERVO_OUTPUT_RAW":
            # motors 1-4 and the gripper output (the servo moves even when --gripper-jam)
            out = [0] * 16
            motor = 1100 + int(800 * self.thrust) if self.armed else 1000
            for ch in range(16):
                fn = self.params[f"SERVO{ch + 1}_FUNCTION"]
                if 33 <= fn <= 36:
                    out[ch] = motor
                elif fn == 28 and self.gripper_valid:
                    out[ch] = self.grip_pwm
            return M.MAVLink_servo_output_raw_message(int((self.now - self.boot_time) * 1e6) & 0xFFFFFFFF,
                                                      0, *out)
        if name == "LOCAL_POSITION_NED":
            return M.MAVLink_local_position_ned_message(t_boot_ms, self.n, self.e, -self.h,
                                                        self.vn, self.ve, -self.vu)
        if name == "AUTOPILOT_VERSION":
            caps = (M.MAV_PROTOCOL_CAPABILITY_MISSION_FLOAT | M.MAV_PROTOCOL_CAPABILITY_PARAM_FLOAT
                    | M.MAV_PROTOCOL_CAPABILITY_MISSION_INT | M.MAV_PROTOCOL_CAPABILITY_COMMAND_INT
                    | M.MAV_PROTOCOL_CAPABILITY_SET_POSITION_TARGET_GLOBAL_INT
                    | M.MAV_PROTOCOL_CAPABILITY_MAVLINK2 | M.MAV_PROTOCOL_CAPABILITY_MISSION_FENCE
                    | M.MAV_PROTOCOL_CAPABILITY_MISSION_RALLY)
            return M.MAVLink_autopilot_version_message(caps, 0x04060000, 0, 0, 0, [0] * 8, [0] * 8,
                                                       [0] * 8, 0, 0, 0, [0] * 18)
        return None
