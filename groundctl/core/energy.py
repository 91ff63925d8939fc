"""Energy and range of a multirotor flight, leg by leg, from momentum theory.

Model (all powers electrical, W):

- Hover: P = (m g)^1.5 / (sqrt(2 rho A) * FM) + avionics, with A the total rotor disk area and FM the
  airframe's figure of merit taken as the whole chain's efficiency (ideal induced power / battery power).
- Forward flight at airspeed V: the body drag D = 0.5 rho CdA V^2 tilts the thrust, T = sqrt(W^2 + D^2),
  disk tilt a = atan(D / W). The induced velocity solves Glauert's equation
  v_i = v_h^2 / sqrt((V cos a)^2 + (V sin a + v_i)^2), v_h^2 = T / (2 rho A), and the rotor power is
  T (v_i + V sin a) / FM: the induced part falls with airspeed, the parasitic part T V sin a = D V =
  0.5 rho CdA V^3 grows with its cube.
- Climb at v_c adds m g v_c / FM to the power at that airspeed (the full potential-energy rate, more than
  momentum theory's T v_c / 2 for slow climbs: conservative). Descent at v_d takes the hover power times
  max(0.85, 1 - v_d / (2 v_h)); momentum theory fails in the vortex-ring region, and measured
  multirotors descend at close to hover power.
- Holding position in wind is forward flight at the wind's airspeed, but the power of vertical and hover
  legs is never taken below still-air hover: translational lift near the ground in gusty wind is not
  something to bank on.
- Cruise legs hold the ground track at the cruise ground speed when the airspeed that needs,
  |v_ground - v_wind|, is within max_speed; otherwise the copter flies at max airspeed, crabs to cancel
  the cross wind and makes good whatever ground speed is left. A leg where that is under
  MIN_GROUND_SPEED_MPS is impossible.
- Air density from the hub elevation (ISA pressure) and the reported temperature (ISA if unknown).
- FM above is the airframe's whole-chain hover efficiency (Airframe.efficiency: an expert's figure of
  merit, else fitted to the spec sheet's hover endurance, else a low default; see core/rotor.py).
- The battery holds less in the cold (core/rotor.py COLD_DERATING, at the reported temperature).
- Calibration (core/calibration.py): the model's total is multiplied by the factor flown flights
  measured, and a margin for the model's observed scatter is held back on top of the reserve.

Variable wind (METAR VRB) counts as a headwind on every leg; a direction range (dddVddd) takes, per
leg, the direction inside the range that blows most against it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

from groundctl.core.calibration import Calibration, uncalibrated
from groundctl.core.fleet import Airframe, Operations
from groundctl.core.plan import FlightPlan, Leg
from groundctl.core.rotor import air_density, battery_temperature_factor, isa_temperature_c
from groundctl.core.weather import Weather, WindAt

G = 9.80665
MIN_GROUND_SPEED_MPS = 1.0  # below this a leg "cannot make good" its track
DESCENT_FLOOR = 0.85
# Share of a multirotor's hover rotor power that is blade profile drag rather than induced power: a rotor
# with induced-power factor kappa ~1.15 and figure of merit FM spends 1 - kappa FM on profile drag, and
# small propellers reach FM 0.55-0.65 (Leishman, Principles of Helicopter Aerodynamics, 2006, sec. 2.7
# and 3.3; Bristeau et al., "The role of propeller aerodynamics in the model of a quadrotor UAV", ECC
# 2009): 0.25-0.37. Without it, all of the hover power would fall away with airspeed and cruise would
# look cheaper than flown (the M100 flights of Rodrigues et al. 2021: see tests/preflight).
PROFILE_SHARE = 0.3


def induced_velocity(thrust_n: float, rho: float, disk_m2: float, airspeed_mps: float, tilt_rad: float) -> float:
    """Glauert's induced velocity for a rotor disk tilted forward by tilt_rad (bisection; the
    residual v * sqrt(...) - v_h^2 is monotonic in v)."""
    vh2 = thrust_n / (2.0 * rho * disk_m2)
    vx = airspeed_mps * math.cos(tilt_rad)
    vz = airspeed_mps * math.sin(tilt_rad)
    lo, hi = 0.0, math.sqrt(vh2)
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        if mid * math.hypot(vx, vz + mid) > vh2:
            hi = mid
        else:
            lo = mid
    return 0.5 * (lo + hi)


def level_power_w(a: Airframe, mass_kg: float, airspeed_mps: float, rho: float) -> float:
    """Electrical power in level flight at an airspeed (0 = hover), avionics included.

    Of the hover power, PROFILE_SHARE is the blades' profile drag, which does not fall with airspeed
    (it grows a little: left out); the rest is induced power, which Glauert's inflow lets fall."""
    w = mass_kg * G
    drag = 0.5 * rho * a.drag_area_m2 * airspeed_mps ** 2
    thrust = math.hypot(w, drag)
    tilt = math.atan2(drag, w)
    vi = induced_velocity(thrust, rho, a.disk_area_m2, airspeed_mps, tilt)
    hover = w * math.sqrt(w / (2.0 * rho * a.disk_area_m2))
    return ((1.0 - PROFILE_SHARE) * thrust * (vi + airspeed_mps * math.sin(tilt)) + PROFILE_SHARE * hover) \
        / a.efficiency + a.avionics_power_w


