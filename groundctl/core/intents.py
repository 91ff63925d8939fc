"""Operational intents: each accepted flight reserves a 4-D volume of sky, and no two of ours intersect.

The vocabulary is ASTM F3548-21's (UAS Traffic Management / USS interoperability), strategic
coordination part:

- an *operational intent* is the flight's plan as others must respect it: a set of *4-D volumes*
  (a horizontal area, an altitude band and a time window) that together contain the flight;
- two intents are in *conflict* when any volume of one intersects a volume of the other in all four
  dimensions;
- *strategic deconfliction* happens before departure, by changing the plan: here a later departure or
  another altitude layer. An intent that cannot be deconflicted is refused with the intents it meets;
- an intent is *Accepted* when planned and cleared, *Activated* when the vehicle takes off, and *Ended*
  at landing; while it flies, volumes it has flown through are released (the intent shrinks).

Flight Blender (openutm/flight-blender) keeps intents as lists of Volume4D with time_start/time_end and
an altitude_lower/altitude_upper in WGS84 metres, and checks a new intent against the accepted ones in
its declared area; this module does the same in the airspace's local metric frame.

Times here are plain seconds (a UNIX time, say) handed in by the caller: core reads no clock.
Altitudes are AMSL, so that hubs at different elevations share one vertical axis.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Iterable, Sequence

import numpy as np
import shapely
from shapely.geometry import LineString, Point, Polygon

STATES = ("accepted", "activated", "ended")


@dataclass(frozen=True)
class Volume4D:
    geometry: Polygon  # local metric frame of the airspace
    alt_lower_m: float  # AMSL
    alt_upper_m: float  # AMSL
    time_start: float  # seconds
    time_end: float
    label: str = ""  # what part of the flight: climb at hub, leg out 3, at zone, ...
    until_m: float = 0.0  # distance along the whole route (out and back) where this volume ends

    def meets(self, other: "Volume4D") -> bool:
        return (self.time_start < other.time_end and other.time_start < self.time_end
                and self.alt_lower_m < other.alt_upper_m and other.alt_lower_m < self.alt_upper_m
                and self.geometry.intersects(other.geometry))


@dataclass
class OperationalIntent:
    key: str  # the delivery it belongs to
    volumes: list[Volume4D]
    state: str = "accepted"
    departure: float = 0.0
    cruise_alt_m: float = 0.0  # rel_home: the altitude layer

    @property
    def time_start(self) -> float:
        return min(v.time_start for v in self.volumes)

    @property
    def time_end(self) -> float:
        return max(v.time_end for v in self.volumes)

    def shrink(self, now: float | None = None, flown_m: float | None = None) -> "OperationalIntent":
        """The intent as it stands: volumes whose time has passed (at `now`) and volumes the vehicle has
        left behind (it has flown `flown_m` of the route) are released; the vehicle's own column stays."""
        keep = [v for v in self.volumes
                if (now is None or v.time_end > now) and (flown_m is None or v.until_m >= flown_m)]
        return OperationalIntent(self.key, keep, "activated" if self.state != "ended" else "ended", self.departure,
                                 self.cruise_alt_m)


@dataclass(frozen=True)
class IntentParams:
    """How much sky a flight reserves around its plan."""

    corridor_half_width_m: float = 40.0  # lateral: navigation error plus the fence margin, each side
    vertical_buffer_m: float = 10.0  # above and below the cruise layer
    early_s: float = 20.0  # a flight may be ahead of its plan by this much
    start_allowance_s: float = 60.0  # from dispatch to take-off: upload, read-back, arming
    late_s: float = 30.0  # ... and behind it by this, plus late_fraction of the time flown so far
    late_fraction: float = 0.10  # headwind beyond the forecast makes late the likelier error
    piece_m: float = 400.0  # long legs are cut so each piece's time window stays short


