"""Weather, normalised: one type whatever the source (METAR, an Open-Meteo style forecast, a file,
command-line values), so the preflight checks and the energy model never care where it came from.

Directions are where the wind blows *from*, degrees true. Heights are metres above ground (AGL).
Times are timezone-aware UTC. Core has no clock: every parser that needs "now" takes it.
"""

from __future__ import annotations

import math
import re
import warnings
from dataclasses import dataclass, replace
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from groundctl.core.airspace import load_json
from groundctl.errors import InputError

# Neutral-stability power law for wind over open terrain: V(h) = V(h_ref) * (h / h_ref) ** ALPHA.
# 1/7 is the textbook value (Hellmann exponent); it underestimates shear over rough towns, which is
# one reason the wind check warns at a fraction of the airframe's limit.
WIND_SHEAR_ALPHA = 1.0 / 7.0
SURFACE_WIND_HEIGHT_M = 10.0  # METAR and most forecast "surface" winds are measured at 10 m

KT_TO_MPS = 0.514444
KMH_TO_MPS = 1.0 / 3.6
MPH_TO_MPS = 0.44704


@dataclass(frozen=True)
class WindLevel:
    height_m: float  # AGL
    speed_mps: float
    dir_deg: float | None  # from, degrees true; None = variable (METAR VRB)


@dataclass(frozen=True)
class WindAt:
    """The wind at one height and how it was obtained (said in check messages)."""

    height_m: float
    speed_mps: float
    dir_deg: float | None
    dir_range_deg: tuple[float, float] | None
    how: str


@dataclass(frozen=True)
class CloudLayer:
    """One cloud layer. `cover` is the METAR amount (FEW 1-2 oktas, SCT 3-4, BKN 5-7, OVC 8) or VV (sky
    obscured: `base_m` is then the vertical visibility). `base_m` is AGL at the reporting point; None when
    the station could not measure it (`///`) or a forecast gives the amount but no height."""

    cover: str
    base_m: float | None
    kind: str | None = None  # CB, TCU
    note: str | None = None  # how it was obtained when not plainly observed (a forecast estimate)

    @property
    def is_ceiling(self) -> bool:
        # ICAO: the ceiling is the lowest broken or overcast layer (or vertical visibility)
        return self.cover in CEILING_COVERS

    def describe(self) -> str:
        if self.note:
            code = ""
        else:  # the METAR group as the operator would read it: hundreds of feet
            code = f" ({self.cover}{'///' if self.base_m is None else f'{round(self.base_m / 30.48):03d}'}" \
                   f"{self.kind or ''})"
        if self.cover == "VV":
            h = "not measured" if self.base_m is None else f"{self.base_m:.0f} m"
            return f"sky obscured, vertical visibility {h}{code}"
        h = "base not measured" if self.base_m is None else f"base {self.base_m:.0f} m"
        return f"{COVER_WORDS.get(self.cover, self.cover)} {h}" + (f" ({self.note})" if self.note else code)


CEILING_COVERS = ("BKN", "OVC", "VV")
COVER_WORDS = {"FEW": "few cloud", "SCT": "scattered cloud", "BKN": "broken cloud", "OVC": "overcast",
               "VV": "sky obscured", "///": "cloud of unknown amount"}
COVERS = ("FEW", "SCT", "BKN", "OVC", "VV", "///")


