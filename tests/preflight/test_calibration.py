"""Energy an operator can calibrate: spec-sheet hover endurance, flown flights, the cold, thin air."""

from __future__ import annotations

import math

import pytest

from groundctl.core.calibration import (MIN_MARGIN, UNCALIBRATED_MARGIN, FlightEnergy, calibrate, phase_table,
                                        uncalibrated)
from groundctl.core.energy import hover_power_w, plan_energy
from groundctl.core.fleet import Airframe, parse_fleet
from groundctl.core.preflight import preflight
from groundctl.core.rotor import (COLD_DERATING, DEFAULT_EFFICIENCY, air_density, battery_temperature_factor,
                                  fit_hover_efficiency)
from groundctl.core.weather import weather_from_values
from groundctl.errors import InputError

from .conftest import NOW

SEA = air_density(0, 15)

# DJI Matrice 100 spec sheet, hovering 100 % -> 0 % at sea level: TB47D 99.9 Wh, 2355 g, 22 min; 1 kg payload 13 min
M100 = dict(name="m100", empty_mass_kg=2.355, max_payload_kg=1.0, max_takeoff_mass_kg=3.6, battery_wh=99.9,
            rotor_count=4, rotor_diameter_m=0.3302, cruise_speed_mps=10, max_speed_mps=17)
M100_POINTS = ({"takeoff_mass_kg": 2.355, "minutes": 22.0}, {"takeoff_mass_kg": 3.355, "minutes": 13.0})


def minutes(a: Airframe, mass: float) -> float:
    return a.battery_wh / hover_power_w(a, mass, SEA) * 60.0


def test_hover_endurance_from_the_spec_sheet_reproduces_it():
    a = Airframe(**M100, hover_endurance=M100_POINTS)
    assert minutes(a, 2.355) == pytest.approx(22.0, rel=0.05)
    assert minutes(a, 3.355) == pytest.approx(13.0, rel=0.05)
    assert "fitted to 2 hover endurance points" in a.efficiency_source
    # the same aircraft with a bigger battery: the efficiency carries over, the endurance scales
    big = Airframe(**{**M100, "battery_wh": 129.96, "empty_mass_kg": 2.431}, hover_endurance=(
        {"takeoff_mass_kg": 2.431, "minutes": 28.0, "battery_wh": 129.96},))
    assert big.efficiency == pytest.approx(a.efficiency, rel=0.05)


def test_figure_of_merit_overrides_and_the_default_is_conservative():
    expert = Airframe(**M100, hover_endurance=M100_POINTS, figure_of_merit=0.55)
    assert expert.efficiency == 0.55 and "figure_of_merit" in expert.efficiency_source
    unknown = Airframe(**M100)
    assert unknown.efficiency == DEFAULT_EFFICIENCY
    assert "DJI" in unknown.efficiency_source
    # the default never promises more hover time than the spec sheet of the airframe it comes from
    assert minutes(unknown, 2.355) < 22.0 and minutes(unknown, 3.355) < 13.0
    fitted = [fit_hover_efficiency([(m, t, wh, SEA)], n * math.pi * (d / 2) ** 2, 20.0).efficiency
              for m, t, wh, n, d in ((2.355, 22, 99.9, 4, 0.3302), (9.5, 32, 599.4, 6, 0.5334),
                                     (15.5, 16, 599.4, 6, 0.5334), (4.8, 34, 349.2, 4, 0.4318))]
    assert DEFAULT_EFFICIENCY < min(fitted)


def test_impossible_spec_sheet_is_refused_naming_the_field():
    with pytest.raises(InputError) as e:
        parse_fleet({"airframe": [{**M100, "hover_endurance": [{"takeoff_mass_kg": 2.355, "minutes": 220.0}]}]})
    assert "hover_endurance" in str(e.value) and "efficiency" in str(e.value)
    with pytest.raises(InputError) as e:
        parse_fleet({"airframe": [{**M100, "hover_endurance": [{"takeoff_mass_kg": 2.355, "minutes": -1}]}]})
    assert "minutes" in str(e.value)


def test_calibration_factor_and_margin():
    flights = [FlightEnergy("q", "sim", 50.0, 60.0), FlightEnergy("q", "sim", 100.0, 118.0),
               FlightEnergy("q", "sim", 80.0, 98.0), FlightEnergy("other", "sim", 10.0, 30.0),
               FlightEnergy("q", "sitl", 10.0, 30.0), FlightEnergy("q", "sim", 50.0, 1.0)]  # broken record
    cal = calibrate("q", "sim", flights)
    assert cal.flights == 3 and cal.ignored == 1
    assert cal.factor == pytest.approx(276.0 / 230.0)
    # three flights cannot show a 95th percentile: the margin is still close to the uncalibrated one
    assert MIN_MARGIN <= cal.margin <= UNCALIBRATED_MARGIN + 0.05
    many = [FlightEnergy("q", "sim", 100.0, 120.0 + (i % 3)) for i in range(20)]
    tight = calibrate("q", "sim", many)
    assert tight.margin == pytest.approx(MIN_MARGIN)  # scatter ~1 %: the floor
    assert uncalibrated("q").margin == UNCALIBRATED_MARGIN and not uncalibrated("q").calibrated


