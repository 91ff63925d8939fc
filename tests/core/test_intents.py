"""Operational intents (core/intents.py): the index finds exactly the conflicts brute force finds,
deconfliction leaves no two intents in conflict, and an intent shrinks as its flight goes on."""

import itertools
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from shapely.geometry import box

from groundctl.core.intents import (FlightShape, IntentIndex, IntentParams, OperationalIntent, Volume4D, build_intent,
                                    deconflict, intent_from_json, intent_to_json, layers_for, shape_of)
from groundctl.core.plan import Parcel, build_plan


@pytest.fixture(scope="module")
def plans(scenario_cmac):
    sc = scenario_cmac
    return {z: build_plan(sc.airspace, sc.fleet, "cmac", sc.zone(z), Parcel(mass_kg=1.0))
            for z in ("clinic-east", "lab-south")}


@pytest.fixture(scope="module")
def scenario_cmac():
    from groundctl.core.scenario import load_scenario
    from tests.conftest import MISSIONS
    return load_scenario(MISSIONS / "cmac")


def brute(index: IntentIndex, intent: OperationalIntent) -> set[tuple[str, str, str]]:
    return {(v.label, k, o.label) for v in intent.volumes for k, it in index.intents.items() if k != intent.key
            for o in it.volumes if v.meets(o)}


vol = st.builds(lambda x, y, w, h, a, da, t, dt: Volume4D(box(x, y, x + w, y + h), a, a + da, t, t + dt, f"{x:.0f}"),
                st.floats(0, 1000), st.floats(0, 1000), st.floats(1, 300), st.floats(1, 300), st.floats(0, 120),
                st.floats(1, 60), st.floats(0, 3000), st.floats(1, 600))


@settings(max_examples=60, deadline=None)
@given(st.lists(st.lists(vol, min_size=1, max_size=6), min_size=1, max_size=12), st.lists(vol, min_size=1, max_size=6))
def test_index_finds_exactly_the_conflicts_brute_force_finds(others, mine):
    index = IntentIndex(OperationalIntent(str(i), v) for i, v in enumerate(others))
    new = OperationalIntent("new", mine)
    got = {(c.mine, c.other_key, c.other) for c in index.conflicts(new)}
    assert got == brute(index, new)
    assert bool(index.conflicts(new, first_only=True)) == bool(got)


def test_intent_contains_the_whole_plan_in_order(plans, scenario_cmac):
    plan = plans["clinic-east"]
    it = build_intent("1", shape_of(plan, scenario_cmac.airspace.frame), 1000.0, IntentParams(start_allowance_s=0))
    labels = [v.label for v in it.volumes]
    assert labels[0] == "climb at hub" and labels[-1] == "landing at hub" and "at zone" in labels
    # windows run forward in time and cover the nominal flight with its uncertainty
    assert it.time_start == pytest.approx(1000.0 - IntentParams().early_s)
    assert it.time_end >= 1000.0 + plan.nominal_time_s()
    starts = [v.time_start for v in it.volumes]
    assert starts == sorted(starts)
    # the corridor is cut in pieces of at most 400 m so each piece holds its sky only briefly
    legs = [v for v in it.volumes if v.label.startswith("leg")]
    assert len(legs) >= plan.distance_m / 400.0
    assert all(v.time_end - v.time_start < 400 for v in legs)


def test_round_trip_through_json_keeps_the_volumes(plans, scenario_cmac):
    frame = scenario_cmac.airspace.frame
    it = build_intent("7", shape_of(plans["lab-south"], frame), 5000.0)
    back = intent_from_json(intent_to_json(it, frame), frame)
    assert [v.label for v in back.volumes] == [v.label for v in it.volumes]
    for a, b in zip(it.volumes, back.volumes):
        # lon/lat rounded to 1e-7 degrees (about a centimetre) along the outline
        assert a.geometry.symmetric_difference(b.geometry).area < 0.02 * a.geometry.length
        assert (a.time_start, a.time_end, a.alt_lower_m) == (b.time_start, b.time_end, b.alt_lower_m)


