"""Go / no-go before a flight: every check runs and says pass, warn or fail, with the measured value,
the limit and what the operator can do about it. Limits come from the airframe and the operations
settings, never from this file; `ops.wind_warn_fraction` is the "getting close" fraction for every limit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from shapely.geometry import LineString

from groundctl.core.airspace import Airspace
from groundctl.core.calibration import Calibration
from groundctl.core.energy import EnergyReport, plan_energy
from groundctl.core.plan import ATTENDED_OK, UNATTENDED_FORBIDDEN, FlightPlan
from groundctl.core.weather import Weather, wx_group
from groundctl.errors import CheckFailure, InputError, PlanRefused

Status = Literal["pass", "warn", "fail"]
SEVERE_WEATHER = {"TS": "thunderstorm", "FC": "funnel cloud", "SQ": "squall", "GR": "hail", "GS": "small hail",
                  "FZ": "freezing precipitation or fog", "SS": "sandstorm", "DS": "duststorm", "VA": "volcanic ash"}
CONVECTIVE_CLOUD = {"CB": "cumulonimbus", "TCU": "towering cumulus"}


@dataclass(frozen=True)
class Check:
    name: str
    status: Status
    message: str
    value: float | str | None = None
    limit: float | str | None = None
    unit: str = ""

    def to_dict(self) -> dict:
        def clean(v):
            if isinstance(v, float):
                return round(v, 3) if math.isfinite(v) else str(v)
            return v
        return {"check": self.name, "status": self.status, "value": clean(self.value),
                "limit": clean(self.limit), "unit": self.unit, "message": self.message}


@dataclass
class Verdict:
    checks: list[Check]
    checked_at: datetime
    energy: EnergyReport | None = None
    weather: Weather | None = None
    summary: dict = field(default_factory=dict)

    @property
    def go(self) -> bool:
        return not self.failures

    @property
    def failures(self) -> list[Check]:
        return [c for c in self.checks if c.status == "fail"]

    @property
    def warnings(self) -> list[Check]:
        return [c for c in self.checks if c.status == "warn"]

    def check(self, name: str) -> Check:
        for c in self.checks:
            if c.name == name:
                return c
        raise KeyError(name)

    def raise_if_no_go(self) -> None:
        """For callers that must not upload a refused plan: PlanRefused carries every failure."""
        if not self.go:
            raise PlanRefused([CheckFailure(c.name, c.message) for c in self.failures])

    def to_dict(self) -> dict:
        return {"go": self.go, "checked_at": self.checked_at.isoformat(),
                "failures": [c.name for c in self.failures], "warnings": [c.name for c in self.warnings],
                "checks": [c.to_dict() for c in self.checks], "plan": self.summary,
                "energy": self.energy.to_dict() if self.energy else None,
                "weather": self.weather.to_dict() if self.weather else None}


def _upper(name: str, value: float, limit: float, warn_frac: float, unit: str, what: str, fix: str,
           ok_note: str = "") -> Check:
    """A value that must stay at or below a limit; warns above warn_frac of it."""
    if value > limit:
        return Check(name, "fail", f"{what} is {value:.1f} {unit}, above the {limit:g} {unit} limit: {fix}",
                     value, limit, unit)
    if value > warn_frac * limit:
        return Check(name, "warn", f"{what} is {value:.1f} {unit}, over {warn_frac:.0%} of the {limit:g} {unit} "
                                   f"limit{ok_note}", value, limit, unit)
    return Check(name, "pass", f"{what} is {value:.1f} {unit}, within the {limit:g} {unit} limit{ok_note}",
                 value, limit, unit)


# -- weather --------------------------------------------------------------------------------------

def _weather_checks(plan: FlightPlan, w: Weather | None, now: datetime) -> list[Check]:
    a, ops = plan.airframe, plan.ops
    frac = ops.wind_warn_fraction
    h = plan.cruise_alt_m
    checks: list[Check] = []
    if w is None:
        # one failure, not six: the other weather checks have nothing to measure
        return [Check("weather", "fail", "no weather observation: give a METAR, a forecast URL, a weather file "
                                         "or the wind on the command line")]
    age = w.age_s(now)
    limit = ops.max_weather_age_s
    when = "ahead of" if w.valid_time > now else "before"
    if age > limit:
        checks.append(Check("weather", "fail",
                            f"{w.source} is valid {age / 60:.0f} min {when} now, more than the {limit / 60:g} min "
                            f"allowed: get a fresh observation or forecast", age, limit, "s"))
    else:
        checks.append(Check("weather", "pass", f"{w.source}, valid {age / 60:.0f} min {when} now",
                            age, limit, "s"))
    wind = w.wind_at(h)
    if wind is None:
        checks.append(Check("wind", "fail", f"{w.source} reports no wind: get an observation with a wind group",
                            None, a.max_wind_mps, "m/s"))
    else:
        dir_txt = "variable" if wind.dir_deg is None else f"from {wind.dir_deg:03.0f}°"
        if wind.dir_range_deg:
            dir_txt += f" (varying {wind.dir_range_deg[0]:03.0f}°-{wind.dir_range_deg[1]:03.0f}°)"
        checks.append(_upper("wind", wind.speed_mps, a.max_wind_mps, frac, "m/s",
                             f"wind at the {h:g} m cruise height ({wind.how}; {dir_txt})",
                             "wait for the wind to drop, or fly a lower cruise height"))
    gust = w.gust_at(h)
    if gust is None:
        checks.append(Check("gust", "pass", "no gusts reported", None, a.max_gust_mps, "m/s"))
    else:
        checks.append(_upper("gust", gust, a.max_gust_mps, frac, "m/s",
                             f"the gust at {h:g} m (10 m gust scaled with the 1/7 power law)",
                             "wait for the gusts to ease"))
    if w.precip_mmph is None:
        checks.append(Check("precipitation", "warn", "precipitation not reported: look at the sky before launch",
                            None, a.max_precip_mmph, "mm/h"))
    else:
        est = " (estimated from the METAR intensity)" if any("estimated" in n for n in w.notes) else ""
        checks.append(_upper("precipitation", w.precip_mmph, a.max_precip_mmph, frac, "mm/h",
                             f"precipitation{est}", "wait for the rain or snow to pass"))
    if w.visibility_m is None:
        checks.append(Check("visibility", "warn", "visibility not reported: confirm it by eye before launch",
                            None, a.min_visibility_m, "m"))
    elif w.visibility_m < a.min_visibility_m:
        checks.append(Check("visibility", "fail",
                            f"visibility is {w.visibility_m:.0f} m, below the {a.min_visibility_m:g} m minimum: "
                            f"wait for it to clear", w.visibility_m, a.min_visibility_m, "m"))
    else:
        checks.append(Check("visibility", "pass", f"visibility is {w.visibility_m:.0f} m, at least the "
                            f"{a.min_visibility_m:g} m minimum", w.visibility_m, a.min_visibility_m, "m"))
    rng = f"{a.min_temp_c:g}..{a.max_temp_c:g}"
    if w.temp_c is None:
        checks.append(Check("temperature", "warn", f"temperature not reported: the airframe flies in {rng} °C",
                            None, rng, "°C"))
    elif not (a.min_temp_c <= w.temp_c <= a.max_temp_c):
        side = "below" if w.temp_c < a.min_temp_c else "above"
        checks.append(Check("temperature", "fail",
                            f"temperature is {w.temp_c:.1f} °C, {side} the airframe's {rng} °C range: "
                            f"the battery cannot deliver its rated energy; wait or use another airframe",
                            w.temp_c, rng, "°C"))
    else:
        checks.append(Check("temperature", "pass", f"temperature is {w.temp_c:.1f} °C, within {rng} °C",
                            w.temp_c, rng, "°C"))
    severe = [p for p in w.phenomena if p in SEVERE_WEATHER]
    near = [SEVERE_WEATHER[p[2:]] + " in the vicinity" for p in w.phenomena
            if p.startswith("VC") and p[2:] in SEVERE_WEATHER]
    near += [CONVECTIVE_CLOUD[p] + " reported" for p in w.phenomena if p in CONVECTIVE_CLOUD]
    if severe:
        checks.append(Check("significant_weather", "fail",
                            f"{', '.join(SEVERE_WEATHER[p] for p in severe)} reported at the station: do not fly "
                            f"until it has passed", ", ".join(severe)))
    elif w.unknown_weather:
        # an automatic station's '//' or a code nobody knows is a gap in the report, not fair weather
        checks.append(Check("significant_weather", "warn",
                            f"present weather {' '.join(w.unknown_weather)} could not be read: unknown, not none"
                            f"{'; also ' + ', '.join(near) if near else ''}; look at the sky before launch",
                            "unknown: " + " ".join(w.unknown_weather)))
    elif near:
        checks.append(Check("significant_weather", "warn",
                            f"{', '.join(near)}: expect sudden gusts and showers; watch the sky before launch",
                            ", ".join(near)))
    elif w.present_weather is None and not w.phenomena:
        checks.append(Check("significant_weather", "warn",
                            "present weather not reported: unknown; look for thunderstorms, hail and freezing "
                            "precipitation before launch", "unknown"))
    else:
        checks.append(Check("significant_weather", "pass",
                            "no thunderstorm, hail, squall, freezing precipitation or dust reported",
                            " ".join(w.present_weather or ()) or "none"))
    checks.append(_cloud_check(plan, w))
    checks.append(_icing_check(plan, w))
    return checks


_WX_WORDS = {"-": "light ", "+": "heavy ", "VC": "nearby ",
             "MI": "shallow ", "PR": "partial ", "BC": "patches of ", "DR": "drifting ", "BL": "blowing ",
             "SH": "showers of ", "TS": "thunderstorm with ", "FZ": "freezing ",
             "DZ": "drizzle", "RA": "rain", "SN": "snow", "SG": "snow grains", "IC": "ice crystals",
             "PL": "ice pellets", "GR": "hail", "GS": "small hail", "UP": "precipitation of unknown type",
             "BR": "mist", "FG": "fog", "FU": "smoke", "VA": "volcanic ash", "DU": "dust", "SA": "sand",
             "HZ": "haze", "PY": "spray", "PO": "dust whirls", "SQ": "squalls", "FC": "funnel cloud",
             "SS": "sandstorm", "DS": "duststorm"}
_FROZEN = ("SN", "SG", "IC", "PL")  # falls frozen: accretes on a cold airframe, wet snow worst near 0 °C
_WET = ("DZ", "RA", "UP")  # liquid (or unknown) precipitation: supercooled at or below the icing line
_WET_OBSC = ("FG", "BR")  # fog and mist are cloud at the ground


def _wx_words(code: str) -> str:
    g = wx_group(code)
    if g is None:
        return code
    prec = g["prec"]
    kinds = " and ".join(_WX_WORDS[prec[i:i + 2]] for i in range(0, len(prec), 2))
    parts = [g["int"], g["desc"]]
    text = "".join(_WX_WORDS.get(p, "") for p in parts if p) + kinds
    for k in (g["obsc"], g["other"]):
        if k:
            text += (" and " if kinds else "") + _WX_WORDS[k]
    return f"{text.strip()} ({code})"


def _cloud_check(plan: FlightPlan, w: Weather) -> Check:
    """Cloud base against cruise height: the lowest broken/overcast layer or vertical visibility must be
    the airframe's clearance above the top of the flight. Few/scattered cloud leaves gaps to see through."""
    a, h = plan.airframe, plan.cruise_alt_m
    need = h + a.cloud_clearance_m
    what = f"cruise {h:g} m + {a.cloud_clearance_m:g} m clearance = {need:g} m"
    if w.clouds is None:
        return Check("cloud_base", "warn", f"cloud not reported: unknown; make sure no broken or overcast cloud "
                                           f"is below {need:g} m ({what}) before launch", None, need, "m")
    if not w.clouds:
        return Check("cloud_base", "pass", f"no cloud reported that matters (above {what})", "none", need, "m")
    ceiling = w.ceiling
    unmeasured = [c for c in w.clouds if c.base_m is None and c.cover in ("BKN", "OVC", "VV", "///")]
    if ceiling is not None and ceiling.base_m < need:
        fix = ("wait for the fog to lift" if ceiling.cover == "VV" else
               "wait for the cloud to lift, or lower cruise_alt_m if the airspace allows")
        return Check("cloud_base", "fail", f"{ceiling.describe()} is below {what}: the drone would fly into "
                                           f"cloud; {fix}", ceiling.base_m, need, "m")
    if unmeasured and (ceiling is None or ceiling.base_m >= need):
        return Check("cloud_base", "warn", f"{unmeasured[0].describe()}: unknown whether it is above {what}; "
                                           f"look before launch", None, need, "m")
    if ceiling is not None and need > plan.ops.wind_warn_fraction * ceiling.base_m:
        return Check("cloud_base", "warn", f"{ceiling.describe()} is close above {what}: a climb or a lower "
                                           f"patch puts the drone in cloud", ceiling.base_m, need, "m")
    low = [c for c in w.clouds if c.base_m is not None and c.base_m < need]
    gaps = f"; {low[0].describe()} below it leaves gaps, keep clear of it" if low else ""
    if ceiling is None:
        return Check("cloud_base", "pass", f"no broken or overcast cloud (lowest: {w.clouds[0].describe()}); "
                                           f"clear of {what}{gaps}", "no ceiling", need, "m")
    return Check("cloud_base", "pass", f"{ceiling.describe()} is above {what}{gaps}", ceiling.base_m, need, "m")


