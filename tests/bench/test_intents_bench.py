"""Deconfliction cost as the number of accepted intents grows: one new intent checked against N, the
index arranged for N, and every pair audited; against brute force (every volume pair tested) in the same
run. CPU time, not wall time: the figures mean something on a busy machine.

    .venv/bin/python -m pytest -m bench tests/bench/test_intents_bench.py -s
"""

import random
import time

import pytest

from groundctl.core.intents import IntentIndex, build_intent, shape_of
from groundctl.core.plan import Parcel, build_plan
from groundctl.core.scenario import load_scenario
from groundctl.errors import GroundctlError
from tests.conftest import MISSIONS

pytestmark = pytest.mark.bench


def cpu(f):
    t = time.process_time()
    out = f()
    return time.process_time() - t, out


def test_deconfliction_scales_with_accepted_intents():
    sc = load_scenario(MISSIONS / "cmac")
    frame = sc.airspace.frame
    shapes = []
    for z in sc.zones:
        try:
            shapes.append(shape_of(build_plan(sc.airspace, sc.fleet, "cmac", z, Parcel(mass_kg=1.0)), frame))
        except GroundctlError:
            continue  # the example set has zones made to be refused
    assert len(shapes) >= 2
    rng = random.Random(1)
    rows = []
    for n in (50, 500, 1000, 5000):
        # a day of flights from the hub: departures spread so that most do not overlap in time
        its = [build_intent(str(i), rng.choice(shapes), rng.uniform(0, 86400.0)) for i in range(n)]
        index = IntentIndex(its)
        t_index, _ = cpu(index._build)
        probe = build_intent("new", rng.choice(shapes), 43200.0)
        t_check, got = cpu(lambda: index.conflicts(probe))
        # the peer: test every volume of the new intent against every accepted volume
        t_brute, brute = cpu(lambda: [(v.label, k) for v in probe.volumes for k, it in index.intents.items()
                                      for o in it.volumes if v.meets(o)])
        assert {(c.mine, c.other_key) for c in got} == set(brute)
        t_pairs, _ = cpu(index.all_conflicts)
        vols = sum(len(i.volumes) for i in its)
        rows.append((n, vols, t_index * 1e3, t_check * 1e3, t_brute * 1e3, t_brute / max(t_check, 1e-6), t_pairs))
    print("\nintents  volumes  index ms  check ms  brute ms  brute/check  all pairs s")
    for r in rows:
        print(f"{r[0]:7d}  {r[1]:7d}  {r[2]:8.1f}  {r[3]:8.2f}  {r[4]:8.1f}  {r[5]:10.0f}x  {r[6]:10.2f}")