@dataclass(frozen=True)
class FlightShape:
    """What the intent is built from: the route in the local frame, heights and the time spent on each part."""

    hub_xy: tuple[float, float]
    zone_xy: tuple[float, float]
    route_out_xy: Sequence[tuple[float, float]]
    route_back_xy: Sequence[tuple[float, float]]
    hub_elevation_m: float
    zone_ground_amsl_m: float
    cruise_alt_m: float  # rel_home
    cruise_speed_mps: float
    climb_s: float  # take-off to cruise height at the hub
    at_zone_s: float  # descent, drop (and any attended hold), climb back at the zone
    landing_s: float  # descent and landing at the hub
    zone_radius_m: float = 0.0


def _pieces(points: Sequence[tuple[float, float]], piece_m: float) -> list[tuple[list[tuple[float, float]], float]]:
    """Cut a polyline into pieces of at most piece_m: (points, length) each."""
    out: list[tuple[list[tuple[float, float]], float]] = []
    cur = [points[0]]
    cur_len = 0.0
    for (x0, y0), (x1, y1) in zip(points, points[1:]):
        seg = math.hypot(x1 - x0, y1 - y0)
        done = 0.0
        while seg - done > 1e-9:
            take = min(seg - done, piece_m - cur_len)
            done += take
            f = done / seg
            p = (x0 + (x1 - x0) * f, y0 + (y1 - y0) * f)
            cur.append(p)
            cur_len += take
            if cur_len >= piece_m - 1e-9:
                out.append((cur, cur_len))
                cur, cur_len = [p], 0.0
    if cur_len > 1e-9 or not out:
        out.append((cur, cur_len))
    return out


def build_intent(key: str, shape: FlightShape, departure: float, params: IntentParams = IntentParams()) -> OperationalIntent:
    """The 4-D volumes a flight leaving at `departure` occupies, with the plan's timing uncertainty."""
    p = params
    cruise_amsl = shape.hub_elevation_m + shape.cruise_alt_m
    band = (cruise_amsl - p.vertical_buffer_m, cruise_amsl + p.vertical_buffer_m)
    vols: list[Volume4D] = []
    t = departure

    def window(t0: float, t1: float) -> tuple[float, float]:
        return t0 - p.early_s, t1 + p.start_allowance_s + p.late_s + p.late_fraction * (t1 - departure)

    column = max(p.corridor_half_width_m, shape.zone_radius_m)
    hub_col = Point(shape.hub_xy).buffer(p.corridor_half_width_m, 16)
    vols.append(Volume4D(hub_col, shape.hub_elevation_m, band[1], *window(t, t + shape.climb_s), "climb at hub", 0.0))
    t += shape.climb_s
    along = 0.0
    for name, route in (("out", shape.route_out_xy), ("back", shape.route_back_xy)):
        for i, (pts, length) in enumerate(_pieces(route, p.piece_m)):
            dt = length / shape.cruise_speed_mps
            geom = (LineString(pts).buffer(p.corridor_half_width_m, 8) if len(pts) > 1 and length > 0
                    else Point(pts[0]).buffer(p.corridor_half_width_m, 8))
            along += length
            vols.append(Volume4D(geom, band[0], band[1], *window(t, t + dt), f"leg {name} {i + 1}", along))
            t += dt
        if name == "out":
            zone_col = Point(shape.zone_xy).buffer(column, 16)
            vols.append(Volume4D(zone_col, shape.zone_ground_amsl_m, band[1], *window(t, t + shape.at_zone_s),
                                 "at zone", along))
            t += shape.at_zone_s
    vols.append(Volume4D(hub_col, shape.hub_elevation_m, band[1], *window(t, t + shape.landing_s), "landing at hub",
                         along))
    return OperationalIntent(key, vols, "accepted", departure, shape.cruise_alt_m)


@dataclass(frozen=True)
class Conflict:
    mine: str  # the label of the new intent's volume
    other_key: str
    other: str  # the other intent's volume label
    overlap_s: float

    def describe(self) -> str:
        return f"{self.mine} meets delivery {self.other_key}'s {self.other} ({self.overlap_s:.0f} s overlap)"