def hover_power_w(a: Airframe, mass_kg: float, rho: float) -> float:
    return (mass_kg * G) ** 1.5 / (math.sqrt(2.0 * rho * a.disk_area_m2) * a.efficiency) + a.avionics_power_w


@dataclass(frozen=True)
class LegEnergy:
    leg: Leg
    airspeed_mps: float
    ground_speed_mps: float
    headwind_mps: float  # along the course, + against
    crosswind_mps: float
    power_w: float
    time_s: float
    energy_wh: float
    feasible: bool
    note: str = ""

    def to_dict(self) -> dict:
        return {"kind": self.leg.kind, "label": self.leg.label, "course_deg": round(self.leg.course_deg, 1),
                "distance_m": round(self.leg.distance_m, 1), "dz_m": round(self.leg.dz_m, 1),
                "payload_kg": self.leg.payload_kg, "airspeed_mps": round(self.airspeed_mps, 2),
                "ground_speed_mps": round(self.ground_speed_mps, 2), "headwind_mps": round(self.headwind_mps, 2),
                "crosswind_mps": round(self.crosswind_mps, 2), "power_w": round(self.power_w, 1),
                "time_s": round(self.time_s, 1) if math.isfinite(self.time_s) else None,
                "energy_wh": round(self.energy_wh, 3) if math.isfinite(self.energy_wh) else None,
                "feasible": self.feasible, "note": self.note}


@dataclass(frozen=True)
class EnergyReport:
    needed_wh: float  # the model's total times the calibration factor
    usable_wh: float  # battery_wh * usable_fraction * cold derating
    reserve_wh: float
    reserve_basis: str
    margin_wh: float  # usable - reserve - needed - uncertainty
    flight_time_s: float
    legs: tuple[LegEnergy, ...]
    rho: float
    hover_power_w: float
    wind_mps: float
    wind_dir_deg: float | None
    wind_how: str
    max_payload_kg: float  # largest parcel this flight could carry with reserve intact (energy only)
    max_radius_m: float  # straight out-and-back, worst heading, at this wind, for this parcel
    max_radius_heading_deg: float | None
    infeasible_legs: tuple[LegEnergy, ...] = field(default=())
    model_wh: float = math.nan  # the physics model's total, before calibration
    uncertainty_wh: float = 0.0  # held back for the model's scatter (calibration margin)
    calibration: Calibration | None = None
    battery_temp_factor: float = 1.0
    efficiency: float = math.nan
    efficiency_source: str = ""

    @property
    def ok(self) -> bool:
        return self.margin_wh >= 0 and not self.infeasible_legs

    def to_dict(self) -> dict:
        """JSON-safe: an impossible flight's infinite margin and time become null."""
        def r(x: float, n: int) -> float | None:
            return round(x, n) if math.isfinite(x) else None
        return {"needed_wh": round(self.needed_wh, 2), "usable_wh": round(self.usable_wh, 2),
                "reserve_wh": round(self.reserve_wh, 2), "reserve_basis": self.reserve_basis,
                "margin_wh": r(self.margin_wh, 2), "flight_time_s": r(self.flight_time_s, 1),
                "air_density_kgm3": round(self.rho, 4), "hover_power_w": round(self.hover_power_w, 1),
                "wind_mps": round(self.wind_mps, 2), "wind_dir_deg": self.wind_dir_deg, "wind_how": self.wind_how,
                "max_payload_kg": r(self.max_payload_kg, 3), "max_radius_m": r(self.max_radius_m, 1),
                "max_radius_heading_deg": self.max_radius_heading_deg,
                "model_wh": r(self.model_wh, 2), "uncertainty_wh": r(self.uncertainty_wh, 2),
                "battery_temp_factor": round(self.battery_temp_factor, 3),
                "efficiency": r(self.efficiency, 4), "efficiency_source": self.efficiency_source,
                "calibration": self.calibration.to_dict() if self.calibration else None,
                "phases": {k: r(v, 2) for k, v in phase_energy(self).items()},
                "legs": [le.to_dict() for le in self.legs]}


