"""The same deliveries against real ArduPilot SITL (arducopter), when ARDUPILOT_SITL names the binary.

groundctl never builds ArduPilot: build it by ArduPilot's BUILD.md and export ARDUPILOT_SITL.
"""

import os
import shutil

import pytest

from pymavlink.dialects.v20 import ardupilotmega as mavlink

from groundctl.core.plan import Parcel, build_plan
from groundctl.core.scenario import load_scenario
from groundctl.runtime.fly import DeliveryFlight
from groundctl.runtime.sitl import delivery_params, start_sitl
from tests.conftest import MISSIONS
from tests.e2e.conftest import NEEDS_SITL, run

pytestmark = [
    pytest.mark.sitl,
    pytest.mark.timeout(900),
    NEEDS_SITL,
]

SPEEDUP = float(os.environ.get("GROUNDCTL_SITL_SPEEDUP", "5"))


def fly_sitl(plan, speedup=None, seen=None, **kw):
    """Start SITL as `fly --sitl` does (the airframe's frame, its battery) and fly the plan.
    `seen`, a dict, gets the flight, the SITL model and the vehicle state for assertions."""
    h = plan.hub
    sitl = start_sitl(h.lat, h.lon, h.elevation_m, h.heading_deg, speedup=speedup or SPEEDUP,
                      params=delivery_params(plan))
    flight = DeliveryFlight(plan, sitl.url, ready_timeout_s=180, **kw)
    try:
        return run(flight.run(), timeout=850)
    finally:
        if seen is not None:
            seen.update(flight=flight, model=sitl.model)
        sitl.stop()
        shutil.rmtree(sitl.workdir, ignore_errors=True)


def texts_of(report):
    return [(e.kind, e.message) for e in report.events]


@pytest.mark.parametrize("method", ["payload_place", "gripper", "winch"])
def test_sitl_delivery(make_plan, method):
    plan = make_plan(zone="lab-south", method=method)
    stages = []
    seen = {}
    r = fly_sitl(plan, on_stage=stages.append, seen=seen)
    print(f"SITL {method:14s} {r.outcome} drop {r.drop_distance_m} m, flight {r.flight_time_s} s "
          f"(model {seen['model']}; params {sorted(k for k in plan.params if k.startswith(('GRIP', 'WINCH', 'SERVO')))})")
    assert r.outcome == "delivered", (texts_of(r), stages)
    k = [e.kind for e in r.events]
    for phase in ("uploaded", "armed", "taking_off", "en_route", "at_zone", "released", "returning", "landed"):
        assert phase in k, (phase, k)
    assert r.drop_distance_m < plan.zone.clear_radius_m, r.drop_distance_m
    # the gripper has to be enabled and the autopilot rebooted for it: that must have happened
    assert any("reboot" in s for s in stages), stages


def test_sitl_heavy_parcel_flies_the_hexa_it_was_planned_for(make_plan):
    """2.5 kg is more than the quad carries: the plan says it chose the hexa, and SITL flies a hexa."""
    plan = make_plan(zone="farm-north", method="winch", kg=2.5)
    assert plan.airframe.name == "hexa-heavy" and any("quad-x-delivery cannot carry" in w for w in plan.warnings)
    seen = {}
    r = fly_sitl(plan, seen=seen)
    assert seen["model"] == "hexax"
    # ArduCopter reports its frame in the heartbeat (get_frame_mav_type): FRAME_CLASS 2 is a hexarotor
    assert seen["flight"].vehicle.state.vehicle_type == mavlink.MAV_TYPE_HEXAROTOR
    assert r.outcome == "delivered", texts_of(r)


def test_sitl_muhanga_default_winch_delivery():
    """muhanga's operations drop by winch: its plan must arm and deliver on ArduPilot."""
    sc = load_scenario(MISSIONS / "muhanga")
    plan = build_plan(sc.airspace, sc.fleet, sc.fleet.hubs[0].name, sc.zone("pharmacy-south"), Parcel(mass_kg=1.0))
    assert plan.method == "winch"
    r = fly_sitl(plan, speedup=max(SPEEDUP, 10))
    assert r.outcome == "delivered", texts_of(r)
    assert r.drop_distance_m < plan.zone.clear_radius_m


def test_sitl_operator_abort_returns_with_parcel(make_plan):
    """Operator abort mid-route: RTL, parcel kept, landed."""
    plan = make_plan(zone="clinic-east")
    flight = None

    async def main():
        nonlocal flight
        import asyncio

        flight = DeliveryFlight(plan, url, ready_timeout_s=180)
        task = asyncio.create_task(flight.run())
        while not any(e.kind == "en_route" for e in flight.events):
            if task.done():
                break
            await asyncio.sleep(0.5)
        await asyncio.sleep(5)
        await flight.abort("rtl")
        return await task

    h = plan.hub
    sitl = start_sitl(h.lat, h.lon, h.elevation_m, h.heading_deg, speedup=SPEEDUP, params=delivery_params(plan))
    url = sitl.url
    try:
        r = run(main(), timeout=850)
    finally:
        sitl.stop()
        shutil.rmtree(sitl.workdir, ignore_errors=True)
    k = [e.kind for e in r.events]
    assert "aborted" in k and "released" not in k, texts_of(r)
    assert r.outcome == "aborted" and k[-1] == "landed", texts_of(r)
