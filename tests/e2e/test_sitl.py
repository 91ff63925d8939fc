"""The same deliveries against real ArduPilot SITL (arducopter), when ARDUPILOT_SITL names the binary.

groundctl never builds ArduPilot: build it by ArduPilot's BUILD.md and export ARDUPILOT_SITL.
"""

import os
import shutil

import pytest

from groundctl.runtime.fly import DeliveryFlight
from groundctl.runtime.sitl import delivery_params, start_sitl
from tests.e2e.conftest import run

pytestmark = [
    pytest.mark.sitl,
    pytest.mark.timeout(900),
    pytest.mark.skipif(not os.environ.get("ARDUPILOT_SITL"),
                       reason="ARDUPILOT_SITL is not set: no ArduPilot SITL binary to fly against "
                              "(build arducopter by ArduPilot's BUILD.md and export its path)"),
]

SPEEDUP = float(os.environ.get("GROUNDCTL_SITL_SPEEDUP", "5"))


def fly_sitl(plan, **kw):
    h = plan.hub
    sitl = start_sitl(h.lat, h.lon, h.elevation_m, h.heading_deg, speedup=SPEEDUP, params=delivery_params(plan))
    try:
        return run(DeliveryFlight(plan, sitl.url, ready_timeout_s=180, **kw).run(), timeout=850)
    finally:
        sitl.stop()
        shutil.rmtree(sitl.workdir, ignore_errors=True)


def texts_of(report):
    return [(e.kind, e.message) for e in report.events]


@pytest.mark.parametrize("method", ["payload_place", "gripper"])
def test_sitl_delivery(make_plan, method):
    plan = make_plan(zone="lab-south", method=method)
    stages = []
    r = fly_sitl(plan, on_stage=stages.append)
    assert r.outcome == "delivered", (texts_of(r), stages)
    k = [e.kind for e in r.events]
    for phase in ("uploaded", "armed", "taking_off", "en_route", "at_zone", "released", "returning", "landed"):
        assert phase in k, (phase, k)
    assert r.drop_distance_m < plan.zone.clear_radius_m, r.drop_distance_m
    # the gripper has to be enabled and the autopilot rebooted for it: that must have happened
    assert any("reboot" in s for s in stages), stages


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
