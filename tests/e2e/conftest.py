"""End-to-end fixtures: the built-in simulator as a separate process, over real loopback sockets."""

import asyncio
import os

import pytest

from groundctl.core.plan import Parcel, build_plan, make_planner
from groundctl.core.scenario import load_scenario
from groundctl.runtime.sim_args import sim_airframe_args
from tests.conftest import MISSIONS

SPEEDUP = 20
NEEDS_SITL = pytest.mark.skipif(not os.environ.get("ARDUPILOT_SITL"),
                                reason="ARDUPILOT_SITL is not set: no ArduPilot SITL binary to fly against "
                                       "(build arducopter by ArduPilot's BUILD.md and export its path)")


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
    return [*sim_airframe_args(plan), "--speedup", str(SPEEDUP), *extra]


def run(coro, timeout=480):
    # a guard against a hung flight, far beyond what a flight takes on a loaded machine: the tests judge
    # flights by what the vehicle did, never by how long they took here
    return asyncio.run(asyncio.wait_for(coro, timeout))
