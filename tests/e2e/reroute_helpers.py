"""Shared by the reroute tests: a restriction laid across the rest of a flight's route, the reroute's
planning as the flight supervisor does it, and the judgement of a track against the restriction."""

from __future__ import annotations

import math
from datetime import datetime, timedelta, timezone

from shapely.geometry import LineString, Point, Polygon

from groundctl.core.geo import LocalFrame
from groundctl.core.plan import FlightPlan, make_planner
from groundctl.core.reroute import reroute
from groundctl.core.restrictions import parse_restriction
from groundctl.runtime.services.airspace import OverlayPlanner


def restriction_across(plan: FlightPlan, at: float = 0.6, half_width_m: float = 200.0, half_depth_m: float = 60.0,
                       name: str = "fire on the route", key: str = "r1", covers_zone: bool = False):
    """A rectangle across route_out at fraction `at` of its length (or, covers_zone, a square over the zone)."""
    frame = LocalFrame(plan.hub.lat, plan.hub.lon)
    line = LineString([frame.to_xy(lon, lat) for lon, lat in plan.route_out.points_ll])
    if covers_zone:
        cx, cy = frame.to_xy(plan.zone.lon, plan.zone.lat)
        ring = [(cx - 150, cy - 150), (cx + 150, cy - 150), (cx + 150, cy + 150), (cx - 150, cy + 150)]
    else:
        c = line.interpolate(at, normalized=True)
        a = line.interpolate(at - 0.01, normalized=True)
        ux, uy = c.x - a.x, c.y - a.y
        n = math.hypot(ux, uy)
        ux, uy = ux / n, uy / n
        px, py = -uy, ux
        ring = [(c.x + sx * ux * half_depth_m + sy * px * half_width_m, c.y + sx * uy * half_depth_m + sy * py * half_width_m)
                for sx, sy in ((-1, -1), (1, -1), (1, 1), (-1, 1))]
    ll = [frame.to_lonlat(x, y) for x, y in ring]
    ll = [(float(lon), float(lat)) for lon, lat in ll]
    now = datetime.now(timezone.utc)
    feature = {"type": "Feature", "geometry": {"type": "Polygon", "coordinates": [ll + [ll[0]]]},
               "properties": {"name": name, "start": (now - timedelta(minutes=5)).isoformat(),
                              "end": (now + timedelta(hours=2)).isoformat(), "floor_m": 0, "ceiling_m": 200}}
    return feature, parse_restriction(feature, key)


def plan_fn_for(scenario, plan: FlightPlan, restriction):
    """What the supervisor hands DeliveryFlight.reroute: the flight's plan re-planned on a planner that has
    the restriction laid over it."""
    view = OverlayPlanner(make_planner(scenario.airspace, plan.hub, scenario.fleet.operations)).view(
        {restriction.key: restriction})

    def plan_fn(here, seq, released, home):
        return reroute(plan, scenario.airspace, view, here, seq, released=released, home=home)
    return plan_fn


def closest_approach_m(plan: FlightPlan, restriction, track) -> tuple[float, int]:
    """(metres, points inside) of the reported track [(t_ms, lat, lon, ...)] to the restriction polygon."""
    frame = LocalFrame(plan.hub.lat, plan.hub.lon)
    poly = Polygon([frame.to_xy(lon, lat) for lon, lat in restriction.zone.geometry_ll.exterior.coords])
    pts = [Point(frame.to_xy(p[2], p[1])) for p in track]
    inside = sum(1 for p in pts if poly.contains(p))
    return min(poly.exterior.distance(p) if not poly.contains(p) else -poly.exterior.distance(p) for p in pts), inside


def fence_has_exclusion(plan: FlightPlan, restriction, fence_items) -> bool:
    """Does the fence read back from the vehicle exclude the whole restriction?"""
    from groundctl.core import mavcmd as C
    from groundctl.core.planfiles import fence_groups

    frame = LocalFrame(plan.hub.lat, plan.hub.lon)
    poly = Polygon([frame.to_xy(lon, lat) for lon, lat in restriction.zone.geometry_ll.exterior.coords])
    from shapely.ops import unary_union

    ex = [Polygon([frame.to_xy(it.lon, it.lat) for it in grp]) for grp in fence_groups(list(fence_items))
          if grp[0].command == C.NAV_FENCE_POLYGON_VERTEX_EXCLUSION and len(grp) >= 3]
    # a metre for the 1e-7 degree positions the vehicle stores
    return bool(ex) and unary_union(ex).buffer(1.0).covers(poly)


async def fly_and_restrict(plan: FlightPlan, link, plan_fn, restriction, *, trigger_m: float = 400.0,
                           ready_timeout_s: float = 120.0, after=None):
    """Fly `plan` over `link`; once en route `trigger_m` from the hub, the restriction 'appears' and the
    flight is rerouted. Returns (report, track [(time_boot_ms, lat, lon, alt_rel_m)], out): out has the
    reroute's result, the vehicle time it appeared at, and the fence read back from the vehicle after.
    `after(flight, out)`, if given, is awaited once the reroute has returned."""
    import asyncio

    from groundctl.core import mavcmd as C
    from groundctl.protocol.monitor import distance_m
    from groundctl.runtime.fly import DeliveryFlight

    track: list = []
    out: dict = {}

    def on_msg(msg, now):
        if msg.get_type() == "GLOBAL_POSITION_INT" and (msg.lat or msg.lon):
            track.append((msg.time_boot_ms, msg.lat * 1e-7, msg.lon * 1e-7, msg.relative_alt / 1000))

    unsub = link.subscribe(None, on_msg)
    flight = DeliveryFlight(plan, link, ready_timeout_s=ready_timeout_s)
    task = asyncio.create_task(flight.run())
    try:
        while not task.done():
            s = flight.vehicle.state if flight.vehicle else None
            if ("result" not in out and flight.monitor is not None and flight.monitor.phase == "en_route"
                    and s is not None and s.has_position
                    and distance_m(s.lat, s.lon, plan.hub.lat, plan.hub.lon) > trigger_m):
                out["restriction_at_ms"] = s.time_boot_ms
                out["result"] = await flight.reroute(plan_fn, restriction=restriction.zone.name)
                out["fence"] = await flight.vehicle.download(C.MISSION_TYPE_FENCE)
                if after is not None:
                    await after(flight, out)
            await asyncio.sleep(0.05)
        return await task, track, out
    finally:
        unsub()