@dataclass(frozen=True)
class Weather:
    wind: tuple[WindLevel, ...]  # sorted by height; empty when no wind was reported
    valid_time: datetime
    source: str
    gust_mps: float | None = None  # at 10 m
    precip_mmph: float | None = None
    visibility_m: float | None = None
    temp_c: float | None = None
    wind_dir_range_deg: tuple[float, float] | None = None  # METAR dddVddd: direction varies between
    phenomena: tuple[str, ...] = ()  # METAR codes worth an operator's attention: TS, FG, FZ, GR, SQ, FC ...
    notes: tuple[str, ...] = ()
    # None = not reported (unknown); () = reported as none (METAR: no cloud group needed, CAVOK, NSC, NCD)
    clouds: tuple[CloudLayer, ...] | None = None
    # METAR present-weather groups as reported ("-SN", "FZFG", "BR"); None = not reported, () = none
    present_weather: tuple[str, ...] | None = None
    # groups that were reported but cannot be read ("//" from an automatic station, an unknown code):
    # the weather is then unknown, never "none"
    unknown_weather: tuple[str, ...] = ()
    dewpoint_c: float | None = None

    def __post_init__(self) -> None:
        if self.valid_time.tzinfo is None:
            raise InputError("must be timezone-aware (UTC)", field="weather.valid_time")
        object.__setattr__(self, "valid_time", self.valid_time.astimezone(timezone.utc))
        object.__setattr__(self, "wind", tuple(sorted(self.wind, key=lambda w: w.height_m)))
        if self.clouds is not None:
            object.__setattr__(self, "clouds", tuple(sorted(
                self.clouds, key=lambda c: (math.inf if c.base_m is None else c.base_m, c.cover))))

    @property
    def ceiling(self) -> CloudLayer | None:
        """The lowest broken/overcast layer or vertical visibility with a measured base."""
        return next((c for c in self.clouds or () if c.is_ceiling and c.base_m is not None), None)

    def age_s(self, now: datetime) -> float:
        """How far the observation/forecast hour is from `now`, either way (a forecast for tomorrow is as
        useless as yesterday's observation)."""
        return abs((now - self.valid_time).total_seconds())

    def wind_at(self, height_m: float) -> WindAt | None:
        """Wind at a height AGL.

        Between two reported levels: linear interpolation of speed (direction along the shorter arc).
        Outside them: the nearest level extrapolated with the power-law profile
        V(h) = V(h0) * (h / h0) ** (1/7) (neutral stability, open terrain). A METAR only has the 10 m
        wind, so cruise-height wind is always that extrapolation. None when no wind was reported.
        """
        if not self.wind:
            return None
        rng = self.wind_dir_range_deg
        levels = self.wind
        for lv in levels:
            if abs(lv.height_m - height_m) < 0.5:
                return WindAt(height_m, lv.speed_mps, lv.dir_deg, rng, f"reported at {lv.height_m:g} m")
        below = [lv for lv in levels if lv.height_m < height_m]
        above = [lv for lv in levels if lv.height_m > height_m]
        if below and above:
            lo, hi = below[-1], above[0]
            f = (height_m - lo.height_m) / (hi.height_m - lo.height_m)
            speed = lo.speed_mps + f * (hi.speed_mps - lo.speed_mps)
            if lo.dir_deg is None or hi.dir_deg is None:
                d = None
            else:
                diff = (hi.dir_deg - lo.dir_deg + 180.0) % 360.0 - 180.0
                d = (lo.dir_deg + f * diff) % 360.0
            return WindAt(height_m, speed, d, rng,
                          f"interpolated between {lo.height_m:g} m and {hi.height_m:g} m")
        ref = below[-1] if below else above[0]
        h = max(height_m, 1.0)
        speed = ref.speed_mps * (h / ref.height_m) ** WIND_SHEAR_ALPHA
        return WindAt(height_m, speed, ref.dir_deg, rng,
                      f"extrapolated from {ref.height_m:g} m with a 1/7 power-law profile")

    def gust_at(self, height_m: float) -> float | None:
        """Gust scaled to a height with the same power law as the mean wind (conservative: the gust
        factor falls with height, so this overstates gusts aloft rather than understating them)."""
        if self.gust_mps is None:
            return None
        return self.gust_mps * (max(height_m, 1.0) / SURFACE_WIND_HEIGHT_M) ** WIND_SHEAR_ALPHA

    def to_dict(self) -> dict:
        return {
            "source": self.source,
            "valid_time": self.valid_time.isoformat(),
            "wind": [{"height_m": w.height_m, "speed_mps": w.speed_mps, "dir_deg": w.dir_deg} for w in self.wind],
            "wind_dir_range_deg": list(self.wind_dir_range_deg) if self.wind_dir_range_deg else None,
            "gust_mps": self.gust_mps,
            "precip_mmph": self.precip_mmph,
            "visibility_m": self.visibility_m,
            "temp_c": self.temp_c,
            "phenomena": list(self.phenomena),
            "notes": list(self.notes),
            "clouds": None if self.clouds is None else [
                {"cover": c.cover, "base_m": c.base_m, "kind": c.kind, "note": c.note} for c in self.clouds],
            "present_weather": None if self.present_weather is None else list(self.present_weather),
            "unknown_weather": list(self.unknown_weather),
            "dewpoint_c": self.dewpoint_c,
        }


# -- validation helpers ------------------------------------------------------------------------------

def _num(value: Any, field: str, *, lo: float | None = None, hi: float | None = None,
         optional: bool = True) -> float | None:
    if value is None:
        if optional:
            return None
        raise InputError("is required", field=field)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise InputError(f"must be a finite number, got {value!r}", field=field)
    v = float(value)
    if lo is not None and v < lo:
        raise InputError(f"{v:g} is below the minimum {lo:g}", field=field)
    if hi is not None and v > hi:
        raise InputError(f"{v:g} is above the maximum {hi:g}", field=field)
    return v


def _dir(value: Any, field: str) -> float | None:
    v = _num(value, field, lo=0, hi=360)
    return None if v is None else v % 360.0


# -- command-line values and files --------------------------------------------------------------------

