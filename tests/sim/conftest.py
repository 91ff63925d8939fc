"""Fixtures: a simulator subprocess and a raw MAVLink client on its TCP port."""

import pytest

from sim.launch import start_sim
from tests.sim.mav import MavClient

@pytest.fixture
def sim_factory():
    handles = []

    def make(*args):
        h = start_sim(list(args))
        handles.append(h)
        return h

    yield make
    for h in handles:
        h.stop()


@pytest.fixture
def sim(sim_factory):
    return sim_factory("--speedup", "20", "--no-ekf-s", "2")


@pytest.fixture
def gcs(sim):
    c = MavClient(sim.urls[0])
    yield c
    c.close()
