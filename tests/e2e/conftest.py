"""End-to-end fixtures: the built-in simulator as a separate process, over real loopback sockets."""

import asyncio

import pytest

from groundctl.core.plan import Parcel, build_plan, make_planner
from groundctl.core.scenario import load_scenario
from tests.conftest import MISSIONS

SPEEDUP = 20


@pytest.fixture(scope="session")
def scenario():
    return load_scenario(MISSIONS / "cmac")


@pytest.fixture(scope="session")
def planner(scenario):
    return make_planner(scenario.airspace, scenario.fleet.hub("cmac"), scenario.fleet.operations)


@pytest.fixture
def make_plan(scenario, planner):
    def make(zone="clinic-east", method="payload_place", kg=1.2):
        return build_plan(scenario.airspace, scenario.fleet, "cmac", scenario.zone(zone), Parcel(mass_kg=kg),
                          method=method, planner=planner)
    return make


def sim_args(plan, *extra):
    h = plan.hub
    return [f"--home={h.lat},{h.lon},{h.elevation_m},{h.heading_deg}", "--speedup", str(SPEEDUP),
            "--payload-kg", str(plan.parcel.mass_kg), "--battery-wh", str(plan.airframe.battery_wh),
            "--mass-kg", str(plan.airframe.empty_mass_kg), *extra]


def run(coro, timeout=240):
    return asyncio.run(asyncio.wait_for(coro, timeout))
