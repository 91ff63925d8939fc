"""One simulated ArduCopter: MAVLink handling, modes, mission execution and a
kinematic flight model with an energy model.

Behaviour follows ArduCopter 4.x (checked against ArduPilot's source: see the
README for the list). All timers run on the runner's simulated clock, so the
vehicle behaves the same at any --speedup.
"""

from __future__ import annotations

import math
import random
import sys
import traceback
from typing import Optional

from pymavlink.dialects.v20 import ardupilotmega as mavlink

from . import geo
from .mission import (ABS, CMD_NAMES, FENCE, MISSION, RALLY, REL, Item, Protocol,
                      is_nav, item_int_from_mission_item)
from .params import Params, default_table

M = mavlink
G = 9.80665
RHO = 1.225

# copter mode numbers (ArduCopter/mode.h)
STABILIZE, ACRO, ALT_HOLD, AUTO, GUIDED, LOITER, RTL, CIRCLE = 0, 1, 2, 3, 4, 5, 6, 7
LAND, POSHOLD, BRAKE, SMART_RTL = 9, 16, 17, 21
MODE_NAMES = {0: "STABILIZE", 1: "ACRO", 2: "ALT_HOLD", 3: "AUTO", 4: "GUIDED", 5: "LOITER",
              6: "RTL", 7: "CIRCLE", 9: "LAND", 16: "POSHOLD", 17: "BRAKE", 21: "SMARTRTL"}
REQUIRES_GPS = {AUTO, GUIDED, LOITER, RTL, CIRCLE, POSHOLD, BRAKE, SMART_RTL}
MANUAL_THROTTLE = {STABILIZE, ACRO}
# modes whose Mode::allows_arming() is true for a GCS arm (AUTO depends on AUTO_OPTIONS)
ARMABLE = {STABILIZE, ACRO, ALT_HOLD, GUIDED, LOITER, POSHOLD, CIRCLE}
USER_TAKEOFF = {GUIDED, LOITER, ALT_HOLD, POSHOLD}

# AC_Fence types
FENCE_ALT_MAX, FENCE_CIRCLE, FENCE_POLYGON, FENCE_ALT_MIN = 1, 2, 4, 8
FENCE_NAMES = ["Max Alt", "Circle", "Polygon", "Min Alt"]

MISSION_STOPPED, MISSION_RUNNING, MISSION_COMPLETE = 0, 1, 2

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

PARCEL_HANG_M = 0.3       # parcel bottom below the skids when held in the gripper
AIRSPEED_MAX = 22.0       # what the airframe can hold against wind
CDA = 0.06                # drag area, m^2
DISK_AREA = 0.5           # total rotor disk area, m^2
FIGURE_OF_MERIT = 0.7
ELEC_EFF = 0.85
AVIONICS_W = 6.0
CELLS = 4
R_PACK = 0.048            # ohm, for a REF_PACK_MAH pack; parallel cells divide it, so it scales as 1/capacity
REF_PACK_MAH = 5000.0
SOC_CURVE = [(0.0, 3.30), (0.05, 3.55), (0.10, 3.62), (0.20, 3.68), (0.50, 3.80),
             (0.80, 3.98), (1.0, 4.18)]
REBOOT_S = 2.5


def ocv_cell(soc: float) -> float:
    soc = min(1.0, max(0.0, soc))
    for (s0, v0), (s1, v1) in zip(SOC_CURVE, SOC_CURVE[1:]):
        if soc <= s1:
            return v0 + (v1 - v0) * (soc - s0) / (s1 - s0)
    return SOC_CURVE[-1][1]


class Options:
    """Per-vehicle settings from the command line."""

    def __init__(self, **kw):
        self.home = (-35.363261, 149.165230, 584.0, 353.0)
        self.speedup = 1.0
        self.wind_mps = 0.0
        self.wind_dir_deg = 0.0
        self.payload_kg = 0.0
        self.battery_wh = 100.0
        self.battery_pct = 100.0
        self.mass_kg = 3.0
        self.seed = 0
        self.loss = 0.0
        self.cut_after_takeoff = None
        self.cut_for = 0.0
        self.gripper_jam = False
        self.obstacles: list[tuple[float, float, float, float]] = []
        self.no_ekf_s = 5.0
        self.__dict__.update(kw)


