"""Hubs, airframes, vehicles, operator settings (TOML) and landing zones (GeoJSON)."""

from __future__ import annotations

import functools
import math
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from shapely.geometry import Point, Polygon
from shapely.geometry.base import BaseGeometry

from groundctl.core import geojson as gj
from groundctl.core.airspace import Airspace
from groundctl.core.rotor import (DEFAULT_EFFICIENCY, DEFAULT_EFFICIENCY_SOURCE, air_density,
                                  density_limited_takeoff_mass_kg, fit_hover_efficiency)
from groundctl.errors import InputError, ValidationErrors

DropMethod = Literal["payload_place", "gripper", "winch"]
DROP_METHODS: tuple[str, ...] = ("payload_place", "gripper", "winch")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Hub(_Model):
    name: str = Field(min_length=1, max_length=100)
    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)
    elevation_m: float = Field(ge=-500, le=9000, description="ground elevation AMSL")
    heading_deg: float = Field(default=0.0, ge=0, lt=360)


class HoverEndurance(_Model):
    """One line of a spec sheet: hover time from a full battery to an empty one at a take-off mass."""

    takeoff_mass_kg: float = Field(gt=0, le=250)
    minutes: float = Field(gt=0, le=600)
    battery_wh: float | None = Field(default=None, gt=0, le=20_000, description="the airframe's battery_wh if not given")
    elevation_m: float = Field(default=0.0, ge=-500, le=9000, description="where it was measured (sea level)")
    temp_c: float = Field(default=15.0, ge=-60, le=60)


class TakeoffMassLimit(_Model):
    """The manufacturer's own maximum take-off mass at an altitude (and temperature)."""

    elevation_m: float = Field(ge=-500, le=9000)
    temp_c: float | None = Field(default=None, ge=-60, le=60, description="ISA for the elevation if not given")
    max_takeoff_mass_kg: float = Field(gt=0, le=250)


@functools.lru_cache(maxsize=256)
def _efficiency_of(figure_of_merit: float | None, points: tuple[HoverEndurance, ...], battery_wh: float,
                   disk_area_m2: float, avionics_w: float) -> tuple[float, str]:
    """Expert figure, else the spec-sheet fit, else the low default: (efficiency, where it comes from)."""
    if figure_of_merit is not None:
        return figure_of_merit, f"figure_of_merit {figure_of_merit:g} set in the fleet file"
    if not points:
        return DEFAULT_EFFICIENCY, DEFAULT_EFFICIENCY_SOURCE
    pts = [(h.takeoff_mass_kg, h.minutes, h.battery_wh or battery_wh, air_density(h.elevation_m, h.temp_c))
           for h in points]
    fit = fit_hover_efficiency(pts, disk_area_m2, avionics_w)
    return fit.efficiency, f"{fit.efficiency:.3f} {fit.describe()}"


