"""The simulator's power model against public figures, and the battery the autopilot reports.

Hover endurance is read here as a spec sheet's figure is measured: nominal battery energy divided
by the hover electrical power (still air, sea level, full to empty). The model's constants are
textbook values except the blade profile drag Cd0, set once by least squares on the DJI Matrice
100's four points (0.036, rounded to 0.035); the Matrice 600 Pro, the Matrice 210 V2 and the
measured M100 cruise power are out-of-sample checks. See sim/power.py for every source.
"""

from __future__ import annotations

import statistics

import pytest
from pymavlink.dialects.v20 import ardupilotmega as M

from sim import power
from sim.battery import cold_capacity_factor, terminal_current
from sim.cli import build_parser
from tests.sim.mav import MavClient

SEA_LEVEL_HOME = "-35.363261,149.165230,0,353"
ISA_SL = power.air_density(0.0)

# DJI spec sheets (specs tabs of dji.com/matrice100, dji.com/matrice600-pro and
# dji.com/matrice-200-series-v2; "hovering time" measured hovering at sea level in still air).
# name, rotors, rotor diameter (m), take-off mass (kg), battery (Wh), hover time (min)
SPEC_SHEETS = [
    # Matrice 100: 4 x 13 in (DJI 1345) props; 2355 g with one TB47D (99.9 Wh), 2431 g with one
    # TB48D (129.96 Wh); hover 22 / 28 min without payload, 13 / 16 min with 1 kg
    ("M100 TB47D, no payload", 4, 0.3302, 2.355, 99.9, 22.0),
    ("M100 TB47D, 1 kg", 4, 0.3302, 3.355, 99.9, 13.0),
    ("M100 TB48D, no payload", 4, 0.3302, 2.431, 129.96, 28.0),
    ("M100 TB48D, 1 kg", 4, 0.3302, 3.431, 129.96, 16.0),
    # Matrice 600 Pro: hexa, 21 in (2170) props, six TB47S (99.9 Wh each), 9.5 kg; hover 32 min
    # without payload, 16 min with 6 kg (15.5 kg, the maximum take-off weight)
    ("M600 Pro 6 x TB47S, no payload", 6, 0.5334, 9.5, 599.4, 32.0),
    ("M600 Pro 6 x TB47S, 6 kg", 6, 0.5334, 15.5, 599.4, 16.0),
    # Matrice 210 V2: 17 in (1760S) props, two TB55 (174.6 Wh each), 4.8 kg with both; hover
    # 34 min without payload, 24 min at the 6.14 kg maximum take-off weight
    ("M210 V2 2 x TB55, no payload", 4, 0.4318, 4.8, 349.2, 34.0),
    ("M210 V2 2 x TB55, full payload", 4, 0.4318, 6.14, 349.2, 24.0),
]


@pytest.mark.parametrize("name,rotors,diameter,mass,wh,spec_min", SPEC_SHEETS,
                         ids=[s[0] for s in SPEC_SHEETS])
def test_hover_endurance_matches_dji_spec_sheets(name, rotors, diameter, mass, wh, spec_min):
    """Within 15 %: the spread of DJI's own figures. The M100's two packs give efficiencies 4 %
    apart, and a pack's usable energy varies by that much with age and temperature.
    Measured here (Cd0 0.035): M100 -3/+4/-0/+2 %, M600 Pro +5/+1 %, M210 V2 +4/+3 %."""
    af = power.Airframe(mass_kg=mass, rotors=rotors, rotor_diameter_m=diameter)
    minutes = power.hover_endurance_min(af, ISA_SL, mass, wh)
    assert minutes == pytest.approx(spec_min, rel=0.15), f"{name}: {minutes:.1f} min"


def test_spec_sheet_fit_is_not_one_sided():
    """A model tuned to one airframe that missed the others would err the same way on all of
    them; across the eight points the errors stay small and on both sides of zero on the M100."""
    errs = []
    for _, rotors, diameter, mass, wh, spec_min in SPEC_SHEETS:
        af = power.Airframe(mass_kg=mass, rotors=rotors, rotor_diameter_m=diameter)
        errs.append(power.hover_endurance_min(af, ISA_SL, mass, wh) / spec_min - 1)
    assert max(abs(e) for e in errs) < 0.10, errs
    assert abs(statistics.mean(errs)) < 0.05, errs


