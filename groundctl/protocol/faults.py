"""The flight monitor's rules for what goes wrong: autopilot failsafes, mode changes, fence breaches,
GPS and link loss, battery. Each feeds one incident (incidents.Incidents); a mixin of FlightMonitor.

The autopilot's own failsafes, as ArduCopter announces them (severity WARNING/CRITICAL):
- ArduCopter/events.cpp announce_failsafe: "<Radio|GCS|Battery|Radio + Battery|GCS + Battery> Failsafe"
  or "... Failsafe - <action>"; cleared: "Radio Failsafe Cleared", "GCS Failsafe Cleared". GPS:
  "GPS Glitch or Compass error" / "Glitch cleared"; "Dead Reckoning started|stopped|timeout";
  "Failsafe: Terrain data missing". The action is a mode change (set_mode_RTL_or_land_with_pause,
  set_mode_SmartRTL_or_RTL, ...), seen as HEARTBEAT custom_mode.
- ArduCopter/ekf_check.cpp: "EKF variance", then failsafe_ekf_event: "EKF Failsafe" (no action) or
  "EKF Failsafe: changed to <mode> Mode" after set_mode_land_with_pause (LAND, FS_EKF_ACTION 1) or
  ALT_HOLD; "EKF Failsafe Cleared". A GPS lost in flight ends here: LAND where the vehicle is.
- AP_BattMonitor.cpp check_failsafes: "Battery <n> is <low|critical> <V>V used <mAh> mAh", then
  BATT_FS_LOW_ACT / BATT_FS_CRT_ACT through handle_battery_failsafe ("Battery Failsafe").
- ArduCopter/crash_check.cpp: "Crash: Disarming: AngErr=...", "Potential Thrust Loss (<motor>)".
- a mode the runtime did not ask for, while airborne, is an incident whatever caused it.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

# (pattern, failsafe name); a name's failsafe stays on until its clearing text or the landing
_FAILSAFE_ON = (
    (re.compile(r"EKF (Failsafe$|Failsafe: changed to|variance)"), "EKF"),
    (re.compile(r"GPS Glitch or Compass error"), "GPS glitch"),
    (re.compile(r"Dead Reckoning (started|timeout)"), "dead reckoning"),
    (re.compile(r"(Radio|GCS)( \+ Battery)? Failsafe(?! Cleared)"), None),  # name from the text
    (re.compile(r"Battery( \d+ is (low|critical)| Failsafe)"), "battery"),
    (re.compile(r"Failsafe: Terrain data missing"), "terrain"),
    (re.compile(r"Potential Thrust Loss"), "thrust loss"),
    (re.compile(r"Vibration compensation ON"), "vibration"),
)
_FAILSAFE_OFF = {"EKF Failsafe Cleared": "EKF", "Glitch cleared": "GPS glitch", "Dead Reckoning stopped": "dead reckoning",
                 "Radio Failsafe Cleared": "Radio", "GCS Failsafe Cleared": "GCS", "Vibration compensation OFF": "vibration"}


class FaultRules:
    """Mixin: uses FlightMonitor's state, spec, clock (`vehicle_time`), `_inc`, `_emit`."""

    def _failsafe_text(self, text: str, now: float) -> None:
        off = _FAILSAFE_OFF.get(text)
        t = self.vehicle_time(now)
        if off is not None:
            self._failsafes.discard(off)
            if not self._failsafes:
                self._inc.close("failsafe", t)
            return
        for pattern, name in _FAILSAFE_ON:
            m = pattern.match(text)
            if m is None:
                continue
            name = name or m.group(1)
            if not self.armed_seen:
                return  # on the ground before the flight: pre-arm business, not an incident
            new = name not in self._failsafes
            self._failsafes.add(name)
            opened = self._inc.open("failsafe", t, text, worst=text, detail=name)
            if new or opened:
                self._emit("failsafe", now, text, failsafe=name)
            return

    def _breach(self, now: float, text: str, at: datetime | None = None, **data: Any) -> None:
        s, sp = self.state, self.spec
        if not self.armed_seen or self.phase == "landed":
            return  # "Vehicle breaching ..." on the ground is the pre-arm check's business
        t = at or self.vehicle_time(now)
        depth = sp.breach_depth_m(s.lat, s.lon) if sp.breach_depth_m and s.lat is not None else None
        if self._inc.open("fence_breach", t, text, worst=depth, unit="m" if sp.breach_depth_m else ""):
            self._emit("fence_breach", now, text, at=at, depth_m=None if depth is None else round(depth, 1), **data)

    def _crash(self, now: float, why: str) -> None:
        if self.crashed is None:
            self.crashed = why
            self._emit("crashed", now, why)

    def _fence_status(self, m: Any, now: float) -> None:
        # breach_count is the autopilot's own tally: breaches that flickered between two of these
        # 1 Hz reports still count. breach_time is the vehicle's time_boot_ms of the last one.
        if self._breach_count_seen is None:
            self._breach_count_seen = m.breach_count  # breaches before this flight (or this process)
        more = m.breach_count - max(self._breach_count, self._breach_count_seen)
        if self._sync_breach:
            self._sync_breach = False
            if more > 1:
                self._inc.add_count("fence_breach", more - 1)
            self._breach_count = max(self._breach_count, m.breach_count)
            self._breached = bool(m.breach_status)
            if not self._breached:
                self._inc.close("fence_breach", self.vehicle_time(now))
            return
        if more > 0 or (m.breach_status and not self._breached):
            at = self.clock.at_boot_ms(m.breach_time) if m.breach_time else None
            self._breach(now, f"fence breach type {m.breach_type}", at=at, breach_type=m.breach_type,
                         breach_count=m.breach_count)
            if more > 1:
                self._inc.add_count("fence_breach", more - 1)
        elif m.breach_status:
            self._breach_depth()
        if not m.breach_status and self._breached:
            self._inc.close("fence_breach", self.vehicle_time(now))
        self._breached = bool(m.breach_status)
        self._breach_count = max(self._breach_count, m.breach_count)

    def _breach_depth(self) -> None:
        s, sp = self.state, self.spec
        if sp.breach_depth_m and s.lat is not None and self._inc.is_open("fence_breach"):
            self._inc.worse("fence_breach", sp.breach_depth_m(s.lat, s.lon))

    def _mode(self, now: float) -> None:
        """Follow HEARTBEAT custom_mode: a mode nobody here asked for, in flight, is an incident."""
        s = self.state
        mode = s.mode
        if mode == self._mode_seen:
            return
        before, self._mode_seen = self._mode_seen, mode
        if not self.airborne or before is None:
            return
        t = self.vehicle_time(now)
        if mode in self._expected_modes:
            self._inc.close("mode_change", t)
            return
        msg = f"mode {before} -> {mode}, not commanded by the ground station"
        if self._failsafes:
            msg += f" (after the {', '.join(sorted(self._failsafes))} failsafe)"
        if self._inc.open("mode_change", t, msg, worst=mode, detail=mode):
            self._emit("mode_change", now, msg, mode=mode, previous=before)
        else:
            self._inc.worse("mode_change", mode)

    def _gps(self, now: float) -> None:
        s = self.state
        if not self.airborne or s.gps_fix_type is None:
            return
        t = self.vehicle_time(now)
        if s.gps_fix_type < 3:
            if self._inc.open("gps_loss", t, f"GPS fix type {s.gps_fix_type}", worst=float(s.gps_fix_type),
                              unit="fix type", higher_is_worse=False):
                self._emit("gps_loss", now, f"GPS fix lost (fix type {s.gps_fix_type})", fix_type=s.gps_fix_type)
            else:
                self._inc.worse("gps_loss", float(s.gps_fix_type), higher_is_worse=False)
        else:
            self._inc.close("gps_loss", t)

    def _link_back(self, now: float, hi: datetime) -> None:
        lo = self._gap[0]
        gap_s = (hi - lo).total_seconds()
        self._inc.worse("link_loss", gap_s)
        self._inc.close("link_loss", hi)
        self._date_held(now, hi)

    def _battery(self, now: float) -> None:
        if not self.airborne:
            return
        have = self.remaining_wh()
        if have is None:
            return
        t = self.vehicle_time(now)
        self._inc.worse("low_battery", have, higher_is_worse=False)
        reserve = self.spec.reserve_wh
        if reserve > 0 and have < reserve:
            if self._inc.open("reserve_used", t, f"battery below the {reserve:.1f} Wh reserve", worst=have, unit="Wh",
                              higher_is_worse=False):
                self._emit("reserve_used", now, f"battery holds {have:.1f} Wh, less than the {reserve:.1f} Wh reserve",
                           remaining_wh=round(have, 1), reserve_wh=round(reserve, 1))
            else:
                self._inc.worse("reserve_used", have, higher_is_worse=False)
        elif self._inc.is_open("reserve_used") and have > reserve + 1.0:  # a sag under load that recovered
            self._inc.close("reserve_used", t)
        if "low_battery" in self._once:
            return
        need = self.needed_wh() + reserve
        if have >= need:
            self._low_since = None
            return
        # one low reading can be a sag under load: it must last
        if self._low_since is None:
            self._low_since = now
            return
        if now - self._low_since < 2.0:
            return
        reason = f"battery holds {have:.1f} Wh, the rest of the flight needs {need:.1f} Wh with reserve"
        self._low(now, reason, have, need)

    def _low(self, now: float, reason: str, have: float | None, need: float | None) -> None:
        t = self.vehicle_time(now)
        self._inc.open("low_battery", t, reason, worst=have, unit="Wh", higher_is_worse=False)
        self._emit("low_battery", now, reason, remaining_wh=None if have is None else round(have, 1),
                   needed_wh=None if need is None else round(need, 1))
        if self._idx(self.phase) < self._idx("returning") and not self.released:
            # home along the route that was cleared, not the straight line RTL flies (see return_entry)
            self.reactions.append(("return", reason))