class Airframe(_Model):
    """A multirotor type. Limits live here, not in code.

    Efficiency, in order of trust: `figure_of_merit` (an expert's whole-chain hover efficiency),
    else fitted to `hover_endurance` (the spec sheet), else a deliberately low default.
    """

    name: str = Field(min_length=1, max_length=100)
    empty_mass_kg: float = Field(gt=0, le=150, description="airframe + battery, no parcel")
    max_payload_kg: float = Field(gt=0, le=100)
    max_takeoff_mass_kg: float = Field(gt=0, le=250)
    battery_wh: float = Field(gt=0, le=20_000)
    battery_usable_fraction: float = Field(default=0.85, gt=0, le=1)
    rotor_count: int = Field(default=4, ge=3, le=16)
    rotor_diameter_m: float = Field(default=0.45, gt=0, le=5)
    figure_of_merit: float | None = Field(default=None, gt=0, le=1,
                                          description="expert override: whole-chain hover efficiency, ideal/electrical")
    hover_endurance: tuple[HoverEndurance, ...] = Field(default=(), max_length=20,
                                                        description="spec-sheet hover times at take-off masses")
    takeoff_mass_limits: tuple[TakeoffMassLimit, ...] = Field(
        default=(), max_length=20, description="the maker's MTOM by altitude; else max_takeoff_mass_kg scales with air density")
    drag_area_m2: float = Field(default=0.06, gt=0, le=10, description="Cd*A of the body, forward flight")
    avionics_power_w: float = Field(default=20.0, ge=0, le=5000)
    cruise_speed_mps: float = Field(default=12.0, gt=0, le=60)
    max_speed_mps: float = Field(default=18.0, gt=0, le=80)
    climb_speed_mps: float = Field(default=2.5, gt=0, le=20)
    descent_speed_mps: float = Field(default=1.5, gt=0, le=20)
    max_wind_mps: float = Field(default=10.0, gt=0, le=50)
    max_gust_mps: float = Field(default=14.0, gt=0, le=60)
    max_precip_mmph: float = Field(default=2.0, ge=0, le=500)
    min_visibility_m: float = Field(default=1500.0, ge=0)
    min_temp_c: float = Field(default=-10.0, ge=-80, le=60)
    max_temp_c: float = Field(default=45.0, ge=-80, le=80)
    # cloud and icing (weather preflight): the lowest broken/overcast layer or vertical visibility must
    # be this far above cruise height, so a climb in turbulence or a baro error never enters cloud
    cloud_clearance_m: float = Field(default=30.0, ge=0, le=1000, description="below a ceiling, metres")
    # visible moisture (rain, drizzle, fog, mist, cloud, snow) at or below this temperature ices
    # propellers; +3 °C leaves room for the colder air at height and evaporative cooling on the blades
    icing_temp_c: float = Field(default=3.0, ge=-30, le=15, description="icing below this, °C")
    allow_icing: bool = Field(default=False, description="ice-protected airframe: icing warns, not fails")
    min_clear_radius_m: float = Field(default=3.0, gt=0, le=1000)
    cargo_box_m: tuple[float, float, float] = Field(default=(0.35, 0.25, 0.2), description="inner L x W x H")
    drop_methods: tuple[DropMethod, ...] = ("payload_place", "gripper", "winch")
    winch_line_m: float = Field(default=20.0, gt=0, le=200)
    winch_rate_mps: float = Field(default=0.5, gt=0, le=10)
    gripper_servo: int = Field(default=9, ge=1, le=16)

    @model_validator(mode="after")
    def _masses(self) -> "Airframe":
        if self.empty_mass_kg >= self.max_takeoff_mass_kg:
            raise ValueError("max_takeoff_mass_kg must exceed empty_mass_kg")
        try:
            self._efficiency_and_source()
        except ValueError as e:
            raise ValueError(f"hover_endurance: {e}") from None
        if self.cruise_speed_mps > self.max_speed_mps:
            raise ValueError("cruise_speed_mps must not exceed max_speed_mps")
        if self.min_temp_c >= self.max_temp_c:
            raise ValueError("min_temp_c must be below max_temp_c")
        return self

    @field_validator("cargo_box_m")
    @classmethod
    def _box(cls, v: tuple[float, float, float]) -> tuple[float, float, float]:
        if any(not (0 < d <= 5) for d in v):
            raise ValueError("each cargo box dimension must be in (0, 5] m")
        return v

    @property
    def disk_area_m2(self) -> float:
        return self.rotor_count * math.pi * (self.rotor_diameter_m / 2) ** 2

    def _efficiency_and_source(self) -> tuple[float, str]:
        # derived from the fields every time (a copy with another battery or spec sheet refits), cached
        return _efficiency_of(self.figure_of_merit, self.hover_endurance, self.battery_wh, self.disk_area_m2,
                              self.avionics_power_w)

    @property
    def efficiency(self) -> float:
        """Whole-chain hover efficiency: ideal induced power / electrical power, avionics apart."""
        return self._efficiency_and_source()[0]

    @property
    def efficiency_source(self) -> str:
        return self._efficiency_and_source()[1]

    def max_takeoff_mass_at(self, rho: float) -> float:
        """Maximum take-off mass in air of this density: the maker's own limits when stated
        (interpolated in density, scaled with it beyond them), else the sea-level figure scaled."""
        if not self.takeoff_mass_limits:
            return density_limited_takeoff_mass_kg(self.max_takeoff_mass_kg, rho)
        pts = sorted((air_density(t.elevation_m, t.temp_c), t.max_takeoff_mass_kg) for t in self.takeoff_mass_limits)
        if all(r < 1.2 for r, _ in pts):
            # the stated limits are all for thin air: max_takeoff_mass_kg anchors sea level
            pts.append((air_density(0.0, 15.0), self.max_takeoff_mass_kg))
        if rho <= pts[0][0]:
            return pts[0][1] * rho / pts[0][0]
        for (r0, m0), (r1, m1) in zip(pts, pts[1:]):
            if rho <= r1:
                return m0 + (m1 - m0) * (rho - r0) / (r1 - r0)
        return min(self.max_takeoff_mass_kg, pts[-1][1])


