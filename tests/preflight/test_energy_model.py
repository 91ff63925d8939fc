"""The energy model: momentum-theory sanity, validation against measured flights, wind, properties."""

from __future__ import annotations

import math
import statistics

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from groundctl.core.energy import (
    air_density,
    cruise_kinematics,
    flight_energy,
    hover_power_w,
    level_power_w,
    plan_energy,
    wind_components,
)
from groundctl.core.fleet import Airframe, Operations
from groundctl.core.rotor import battery_temperature_factor
from groundctl.core.plan import Leg
from groundctl.core.weather import Weather, WindLevel, weather_from_values

from .conftest import NOW

# -- validation against published measurements -------------------------------------------------------

# DJI Matrice 100 as flown by Rodrigues et al. Parameters and where each comes from:
#   rotors          4 x DJI 1345s (13 x 4.5 in): diameter 0.33 m                      [DJI M100 spec]
#   battery         TB48D, 5700 mAh, 22.8 V, 129.96 Wh                                [DJI M100 spec]
#   mass            2.431 kg aircraft with TB48D [DJI M100 spec] + about 0.37 kg for the added
#                   FT205 anemometer and mast, 3DM-GX5-45 INS, PL-200 current sensor, Raspberry Pi
#                   Zero + ADC and the package mount (our estimate; the paper lists these parts, we
#                   did not find their masses) = 2.8 kg without payload
#   efficiency      fitted to DJI's published hover endurance of the same aircraft, TB48D: 28 min at
#                   2.431 kg, 16 min with 1 kg payload (hovering 100 % -> 0 %, sea level): NOT fitted
#                   to the flight data (an earlier version hand-set a figure of merit of 0.38 by
#                   pairing the TB48D mass with the TB47D's 22 min)
#   drag area       0.10 m^2 (estimate: ~0.06 m^2 frontal body, plus the box hanging below and the
#                   anemometer mast; the simulator's own M100 check uses the same estimate)
#   avionics        15 W (estimate, includes the logging payload)
#   air             Pittsburgh, about 300 m AMSL, 20 degC (flights April-October 2019)
M100 = Airframe(name="dji-m100", empty_mass_kg=2.8, max_payload_kg=1.0, max_takeoff_mass_kg=3.6,
                battery_wh=129.96, rotor_count=4, rotor_diameter_m=0.3302, drag_area_m2=0.10,
                avionics_power_w=15, cruise_speed_mps=10, max_speed_mps=17,
                hover_endurance=({"takeoff_mass_kg": 2.431, "minutes": 28.0},
                                 {"takeoff_mass_kg": 3.431, "minutes": 16.0}))
PITTSBURGH_RHO = air_density(300, 20.0)


def test_m100_efficiency_from_dji_hover_time():
    """The one efficiency number comes from the manufacturer's hover endurance, not from the data
    set we then compare with: the fitted model gives the spec sheet back."""
    sea = air_density(0, 15)
    for mass, minutes in ((2.431, 28.0), (3.431, 16.0)):
        assert M100.battery_wh / hover_power_w(M100, mass, sea) * 60 == pytest.approx(minutes, rel=0.05)
    assert "fitted to 2 hover endurance points" in M100.efficiency_source


def test_m100_cruise_power_matches_measured_flights():
    """Rodrigues, Patrikar, Choudhry, Feldgoise, Arcot, Gahlaut, ... Scherer, Matthews, Samaras:
    "In-flight positional and energy use data set of a DJI Matrice 100 quadcopter for small package
    delivery", Scientific Data (2021), doi:10.1038/s41597-021-00930-x; data: CMU KiltHub,
    doi:10.1184/R1/12683453.v1. 209 flights at Pittsburgh, April-October 2019: payload 0, 250 and
    500 g (in a USPS Small Flat Rate Box), cruise ground speed 4, 6, 8, 10 and 12 m/s, cruise altitude
    25-100 m, battery current and voltage at ~5 Hz.

    Measured: cruise electrical power of roughly 400-500 W across those payloads and speeds. That band
    is the summary figure given for this data set in the go/no-go issue; the raw flights.csv could
    not be downloaded here to recompute it, so the tolerance below is deliberately loose.

    Model (parameters above, nothing fitted to these flights), over the 3 x 5 grid of payloads and
    speeds: mean 389 W, 14 % under the 450 W middle of the measured band, every point between 324 and
    466 W. A model read from the spec sheet is optimistic for this instrumented aircraft: that is what
    the uncalibrated margin and then the calibration from flown flights are for. Asserted: the grid
    mean within 15 % of 450 W, every point within 20 % of the band, and the payload ordering the
    measurements show (heavier draws more at every speed).
    """
    grid = {(pl, v): level_power_w(M100, M100.empty_mass_kg + pl, v, PITTSBURGH_RHO)
            for pl in (0.0, 0.25, 0.5) for v in (4, 6, 8, 10, 12)}
    mean = statistics.mean(grid.values())
    assert mean == pytest.approx(450, rel=0.15)
    assert all(400 * 0.8 <= p <= 500 * 1.2 for p in grid.values()), grid
    for v in (4, 6, 8, 10, 12):
        assert grid[(0.0, v)] < grid[(0.25, v)] < grid[(0.5, v)]