def weather_from_values(*, now: datetime, wind_mps: float | None = None, wind_dir_deg: float | None = None,
                        gust_mps: float | None = None, precip_mmph: float | None = None,
                        visibility_m: float | None = None, temp_c: float | None = None,
                        clouds: str | None = None, present_weather: str | list[str] | None = None,
                        height_m: float = SURFACE_WIND_HEIGHT_M, source: str = "command line") -> Weather:
    """Weather an operator typed in, valid at `now`. A wind speed without a direction is variable
    (the energy model then assumes a headwind on every leg). `clouds` are METAR sky groups ("OVC004",
    "NSC"), `present_weather` METAR groups ("-SN BR", "none"); either left out is unknown, not none."""
    if now.tzinfo is None:
        raise InputError("must be timezone-aware (UTC)", field="now")
    speed = _num(wind_mps, "wind", lo=0, hi=100)
    d = _dir(wind_dir_deg, "wind_dir")
    if d is not None and speed is None:
        raise InputError("a wind direction needs a wind speed (--wind)", field="wind_dir")
    gust = _num(gust_mps, "gust", lo=0, hi=150)
    if gust is not None and speed is not None and gust < speed:
        raise InputError(f"gust {gust:g} m/s is below the mean wind {speed:g} m/s", field="gust")
    wind = (WindLevel(_num(height_m, "wind_height_m", lo=0.5, hi=1000), speed, d),) if speed is not None else ()
    sky = None if clouds is None else parse_sky(clouds, "clouds")
    wx = _present_weather(present_weather, "wx")
    return Weather(wind=wind, valid_time=now, source=source, gust_mps=gust,
                   precip_mmph=_num(precip_mmph, "precip", lo=0, hi=500),
                   visibility_m=_num(visibility_m, "visibility", lo=0, hi=1_000_000),
                   temp_c=_num(temp_c, "temp", lo=-90, hi=70), clouds=sky, present_weather=wx,
                   phenomena=_phenomena(wx or (), sky))


def _parse_time(value: Any, field: str) -> datetime:
    if not isinstance(value, str):
        raise InputError(f"must be an ISO 8601 time string, got {value!r}", field=field)
    try:
        t = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise InputError(f"not an ISO 8601 time: {value!r}", field=field) from None
    if t.tzinfo is None:
        raise InputError(f"needs a UTC offset (e.g. {value}Z): {value!r}", field=field)
    return t.astimezone(timezone.utc)


WEATHER_KEYS = {"source", "valid_time", "wind", "wind_dir_range_deg", "gust_mps", "precip_mmph",
                "visibility_m", "temp_c", "phenomena", "notes", "clouds", "present_weather", "unknown_weather",
                "dewpoint_c"}


def _present_weather(value: Any, field: str) -> tuple[str, ...] | None:
    if value is None:
        return None
    if isinstance(value, str):
        value = value.split()
    if not isinstance(value, (list, tuple)) or not all(isinstance(c, str) for c in value):
        raise InputError("must be a list of METAR present-weather groups like \"-SN\" or \"FZFG\" "
                         "([] for none)", field=field)
    codes = [c.strip().upper() for c in value if c.strip()]
    if codes in (["NONE"], ["NSW"]):
        return ()
    for i, c in enumerate(codes):
        if wx_group(c) is None:
            hint = "; put groups nobody can read in unknown_weather" if field.endswith("present_weather") else ""
            raise InputError(f"{c!r} is not a METAR present-weather group (e.g. -RA, SN, FZFG, BR, TS){hint}",
                             field=f"{field}[{i}]")
    return tuple(codes)


def _clouds(value: Any, field: str) -> tuple[CloudLayer, ...] | None:
    if value is None:
        return None
    if isinstance(value, str):
        return parse_sky(value, field)
    if not isinstance(value, list):
        raise InputError("must be a list of {cover, base_m} ([] for no cloud) or METAR sky groups",
                         field=field)
    out = []
    for i, c in enumerate(value):
        f = f"{field}[{i}]"
        if not isinstance(c, dict):
            raise InputError("must be an object {cover, base_m, kind}", field=f)
        extra = set(c) - {"cover", "base_m", "kind", "note"}
        if extra:
            raise InputError(f"unknown keys {sorted(extra)}", field=f)
        cover = c.get("cover")
        if cover not in COVERS:
            raise InputError(f"must be one of {', '.join(COVERS)}, got {cover!r}", field=f"{f}.cover")
        kind = c.get("kind")
        if kind not in (None, "CB", "TCU"):
            raise InputError(f"must be CB, TCU or null, got {kind!r}", field=f"{f}.kind")
        note = c.get("note")
        if note is not None and not isinstance(note, str):
            raise InputError("must be a string", field=f"{f}.note")
        out.append(CloudLayer(cover, _num(c.get("base_m"), f"{f}.base_m", lo=0, hi=30000), kind, note))
    return tuple(out)