class IntentIndex:
    """The accepted and activated intents, arranged so one new intent is checked against hundreds fast.

    Every volume's bounds sit in numpy columns: a new volume is compared with all of them at once on
    time, altitude and bounding box, and only the survivors get an exact polygon test."""

    def __init__(self, intents: Iterable[OperationalIntent] = ()) -> None:
        self.intents: dict[str, OperationalIntent] = {}
        for it in intents:
            self.intents[it.key] = it
        self._dirty = True

    def put(self, intent: OperationalIntent) -> None:
        if intent.state == "ended" or not intent.volumes:
            self.intents.pop(intent.key, None)
        else:
            self.intents[intent.key] = intent
        self._dirty = True

    def remove(self, key: str) -> None:
        self.intents.pop(key, None)
        self._dirty = True

    def __len__(self) -> int:
        return len(self.intents)

    def _build(self) -> None:
        vols = [(k, v) for k, it in self.intents.items() for v in it.volumes]
        self._keys = [k for k, _ in vols]
        self._vols = [v for _, v in vols]
        self._geoms = np.array([v.geometry for v in self._vols], dtype=object)
        b = shapely.bounds(self._geoms) if vols else np.zeros((0, 4))
        self._b = b
        self._alt = np.array([(v.alt_lower_m, v.alt_upper_m) for v in self._vols]).reshape(-1, 2)
        self._t = np.array([(v.time_start, v.time_end) for v in self._vols]).reshape(-1, 2)
        if vols:
            shapely.prepare(self._geoms)
        self._dirty = False

    def conflicts(self, intent: OperationalIntent, first_only: bool = False) -> list[Conflict]:
        if self._dirty:
            self._build()
        if not self._vols:
            return []
        out: list[Conflict] = []
        own = np.array([k != intent.key for k in self._keys])
        for v in intent.volumes:
            minx, miny, maxx, maxy = v.geometry.bounds
            m = (own & (self._t[:, 0] < v.time_end) & (self._t[:, 1] > v.time_start)
                 & (self._alt[:, 0] < v.alt_upper_m) & (self._alt[:, 1] > v.alt_lower_m)
                 & (self._b[:, 0] <= maxx) & (self._b[:, 2] >= minx) & (self._b[:, 1] <= maxy) & (self._b[:, 3] >= miny))
            idx = np.flatnonzero(m)
            if not len(idx):
                continue
            hit = idx[shapely.intersects(self._geoms[idx], v.geometry)]
            for i in hit:
                o = self._vols[i]
                out.append(Conflict(v.label, self._keys[i], o.label,
                                    min(v.time_end, o.time_end) - max(v.time_start, o.time_start)))
                if first_only:
                    return out
        return out

    def all_conflicts(self) -> list[tuple[str, str]]:
        """Every pair of intents in conflict (should be none). A sweep in time: each volume is compared only
        with the volumes whose windows open before it closes, then on altitude and box, then exactly."""
        if self._dirty:
            self._build()
        n = len(self._vols)
        if not n:
            return []
        keys = np.array(self._keys, dtype=object)
        order = np.argsort(self._t[:, 0], kind="stable")
        t0, t1 = self._t[order, 0], self._t[order, 1]
        alt, b, geoms, ks = self._alt[order], self._b[order], self._geoms[order], keys[order]
        pairs: set[tuple[str, str]] = set()
        for i in range(n):
            hi = int(np.searchsorted(t0, t1[i], side="left"))  # windows opening before this one closes
            if hi <= i + 1:
                continue
            j = np.arange(i + 1, hi)
            m = ((t1[j] > t0[i]) & (ks[j] != ks[i]) & (alt[j, 0] < alt[i, 1]) & (alt[j, 1] > alt[i, 0])
                 & (b[j, 0] <= b[i, 2]) & (b[j, 2] >= b[i, 0]) & (b[j, 1] <= b[i, 3]) & (b[j, 3] >= b[i, 1]))
            j = j[m]
            if len(j):
                for k in j[shapely.intersects(geoms[j], geoms[i])]:
                    pairs.add(tuple(sorted((ks[i], ks[k]))))
        return sorted(pairs)