def _icing_check(plan: FlightPlan, w: Weather) -> Check:
    """Visible moisture at or below the airframe's icing temperature: freezing rain or drizzle, freezing
    fog and snow whatever the thermometer says; rain, drizzle, fog, mist and cloud in the flight band
    at or below icing_temp_c. Unreadable or unreported weather near the icing line is unknown."""
    a, h = plan.airframe, plan.cruise_alt_m
    t, ti = w.temp_c, a.icing_temp_c
    band = h + a.cloud_clearance_m
    icing: list[str] = []  # ices whatever the temperature
    wet: list[str] = []  # ices at or below icing_temp_c
    for code in w.present_weather or ():
        g = wx_group(code)
        if g is None or g["int"] == "VC":
            continue
        kinds = [g["prec"][i:i + 2] for i in range(0, len(g["prec"]), 2)]
        if g["desc"] == "FZ" or any(k in _FROZEN for k in kinds):
            icing.append(_wx_words(code))
        elif any(k in _WET for k in kinds) or g["obsc"] in _WET_OBSC:
            wet.append(_wx_words(code))
    for c in w.clouds or ():
        if c.base_m is not None and c.base_m <= band and c.cover != "///":
            wet.append(f"{c.describe()} in the flight band (up to {band:g} m)")
    t_txt = "temperature unknown" if t is None else f"{t:.1f} °C"
    if t is not None and t <= ti and wet:
        icing += wet
        wet = []
    fail_status = "warn" if a.allow_icing else "fail"
    if icing:
        fix = ("the airframe is marked allow_icing: watch for power rising" if a.allow_icing else
               "propellers ice up and lose thrust; wait for it to pass or clear")
        return Check("icing", fail_status, f"icing: {'; '.join(icing)} at {t_txt} (icing at or below {ti:+g} °C "
                                           f"with visible moisture): {fix}", t, ti, "°C")
    margin = 2.0  # degrees above the icing line still worth a warning: the air aloft is colder
    if wet and (t is None or t <= ti + margin):
        why = "temperature not reported" if t is None else f"{t:.1f} °C is within {margin:g} °C of {ti:+g} °C"
        return Check("icing", "warn", f"{'; '.join(wet)} and {why}: icing possible; check the temperature "
                                      f"and the airframe before launch", t, ti, "°C")
    if t is not None and t > ti + margin:
        return Check("icing", "pass", f"{t:.1f} °C, above the {ti:+g} °C icing line", t, ti, "°C")
    unknown = [f"present weather {' '.join(w.unknown_weather)} could not be read"] if w.unknown_weather else []
    if w.present_weather is None:
        unknown.append("present weather not reported")
    if w.clouds is None:
        unknown.append("cloud not reported")
    if t is None:
        unknown.append("temperature not reported")
    if unknown:
        return Check("icing", "warn", f"icing unknown near {ti:+g} °C ({t_txt}): {'; '.join(unknown)}; "
                                      f"look for rain, drizzle, fog, snow or low cloud before launch", t, ti, "°C")
    return Check("icing", "pass", f"{t_txt}, near the {ti:+g} °C icing line but no visible moisture reported",
                 t, ti, "°C")