def weather_from_dict(obj: Any, field: str = "weather") -> Weather:
    """The inverse of Weather.to_dict(), validating every field."""
    if not isinstance(obj, dict):
        raise InputError(f"must be a JSON object, got {type(obj).__name__}", field=field)
    unknown = set(obj) - WEATHER_KEYS
    if unknown:
        raise InputError(f"unknown keys {sorted(unknown)} (known: {sorted(WEATHER_KEYS)})", field=field)
    if "valid_time" not in obj:
        raise InputError("is required", field=f"{field}.valid_time")
    wind_in = obj.get("wind") or []
    if not isinstance(wind_in, list):
        raise InputError("must be a list of {height_m, speed_mps, dir_deg}", field=f"{field}.wind")
    levels = []
    for i, w in enumerate(wind_in):
        f = f"{field}.wind[{i}]"
        if not isinstance(w, dict):
            raise InputError("must be an object {height_m, speed_mps, dir_deg}", field=f)
        levels.append(WindLevel(_num(w.get("height_m"), f"{f}.height_m", lo=0.5, hi=5000, optional=False),
                                _num(w.get("speed_mps"), f"{f}.speed_mps", lo=0, hi=150, optional=False),
                                _dir(w.get("dir_deg"), f"{f}.dir_deg")))
    rng = obj.get("wind_dir_range_deg")
    if rng is not None:
        if not isinstance(rng, list) or len(rng) != 2:
            raise InputError("must be [from_deg, to_deg]", field=f"{field}.wind_dir_range_deg")
        rng = (_dir(rng[0], f"{field}.wind_dir_range_deg[0]"), _dir(rng[1], f"{field}.wind_dir_range_deg[1]"))
    source = obj.get("source", "file")
    if not isinstance(source, str):
        raise InputError("must be a string", field=f"{field}.source")
    for key in ("phenomena", "notes", "unknown_weather"):
        v = obj.get(key) or []
        if not isinstance(v, list) or not all(isinstance(s, str) for s in v):
            raise InputError("must be a list of strings", field=f"{field}.{key}")
    clouds = _clouds(obj.get("clouds"), f"{field}.clouds")
    present = _present_weather(obj.get("present_weather"), f"{field}.present_weather")
    # the severe codes follow from the groups when those are given; an older file lists them alone
    phen = tuple(dict.fromkeys(tuple(obj.get("phenomena") or ()) +
                               (_phenomena(present, clouds) if present is not None else ())))
    return Weather(wind=tuple(levels), valid_time=_parse_time(obj["valid_time"], f"{field}.valid_time"),
                   source=source,
                   gust_mps=_num(obj.get("gust_mps"), f"{field}.gust_mps", lo=0, hi=150),
                   precip_mmph=_num(obj.get("precip_mmph"), f"{field}.precip_mmph", lo=0, hi=500),
                   visibility_m=_num(obj.get("visibility_m"), f"{field}.visibility_m", lo=0, hi=1_000_000),
                   temp_c=_num(obj.get("temp_c"), f"{field}.temp_c", lo=-90, hi=70),
                   wind_dir_range_deg=rng, phenomena=phen, notes=tuple(obj.get("notes") or ()),
                   clouds=clouds, present_weather=present, unknown_weather=tuple(obj.get("unknown_weather") or ()),
                   dewpoint_c=_num(obj.get("dewpoint_c"), f"{field}.dewpoint_c", lo=-90, hi=70))


def load_weather_file(path: str | Path, *, now: datetime | None = None) -> Weather:
    """A JSON file holding a Weather.to_dict() object, or a saved Open-Meteo forecast response (which
    needs `now` to pick the hour)."""
    p = Path(path)
    obj = load_json(p)
    if isinstance(obj, dict) and "hourly" in obj:
        if now is None:
            raise InputError("a saved forecast needs the current time to pick its hour", field=str(p))
        return parse_open_meteo(obj, now=now, field=p.name)
    w = weather_from_dict(obj, field=p.name)
    return w if obj.get("source") else replace(w, source=f"file {p.name}")


# -- METAR ---------------------------------------------------------------------------------------------

_TIME_GROUP = re.compile(r"\b(\d{2})(\d{2})(\d{2})Z\b")
# Rates in mm/h for the METAR intensity of each precipitation type. METAR reports no rate: these are
# the AMS/NWS intensity bands for rain (light < 2.5 mm/h, moderate 2.5-7.6, heavy > 7.6), drizzle
# (light < 0.3, moderate 0.3-0.5, heavy > 0.5) and snow as water equivalent, taken near the top of
# each band so that an estimate errs wet.
_PRECIP_RATE = {
    "DZ": {"-": 0.3, "": 0.5, "+": 1.0},
    "RA": {"-": 2.5, "": 7.6, "+": 15.0},
    "SN": {"-": 1.0, "": 2.5, "+": 5.0},
}
_PRECIP_DEFAULT = {"-": 2.5, "": 7.6, "+": 15.0}  # SG, IC, PL, GR, GS, UP: treat like rain
# codes kept in Weather.phenomena; preflight decides which of them ground a flight
_SEVERE = ("TS", "FC", "SQ", "GR", "GS", "FZ", "SS", "DS", "VA")


