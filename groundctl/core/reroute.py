"""A new cleared route for a flight already in the air: the rest of its mission rebuilt from where it is.

The mission keeps its shape (home, take off, cruise speed, out legs, the zone's items, back legs, land):
only the legs still ahead are replaced, so every index the flight monitor derives (drop, hold, return
entry) is found again by the same rules. The vehicle is sent to `resume_seq`, the first replaced item.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from groundctl.core import mavcmd as C
from groundctl.core.mission import MissionItem
from groundctl.core.plan import FlightPlan, build_fence
from groundctl.core.routing import Route
from groundctl.errors import NoRouteError

OUT, BACK = "out", "back"
AT_ZONE_M = 15.0  # within this of the zone the vehicle is at it


@dataclass
class Reroute:
    plan: FlightPlan  # the whole flight as it will now be flown
    resume_seq: int  # the first item the vehicle flies of the new mission
    leg: str  # "out" (still carrying the parcel to the zone) or "back"
    remaining_before_m: float  # from where the vehicle is, along the old mission, to the landing
    remaining_after_m: float  # the same along the new one

    @property
    def extra_m(self) -> float:
        return self.remaining_after_m - self.remaining_before_m


def zone_span(mission: list[MissionItem]) -> tuple[int, int]:
    """(first, last) mission index of the items at the zone: from 'over zone: weigh' (or the first item
    at the zone) to 'climb back: weigh'."""
    first = next(i for i, it in enumerate(mission) if "over zone" in it.label)
    last = next(i for i, it in enumerate(mission) if i > first and "weigh" in it.label and "back" in it.label)
    return first, last


def _wp(lon: float, lat: float, alt: float, label: str) -> MissionItem:
    return MissionItem(C.NAV_WAYPOINT, C.FRAME_GLOBAL_RELATIVE_ALT_INT, lat=round(lat, 7), lon=round(lon, 7),
                       alt=alt, label=label)


def _path_m(points: list[tuple[float, float]]) -> float:
    from groundctl.core.geo import geodesic_length_m  # noqa: PLC0415

    return geodesic_length_m(points) if len(points) > 1 else 0.0


def remaining_m(mission: list[MissionItem], seq: int, here_ll: tuple[float, float]) -> float:
    """Along the mission's positioned nav items from `seq` on, starting where the vehicle is."""
    pts = [here_ll] + [(it.lon, it.lat) for it in mission[max(seq, 1):] if it.is_nav and (it.lat or it.lon)]
    return _path_m(pts)


def crosses(mission: list[MissionItem], seq: int, here_ll: tuple[float, float], shape_ll: Any) -> bool:
    """Does the rest of the mission (from the vehicle's position through the items from `seq`) cross
    `shape_ll`, a shapely geometry in lon/lat?"""
    from shapely.geometry import LineString, Point  # noqa: PLC0415

    pts = [here_ll] + [(it.lon, it.lat) for it in mission[max(seq, 1):] if it.is_nav and (it.lat or it.lon)]
    geom = LineString(pts) if len(pts) > 1 else Point(pts[0])
    return bool(geom.intersects(shape_ll))


def at_zone(plan: FlightPlan, here_ll: tuple[float, float], seq: int, released: bool) -> bool:
    """Is the vehicle flying the zone's items with the parcel still aboard (descending, placing, holding)?
    Those are flown where they are: a reroute waits until they are done and only the way home is left."""
    from groundctl.core.geo import geodesic_distance_m  # noqa: PLC0415

    first, last = zone_span(plan.mission)
    if released or not first <= seq <= last:
        return False
    return seq > first or geodesic_distance_m(*here_ll, plan.zone.lon, plan.zone.lat) <= AT_ZONE_M


