"""Flight modes, arming and the per-mode logic run every step
(ArduCopter/mode.cpp, mode_rtl.cpp, mode_land.cpp, AP_Arming_Copter.cpp)."""

from __future__ import annotations

from pymavlink.dialects.v20 import ardupilotmega as mavlink

from . import geo
from .defs import (ALT_HOLD, ARMABLE, AUTO, BRAKE, FENCE_ALT_MAX, FENCE_CIRCLE, FENCE_POLYGON,
                   GUIDED, LAND, LOITER, MISSION_RUNNING, MISSION_STOPPED, MODE_NAMES, POSHOLD,
                   REQUIRES_GPS, RTL, SMART_RTL)
from .mission import RALLY

M = mavlink


class Modes:
    """Mixin of sim.vehicle.Vehicle; methods use the vehicle's state through self."""

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

    def user_takeoff(self, alt: float) -> None:
        self.auto_armed = True
        self.tgt = (self.n, self.e, alt)
        self.sub = "user_takeoff"

    def auto_logic(self) -> None:
        if self.waiting_to_start:
            if self.ekf_ready:
                self.mission_start_or_resume()
                self.waiting_to_start = False
                self.check_mission_change()  # ModeAuto::run initialises the detector, result ignored
            return
        # ModeAuto::run: a mission changed under a running waypoint command restarts that command from
        # storage, even halfway through an upload (the vehicle can fly a half-written mission)
        if self.check_mission_change() and self.mstate == MISSION_RUNNING and self.sub == "wp":
            if self.nav_idx is not None and 0 < self.nav_idx < self.mission_total and self.set_current_cmd(self.nav_idx):
                self.text(M.MAV_SEVERITY_CRITICAL, "Auto mission changed, restarted command")
            else:
                self.text(M.MAV_SEVERITY_CRITICAL, "Auto mission changed but failed to restart command")
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
