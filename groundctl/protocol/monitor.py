"""Flight monitor: vehicle state + raw messages -> delivery phases, faults and reactions.

What ArduPilot really sends during a delivery, checked in its source:
- MISSION_CURRENT carries the current *nav* command (GCS_Common.cpp send_mission_current with
  mission.get_current_nav_index()). A DO item (DO_GRIPPER, DO_WINCH) never shows there: it is started
  when the nav item after it becomes current (AP_Mission.cpp advance_current_nav_cmd), and announced
  with "Mission: <index> Gripper" / "Mission: <index> Winch" (AP_Mission::start_command).
- NAV_PAYLOAD_PLACE (ArduCopter/mode_auto.cpp PayloadPlace::run) says "PayloadPlace: payload release
  thrust threshold: <x>" at touchdown, "PayloadPlace: Releasing the gripper", and on failure
  "PayloadPlace: Reached maximum descent", "PayloadPlace: Abort: Gripper Open", "PayloadPlace:
  PLDP_RNG_MAX set and rangefinder not enabled". MISSION_ITEM_REACHED comes only after the climb back.
- the servo gripper (AP_Gripper_Servo.cpp) says "Gripper load releasing" then "Gripper load released";
  there is no gripper status message.
- fences: "<Polygon|Max Alt|...> fence(s) breached" (AC_Fence.cpp print_fence_message) and "Fence
  breach cleared" (ArduCopter/fence.cpp), besides FENCE_STATUS.
- the final NAV_LAND never produces MISSION_ITEM_REACHED: the flight ends at disarm.

Failsafes, mode changes, fence, link and battery incidents: see faults.py; outcomes: outcome.py.
"""

from __future__ import annotations

import math
import re
import statistics
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Iterable

from groundctl.core import mavcmd as C
from groundctl.core.mission import MissionItem
from groundctl.protocol.attended import AttendedRules
from groundctl.protocol.events import PHASES, DeliveryEvent, Incident
from groundctl.protocol.faults import FaultRules
from groundctl.protocol.incidents import Incidents, VehicleClock
from groundctl.protocol.outcome import OutcomeRules, distance_m
from groundctl.protocol.telemetry import StatusText, VehicleState

# LAND is not here: a LAND failsafe comes down where it is, it does not return
_RTL_MODES = {"RTL", "SMART_RTL", "AUTO_RTL"}
_FENCE_BREACHED = re.compile(r"fences? breached$")
_PP_FAIL = ("PayloadPlace: Reached maximum descent", "PayloadPlace: Abort",
            "PayloadPlace: PLDP_RNG_MAX set and rangefinder not enabled")
_RELEASE_TEXTS = ("PayloadPlace: Releasing the gripper", "PayloadPlace: Manual release",
                  "Gripper load releasing", "Gripper load released")
_BATT_FAILSAFE = re.compile(r"Battery \d+ is (low|critical)")
_CRASH_TEXTS = ("Crash: ", "Parachute: Released")
_CRASH_TILT_RAD = 1.0  # disarmed lying at ~60 degrees or more: on its side, not on its legs
_ONE_SHOT = set(PHASES) | {"armed", "drop_failed", "low_battery", "aborted", "rtl", "crashed", "return_route",
                           "holding_for_recipient", "cleared_to_drop", "recipient_absent"}
# events held after an outage until the vehicle's clock is heard again, then dated
_ZONE_PHASES = ("at_zone", "lowering", "released", "drop_failed")
# event kind -> the incident it reports (for a resume from stored events)
_INCIDENT_OF = {"fence_breach": "fence_breach", "reserve_used": "reserve_used", "low_battery": "low_battery",
                "link_lost": "link_loss", "failsafe": "failsafe", "gps_loss": "gps_loss", "mode_change": "mode_change"}
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
# messages that can move the phase; ATTITUDE, VFR_HUD and the like cannot, and they are most of the traffic
_PHASE_INPUTS = frozenset({"HEARTBEAT", "GLOBAL_POSITION_INT", "MISSION_CURRENT", "MISSION_ITEM_REACHED",
                           "STATUSTEXT", "WINCH_STATUS", "ATTITUDE"})