class Vehicle(_Model):
    name: str = Field(min_length=1, max_length=100)
    airframe: str
    hub: str
    sysid: int = Field(default=1, ge=1, le=255)
    connection: str | None = Field(default=None, description="MAVLink URL, e.g. tcp:127.0.0.1:5760")


class Operations(_Model):
    """The operator's settings: margins, reserves, defaults."""

    cruise_alt_m: float = Field(default=60.0, gt=5, le=500, description="cruise height above home (rel_home)")
    lateral_margin_m: float = Field(default=30.0, ge=0, le=5000, description="clearance from no-fly zones")
    edge_margin_m: float = Field(default=20.0, ge=0, le=5000, description="clearance from the service-area edge")
    vertical_margin_m: float = Field(default=10.0, ge=0, le=500)
    reserve_fraction: float = Field(default=0.2, ge=0, lt=1, description="of usable energy kept in reserve")
    reserve_min_s: float = Field(default=120.0, ge=0, description="at least this much hover time in reserve")
    max_weather_age_s: float = Field(default=3600.0, gt=0)
    wind_warn_fraction: float = Field(default=0.8, gt=0, le=1, description="warn above this fraction of a limit")
    drop_method: DropMethod = "payload_place"
    drop_alt_m: float = Field(default=3.0, gt=0, le=50, description="release height for gripper drops")
    hover_at_zone_s: float = Field(default=30.0, ge=0, le=3600, description="time budgeted at the zone")
    attended_hold_s: float = Field(default=180.0, ge=10, le=1800,
                                   description="longest hold above the zone waiting for the recipient of an attended drop")
    zone_stale_after_days: float = Field(default=180.0, gt=0)
    # strategic deconfliction of our own flights (core/intents.py): lower layers and later departures
    layer_spacing_m: float = Field(default=15.0, ge=5, le=100, description="vertical distance between cruise layers")
    lowest_layer_m: float = Field(default=30.0, ge=10, le=500, description="lowest cruise height (rel_home) a layer may use")
    layer_count: int = Field(default=3, ge=1, le=10, description="cruise layers tried, the planned height first")
    max_departure_delay_s: float = Field(default=1800.0, ge=0, le=7200,
                                         description="longest a departure may be put back to clear another flight")
    fence_margin_m: float = Field(default=5.0, ge=0, le=100)
    fence_max_vertices: int = Field(default=70, ge=3, le=1000)
    reference_parcel_kg: float = Field(default=1.0, ge=0)


class Fleet(_Model):
    hubs: tuple[Hub, ...] = Field(default=(), alias="hub")
    airframes: tuple[Airframe, ...] = Field(default=(), alias="airframe")
    vehicles: tuple[Vehicle, ...] = Field(default=(), alias="vehicle")
    operations: Operations = Operations()
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @model_validator(mode="after")
    def _refs(self) -> "Fleet":
        for kind, items in (("hub", self.hubs), ("airframe", self.airframes), ("vehicle", self.vehicles)):
            seen: set[str] = set()
            for it in items:
                if it.name in seen:
                    raise ValueError(f"duplicate {kind} name {it.name!r}")
                seen.add(it.name)
        hubs = {h.name for h in self.hubs}
        frames = {a.name for a in self.airframes}
        for v in self.vehicles:
            if v.hub not in hubs:
                raise ValueError(f"vehicle {v.name!r}: unknown hub {v.hub!r}")
            if v.airframe not in frames:
                raise ValueError(f"vehicle {v.name!r}: unknown airframe {v.airframe!r}")
        return self

    def hub(self, name: str) -> Hub:
        for h in self.hubs:
            if h.name == name:
                return h
        raise InputError(f"unknown hub {name!r} (known: {', '.join(h.name for h in self.hubs)})", field="hub")

    def airframe(self, name: str) -> Airframe:
        for a in self.airframes:
            if a.name == name:
                return a
        raise InputError(f"unknown airframe {name!r} (known: {', '.join(a.name for a in self.airframes)})", field="airframe")

    def vehicle(self, name: str) -> Vehicle:
        for v in self.vehicles:
            if v.name == name:
                return v
        raise InputError(f"unknown vehicle {name!r} (known: {', '.join(v.name for v in self.vehicles)})", field="vehicle")


def pydantic_to_input_error(e: ValidationError, prefix: str = "") -> InputError:
    errs = []
    for err in e.errors():
        loc = ".".join(str(p) for p in err["loc"])
        msg = err["msg"].removeprefix("Value error, ")
        errs.append(InputError(msg, field=f"{prefix}{'.' if prefix and loc else ''}{loc}" or None))
    return errs[0] if len(errs) == 1 else ValidationErrors(errs)