def test_m100_cruise_power_against_rodrigues_2021():
    """Rodrigues et al., "In-flight positional and energy use data set of a DJI Matrice 100
    quadcopter for small package delivery", Scientific Data 8 (2021) 155,
    doi:10.1038/s41597-021-00930-x: 209 flights near Pittsburgh (about 300 m AMSL, April-October),
    payload 0 / 250 / 500 g, commanded cruise 4-12 m/s; measured cruise electrical power roughly
    400-500 W. Aircraft: M100 with TB48D (2.431 kg) plus about 0.37 kg of sensors, mast and
    package mount = 2.8 kg without payload (the estimate tests/preflight/test_energy_model.py
    documents); drag area 0.1 m^2 for the frame, the anemometer mast and the hanging box
    (an estimate, nothing fitted to these flights).

    Result: the sim's grid (3 payloads x 5 speeds) spans 318-455 W, mean 380 W: under the middle
    of the measured band by 16 %. That gap is not closed on purpose: the same model matches DJI's
    hover spec within 5 % for this aircraft, and the spec itself implies about 345 W to hover at
    2.8 kg, so the research vehicle drew more than a showroom M100. Asserted: the grid mean within
    20 % of 450 W, every point within 25 % of the band, and the orderings the measurements show
    (a heavier parcel draws more at every speed; the power curve has its bucket inside 4-12 m/s).
    """
    af = power.Airframe(mass_kg=2.8, rotors=4, rotor_diameter_m=0.3302, drag_area_m2=0.10)
    rho = power.air_density(300.0, 20.0)
    grid = {(pl, v): power.flight_power_w(af, rho, 2.8 + pl, v)
            for pl in (0.0, 0.25, 0.5) for v in (4, 6, 8, 10, 12)}
    assert statistics.mean(grid.values()) == pytest.approx(450, rel=0.20)
    assert all(400 * 0.75 <= p <= 500 * 1.25 for p in grid.values()), grid
    for v in (4, 6, 8, 10, 12):
        assert grid[(0.0, v)] < grid[(0.25, v)] < grid[(0.5, v)]
    for pl in (0.0, 0.25, 0.5):
        curve = [grid[(pl, v)] for v in (4, 6, 8, 10, 12)]
        assert curve.index(min(curve)) in (1, 2, 3), curve


def test_hot_and_high_costs_power():
    """ISA: 1.225 kg/m^3 at sea level and 15 degC; Muhanga (1850 m) at 30 degC is about 24 %
    thinner, and hover power grows roughly as 1 / sqrt(rho)."""
    assert power.air_density(0.0) == pytest.approx(1.225, rel=1e-3)
    assert power.air_density(1850.0, 30.0) == pytest.approx(0.93, rel=0.01)
    af = power.Airframe(mass_kg=3.4, rotors=4, rotor_diameter_m=0.46)
    sea = power.hover_power_w(af, power.air_density(0.0, 15.0), 3.4)
    hot_high = power.hover_power_w(af, power.air_density(1850.0, 30.0), 3.4)
    assert hot_high / sea == pytest.approx((1.225 / power.air_density(1850.0, 30.0)) ** 0.5, rel=0.03)
    assert hot_high > 1.1 * sea


def test_efficiency_multiplier_scales_the_whole_draw():
    af = power.Airframe(mass_kg=3.4, rotors=4, rotor_diameter_m=0.46)
    worse = power.Airframe(mass_kg=3.4, rotors=4, rotor_diameter_m=0.46, efficiency=0.8)
    for v in (0.0, 12.0):
        assert power.flight_power_w(worse, ISA_SL, 3.4, v) == pytest.approx(
            power.flight_power_w(af, ISA_SL, 3.4, v) / 0.8)


def test_climb_costs_and_forward_flight_relieves_hover():
    af = power.Airframe(mass_kg=3.4, rotors=4, rotor_diameter_m=0.46)
    hover = power.hover_power_w(af, ISA_SL, 3.4)
    assert power.flight_power_w(af, ISA_SL, 3.4, 0.0, 2.5) > hover + 0.4 * 3.4 * power.G * 2.5
    assert power.flight_power_w(af, ISA_SL, 3.4, 8.0) < hover          # translational lift
    assert power.flight_power_w(af, ISA_SL, 3.4, 22.0) > 1.5 * hover   # parasite power ~ V^3


def test_battery_terminal_power_and_cold_capacity():
    # P = (OCV - I R) I exactly, and the cold curve only ever takes capacity away
    i = terminal_current(16.0, 0.03, 400.0)
    assert (16.0 - i * 0.03) * i == pytest.approx(400.0)
    temps = [-30, -20, -10, 0, 10, 20, 35]
    f = [cold_capacity_factor(t) for t in temps]
    assert f == sorted(f) and f[-1] == 1.0 and 0.75 <= cold_capacity_factor(-10) <= 0.85