@dataclass
class Deconfliction:
    ok: bool
    intent: OperationalIntent | None
    delay_s: float = 0.0
    cruise_alt_m: float | None = None
    conflicts: list[Conflict] = field(default_factory=list)  # what the wanted plan met
    reason: str = ""

    def to_dict(self) -> dict:
        return {"ok": self.ok, "delay_s": self.delay_s, "cruise_alt_m": self.cruise_alt_m,
                "departure": self.intent.departure if self.intent else None, "reason": self.reason,
                "conflicts": [c.describe() for c in self.conflicts[:10]]}


def deconflict(index: IntentIndex, key: str, departure: float, layers: Sequence[float],
               shape_at: Callable[[float], FlightShape], *, max_delay_s: float = 1800.0, step_s: float = 30.0,
               params: IntentParams = IntentParams()) -> Deconfliction:
    """The earliest clear departure, trying the planned layer first and the others at each delay.

    `layers` are cruise heights (rel_home) the route may fly at, the planned one first; `shape_at(alt)`
    gives the flight at that height. A later departure is preferred to another layer only when it is
    no later: the recipient waits the least."""
    shapes = {alt: shape_at(alt) for alt in layers}
    wanted = build_intent(key, shapes[layers[0]], departure, params)
    first = index.conflicts(wanted)
    if not first:
        return Deconfliction(True, wanted, 0.0, layers[0])
    delay = 0.0
    while delay <= max_delay_s + 1e-9:
        for alt in layers:
            if delay == 0.0 and alt == layers[0]:
                continue
            it = build_intent(key, shapes[alt], departure + delay, params)
            if not index.conflicts(it, first_only=True):
                how = []
                if delay:
                    how.append(f"departure {delay:.0f} s later")
                if alt != layers[0]:
                    how.append(f"cruise at {alt:g} m instead of {layers[0]:g} m")
                return Deconfliction(True, it, delay, alt, first, "deconflicted: " + " and ".join(how))
        delay += step_s
    others = sorted({c.other_key for c in first})
    return Deconfliction(False, None, 0.0, None, first,
                         f"the flight meets deliveries {', '.join(others)} in every layer "
                         f"({', '.join(f'{a:g} m' for a in layers)}) for departures up to {max_delay_s:.0f} s later: "
                         + "; ".join(c.describe() for c in first[:3]))


def shape_of(plan, frame) -> FlightShape:  # noqa: ANN001 (core.plan.FlightPlan, core.geo.LocalFrame)
    """A plan as the intent sees it: timings from its legs (still air), geometry in the airspace's frame,
    which every hub shares, so intents from different hubs compare."""
    legs = plan.legs
    first = next(i for i, lg in enumerate(legs) if lg.kind == "cruise")
    last = max(i for i, lg in enumerate(legs) if lg.kind == "cruise")
    out_end = max(i for i, lg in enumerate(legs) if lg.kind == "cruise" and lg.label == "out")
    back_start = min(i for i, lg in enumerate(legs) if lg.kind == "cruise" and lg.label == "back")
    t = [plan.leg_time_s(lg) for lg in legs]

    def xy(points_ll):
        return [tuple(map(float, frame.to_xy(lon, lat))) for lon, lat in points_ll]

    hub, zone = plan.hub, plan.zone
    return FlightShape(
        hub_xy=tuple(map(float, frame.to_xy(hub.lon, hub.lat))), zone_xy=tuple(map(float, frame.to_xy(zone.lon, zone.lat))),
        route_out_xy=xy(plan.route_out.points_ll), route_back_xy=xy(plan.route_back.points_ll),
        hub_elevation_m=hub.elevation_m, zone_ground_amsl_m=hub.elevation_m + plan.zone_ground_rel_home_m,
        cruise_alt_m=plan.cruise_alt_m, cruise_speed_mps=plan.airframe.cruise_speed_mps,
        climb_s=sum(t[:first]), at_zone_s=sum(t[out_end + 1:back_start]), landing_s=sum(t[last + 1:]),
        zone_radius_m=zone.clear_radius_m)