def parse_fleet(data: dict[str, Any], source: str = "fleet") -> Fleet:
    try:
        return Fleet.model_validate(data)
    except ValidationError as e:
        raise pydantic_to_input_error(e, source) from None


def load_fleet(path: str | Path) -> Fleet:
    p = Path(path)
    try:
        data = tomllib.loads(p.read_text())
    except FileNotFoundError:
        raise InputError("file not found", field=str(p)) from None
    except tomllib.TOMLDecodeError as e:
        raise InputError(f"not valid TOML: {e}", field=str(p)) from None
    return parse_fleet(data, p.name)


# -- landing zones ----------------------------------------------------------------------------------

ZONE_FILE_PROPS = {"name", "clear_radius_m", "elevation_m", "instructions", "contact"}


class LandingZone(_Model):
    name: str = Field(min_length=1, max_length=100)
    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)
    clear_radius_m: float = Field(gt=0, le=500)
    elevation_m: float | None = Field(default=None, ge=-500, le=9000, description="ground AMSL; hub's if unknown")
    polygon: tuple[tuple[float, float], ...] | None = Field(default=None, description="optional outline, (lon, lat)")
    instructions: str | None = Field(default=None, max_length=2000)
    contact: str | None = Field(default=None, max_length=200)

    def outline_ll(self) -> BaseGeometry | None:
        return Polygon(self.polygon) if self.polygon else None


MAX_ZONE_VERTICES = 200  # a garden or a rooftop needs a few dozen; bounds planning and storage per zone
MAX_OUTLINE_REACH_M = 500.0  # as far as a clear radius may reach: an outline is a landing spot, not a district


def zone_outline(obj: Any, field: str = "polygon") -> tuple[tuple[float, float], ...]:
    """A landing-zone outline from a GeoJSON Polygon: one closed, simple ring of 2-D [lon, lat] positions.

    Only the validated ring is kept, so whatever else a client sent (altitudes, foreign members) is never
    stored and can never reach the planner.
    """
    if not isinstance(obj, dict):
        raise InputError("must be a GeoJSON Polygon object", field=field)
    extra = sorted(set(obj) - {"type", "coordinates"})
    if extra:
        raise InputError(f"unknown member {extra[0]!r}: an outline has only 'type' and 'coordinates'",
                         field=f"{field}.{extra[0]}")
    if obj.get("type") != "Polygon":
        raise InputError(f"geometry type {obj.get('type')!r} not allowed here (expected Polygon)", field=field)
    coords = obj.get("coordinates")
    cf = f"{field}.coordinates"
    if not isinstance(coords, list) or not coords:
        raise InputError("polygon coordinates must be a non-empty list of rings", field=cf)
    if len(coords) > 1:
        raise InputError("a landing-zone outline has no holes: give one ring", field=cf)
    ring = coords[0]
    if not isinstance(ring, list):
        raise InputError("a ring must be a list of positions", field=f"{cf}[0]")
    if len(ring) > MAX_ZONE_VERTICES + 1:
        raise InputError(f"{len(ring)} positions, more than the limit of {MAX_ZONE_VERTICES} vertices "
                         "(plus the closing position)", field=f"{cf}[0]")
    for i, p in enumerate(ring):
        if not isinstance(p, (list, tuple)) or len(p) != 2:
            raise InputError("a position must be [longitude, latitude] (2-D: no altitude or other members)",
                             field=f"{cf}[0][{i}]")
    gj.geometry(obj, field, ("Polygon",))  # closed ring, ranges, finite numbers, no self-intersection
    return tuple((float(x), float(y)) for x, y in ring)


def outline_geojson(ring: tuple[tuple[float, float], ...] | None) -> dict | None:
    """The stored (and served) form of a validated outline."""
    return None if not ring else {"type": "Polygon", "coordinates": [[[x, y] for x, y in ring]]}


def parse_landing_zones(obj: Any) -> list[LandingZone]:
    out = []
    names: set[str] = set()
    for i, f in enumerate(gj.feature_collection(obj)):
        props = gj.check_properties(f.get("properties"), ZONE_FILE_PROPS, f"features[{i}].properties",
                                    required={"name", "clear_radius_m"})
        label = f"features[{i}] ({props['name']})"
        geom = gj.geometry(f.get("geometry"), f"{label}.geometry", ("Point", "Polygon"))
        poly = None
        if isinstance(geom, Point):
            c = geom
        else:
            c = geom.representative_point() if not geom.centroid.within(geom) else geom.centroid
            poly = tuple(geom.exterior.coords)
        try:
            z = LandingZone(name=props["name"], lat=c.y, lon=c.x, clear_radius_m=props["clear_radius_m"],
                            elevation_m=props.get("elevation_m"), polygon=poly,
                            instructions=props.get("instructions"), contact=props.get("contact"))
        except ValidationError as e:
            raise pydantic_to_input_error(e, f"{label}.properties") from None
        if z.name in names:
            raise InputError(f"duplicate landing zone name {z.name!r}", field=f"{label}.properties.name")
        names.add(z.name)
        out.append(z)
    return out