# -- wind geometry ----------------------------------------------------------------------------------

def _worst_dir(course_deg: float, wind: WindAt) -> float:
    """The wind direction to assume for a leg: as reported, or the worst one the report allows."""
    if wind.dir_deg is None:
        return course_deg  # variable: straight on the nose
    if wind.dir_range_deg is None:
        return wind.dir_deg
    lo, hi = wind.dir_range_deg
    span = (hi - lo) % 360.0
    if (course_deg - lo) % 360.0 <= span:
        return course_deg
    # outside the arc: whichever end is closer to the course blows most against it
    d_lo = abs((course_deg - lo + 180.0) % 360.0 - 180.0)
    d_hi = abs((course_deg - hi + 180.0) % 360.0 - 180.0)
    return lo if d_lo <= d_hi else hi


def wind_components(course_deg: float, speed_mps: float, from_deg: float) -> tuple[float, float]:
    """(headwind, crosswind) for a course: headwind > 0 blows against the direction of travel."""
    rel = math.radians(from_deg - course_deg)
    return speed_mps * math.cos(rel), speed_mps * math.sin(rel)


def cruise_kinematics(a: Airframe, course_deg: float, wind: WindAt | None) -> tuple[float, float, float, float, bool]:
    """(airspeed, ground speed, headwind, crosswind, feasible) for a cruise leg."""
    vg = a.cruise_speed_mps
    if wind is None or wind.speed_mps <= 0:
        return vg, vg, 0.0, 0.0, True
    head, cross = wind_components(course_deg, wind.speed_mps, _worst_dir(course_deg, wind))
    va = math.hypot(vg + head, cross)
    if va <= a.max_speed_mps:
        return va, vg, head, cross, True
    vmax = a.max_speed_mps
    if abs(cross) >= vmax:
        return vmax, 0.0, head, cross, False
    gs = math.sqrt(vmax ** 2 - cross ** 2) - head
    return vmax, max(gs, 0.0), head, cross, gs >= MIN_GROUND_SPEED_MPS


# -- the model ----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class _Ctx:
    a: Airframe
    rho: float
    cruise_wind: WindAt | None
    low_wind: WindAt | None  # for climbs, descents and hovers
    usable_wh: float = math.nan
    cal: Calibration | None = None
    battery_factor: float = 1.0

    def spend(self, model_wh: float) -> float:
        """What a model figure really costs: calibrated, plus the margin for the model's scatter."""
        return model_wh * self.cal.factor * (1.0 + self.cal.margin)


def _leg_energy(ctx: _Ctx, leg: Leg) -> LegEnergy:
    a, rho = ctx.a, ctx.rho
    mass = a.empty_mass_kg + leg.payload_kg
    p_hover = hover_power_w(a, mass, rho)
    if leg.kind == "cruise":
        va, gs, head, cross, ok = cruise_kinematics(a, leg.course_deg, ctx.cruise_wind)
        p = level_power_w(a, mass, va, rho)
        t = leg.distance_m / gs if ok else math.inf
        note = "" if ok else (f"headwind {head:.1f} m/s and crosswind {abs(cross):.1f} m/s leave no ground speed "
                              f"at max airspeed {a.max_speed_mps:g} m/s")
        if ok and gs < a.cruise_speed_mps - 1e-9:
            note = f"at max airspeed; ground speed drops to {gs:.1f} m/s"
        return LegEnergy(leg, va, gs, head, cross, p, t, p * t / 3600.0 if ok else math.inf, ok, note)
    w = ctx.low_wind
    va = w.speed_mps if w is not None else 0.0
    # station-keeping is forward flight at the wind's airspeed, floored at still-air hover
    p_hold = max(p_hover, level_power_w(a, mass, va, rho))
    if leg.kind == "climb":
        vc = leg.speed_mps or a.climb_speed_mps
        t = abs(leg.dz_m) / vc
        p = p_hold + mass * G * vc / a.efficiency
    elif leg.kind == "descent":
        vd = leg.speed_mps or a.descent_speed_mps
        t = abs(leg.dz_m) / vd
        vh = math.sqrt(mass * G / (2.0 * rho * a.disk_area_m2))
        k = max(DESCENT_FLOOR, 1.0 - vd / (2.0 * vh))
        p = (p_hold - a.avionics_power_w) * k + a.avionics_power_w
    else:
        t = leg.hover_s
        p = p_hold
    t += leg.hover_s if leg.kind != "hover" else 0.0
    return LegEnergy(leg, va, 0.0, 0.0, 0.0, p, t, p * t / 3600.0, True)


