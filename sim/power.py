"""The simulator's own power model: what a multirotor of a given size draws from its battery.

This is the reference groundctl's energy prediction is compared with, so it is built from first
principles with the simulator's OWN constants and sources, and imports nothing from groundctl.

Air
    ISA pressure at the home altitude (ICAO Doc 7488, troposphere: p = p0 (1 - L h / T0)^(g / (R L)),
    T0 = 288.15 K, L = 0.0065 K/m) and the ambient temperature (ISA's T0 - L h when not given):
    rho = p / (R T). Hot and high air is thin, and every term below grows as rho falls.

Rotors: blade-element momentum theory (Leishman, "Principles of Helicopter Aerodynamics", 2nd ed.,
Cambridge University Press 2006, ch. 2-3 and 5; Johnson, "Helicopter Theory", 1980), applied to each
of N identical rotors carrying 1/N of the thrust:

    induced   P_i = kappa T v_i                  kappa = 1.15: non-uniform inflow and tip losses
                                                  (Leishman ch. 3: 1.15-1.20 is typical)
    profile   P_0 = sigma Cd0 / 8 rho A (Omega R)^3 (1 + K mu^2)
                                                  K = 4.65 (Leishman ch. 5: 4.5-4.7)
    climb and propulsion  T V_perp               V_perp: how fast the rotor moves along its own
                                                  axis through the air (climb rate, and the
                                                  forward tilt that balances body drag: = D V)

    The tip speed follows from the thrust at a fixed blade loading C_T / sigma (the rotor speeds up
    with load, as a fixed-pitch propeller does): (Omega R)^2 = T / (rho A sigma (C_T / sigma)).
    The induced velocity solves Glauert's inflow equation for the disk moving at mu (in plane) and
    lambda_0 (along the axis): lambda_i = C_T / (2 sqrt(mu^2 + (lambda_0 + lambda_i)^2)), by
    Newton-Raphson (Leishman ch. 2). In descent (V_perp < 0) momentum theory has no
    valid solution through the vortex-ring state; the sim then costs the rotor as if V_perp = 0
    (no energy comes back from a descent, and none is assumed saved).

    Rotor constants (small two-blade propellers, Reynolds number ~1e5 at 3/4 radius):
      sigma = 0.10     solidity N c / (pi R): chord about 0.15 R at 3/4 radius on two blades
                       (the geometries in the UIUC propeller database, Brandt & Selig, AIAA
                       2011-1255, lie around 0.08-0.12)
      C_T/sigma = 0.12 mean lift coefficient 6 C_T / sigma ~ 0.7, a cambered section near its best
                       lift-to-drag ratio (Leishman ch. 2: 0.08-0.12 for rotors)
      Cd0 = 0.035      mean profile drag at Re ~1e5 (low-Reynolds airfoils, e.g. Selig et al.,
                       "Summary of Low-Speed Airfoil Data" vols. 1-3, 1995-97: 0.02-0.04 there,
                       against 0.008-0.011 for full-size rotor sections). The one constant tuned:
                       see below.

Drive train: motor and ESC efficiency eta = 0.80 x 0.95, typical values (small outrunner BLDC
    motors 0.75-0.85 at hover load, ESCs 0.93-0.97; cf. Gur & Rosen, "Optimizing electric propulsion
    systems for unmanned aerial vehicles", J. Aircraft 46(4), 2009). Avionics (flight controller,
    GNSS, data link, ESC quiescent draw, lights): AVIONICS_W = 15 W, the sim's own round figure.

Body drag D = 1/2 rho CdA V^2 with the airframe's drag area.

Tuning, said plainly: Cd0 is the least certain constant (low-Reynolds drag varies two-fold), so it was
set once, by least squares on ONE airframe: the DJI Matrice 100's four spec-sheet hover points (TB47D
and TB48D, with and without 1 kg) give 0.036, used as 0.035. Every other constant is a typical
textbook value; the Matrice 600 Pro, the Matrice 210 V2 and the measured M100 cruise power
(Rodrigues et al. 2021) are out-of-sample checks (tests/sim/test_power_model.py).

`efficiency` (--efficiency K) divides the whole electrical draw: K = 0.8 makes the vehicle draw
1 / 0.8 times the power of the well-built airframe this model describes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

G = 9.80665
R_AIR = 287.053          # J/(kg K), dry air (ICAO standard atmosphere)
ISA_T0_K = 288.15
ISA_P0_PA = 101325.0
ISA_LAPSE_K_PER_M = 0.0065

KAPPA = 1.15             # induced power factor
SOLIDITY = 0.10
BLADE_LOADING = 0.12     # C_T / sigma
CD0 = 0.035              # mean profile drag coefficient of the blade sections
PROFILE_K = 4.65         # growth of profile power with advance ratio
MOTOR_EFF = 0.80
ESC_EFF = 0.95
AVIONICS_W = 15.0


def isa_temperature_c(alt_amsl_m: float) -> float:
    return ISA_T0_K - ISA_LAPSE_K_PER_M * alt_amsl_m - 273.15


def air_density(alt_amsl_m: float, temp_c: Optional[float] = None) -> float:
    """kg/m^3 from ISA pressure at this altitude and the actual temperature (ISA when None)."""
    exponent = G / (R_AIR * ISA_LAPSE_K_PER_M)
    p = ISA_P0_PA * (1.0 - ISA_LAPSE_K_PER_M * alt_amsl_m / ISA_T0_K) ** exponent
    t = (isa_temperature_c(alt_amsl_m) if temp_c is None else temp_c) + 273.15
    return p / (R_AIR * t)


@dataclass(frozen=True)
class Airframe:
    """The physical airframe the sim flies (from the command line)."""

    mass_kg: float = 3.0             # empty, battery included
    rotors: int = 4
    rotor_diameter_m: float = 0.46
    drag_area_m2: float = 0.07
    efficiency: float = 1.0          # multiplier on the whole chain's efficiency

    @property
    def rotor_area_m2(self) -> float:
        return math.pi * (self.rotor_diameter_m / 2.0) ** 2


def _inflow(ct: float, mu: float, lam0: float) -> float:
    """Induced inflow ratio lambda_i from Glauert's equation (Newton-Raphson on
    f(l) = l - lam0 - C_T / (2 sqrt(mu^2 + l^2)), l = total inflow)."""
    lam = max(math.sqrt(ct / 2.0), lam0 + 1e-6)   # start from the hover value
    for _ in range(30):
        s = math.hypot(mu, lam)
        f = lam - lam0 - ct / (2.0 * s)
        df = 1.0 + ct * lam / (2.0 * s ** 3)
        step = f / df
        lam -= step
        if abs(step) < 1e-10:
            break
    return max(lam - lam0, 0.0)


def rotor_power_w(af: Airframe, rho: float, thrust_n: float, v_inplane_mps: float,
                  v_axial_mps: float) -> float:
    """Shaft power of all rotors together: total thrust, air speed in the disk plane and along
    the thrust axis (positive = the rotor moves the way it pushes: climb, or the forward tilt
    that balances drag)."""
    if thrust_n <= 0.0:
        return 0.0
    n = max(af.rotors, 1)
    t = thrust_n / n
    area = af.rotor_area_m2
    tip2 = t / (rho * area * SOLIDITY * BLADE_LOADING)
    tip = math.sqrt(tip2)
    ct = SOLIDITY * BLADE_LOADING
    mu = max(v_inplane_mps, 0.0) / tip
    lam0 = max(v_axial_mps, 0.0) / tip
    lam_i = _inflow(ct, mu, lam0)
    induced = KAPPA * t * lam_i * tip
    axial = t * lam0 * tip
    profile = SOLIDITY * CD0 / 8.0 * rho * area * tip ** 3 * (1.0 + PROFILE_K * mu * mu)
    return n * (induced + axial + profile)


def electrical_power_w(af: Airframe, rho: float, thrust_n: float, v_inplane_mps: float,
                       v_axial_mps: float) -> float:
    """What the battery delivers at its terminals: rotors through motors and ESCs, plus avionics,
    all divided by the airframe's efficiency multiplier."""
    shaft = rotor_power_w(af, rho, thrust_n, v_inplane_mps, v_axial_mps)
    return (shaft / (MOTOR_EFF * ESC_EFF) + AVIONICS_W) / max(af.efficiency, 1e-3)


def flight_power_w(af: Airframe, rho: float, mass_kg: float, airspeed_mps: float = 0.0,
                   climb_mps: float = 0.0) -> float:
    """Steady flight at an airspeed and climb rate: the thrust balances weight and body drag, the
    disk tilts forward by atan(D / W)."""
    w = mass_kg * G
    drag = 0.5 * rho * af.drag_area_m2 * airspeed_mps ** 2
    thrust = math.hypot(w, drag)
    tilt = math.atan2(drag, w)
    v_inplane = airspeed_mps * math.cos(tilt) + climb_mps * math.sin(tilt)
    v_axial = airspeed_mps * math.sin(tilt) + climb_mps * math.cos(tilt)
    return electrical_power_w(af, rho, thrust, abs(v_inplane), v_axial)


def hover_power_w(af: Airframe, rho: float, mass_kg: float) -> float:
    return flight_power_w(af, rho, mass_kg, 0.0, 0.0)


def hover_endurance_min(af: Airframe, rho: float, mass_kg: float, battery_wh: float) -> float:
    """Nominal pack energy / hover electrical power: how a spec sheet's hover time is read here."""
    return battery_wh / hover_power_w(af, rho, mass_kg) * 60.0