def load_landing_zones(path: str | Path) -> list[LandingZone]:
    from groundctl.core.airspace import load_json

    try:
        return parse_landing_zones(load_json(path))
    except InputError as e:
        if e.field and not e.field.startswith(str(path)):
            raise InputError(e.reason, field=f"{Path(path).name}:{e.field}") from None
        raise


def validate_landing_zone(zone: LandingZone, airspace: Airspace, ops: Operations,
                          airframe: Airframe | None = None, field: str = "zone", outline_field: str | None = None) -> None:
    """Refuse a zone outside the service area or touching a buffered no-fly zone; all reasons at once.

    The outline, when given, is held to the same rules as the clear area around the centre: a recipient
    must not be able to draw a landing spot across the service-area edge or into a no-fly zone.
    """
    errors: list[InputError] = []
    frame = airspace.frame
    x, y = frame.to_xy(zone.lon, zone.lat)
    clear = Point(x, y).buffer(zone.clear_radius_m, quad_segs=16)
    of = outline_field or f"{field}.polygon"
    outline = frame.project(zone.outline_ll()) if zone.polygon else None
    if airframe is not None and zone.clear_radius_m < airframe.min_clear_radius_m:
        errors.append(InputError(
            f"{zone.clear_radius_m:g} m is smaller than airframe {airframe.name!r} needs ({airframe.min_clear_radius_m:g} m)",
            field=f"{field}.clear_radius_m"))
    inner = airspace.service_xy.buffer(-ops.edge_margin_m)
    if not inner.covers(Point(x, y)):
        if not airspace.service_xy.covers(Point(x, y)):
            errors.append(InputError(
                f"centre ({zone.lat:.6f}, {zone.lon:.6f}) is outside the service area {airspace.name!r}",
                field=f"{field}.position"))
        else:
            d = airspace.service_xy.exterior.distance(Point(x, y)) if hasattr(airspace.service_xy, "exterior") else 0
            errors.append(InputError(
                f"centre is {d:.0f} m from the service area edge, less than the {ops.edge_margin_m:g} m margin",
                field=f"{field}.position"))
    if outline is not None:
        reach = outline.hausdorff_distance(Point(x, y))
        if reach > MAX_OUTLINE_REACH_M:
            errors.append(InputError(f"the outline reaches {reach:.0f} m from the centre, more than "
                                     f"{MAX_OUTLINE_REACH_M:g} m", field=of))
        if not inner.covers(outline):
            if not airspace.service_xy.covers(outline):
                errors.append(InputError(f"the outline leaves the service area {airspace.name!r}", field=of))
            else:
                errors.append(InputError(f"the outline comes within {ops.edge_margin_m:g} m of the service area "
                                         "edge", field=of))
    top = ops.cruise_alt_m + ops.vertical_margin_m
    ground = zone.elevation_m if zone.elevation_m is not None else 0.0
    relevant = airspace.blocking(top, ground)
    near_centre = airspace.zones_hit(clear, relevant, margin_m=ops.lateral_margin_m)
    for i in near_centre:
        nfz = airspace.zones[i]
        d = airspace.zones_xy[i].distance(Point(x, y))
        where = "inside" if d == 0 else f"{d:.0f} m from"
        errors.append(InputError(
            f"centre is {where} no-fly zone {nfz.name!r}; the clear area must stay {ops.lateral_margin_m:g} m away",
            field=f"{field}.position"))
    if outline is not None:
        for i in airspace.zones_hit(outline, relevant, margin_m=ops.lateral_margin_m):
            if i in near_centre:
                continue  # said once, about the centre
            d = airspace.zones_xy[i].distance(outline)
            where = "enters" if d == 0 else f"comes {d:.0f} m from"
            errors.append(InputError(f"the outline {where} no-fly zone {airspace.zones[i].name!r}; it must stay "
                                     f"{ops.lateral_margin_m:g} m away", field=of))
    if errors:
        raise errors[0] if len(errors) == 1 else ValidationErrors(errors)