@dataclass
class FlightSpec:
    """What the monitor needs to know about the plan (see `from_plan`).

    Energy: the rest of the flight needs `energy_needed_wh(state, mission_seq)` if given, else
    `wh_per_m` times the remaining path along the mission; low_battery fires when the battery holds
    less than that plus `reserve_wh`. With neither, only the reserve is checked.
    """

    mission: list[MissionItem]
    drop_seq: int
    method: str  # "payload_place" | "gripper" | "winch"
    zone_lat: float
    zone_lon: float
    hub_lat: float
    hub_lon: float
    battery_wh: float
    wh_per_m: float | None = None
    reserve_wh: float = 0.0
    energy_needed_wh: Callable[[VehicleState, int | None], float] | None = None
    zone_radius_m: float = 15.0
    jam_min_drop: float = 0.04  # fraction of level-flight throttle a release must take off
    jam_settle_s: float = 3.0  # vehicle seconds of throttle ignored after the release (servo travel, climb-out)
    # below a winch line's end: hook, parcel, and slack for the line length the winch only estimates
    jam_hang_margin_m: float = 1.5
    link_timeout_s: float = 3.0
    # The gripper's servo output, streamed in SERVO_OUTPUT_RAW, shows the release was commanded even
    # when the one-shot STATUSTEXTs are lost on a bad link (AP_Gripper defaults: grab 1900, release 1100)
    gripper_servo: int | None = None
    zone_ground_rel_m: float = 0.0  # zone ground minus home elevation (the rel_home frame)
    # ArduCopter SITL releases with the body ~1.9 m up (parcel below it): above 3 m it is not on the ground
    place_tolerance_m: float = 3.0
    gripper_grab_pwm: float = 1900.0
    gripper_release_pwm: float = 1100.0
    # landing further than this from the hub is landing away (NAV_LAND and RTL put it within metres)
    home_radius_m: float = 25.0
    # a condition that comes back within this (vehicle seconds) is the same incident, counted again
    incident_merge_s: float = 60.0
    # metres inside a no-fly area (buffered zone, or outside the service area), for a breach's worst value
    breach_depth_m: Callable[[float, float], float | None] | None = None
    # an attended drop's hold (core.plan.AttendedHold): see attended.py
    hold: Any = None

    @classmethod
    def from_plan(cls, plan: Any, **kw: Any) -> "FlightSpec":
        """From a core.plan.FlightPlan; usable battery = battery_wh x battery_usable_fraction."""
        a = plan.airframe
        kw.setdefault("battery_wh", a.battery_wh * a.battery_usable_fraction)
        kw.setdefault("gripper_servo", getattr(a, "gripper_servo", None))
        kw.setdefault("zone_ground_rel_m", getattr(plan, "zone_ground_rel_home_m", 0.0))
        kw.setdefault("hold", getattr(plan, "hold", None))
        return cls(mission=list(plan.mission), drop_seq=plan.drop_seq, method=plan.method,
                   zone_lat=plan.zone.lat, zone_lon=plan.zone.lon, hub_lat=plan.hub.lat, hub_lon=plan.hub.lon, **kw)


@dataclass
class _Samples:
    hover: deque = field(default_factory=lambda: deque(maxlen=40))
    level: deque = field(default_factory=lambda: deque(maxlen=40))


