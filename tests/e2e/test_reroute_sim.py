"""Reroute in flight on the built-in simulator over real sockets (issue 11, item 3): a restriction appears
across the rest of the route; the vehicle gets a new cleared route from where it is, uploaded and read back
while it flies; its reported track (vehicle time) never enters the restriction and the fence it holds
excludes it. When no route is left (the restriction covers the zone) it comes home with the parcel."""

import pytest

from groundctl.core import mavcmd as C
from groundctl.core.plan import Parcel, build_plan
from groundctl.protocol.monitor import distance_m
from groundctl.runtime.link import MavLink
from groundctl.runtime.sim_args import sim_airframe_args
from sim.launch import start_sim
from tests.e2e.conftest import run
from tests.e2e.reroute_helpers import (closest_approach_m, fence_has_exclusion, fly_and_restrict, plan_fn_for,
                                       restriction_across)

pytestmark = pytest.mark.timeout(300)
SPEEDUP = 30


def fly_with_restriction(scenario, planner, *, covers_zone=False, wrap=None, after=None):
    plan = build_plan(scenario.airspace, scenario.fleet, "cmac", scenario.zone("lab-south"), Parcel(mass_kg=1.0),
                      method="payload_place", planner=planner)
    feature, r = restriction_across(plan, covers_zone=covers_zone)

    async def main(url):
        link = await MavLink(url).open(timeout_s=30.0)
        try:
            fn = plan_fn_for(scenario, plan, r)
            return await fly_and_restrict(plan, link, wrap(fn) if wrap else fn, r, after=after)
        finally:
            await link.close()

    with start_sim([*sim_airframe_args(plan), "--speedup", str(SPEEDUP)]) as (proc, urls):
        report, track, out = run(main(urls[0]))
    return plan, r, report, track, out


def test_reroute_around_a_new_restriction_keeps_the_track_out_and_delivers(scenario, planner):
    plan, r, report, track, out = fly_with_restriction(scenario, planner)
    assert out["result"]["result"] == "rerouted", [(e.kind, e.message) for e in report.events]
    ev = next(e for e in report.events if e.kind == "rerouted")
    assert ev.data["restriction"] == r.zone.name and ev.data["extra_m"] > 0
    closest, inside = closest_approach_m(plan, r, [p for p in track if p[0] >= out["restriction_at_ms"]])
    print(f"\nsim reroute: closest approach {closest:.1f} m, extra {ev.data['extra_m']:.0f} m, "
          f"upload+verify {ev.data['upload_verify_vehicle_s']} s vehicle, hold+replan {ev.data['vehicle_s']} s vehicle")
    assert inside == 0 and closest > 0
    assert fence_has_exclusion(plan, r, out["fence"]), "the fence the vehicle holds does not exclude the restriction"
    assert report.outcome == "delivered", (report.outcome, [(e.kind, e.message) for e in report.events])
    assert report.drop_distance_m is not None and report.drop_distance_m < 5


def test_restriction_over_the_zone_brings_the_parcel_home(scenario, planner):
    plan, r, report, track, out = fly_with_restriction(scenario, planner, covers_zone=True)
    kinds = [e.kind for e in report.events]
    assert out["result"]["result"] == "rtl", kinds
    assert kinds.index("reroute_failed") < kinds.index("rtl")
    failed = next(e for e in report.events if e.kind == "reroute_failed")
    assert "no cleared route" in failed.message
    closest, inside = closest_approach_m(plan, r, [p for p in track if p[0] >= out["restriction_at_ms"]])
    print(f"\nsim no-route: closest approach {closest:.1f} m")
    assert inside == 0
    assert report.outcome == "returned_with_parcel", (report.outcome, kinds)
    assert report.parcel != "delivered" and report.drop_lat is None
    assert report.end_distance_from_hub_m is not None and report.end_distance_from_hub_m < 25


def test_an_upload_the_vehicle_refuses_brings_the_parcel_home_along_a_cleared_route(scenario, planner):
    """The new fence is refused (a polygon of two vertices: AC_PolyFence_loader::validate_fence): the reroute
    fails honestly and the vehicle returns with the parcel along a cleared route instead."""
    def wrap(fn):
        def plan_fn(here, seq, released, home):
            rr = fn(here, seq, released, home)
            if not home:
                vertex = next(it for it in rr.plan.fence if it.command == C.NAV_FENCE_POLYGON_VERTEX_EXCLUSION)
                rr.plan.fence = [vertex.with_(param1=2)] * 2 + rr.plan.fence[-1:]  # a "polygon" of two vertices
            return rr
        return plan_fn

    plan, r, report, track, out = fly_with_restriction(scenario, planner, wrap=wrap)
    kinds = [e.kind for e in report.events]
    assert out["result"]["result"] == "rtl", kinds
    failed = next(e for e in report.events if e.kind == "reroute_failed")
    assert "upload or verify failed" in failed.message, failed.message
    closest, inside = closest_approach_m(plan, r, [p for p in track if p[0] >= out["restriction_at_ms"]])
    assert inside == 0
    assert report.outcome == "returned_with_parcel", (report.outcome, kinds)


def test_no_route_at_all_holds_where_it_is_until_the_operator_decides(scenario, planner):
    """Neither the zone nor home can be reached on a cleared route: the vehicle holds (GUIDED, where it
    stopped) and says so; it stays put in vehicle time until the operator lands it."""
    from groundctl.errors import NoRouteError

    def wrap(fn):
        def plan_fn(here, seq, released, home):
            raise NoRouteError("start: boxed in by restrictions")
        return plan_fn

    async def after(flight, out):
        import asyncio

        s = flight.vehicle.state
        t0, here = s.time_boot_ms, (s.lat, s.lon)
        while s.time_boot_ms - t0 < 30_000:  # 30 vehicle seconds
            await asyncio.sleep(0.05)
        out["held_m"] = distance_m(s.lat, s.lon, *here)
        await flight.abort("land")

    plan, r, report, track, out = fly_with_restriction(scenario, planner, wrap=wrap, after=after)
    kinds = [e.kind for e in report.events]
    assert out["result"]["result"] == "holding", kinds
    assert kinds.index("reroute_failed") < kinds.index("holding") < kinds.index("aborted")
    assert out["held_m"] < 5.0, out["held_m"]
    assert report.drop_lat is None and report.parcel != "delivered"
