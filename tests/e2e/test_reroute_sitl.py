"""Reroute in flight against real ArduPilot SITL (arducopter), when ARDUPILOT_SITL is set (issue 11, item 3).

What the reroute relies on, from ArduPilot's source (see DeliveryFlight.reroute): GUIDED holds while the
fence (replaced whole by AC_PolyFence_loader::write_fence at the end of its transfer) and the mission (item
by item, AP_Mission::replace_cmd) are uploaded and read back; DO_SET_MISSION_CURRENT outside AUTO only moves
the index (AP_Mission::set_current_cmd with the mission stopped) and AUTO resumes there. Judged on the
positions the vehicle reported, in its own time (time_boot_ms)."""

import os
import shutil

import pytest

from groundctl.core.plan import Parcel, build_plan
from groundctl.runtime.link import MavLink
from groundctl.runtime.sitl import delivery_params, start_sitl
from tests.e2e.conftest import NEEDS_SITL, run
from tests.e2e.reroute_helpers import (closest_approach_m, fence_has_exclusion, fly_and_restrict, plan_fn_for,
                                       restriction_across)

pytestmark = [pytest.mark.sitl, pytest.mark.timeout(1200), NEEDS_SITL]

SPEEDUP = float(os.environ.get("GROUNDCTL_SITL_SPEEDUP", "5"))


def fly_sitl(scenario, planner, *, covers_zone=False):
    plan = build_plan(scenario.airspace, scenario.fleet, "cmac", scenario.zone("lab-south"), Parcel(mass_kg=1.0),
                      method="payload_place", planner=planner)
    feature, r = restriction_across(plan, covers_zone=covers_zone)
    h = plan.hub
    sitl = start_sitl(h.lat, h.lon, h.elevation_m, h.heading_deg, speedup=SPEEDUP, params=delivery_params(plan))

    async def main():
        link = await MavLink(sitl.url).open(timeout_s=60.0)
        try:
            return await fly_and_restrict(plan, link, plan_fn_for(scenario, plan, r), r, ready_timeout_s=180)
        finally:
            await link.close()

    try:
        report, track, out = run(main(), timeout=1150)
    finally:
        sitl.stop()
        shutil.rmtree(sitl.workdir, ignore_errors=True)
    return plan, r, report, track, out


def test_sitl_reroute_around_a_new_restriction(scenario, planner):
    plan, r, report, track, out = fly_sitl(scenario, planner)
    kinds = [(e.kind, e.message) for e in report.events]
    assert out["result"]["result"] == "rerouted", kinds
    ev = next(e for e in report.events if e.kind == "rerouted")
    closest, inside = closest_approach_m(plan, r, [p for p in track if p[0] >= out["restriction_at_ms"]])
    print(f"\nSITL reroute: closest approach {closest:.1f} m, extra {ev.data['extra_m']:.0f} m, "
          f"upload+verify {ev.data['upload_verify_vehicle_s']} s vehicle, hold+replan {ev.data['vehicle_s']} s vehicle, "
          f"outcome {report.outcome}")
    assert inside == 0 and closest > 0
    assert fence_has_exclusion(plan, r, out["fence"]), "the fence SITL holds does not exclude the restriction"
    assert report.outcome == "delivered", (report.outcome, kinds)
    assert report.drop_distance_m is not None and report.drop_distance_m < 5


def test_sitl_restriction_over_the_zone_brings_the_parcel_home(scenario, planner):
    plan, r, report, track, out = fly_sitl(scenario, planner, covers_zone=True)
    kinds = [e.kind for e in report.events]
    assert out["result"]["result"] == "rtl", kinds
    assert kinds.index("reroute_failed") < kinds.index("rtl")
    closest, inside = closest_approach_m(plan, r, [p for p in track if p[0] >= out["restriction_at_ms"]])
    print(f"\nSITL no-route: closest approach {closest:.1f} m, outcome {report.outcome}")
    assert inside == 0
    assert report.outcome == "returned_with_parcel", (report.outcome, kinds)
    assert report.drop_lat is None
    assert report.end_distance_from_hub_m is not None and report.end_distance_from_hub_m < 25