def reroute(plan: FlightPlan, airspace: Any, planner: Any, here_ll: tuple[float, float], seq: int, *,
            released: bool, home: bool = False) -> Reroute:
    """The flight from `here_ll` (lon, lat), flying mission item `seq`, on a route `planner` (built on
    `airspace`, with the restrictions in force laid over it) clears.
    `released`: the parcel is gone (the zone is behind). `home`: back to the hub from here whatever the
    parcel's state (no route to the zone: it comes home aboard), skipping the zone's items. Raises NoRouteError when no route exists, or
    when the vehicle is at the zone (its items there are flown in place: nothing to reroute)."""
    m = plan.mission
    first, last = zone_span(m)
    before = remaining_m(m, seq, here_ll)
    hub_ll, zone_ll = (plan.hub.lon, plan.hub.lat), (plan.zone.lon, plan.zone.lat)
    cruise = plan.cruise_alt_m
    land = m[-1]
    # flying to the first item over the zone is still the way out; once there, the zone's items are flown in place
    from groundctl.core.geo import geodesic_distance_m  # noqa: PLC0415

    on_way_out = seq < first or seq == first and geodesic_distance_m(*here_ll, *zone_ll) > AT_ZONE_M
    if not home and not released and on_way_out:
        out = planner.route(here_ll, zone_ll)
        back = planner.route(zone_ll, hub_ll)
        head = list(m[:3])  # home, take off, cruise speed: already flown, kept so indices keep their meaning
        wps = [_wp(lon, lat, cruise, OUT) for lon, lat in out.points_ll[1:-1]]
        shift = len(head) + len(wps) - first
        zone = [_shift_jump(it, shift) for it in m[first:last + 1]]
        tail = [_wp(lon, lat, cruise, BACK) for lon, lat in back.points_ll[1:-1]]
        mission = head + wps + zone + tail + [land]
        resume, leg = 2, OUT  # from the cruise-speed item: the speed is set again, then the first new leg
        route_out, route_back = out, back
    elif home or seq > last or released and not on_way_out:
        if seq <= last and not home and not released:
            raise NoRouteError("the vehicle is at the zone: its items there are flown where they are")
        back = planner.route(here_ll, hub_ll)
        mission = list(m[:last + 1]) + [_wp(lon, lat, cruise, BACK) for lon, lat in back.points_ll[1:-1]] + [land]
        resume, leg = last + 1, BACK
        route_out, route_back = plan.route_out, back
    else:
        raise NoRouteError("the vehicle is at the zone: its items there are flown where they are")
    after = remaining_m(mission, resume, here_ll)
    fence, names, warnings = build_fence(airspace, planner, plan.hub,
                                         _joined(route_out, route_back, leg), plan.ops)
    new = replace(plan, mission=mission, route_out=route_out, route_back=route_back, fence=fence,
                  fence_zones=names, warnings=list(plan.warnings) + warnings)
    return Reroute(plan=new, resume_seq=min(resume, len(mission) - 1), leg=leg,
                   remaining_before_m=round(before, 1), remaining_after_m=round(after, 1))


def _shift_jump(it: MissionItem, shift: int) -> MissionItem:
    """The attended hold's DO_JUMP names an index: it moves with the items."""
    if it.command == C.DO_JUMP and shift:
        return it.with_(param1=it.param1 + shift)
    return it


def _joined(out: Route, back: Route, leg: str) -> Route:
    """The path the fence must leave room for: everything still to fly."""
    if leg == BACK:
        return back
    xy = list(out.points_xy) + list(back.points_xy[1:])
    ll = list(out.points_ll) + list(back.points_ll[1:])
    return Route(xy, ll, out.length_m + back.length_m, list(out.skirted) + list(back.skirted))


def intent_shape(rr: Reroute, here_ll: tuple[float, float], frame: Any):
    """The reserved sky of a rerouted flight (core.intents FlightShape): from where it is along the new route,
    already at cruise height (no climb at the hub); on the way back, no zone either."""
    from dataclasses import replace as dc_replace  # noqa: PLC0415

    from groundctl.core.intents import shape_of  # noqa: PLC0415

    shape = dc_replace(shape_of(rr.plan, frame), climb_s=0.0)
    if rr.leg == BACK:
        here = tuple(map(float, frame.to_xy(*here_ll)))
        shape = dc_replace(shape, route_out_xy=[here], zone_xy=here, at_zone_s=0.0, zone_radius_m=0.0)
    return shape
