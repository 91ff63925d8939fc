"""Air, rotors and batteries: the physics an airframe's own figures are read through.

An operator knows a spec sheet, not a figure of merit. A manufacturer's hover endurance is measured
from a full battery to an empty one, hovering in still air at sea level (DJI states exactly this on
its spec sheets: "measured ... hovering ... at sea level, from 100 % to 0 % battery"), so each point
gives the hover electrical power P = battery energy / time at one take-off mass. Momentum theory says
the ideal (induced) power is (m g)^1.5 / sqrt(2 rho A); the ratio ideal / (P - avionics) is the
whole chain's hover efficiency (rotor figure of merit x motor x ESC). One number per airframe, fitted
by least squares over every point given.

Without a spec sheet the efficiency defaults to DEFAULT_EFFICIENCY, which is deliberately low: see its
comment for where it comes from.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable, Sequence

G = 9.80665
R_AIR = 287.05  # J/(kg K), dry air
RHO_ISA_SL = 1.225

# Whole-chain hover efficiency assumed when an airframe states neither hover endurance nor a figure
# of merit. Fitted the same way (fit_hover_efficiency, 20 W avionics) from DJI spec sheets (hover,
# 100 % -> 0 %, sea level, no wind):
#   Matrice 100, 4 x 13 in, TB47D 99.9 Wh:  2.355 kg 22 min -> 0.48; +1 kg 13 min -> 0.47
#   Matrice 100, TB48D 129.96 Wh:           2.431 kg 28 min -> 0.49; +1 kg 16 min -> 0.46
#   Matrice 210 V2, 4 x 17 in, 2 x TB55 349.2 Wh: 4.8 kg 34 min -> 0.45; 6.14 kg 24 min -> 0.46
#   Matrice 600 Pro, 6 x 21 in, 6 x TB47S 599.4 Wh: 9.5 kg 32 min -> 0.45; 15.5 kg 16 min -> 0.46
# 0.40 sits under the worst of them: an unknown airframe is assumed to be a poor one, so its verdicts
# err towards NO-GO until a spec sheet or flown flights say better.
DEFAULT_EFFICIENCY = 0.40
DEFAULT_EFFICIENCY_SOURCE = ("default 0.40: under every DJI spec sheet we fitted (M100, M210 V2, M600 Pro: "
                             "0.45-0.49); give hover_endurance from the spec sheet to replace it")
MIN_EFFICIENCY, MAX_EFFICIENCY = 0.10, 0.85  # outside this, the figures given cannot describe a multirotor


def isa_temperature_c(elevation_m: float) -> float:
    return 15.0 - 0.0065 * elevation_m


def air_density(elevation_m: float, temp_c: float | None = None) -> float:
    """Density (kg/m^3) at an elevation AMSL: ISA pressure, actual temperature when known."""
    p = 101325.0 * (1.0 - 2.25577e-5 * elevation_m) ** 5.25588
    t_c = temp_c if temp_c is not None else isa_temperature_c(elevation_m)
    return p / (R_AIR * (t_c + 273.15))


def ideal_hover_power_w(mass_kg: float, rho: float, disk_area_m2: float) -> float:
    """Momentum theory's induced power to hover: what a perfect rotor would draw."""
    return (mass_kg * G) ** 1.5 / math.sqrt(2.0 * rho * disk_area_m2)


@dataclass(frozen=True)
class HoverFit:
    efficiency: float
    points: int
    worst_error: float  # largest relative difference between a given point and the fitted model

    def describe(self) -> str:
        return (f"fitted to {self.points} hover endurance point{'s' * (self.points != 1)} "
                f"(worst point {self.worst_error:+.0%} off)")


def fit_hover_efficiency(points: Iterable[tuple[float, float, float, float]], disk_area_m2: float,
                         avionics_w: float) -> HoverFit:
    """Least-squares efficiency from (takeoff_mass_kg, minutes, battery_wh, rho) points.

    Minimises the error in electrical power: P_i - avionics = ideal_i * x with x = 1 / efficiency.
    Raises ValueError (the caller names the field) when the points cannot describe a multirotor.
    """
    rows = []
    for mass, minutes, wh, rho in points:
        p = wh * 60.0 / minutes
        ideal = ideal_hover_power_w(mass, rho, disk_area_m2)
        if p <= avionics_w:
            raise ValueError(f"{minutes:g} min on {wh:g} Wh is {p:.0f} W, no more than the {avionics_w:g} W "
                             "avionics alone: check battery_wh and minutes")
        rows.append((ideal, p - avionics_w))
    if not rows:
        raise ValueError("no points")
    denominator = sum(i * i for i, _ in rows)
    if not math.isfinite(denominator) or denominator < 1e-9:
        # a take-off mass of micrograms needs no power to hover: nothing can be fitted to it
        raise ValueError("these take-off masses need next to no power to hover: check takeoff_mass_kg")
    x = sum(i * q for i, q in rows) / denominator
    eff = 1.0 / x if x > 0 else math.inf
    if not MIN_EFFICIENCY <= eff <= MAX_EFFICIENCY:
        raise ValueError(f"these figures imply a hover efficiency of {eff:.2f}, outside the "
                         f"{MIN_EFFICIENCY:g}-{MAX_EFFICIENCY:g} any multirotor has: check masses, minutes, "
                         "rotor_count, rotor_diameter_m and battery_wh")
    worst = max(rows, key=lambda r: abs(r[0] * x - r[1]) / r[1])
    return HoverFit(eff, len(rows), (worst[0] * x - worst[1]) / worst[1])


# -- batteries in the cold ---------------------------------------------------------------------------

# Fraction of a lithium pack's rated energy available at a cell temperature, for discharge at about
# 1C. Lithium-ion loses capacity in the cold because its internal resistance rises and the voltage
# hits cut-off sooner: about 5 % at 10 degC, 10-15 % at 0 degC and 25-30 % at -10 degC (Ma et al.,
# "Temperature effect and thermal impact in lithium-ion batteries: a review", Progress in Natural
# Science 28 (2018) 653-666, figs. 2-3; DJI's intelligent batteries warn below 15 degC and refuse to
# fly under -10 degC for the same reason). Packs self-heat in flight, so the curve is applied to the
# air temperature at take-off: a pack that was kept warm loses less, which errs on the safe side.
COLD_DERATING: tuple[tuple[float, float], ...] = (
    (-20.0, 0.55), (-10.0, 0.72), (0.0, 0.86), (10.0, 0.95), (20.0, 1.0))


def battery_temperature_factor(temp_c: float | None,
                               curve: Sequence[tuple[float, float]] = COLD_DERATING) -> float:
    """Available fraction of the rated energy at this air temperature (1.0 when unknown or warm)."""
    if temp_c is None:
        return 1.0
    if temp_c <= curve[0][0]:
        return curve[0][1]
    for (t0, f0), (t1, f1) in zip(curve, curve[1:]):
        if temp_c <= t1:
            return f0 + (f1 - f0) * (temp_c - t0) / (t1 - t0)
    return curve[-1][1]


# -- maximum take-off mass and air density ---------------------------------------------------------

def density_limited_takeoff_mass_kg(mtom_sea_level_kg: float, rho: float) -> float:
    """A rotor's maximum thrust at a fixed tip speed scales with air density: a copter rated for a
    take-off mass in ISA sea-level air lifts proportionally less in thin hot air (hot and high)."""
    return mtom_sea_level_kg * min(1.0, rho / RHO_ISA_SL)