class Vehicle:
    def __init__(self, runner, sysid: int, opts: Options):
        self.runner = runner
        self.sysid = sysid
        self.opts = opts
        self.rng = random.Random(opts.seed * 1000 + sysid)
        lat, lon, alt, hdg = opts.home
        self.home_lat = int(round(lat * 1e7))
        self.home_lon = int(round(lon * 1e7))
        self.home_alt = float(alt)  # AMSL of the ground at home
        self.home_hdg = float(hdg)
        cap_mah = int(opts.battery_wh / (CELLS * 3.7) * 1000)
        self.params = Params(default_table(sysid, cap_mah, opts.speedup, opts.wind_mps,
                                           opts.wind_dir_deg))
        self.links: list = []
        self.servers: list = []          # transports that can be closed/reopened on reboot
        self.store = {MISSION: [], FENCE: [], RALLY: []}
        self.mission_total = 0
        self.protocols = {t: Protocol(self, t) for t in (MISSION, FENCE, RALLY)}
        self.obstacles = []
        for (olat, olon, orad, oh) in opts.obstacles:
            n, e = geo.ne_offset(self.home_lat, self.home_lon, int(olat * 1e7), int(olon * 1e7))
            self.obstacles.append((n, e, orad, oh))
        self.consumed_mah = cap_mah * (1.0 - opts.battery_pct / 100.0)
        self.consumed_wh = opts.battery_wh * (1.0 - opts.battery_pct / 100.0)
        self.parcel_attached = False
        self.parcel_pos = None  # where a released parcel ended up: (n, e, h)
        self.takeoff_time = None
        self.statustext_id = 0
        self.now = runner.now
        self.boot(self.now)

    # ------------------------------------------------------------------ boot
    def boot(self, now: float) -> None:
        self.boot_time = now
        self.rebooting_until = None
        self.params.snapshot_boot()
        self.mode = STABILIZE
        self.armed = False
        self.auto_armed = False
        self.land_complete = True
        self.land_maybe_t = 0.0
        self.ekf_ready = False
        self.home_set = False
        self.n = self.e = 0.0
        self.h = 0.0
        self.vn = self.ve = self.vu = 0.0
        self.yaw = self.home_hdg
        self.roll = self.pitch = 0.0
        self.thrust = 0.0
        self.power_w = AVIONICS_W
        self.current_a = 0.0
        self.voltage = 0.0
        self.update_battery(0.0)
        self.batt_low_since = None
        self.batt_crit_since = None
        self.batt_failsafe = 0
        self.tgt = None  # (n, e, h) position target
        self.speed_xy = self.params["WPNAV_SPEED"] / 100.0
        self.speed_up = self.params["WPNAV_SPEED_UP"] / 100.0
        self.speed_dn = self.params["WPNAV_SPEED_DN"] / 100.0
        self.vu_cmd = None  # explicit climb rate command (landing), m/s
        self.sub = None  # AUTO / RTL / LAND sub state
        self.sub_t = 0.0
        self.rtl = None
        self.pp = None  # payload place state
        self.loiter_until = None
        self.mstate = MISSION_STOPPED
        self.nav_idx = None
        self.do_idx = None
        self.nav_loaded = False
        self.do_loaded = False
        self.do_all_done = False
        self.jump_counts: dict[int, int] = {}
        self.waiting_to_start = False
        self.cond_delay_until = None
        self.disarm_timer = now
        self.breaches = 0
        self.breach_count = 0
        self.breach_time = 0
        self.fence_enabled = bool(self.params["FENCE_ENABLE"])
        self.alt_max_backup = None
        self.circle_backup = None
        self.gcs_last_hb = None
        self.gcs_failsafe = False
        self.last_prearm_report = now
        # gripper: only exists if enabled with a type at boot (AP_Gripper::init)
        self.grip_backend = (self.params.at_boot("GRIP_ENABLE") != 0
                             and self.params.at_boot("GRIP_TYPE") in (1, 2))
        self.grip_state = "neutral"
        # AP_Gripper_Servo::init_gripper drives the output to GRIP_NEUTRAL at boot
        self.grip_pwm = int(self.params["GRIP_NEUTRAL"]) if self.grip_backend else 0
        self.grip_t = now
        self.winch_enabled = self.params.at_boot("WINCH_TYPE") != 0
        self.winch_len = 0.0
        self.winch_rate = 0.0
        self.winch_len_target = None
        self.winch_mode = "relaxed"
        self.parcel_on_ground = False
        # stream rates are per link (per channel in ArduPilot) and back to defaults at boot
        for link in self.links:
            self._init_link_sched(link)
        self.next_due = now
        self.vu_des = 0.0
        self._blocked_since = None
        self.idle_dt = 0.0
        self.paused_at = None  # DO_PAUSE_CONTINUE hold point

    @property
    def gripper_valid(self) -> bool:
        if not (self.grip_backend and self.params["GRIP_ENABLE"]):
            return False
        # AP_Gripper_Servo::valid needs an output with SERVOn_FUNCTION=28
        return any(self.params[f"SERVO{ch}_FUNCTION"] == 28 for ch in range(1, 17))

    # ------------------------------------------------------------------ I/O
    def send_to(self, link, msg) -> None:
        if link is None or self.rebooting_until is not None:
            return
        if self.link_dropped():
            link.mav.seq = (link.mav.seq + 1) % 256  # a lost packet still used a sequence number
            return
        link.send_msg(msg)

    def broadcast(self, msg) -> None:
        if self.rebooting_until is not None:
            return
        for link in self.links:
            if self.link_dropped():
                link.mav.seq = (link.mav.seq + 1) % 256
                continue
            link.send_msg(msg)

    def link_dropped(self) -> bool:
        if self.cut_active():
            return True
        return self.opts.loss > 0 and self.rng.random() < self.opts.loss

    def cut_active(self) -> bool:
        c = self.opts.cut_after_takeoff
        if c is None or self.takeoff_time is None:
            return False
        t = self.now - self.takeoff_time
        return c <= t < c + self.opts.cut_for

    def text(self, severity: int, s: str, link=None) -> None:
        """STATUSTEXT, split like GCS::send_textv: >50 chars get an id and chunk_seq."""
        data = s.encode("utf-8")[:200]
        if len(data) > 50:
            self.statustext_id = (self.statustext_id + 1) & 0xFFFF or 1
            sid = self.statustext_id
        else:
            sid = 0
        seq = 0
        rest = data
        while True:
            piece = rest[:50]
            msg = M.MAVLink_statustext_message(severity, piece, sid, seq)
            if link is None:
                self.broadcast(msg)
            else:
                self.send_to(link, msg)
            rem_len = len(rest)
            rest = rest[50:]
            seq += 1
            if rem_len < 50 or sid == 0:
                break

    def add_link(self, link) -> None:
        self.links.append(link)
        self._init_link_sched(link)

    def _init_link_sched(self, link) -> None:
        """Telemetry schedule of one link: name -> [interval_s, next_due]."""
        now = self.now
        sched = {}
        for name, (_, hz) in STREAMS.items():
            if hz > 0:
                sched[name] = [1.0 / hz, now + self.rng.random() * 0.2]
        sched["HEARTBEAT"] = [1.0, now]
        link.sched = sched
        link.next_due = now
        self.next_due = now

    def remove_link(self, link) -> None:
        if link in self.links:
            self.links.remove(link)
        for p in self.protocols.values():
            if p.link is link:
                p._free()

    def on_message(self, link, msg) -> None:
        if self.rebooting_until is not None:
            return
        if self.link_dropped():
            return
        t = msg.get_type()
        if t == "BAD_DATA":
            return
        tgt = getattr(msg, "target_system", 0)
        if tgt not in (0, self.sysid) and t not in ("HEARTBEAT",):
            return
        # addressed to another component of this system (camera, gimbal...): not ours
        if getattr(msg, "target_component", 0) not in (0, 1):
            return
        h = getattr(self, "_h_" + t, None)
        if h is not None:
            try:
                h(link, msg)
            except (ValueError, OverflowError, TypeError):
                # a malformed field (NaN where an integer is expected...) must not stop
                # every vehicle in the process; say so on stderr and carry on
                traceback.print_exc(file=sys.stderr)

    # ---------------------------------------------------------- handlers
    def _h_HEARTBEAT(self, link, msg):
        # GCS_MAVLINK::handle_heartbeat: only our GCS's sysid keeps the GCS failsafe away
        if msg.get_srcSystem() == self.params["MAV_GCS_SYSID"]:
            self.gcs_last_hb = self.now

    def _h_PARAM_REQUEST_LIST(self, link, msg):
        names = self.params.visible()
        for i, n in enumerate(names):
            self.send_to(link, self._param_msg(n, i, len(names)))

    def _h_PARAM_REQUEST_READ(self, link, msg):
        names = self.params.visible()
        if msg.param_index >= 0:
            if msg.param_index >= len(names):
                return
            name = names[msg.param_index]
        else:
            name = _pname(msg.param_id)
            if name not in self.params.types:
                return
        idx = names.index(name) if name in names else 65535
        self.send_to(link, self._param_msg(name, idx, len(names)))

    def _h_PARAM_SET(self, link, msg):
        name = _pname(msg.param_id)
        if not self.params.set(name, msg.param_value):
            return  # ArduPilot ignores unknown names without a reply
        self.param_changed(name)
        names = self.params.visible()
        idx = names.index(name) if name in names else 65535
        self.broadcast(self._param_msg(name, idx, len(names)))

    def _param_msg(self, name, idx, count):
        return M.MAVLink_param_value_message(name.encode(), self.params[name],
                                             self.params.types[name], count, idx)

    def param_changed(self, name: str) -> None:
        v = self.params[name]
        if name == "SIM_SPEEDUP" and v > 0:
            self.runner.set_speedup(v)
        elif name == "FENCE_ENABLE":
            self.fence_enabled = bool(v)
            if not v:
                self.breaches = 0
        elif name in ("WPNAV_SPEED", "WPNAV_SPEED_UP", "WPNAV_SPEED_DN"):
            self.speed_xy = self.params["WPNAV_SPEED"] / 100.0
            self.speed_up = self.params["WPNAV_SPEED_UP"] / 100.0
            self.speed_dn = self.params["WPNAV_SPEED_DN"] / 100.0

    # mission protocol
    def _h_MISSION_COUNT(self, link, msg):
        p = self.protocols.get(msg.mission_type)
        if p is None:
            return self.send_to(link, M.MAVLink_mission_ack_message(
                msg.get_srcSystem(), msg.get_srcComponent(), M.MAV_MISSION_UNSUPPORTED,
                msg.mission_type))
        p.handle_count(link, msg)

    def _h_MISSION_ITEM_INT(self, link, msg):
        d = {k: getattr(msg, k) for k in ("param1", "param2", "param3", "param4", "x", "y", "z",
                                           "seq", "command", "frame", "current",
                                           "autocontinue", "mission_type")}
        self._mission_item(link, msg, d, False)

    def _h_MISSION_ITEM(self, link, msg):
        res, d = item_int_from_mission_item(msg)
        if res != M.MAV_MISSION_ACCEPTED:
            return self.send_to(link, M.MAVLink_mission_ack_message(
                msg.get_srcSystem(), msg.get_srcComponent(), res, msg.mission_type))
        self._mission_item(link, msg, d, True)

    def _mission_item(self, link, msg, d, was_float):
        if d["mission_type"] == MISSION and d["current"] in (2, 3):
            return self._guided_mission_item(link, msg, d)
        p = self.protocols.get(d["mission_type"])
        if p is None:
            return self.send_to(link, M.MAVLink_mission_ack_message(
                msg.get_srcSystem(), msg.get_srcComponent(), M.MAV_MISSION_UNSUPPORTED,
                d["mission_type"]))
        p.handle_item(link, msg, d, was_float)

    def _h_MISSION_REQUEST_LIST(self, link, msg):
        p = self.protocols.get(msg.mission_type)
        if p is None:
            return self.send_to(link, M.MAVLink_mission_ack_message(
                msg.get_srcSystem(), msg.get_srcComponent(), M.MAV_MISSION_UNSUPPORTED,
                msg.mission_type))
        p.handle_request_list(link, msg)

    def _h_MISSION_REQUEST_INT(self, link, msg):
        p = self.protocols.get(msg.mission_type)
        if p is not None:
            p.handle_request(link, msg, True)

    def _h_MISSION_REQUEST(self, link, msg):
        p = self.protocols.get(msg.mission_type)
        if p is not None:
            p.handle_request(link, msg, False)

    def _h_MISSION_CLEAR_ALL(self, link, msg):
        p = self.protocols.get(msg.mission_type)
        if p is None:
            return self.send_to(link, M.MAVLink_mission_ack_message(
                msg.get_srcSystem(), msg.get_srcComponent(), M.MAV_MISSION_UNSUPPORTED,
                msg.mission_type))
        p.handle_clear_all(link, msg)

    def _h_MISSION_ACK(self, link, msg):
        pass  # ends a download; nothing is held open on our side

    def _h_MISSION_SET_CURRENT(self, link, msg):
        if self.set_current_cmd(msg.seq):
            self.send_to(link, self._mission_current_msg(msg.seq))

    def _h_REQUEST_DATA_STREAM(self, link, msg):
        rate = msg.req_message_rate if msg.start_stop else 0
        for name, (group, _) in STREAMS.items():
            if group is None:
                continue
            if msg.req_stream_id in (M.MAV_DATA_STREAM_ALL, group):
                self._set_interval(link, name, 1.0 / rate if rate > 0 else None)

    def _set_interval(self, link, name: str, interval: Optional[float]) -> None:
        if link is None:
            return
        if interval is None:
            link.sched.pop(name, None)
        else:
            link.sched[name] = [interval, self.now]
            link.next_due = self.now
            self.next_due = self.now

    def _h_SET_MODE(self, link, msg):
        if msg.base_mode & M.MAV_MODE_FLAG_CUSTOM_MODE_ENABLED:
            self.set_mode(msg.custom_mode)  # ArduPilot sends no ACK for SET_MODE

    def _h_SET_POSITION_TARGET_GLOBAL_INT(self, link, msg):
        if self.mode != GUIDED or not self.armed or self.land_complete:
            return
        if msg.type_mask & 0b111:  # position ignored: velocity/accel targets not modelled
            return
        n, e = geo.ne_offset(self.home_lat, self.home_lon, msg.lat_int, msg.lon_int)
        h = self._alt_from_frame(msg.alt, msg.coordinate_frame)
        if h is not None:
            self.tgt = (n, e, h)

    def _h_COMMAND_LONG(self, link, msg):
        p = [msg.param1, msg.param2, msg.param3, msg.param4, msg.param5, msg.param6, msg.param7]
        frame = M.MAV_FRAME_GLOBAL_RELATIVE_ALT if msg.command == M.MAV_CMD_NAV_TAKEOFF else M.MAV_FRAME_GLOBAL
        x = int(p[4] * 1e7) if msg.command in (M.MAV_CMD_DO_REPOSITION, M.MAV_CMD_DO_SET_HOME) else p[4]
        y = int(p[5] * 1e7) if msg.command in (M.MAV_CMD_DO_REPOSITION, M.MAV_CMD_DO_SET_HOME) else p[5]
        res = self.command(msg.command, p[:4], x, y, p[6], frame, link, msg)
        self._ack(link, msg, msg.command, res)

    def _h_COMMAND_INT(self, link, msg):
        res = self.command(msg.command, [msg.param1, msg.param2, msg.param3, msg.param4],
                           msg.x, msg.y, msg.z, msg.frame, link, msg)
        self._ack(link, msg, msg.command, res)

    def _ack(self, link, msg, command, res):
        if res is None:
            return
        self.send_to(link, M.MAVLink_command_ack_message(
            command, res, 0, 0, msg.get_srcSystem(), msg.get_srcComponent()))

    # ------------------------------------------------------------ commands
    def command(self, cmd, p, x, y, z, frame, link, msg):
        R = M
        if cmd == R.MAV_CMD_COMPONENT_ARM_DISARM:
            if p[0] == 1:
                if self.armed:
                    return R.MAV_RESULT_ACCEPTED
                return R.MAV_RESULT_ACCEPTED if self.arm(force=p[1] in (2989, 21196)) else R.MAV_RESULT_FAILED
            if p[0] == 0:
                if not self.armed:
                    return R.MAV_RESULT_ACCEPTED
                if p[1] != 21196 and not self.land_complete:
                    return R.MAV_RESULT_FAILED  # "do not allow disarm via mavlink if we think we are flying"
                self.disarm()
                return R.MAV_RESULT_ACCEPTED
            return R.MAV_RESULT_UNSUPPORTED
        if cmd == R.MAV_CMD_DO_SET_MODE:
            if int(p[0]) & R.MAV_MODE_FLAG_CUSTOM_MODE_ENABLED:
                return R.MAV_RESULT_ACCEPTED if self.set_mode(int(p[1])) else R.MAV_RESULT_FAILED
            return R.MAV_RESULT_DENIED
        if cmd == R.MAV_CMD_MISSION_START:
            if p[0] != 0 or p[1] != 0:
                return R.MAV_RESULT_DENIED
            if self.set_mode(AUTO):
                self.auto_armed = self.armed
                if self.mstate != MISSION_RUNNING:
                    self.mission_start_or_resume()
                return R.MAV_RESULT_ACCEPTED
            return R.MAV_RESULT_FAILED
        if cmd == R.MAV_CMD_NAV_TAKEOFF:
            if frame not in (R.MAV_FRAME_GLOBAL_RELATIVE_ALT,):
                return R.MAV_RESULT_DENIED
            alt = float(z)
            if (not self.armed or not self.land_complete or self.mode not in USER_TAKEOFF
                    or alt <= self.h):
                return R.MAV_RESULT_FAILED
            self.user_takeoff(alt)
            return R.MAV_RESULT_ACCEPTED
        if cmd == R.MAV_CMD_NAV_RETURN_TO_LAUNCH:
            return R.MAV_RESULT_ACCEPTED if self.set_mode(RTL) else R.MAV_RESULT_FAILED
        if cmd == R.MAV_CMD_NAV_LAND:
            return R.MAV_RESULT_ACCEPTED if self.set_mode(LAND) else R.MAV_RESULT_FAILED
        if cmd == R.MAV_CMD_NAV_LOITER_UNLIM:
            return R.MAV_RESULT_ACCEPTED if self.set_mode(LOITER) else R.MAV_RESULT_FAILED
        if cmd == R.MAV_CMD_DO_GRIPPER:
            if not self.params["GRIP_ENABLE"]:
                return R.MAV_RESULT_FAILED
            a = int(p[1])
            if a == R.GRIPPER_ACTION_RELEASE:
                self.gripper_release()
            elif a == R.GRIPPER_ACTION_GRAB:
                self.gripper_grab()
            else:
                return R.MAV_RESULT_FAILED
            return R.MAV_RESULT_ACCEPTED
        if cmd == R.MAV_CMD_DO_WINCH:
            return R.MAV_RESULT_ACCEPTED if self.winch_command(int(p[1]), p[2], p[3]) else R.MAV_RESULT_FAILED
        if cmd == R.MAV_CMD_DO_CHANGE_SPEED:
            if not p[1] > 0:
                return R.MAV_RESULT_DENIED
            self.change_speed(int(p[0]), p[1])
            return R.MAV_RESULT_ACCEPTED
        if cmd == R.MAV_CMD_DO_SET_MISSION_CURRENT:
            seq = int(p[0])
            if not seq < self.mission_total:  # AP_Mission::is_valid_index
                return R.MAV_RESULT_DENIED
            if p[1] == 1:
                self.mission_reset()
            if not self.set_current_cmd(seq):
                return R.MAV_RESULT_FAILED
            if p[1] == 1:
                self.mission_resume()
            self.broadcast(self._mission_current_msg(self.current_nav_index()))
            return R.MAV_RESULT_ACCEPTED
        if cmd == R.MAV_CMD_PREFLIGHT_REBOOT_SHUTDOWN:
            if int(p[0]) != 1:
                return R.MAV_RESULT_UNSUPPORTED
            if self.armed:
                return R.MAV_RESULT_FAILED
            self.send_to(link, M.MAVLink_command_ack_message(
                cmd, R.MAV_RESULT_ACCEPTED, 0, 0, msg.get_srcSystem(), msg.get_srcComponent()))
            self.runner.call_soon(self.reboot)
            return None
        if cmd == R.MAV_CMD_REQUEST_MESSAGE:
            name = MSG_NAMES.get(int(p[0]))
            if name is None:
                return R.MAV_RESULT_FAILED
            if name == "HOME_POSITION" and not self.home_set:
                return R.MAV_RESULT_FAILED
            m = self.make_msg(name)
            if m is not None:
                self.send_to(link, m)
            return R.MAV_RESULT_ACCEPTED
        if cmd == R.MAV_CMD_SET_MESSAGE_INTERVAL:
            # GCS_MAVLINK::set_message_interval
            if p[2] != 0:
                return R.MAV_RESULT_DENIED
            name = MSG_NAMES.get(int(p[0]))
            if name is None:
                self.text(M.MAV_SEVERITY_INFO, f"No ap_message for mavlink id ({int(p[0])})")
                return R.MAV_RESULT_DENIED
            us = int(p[1])
            if us == 0:
                hz = STREAMS[name][1]
                self._set_interval(link, name, 1.0 / hz if hz > 0 else None)
            elif us == -1:
                self._set_interval(link, name, None)
            elif us < 0:
                return R.MAV_RESULT_DENIED
            else:
                self._set_interval(link, name, min(max(us, 1000), 60_000_000) / 1e6)
            return R.MAV_RESULT_ACCEPTED
        if cmd == R.MAV_CMD_GET_MESSAGE_INTERVAL:
            name = MSG_NAMES.get(int(p[0]))
            if name is None:
                return R.MAV_RESULT_FAILED
            s = link.sched.get(name) if link is not None else None
            self.send_to(link, M.MAVLink_message_interval_message(int(p[0]), int(s[0] * 1e6) if s else -1))
            return R.MAV_RESULT_ACCEPTED
        if cmd == R.MAV_CMD_GET_HOME_POSITION:
            if not self.home_set:
                return R.MAV_RESULT_FAILED
            self.send_to(link, self.make_msg("HOME_POSITION"))
            return R.MAV_RESULT_ACCEPTED
        if cmd == R.MAV_CMD_REQUEST_AUTOPILOT_CAPABILITIES:
            self.send_to(link, self.make_msg("AUTOPILOT_VERSION"))
            return R.MAV_RESULT_ACCEPTED
        if cmd == R.MAV_CMD_DO_PAUSE_CONTINUE:
            # ModeAuto::pause only in the WP submode before the destination; GUIDED holds too
            if int(p[0]) == 0:
                can = (self.armed and not self.land_complete and (
                    (self.mode == AUTO and self.sub == "wp" and not self.reached())
                    or self.mode == GUIDED))
                if not can:
                    self.text(M.MAV_SEVERITY_INFO, "Failed to pause", link=link)
                    return R.MAV_RESULT_FAILED
                if self.paused_at is None:
                    # stop along the current track, as the position controller would
                    acc = max(self.params["WPNAV_ACCEL"] / 100.0, 0.5)
                    v = math.hypot(self.vn, self.ve)
                    k = v / (2 * acc) if v > 0.01 else 0.0
                    self.paused_at = (self.n + self.vn * k, self.e + self.ve * k, self.h)
                return R.MAV_RESULT_ACCEPTED
            if int(p[0]) == 1:
                self.paused_at = None
                return R.MAV_RESULT_ACCEPTED
            return R.MAV_RESULT_DENIED
        if cmd == R.MAV_CMD_DO_FENCE_ENABLE:
            if int(p[0]) in (0, 1):
                self.fence_enabled = bool(int(p[0]))
                if not self.fence_enabled:
                    self.breaches = 0
                return R.MAV_RESULT_ACCEPTED
            return R.MAV_RESULT_FAILED
        if cmd == R.MAV_CMD_DO_REPOSITION:
            if self.mode != GUIDED and not (int(p[1]) & 1):
                return R.MAV_RESULT_DENIED
            if not (geo.check_lat(int(x)) and geo.check_lng(int(y))):
                return R.MAV_RESULT_DENIED
            h = self._alt_from_frame(z, frame)
            if h is None:
                return R.MAV_RESULT_DENIED
            if self.mode != GUIDED and not self.set_mode(GUIDED):
                return R.MAV_RESULT_FAILED
            n, e = geo.ne_offset(self.home_lat, self.home_lon, int(x), int(y))
            self.tgt = (n, e, h)
            return R.MAV_RESULT_ACCEPTED
        if cmd == R.MAV_CMD_DO_SET_HOME:
            if p[0] == 1:
                if not (geo.check_lat(int(x)) and geo.check_lng(int(y))):
                    return R.MAV_RESULT_FAILED
                self.set_home(int(x), int(y), float(z))
            else:
                lat, lon = self.latlon()
                self.set_home(lat, lon, self.home_alt + self.h)
            return R.MAV_RESULT_ACCEPTED
        return R.MAV_RESULT_UNSUPPORTED

    def _alt_from_frame(self, alt: float, frame: int) -> Optional[float]:
        if frame in (M.MAV_FRAME_GLOBAL, M.MAV_FRAME_GLOBAL_INT):
            return alt - self.home_alt
        if frame in (M.MAV_FRAME_GLOBAL_RELATIVE_ALT, M.MAV_FRAME_GLOBAL_RELATIVE_ALT_INT,
                     M.MAV_FRAME_GLOBAL_TERRAIN_ALT, M.MAV_FRAME_GLOBAL_TERRAIN_ALT_INT):
            return alt
        return None

    def _guided_mission_item(self, link, msg, d):
        from .mission import convert_mission_item
        res, it = convert_mission_item(d)
        if res == M.MAV_MISSION_ACCEPTED:
            if d["current"] == 2:
                if self.mode == GUIDED and self.armed and not self.land_complete:
                    n, e = geo.ne_offset(self.home_lat, self.home_lon, it.x, it.y)
                    self.tgt = (n, e, self.item_alt(it))
                else:
                    res = M.MAV_MISSION_ERROR
            elif self.tgt is not None:
                self.tgt = (self.tgt[0], self.tgt[1], self.item_alt(it))
        self.send_to(link, M.MAVLink_mission_ack_message(
            msg.get_srcSystem(), msg.get_srcComponent(), res, MISSION))

    # ------------------------------------------------------------- reboot
    def reboot(self) -> None:
        """Links drop and come back after REBOOT_S; params, mission, fence, rally survive."""
        # stop listening before dropping clients, so a client that reconnects on
        # seeing the close is refused rather than accepted into a dying socket
        for srv in self.servers:
            srv.pause()
        for link in list(self.links):
            if getattr(link, "closable", False):
                link.close()
        self.rebooting_until = self.now + REBOOT_S

    def _finish_reboot(self) -> None:
        # AP_Gripper_Servo::init_gripper moves to neutral; a parcel already held stays
        # physically attached (parcel_attached is not reset by boot)
        self.boot(self.now)
        for srv in self.servers:
            srv.resume()

    # --------------------------------------------------------------- modes
    def set_mode(self, mode: int) -> bool:
        if mode == self.mode:
            return True
        if mode not in MODE_NAMES:
            self.text(M.MAV_SEVERITY_WARNING, f"No such mode {mode}")
            return False
        name = MODE_NAMES[mode]
        ignore_checks = not self.armed
        if not ignore_checks and mode in REQUIRES_GPS and not self.ekf_ready:
            self.text(M.MAV_SEVERITY_WARNING, f"Mode change to {name} failed: requires position")
            return False
        if mode == AUTO:
            if not (self.mission_present() or ignore_checks):
                self.text(M.MAV_SEVERITY_WARNING, f"Mode change to {name} failed: init failed")
                return False
            if self.armed and self.land_complete and not self.starts_with_takeoff():
                self.text(M.MAV_SEVERITY_CRITICAL, "Auto: Missing Takeoff Cmd")
                self.text(M.MAV_SEVERITY_WARNING, f"Mode change to {name} failed: init failed")
                return False
        if mode in (RTL, SMART_RTL) and not ignore_checks and not self.ekf_ready:
            return False
        # exit the old mode
        if self.mode == AUTO and self.mstate == MISSION_RUNNING:
            self.mstate = MISSION_STOPPED
        self.mode = mode
        self.paused_at = None
        self.sub = None
        self.pp = None
        self.vu_cmd = None
        if mode == AUTO:
            self.waiting_to_start = True
            self.speed_xy = self.params["WPNAV_SPEED"] / 100.0
        elif mode in (RTL, SMART_RTL):
            self.rtl_start()
        elif mode in (LOITER, POSHOLD, BRAKE, GUIDED, ALT_HOLD):
            self.tgt = (self.n, self.e, self.h) if not self.land_complete else None
        elif mode == LAND:
            self.tgt = None
            self.sub = "land"
        self.broadcast(self.make_msg("HEARTBEAT"))
        return True

    # ------------------------------------------------------------- arming
    def prearm_failures(self) -> list[str]:
        out = []
        if self.gcs_failsafe:
            out.append("GCS failsafe on")
        fence_types = int(self.params["FENCE_TYPE"])
        needs_gps = self.mode in REQUIRES_GPS
        fence_gps = self.fence_enabled and fence_types & (FENCE_CIRCLE | FENCE_POLYGON)
        if not self.ekf_ready:
            if needs_gps:
                out.append("Need Position Estimate")
            elif fence_gps:
                out.append("Fence enabled, need position estimate")
        if self.batt_failsafe:
            out.append("Battery failsafe")
        f = self.fence_prearm()
        if f:
            out.append(f)
        return out

    def fence_prearm(self) -> Optional[str]:
        types = int(self.params["FENCE_TYPE"])
        if self.fence_enabled and types == 0:
            return "Fences enabled, but none selected"
        if not self.fence_enabled and not self.params["FENCE_AUTOENABLE"]:
            return None
        if types & (FENCE_CIRCLE | FENCE_POLYGON) and not self.ekf_ready:
            return "Fence requires position"
        margin = self.params["FENCE_MARGIN"]
        if types & FENCE_POLYGON:
            for it in self.store[FENCE]:
                if it.command == M.MAV_CMD_NAV_FENCE_CIRCLE_INCLUSION and it.param1 < margin:
                    return "Polygon fence margin is greater than inclusion circle radius"
        if types & FENCE_CIRCLE:
            if self.params["FENCE_RADIUS"] < 0:
                return "Invalid Circle FENCE_RADIUS value"
            if self.params["FENCE_RADIUS"] < margin:
                return "Circle FENCE_MARGIN is greater than FENCE_RADIUS"
        if self.params["FENCE_ALT_MAX"] < 0:
            return "Invalid FENCE_ALT_MAX value"
        if self.params["FENCE_ALT_MIN"] < -100:
            return "Invalid FENCE_ALT_MIN value"
        if self.breaches:
            return "Vehicle breaching " + fence_names(self.breaches)
        if margin < 0:
            return "Invalid FENCE_MARGIN value"
        if self.params["FENCE_ALT_MAX"] < self.params["FENCE_ALT_MIN"]:
            return "FENCE_ALT_MAX < FENCE_ALT_MIN"
        if self.params["FENCE_ALT_MAX"] - self.params["FENCE_ALT_MIN"] <= 2 * margin:
            return "FENCE_MARGIN too big"
        return None

    def mandatory_failures(self) -> list[str]:
        """AP_Arming_Copter::mandatory_gps_checks: run even when checks are off or forced."""
        if self.ekf_ready:
            return []
        if self.mode in REQUIRES_GPS:
            return ["Need Position Estimate"]
        if self.fence_enabled and int(self.params["FENCE_TYPE"]) & (FENCE_CIRCLE | FENCE_POLYGON):
            return ["Fence enabled, need position estimate"]
        return []

    def arm(self, force: bool = False) -> bool:
        # AP_Arming::arm: forced -> mandatory checks only (not even "mode not armable");
        # otherwise pre-arm checks (all reported), then arm_checks
        if force or self.params["ARMING_CHECK"] == 0:
            fails = self.mandatory_failures()
        else:
            fails = self.prearm_failures()
        if fails:
            for f in fails:
                self.text(M.MAV_SEVERITY_CRITICAL, "Arm: " + f)
            return False
        allowed = self.mode in ARMABLE or (
            self.mode == AUTO and int(self.params["AUTO_OPTIONS"]) & 1)
        if not allowed and not force:
            self.text(M.MAV_SEVERITY_CRITICAL, f"Arm: {MODE_NAMES[self.mode]} mode not armable")
            return False
        self.armed = True
        self.auto_armed = False
        self.disarm_timer = self.now
        self.text(M.MAV_SEVERITY_INFO, "Arming motors")
        self.broadcast(self.make_msg("HEARTBEAT"))
        return True

    def disarm(self) -> None:
        if not self.armed:
            return
        self.armed = False
        self.auto_armed = False
        self.land_complete = True
        self.tgt = None
        self.vu_cmd = None
        self.vn = self.ve = self.vu = 0.0
        self.text(M.MAV_SEVERITY_INFO, "Disarming motors")
        self.mission_reset()  # AP_Arming_Copter::disarm -> mode_auto.mission.reset()
        self.broadcast(self.make_msg("HEARTBEAT"))

    # ------------------------------------------------------------ mission
    def mission_present(self) -> bool:
        return self.mission_total > 1

    def truncate_mission(self, count: int) -> None:
        if self.mission_total > count:
            self.mission_total = count
            del self.store[MISSION][max(0, count - 1):]
            self.params.set("MIS_TOTAL", self.mission_total)

    def write_mission_item(self, seq: int, it: Item) -> int:
        """replace_cmd / add_cmd exactly as AP_Mission does (index 0 silently ignored)."""
        total = self.mission_total
        if seq < total:
            if seq != 0:
                self.store[MISSION][seq - 1] = it
            return M.MAV_MISSION_ACCEPTED
        if seq == total:
            if total < 1:
                self.mission_total = 1  # home is written first
            self.store[MISSION].append(it)
            self.mission_total += 1
            self.params.set("MIS_TOTAL", self.mission_total)
            return M.MAV_MISSION_ACCEPTED
        return M.MAV_MISSION_ERROR

    def clear_mission(self) -> bool:
        if self.armed and self.mstate == MISSION_RUNNING:
            return False
        self.store[MISSION] = []
        self.mission_total = 0
        self.params.set("MIS_TOTAL", 0)
        self.nav_idx = self.do_idx = None
        self.nav_loaded = self.do_loaded = False
        self.mstate = MISSION_STOPPED
        return True

    def mission_changed(self) -> None:
        if self.mode == AUTO and self.mstate == MISSION_RUNNING and self.sub == "wp":
            if self.nav_idx is not None and 0 < self.nav_idx < self.mission_total:
                self.text(M.MAV_SEVERITY_CRITICAL, "Auto mission changed, restarted command")
                self.set_current_cmd(self.nav_idx)

    def fence_changed(self) -> None:
        n = sum(1 for it in self.store[FENCE])
        self.params.set("FENCE_TOTAL", min(n, 127))

    def home_item(self) -> Item:
        if not self.home_set:
            return Item(command=M.MAV_CMD_NAV_WAYPOINT)
        alt_cm = int(geo.f32(self.home_alt * 100.0))
        return Item(command=M.MAV_CMD_NAV_WAYPOINT, frame=M.MAV_FRAME_GLOBAL,
                    x=self.home_lat, y=self.home_lon, z=geo.f32(alt_cm * geo.f32(0.01)))

    def cmd(self, idx: int) -> Item:
        return self.home_item() if idx == 0 else self.store[MISSION][idx - 1]

    def current_nav_index(self) -> int:
        return 0 if self.nav_idx is None else self.nav_idx

    def starts_with_takeoff(self) -> bool:
        idx = self.nav_idx if (self.nav_idx is not None and not self.params["MIS_RESTART"]) else 1
        for _ in range(16):
            c = self.next_cmd(idx, False)
            if c is None:
                return False
            i, it = c
            if not is_nav(it.command):
                idx = i + 1
                continue
            if it.command in (M.MAV_CMD_NAV_TAKEOFF, M.MAV_CMD_NAV_VTOL_TAKEOFF):
                return True
            if it.command == M.MAV_CMD_NAV_DELAY:
                idx = i + 1
                continue
            return False
        return False

    def next_cmd(self, start: int, increment_jumps: bool):
        """AP_Mission::get_next_cmd, following DO_JUMPs."""
        i = start
        guard = 0
        while 0 < i < self.mission_total and guard < 256:
            guard += 1
            it = self.cmd(i)
            if it.command == M.MAV_CMD_DO_JUMP:
                times = int(it.param2)
                done = self.jump_counts.get(i, 0)
                if times == -1 or done < times:
                    if increment_jumps:
                        self.jump_counts[i] = done + 1
                    i = int(it.param1)
                    continue
                i += 1
                continue
            return i, it
        return None

    def mission_reset(self) -> None:
        self.nav_loaded = self.do_loaded = self.do_all_done = False
        self.nav_idx = self.do_idx = None
        self.jump_counts = {}

    def mission_start(self) -> None:
        self.mstate = MISSION_RUNNING
        self.mission_reset()
        if not self.advance_nav(None):
            self.mission_complete()

    def mission_resume(self) -> None:
        if self.mstate == MISSION_COMPLETE:
            return self.mission_start()
        if self.mstate == MISSION_STOPPED:
            self.mstate = MISSION_RUNNING
            if self.nav_idx is None:
                return self.mission_start()
        # restart the active do command (which reloads the nav command) or the nav command;
        # with neither loaded, update() finds the next one
        if self.do_loaded and self.do_idx is not None:
            self.set_current_cmd(self.do_idx)
        elif self.nav_loaded and self.nav_idx is not None:
            self.set_current_cmd(self.nav_idx)

    def mission_start_or_resume(self) -> None:
        if self.params["MIS_RESTART"]:
            self.mission_start()
        else:
            self.mission_resume()

    def set_current_cmd(self, index: int) -> bool:
        if index >= self.mission_total or self.mission_total == 1:
            return False
        self.do_idx = None
        self.do_loaded = self.do_all_done = False
        self.nav_loaded = False
        if index == 0 or self.mstate == MISSION_COMPLETE:
            self.jump_counts = {}
            index = max(index, 1)
        if self.mstate != MISSION_RUNNING:
            while not self.nav_loaded:
                c = self.next_cmd(index, True)
                if c is None:
                    self.nav_idx = None
                    return False
                i, it = c
                if is_nav(it.command):
                    self.nav_idx = i
                    self.nav_loaded = True
                elif not self.do_loaded:
                    self.do_idx = i
                    self.do_loaded = True
                index = i + 1
            if not self.do_loaded:
                self.do_all_done = True
            self.mstate = MISSION_STOPPED
            return True
        if not self.advance_nav(index):
            self.mission_complete()
            return False
        return True

    def advance_nav(self, starting_index: Optional[int]) -> bool:
        if self.mstate != MISSION_RUNNING or self.nav_loaded:
            return False
        self.do_idx = None
        self.do_loaded = self.do_all_done = False
        if starting_index is not None and starting_index > 0:
            idx = starting_index
        elif self.nav_idx is None:
            idx = 1
        else:
            idx = self.nav_idx + 1
        while not self.nav_loaded:
            c = self.next_cmd(idx, True)
            if c is None:
                return False
            i, it = c
            if is_nav(it.command):
                self.nav_idx = i
                self.start_command(i, it)
                self.nav_loaded = True
            elif not self.do_loaded:
                self.do_idx = i
                self.do_loaded = True
                self.start_command(i, it)
            idx = i + 1
        if not self.do_loaded:
            self.do_all_done = True
        self.broadcast(self._mission_current_msg(self.nav_idx))
        return True

    def advance_do(self) -> None:
        if self.mstate != MISSION_RUNNING or self.do_all_done:
            return
        idx = 1 if self.do_idx is None else self.do_idx + 1
        c = self.next_cmd(idx, False)
        if c is None or is_nav(c[1].command):
            self.do_all_done = True
            return
        self.do_idx = c[0]
        self.do_loaded = True
        self.start_command(c[0], c[1])

    def mission_update(self) -> None:
        if self.mstate != MISSION_RUNNING or self.mission_total == 0:
            return
        if not self.nav_loaded or self.nav_idx is None:
            if not self.advance_nav(None):
                self.mission_complete()
                return
        elif self.verify_command(self.nav_idx, self.cmd(self.nav_idx)):
            self.nav_loaded = False
            if not self.advance_nav(None):
                self.mission_complete()
                return
        if not self.do_loaded:
            self.advance_do()
        elif self.do_idx is not None and self.verify_command(self.do_idx, self.cmd(self.do_idx)):
            self.do_loaded = False

    def mission_complete(self) -> None:
        self.mstate = MISSION_COMPLETE
        if self.mode != AUTO:
            return
        if not self.land_complete:
            self.sub = "loiter"
            self.tgt = (self.n, self.e, self.h)
        elif self.armed:
            self.disarm()

    def start_command(self, idx: int, it: Item) -> None:
        name = CMD_NAMES.get(it.command, str(it.command))
        self.text(M.MAV_SEVERITY_INFO, f"Mission: {idx} {name}")
        c = it.command
        if is_nav(c):
            # per-nav-command timers; a DO item starting meanwhile must not reset them
            self.paused_at = None
            self.sub_t = self.now
            self.loiter_until = None
        if c == M.MAV_CMD_NAV_TAKEOFF:
            alt = max(self.item_alt(it), self.h)
            self.sub = "takeoff"
            self.tgt = (self.n, self.e, max(alt, self.h + 1.0) if self.land_complete else alt)
        elif c in (M.MAV_CMD_NAV_WAYPOINT, M.MAV_CMD_NAV_SPLINE_WAYPOINT, M.MAV_CMD_NAV_LOITER_TIME,
                   M.MAV_CMD_NAV_LOITER_UNLIM, M.MAV_CMD_NAV_LOITER_TURNS):
            self.sub = "wp"
            self.tgt = self.item_target(it)
        elif c == M.MAV_CMD_NAV_LAND:
            self.vu_cmd = None
            if it.x != 0 or it.y != 0:
                n, e = geo.ne_offset(self.home_lat, self.home_lon, it.x, it.y)
                self.tgt = (n, e, self.h)
                self.sub = "land_fly"
            else:
                self.tgt = (self.n, self.e, self.h)
                self.sub = "land"
        elif c == M.MAV_CMD_NAV_RETURN_TO_LAUNCH:
            self.sub = "rtl"
            self.rtl_start()
        elif c == M.MAV_CMD_NAV_PAYLOAD_PLACE:
            self.pp = {"state": "fly" if (it.x or it.y) else "descent_start",
                       "max_cm": round(it.param1 * 100)}
            self.sub = "payload_place"
            if it.x or it.y:
                n, e = geo.ne_offset(self.home_lat, self.home_lon, it.x, it.y)
                self.tgt = (n, e, self.h)  # shift_alt_to_current_alt
            else:
                self.tgt = (self.n, self.e, self.h)
        elif c == M.MAV_CMD_NAV_DELAY:
            self.sub = "delay"
            self.loiter_until = self.now + max(0.0, it.param1)
            self.tgt = (self.n, self.e, self.h)
        elif c == M.MAV_CMD_DO_CHANGE_SPEED:
            if it.param2 > 0:
                self.change_speed(int(it.param1), it.param2)
        elif c == M.MAV_CMD_DO_GRIPPER:
            if self.params["GRIP_ENABLE"]:
                if int(it.param2) == M.GRIPPER_ACTION_RELEASE:
                    self.gripper_release()
                elif int(it.param2) == M.GRIPPER_ACTION_GRAB:
                    self.gripper_grab()
        elif c == M.MAV_CMD_DO_WINCH:
            self.winch_command(int(it.param2), it.param3, it.param4)
        elif c == M.MAV_CMD_CONDITION_DELAY:
            self.cond_delay_until = self.now + it.param1
        elif c == M.MAV_CMD_DO_FENCE_ENABLE:
            self.fence_enabled = int(it.param1) == 1
        elif c == M.MAV_CMD_DO_SET_HOME:
            if int(it.param1) == 1 or (it.x or it.y):
                self.set_home(it.x, it.y, self.item_alt(it) + self.home_alt)

    def verify_command(self, idx: int, it: Item) -> bool:
        if self.mode != AUTO:
            return False
        if self.paused_at is not None and is_nav(it.command):
            return False
        c = it.command
        if c in (M.MAV_CMD_DO_GRIPPER, M.MAV_CMD_DO_SET_SERVO, M.MAV_CMD_DO_SET_RELAY,
                 M.MAV_CMD_DO_REPEAT_SERVO, M.MAV_CMD_DO_REPEAT_RELAY, M.MAV_CMD_DO_PARACHUTE,
                 M.MAV_CMD_DO_AUX_FUNCTION, M.MAV_CMD_DO_SET_RESUME_REPEAT_DIST):
            return True  # AP_Mission::verify_command: no MISSION_ITEM_REACHED for these
        done = False
        if c == M.MAV_CMD_NAV_TAKEOFF:
            done = self.sub == "takeoff" and not self.land_complete and self.h >= self.tgt[2] - 0.3
        elif c in (M.MAV_CMD_NAV_WAYPOINT, M.MAV_CMD_NAV_SPLINE_WAYPOINT, M.MAV_CMD_NAV_LOITER_TIME):
            if self.reached():
                if self.loiter_until is None:
                    self.loiter_until = self.now + int(it.param1)
                if self.now >= self.loiter_until:
                    self.text(M.MAV_SEVERITY_INFO, f"Reached command #{idx}")
                    done = True
        elif c == M.MAV_CMD_NAV_LOITER_TURNS:
            # circling is not flown; the time the turns would take is spent at the centre
            if self.reached():
                if self.loiter_until is None:
                    r = max(abs(it.param3), 1.0)
                    self.loiter_until = self.now + it.param1 * 2 * math.pi * r / max(self.speed_xy, 1.0)
                done = self.now >= self.loiter_until
        elif c == M.MAV_CMD_NAV_LOITER_UNLIM:
            done = False
        elif c == M.MAV_CMD_NAV_LAND:
            if self.sub == "land" and self.land_complete and self.armed:
                # verify_land: disarm and return false; the mission stays on this
                # item and restarts at item 1 once disarmed
                self.disarm()
            return False
        elif c == M.MAV_CMD_NAV_RETURN_TO_LAUNCH:
            done = self.rtl is not None and self.rtl["state"] == "done"
        elif c == M.MAV_CMD_NAV_PAYLOAD_PLACE:
            done = self.pp is not None and self.pp["state"] == "done"
        elif c == M.MAV_CMD_NAV_DELAY:
            done = self.loiter_until is not None and self.now >= self.loiter_until
        elif c == M.MAV_CMD_CONDITION_DELAY:
            done = self.cond_delay_until is not None and self.now >= self.cond_delay_until
        elif c in (M.MAV_CMD_DO_CHANGE_SPEED, M.MAV_CMD_DO_SET_HOME, M.MAV_CMD_DO_SET_ROI,
                   M.MAV_CMD_DO_SET_ROI_LOCATION, M.MAV_CMD_DO_SET_ROI_NONE, M.MAV_CMD_DO_FENCE_ENABLE,
                   M.MAV_CMD_DO_WINCH, M.MAV_CMD_DO_LAND_START, M.MAV_CMD_DO_RETURN_PATH_START,
                   M.MAV_CMD_DO_GUIDED_LIMITS):
            done = True
        else:
            self.text(M.MAV_SEVERITY_WARNING, f"Skipping invalid cmd #{c}")
            done = True
        if done:
            self.broadcast(M.MAVLink_mission_item_reached_message(idx))
        return done

    def item_alt(self, it: Item) -> float:
        """Altitude above home for a stored item."""
        if it.alt_frame == ABS:
            return it.z - self.home_alt
        return it.z  # relative, or terrain (flat terrain at home elevation)

    def item_target(self, it: Item):
        if it.x == 0 and it.y == 0:
            n, e = self.n, self.e
        else:
            n, e = geo.ne_offset(self.home_lat, self.home_lon, it.x, it.y)
        h = self.item_alt(it)
        if it.z == 0 and it.command != M.MAV_CMD_NAV_LAND:
            h = self.h  # ModeAuto::loc_from_cmd: a zero altitude means "keep the current one"
        return (n, e, h)

    def change_speed(self, kind: int, speed: float) -> None:
        if kind in (0, 1):
            self.speed_xy = speed
        elif kind == 2:
            self.speed_up = speed
        elif kind == 3:
            self.speed_dn = speed

    def _mission_current_msg(self, seq: int):
        total = max(self.mission_total - 1, 0)
        if not self.mission_present():
            state = M.MISSION_STATE_NO_MISSION
        else:
            state = {MISSION_STOPPED: M.MISSION_STATE_NOT_STARTED,
                     MISSION_RUNNING: M.MISSION_STATE_ACTIVE,
                     MISSION_COMPLETE: M.MISSION_STATE_COMPLETE}[self.mstate]
        return M.MAVLink_mission_current_message(seq, total, state, 1 if self.mode == AUTO else 0)

    # ----------------------------------------------------------- payload
    def gripper_grab(self) -> None:
        if not self.gripper_valid:
            return  # enabled but no backend (not rebooted) or no servo output: acked, does nothing
        if self.grip_state == "grabbed":
            self.text(M.MAV_SEVERITY_INFO, "Gripper load grabbed")
            return
        self.grip_state = "grabbing"
        self.grip_pwm = int(self.params["GRIP_GRAB"])
        self.grip_t = self.now
        self.text(M.MAV_SEVERITY_INFO, "Gripper load grabbing")

    def gripper_release(self) -> None:
        if not self.gripper_valid:
            return
        if self.grip_state == "released":
            self.text(M.MAV_SEVERITY_INFO, "Gripper load released")
            return
        self.grip_state = "releasing"
        self.grip_pwm = int(self.params["GRIP_RELEASE"])
        self.grip_t = self.now
        self.text(M.MAV_SEVERITY_INFO, "Gripper load releasing")

    def update_gripper(self) -> None:
        # AP_Gripper_Servo: SERVO_ACTUATION_TIME 500 ms before the state is reached
        if self.grip_state == "grabbing" and self.now - self.grip_t >= 0.5:
            self.grip_state = "grabbed"
            self.text(M.MAV_SEVERITY_INFO, "Gripper load grabbed")
            if self.opts.payload_kg > 0 and self._parcel_reachable():
                self.parcel_attached = True
                self.parcel_pos = None
        elif self.grip_state == "releasing" and self.now - self.grip_t >= 0.5:
            self.grip_state = "released"
            self.text(M.MAV_SEVERITY_INFO, "Gripper load released")
            if self.parcel_attached and not self.opts.gripper_jam:
                self.parcel_attached = False
                self.parcel_pos = (self.n, self.e, max(self.ground_h(self.n, self.e),
                                                       self.parcel_bottom()))

    def _parcel_reachable(self) -> bool:
        if self.parcel_pos is None:
            return self.land_complete  # loaded on the ground before the flight
        pn, pe, ph = self.parcel_pos
        return geo.dist(self.n, self.e, pn, pe) < 1.0 and abs(self.parcel_bottom() - ph) < 0.5

    def parcel_bottom(self) -> float:
        return self.h - PARCEL_HANG_M - (self.winch_len if self.winch_enabled else 0.0)

    def winch_command(self, action: int, length: float, rate: float) -> bool:
        if not self.winch_enabled:
            return False
        rmax = self.params["WINCH_RATE_MAX"]
        if action == 0:
            self.winch_mode = "relaxed"
            self.winch_rate = 0.0
            self.winch_len_target = None
        elif action == 1:
            self.winch_mode = "position"
            self.winch_len_target = max(0.0, self.winch_len + length)
        elif action == 2:
            self.winch_mode = "rate"
            self.winch_rate = max(-rmax, min(rmax, rate))
            self.winch_len_target = None
        else:
            return False
        return True

    def update_winch(self, dt: float) -> None:
        if not self.winch_enabled:
            return
        rmax = self.params["WINCH_RATE_MAX"]
        if self.winch_mode == "position" and self.winch_len_target is not None:
            err = self.winch_len_target - self.winch_len
            self.winch_rate = max(-rmax, min(rmax, err * self.params["WINCH_POS_P"]))
        elif self.winch_mode == "relaxed":
            self.winch_rate = 0.0
        self.winch_len = max(0.0, self.winch_len + self.winch_rate * dt)

    # ------------------------------------------------------------- RTL
    def rally_or_home(self):
        """AP_Rally::calc_best_rally_or_home_location (copter defaults: 0.3 km, include home)."""
        best = None
        for it in self.store[RALLY]:
            n, e = geo.ne_offset(self.home_lat, self.home_lon, it.x, it.y)
            d = geo.dist(self.n, self.e, n, e)
            if best is None or d < best[0]:
                best = (d, n, e, self.item_alt(it))
        home = (0.0, 0.0, None)
        if best is None:
            return home
        limit = self.params["RALLY_LIMIT_KM"]
        if limit > 0 and best[0] > limit * 1000:
            return home
        if not self.params["RALLY_INCL_HOME"] or best[0] < geo.dist(self.n, self.e, 0, 0):
            return (best[1], best[2], best[3])
        return home

    def rtl_start(self) -> None:
        """ModeRTL::compute_return_target (relative altitudes; no terrain following)."""
        n, e, ralt = self.rally_or_home()
        target = max(ralt if ralt is not None else 0.0, 0.0)
        min_rtl = max(0.3, self.h + max(0.0, self.params["RTL_CLIMB_MIN"] / 100.0))
        target = max(target, max(self.params["RTL_ALT"] / 100.0, min_rtl))
        slope = self.params["RTL_CONE_SLOPE"]
        if slope >= 0.5:
            target = min(target, max(geo.dist(self.n, self.e, n, e) * slope, min_rtl))
        if self.fence_enabled and int(self.params["FENCE_TYPE"]) & FENCE_ALT_MAX:
            target = min(target, self.params["FENCE_ALT_MAX"] - self.params["FENCE_MARGIN"])
        target = max(target, self.h)  # ensure we do not descend
        self.rtl = {"state": "climb", "n": n, "e": e, "alt": target, "t": self.now}
        if self.land_complete:
            self.rtl["state"] = "land"
        self.tgt = (self.n, self.e, target)

    def update_rtl(self) -> None:
        r = self.rtl
        if r is None:
            return
        if r["state"] == "climb":
            self.tgt = (self.n, self.e, r["alt"])
            if self.h >= r["alt"] - 0.5:
                r["state"] = "return"
        if r["state"] == "return":
            self.tgt = (r["n"], r["e"], r["alt"])
            if self.reached():
                r["state"] = "loiter"
                r["t"] = self.now
        if r["state"] == "loiter":
            if self.now - r["t"] >= self.params["RTL_LOIT_TIME"] / 1000.0:
                final = self.params["RTL_ALT_FINAL"] / 100.0
                r["state"] = "final" if final > 0 else "land"
        if r["state"] == "final":
            self.tgt = (r["n"], r["e"], self.params["RTL_ALT_FINAL"] / 100.0)
            if self.reached():
                r["state"] = "done"
        if r["state"] == "land":
            self.landing_run(r["n"], r["e"])
            if self.land_complete and self.armed:
                r["state"] = "done"
                # RTL mode disarms on landing; inside AUTO the NAV_RETURN_TO_LAUNCH item is
                # verified first and the mission end disarms (exit_mission)
                if self.mode != AUTO:
                    self.disarm()

    def landing_run(self, n: float, e: float) -> None:
        """Descend: WPNAV_SPEED_DN above LAND_ALT_LOW, LAND_SPEED below it."""
        self.tgt = (n, e, None)
        agl = self.h - self.ground_h(self.n, self.e)
        high = self.params["LAND_SPEED_HIGH"] / 100.0 or self.speed_dn
        low = abs(self.params["LAND_SPEED"]) / 100.0
        self.vu_cmd = -(high if agl > self.params["LAND_ALT_LOW"] / 100.0 else low)

    # ------------------------------------------------------ payload place
    def update_payload_place(self) -> None:
        pp = self.pp
        if pp is None or not self.armed:
            return
        st = pp["state"]
        if self.land_complete and st == "descent":
            self.text(M.MAV_SEVERITY_INFO, "PayloadPlace: landed")
            st = pp["state"] = "release"
        if self.gripper_valid and self.grip_state == "released":
            if st in ("fly", "descent_start"):
                self.text(M.MAV_SEVERITY_INFO, "PayloadPlace: Abort: Gripper Open")
                pp["start_alt"] = self.h
                st = pp["state"] = "done"
            elif st == "descent":
                self.text(M.MAV_SEVERITY_INFO, "PayloadPlace: Manual release")
                st = pp["state"] = "release"
        if st == "fly":
            if self.reached():
                st = pp["state"] = "descent_start"
            else:
                return
        if st == "descent_start":
            pp["t_est"] = self.now
            pp["start_alt"] = self.h
            dn = self.params["PLDP_SPEED_DN"]
            pp["speed"] = min(dn if dn > 0 else abs(self.params["LAND_SPEED"]) / 100.0, self.speed_dn)
            pp["thrust_min"] = 1.0
            pp["t_place"] = self.now
            st = pp["state"] = "descent"
        if st == "descent":
            self.tgt = (self.tgt[0], self.tgt[1], None)
            self.vu_cmd = -pp["speed"]
            if pp["max_cm"] and (pp["start_alt"] - self.h) * 100 > pp["max_cm"]:
                pp["state"] = "ascent"
                self.text(M.MAV_SEVERITY_WARNING, "PayloadPlace: Reached maximum descent")
                return
            if self.vu_des > -0.95 * pp["speed"]:
                pp["t_est"] = self.now
                return
            if self.now - pp["t_est"] < 2.0:
                pp["thrust_min"] = min(pp["thrust_min"], self.thrust)
                pp["t_place"] = self.now
                return
            thresh = self.params["PLDP_THRESH"] * pp["thrust_min"]
            if self.thrust > thresh:
                pp["t_place"] = self.now
                return
            if self.params["PLDP_RNG_MAX"] > 0:
                pp["state"] = "ascent"
                self.text(M.MAV_SEVERITY_WARNING, "PayloadPlace: PLDP_RNG_MAX set and rangefinder not enabled")
                return
            if self.now - pp["t_place"] > 0.5:
                pp["state"] = "release"
                self.text(M.MAV_SEVERITY_INFO, "PayloadPlace: payload release thrust threshold: %f" % thresh)
            return
        if st == "release":
            self.vu_cmd = 0.0
            self.tgt = (self.n, self.e, None)
            if self.gripper_valid:
                self.text(M.MAV_SEVERITY_INFO, "PayloadPlace: Releasing the gripper")
                self.gripper_release()
                st = pp["state"] = "releasing"
            else:
                st = pp["state"] = "delay"
        if st == "releasing":
            self.vu_cmd = 0.0
            if self.gripper_valid and self.grip_state != "released":
                return
            st = pp["state"] = "delay"
        if st == "delay":
            self.vu_cmd = 0.0
            if self.now - pp["t_place"] < 0.5 + self.params["PLDP_DELAY"]:
                return
            st = pp["state"] = "ascent"
        if st == "ascent":
            self.vu_cmd = None
            self.tgt = (self.n, self.e, pp["start_alt"])
            # stop distance at 10% of max climb speed, as PayloadPlace::run
            stop = 0.5 * (0.1 * self.speed_up) ** 2 / (self.params["WPNAV_ACCEL_Z"] / 100.0)
            if self.h >= pp["start_alt"] - stop - 0.05:
                pp["state"] = "done"

    # -------------------------------------------------------------- fence
    def fence_check(self) -> None:
        if not self.fence_enabled:
            self.breaches = 0
            return
        types = int(self.params["FENCE_TYPE"])
        new = 0
        br = 0
        alt_max = self.params["FENCE_ALT_MAX"] if self.alt_max_backup is None else self.alt_max_backup
        if types & FENCE_ALT_MAX and self.h > alt_max:
            br |= FENCE_ALT_MAX
        rad = self.params["FENCE_RADIUS"] if self.circle_backup is None else self.circle_backup
        if types & FENCE_CIRCLE and self.home_set and math.hypot(self.n, self.e) > rad:
            br |= FENCE_CIRCLE
        if types & FENCE_POLYGON and self.ekf_ready and self.polygon_breached():
            br |= FENCE_POLYGON
        if not br & FENCE_ALT_MAX:
            self.alt_max_backup = None
        if not br & FENCE_CIRCLE:
            self.circle_backup = None
        new = br & ~self.breaches
        if br:
            if not self.breaches:
                self.breach_time = int((self.now - self.boot_time) * 1000)
            self.breach_count = min(self.breach_count + 1, 65500)
        cleared = self.breaches and not br
        self.breaches = br
        if cleared and self.armed and not self.land_complete:
            self.text(M.MAV_SEVERITY_NOTICE, "Fence breach cleared")
        if new and self.armed:
            if new & FENCE_ALT_MAX:
                self.alt_max_backup = self.h + 20.0  # AC_FENCE_ALT_MAX_BACKUP_DISTANCE
            if new & FENCE_CIRCLE:
                self.circle_backup = math.hypot(self.n, self.e) + 20.0
            if not self.land_complete:
                self.text(M.MAV_SEVERITY_NOTICE, fence_names(new) + " breached")
            self.broadcast(self.make_msg("FENCE_STATUS"))
            act = int(self.params["FENCE_ACTION"])
            if act == 0:
                return
            if self.land_complete:
                self.disarm()
                return
            if act == 2:
                self.set_mode(LAND)
            elif act == 4:
                if not self.set_mode(BRAKE):
                    self.set_mode(LAND)
            else:
                if not self.set_mode(RTL):
                    self.set_mode(LAND)

    def polygon_breached(self) -> bool:
        lat, lon = self.latlon()
        incl_total = incl_out = 0
        items = self.store[FENCE]
        i = 0
        while i < len(items):
            it = items[i]
            c = it.command
            if c in (M.MAV_CMD_NAV_FENCE_POLYGON_VERTEX_INCLUSION,
                     M.MAV_CMD_NAV_FENCE_POLYGON_VERTEX_EXCLUSION):
                k = int(it.param1)
                pts = [geo.ne_offset(self.home_lat, self.home_lon, v.x, v.y) for v in items[i:i + k]]
                inside = geo.point_in_polygon(self.n, self.e, pts)
                if c == M.MAV_CMD_NAV_FENCE_POLYGON_VERTEX_INCLUSION:
                    incl_total += 1
                    if not inside:
                        incl_out += 1
                elif inside:
                    return True
                i += max(k, 1)
                continue
            if c in (M.MAV_CMD_NAV_FENCE_CIRCLE_INCLUSION, M.MAV_CMD_NAV_FENCE_CIRCLE_EXCLUSION):
                n, e = geo.ne_offset(self.home_lat, self.home_lon, it.x, it.y)
                d = geo.dist(self.n, self.e, n, e)
                if c == M.MAV_CMD_NAV_FENCE_CIRCLE_EXCLUSION:
                    if d < it.param1:
                        return True
                else:
                    incl_total += 1
                    if d > it.param1:
                        incl_out += 1
            i += 1
        if int(self.params["FENCE_OPTIONS"]) & 2:
            return incl_total > 0 and incl_out == incl_total
        return incl_out > 0

    # -------------------------------------------------------- geometry
    def ground_h(self, n: float, e: float) -> float:
        g = 0.0
        for (on, oe, r, oh) in self.obstacles:
            if (n - on) ** 2 + (e - oe) ** 2 <= r * r:
                g = max(g, oh)
        return g

    def latlon(self) -> tuple[int, int]:
        return geo.offset_latlon(self.home_lat, self.home_lon, self.n, self.e)

    def set_home(self, lat: int, lon: int, alt_amsl: float) -> None:
        # keep the local frame anchored on the original home so the vehicle does not jump
        dn, de = geo.ne_offset(self.home_lat, self.home_lon, lat, lon)
        self.n -= dn
        self.e -= de
        self.h += self.home_alt - alt_amsl
        self.obstacles = [(on - dn, oe - de, r, oh + self.home_alt - alt_amsl)
                          for (on, oe, r, oh) in self.obstacles]
        self.home_lat, self.home_lon, self.home_alt = lat, lon, alt_amsl
        self.home_set = True
        self.broadcast(self.make_msg("HOME_POSITION"))

    def reached(self) -> bool:
        if self.tgt is None or self.tgt[2] is None:
            return False
        r = max(self.params["WPNAV_RADIUS"] / 100.0, 0.05)
        return (geo.dist(self.n, self.e, self.tgt[0], self.tgt[1]) <= r
                and abs(self.h - self.tgt[2]) <= max(r, 0.3) and math.hypot(self.vn, self.ve) < 3.0)

    def user_takeoff(self, alt: float) -> None:
        self.auto_armed = True
        self.tgt = (self.n, self.e, alt)
        self.sub = "user_takeoff"

    # ---------------------------------------------------------------- step
    def step(self, now: float, dt: float) -> None:
        self.now = now
        if self.rebooting_until is not None:
            if now >= self.rebooting_until:
                self._finish_reboot()
            return
        if not self.ekf_ready and now - self.boot_time >= self.opts.no_ekf_s:
            self.ekf_ready = True
            if not self.home_set:
                self.set_home(self.home_lat, self.home_lon, self.home_alt)
            self.origin = (self.home_lat, self.home_lon, self.home_alt)
            self.broadcast(self.make_msg("GPS_GLOBAL_ORIGIN"))
        for p in self.protocols.values():
            if p.receiving:
                p.update(now)
        if self.grip_state in ("grabbing", "releasing"):
            self.update_gripper()
        if self.armed or not self.land_complete:
            self.idle_dt = 0.0
            self.fly(dt)
        else:
            # a vehicle sitting disarmed changes slowly: do its bookkeeping at 5 Hz so
            # hundreds of idle vehicles stay cheap
            self.idle_dt += dt
            if self.winch_enabled:
                self.update_winch(dt)
            if self.idle_dt >= 0.2 or self.mode == AUTO:
                self.update_battery(self.idle_dt)
                if self.mode == AUTO:
                    self.auto_logic()
                if self.fence_enabled:
                    self.fence_check()
                self.failsafes()
                self.idle_dt = 0.0
            if now >= self.next_due:
                self.telemetry()
            return
        if self.winch_enabled:
            self.update_winch(dt)
        if self.fence_enabled:
            self.fence_check()
        self.failsafes()
        if now >= self.next_due:
            self.telemetry()

    def auto_logic(self) -> None:
        if self.waiting_to_start:
            if self.ekf_ready:
                self.mission_start_or_resume()
                self.waiting_to_start = False
            return
        self.mission_update()

    def fly(self, dt: float) -> None:
        mode = self.mode
        # an explicit climb rate only belongs to landing-like states; anything else flies to tgt
        if not (self.sub in ("land", "payload_place", "rtl") or mode in (LAND, RTL, SMART_RTL)):
            self.vu_cmd = None
        if mode == AUTO:
            self.auto_logic()
            if self.sub in ("land", "land_fly"):
                if self.sub == "land_fly" and self.reached():
                    self.sub = "land"
                if self.sub == "land" and self.armed:
                    tn, te = (self.n, self.e) if self.tgt is None else self.tgt[:2]
                    self.landing_run(tn, te)
            elif self.sub == "rtl":
                self.update_rtl()
            elif self.sub == "payload_place":
                self.update_payload_place()
            if self.sub == "takeoff" and not self.auto_armed and int(self.params["AUTO_OPTIONS"]) & 2:
                self.auto_armed = True
        elif mode in (RTL, SMART_RTL):
            self.update_rtl()
        elif mode == LAND:
            self.landing_run(self.n if self.tgt is None else self.tgt[0],
                             self.e if self.tgt is None else self.tgt[1])
            if self.land_complete and self.armed:
                self.disarm()
        elif mode == GUIDED and self.sub == "user_takeoff" and self.tgt and self.h >= self.tgt[2] - 0.3:
            self.sub = None
        self.physics(dt)
        if self.armed:
            self.auto_disarm()

    def auto_disarm(self) -> None:
        # Copter::auto_disarm_check: landed, throttle low for DISARM_DELAY seconds
        delay = self.params["DISARM_DELAY"]
        spinning_up = self.auto_armed and self.tgt is not None and self.tgt[2] is not None and self.tgt[2] > self.h + 0.2
        if delay <= 0 or not self.land_complete or spinning_up:
            self.disarm_timer = self.now
            return
        if self.now - self.disarm_timer >= delay:
            self.disarm()

    def physics(self, dt: float) -> None:
        p = self.params
        airframe = self.opts.mass_kg
        carried = self.opts.payload_kg if self.parcel_attached else 0.0
        gh = self.ground_h(self.n, self.e)
        # may the motors produce lift at all?
        flying_allowed = self.armed and (self.auto_armed or self.mode in (LAND, RTL, SMART_RTL)
                                          or not self.land_complete)
        acc_xy = max(p["WPNAV_ACCEL"] / 100.0, 0.5)
        acc_z = max(p["WPNAV_ACCEL_Z"] / 100.0, 0.5)
        wind_n, wind_e = self.wind()
        # a paused vehicle holds where it stopped; the mission target is kept for resume
        tgt = self.tgt if self.paused_at is None else self.paused_at
        # horizontal
        tvn = tve = 0.0
        if flying_allowed and not self.land_complete and tgt is not None:
            dn, de = tgt[0] - self.n, tgt[1] - self.e
            d = math.hypot(dn, de)
            if d > 0.01:
                un, ue = dn / d, de / d
                v = min(self.speed_xy, math.sqrt(2 * acc_xy * d), d * 1.5)
                # the airframe cannot exceed AIRSPEED_MAX through the air
                uw = un * wind_n + ue * wind_e
                wsq = wind_n ** 2 + wind_e ** 2
                disc = AIRSPEED_MAX ** 2 - wsq + uw * uw
                vmax = uw + math.sqrt(disc) if disc > 0 else 0.5
                v = max(0.0, min(v, vmax))
                tvn, tve = un * v, ue * v
                if v > 1.0:
                    self.yaw = math.degrees(math.atan2(ue, un)) % 360
        dvn, dve = tvn - self.vn, tve - self.ve
        dv = math.hypot(dvn, dve)
        lim = acc_xy * dt
        if dv > lim:
            dvn, dve = dvn * lim / dv, dve * lim / dv
        self.vn += dvn
        self.ve += dve
        # vertical
        tvu = 0.0
        if flying_allowed:
            if self.vu_cmd is not None:
                tvu = self.vu_cmd
            elif tgt is not None and tgt[2] is not None:
                dh = tgt[2] - self.h
                spd = self.speed_up if dh > 0 else self.speed_dn
                tvu = math.copysign(min(spd, math.sqrt(2 * acc_z * abs(dh)), abs(dh) * 2.0), dh)
        # vu_des is the controller's desired climb rate; it keeps asking for the
        # descent even while something underneath stops the aircraft
        if not flying_allowed:
            self.vu_des = 0.0
        self.vu_des += max(-acc_z * dt, min(acc_z * dt, tvu - self.vu_des))
        dvu = self.vu_des - self.vu
        self.vu = self.vu_des
        h_before = self.h
        self.n += self.vn * dt
        self.e += self.ve * dt
        self.h += self.vu * dt
        # contact with the ground / obstacle / parcel under the aircraft
        floor = gh
        parcel_supported = False
        if self.parcel_attached:
            parcel_supported = self.parcel_bottom() <= gh + 0.001
            if (not self.winch_enabled or self.winch_len < 0.01) and h_before >= gh + PARCEL_HANG_M - 0.01:
                floor = gh + PARCEL_HANG_M  # coming down: the held parcel touches first
        blocked = False
        if self.h <= floor:
            self.h = floor
            if self.vu < 0:
                self.vu = 0.0
            blocked = tvu < 0 or not flying_allowed
        # land detector: about a second resting on something with nothing climbing
        if self.h <= floor + 0.001 and blocked:
            if self.land_maybe_t == 0.0:
                self.land_maybe_t = self.now
            if self.now - self.land_maybe_t >= 1.0 and not self.land_complete:
                self.land_complete = True
                self.vn = self.ve = self.vu = 0.0
        else:
            self.land_maybe_t = 0.0
            if self.land_complete and flying_allowed and tvu > 0:
                self.land_complete = False
                if self.takeoff_time is None:
                    self.takeoff_time = self.now
        if self.land_complete:
            self.vn = self.ve = 0.0
            if not (flying_allowed and tvu > 0):
                self.vu_des = 0.0
        # forces -> thrust, attitude, power
        mass_lifted = airframe + (0.0 if parcel_supported else carried)
        air_n, air_e = self.vn - wind_n, self.ve - wind_e
        va = math.hypot(air_n, air_e)
        drag = 0.5 * RHO * CDA * va * va
        fn = mass_lifted * dvn / dt + (drag * air_n / va if va > 0.01 else 0.0)
        fe = mass_lifted * dve / dt + (drag * air_e / va if va > 0.01 else 0.0)
        fz = mass_lifted * (G + max(-0.8 * G, min(2.0 * G, dvu / dt)))
        t_max = (airframe + 2.0) * G * 2.0
        if not self.armed:
            thrust_n = 0.0
        elif self.land_complete:
            thrust_n = 0.1 * fz  # spun up at ground idle
        else:
            if blocked:
                # resting on the parcel or the ground: the descent controller keeps
                # pushing down, so thrust winds down below what hovering needs
                fz *= max(0.2, 1.0 - 0.8 * self._blocked_time(True))
            else:
                self._blocked_time(False)
            thrust_n = math.sqrt(fn * fn + fe * fe + fz * fz)
        thrust_n = max(0.0, thrust_n)
        self.thrust = min(1.0, thrust_n / t_max)
        if self.armed and not self.land_complete:
            tilt_n, tilt_e = fn / max(fz, 1.0), fe / max(fz, 1.0)
            yr = math.radians(self.yaw)
            fwd = tilt_n * math.cos(yr) + tilt_e * math.sin(yr)
            right = -tilt_n * math.sin(yr) + tilt_e * math.cos(yr)
            self.pitch = -math.atan(fwd)
            self.roll = math.atan(right)
        else:
            self.pitch = self.roll = 0.0
        if self.armed:
            induced = thrust_n ** 1.5 / math.sqrt(2 * RHO * DISK_AREA) / FIGURE_OF_MERIT
            parasite = drag * va
            climb = mass_lifted * G * max(self.vu, 0.0)
            idle = 25.0 if self.land_complete else 0.0
            self.power_w = (induced + parasite + climb + idle) / ELEC_EFF + AVIONICS_W
        else:
            self.power_w = AVIONICS_W
        self.update_battery(dt, computed=True)

    def _blocked_time(self, blocked: bool) -> float:
        if not blocked:
            self._blocked_since = None
            return 0.0
        if self._blocked_since is None:
            self._blocked_since = self.now
        return self.now - self._blocked_since

    def wind(self) -> tuple[float, float]:
        spd = self.params["SIM_WIND_SPD"]
        if spd <= 0:
            return 0.0, 0.0
        # SIM_WIND_DIR is where the wind comes from; air moves the opposite way
        d = math.radians(self.params["SIM_WIND_DIR"] + 180.0)
        return spd * math.cos(d), spd * math.sin(d)

    def update_battery(self, dt: float, computed: bool = False) -> None:
        if not computed:
            self.power_w = AVIONICS_W
        cap = max(self.params["BATT_CAPACITY"], 1.0)
        soc = max(0.0, 1.0 - self.consumed_mah / cap)
        ocv = CELLS * ocv_cell(soc)
        cur = self.power_w / max(ocv, 1.0)
        self.voltage = max(0.0, ocv - cur * R_PACK * REF_PACK_MAH / cap)
        self.current_a = cur
        self.consumed_mah += cur * dt / 3.6
        self.consumed_wh += self.voltage * cur * dt / 3600.0

    def remaining_pct(self) -> int:
        cap = max(self.params["BATT_CAPACITY"], 1.0)
        return max(0, min(100, int(round(100.0 * (1.0 - self.consumed_mah / cap)))))

    def failsafes(self) -> None:
        # battery: BATT_LOW_VOLT for BATT_LOW_TIMER seconds, or BATT_LOW_MAH remaining
        if self.batt_failsafe < 2 and self.batt_failsafe >= 1:
            self._battery_level(2, "critical", "BATT_CRT_VOLT", "BATT_CRT_MAH", "BATT_FS_CRT_ACT")
        if self.batt_failsafe < 1:
            low_v = self.params["BATT_LOW_VOLT"]
            low_mah = self.params["BATT_LOW_MAH"]
            rem_mah = self.params["BATT_CAPACITY"] - self.consumed_mah
            trig = False
            if low_v > 0 and self.voltage < low_v:
                if self.batt_low_since is None:
                    self.batt_low_since = self.now
                trig = self.now - self.batt_low_since >= self.params["BATT_LOW_TIMER"]
            else:
                self.batt_low_since = None
            if low_mah > 0 and rem_mah < low_mah:
                trig = True
            if trig:
                self.batt_failsafe = 1
                self.text(M.MAV_SEVERITY_WARNING, "Battery 1 is low %.2fV used %.0f mAh"
                          % (self.voltage, self.consumed_mah))
                self.battery_action(int(self.params["BATT_FS_LOW_ACT"]))
        # GCS heartbeat loss
        if self.params["FS_GCS_ENABLE"] and self.gcs_last_hb is not None:
            lost = self.now - self.gcs_last_hb > self.params["FS_GCS_TIMEOUT"]
            if lost and not self.gcs_failsafe:
                self.gcs_failsafe = True
                if self.armed and not self.land_complete:
                    act = int(self.params["FS_GCS_ENABLE"])
                    if act == 5:
                        self.text(M.MAV_SEVERITY_WARNING, "GCS Failsafe - Landing")
                        self.set_mode(LAND)
                    elif not (act == 2 and self.mode == AUTO):
                        self.text(M.MAV_SEVERITY_WARNING, "GCS Failsafe - Returning to Launch")
                        if not self.set_mode(RTL):
                            self.set_mode(LAND)
                elif self.armed:
                    self.disarm()
            elif not lost and self.gcs_failsafe:
                self.gcs_failsafe = False
                self.text(M.MAV_SEVERITY_WARNING, "GCS Failsafe Cleared")
        if not self.armed and self.now - self.last_prearm_report >= 30.0:
            self.last_prearm_report = self.now
            for f in self.prearm_failures():
                self.text(M.MAV_SEVERITY_CRITICAL, "PreArm: " + f)

    def _battery_level(self, level: int, word: str, volt_p: str, mah_p: str, act_p: str) -> None:
        """AP_BattMonitor::check_failsafes for the critical level (low is handled inline)."""
        v_lim, mah_lim = self.params[volt_p], self.params[mah_p]
        rem_mah = self.params["BATT_CAPACITY"] - self.consumed_mah
        trig = False
        if v_lim > 0 and self.voltage < v_lim:
            if self.batt_crit_since is None:
                self.batt_crit_since = self.now
            trig = self.now - self.batt_crit_since >= self.params["BATT_LOW_TIMER"]
        else:
            self.batt_crit_since = None
        if mah_lim > 0 and rem_mah < mah_lim:
            trig = True
        if trig:
            self.batt_failsafe = level
            self.text(M.MAV_SEVERITY_WARNING, "Battery 1 is %s %.2fV used %.0f mAh"
                      % (word, self.voltage, self.consumed_mah))
            self.battery_action(int(self.params[act_p]))

    def battery_action(self, act: int) -> None:
        if not self.armed:
            return
        if self.land_complete:
            self.disarm()
            return
        if act == 1:
            self.set_mode(LAND)
        elif act in (2, 3, 4, 6):
            if self.mode not in (RTL, LAND) and not self.set_mode(RTL):
                self.set_mode(LAND)
        elif act == 7:
            if not self.set_mode(BRAKE):
                self.set_mode(LAND)

    # ----------------------------------------------------------- telemetry
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


def fence_names(fences: int) -> str:
    """AC_Fence::get_fence_names: 'Polygon fence', 'Max Alt and Polygon fences'."""
    names = [FENCE_NAMES[i] for i in range(4) if fences & (1 << i)]
    if not names:
        return ""
    if len(names) == 1:
        s = names[0]
    else:
        s = ", ".join(names[:-1]) + " and " + names[-1]
    return s + (" fences" if len(names) > 1 else " fence")


def _pname(raw) -> str:
    if isinstance(raw, bytes):
        raw = raw.decode("ascii", "replace")
    return raw.split("\x00")[0]