@pytest.mark.parametrize("flag,bad", [("--rotors", "2"), ("--rotor-diameter-m", "0"),
                                      ("--drag-area-m2", "-1"), ("--efficiency", "0"),
                                      ("--temp-c", "nan"), ("--mass-kg", "heavy")])
def test_bad_airframe_flags_are_refused_by_name(flag, bad, capsys):
    with pytest.raises(SystemExit) as e:
        build_parser().parse_args([flag, bad])
    assert e.value.code == 2
    assert flag in capsys.readouterr().err


# -- the same numbers through the simulator's own clock -------------------------------------------

def m100_flags(temp_c: str = "15") -> list[str]:
    return ["--home", SEA_LEVEL_HOME, "--temp-c", temp_c, "--mass-kg", "2.431", "--rotors", "4",
            "--rotor-diameter-m", "0.3302", "--drag-area-m2", "0.06", "--battery-wh", "129.96"]


def _takeoff_and_hover(c: MavClient, alt_m: float = 10.0):
    c.wait_ekf()
    c.command(M.MAV_CMD_DO_SET_MODE, 1, 4)
    c.command(M.MAV_CMD_COMPONENT_ARM_DISARM, 1)
    assert c.command(M.MAV_CMD_NAV_TAKEOFF, 0, 0, 0, 0, 0, 0, alt_m) == M.MAV_RESULT_ACCEPTED
    return c.recv("GLOBAL_POSITION_INT",
                  lambda m: m.relative_alt > (alt_m - 0.1) * 1000 and abs(m.vz) < 5, 20)


def _energy_at(c: MavClient):
    """(vehicle time s, energy consumed J) from fresh telemetry (a quarter second apart at most)."""
    b = c.latest("BATTERY_STATUS")
    g = c.latest("GLOBAL_POSITION_INT")
    return g.time_boot_ms / 1000.0, b.energy_consumed * 100.0


@pytest.mark.parametrize("efficiency", ["1.0", "0.8"])
def test_simulated_m100_hover_draws_what_the_model_says(sim_factory, efficiency):
    """Two minutes of hover on the sim's clock: the energy BATTERY_STATUS reports (hJ) over the
    vehicle time GLOBAL_POSITION_INT carries gives the hover power, and V x I from SYS_STATUS agrees
    with it; the M100's 28 min spec hover follows, and --efficiency 0.8 draws 1 / 0.8 as much."""
    h = sim_factory("--speedup", "50", "--no-ekf-s", "1", "--efficiency", efficiency, *m100_flags())
    c = MavClient(h.urls[0])
    try:
        _takeoff_and_hover(c)
        c.recv("GLOBAL_POSITION_INT", None, 5)
        t0, e0 = _energy_at(c)
        while True:
            t1, e1 = _energy_at(c)
            if t1 - t0 >= 120.0:
                break
        sys_status = c.latest("SYS_STATUS")
    finally:
        c.close()
    k = float(efficiency)
    af = power.Airframe(mass_kg=2.431, rotors=4, rotor_diameter_m=0.3302, efficiency=k)
    expected = power.hover_power_w(af, power.air_density(0.0, 15.0), 2.431)
    measured = (e1 - e0) / (t1 - t0)
    assert measured == pytest.approx(expected, rel=0.03)
    vi = sys_status.voltage_battery / 1000.0 * sys_status.current_battery / 100.0
    assert vi == pytest.approx(expected, rel=0.03)
    if k == 1.0:
        assert 129.96 * 3600 / measured / 60 == pytest.approx(28.0, rel=0.15)


def test_cold_pack_runs_low_sooner_while_the_percentage_looks_healthy(sim_factory):
    """Same vehicle, same charge at take-off (35 %), hovering until the autopilot's low-battery
    warning (BATT_LOW_VOLT 14 V for 10 s): at -10 degC the pack holds about 80 % of its rating, so
    the warning comes much sooner in vehicle time, with more of BATT_CAPACITY apparently left."""
    result = {}
    for temp in ("20", "-10"):
        h = sim_factory("--speedup", "80", "--no-ekf-s", "1", "--battery-pct", "35", *m100_flags(temp))
        c = MavClient(h.urls[0])
        try:
            start = _takeoff_and_hover(c).time_boot_ms / 1000.0
            assert c.wait_text("Battery 1 is low", 60)
            g = c.latest("GLOBAL_POSITION_INT")
            result[temp] = (g.time_boot_ms / 1000.0 - start, c.latest("SYS_STATUS").battery_remaining)
        finally:
            c.close()
            h.stop()
    warm_s, warm_pct = result["20"]
    cold_s, cold_pct = result["-10"]
    assert cold_s < 0.6 * warm_s, result
    assert cold_pct > warm_pct, result