def test_second_flight_from_the_hub_is_deconflicted_and_no_pair_conflicts(plans, scenario_cmac):
    frame = scenario_cmac.airspace.frame
    shapes = {alt: shape_of(plans["clinic-east"], frame) for alt in (60.0,)}
    index = IntentIndex([build_intent("1", shapes[60.0], 0.0)])

    def shape_at(alt):
        base = shape_of(plans["lab-south"], frame)
        return FlightShape(**{**base.__dict__, "cruise_alt_m": alt})

    d = deconflict(index, "2", 0.0, layers_for(60.0, 15.0, 30.0, 3), shape_at)
    assert d.ok and d.conflicts, d  # it did meet the first flight as planned (both climb at the hub together)
    assert d.delay_s > 0 and "later" in d.reason
    index.put(d.intent)
    assert index.all_conflicts() == []
    # the same flight again, with no room to wait and one layer: refused, naming both deliveries it meets
    r = deconflict(index, "3", 0.0, [60.0], shape_at, max_delay_s=0.0)
    assert not r.ok and r.intent is None
    assert "1" in r.reason and "2" in r.reason and "every layer" in r.reason


def test_lower_layer_clears_crossing_routes_without_waiting():
    a = OperationalIntent("a", [Volume4D(box(0, -20, 1000, 20), 50, 70, 0, 600, "east-west")])
    index = IntentIndex([a])

    def shape_at(alt):
        return FlightShape(hub_xy=(500, -800), zone_xy=(500, 800), route_out_xy=[(500, -800), (500, 800)],
                           route_back_xy=[(500, 800), (500, -800)], hub_elevation_m=0.0, zone_ground_amsl_m=0.0,
                           cruise_alt_m=alt, cruise_speed_mps=10.0, climb_s=10, at_zone_s=30, landing_s=10)

    d = deconflict(index, "b", 100.0, [60.0, 35.0], shape_at, params=IntentParams(corridor_half_width_m=10))
    assert d.ok and d.delay_s == 0 and d.cruise_alt_m == 35.0, d.reason
    assert "cruise at 35 m" in d.reason


def test_intent_shrinks_behind_the_vehicle_and_ends(plans, scenario_cmac):
    it = build_intent("1", shape_of(plans["clinic-east"], scenario_cmac.airspace.frame), 0.0)
    half = plans["clinic-east"].distance_m / 2
    later = it.shrink(flown_m=half)
    assert later.state == "activated" and 0 < len(later.volumes) < len(it.volumes)
    assert all(v.until_m >= half for v in later.volumes)
    assert it.shrink(now=it.time_end + 1).volumes == []
    index = IntentIndex([it])
    index.put(OperationalIntent("1", it.volumes, "ended"))
    assert len(index) == 0


def test_layers_go_down_from_the_planned_height_and_stop_at_the_lowest():
    assert layers_for(60, 15, 30, 3) == [60, 45, 30]
    assert layers_for(60, 15, 40, 5) == [60, 45]
    assert layers_for(60, 15, 30, 1) == [60]


def test_five_hundred_intents_checked_quickly_enough_to_report(plans, scenario_cmac):
    """Not a timed assertion: the figure is reported, the check is that it ran over 500 intents."""
    frame = scenario_cmac.airspace.frame
    shape = shape_of(plans["clinic-east"], frame)
    index = IntentIndex(build_intent(str(i), shape, i * 3600.0) for i in range(500))
    new = build_intent("new", shape, 250 * 3600.0 + 60)
    t0 = time.process_time()
    index.conflicts(new)  # the first check arranges the index
    t1 = time.process_time()
    got = index.conflicts(new)
    t2 = time.process_time()
    assert {c.other_key for c in got} == {"250"}
    print(f"\n500 intents ({sum(len(i.volumes) for i in index.intents.values())} volumes): index {(t1 - t0) * 1000:.1f} ms, "
          f"one check {(t2 - t1) * 1000:.1f} ms CPU")