def test_phase_table_sums_per_phase():
    fl = [FlightEnergy("q", "sim", 10, 12, {"out": (4.0, 5.0), "back": (4.0, None)}),
          FlightEnergy("q", "sim", 10, 12, {"out": (6.0, 7.0)})]
    t = phase_table(fl)
    assert t["out"] == {"predicted_wh": 10.0, "used_wh": 12.0, "ratio": 1.2}
    assert t["back"]["used_wh"] is None


def test_verdict_uses_the_calibration_and_flags_an_uncalibrated_airframe(make_plan):
    plan = make_plan(1.2)
    w = weather_from_values(now=NOW, wind_mps=3, temp_c=15, visibility_m=10000, precip_mmph=0,
                            clouds="NSC", present_weather="none")
    raw = preflight(plan, w, now=NOW)
    assert raw.check("calibration").status == "warn" and "uncalibrated" in raw.check("calibration").message
    flown = calibrate(plan.airframe.name, "vehicle", [FlightEnergy(plan.airframe.name, "vehicle", 50, 75)] * 3)
    cal = preflight(plan, w, now=NOW, calibration=flown)
    assert cal.check("calibration").status == "pass"
    assert cal.energy.needed_wh == pytest.approx(raw.energy.model_wh * 1.5)
    assert cal.energy.margin_wh < raw.energy.margin_wh


def test_a_calibration_that_says_the_airframe_draws_more_turns_go_into_no_go(make_plan):
    plan = make_plan(1.2, zone="farm-north")
    w = weather_from_values(now=NOW, wind_mps=3, temp_c=15, visibility_m=10000, precip_mmph=0,
                            clouds="NSC", present_weather="none")
    assert preflight(plan, w, now=NOW).check("energy").status != "fail"
    e = plan_energy(plan, w)
    factor = (e.usable_wh - e.reserve_wh) / e.model_wh  # flights showing it needs all of the budget and more
    hungry = calibrate(plan.airframe.name, "vehicle", [FlightEnergy(plan.airframe.name, "vehicle", 10, 10 * factor)] * 3)
    assert preflight(plan, w, now=NOW, calibration=hungry).check("energy").status == "fail"


def test_cold_battery_holds_less():
    assert battery_temperature_factor(None) == 1.0
    assert battery_temperature_factor(25) == 1.0
    assert battery_temperature_factor(-30) == COLD_DERATING[0][1]
    assert battery_temperature_factor(-10) < battery_temperature_factor(0) < battery_temperature_factor(10) < 1.0


def test_cold_turns_a_tight_flight_into_no_go(make_plan):
    plan = make_plan(1.2, zone="farm-north")
    def at(t):
        return preflight(plan, weather_from_values(now=NOW, wind_mps=2, temp_c=t, visibility_m=10000,
                                                   precip_mmph=0, clouds="NSC", present_weather="none"), now=NOW)
    warm, cold = at(20), at(-15)
    assert cold.energy.usable_wh == pytest.approx(warm.energy.usable_wh * battery_temperature_factor(-15), rel=1e-6)
    assert "cold" in cold.check("energy").message


def test_thin_hot_air_lowers_the_takeoff_mass_limit(make_plan):
    a = make_plan(1.2).airframe
    assert a.max_takeoff_mass_at(SEA) == pytest.approx(a.max_takeoff_mass_kg)
    hot_high = air_density(2500, 35)
    assert a.max_takeoff_mass_at(hot_high) == pytest.approx(a.max_takeoff_mass_kg * hot_high / SEA, rel=1e-4)
    # the maker's own figure wins over the scaling
    own = Airframe(**{**a.model_dump(exclude={"takeoff_mass_limits", "hover_endurance"}),
                      "takeoff_mass_limits": [{"elevation_m": 3000, "max_takeoff_mass_kg": 5.5}]})
    assert own.max_takeoff_mass_at(air_density(3000)) == pytest.approx(5.5)
    assert a.max_takeoff_mass_at(air_density(3000)) < 5.5


def test_hot_and_high_heavy_parcel_is_no_go_on_mass(make_plan):
    plan = make_plan(1.9)
    hot = weather_from_values(now=NOW, wind_mps=1, temp_c=45, visibility_m=10000, precip_mmph=0,
                              clouds="NSC", present_weather="none")
    v = preflight(plan, hot, now=NOW)
    c = v.check("takeoff_mass")
    assert c.status == "fail" and "air density" in c.message