def _metar_time(text: str, now: datetime) -> datetime:
    """METAR says day/hour/minute only. The month and year are the latest ones that put the report
    at or before `now` (plus an hour of clock skew): a report from the 30th read on the 1st is last month's."""
    m = _TIME_GROUP.search(text)
    if not m:
        raise InputError("no observation time group (DDHHMMZ)", field="metar")
    day, hour, minute = (int(g) for g in m.groups())
    if not (1 <= day <= 31 and hour <= 23 and minute <= 59):
        raise InputError(f"observation time {m.group(0)} is not a valid day/hour/minute", field="metar")
    now = now.astimezone(timezone.utc)
    y, mo = now.year, now.month
    for _ in range(3):
        try:
            t = datetime(y, mo, day, hour, minute, tzinfo=timezone.utc)
        except ValueError:
            t = None
        if t is not None and t <= now + timedelta(hours=1):
            return t
        y, mo = (y, mo - 1) if mo > 1 else (y - 1, 12)
    raise InputError(f"observation day {day} fits no recent month before {now:%Y-%m-%d}", field="metar")


# one present-weather group (WMO FM 15 table 4678): intensity or proximity, descriptor, precipitation,
# obscuration, other. Anything else in that place is a group nobody can read.
_WX_GROUP = re.compile(r"^(?P<int>[-+]|VC)?(?P<desc>MI|PR|BC|DR|BL|SH|TS|FZ)?"
                       r"(?P<prec>(?:DZ|RA|SN|SG|IC|PL|GR|GS|UP)*)(?P<obsc>BR|FG|FU|VA|DU|SA|HZ|PY)?"
                       r"(?P<other>PO|SQ|FC|SS|DS)?$")
# a token in the present-weather place that the METAR parser did not take: letters with an optional
# intensity, or slashes (an automatic station whose sensor could not tell)
_WX_LIKE = re.compile(r"^(?:[-+]|VC)?(?:[A-Z]{2,9}|/{2,})$")
_SKY_GROUP = re.compile(r"^(FEW|SCT|BKN|OVC|VV|///)(\d{3}|///)(CB|TCU|///)?$")
NO_CLOUD_GROUPS = ("CAVOK", "NSC", "NCD", "SKC", "CLR")
FT_TO_M = 0.3048


def wx_group(code: str) -> dict[str, str] | None:
    """The parts of a present-weather group ("-FZDZ" -> int "-", desc "FZ", prec "DZ"), or None when
    it is not one."""
    m = _WX_GROUP.match(code or "")
    if not m or not any(m.group(k) for k in ("desc", "prec", "obsc", "other")):
        return None
    return {k: v or "" for k, v in m.groupdict().items()}


def _phenomena(codes: tuple[str, ...], clouds: tuple[CloudLayer, ...] | None) -> tuple[str, ...]:
    out: list[str] = []
    for code in codes:
        g = wx_group(code)
        if g is None:
            continue
        vicinity = g["int"] == "VC"
        body = code[2:] if vicinity else code.lstrip("+-")
        for key in _SEVERE:
            if key in body and (f"VC{key}" if vicinity else key) not in out:
                out.append(f"VC{key}" if vicinity else key)
        if g["obsc"] in ("FG", "BR", "HZ", "FU") and g["obsc"] not in out:
            out.append(g["obsc"])
    for c in clouds or ():
        if c.kind in ("CB", "TCU") and c.kind not in out:
            out.append(c.kind)
    return tuple(out)


def _precip_from_codes(codes: tuple[str, ...]) -> float:
    rate = 0.0
    for code in codes:
        g = wx_group(code)
        if g is None or g["int"] == "VC" or not g["prec"]:
            continue
        kinds = [g["prec"][i:i + 2] for i in range(0, len(g["prec"]), 2)]
        rate = max([rate] + [_PRECIP_RATE.get(k, _PRECIP_DEFAULT)[g["int"]] for k in kinds])
    return rate


def parse_sky(text: str, field: str = "clouds") -> tuple[CloudLayer, ...]:
    """METAR sky groups typed by an operator: "BKN008 OVC020", "VV002", or CAVOK / NSC / NCD / SKC / CLR
    for no cloud that matters. Heights are hundreds of feet, as in a METAR."""
    tokens = (text or "").upper().split()
    if not tokens:
        raise InputError("is empty: give METAR sky groups like BKN008, or NSC", field=field)
    if any(t in NO_CLOUD_GROUPS for t in tokens):
        if len(tokens) > 1:
            raise InputError(f"{text!r}: a no-cloud group stands alone", field=field)
        return ()
    layers = []
    for t in tokens:
        m = _SKY_GROUP.match(t)
        if not m:
            raise InputError(f"{t!r} is not a sky group (FEW/SCT/BKN/OVC/VV + 3 digits, hundreds of feet, "
                             f"e.g. OVC004), nor CAVOK/NSC/NCD/SKC/CLR", field=field)
        cover, h, kind = m.groups()
        layers.append(CloudLayer(cover, None if h == "///" else int(h) * 100 * FT_TO_M,
                                 None if kind in (None, "///") else kind))
    return tuple(layers)