# -- energy -------------------------------------------------------------------------------------------

def _energy_checks(plan: FlightPlan, e: EnergyReport, weather_known: bool) -> list[Check]:
    a, ops = plan.airframe, plan.ops
    checks: list[Check] = []
    air = "" if weather_known else " in still air (no wind known)"
    if e.uncertainty_wh > 0:
        air += f" plus {e.uncertainty_wh:.0f} Wh for model error"
    # the battery's cold derating is said where the usable energy is
    cold = (f" ({e.battery_temp_factor:.0%} of the battery in this cold)" if e.battery_temp_factor < 0.999 else "")
    budget = e.usable_wh - e.reserve_wh
    # the largest parcel the operator could send now: energy, then the airframe's structural limits
    max_parcel = max(0.0, min(e.max_payload_kg, a.max_payload_kg, a.max_takeoff_mass_kg - a.empty_mass_kg))
    tail = (f"; at this wind the largest parcel is {max_parcel:.2f} kg and the largest out-and-back radius "
            f"{e.max_radius_m / 1000:.1f} km")
    if e.infeasible_legs:
        checks.append(Check("energy", "fail", f"cannot be computed: some legs cannot be flown against the wind{tail}",
                            None, budget, "Wh"))
    elif budget <= 0:
        checks.append(Check("energy", "fail",
                            f"the {e.reserve_wh:.0f} Wh reserve ({e.reserve_basis}) alone exceeds the {e.usable_wh:.0f} Wh "
                            f"usable battery at this mass: lighten the parcel or choose a larger airframe{tail}",
                            e.needed_wh, budget, "Wh"))
    elif e.margin_wh < 0:
        checks.append(Check("energy", "fail",
                            f"the flight needs {e.needed_wh:.0f} Wh{air} but only {budget:.0f} Wh is usable{cold} after the "
                            f"{e.reserve_wh:.0f} Wh reserve ({e.reserve_basis}): {-e.margin_wh:.0f} Wh short; lighten "
                            f"the parcel, choose a closer hub or a larger airframe{tail}",
                            e.needed_wh, budget, "Wh"))
    elif e.needed_wh + e.uncertainty_wh > ops.wind_warn_fraction * budget:
        checks.append(Check("energy", "warn",
                            f"the flight needs {e.needed_wh:.0f} Wh{air} of the {budget:.0f} Wh usable{cold} after the "
                            f"{e.reserve_wh:.0f} Wh reserve: only {e.margin_wh:.0f} Wh to spare{tail}",
                            e.needed_wh, budget, "Wh"))
    else:
        checks.append(Check("energy", "pass",
                            f"the flight needs {e.needed_wh:.0f} Wh{air} of the {budget:.0f} Wh usable{cold} after the "
                            f"{e.reserve_wh:.0f} Wh reserve ({e.reserve_basis}); {e.margin_wh:.0f} Wh to spare, "
                            f"{e.flight_time_s / 60:.1f} min of flight{tail}", e.needed_wh, budget, "Wh"))
    cruise = [le for le in e.legs if le.leg.kind == "cruise"]
    worst = max(cruise, key=lambda le: le.headwind_mps, default=None)
    if e.infeasible_legs:
        bad = sorted(e.infeasible_legs, key=lambda le: -le.headwind_mps)
        descr = "; ".join(f"{le.leg.label or 'leg'} on course {le.leg.course_deg:03.0f}° meets a {le.headwind_mps:.1f} "
                          f"m/s headwind" + (f" and {abs(le.crosswind_mps):.1f} m/s crosswind"
                                             if abs(le.crosswind_mps) >= 1 else "")
                          for le in bad[:3])
        more = f" and {len(e.infeasible_legs) - 3} more legs" if len(e.infeasible_legs) > 3 else ""
        checks.append(Check("headwind", "fail",
                            f"{descr}{more}: at its {a.max_speed_mps:g} m/s max airspeed the copter cannot make good "
                            f"its track; wait for the wind to drop", worst.headwind_mps if worst else None,
                            a.max_speed_mps, "m/s"))
    elif any(le.ground_speed_mps < a.cruise_speed_mps - 1e-6 for le in cruise):
        slow = min(cruise, key=lambda le: le.ground_speed_mps)
        checks.append(Check("headwind", "warn",
                            f"against a {slow.headwind_mps:.1f} m/s headwind the copter flies at its {a.max_speed_mps:g} "
                            f"m/s max airspeed and its ground speed drops to {slow.ground_speed_mps:.1f} m/s: the "
                            f"flight takes longer", slow.headwind_mps, a.max_speed_mps, "m/s"))
    else:
        hw = worst.headwind_mps if worst else 0.0
        checks.append(Check("headwind", "pass",
                            f"every leg holds {a.cruise_speed_mps:g} m/s ground speed; strongest headwind {hw:.1f} m/s",
                            hw, a.max_speed_mps, "m/s"))
    return checks