def test_hover_is_momentum_theory():
    a = M100
    rho = 1.225
    m = 3.0
    ideal = (m * 9.80665) ** 1.5 / math.sqrt(2 * rho * a.disk_area_m2)
    assert hover_power_w(a, m, rho) == pytest.approx(ideal / a.efficiency + a.avionics_power_w)
    assert level_power_w(a, m, 0.0, rho) == pytest.approx(hover_power_w(a, m, rho), rel=1e-6)


def test_power_curve_has_a_bucket():
    """Induced power falls with airspeed, parasitic power grows with its cube: a U-shaped curve."""
    p = [level_power_w(M100, 3.0, v, 1.2) for v in range(0, 31, 2)]
    i_min = p.index(min(p))
    assert 0 < i_min < len(p) - 1
    assert p[-1] > p[0]


def test_thin_hot_air_needs_more_power():
    assert air_density(0, 15) == pytest.approx(1.225, rel=2e-3)
    assert air_density(1850, 30) < air_density(584, 15) < air_density(0, -10)
    assert hover_power_w(M100, 3, air_density(1850, 30)) > hover_power_w(M100, 3, air_density(0, 15))


# -- wind geometry -----------------------------------------------------------------------------------


def test_wind_components():
    head, cross = wind_components(90, 10, 90)  # flying east into an easterly
    assert head == pytest.approx(10) and cross == pytest.approx(0, abs=1e-9)
    head, cross = wind_components(90, 10, 270)
    assert head == pytest.approx(-10)
    head, cross = wind_components(0, 10, 90)
    assert head == pytest.approx(0, abs=1e-9) and abs(cross) == pytest.approx(10)


def at(speed, d, rng=None):
    w = Weather(wind=(WindLevel(60, speed, d),), valid_time=NOW, source="t", wind_dir_range_deg=rng)
    return w.wind_at(60)


def test_cruise_kinematics_hold_track_then_slow_then_impossible(make_plan):
    a = make_plan().airframe  # cruise 12, max 18
    va, gs, *_ , ok = cruise_kinematics(a, 0, at(4, 0))
    assert (va, gs, ok) == (pytest.approx(16), 12, True)
    va, gs, *_ , ok = cruise_kinematics(a, 0, at(10, 0))
    assert va == 18 and gs == pytest.approx(8) and ok
    va, gs, *_ , ok = cruise_kinematics(a, 0, at(10, 90))  # pure cross wind: crab
    assert va == pytest.approx(math.hypot(12, 10)) and gs == 12 and ok
    *_, ok = cruise_kinematics(a, 0, at(17.5, 0))
    assert not ok
    va, gs, head, cross, ok = cruise_kinematics(a, 0, at(8, None))  # variable: on the nose
    assert head == 8 and gs == pytest.approx(10)
    _, _, head, _, _ = cruise_kinematics(a, 0, at(8, 60, (300, 60)))  # range spans the course
    assert head == pytest.approx(8)
    _, _, head, _, _ = cruise_kinematics(a, 0, at(8, 120, (90, 150)))  # nearest end of the range
    assert head == pytest.approx(8 * math.cos(math.radians(90)), abs=1e-9)


# -- the plan ----------------------------------------------------------------------------------------