def parse_metar(text: str, *, now: datetime) -> Weather:
    """A METAR (or SPECI) report. Wind is at 10 m; precipitation rate is estimated from the reported
    intensity (METAR carries none, except a US `Pxxxx` hourly remark, used when present).

    A present-weather group the parser cannot read (`//` from an automatic station, an unknown code)
    makes the present weather unknown; it is never read as "nothing to report". In a METAR the absence
    of a present-weather group does mean none observed (WMO FM 15), and the absence of a cloud group
    without CAVOK/NSC/NCD/SKC/CLR means the cloud is unknown.
    """
    from metar import Metar

    if now.tzinfo is None:
        raise InputError("must be timezone-aware (UTC)", field="now")
    if not isinstance(text, str) or not text.strip():
        raise InputError("is empty", field="metar")
    text = " ".join(text.split())
    t = _metar_time(text, now)
    unreadable: list[str] = []
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            m = Metar.Metar(text, month=t.month, year=t.year, strict=True)
    except Metar.ParserError as e:
        first = str(e).splitlines()[0].strip()
        # a report whose only trouble is a group in the present-weather place is still a report: keep
        # it and say the weather is unknown. Anything else (a broken wind group...) stays an error.
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                m = Metar.Metar(text, month=t.month, year=t.year, strict=False)
        except Metar.ParserError:
            m = None
        groups = list(getattr(m, "_unparsed_groups", []) or []) if m is not None else []
        if m is None or not groups or not all(_WX_LIKE.match(g) for g in groups):
            raise InputError(f"not a METAR the parser understands: {first}", field="metar") from None
        unreadable = groups
    if not m.station_id or m.time is None:
        raise InputError("no station identifier or observation time", field="metar")
    notes: list[str] = [f"METAR {m.station_id} {t:%Y-%m-%d %H:%MZ}"]
    tokens = text.split()
    body = tokens[:tokens.index("RMK")] if "RMK" in tokens else tokens
    wind: tuple[WindLevel, ...] = ()
    gust = None
    rng = None
    if m.wind_speed is not None:
        speed = m.wind_speed.value("MPS")
        d = m.wind_dir.value() if m.wind_dir is not None else None
        if speed == 0:
            d = None  # calm: a direction means nothing
        wind = (WindLevel(SURFACE_WIND_HEIGHT_M, speed, d),)
        if m.wind_gust is not None:
            gust = m.wind_gust.value("MPS")
        if m.wind_dir_from is not None and m.wind_dir_to is not None:
            rng = (m.wind_dir_from.value() % 360.0, m.wind_dir_to.value() % 360.0)
        if d is None and speed > 0:
            notes.append("variable wind direction: a headwind is assumed on every leg")
    else:
        notes.append("wind group missing")
    vis = None
    if m.vis is not None and "////" not in body:  # the parser reads a missing '////' group as 10 km
        vis = m.vis.value("M")
    elif "CAVOK" in body:
        vis = 10000.0
    if vis is None:
        notes.append("visibility group missing")
    temp = m.temp.value("C") if m.temp is not None else None
    dew = m.dewpt.value("C") if getattr(m, "dewpt", None) is not None else None
    codes: list[str] = []
    unmeasured_sky: list[str] = []
    for intensity, descriptor, prec, obsc, other in m.weather:
        code = "".join(c or "" for c in (intensity, descriptor, prec, obsc, other))
        if code == "NSW":
            continue
        if len(code) >= 6 and set(code) == {"/"}:
            # an automatic station's '//////' (or '/////////' with a type) is a sky group it could not
            # measure, read by the parser in the weather's place: the cloud is unknown, not the weather
            unmeasured_sky.append(code)
            continue
        if wx_group(code) is None:
            unreadable.append(code)  # '//' (sensor could not tell) and the like
        else:
            codes.append(code)
    if any(wx_group(c) and "UP" in wx_group(c)["prec"] for c in codes):
        notes.append("precipitation of unknown type (UP)")
    # clouds
    layers: list[CloudLayer] = []
    no_cloud = any(tok in NO_CLOUD_GROUPS for tok in body)
    for cover, height, cloud in getattr(m, "sky", []) or []:
        if cover in NO_CLOUD_GROUPS:
            continue
        layers.append(CloudLayer(cover if cover in COVERS else "///",
                                 height.value("M") if height is not None else None,
                                 cloud if cloud in ("CB", "TCU") else None))
    clouds: tuple[CloudLayer, ...] | None = tuple(layers) if (layers or no_cloud) else None
    if clouds is None:
        notes.append(f"cloud not measured ({' '.join(unmeasured_sky)})" if unmeasured_sky else "cloud group missing")
    present = tuple(codes)
    precip = _precip_from_codes(present)
    estimated = precip > 0
    if m.precip_1hr is not None:
        precip = max(precip, m.precip_1hr.value("CM") * 10.0)
        estimated = False
    elif estimated:
        notes.append("precipitation rate estimated from the METAR intensity")
    if unreadable:
        notes.append(f"present weather {' '.join(unreadable)} could not be read")
    return Weather(wind=wind, valid_time=t, source=f"METAR {m.station_id}", gust_mps=gust,
                   precip_mmph=precip, visibility_m=vis, temp_c=temp, wind_dir_range_deg=rng,
                   phenomena=_phenomena(present, clouds), notes=tuple(notes), clouds=clouds,
                   present_weather=present, unknown_weather=tuple(unreadable), dewpoint_c=dew)