class FlightMonitor(FaultRules, OutcomeRules, AttendedRules):
    """Turn what the vehicle says into DeliveryEvents, at most one per occurrence.

    Feed it every message: `feed(msg, now)` updates `state` and observes; if the runtime updates a
    shared VehicleState itself, call `observe(msg, text, now)` with what `state.update` returned.
    Call `poll(now)` about once a second (link loss is noticed by silence). Drain `take_events()`
    and `take_reactions()`; a reaction is (action, reason) with action "rtl" or "cancel".

    To resume after a restart, pass the kinds of the events already stored, in order, as `seen`:
    phases and one-shot faults are not emitted again, and the link/fence state picks up from them.
    `clock_anchor` = (monotonic, wall datetime) of one instant maps `now` to UTC; events are dated by
    the vehicle's own clock (time_boot_ms, see incidents.VehicleClock) as soon as it has been heard.

    Reactions: ("return", reason) asks the runtime to fly home along the cleared route: jump the
    mission to `return_entry()` (then tell `turned_back(seq)`), or fall back to RTL; ("rtl", reason)
    and ("cancel", reason) for an operator abort. Tell `expect_mode(mode)` before commanding a mode,
    so that only the modes the autopilot chose itself count as incidents. `outcome()` says what the
    flight ended as; `incidents(now)` lists the incidents once each.
    """

    def __init__(self, spec: FlightSpec, state: VehicleState | None = None, *, seen: Iterable[str] = (),
                 clock_anchor: tuple[float, datetime] | None = None) -> None:
        self.spec = spec
        self.state = state if state is not None else VehicleState()
        self.events: list[DeliveryEvent] = []
        self.reactions: list[tuple[str, str]] = []
        self._anchor = clock_anchor or (0.0, _EPOCH)
        m = spec.mission
        self._takeoff_seq = next((i for i, it in enumerate(m) if it.command == C.NAV_TAKEOFF), 1)
        self._zone_seq = self._first_at_zone()
        self._lower_seq = self._find_lower_seq()
        self._after_seq = spec.drop_seq if m[spec.drop_seq].is_nav else self._next_nav(spec.drop_seq)
        self._return_seq = self._find_return_seq()
        self._winch_seq = self._winch_lower_seq()
        self._rest_m = self._remaining_path()
        # flight state
        self.phase = "preflight"
        self._once: set[str] = set()
        self.armed_seen = False
        self.airborne = False
        self.released = False
        self.drop_failed = False
        self.link_lost = False
        self._hb_seen = False
        self._hb_at: float | None = None
        self._breached = False
        self._breach_count = 0
        self._sync_breach = False
        self._reached: set[int] = set()
        self._low_since: float | None = None
        self._pp_touchdown = False
        self._release_t: float | None = None
        self._before, self._after = _Samples(), _Samples()
        self._jam_decided = False
        self.drop_lat: float | None = None
        self.drop_lon: float | None = None
        self.drop_alt_rel_m: float | None = None
        self.drop_time: datetime | None = None
        self.takeoff_time: datetime | None = None
        self.landed_time: datetime | None = None
        # incidents, the vehicle's clock, and how the flight ended
        self.clock = VehicleClock(self.state, self._wall)
        self._inc = Incidents(spec.incident_merge_s)
        self._failsafes: set[str] = set()
        self._expected_modes: set[str] = {"AUTO"}
        self._mode_seen: str | None = None
        self._breach_count_seen: int | None = None
        self._held: list[DeliveryEvent] = []
        self._gap: tuple[datetime, float | None, float | None, int | None] | None = None  # before the outage
        self._lost_rx: float | None = None
        self._back: tuple[int, datetime] | None = None  # first vehicle time heard after an outage
        self._link_event = True
        self._parcel_left = False
        self.crashed: str | None = None
        self.turned_back_seq: int | None = None
        self.end_lat: float | None = None
        self.end_lon: float | None = None
        self.end_mode: str | None = None
        self._land_seq = next((i for i in range(len(m) - 1, 0, -1) if m[i].command in (C.NAV_LAND, C.NAV_RETURN_TO_LAUNCH)),
                              len(m) - 1)
        self._resume(list(seen))

    def replan(self, spec: FlightSpec, from_seq: int) -> None:
        """The flight was rerouted in the air: the same delivery, a new mission from item `from_seq` on
        (core.reroute keeps its shape, so the items found by the same rules mean the same things).
        Flight state is kept; items reached at the old indices from `from_seq` on are forgotten."""
        self.spec = spec
        if isinstance(self._reached, set):
            self._reached = {i for i in self._reached if i < from_seq}
        m = spec.mission
        self._takeoff_seq = next((i for i, it in enumerate(m) if it.command == C.NAV_TAKEOFF), 1)
        self._zone_seq = self._first_at_zone()
        self._lower_seq = self._find_lower_seq()
        self._after_seq = spec.drop_seq if m[spec.drop_seq].is_nav else self._next_nav(spec.drop_seq)
        self._return_seq = self._find_return_seq()
        self._winch_seq = self._winch_lower_seq()
        self._rest_m = self._remaining_path()
        self._land_seq = next((i for i in range(len(m) - 1, 0, -1) if m[i].command in (C.NAV_LAND, C.NAV_RETURN_TO_LAUNCH)),
                              len(m) - 1)

    # -- plan geometry ---------------------------------------------------------------------------
    def _has_pos(self, it: MissionItem) -> bool:
        return it.is_nav and not (it.lat == 0 and it.lon == 0)

    def _near_zone(self, it: MissionItem) -> bool:
        return self._has_pos(it) and distance_m(it.lat, it.lon, self.spec.zone_lat, self.spec.zone_lon) <= self.spec.zone_radius_m

    def _first_at_zone(self) -> int:
        for i in range(1, self.spec.drop_seq + 1):
            if self._near_zone(self.spec.mission[i]):
                return i
        return self.spec.drop_seq

    def _find_lower_seq(self) -> int | None:
        """The nav item that takes the vehicle down towards the parcel's release height, if any."""
        m, z = self.spec.mission, self._zone_seq
        for i in range(z + 1, self.spec.drop_seq):
            if m[i].is_nav and m[i].alt < m[z].alt - 1.0:
                return i
        return None

    def _next_nav(self, seq: int) -> int:
        m = self.spec.mission
        return next((i for i in range(seq + 1, len(m)) if m[i].is_nav), len(m) - 1)

    def _find_return_seq(self) -> int:
        m = self.spec.mission
        for i in range(self._after_seq + 1, len(m)):
            if m[i].is_nav and (not self._near_zone(m[i]) or m[i].command in (C.NAV_LAND, C.NAV_RETURN_TO_LAUNCH)):
                return i
        return len(m) - 1

    def _remaining_path(self) -> list[float]:
        """For each seq: metres from that item's position to the end of the mission."""
        m = self.spec.mission
        rest = [0.0] * (len(m) + 1)
        nxt: MissionItem | None = None
        for i in range(len(m) - 1, -1, -1):
            it = m[i]
            if self._has_pos(it):
                rest[i] = rest[i + 1] + (distance_m(it.lat, it.lon, nxt.lat, nxt.lon) if nxt else 0.0)
                nxt = it
            else:
                rest[i] = rest[i + 1]
        self._next_pos = [None] * len(m)
        nxt = None
        for i in range(len(m) - 1, -1, -1):
            if self._has_pos(m[i]):
                nxt = m[i]
            self._next_pos[i] = (i, nxt) if nxt is not None else None
        return rest

    # -- resume ----------------------------------------------------------------------------------
    def _resume(self, seen: list) -> None:
        """`seen`: the kinds of the stored events, or the events themselves (with .kind, .data, .time),
        which also bring back what the incidents and the parcel were before the restart."""
        for item in seen:
            kind = getattr(item, "kind", item)
            data = getattr(item, "data", None) or {}
            t = getattr(item, "time", None) or self._anchor[1]
            inc = _INCIDENT_OF.get(kind)
            if inc is not None and not (kind == "link_lost" and "taking_off" not in self._once):
                self._inc.open(inc, t, getattr(item, "message", "") or f"{kind} before a restart")
                self._inc.close(inc, t)
            self._attended_resume_event(kind, data)
            if kind == "crashed":
                self.crashed = "before a restart"
            elif kind == "return_route":
                self.turned_back_seq = data.get("seq", self._return_seq)
            elif kind == "drop_failed":
                self._parcel_left = data.get("parcel") == "left"
            if kind in _ONE_SHOT:
                self._once.add(kind)
            if kind in PHASES and PHASES.index(kind) > PHASES.index(self.phase):
                self.phase = kind
            if kind == "link_lost":
                self.link_lost = True
            elif kind == "link_restored":
                self.link_lost = False
            elif kind == "fence_breach":
                self._breached, self._sync_breach = True, True
        self.armed_seen = "armed" in self._once or self._idx(self.phase) >= 1
        self.airborne = 1 <= self._idx(self.phase) < self._idx("landed")
        # not inferred from the phase: an RTL before the drop reaches "returning" with the parcel aboard
        self.released = "released" in self._once
        self._attended_resume(self._once)
        self.drop_failed = "drop_failed" in self._once
        if self.released or self.drop_failed:
            self._jam_decided = True  # its samples died with the old process

    # -- output ----------------------------------------------------------------------------------
    def _wall(self, now: float) -> datetime:
        return self._anchor[1] + timedelta(seconds=now - self._anchor[0])

    def vehicle_time(self, now: float) -> datetime:
        return self.clock.now(now)

    def _emit(self, kind: str, now: float, message: str = "", *, at: datetime | None = None,
              **data: Any) -> DeliveryEvent | None:
        if kind in _ONE_SHOT:
            if kind in self._once:
                return None
            self._once.add(kind)
        s = self.state
        data.setdefault("mission_seq", s.mission_seq)
        data["mono"] = now
        ev = DeliveryEvent(kind=kind, time=at or self.vehicle_time(now), lat=s.lat, lon=s.lon, alt_rel_m=s.alt_rel_m,
                           message=message, data=data)
        if self._gap is not None and at is None and self.clock.has_vehicle_time:
            self._held.append(ev)  # happened during the outage or at its end: dated once the clock is heard
        else:
            self.events.append(ev)
        return ev

    def _date_held(self, now: float, hi: datetime) -> None:
        """The vehicle's clock is heard again after an outage: date what was inferred meanwhile.

        Nothing says exactly when, during the outage, a phase changed or a mode switched: such an
        event gets the bounds of the outage in vehicle time, and as its time the end of the outage
        or, for what happens at the zone, the moment the vehicle was at the zone if it flew the
        outage at an even pace (interpolated along last position -> zone -> first position)."""
        lo, lat0, lon0, _ = self._gap
        s, sp = self.state, self.spec
        for ev in self._held:
            t = hi
            if ev.kind in _ZONE_PHASES and lat0 is not None and s.lat is not None:
                a = distance_m(lat0, lon0, sp.zone_lat, sp.zone_lon)
                b = distance_m(sp.zone_lat, sp.zone_lon, s.lat, s.lon)
                if a + b > 1.0:
                    t = lo + (hi - lo) * (a / (a + b))
                    ev.data["time_source"] = "interpolated"
            ev.data.setdefault("time_source", "end of outage")
            ev.data["time_bounds"] = [lo.isoformat(), hi.isoformat()]
            ev.time = t
            if ev.kind not in _ZONE_PHASES:
                ev.lat, ev.lon, ev.alt_rel_m = s.lat, s.lon, s.alt_rel_m
        self.events.extend(sorted(self._held, key=lambda e: e.time))
        self._held = []
        self._gap = self._back = None

    def flush(self, now: float) -> None:
        """End of monitoring: anything still held is dated at the last vehicle time heard."""
        if self._held:
            for ev in self._held:
                ev.data.setdefault("time_source", "last heard")
            self.events.extend(self._held)
            self._held = []

    def take_events(self) -> list[DeliveryEvent]:
        ev, self.events = self.events, []
        return ev

    def take_reactions(self) -> list[tuple[str, str]]:
        r, self.reactions = self.reactions, []
        return r

    @staticmethod
    def _idx(phase: str) -> int:
        return PHASES.index(phase)

    def _to_phase(self, phase: str, now: float, message: str = "") -> None:
        if self._idx(phase) > self._idx(self.phase):
            self.phase = phase
            self._emit(phase, now, message)

    # -- input -----------------------------------------------------------------------------------
    def feed(self, msg: Any, now: float) -> None:
        self.observe(msg, self.state.update(msg, now), now)

    def observe(self, msg: Any, text: StatusText | None, now: float) -> None:
        s = self.state
        if s.sysid is not None and msg.get_srcSystem() != s.sysid:
            return
        t = msg.get_type()
        if t == "HEARTBEAT":
            # the state decides whether a heartbeat counts (autopilot, not a camera or another GCS)
            if s.last_heartbeat is not None and s.last_heartbeat != self._hb_at:
                self._hb_at = s.last_heartbeat
                self._hb_seen = True
                if self.link_lost:
                    self.link_lost = False
                    if self._link_event:
                        self._emit("link_restored", now, "heartbeat again")
                self._mode(now)
        elif t == "GPS_RAW_INT":
            self._gps(now)
        elif t == "MISSION_ITEM_REACHED":
            self._reached.add(msg.seq)
        elif t == "FENCE_STATUS":
            self._fence_status(msg, now)
        elif t == "VFR_HUD":
            self._sample(now)
        elif t in ("SYS_STATUS", "BATTERY_STATUS"):
            self._battery(now)
        elif t == "SERVO_OUTPUT_RAW" and self.spec.gripper_servo:
            self._gripper_output(msg, now)
        if text is not None:
            self._text(text.text, now)
        if t in _PHASE_INPUTS:
            self._advance(now)
        if self._gap is not None and not self.link_lost:
            self._after_outage(now)

    def poll(self, now: float) -> None:
        """Timers: link loss by heartbeat silence."""
        if self._hb_seen and not self.link_lost and not self.state.link_ok(now, self.spec.link_timeout_s):
            self.link_lost = True
            s = self.state
            age = now - (s.last_heartbeat or now)
            last = self.vehicle_time(now)  # the last the vehicle told us: the outage starts there
            # a link that flickers is one incident: link_lost/link_restored only for its first outage
            # (or one after a quiet spell), the rest are counted in the incident
            self._link_event = not self.airborne or self._inc.open("link_loss", last, "no heartbeat", worst=0.0,
                                                                    unit="s")
            if self._link_event:
                self._emit("link_lost", now, f"no heartbeat for {age:.1f} s", at=last, heartbeat_age_s=round(age, 1))
            self._gap = (last, s.lat, s.lon, s.mission_seq)
            self._back = None
            self._lost_rx = now
        self._attended_poll(now)

    def _after_outage(self, now: float) -> None:
        """The vehicle's clock is heard again. What changed during the outage shows up within one round
        of telemetry (heartbeat, position, mission, texts in whatever order): events seen in the first
        vehicle second after it are dated as having happened during the outage."""
        s = self.state
        if not self.clock.has_vehicle_time:
            self._link_back(now, self.vehicle_time(now))
            return
        if s.time_boot_rx is None or s.time_boot_rx <= self._lost_rx:
            return  # nothing timestamped since the outage began
        if self._back is None:
            self._back = (s.time_boot_ms, self.vehicle_time(now))
        elif s.time_boot_ms - self._back[0] >= 1000:
            self._link_back(now, self._back[1])

    def abort(self, now: float, reason: str = "operator abort") -> None:
        """Operator abort: the runtime is asked to bring the vehicle home (or not to launch)."""
        if self._emit("aborted", now, reason) is None:
            return
        self.reactions.append(("rtl" if self.airborne else "cancel", reason))

    def expect_mode(self, mode: str) -> None:
        """The runtime is about to command this mode: it is not an unplanned mode change."""
        self._expected_modes.add(mode)

    def turning_back(self, seq: int | None) -> None:
        """The runtime is about to jump the mission to `seq` (from `return_entry`), None if it gave up.
        Said before the jump: MISSION_CURRENT may show the new item before the command is acknowledged,
        and the drop it skips must not then be read as a failed drop."""
        self.turned_back_seq = seq

    def turned_back(self, seq: int, now: float) -> None:
        """The autopilot accepted the jump: home along the route with the parcel."""
        self.turned_back_seq = seq
        self._emit("return_route", now, f"home along the cleared route from mission item {seq}", seq=seq)

    @property
    def link_lost_since(self) -> float | None:
        """Monotonic time the current outage was noticed; None while the link is up."""
        return self._lost_rx if self.link_lost else None

    def incidents(self, now: float) -> list[Incident]:
        return self._inc.snapshot(self.vehicle_time(now))

    # -- rules -----------------------------------------------------------------------------------
    def _text(self, text: str, now: float) -> None:
        if text.startswith(_PP_FAIL) and not self.released:
            self._fail_drop(now, text)
        elif text.startswith("PayloadPlace: payload release thrust threshold") or text == "PayloadPlace: landed":
            self._pp_touchdown = True
        elif text.startswith(_RELEASE_TEXTS) and self.airborne and self._idx(self.phase) >= self._idx("en_route"):
            self._release(now, text)
        elif _FENCE_BREACHED.search(text):
            if not self._breached:
                self._breached, self._sync_breach = True, True
                self._breach(now, text)
        elif text == "Fence breach cleared":
            self._breached = False
            self._inc.close("fence_breach", self.vehicle_time(now))
        elif text.startswith(_CRASH_TEXTS) and self.armed_seen:
            self._crash(now, text)
        else:
            self._failsafe_text(text, now)
        if _BATT_FAILSAFE.match(text) and "low_battery" not in self._once and self.airborne:
            # the autopilot's own battery failsafe (AP_BattMonitor::check_failsafes) acted first; it
            # carries out BATT_FS_LOW_ACT itself (a mode change, followed like any other)
            self._low(now, f"autopilot battery failsafe: {text}", None, None)

    def _gripper_output(self, msg: Any, now: float) -> None:
        sp = self.spec
        pwm = getattr(msg, f"servo{sp.gripper_servo}_raw", 0) or 0
        if not pwm or self.released or self.drop_failed or not self.airborne:
            return
        if self._idx(self.phase) < self._idx("at_zone"):
            return
        mid = (sp.gripper_grab_pwm + sp.gripper_release_pwm) / 2
        if (pwm < mid) == (sp.gripper_release_pwm < mid):
            self._release(now, f"gripper output SERVO{sp.gripper_servo} at release ({pwm} us)")

    def _release(self, now: float, text: str) -> None:
        if self.released or self.drop_failed:
            return
        s = self.state
        self.released = True
        self._release_t = now
        dist = None
        if self._gap is not None:
            # seen only when the link came back: where and when it let go is not known
            self.drop_lat = self.drop_lon = self.drop_alt_rel_m = None
            ev = self._emit("released", now, text, drop_distance_m=None,
                            position="unknown: released during a link outage")
            if ev is not None:
                ev.lat = ev.lon = ev.alt_rel_m = None
            if self._idx(self.phase) < self._idx("released"):
                self.phase = "released"
            return
        self.drop_lat, self.drop_lon, self.drop_alt_rel_m = s.lat, s.lon, s.alt_rel_m
        self.drop_time = self.vehicle_time(now)
        if s.lat is not None:
            dist = round(distance_m(s.lat, s.lon, self.spec.zone_lat, self.spec.zone_lon), 1)
        if self._idx(self.phase) < self._idx("released"):
            self.phase = "released"
        self._emit("released", now, text, drop_distance_m=dist)
        if dist is not None and dist > 2 * self.spec.zone_radius_m:
            self._fail_drop(now, f"released {dist:.0f} m from the zone centre", parcel="left")
        sp = self.spec
        if sp.method == "payload_place" and s.alt_rel_m is not None:
            # PayloadPlace releases wherever it senses touchdown: on a car roof or a tree as readily as on
            # the ground. Only a release at the zone's ground level is a delivery.
            height = s.alt_rel_m - sp.zone_ground_rel_m
            if height > sp.place_tolerance_m:
                self._fail_drop(now, f"released {height:.1f} m above the zone's ground: touchdown was sensed on "
                                     "something standing in the zone, not the ground", parcel="left",
                                height_m=round(height, 1))

    def _fail_drop(self, now: float, reason: str, **data: Any) -> None:
        if self.drop_failed:
            return
        self.drop_failed = True
        self._parcel_left = data.get("parcel") == "left"
        self._emit("drop_failed", now, reason, **data)

    def _advance(self, now: float) -> None:
        s, sp = self.state, self.spec
        seq = s.mission_seq
        if s.armed and not self.armed_seen:
            self.armed_seen = True
            self._emit("armed", now)
        if self.phase == "preflight" and s.armed and (
                (s.alt_rel_m is not None and s.alt_rel_m > 1.0)
                or (s.mode == "AUTO" and seq is not None and seq >= self._takeoff_seq)):
            self.airborne = True
            self._mode_seen = s.mode
            self.takeoff_time = self.vehicle_time(now)
            self._to_phase("taking_off", now)
        if not self.airborne:
            return
        if not s.armed:
            self._landed(now)
            return
        at = self._idx(self.phase)
        if at < self._idx("returning") and s.mode in _RTL_MODES:
            self._to_phase("returning", now, f"mode {s.mode}")
            return
        if seq is None:
            return
        self._attended_step(now, seq)
        if self.turned_back_seq is not None:
            # sent home along the route before the drop: the parcel stays aboard, no drop to judge
            if self._idx(self.phase) < self._idx("returning") and seq >= self.turned_back_seq:
                self._to_phase("returning", now, f"back along the route from mission item {self.turned_back_seq}")
            return
        if self.phase == "taking_off" and (seq > self._takeoff_seq or self._takeoff_seq in self._reached):
            self._to_phase("en_route", now)
        if self.phase == "en_route" and seq >= self._zone_seq and (
                seq > self._zone_seq or self._zone_seq in self._reached or self._near(sp.zone_lat, sp.zone_lon)):
            self._to_phase("at_zone", now)
        if self.phase == "at_zone" and self._lowering(seq):
            self._to_phase("lowering", now)
        if not self.released and not self.drop_failed and (
                seq > self._after_seq or (self._after_seq in self._reached and seq >= self._after_seq)):
            self._fail_drop(now, "the mission moved past the drop with no release seen")
        if (self.released or self.drop_failed) and self._idx(self.phase) < self._idx("returning") \
                and seq >= self._return_seq:
            self._to_phase("returning", now)

    def _landed(self, now: float) -> None:
        s = self.state
        self.airborne = False
        t = self.vehicle_time(now)
        self.landed_time = t
        self.end_lat, self.end_lon, self.end_mode = s.lat, s.lon, s.mode
        tilt = max(abs(s.roll_rad or 0.0), abs(s.pitch_rad or 0.0))
        if tilt > _CRASH_TILT_RAD:
            self._crash(now, f"disarmed at {math.degrees(tilt):.0f} degrees of tilt")
        for kind in list(self._inc.by_kind):
            self._inc.close(kind, t)
        where = ""
        if s.lat is not None:
            d = distance_m(s.lat, s.lon, self.spec.hub_lat, self.spec.hub_lon)
            where = f", {d:.0f} m from the hub" if d > self.spec.home_radius_m else ""
        self._to_phase("landed", now, f"disarmed in {s.mode}{where}")

    def _near(self, lat: float, lon: float) -> bool:
        s = self.state
        return s.lat is not None and distance_m(s.lat, s.lon, lat, lon) <= self.spec.zone_radius_m

    def _lowering(self, seq: int) -> bool:
        sp, s = self.spec, self.state
        if sp.method == "payload_place":
            item = sp.mission[sp.drop_seq]
            return self._pp_touchdown or (seq == sp.drop_seq and s.alt_rel_m is not None
                                          and s.alt_rel_m < item.alt - 2.0 and self._near(sp.zone_lat, sp.zone_lon))
        if sp.method == "winch":
            # descending to winch height is not lowering the parcel: the winch paying out is
            return (s.winch_line_m or 0.0) > 0.5 or seq >= self._winch_seq
        return self._lower_seq is not None and seq >= self._lower_seq

    def _winch_lower_seq(self) -> int:
        """The nav item current while the winch pays out: DO_WINCH starts when the nav item after it does."""
        m = self.spec.mission
        for i in range(self._zone_seq, self.spec.drop_seq):
            if m[i].command == C.DO_WINCH and m[i].param3 > 0:
                return self._next_nav(i)
        return self.spec.drop_seq

    # -- energy ----------------------------------------------------------------------------------
    def remaining_wh(self) -> float | None:
        s = self.state
        if s.battery_pct is not None:
            return self.spec.battery_wh * s.battery_pct / 100.0
        if s.energy_consumed_wh is not None:
            return self.spec.battery_wh - s.energy_consumed_wh
        return None

    def needed_wh(self) -> float:
        s, sp = self.state, self.spec
        if sp.energy_needed_wh is not None:
            return sp.energy_needed_wh(s, s.mission_seq)
        if not sp.wh_per_m:
            return 0.0
        return sp.wh_per_m * self.remaining_path_m()

    def remaining_path_m(self) -> float:
        s, sp = self.state, self.spec
        if s.lat is None:
            return self._rest_m[0]
        seq = s.mission_seq
        if seq is None or s.mode in _RTL_MODES or self.phase == "returning" and seq >= len(sp.mission):
            return distance_m(s.lat, s.lon, sp.hub_lat, sp.hub_lon)
        nxt = self._next_pos[min(seq, len(sp.mission) - 1)]
        if nxt is None:
            return distance_m(s.lat, s.lon, sp.hub_lat, sp.hub_lon)
        i, it = nxt
        return distance_m(s.lat, s.lon, it.lat, it.lon) + self._rest_m[i]

    # -- gripper jam -----------------------------------------------------------------------------
    # A release that leaves the parcel on the hook shows as hover throttle that does not fall. The
    # comparison only means something if, before and after, the parcel (if aboard) hangs free: a parcel
    # resting on the ground at the end of a winch line weighs nothing, and counting those samples as
    # "loaded" made every winch delivery look jammed. Times are the vehicle's own (time_boot_ms): the
    # settling after the release is physics, and a wall-clock settle meant 30 vehicle seconds at
    # speed-up 10 (inside the wind-in hover) but 60 at speed-up 20 (after it), so the verdict depended
    # on the speed-up. The plan holds a hover over the zone at cruise height before and after every drop
    # (core.plan WEIGH_S), so the hover comparison always has its samples, same place, height and wind.
    _jam_release_at: tuple[int, float] | None = None  # (clock source, time) of the first sample after release

    def _jam_clock(self, now: float) -> tuple[int, float]:
        """(source, seconds): the vehicle's clock once heard (source = its boot number), else ours (-1)."""
        s = self.state
        ms = getattr(s, "time_boot_ms", None)
        if ms:
            return (getattr(s, "boots", 0) or 0, ms / 1000.0)
        return (-1, now)

    def _wound_in_seq(self) -> int:
        """The nav item current while the winch winds the line back in (the one after the last wind-in)."""
        m = self.spec.mission
        last = max((i for i in range(self.spec.drop_seq, len(m)) if m[i].command == C.DO_WINCH and m[i].param3 < 0),
                   default=None)
        return self._next_nav(last) if last is not None else self.spec.drop_seq

    def _parcel_hangs_free(self) -> bool:
        """Would a parcel still on board hang clear of the ground right now?"""
        s, sp = self.state, self.spec
        if sp.method != "winch":
            return True  # held under the body; payload place's touchdown is kept out by phase and settle
        line, seq = s.winch_line_m, s.mission_seq
        if line is None or s.alt_rel_m is None:
            # no WINCH_STATUS: only while the line is surely in, before the lowering and after the wind-in
            return seq is not None and (seq < self._winch_seq or seq > self._wound_in_seq())
        return line + sp.jam_hang_margin_m < s.alt_rel_m - sp.zone_ground_rel_m

    def _sample(self, now: float) -> None:
        s, sp = self.state, self.spec
        if not self.airborne or s.throttle_pct is None:
            return
        clock = self._jam_clock(now)
        if self.released and (self._jam_release_at is None or self._jam_release_at[0] != clock[0]):
            self._jam_release_at = clock  # a change of clock (first vehicle time, reboot) restarts the settle
        if s.climb_mps is None or abs(s.climb_mps) > 0.3 or not self._parcel_hangs_free():
            return
        hover = (s.groundspeed_mps or 0.0) < 1.5
        sample = (s.throttle_pct, s.airspeed_mps or 0.0)
        if not self.released:
            if self._idx("en_route") <= self._idx(self.phase) <= self._idx("at_zone") or (
                    self.phase == "lowering" and sp.method != "payload_place"):
                (self._before.hover if hover else self._before.level).append(sample)
            return
        if self._jam_decided or clock[1] - self._jam_release_at[1] < sp.jam_settle_s:
            return
        (self._after.hover if hover else self._after.level).append(sample)
        for bucket, n_before, n_after in (("hover", 3, 5), ("level", 5, 5)):
            b, a = getattr(self._before, bucket), getattr(self._after, bucket)
            if len(b) >= n_before and len(a) >= n_after:
                # Throttle in level flight rises with airspeed: outbound and return legs in wind fly at
                # different airspeeds, and comparing them would read a headwind home as a jam.
                if abs(statistics.median(x[1] for x in b) - statistics.median(x[1] for x in a)) > 2.0:
                    continue
                self._jam_decided = True
                before = statistics.median(x[0] for x in b)
                after = statistics.median(x[0] for x in a)
                if before > 0 and after > before * (1.0 - sp.jam_min_drop):
                    self._fail_drop(now, f"gripper jam suspected: {bucket} throttle {after:.0f}% after the release, "
                                         f"{before:.0f}% before",
                                    throttle_before_pct=round(before, 1), throttle_after_pct=round(after, 1))
                return
