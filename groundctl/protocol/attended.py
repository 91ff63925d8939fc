"""Attended drop: the hold above the zone, the recipient's clearance, and the return when nobody came.

A mixin of FlightMonitor, sans-IO like it. The plan (core.plan AttendedHold) holds with NAV_LOITER_TIME
at cruise height over the zone, then a DO_JUMP past the drop to the climb-back waypoint. What
ArduPilot does with that, checked in its source:
- ModeAuto::do_loiter_time / verify_loiter_time (ArduCopter/mode_auto.cpp): the hold's timer starts
  once the vehicle reaches the point (wp_nav->reached_wp_destination), and the item completes after
  p1 seconds ("Reached command #N"); until then MISSION_CURRENT shows the hold.
- AP_Mission::advance_current_nav_cmd -> get_next_cmd follows the DO_JUMP (repeat -1 =
  AP_MISSION_JUMP_REPEAT_FOREVER) to its target: the drop's items are never started, the parcel stays
  aboard and the vehicle comes home on its own, link or no link.
- MAV_CMD_DO_SET_MISSION_CURRENT (GCS_Common.cpp handle_command_do_set_mission_current ->
  AP_Mission::set_current_cmd) on a running mission starts the named item at once: the clearance
  sets it to the first drop item after the jump, and the drop runs as in any delivery.

Times here are the vehicle's own (time_boot_ms): the hold's deadline is the vehicle time the hold
began plus its length, whatever the speed-up or the load on this machine.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

# Clearance is refused this close to the end of the hold (vehicle seconds): the vehicle may already
# be on its way home by the time the command arrives, and a clearance then would turn it round.
CLEAR_MARGIN_S = 3.0
# The vehicle ends the hold itself; if it is still holding this long after the deadline (an
# autopilot that does not), the runtime is asked to send it home along the route.
OVERDUE_S = 10.0


class AttendedRules:
    """Mixin: uses FlightMonitor's spec (spec.hold: core.plan.AttendedHold or None), state and _emit."""

    hold_started_ms: int | None = None
    hold_boots: int | None = None
    cleared_by: str | None = None
    recipient_absent: bool = False
    _clear_sent: bool = False
    _overdue_asked: bool = False

    def _attended_resume(self, kinds: set[str]) -> None:
        if "cleared_to_drop" in kinds:
            self.cleared_by = "before a restart"
        if "recipient_absent" in kinds:
            self.recipient_absent = True
            if self.spec.hold is not None and self.turned_back_seq is None:
                self.turned_back_seq = self.spec.hold.absent_seq

    def _attended_resume_event(self, kind: str, data: dict) -> None:
        if kind == "holding_for_recipient" and self.spec.hold is not None and data.get("deadline_boot_ms"):
            # the vehicle's clock runs on across our restart: the deadline it was given still holds
            self.hold_started_ms = int(data["deadline_boot_ms"] - self.spec.hold.hold_s * 1000)
            self.hold_boots = 0

    # -- queries ---------------------------------------------------------------------------------
    @property
    def holding(self) -> bool:
        """Over the zone in the hold: the drone waits for the recipient's clearance."""
        h = self.spec.hold
        return (h is not None and self.airborne and self.state.mission_seq == h.hold_seq and self.state.mode == "AUTO"
                and self.cleared_by is None and not self._clear_sent and not self.recipient_absent
                and not self.released and self.turned_back_seq is None)

    @property
    def awaiting_clearance(self) -> bool:
        return self.holding and self.hold_started_ms is not None

    def hold_left_s(self) -> float | None:
        """Vehicle seconds until the hold runs out (negative: overdue); None when not holding."""
        h, s = self.spec.hold, self.state
        if h is None or self.hold_started_ms is None or s.time_boot_ms is None or s.boots != self.hold_boots:
            return None
        return h.hold_s - (s.time_boot_ms - self.hold_started_ms) / 1000.0

    def clearance_refusal(self) -> str | None:
        """Why a clearance cannot be sent now, or None if it can."""
        if self.spec.hold is None:
            return "this delivery is not an attended drop"
        if self.cleared_by is not None or self._clear_sent:
            return "the drop is already cleared"
        if self.recipient_absent or self.turned_back_seq is not None:
            return "the drone has left the zone with the parcel"
        if self.released:
            return "the parcel is already released"
        if self.link_lost:
            return "the link to the drone is down; its hold runs on and ends with the parcel coming home"
        if not self.awaiting_clearance:
            return "the drone is not holding above the zone yet"
        left = self.hold_left_s()
        if left is None or left < CLEAR_MARGIN_S:
            return "the hold is over: the drone is on its way home with the parcel"
        return None

    # -- runtime calls ---------------------------------------------------------------------------
    def clearing(self, sent: bool) -> None:
        """The runtime is about to send the clearance (True) or gave up on it (False). Said before the
        command: MISSION_CURRENT may show the drop item before the acknowledgement arrives."""
        self._clear_sent = sent

    def cleared(self, now: float, by: str) -> None:
        """The autopilot accepted the clearance: the drop goes ahead."""
        self.cleared_by = by
        left = self.hold_left_s()
        self._emit("cleared_to_drop", now, f"cleared to drop by the {by}", by=by,
                   held_s=None if left is None else round(self.spec.hold.hold_s - left, 1))

    # -- rules (called from FlightMonitor._advance / poll) ---------------------------------------
    def _attended_step(self, now: float, seq: int) -> bool:
        """True when the hold timed out (the mission jumped past the drop): the caller stops there."""
        h, s = self.spec.hold, self.state
        if h is None or not self.airborne or self.released:
            return False
        if seq == h.hold_seq and self.hold_started_ms is None and s.time_boot_ms is not None:
            self.hold_started_ms, self.hold_boots = s.time_boot_ms, s.boots
            deadline = self.vehicle_time(now) + timedelta(seconds=h.hold_s)
            self._emit("holding_for_recipient", now,
                       f"holding {s.alt_rel_m or 0:.0f} m above the zone for up to {h.hold_s:.0f} s: "
                       "waiting for the recipient to clear the drop",
                       hold_s=h.hold_s, deadline=deadline.isoformat(),
                       deadline_boot_ms=int(s.time_boot_ms + h.hold_s * 1000), seq=seq)
            return False
        if self.hold_started_ms is None or self.recipient_absent:
            return False
        if h.clear_seq <= seq < h.absent_seq and self.cleared_by is None and not self._clear_sent:
            # cleared by someone else (another ground station on the link): the drop goes ahead
            self.cleared(now, "another ground station")
            return False
        if seq >= h.absent_seq and self.cleared_by is None and not self._clear_sent and self.turned_back_seq is None:
            self._absent(now, seq)
            self.turned_back_seq = h.absent_seq  # the vehicle took the jump itself: home with the parcel
            return True
        return False

    def _absent(self, now: float, seq: int | None) -> None:
        h = self.spec.hold
        self.recipient_absent = True
        left = self.hold_left_s()
        held = None if left is None else round(h.hold_s - left, 1)
        self._emit("recipient_absent", now, f"nobody cleared the drop in {h.hold_s:.0f} s: "
                   "home with the parcel", reason="recipient_absent", held_s=held, seq=seq)

    def _attended_poll(self, now: float) -> None:
        left = self.hold_left_s()
        if self.awaiting_clearance and left is not None and left < -OVERDUE_S and not self._overdue_asked:
            self._overdue_asked = True
            self._absent(now, self.state.mission_seq)
            self.reactions.append(("return", "recipient absent: the hold ran out"))

    def outcome_reason(self) -> str | None:
        """Why a flight came home with its parcel, when the attended drop says so."""
        if self.recipient_absent and not self.released:
            return "recipient_absent"
        return None

    def hold_view(self) -> dict[str, Any] | None:
        """For a delivery view: the hold as the vehicle flies it."""
        h = self.spec.hold
        if h is None:
            return None
        return {"awaiting_clearance": self.awaiting_clearance, "hold_s": h.hold_s, "hold_left_s":
                None if self.hold_left_s() is None else round(self.hold_left_s(), 1),
                "cleared_by": self.cleared_by, "recipient_absent": self.recipient_absent}