# -- Open-Meteo style forecast -----------------------------------------------------------------------

_SPEED_UNITS = {"km/h": KMH_TO_MPS, "m/s": 1.0, "ms": 1.0, "mp/h": MPH_TO_MPS, "mph": MPH_TO_MPS,
                "kn": KT_TO_MPS, "kt": KT_TO_MPS, "knots": KT_TO_MPS}
_LEVEL_KEY = re.compile(r"^wind_speed_(\d+)m$")


def _series(hourly: dict, key: str, n: int, field: str) -> list | None:
    if key not in hourly:
        return None
    v = hourly[key]
    if not isinstance(v, list) or len(v) != n:
        raise InputError(f"must be a list as long as hourly.time ({n})", field=f"{field}.hourly.{key}")
    return v


def _value(series: list | None, i: int, field: str, scale: float = 1.0, lo: float | None = None,
           hi: float | None = None) -> float | None:
    if series is None or series[i] is None:
        return None
    v = _num(series[i], f"{field}[{i}]", lo=lo, hi=hi)
    return None if v is None else v * scale


def parse_open_meteo(obj: Any, *, now: datetime, field: str = "forecast") -> Weather:
    """An Open-Meteo /v1/forecast response with hourly data; the hour nearest `now` is used.

    Wind levels are every `wind_speed_<h>m` with its `wind_direction_<h>m`; units come from
    `hourly_units` (km/h, m/s, mp/h, kn; mm or inch; °C or °F; m or ft), times are local per
    `utc_offset_seconds` (ISO strings) or unix seconds.
    """
    if now.tzinfo is None:
        raise InputError("must be timezone-aware (UTC)", field="now")
    if not isinstance(obj, dict):
        raise InputError(f"must be a JSON object, got {type(obj).__name__}", field=field)
    if "error" in obj and obj.get("error"):
        raise InputError(f"the service reported an error: {obj.get('reason', 'no reason given')}", field=field)
    hourly = obj.get("hourly")
    if not isinstance(hourly, dict):
        raise InputError("missing: the response has no hourly data", field=f"{field}.hourly")
    units = obj.get("hourly_units") or {}
    if not isinstance(units, dict):
        raise InputError("must be an object", field=f"{field}.hourly_units")
    times = hourly.get("time")
    if not isinstance(times, list) or not times:
        raise InputError("missing or empty", field=f"{field}.hourly.time")
    n = len(times)
    offset = obj.get("utc_offset_seconds", 0)
    offset = _num(offset, f"{field}.utc_offset_seconds", lo=-86400, hi=86400) or 0.0
    stamps: list[datetime] = []
    for i, t in enumerate(times):
        f = f"{field}.hourly.time[{i}]"
        if isinstance(t, (int, float)) and not isinstance(t, bool):
            stamps.append(datetime.fromtimestamp(t, tz=timezone.utc))
            continue
        if not isinstance(t, str):
            raise InputError(f"must be an ISO time or unix seconds, got {t!r}", field=f)
        try:
            dt = datetime.fromisoformat(t.replace("Z", "+00:00"))
        except ValueError:
            raise InputError(f"not an ISO 8601 time: {t!r}", field=f) from None
        if dt.tzinfo is None:
            dt = dt.replace(tzinfo=timezone(timedelta(seconds=offset)))
        stamps.append(dt.astimezone(timezone.utc))
    i = min(range(n), key=lambda k: abs((stamps[k] - now).total_seconds()))

    def unit_scale(key: str, table: dict[str, float], default: str) -> float:
        u = units.get(key, default)
        u_norm = str(u).strip().lower()
        if u_norm not in table:
            raise InputError(f"unknown unit {u!r} (known: {', '.join(table)})", field=f"{field}.hourly_units.{key}")
        return table[u_norm]

    levels = []
    for key in hourly:
        mt = _LEVEL_KEY.match(key)
        if not mt:
            continue
        h = float(mt.group(1))
        sp = _value(_series(hourly, key, n, field), i, f"{field}.hourly.{key}",
                    unit_scale(key, _SPEED_UNITS, "km/h"), lo=0, hi=500)
        dkey = f"wind_direction_{mt.group(1)}m"
        ds = _series(hourly, dkey, n, field)
        d = _value(ds, i, f"{field}.hourly.{dkey}", lo=0, hi=360)
        if sp is not None:
            levels.append(WindLevel(h, sp, None if d is None or sp == 0 else d % 360.0))
    gust = _value(_series(hourly, "wind_gusts_10m", n, field), i, f"{field}.hourly.wind_gusts_10m",
                  unit_scale("wind_gusts_10m", _SPEED_UNITS, "km/h"), lo=0, hi=500)
    precip = _value(_series(hourly, "precipitation", n, field), i, f"{field}.hourly.precipitation",
                    unit_scale("precipitation", {"mm": 1.0, "inch": 25.4, "in": 25.4}, "mm"), lo=0, hi=1000)
    vis = _value(_series(hourly, "visibility", n, field), i, f"{field}.hourly.visibility",
                 unit_scale("visibility", {"m": 1.0, "ft": 0.3048, "km": 1000.0}, "m"), lo=0)
    temp_series = _series(hourly, "temperature_2m", n, field)
    temp = _value(temp_series, i, f"{field}.hourly.temperature_2m", lo=-150, hi=200)
    tu = str(units.get("temperature_2m", "°C")).strip().lower().replace("°", "")
    if tu not in ("c", "f"):
        raise InputError(f"unknown unit {units.get('temperature_2m')!r} (known: °C, °F)",
                         field=f"{field}.hourly_units.temperature_2m")
    if temp is not None and tu == "f":
        temp = (temp - 32.0) * 5.0 / 9.0
    notes = []
    if not levels:
        notes.append("no wind in the forecast hour")
    dew = _value(_series(hourly, "dew_point_2m", n, field), i, f"{field}.hourly.dew_point_2m", lo=-150, hi=200)
    if dew is not None and tu == "f":
        dew = (dew - 32.0) * 5.0 / 9.0
    low = _value(_series(hourly, "cloud_cover_low", n, field), i, f"{field}.hourly.cloud_cover_low", lo=0, hi=100)
    clouds = _forecast_low_cloud(low, temp, dew)
    code = _value(_series(hourly, "weather_code", n, field), i, f"{field}.hourly.weather_code", lo=0, hi=99)
    present: tuple[str, ...] | None = None
    unknown: tuple[str, ...] = ()
    if code is not None:
        if int(code) in WMO_CODES:
            present = WMO_CODES[int(code)]
        else:
            unknown = (f"WMO weather code {code:g}",)
    where = ""
    if isinstance(obj.get("latitude"), (int, float)) and isinstance(obj.get("longitude"), (int, float)):
        where = f" ({obj['latitude']:.3f}, {obj['longitude']:.3f})"
    return Weather(wind=tuple(levels), valid_time=stamps[i], source=f"forecast{where}", gust_mps=gust,
                   precip_mmph=precip, visibility_m=vis, temp_c=temp, notes=tuple(notes), clouds=clouds,
                   present_weather=present, unknown_weather=unknown, dewpoint_c=dew,
                   phenomena=_phenomena(present or (), clouds))