def _calibration_check(plan: FlightPlan, e: EnergyReport) -> Check:
    """Says how far the energy figure can be trusted; an airframe never flown is flagged."""
    cal = e.calibration
    src = f"efficiency {e.efficiency:.2f} ({e.efficiency_source})"
    if cal is None or not cal.calibrated:
        return Check("calibration", "warn",
                     f"airframe {plan.airframe.name!r} is uncalibrated: no flown flights yet, so "
                     f"{e.uncertainty_wh:.0f} Wh ({cal.margin if cal else 0:.0%}) is held back for model error; {src}",
                     0, None, "flights")
    return Check("calibration", "pass", f"{cal.describe()}; {e.uncertainty_wh:.0f} Wh held back; {src}",
                 cal.flights, None, "flights")


# -- payload ---------------------------------------------------------------------------------------

def _payload_checks(plan: FlightPlan, rho: float) -> list[Check]:
    a, ops, p = plan.airframe, plan.ops, plan.parcel
    frac = ops.wind_warn_fraction
    mtom = a.max_takeoff_mass_at(rho)
    thin = mtom < a.max_takeoff_mass_kg - 1e-6
    where = (f" in this air ({rho:.3f} kg/m3: {mtom:.2f} kg of the {a.max_takeoff_mass_kg:g} kg sea-level rating"
             f"{'' if a.takeoff_mass_limits else ', scaled with air density'})") if thin else ""
    checks = [
        _upper("payload_mass", p.mass_kg, a.max_payload_kg, frac, "kg", f"the parcel's mass",
               f"airframe {a.name!r} cannot lift it; split the parcel or choose a heavier-lift airframe"),
        _upper("takeoff_mass", a.empty_mass_kg + p.mass_kg, round(mtom, 3), frac, "kg",
               f"the take-off mass ({a.empty_mass_kg:g} kg airframe + {p.mass_kg:g} kg parcel){where}",
               "lighten the parcel or choose a heavier-lift airframe" + (" or wait for cooler air" if thin else "")),
    ]
    dims = sorted((p.length_m, p.width_m, p.height_m), reverse=True)
    box = sorted(a.cargo_box_m, reverse=True)
    size = "x".join(f"{d * 100:.0f}" for d in (p.length_m, p.width_m, p.height_m)) + " cm"
    box_txt = "x".join(f"{d * 100:.0f}" for d in a.cargo_box_m) + " cm"
    # sorted against sorted: if the parcel fits any axis-aligned way, it fits this one
    if all(d <= b for d, b in zip(dims, box)):
        checks.append(Check("parcel_size", "pass", f"the {size} parcel fits the {box_txt} cargo box", size, box_txt))
    else:
        over = [f"{d * 100:.0f} cm > {b * 100:.0f} cm" for d, b in zip(dims, box) if d > b]
        checks.append(Check("parcel_size", "fail", f"the {size} parcel does not fit the {box_txt} cargo box in any "
                            f"orientation ({', '.join(over)}): repack it smaller", size, box_txt))
    # an attended drop (the drone holds until the recipient, there in person, clears it) takes these
    refused = [(f, UNATTENDED_FORBIDDEN[f]) for f in p.handling if f in UNATTENDED_FORBIDDEN
               and not (p.attended and f in ATTENDED_OK)]
    if refused and p.attended:
        why = "; ".join(f"{f}: the parcel {reason}" for f, reason in refused)
        checks.append(Check("handling", "fail", f"{why}; not even an attended drop may carry it: send it by courier",
                            ", ".join(f for f, _ in refused)))
    elif refused:
        why = "; ".join(f"{f}: the parcel {reason}" for f, reason in refused)
        checks.append(Check("handling", "fail", f"{why}; a drone drop is unattended, send it by courier",
                            ", ".join(f for f, _ in refused)))
    elif "fragile" in p.handling and plan.method == "gripper":
        checks.append(Check("handling", "warn", f"a fragile parcel released by gripper falls {ops.drop_alt_m:g} m: "
                            f"use payload_place or winch", "fragile"))
    elif p.attended:
        flags = ", ".join(p.handling) or "none"
        hold = plan.hold.hold_s if plan.hold else 0
        checks.append(Check("handling", "pass", f"attended drop (handling flags: {flags}): the drone holds above the "
                            f"zone up to {hold:g} s for the recipient's clearance, then comes home with the parcel",
                            flags))
    else:
        flags = ", ".join(p.handling) or "none"
        checks.append(Check("handling", "pass", f"handling flags ({flags}) allow an unattended drop", flags))
    if plan.method in a.drop_methods:
        checks.append(Check("drop_method", "pass", f"airframe {a.name!r} can deliver by {plan.method}", plan.method,
                            ", ".join(a.drop_methods)))
    else:
        checks.append(Check("drop_method", "fail", f"airframe {a.name!r} cannot deliver by {plan.method}; it can by "
                            f"{', '.join(a.drop_methods)}", plan.method, ", ".join(a.drop_methods)))
    return checks


