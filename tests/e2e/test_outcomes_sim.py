"""Outcomes that say what happened, on the built-in simulator over real sockets (issue 8, items 5 and 6).

Times are judged in vehicle time (the simulator's time_boot_ms / SYSTEM_TIME), never by the wall clock:
at speed-up 20 a 200 s outage on the vehicle is 10 s here.
"""

import pytest
from shapely.geometry import LineString, Point

from groundctl.protocol.monitor import distance_m
from groundctl.runtime.fly import DeliveryFlight
from groundctl.runtime.link import MavLink
from sim.launch import start_sim
from tests.e2e.conftest import run, sim_args

pytestmark = pytest.mark.timeout(300)


def kinds(report):
    return [e.kind for e in report.events]


def detail(report):
    return [(e.kind, e.message) for e in report.events]


async def _fly_tracked(plan, url, track, **kw):
    """Fly on our own link, recording every GLOBAL_POSITION_INT the vehicle sends (its real track)."""
    link = await MavLink(url).open(timeout_s=30.0)

    def on_msg(msg, now):
        if msg.get_type() == "GLOBAL_POSITION_INT" and (msg.lat or msg.lon):
            track.append((msg.time_boot_ms, msg.lat * 1e-7, msg.lon * 1e-7))

    unsub = link.subscribe(None, on_msg)
    try:
        return await DeliveryFlight(plan, link, **kw).run()
    finally:
        unsub()
        await link.close()


def test_low_battery_at_the_zone_comes_home_along_the_route(scenario, make_plan):
    """clinic-east: the route bends round the substation. A pack far smaller than the airframe's runs low
    at the zone; the flight comes home along the cleared route (a mission jump to the return leg), not
    the straight line RTL flies, and its track never enters a buffered no-fly zone."""
    plan = make_plan(zone="clinic-east")
    airspace, ops = scenario.airspace, scenario.fleet.operations
    track: list = []
    with start_sim(sim_args(plan, "--battery-wh", "95")) as (proc, urls):
        r = run(_fly_tracked(plan, urls[0], track))
    k = kinds(r)
    assert "low_battery" in k and "return_route" in k, detail(r)
    low = next(e for e in r.events if e.kind == "low_battery")
    # it ran low at the zone: the scenario this test is about
    assert low.lat is not None and distance_m(low.lat, low.lon, plan.zone.lat, plan.zone.lon) < 150, detail(r)
    jump = next(e for e in r.events if e.kind == "return_route")
    assert jump.data["seq"] > plan.drop_seq  # onto the return leg, the drop skipped
    assert "released" not in k and "drop_failed" not in k, detail(r)
    assert r.outcome == "returned_with_parcel" and r.parcel == "aboard", detail(r)
    assert r.drop_lat is None and r.drop_distance_m is None  # no drop: no drop position
    assert r.end_distance_from_hub_m is not None and r.end_distance_from_hub_m < 25
    # each incident once, however long it lasted
    inc = {i.kind: i for i in r.incidents}
    assert len(inc) == len(r.incidents) and "low_battery" in inc, r.incidents
    assert inc["low_battery"].worst is not None and inc["low_battery"].unit == "Wh"

    # the track, as the vehicle reported it, against the buffered zones the route was planned round
    fr = airspace.frame
    blocking = airspace.blocking(plan.cruise_alt_m + ops.vertical_margin_m, plan.hub.elevation_m)
    pts = [fr.to_xy(lon, lat) for _, lat, lon in sorted(track)]
    assert len(pts) > 200, len(pts)
    path = LineString(pts)
    clearance = min(airspace.zones_xy[i].distance(path) for i in blocking)
    # planned 30 m clear; waypoint turns and wind cost a few metres, never the buffer
    assert clearance > ops.lateral_margin_m / 2, clearance
    # and the straight line home from where it turned back (RTL's path) would have crossed a zone
    lx, ly = fr.to_xy(low.lon, low.lat)
    hx, hy = fr.to_xy(plan.hub.lon, plan.hub.lat)
    straight = LineString([(lx, ly), (hx, hy)])
    assert airspace.zones_hit(straight, blocking, margin_m=ops.lateral_margin_m), \
        "scenario does not test anything: the straight line home is clear"
    assert Point(pts[-1]).distance(Point(hx, hy)) < 25
    rtl = min(airspace.zones_xy[i].distance(straight) for i in blocking)
    print(f"track clearance {clearance:.1f} m (planned {ops.lateral_margin_m:g}); straight line home "
          f"{rtl:.1f} m from a zone; turned back {distance_m(low.lat, low.lon, plan.zone.lat, plan.zone.lon):.0f} m "
          f"from the zone; incidents {[(i.kind, i.count, round(i.duration_s), i.worst) for i in r.incidents]}")


def test_link_that_never_comes_back_is_lost(make_plan):
    plan = make_plan(zone="lab-south")
    with start_sim(sim_args(plan, "--cut-after-takeoff", "30", "--cut-for", "100000")) as (proc, urls):
        r = run(DeliveryFlight(plan, urls[0], lost_timeout_s=8).run())
    k = kinds(r)
    assert r.outcome == "lost", detail(r)
    assert k[-1] == "lost" and "landed" not in k
    lost = r.events[-1]
    assert lost.lat is not None and "last heard" in lost.message and lost.data["parcel"] == "aboard"
    assert r.parcel == "aboard" and r.drop_lat is None
    assert r.end_lat == lost.lat and r.end_distance_from_hub_m is not None
    (inc,) = [i for i in r.incidents if i.kind == "link_loss"]
    assert inc.open and inc.count == 1


def test_breach_depth_is_measured_against_the_uploaded_fence(scenario, make_plan):
    """A fence breach's worst value: metres into an exclusion (or out of the inclusion) of the fence
    that was uploaded, not of the airspace file."""
    from groundctl.core import mavcmd as C
    from groundctl.runtime.fly import fence_depth

    plan = make_plan(zone="clinic-east")
    depth = fence_depth(plan)
    assert depth(plan.hub.lat, plan.hub.lon) == 0.0
    circles = [it for it in plan.fence if it.command == C.NAV_FENCE_CIRCLE_EXCLUSION]
    polys = [it for it in plan.fence if it.command == C.NAV_FENCE_POLYGON_VERTEX_EXCLUSION]
    if circles:
        c = circles[0]
        assert abs(depth(c.lat, c.lon) - c.param1) < 2.0  # the centre is a radius deep
    else:
        fr = scenario.airspace.frame
        from shapely.geometry import Polygon
        n = int(polys[0].param1)
        poly = Polygon([fr.to_xy(it.lon, it.lat) for it in polys[:n]])
        x, y = poly.representative_point().coords[0]
        lon, lat = fr.to_lonlat(x, y)
        assert depth(lat, lon) > 1.0
    assert depth(plan.hub.lat + 0.5, plan.hub.lon) > 10_000  # 55 km out of the service area