# Open-Meteo's `weather_code` (the subset of WMO 4677 it emits) as METAR groups, so that a forecast's
# snow or freezing drizzle meets the same icing rules as an observation's. 0-3 are cloud amounts only.
WMO_CODES: dict[int, tuple[str, ...]] = {
    0: (), 1: (), 2: (), 3: (),
    45: ("FG",), 48: ("FZFG",),  # 48: fog depositing rime
    51: ("-DZ",), 53: ("DZ",), 55: ("+DZ",), 56: ("-FZDZ",), 57: ("FZDZ",),
    61: ("-RA",), 63: ("RA",), 65: ("+RA",), 66: ("-FZRA",), 67: ("FZRA",),
    71: ("-SN",), 73: ("SN",), 75: ("+SN",), 77: ("SG",),
    80: ("-SHRA",), 81: ("SHRA",), 82: ("+SHRA",), 85: ("-SHSN",), 86: ("+SHSN",),
    95: ("TS",), 96: ("TSGS",), 99: ("TSGR",),
}
# Cloud base of a convective layer rises about 125 m per degree of dew-point spread (the lifted
# condensation level, Espy's rule: 400 ft per degC). A rough estimate for stratus too, but it is the only
# height a low-cloud amount comes with; a spread under 1 degC means cloud or fog near the ground either way.
LCL_M_PER_DEGC = 125.0
# Open-Meteo's cloud_cover_low is cloud and fog up to about 2 km above ground (ECMWF's low-cloud band)
LOW_CLOUD_TOP_M = 2000.0


def _forecast_low_cloud(low_pct: float | None, temp_c: float | None,
                        dew_c: float | None) -> tuple[CloudLayer, ...] | None:
    if low_pct is None:
        return None
    oktas = round(low_pct / 12.5)
    if oktas == 0:
        return ()
    cover = "FEW" if oktas <= 2 else "SCT" if oktas <= 4 else "BKN" if oktas <= 7 else "OVC"
    if temp_c is not None and dew_c is not None:
        base = max(0.0, temp_c - dew_c) * LCL_M_PER_DEGC
        note = (f"forecast low cloud {low_pct:.0f} %, base estimated from the {max(0.0, temp_c - dew_c):.1f} °C "
                f"dew-point spread")
        return (CloudLayer(cover, min(base, LOW_CLOUD_TOP_M), None, note),)
    return (CloudLayer(cover, None, None, f"forecast low cloud {low_pct:.0f} %, somewhere below about "
                                          f"{LOW_CLOUD_TOP_M:.0f} m; no dew point to estimate its base"),)