def layers_for(cruise_alt_m: float, spacing_m: float, lowest_m: float, count: int) -> list[float]:
    """The planned cruise height first, then layers below it. Only lower layers: the route was cleared
    for the band up to the planned height, and a lower band blocks no zone the higher one did not."""
    out = [cruise_alt_m]
    alt = cruise_alt_m - spacing_m
    while len(out) < count and alt >= lowest_m - 1e-9:
        out.append(round(alt, 3))
        alt -= spacing_m
    return out


def intent_to_json(intent: OperationalIntent, frame) -> dict:  # noqa: ANN001 (core.geo.LocalFrame)
    """Lon/lat on the outside, as everything stored is: the local frame moves when the airspace does."""
    return {"key": intent.key, "state": intent.state, "departure": intent.departure,
            "cruise_alt_m": intent.cruise_alt_m,
            "volumes": [{"outline": [[round(c, 7) for c in xy] for xy in frame.unproject(v.geometry).exterior.coords],
                         "alt_lower_m": v.alt_lower_m, "alt_upper_m": v.alt_upper_m,
                         "time_start": v.time_start, "time_end": v.time_end, "label": v.label, "until_m": v.until_m}
                        for v in intent.volumes]}


def intent_from_json(data: dict, frame) -> OperationalIntent:  # noqa: ANN001
    return intents_from_json([data], frame)[0]


def intents_from_json(items: Sequence[dict], frame) -> list[OperationalIntent]:  # noqa: ANN001
    """Many stored intents at once: every outline is projected in one call (a call per polygon costs more
    than the projection itself)."""
    flat = [v for d in items for v in d["volumes"]]
    local = np.zeros(0, dtype=object)
    if flat:
        sizes = np.array([len(v["outline"]) for v in flat])
        coords = np.array([c for v in flat for c in v["outline"]], dtype=float)
        ring_offsets = np.concatenate([[0], np.cumsum(sizes)])
        poly_offsets = np.arange(len(flat) + 1)  # one ring (the exterior) per polygon
        outlines = shapely.from_ragged_array(shapely.GeometryType.POLYGON, coords, (ring_offsets, poly_offsets))
        local = frame.project(outlines)
    out, k = [], 0
    for d in items:
        vols = []
        for v in d["volumes"]:
            vols.append(Volume4D(local[k], v["alt_lower_m"], v["alt_upper_m"], v["time_start"], v["time_end"],
                                 v.get("label", ""), v.get("until_m", 0.0)))
            k += 1
        out.append(OperationalIntent(str(d["key"]), vols, d.get("state", "accepted"), d.get("departure", 0.0),
                                     d.get("cruise_alt_m", 0.0)))
    return out


def scaled(shape: FlightShape, params: IntentParams, k: float) -> tuple[FlightShape, IntentParams]:
    """A flight whose clock runs 1/k times as fast as the wall clock (a simulator at speed-up 1/k): its
    durations, its timing uncertainty and its preparation (the simulator arms and climbs as fast as it
    flies) all shrink by k."""
    if k == 1.0:
        return shape, params
    s = FlightShape(**{**shape.__dict__, "climb_s": shape.climb_s * k, "at_zone_s": shape.at_zone_s * k,
                       "landing_s": shape.landing_s * k, "cruise_speed_mps": shape.cruise_speed_mps / k})
    p = IntentParams(**{**params.__dict__, "early_s": params.early_s * k, "late_s": params.late_s * k,
                        "start_allowance_s": params.start_allowance_s * k})
    return s, p
