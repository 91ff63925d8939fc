"""An operational intent must contain the flight it was made for: checked against what the built-in
simulator and ArduPilot SITL actually flew, position by position, in the vehicle's own time.

Deconfliction only keeps our drones apart if each drone stays inside its own reserved volumes; core's
tests show the volumes of accepted intents never meet, these show the vehicles keep to them."""

import asyncio
import os
import shutil

import pytest
from shapely.geometry import Point

from groundctl.core.intents import IntentParams, build_intent, shape_of
from groundctl.runtime.fly import DeliveryFlight
from groundctl.runtime.sitl import delivery_params, start_sitl
from sim.launch import start_sim
from tests.e2e.conftest import NEEDS_SITL, run, sim_args

pytestmark = pytest.mark.timeout(900)


def recorder(holder: dict, samples: list):
    def on_progress(p):
        f = holder.get("flight")
        if f is None or f.monitor is None or p.lat is None or p.alt_rel_m is None:
            return
        t = f.monitor.vehicle_time(asyncio.get_running_loop().time()).timestamp()
        samples.append((t, p.lon, p.lat, p.alt_rel_m, p.phase))
    return on_progress


def outside(plan, frame, samples, params=IntentParams()):
    """The samples no volume of the intent contains, and the smallest time slack seen."""
    departure = samples[0][0]  # the first word from the vehicle: dispatch is no later than this
    intent = build_intent("t", shape_of(plan, frame), departure, params)
    bad, slack = [], float("inf")
    for t, lon, lat, alt_rel, phase in samples:
        if alt_rel < 1.0 or phase in ("preflight", "landed"):
            continue  # on the ground at the hub: no sky used
        pt = Point(frame.to_xy(lon, lat))
        amsl = plan.hub.elevation_m + alt_rel
        holders = [v for v in intent.volumes if v.time_start <= t <= v.time_end
                   and v.alt_lower_m - 1.0 <= amsl <= v.alt_upper_m + 1.0 and v.geometry.buffer(1.0).covers(pt)]
        if not holders:
            bad.append((round(t - departure, 1), phase, round(alt_rel, 1)))
        else:
            slack = min(slack, max(v.time_end - t for v in holders))
    return bad, slack, intent


def flown(plan, url_or_sim_args, sitl=None):
    samples, holder = [], {}
    flight = DeliveryFlight(plan, url_or_sim_args, on_progress=recorder(holder, samples),
                            **({"ready_timeout_s": 180} if sitl else {}))
    holder["flight"] = flight
    return run(flight.run(), timeout=850), samples


@pytest.mark.parametrize("zone,method", [("clinic-east", "payload_place"), ("lab-south", "winch")])
def test_sim_flight_stays_inside_its_intent(scenario, make_plan, zone, method):
    plan = make_plan(zone=zone, method=method)
    with start_sim(sim_args(plan)) as (_, urls):
        report, samples = flown(plan, urls[0])
    assert report.outcome == "delivered", [e.kind for e in report.events]
    bad, slack, intent = outside(plan, scenario.airspace.frame, samples)
    in_air = [s for s in samples if s[3] >= 1.0]
    print(f"\n{zone}/{method}: {len(in_air)} airborne samples over {samples[-1][0] - samples[0][0]:.0f} s of vehicle "
          f"time, {len(bad)} outside the intent's {len(intent.volumes)} volumes; least time slack {slack:.0f} s")
    assert len(in_air) > 40  # progress comes every few seconds of vehicle time
    assert bad == [], bad[:10]
    # the check can fail: an intent with no room for error does not hold the same flight
    tight = IntentParams(corridor_half_width_m=1.0, vertical_buffer_m=0.5, early_s=0, start_allowance_s=0,
                         late_s=0, late_fraction=0)
    assert outside(plan, scenario.airspace.frame, samples, tight)[0]


@NEEDS_SITL
@pytest.mark.sitl
def test_sitl_flight_stays_inside_its_intent(scenario, make_plan):
    plan = make_plan(zone="lab-south")
    h = plan.hub
    sitl = start_sitl(h.lat, h.lon, h.elevation_m, h.heading_deg,
                      speedup=float(os.environ.get("GROUNDCTL_SITL_SPEEDUP", "5")), params=delivery_params(plan))
    try:
        report, samples = flown(plan, sitl.url, sitl=True)
    finally:
        sitl.stop()
        shutil.rmtree(sitl.workdir, ignore_errors=True)
    assert report.outcome == "delivered", [(e.kind, e.message) for e in report.events]
    bad, slack, intent = outside(plan, scenario.airspace.frame, samples)
    print(f"\nSITL: {len(samples)} samples, {len(bad)} outside the intent; least time slack {slack:.0f} s")
    assert bad == [], bad[:10]