def _reserve(ctx: _Ctx, ops: Operations, mass_kg: float) -> tuple[float, str]:
    a = ctx.a
    frac = ops.reserve_fraction * ctx.usable_wh
    # the reserve is hover with the parcel still on board: an aborted drop comes home loaded
    hover = hover_power_w(a, mass_kg, ctx.rho) * ctx.cal.factor * ops.reserve_min_s / 3600.0
    if hover > frac:
        return hover, f"{ops.reserve_min_s:g} s of hover"
    return frac, f"{ops.reserve_fraction:.0%} of usable energy"


def _ctx(a: Airframe, weather: Weather | None, elevation_m: float, cruise_alt_m: float,
         cal: Calibration | None) -> _Ctx:
    temp = weather.temp_c if weather is not None else None
    rho = air_density(elevation_m, temp)
    # an unreported temperature is the standard atmosphere's at this elevation, for the battery as for the air
    tf = battery_temperature_factor(temp if temp is not None else isa_temperature_c(elevation_m))
    usable = a.battery_wh * a.battery_usable_fraction * tf
    cal = cal if cal is not None else uncalibrated(a.name)
    if weather is None:
        return _Ctx(a, rho, None, None, usable, cal, tf)
    return _Ctx(a, rho, weather.wind_at(cruise_alt_m), weather.wind_at(max(cruise_alt_m / 2.0, 10.0)), usable, cal, tf)


def _legs_with_payload(legs: list[Leg] | tuple[Leg, ...], payload_kg: float) -> list[Leg]:
    return [replace(leg, payload_kg=payload_kg) if leg.payload_kg > 0 else leg for leg in legs]


def _total(ctx: _Ctx, legs) -> tuple[float, list[LegEnergy]]:
    out = [_leg_energy(ctx, leg) for leg in legs]
    return sum(le.energy_wh for le in out), out


def flight_energy(a: Airframe, ops: Operations, legs: list[Leg], weather: Weather | None, *,
                  elevation_m: float, cruise_alt_m: float, payload_kg: float | None = None,
                  limits: bool = True, calibration: Calibration | None = None) -> EnergyReport:
    """Energy for a list of legs (a plan's, or any other) in the given weather.

    limits=False skips the searches for the maximum payload and radius (NaN in the report): a range
    check that only needs the margin spends most of its time there otherwise.
    """
    ctx = _ctx(a, weather, elevation_m, cruise_alt_m, calibration)
    if payload_kg is None:
        payload_kg = max((leg.payload_kg for leg in legs), default=0.0)
    model, les = _total(ctx, legs)
    usable = ctx.usable_wh
    reserve, basis = _reserve(ctx, ops, a.empty_mass_kg + payload_kg)
    bad = tuple(le for le in les if not le.feasible)
    if bad:
        model = sum(le.energy_wh for le in les if le.feasible)
    needed = model * ctx.cal.factor
    uncertainty = needed * ctx.cal.margin
    margin = usable - reserve - needed - uncertainty if not bad else -math.inf
    time_s = sum(le.time_s for le in les)
    w = ctx.cruise_wind
    if limits:
        max_pl = _max_payload(ctx, ops, legs, usable)
        radius, heading = _max_radius(ctx, ops, legs, payload_kg, usable, cruise_alt_m)
    else:
        max_pl, radius, heading = math.nan, math.nan, None
    return EnergyReport(needed_wh=needed, usable_wh=usable, reserve_wh=reserve,
                        reserve_basis=basis, margin_wh=margin, flight_time_s=time_s, legs=tuple(les),
                        rho=ctx.rho, hover_power_w=hover_power_w(a, a.empty_mass_kg + payload_kg, ctx.rho),
                        wind_mps=w.speed_mps if w else 0.0, wind_dir_deg=w.dir_deg if w else None,
                        wind_how=w.how if w else "still air assumed: no wind reported",
                        max_payload_kg=max_pl, max_radius_m=radius, max_radius_heading_deg=heading,
                        infeasible_legs=bad, model_wh=model, uncertainty_wh=uncertainty, calibration=ctx.cal,
                        battery_temp_factor=ctx.battery_factor,
                        efficiency=a.efficiency, efficiency_source=a.efficiency_source)


