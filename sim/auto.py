"""Mission storage and execution in AUTO (AP_Mission.cpp, ArduCopter/mode_auto.cpp),
including NAV_PAYLOAD_PLACE (PayloadPlace::run)."""

from __future__ import annotations

import math
from typing import Optional

from pymavlink.dialects.v20 import ardupilotmega as mavlink

from . import geo
from .defs import AUTO, MISSION_COMPLETE, MISSION_RUNNING, MISSION_STOPPED
from .mission import ABS, CMD_NAMES, FENCE, MISSION, Item, is_nav

M = mavlink


class AutoMission:
    """Mixin of sim.vehicle.Vehicle; methods use the vehicle's state through self."""

    def mission_present(self) -> bool:
        return self.mission_total > 1

    def truncate_mission(self, count: int) -> None:
        if self.mission_total > count:
            self.mission_change_t = self.now
            self.mission_total = count
            del self.store[MISSION][max(0, count - 1):]
            self.params.set("MIS_TOTAL", self.mission_total)

    def write_mission_item(self, seq: int, it: Item) -> int:
        """replace_cmd / add_cmd exactly as AP_Mission does (index 0 silently ignored)."""
        total = self.mission_total
        if seq != 0:
            self.mission_change_t = self.now  # AP_Mission::write_cmd_to_storage: _last_change_time_ms
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
        """An upload finished. Nothing more: each item written already counts as a change, and AUTO's
        change detector (check_mission_change) acts on it mid-upload, as ArduPilot's does."""

    def _next_navs(self, idx: int, n: int = 3) -> list:
        """AP_Mission::get_next_nav_cmd repeated: the next `n` nav commands from `idx` (jumps followed)."""
        out, i = [], idx
        while len(out) < n:
            c = self.next_cmd(i, False)
            if c is None:
                break
            j, it = c
            if is_nav(it.command):
                out.append((j, it))
            i = j + 1
        return out

    def check_mission_change(self) -> bool:
        """AP_Mission_ChangeDetector::check_for_mission_change: true when the next three nav commands from
        the current one changed (an upload, item by item) while the current index did not."""
        t, idx = getattr(self, "mission_change_t", 0.0), self.current_nav_index()
        seen = getattr(self, "_change_seen", None) or (None, None, [])
        if t == seen[0] and idx == seen[1]:
            return False
        cmds = self._next_navs(idx) if 0 < idx < self.mission_total else []
        changed = cmds != seen[2]
        self._change_seen = (t, idx, cmds)
        return changed and idx == seen[1]

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