# -- airspace ---------------------------------------------------------------------------------------

def _airspace_checks(plan: FlightPlan, airspace: Airspace | None) -> list[Check]:
    ops = plan.ops
    checks: list[Check] = []
    # fence_alt_max is the AGL ceiling over the lowest ground on the route, in rel_home terms
    top = plan.cruise_alt_m
    ceiling = plan.fence_alt_max_m
    agl_zone = plan.cruise_alt_m - plan.zone_ground_rel_home_m
    if top > ceiling:
        checks.append(Check("ceiling", "fail",
                            f"cruise at {top:g} m above the hub is {agl_zone:.0f} m above the zone's ground, over the "
                            f"ceiling ({ceiling:g} m above the hub): lower cruise_alt_m", top, ceiling, "m"))
    elif top > ceiling - ops.vertical_margin_m:
        checks.append(Check("ceiling", "warn",
                            f"cruise at {top:g} m above the hub is within {ops.vertical_margin_m:g} m of the "
                            f"{ceiling:g} m ceiling: a climb in turbulence may breach the fence", top, ceiling, "m"))
    else:
        checks.append(Check("ceiling", "pass", f"cruise at {top:g} m above the hub ({agl_zone:.0f} m over the zone) "
                            f"stays under the {ceiling:g} m ceiling", top, ceiling, "m"))
    if airspace is None:
        checks.append(Check("route", "pass", f"route planned inside {plan.airspace_name!r} clear of no-fly zones "
                            f"(not re-checked: no airspace given)"))
    else:
        frame = airspace.frame
        pts = plan.route_out.points_ll + plan.route_back.points_ll[1:]
        xs, ys = frame.to_xy([p[0] for p in pts], [p[1] for p in pts])
        line = LineString(list(zip(xs, ys)))
        problems = []
        if not airspace.service_xy.buffer(0.5).covers(line):
            problems.append(f"leaves the service area {airspace.name!r}")
        relevant = airspace.blocking(plan.cruise_alt_m + ops.vertical_margin_m, plan.hub.elevation_m)
        for i in airspace.zones_hit(line, relevant):
            problems.append(f"crosses no-fly zone {airspace.zones[i].name!r}")
        if problems:
            checks.append(Check("route", "fail", f"the route {'; '.join(problems)}: re-plan with the current airspace",
                                "; ".join(problems)))
        else:
            checks.append(Check("route", "pass", f"the route stays inside {airspace.name!r} and clear of every "
                                f"no-fly zone at cruise height"))
    for w in plan.warnings:
        checks.append(Check("plan", "warn", w))
    return checks


def preflight(plan: FlightPlan, weather: Weather | None, *, now: datetime,
              airspace: Airspace | None = None, calibration: Calibration | None = None) -> Verdict:
    """Every check, never stopping at the first failure. `now` must be timezone-aware; the airspace,
    when given, re-checks the route geometry against it; the calibration is what flown flights of
    this airframe taught the energy model (none: uncalibrated, and the verdict says so)."""
    if now.tzinfo is None:
        raise InputError("must be timezone-aware (UTC)", field="now")
    checks = _weather_checks(plan, weather, now)
    energy = plan_energy(plan, weather, calibration=calibration)
    checks += _energy_checks(plan, energy, weather is not None and weather.wind_at(plan.cruise_alt_m) is not None)
    checks.append(_calibration_check(plan, energy))
    checks += _payload_checks(plan, energy.rho)
    checks += _airspace_checks(plan, airspace)
    return Verdict(checks=checks, checked_at=now, energy=energy, weather=weather, summary=plan.summary())