def plan_energy(plan: FlightPlan, weather: Weather | None, *, limits: bool = True,
                calibration: Calibration | None = None) -> EnergyReport:
    """Energy for a plan's legs, at the hub's elevation and the plan's cruise height."""
    return flight_energy(plan.airframe, plan.ops, plan.legs, weather, elevation_m=plan.hub.elevation_m,
                         cruise_alt_m=plan.cruise_alt_m, payload_kg=plan.parcel.mass_kg, limits=limits,
                         calibration=calibration)


def leg_phase(legs, i: int) -> str:
    """The delivery phase a plan's leg belongs to: climb, out, drop, back or landing (the same
    names as calibration.PHASES), from its place around the outbound and return cruise legs."""
    kinds = [(leg.kind, leg.label) for leg in legs]
    outs = [j for j, (k, lab) in enumerate(kinds) if k == "cruise" and lab == "out"]
    backs = [j for j, (k, lab) in enumerate(kinds) if k == "cruise" and lab == "back"]
    first_out = outs[0] if outs else 1
    last_out = outs[-1] if outs else first_out
    first_back = backs[0] if backs else len(legs) - 1
    last_back = backs[-1] if backs else first_back
    if i < first_out:
        return "climb"
    if i <= last_out:
        return "out"
    if i < first_back:
        return "drop"
    if i <= last_back:
        return "back"
    return "landing"


def phase_energy(e: "EnergyReport") -> dict[str, float]:
    """The prediction split by delivery phase, calibrated like the total (no margin)."""
    factor = e.calibration.factor if e.calibration else 1.0
    legs = [le.leg for le in e.legs]
    out: dict[str, float] = {}
    for i, le in enumerate(e.legs):
        ph = leg_phase(legs, i)
        out[ph] = out.get(ph, 0.0) + (le.energy_wh * factor if math.isfinite(le.energy_wh) else math.inf)
    return out


def _fits(ctx: _Ctx, ops: Operations, legs, payload_kg: float, usable: float) -> bool:
    needed, les = _total(ctx, _legs_with_payload(legs, payload_kg))
    if any(not le.feasible for le in les):
        return False
    reserve, _ = _reserve(ctx, ops, ctx.a.empty_mass_kg + payload_kg)
    return ctx.spend(needed) + reserve <= usable


def _max_payload(ctx: _Ctx, ops: Operations, legs, usable: float) -> float:
    """Largest payload (kg) for which these legs still leave the reserve: bisection, energy is
    monotonic in mass. Not capped by the airframe's structural limits (the payload checks do that)."""
    if not any(leg.payload_kg > 0 for leg in legs):
        # legs built without a parcel: ask what the whole flight could carry
        legs = [replace(leg, payload_kg=1.0) for leg in legs]
    if not _fits(ctx, ops, legs, 0.0, usable):
        return 0.0
    lo, hi = 0.0, ctx.a.max_takeoff_mass_kg * 2.0
    if _fits(ctx, ops, legs, hi, usable):
        return hi
    for _ in range(40):
        mid = 0.5 * (lo + hi)
        if _fits(ctx, ops, legs, mid, usable):
            lo = mid
        else:
            hi = mid
    return lo


def _max_radius(ctx: _Ctx, ops: Operations, legs, payload_kg: float, usable: float,
                cruise_alt_m: float) -> tuple[float, float | None]:
    """Radius of a straight out-and-back at the worst heading (every 5 degrees), keeping this plan's
    vertical and zone legs. Energy is linear in distance per heading, so each radius is a division."""
    fixed = [leg for leg in legs if leg.kind != "cruise"]
    e_fixed, les = _total(ctx, fixed)
    reserve, _ = _reserve(ctx, ops, ctx.a.empty_mass_kg + payload_kg)
    budget = usable - reserve - ctx.spend(e_fixed)
    if budget <= 0:
        return 0.0, None
    worst, worst_h = math.inf, None
    for h10 in range(0, 360, 5):
        h = float(h10)
        out = _leg_energy(ctx, Leg("cruise", distance_m=1000.0, course_deg=h, payload_kg=payload_kg))
        back = _leg_energy(ctx, Leg("cruise", distance_m=1000.0, course_deg=(h + 180.0) % 360.0, payload_kg=0.0))
        if not (out.feasible and back.feasible):
            return 0.0, h
        r = budget / (ctx.spend(out.energy_wh + back.energy_wh) / 1000.0)
        if r < worst:
            worst, worst_h = r, h
    return worst, worst_h
