"""Failsafes: battery (AP_BattMonitor), GCS heartbeat loss, and the fence
(AC_Fence.cpp, ArduCopter/fence.cpp) with its pre-arm checks."""

from __future__ import annotations

import math
from typing import Optional

from pymavlink.dialects.v20 import ardupilotmega as mavlink

from . import geo
from .defs import (AUTO, BRAKE, FENCE_ALT_MAX, FENCE_ALT_MIN, FENCE_CIRCLE, FENCE_NAMES,
                   FENCE_POLYGON, LAND, RTL)
from .mission import FENCE

M = mavlink


class Failsafes:
    """Mixin of sim.vehicle.Vehicle; methods use the vehicle's state through self."""

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
