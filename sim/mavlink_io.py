"""MAVLink I/O of the simulated copter: sending (with packet loss and link cuts),
STATUSTEXT chunking, the message handlers and the COMMAND_LONG / COMMAND_INT
dispatcher (GCS_Common.cpp, GCS_MAVLink_Copter.cpp)."""

from __future__ import annotations

import math
import sys
import traceback
from typing import Optional

from pymavlink.dialects.v20 import ardupilotmega as mavlink

from . import geo
from .defs import AUTO, GUIDED, LAND, LOITER, MISSION_RUNNING, RTL, USER_TAKEOFF
from .mission import MISSION, item_int_from_mission_item
from .telemetry import MSG_NAMES, STREAMS

M = mavlink


class MavlinkIO:
    """Mixin of sim.vehicle.Vehicle; methods use the vehicle's state through self."""

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

    def command_lost(self, msg) -> bool:
        """--lose-command: the first N commands of an id never arrive (the sender's retry does)."""
        if msg.get_type() not in ("COMMAND_LONG", "COMMAND_INT"):
            return False
        left = self.opts.lose_command.get(msg.command, 0)
        if left > 0:
            self.opts.lose_command[msg.command] = left - 1
        return left > 0

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
        if self.command_lost(msg):
            return
        h = getattr(self, "_h_" + t, None)
        if h is not None:
            try:
                h(link, msg)
            except (ValueError, OverflowError, TypeError):
                # a malformed field (NaN where an integer is expected...) must not stop
                # every vehicle in the process; say so on stderr and carry on
                traceback.print_exc(file=sys.stderr)

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


def _pname(raw) -> str:
    if isinstance(raw, bytes):
        raw = raw.decode("ascii", "replace")
    return raw.split("\x00")[0]
