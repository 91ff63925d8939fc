"""What a flight ended as (events.OUTCOMES), where the parcel is, and the way home along the route.

A mixin of FlightMonitor: the decisions are made from what the monitor saw, so they can be tested by
feeding it messages, with no runtime.
"""

from __future__ import annotations

import math

from groundctl.core import mavcmd as C


def distance_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Haversine on a sphere: good to 0.5 % and cheap enough to run on every position update."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 12_742_000.0 * math.asin(min(1.0, math.sqrt(a)))


class OutcomeRules:
    """Mixin: uses FlightMonitor's state, spec, phase and plan geometry."""

    def return_entry(self) -> int | None:
        """The mission item to jump to (MAV_CMD_DO_SET_MISSION_CURRENT) to fly home along the route.

        The way back is the way out reversed (core.plan: route_back = route_out.reversed()), and the
        vehicle is on a leg that was cleared: flying back to the waypoint it last passed, and from
        there along the return leg, keeps it on cleared legs, where RTL's straight line and SmartRTL's
        simplified path may cut through a zone the route bent round. At the zone it climbs back first
        (the drop's DO items are skipped by the jump, AP_Mission::set_current_cmd, so the parcel stays
        aboard); with the winch paying out it winds in first. None: already on the way home (nothing to
        do), or no such item (then RTL is the fallback).
        """
        s, sp, m = self.state, self.spec, self.spec.mission
        seq = s.mission_seq
        if seq is None or self.released or seq >= self._return_seq or seq < self._takeoff_seq:
            return None
        past_zone = seq > self._zone_seq or self._near(sp.zone_lat, sp.zone_lon) or \
            self._idx(self.phase) >= self._idx("at_zone")
        if past_zone:
            if sp.method == "winch" and (seq >= self._winch_seq or (s.winch_line_m or 0.0) > 0.5):
                wind_in = next((i for i in range(sp.drop_seq + 1, len(m))
                                if m[i].command == C.DO_WINCH and m[i].param3 < 0), None)
                if wind_in is not None:
                    return wind_in
            cruise = m[self._zone_seq].alt
            for i in range(sp.drop_seq + 1, len(m)):
                if m[i].is_nav and self._near_zone(m[i]) and m[i].alt >= cruise - 1.0 and \
                        m[i].command == C.NAV_WAYPOINT:
                    return i  # climb back over the zone
            return self._next_nav(sp.drop_seq) if sp.method == "payload_place" else self._return_seq
        prev = next((m[i] for i in range(min(seq, len(m)) - 1, self._takeoff_seq, -1) if self._has_pos(m[i])), None)
        if prev is None:
            return self._land_seq  # still on the first leg, hub -> first waypoint: straight back
        for i in range(self._return_seq, len(m)):
            it = m[i]
            if self._has_pos(it) and distance_m(it.lat, it.lon, prev.lat, prev.lon) < 1.0:
                return i
        return None

    def homeward(self) -> bool:
        """Already on the way home along the route (the parcel gone, or the mission on its return leg)."""
        seq = self.state.mission_seq
        return self.released or self.turned_back_seq is not None or (seq is not None and seq >= self._return_seq)

    @property
    def parcel(self) -> str:
        """Where the parcel is: delivered, misdelivered (left the drone off target), aboard, unknown."""
        if self.drop_failed:
            return "misdelivered" if self._parcel_left else "aboard"
        if self.released:
            return "delivered"
        return "aboard" if self.armed_seen else "unknown"

    def end_distance_m(self) -> float | None:
        s = self.state
        lat = self.end_lat if self.end_lat is not None else s.lat
        lon = self.end_lon if self.end_lon is not None else s.lon
        if lat is None:
            return None
        return distance_m(lat, lon, self.spec.hub_lat, self.spec.hub_lon)

    def outcome(self, *, lost: bool = False, aborted: bool | None = None) -> str:
        """What the flight ended as (events.OUTCOMES); `lost`: the link never came back."""
        aborted = "aborted" in self._once if aborted is None else aborted
        if self.crashed:
            return "crashed"
        if lost:
            return "lost"
        if not self.armed_seen or (self.takeoff_time is None and "taking_off" not in self._once):
            return "aborted" if aborted else "failed"
        d = self.end_distance_m()
        if d is not None and d > self.spec.home_radius_m:
            return "landed_away"
        parcel = self.parcel
        if parcel == "misdelivered":
            return "misdelivered"
        if parcel == "delivered":
            return "delivered_with_incidents" if self._inc.by_kind else "delivered"
        return "aborted" if aborted else "returned_with_parcel"