def test_plan_energy_still_air(make_plan):
    plan = make_plan()
    e = plan_energy(plan, None)
    # no temperature given: the standard atmosphere's at the hub (11 degC at 584 m) derates the battery
    cold = battery_temperature_factor(15 - 0.0065 * 584)
    assert 0.9 < cold < 1.0
    assert e.usable_wh == pytest.approx(222 * 0.85 * cold)
    assert e.reserve_wh == pytest.approx(0.2 * 222 * 0.85 * cold)
    assert e.margin_wh == pytest.approx(e.usable_wh - e.reserve_wh - e.needed_wh - e.uncertainty_wh)
    assert e.uncertainty_wh == pytest.approx(0.15 * e.needed_wh)  # uncalibrated margin
    assert e.flight_time_s == pytest.approx(plan.nominal_time_s(), rel=1e-6)
    assert 30 < e.needed_wh < 100  # ~6 km and 11 min for a 4.6 kg quad
    assert e.max_payload_kg > plan.parcel.mass_kg
    assert e.max_radius_m > plan.route_out.length_m
    kinds = [le.leg.kind for le in e.legs]
    assert kinds.count("cruise") == sum(1 for leg in plan.legs if leg.kind == "cruise")
    d = e.to_dict()
    assert len(d["legs"]) == len(plan.legs) and d["margin_wh"] > 0


def test_headwind_slows_the_leg_and_costs_energy(make_plan):
    plan = make_plan()
    calm = plan_energy(plan, weather_from_values(now=NOW, wind_mps=0.0))
    windy = plan_energy(plan, weather_from_values(now=NOW, wind_mps=9.0, wind_dir_deg=45))
    assert windy.needed_wh > calm.needed_wh
    out = [le for le in windy.legs if le.leg.kind == "cruise" and le.leg.label == "out"]
    assert max(le.headwind_mps for le in out) > 9  # NE wind on the NE-bound leg, stronger at 60 m
    assert min(le.ground_speed_mps for le in out) < plan.airframe.cruise_speed_mps


def test_impossible_headwind(make_plan):
    e = plan_energy(make_plan(), weather_from_values(now=NOW, wind_mps=16.0, wind_dir_deg=45))
    assert e.infeasible_legs and not e.ok
    assert e.max_radius_m == 0
    assert math.isinf(e.margin_wh) and e.to_dict()["margin_wh"] is None


def test_reserve_is_the_larger_of_fraction_and_hover_time(make_plan):
    plan = make_plan()
    ops = Operations(reserve_fraction=0.05, reserve_min_s=600)
    e = flight_energy(plan.airframe, ops, plan.legs, None, elevation_m=584, cruise_alt_m=60)
    assert "600 s of hover" in e.reserve_basis
    assert e.reserve_wh == pytest.approx(e.hover_power_w * 600 / 3600)


# -- properties ------------------------------------------------------------------------------------

winds = st.tuples(st.floats(0, 12), st.floats(0, 359.9))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.floats(0.0, 3.0), st.floats(0.0, 3.0), winds)
def test_more_payload_never_needs_less_energy(make_plan, p1, p2, wind):
    plan = make_plan()
    w = weather_from_values(now=NOW, wind_mps=wind[0], wind_dir_deg=wind[1])
    lo, hi = sorted((p1, p2))
    legs_lo = [Leg(**{**leg.__dict__, "payload_kg": lo}) if leg.payload_kg > 0 else leg for leg in plan.legs]
    legs_hi = [Leg(**{**leg.__dict__, "payload_kg": hi}) if leg.payload_kg > 0 else leg for leg in plan.legs]
    e_lo = flight_energy(plan.airframe, plan.ops, legs_lo, w, elevation_m=584, cruise_alt_m=60, payload_kg=lo)
    e_hi = flight_energy(plan.airframe, plan.ops, legs_hi, w, elevation_m=584, cruise_alt_m=60, payload_kg=hi)
    if e_lo.ok and e_hi.ok:
        assert e_hi.needed_wh >= e_lo.needed_wh - 1e-9
    if e_hi.ok:
        assert e_lo.ok  # what a heavier parcel can do, a lighter one can


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.floats(0, 20), st.floats(0, 20), st.floats(0, 359.9), st.sampled_from([0.0, 1.2, 2.0]))
def test_more_wind_never_increases_the_max_radius(make_plan, w1, w2, d, payload):
    plan = make_plan()
    lo, hi = sorted((w1, w2))
    r = [flight_energy(plan.airframe, plan.ops, plan.legs, weather_from_values(now=NOW, wind_mps=s, wind_dir_deg=d),
                       elevation_m=584, cruise_alt_m=60, payload_kg=payload).max_radius_m for s in (lo, hi)]
    assert r[1] <= r[0] + 1e-6
