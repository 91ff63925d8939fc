"""A delivery flight plan: route hub -> zone -> hub, legs, mission, fence, rally and parameters."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

import shapely
from pydantic import BaseModel, ConfigDict, Field
from shapely.geometry import LineString, Point, Polygon
from shapely.geometry.base import BaseGeometry

from groundctl.core import mavcmd as C
from groundctl.core.airspace import Airspace
from groundctl.core.fleet import Airframe, DropMethod, Fleet, Hub, LandingZone, Operations, validate_landing_zone
from groundctl.core.geo import bearing_deg, geodesic_distance_m
from groundctl.core.mission import MissionItem
from groundctl.core.planfiles import canonical_fence
from groundctl.core.routing import Route, RoutePlanner
from groundctl.errors import InputError

# ArduCopter's final landing and payload-place descent speed and the height it starts at (LAND_SPEED,
# LAND_ALT_LOW: their defaults, set explicitly so that the plan and the vehicle agree)
LAND_SPEED_MPS = 0.5
LAND_ALT_LOW_M = 10.0
HANDLING_FLAGS = ("signature", "age_check", "controlled_substance", "hazardous", "cold_chain", "fragile")
# These need a person at handover or special carriage: never dropped unattended by a drone.
UNATTENDED_FORBIDDEN = {
    "signature": "needs a recipient's signature",
    "age_check": "needs an age check at handover",
    "controlled_substance": "is a controlled substance that must be handed over in person",
    "hazardous": "is dangerous goods, not carried by drone",
}
# These can go by drone when the drop is attended: the drone holds above the zone and releases only
# once the recipient, there in person, clears the drop (core.plan AttendedHold).
ATTENDED_OK = ("signature", "age_check")


class Parcel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    mass_kg: float = Field(gt=0, le=1000, description="gross mass including packaging")
    length_m: float = Field(default=0.2, gt=0, le=10)
    width_m: float = Field(default=0.15, gt=0, le=10)
    height_m: float = Field(default=0.1, gt=0, le=10)
    description: str = Field(default="parcel", max_length=200)
    handling: tuple[Literal["signature", "age_check", "controlled_substance", "hazardous", "cold_chain", "fragile"], ...] = ()
    attended: bool = Field(default=False, description="released only after the recipient, present, clears the drop")

    @property
    def needs_person(self) -> bool:
        return any(f in ATTENDED_OK for f in self.handling)


@dataclass(frozen=True)
class AttendedHold:
    """Where an attended drop waits (mission indexes) and for how long (seconds of vehicle time).

    The vehicle holds with NAV_LOITER_TIME at `hold_seq` (cruise height over the zone); the DO_JUMP at
    `jump_seq` right after it sends the mission to `absent_seq` (climb-back over the zone, then home)
    when the hold time runs out, so the vehicle comes home with the parcel on its own even if the link
    is gone. Clearance is MAV_CMD_DO_SET_MISSION_CURRENT to `clear_seq`, the first drop item after the
    jump: AP_Mission::set_current_cmd starts it at once in a running mission.
    """

    hold_seq: int
    jump_seq: int
    clear_seq: int
    absent_seq: int
    hold_s: float


@dataclass(frozen=True)
class Leg:
    """One piece of the flight for the energy model. dz_m > 0 climbs; payload_kg carried throughout."""

    kind: Literal["climb", "cruise", "descent", "hover"]
    distance_m: float = 0.0
    course_deg: float = 0.0
    dz_m: float = 0.0
    hover_s: float = 0.0
    payload_kg: float = 0.0
    label: str = ""
    speed_mps: float | None = None  # vertical legs: the speed ArduPilot will use, if not the airframe's


@dataclass
class FlightPlan:
    hub: Hub
    zone: LandingZone
    airframe: Airframe
    ops: Operations
    parcel: Parcel
    method: DropMethod
    route_out: Route
    route_back: Route
    cruise_alt_m: float  # rel_home
    zone_ground_rel_home_m: float  # zone ground elevation minus hub elevation
    legs: list[Leg]
    mission: list[MissionItem]
    fence: list[MissionItem]
    rally: list[MissionItem]
    params: dict[str, float]
    fence_alt_max_m: float
    airspace_name: str
    warnings: list[str] = field(default_factory=list)
    fence_zones: list[str] = field(default_factory=list)
    airframe_reason: str = ""  # why this airframe: named by the operator, or what ruled the lighter ones out

    @property
    def distance_m(self) -> float:
        return self.route_out.length_m + self.route_back.length_m

    @property
    def hold(self) -> AttendedHold | None:
        """The attended hold, if the mission has one: a NAV_LOITER_TIME followed by a forward DO_JUMP."""
        m = self.mission
        for i in range(1, len(m) - 1):
            if m[i].command == C.NAV_LOITER_TIME and m[i + 1].command == C.DO_JUMP and m[i + 1].param1 > i + 1:
                return AttendedHold(hold_seq=i, jump_seq=i + 1, clear_seq=i + 2, absent_seq=int(m[i + 1].param1),
                                    hold_s=m[i].param1)
        return None

    @property
    def drop_seq(self) -> int:
        """Mission index of the item that releases the parcel."""
        for i, it in enumerate(self.mission):
            if it.command == C.NAV_PAYLOAD_PLACE or (it.command == C.DO_GRIPPER and it.param2 == C.GRIPPER_ACTION_RELEASE):
                return i
        raise AssertionError("plan has no drop item")

    def leg_time_s(self, leg: Leg) -> float:
        """One leg's duration in still air at the airframe's speeds."""
        a = self.airframe
        t = leg.hover_s
        if leg.kind == "cruise":
            t += leg.distance_m / a.cruise_speed_mps
        elif leg.kind == "climb":
            t += leg.dz_m / (leg.speed_mps or a.climb_speed_mps)
        elif leg.kind == "descent":
            t += -leg.dz_m / (leg.speed_mps or a.descent_speed_mps)
        return t

    def nominal_time_s(self) -> float:
        """Flight time in still air from the legs (the energy model refines it with wind)."""
        return sum(self.leg_time_s(leg) for leg in self.legs)

    def summary(self) -> dict:
        return {
            "hub": self.hub.name,
            "zone": self.zone.name,
            "airframe": self.airframe.name,
            "airframe_reason": self.airframe_reason,
            "method": self.method,
            "parcel_kg": self.parcel.mass_kg,
            "distance_out_m": round(self.route_out.length_m, 1),
            "distance_back_m": round(self.route_back.length_m, 1),
            "waypoints_out": len(self.route_out.points_ll) - 2,
            "cruise_alt_m": self.cruise_alt_m,
            "nominal_flight_time_s": round(self.nominal_time_s(), 1),
            "skirted_zones": self.route_out.skirted,
            "mission_items": len(self.mission),
            "fence_items": len(self.fence),
            "fence_zones": self.fence_zones,  # the no-fly zones and restrictions the fence excludes
            "rally_points": len(self.rally),
            "fence_alt_max_m": self.fence_alt_max_m,
            "attended_hold_s": self.hold.hold_s if self.hold else None,
            "warnings": self.warnings,
        }


def make_planner(airspace: Airspace, hub: Hub, ops: Operations) -> RoutePlanner:
    return RoutePlanner(airspace, lateral_margin_m=ops.lateral_margin_m, edge_margin_m=ops.edge_margin_m,
                        top_agl_m=ops.cruise_alt_m + ops.vertical_margin_m, ground_amsl_m=hub.elevation_m)


def _unfit(a: Airframe, parcel: Parcel, method: str) -> str | None:
    """Why airframe `a` cannot take the parcel by `method`, or None if it can."""
    if parcel.mass_kg > a.max_payload_kg:
        return f"cannot carry {parcel.mass_kg:g} kg (its maximum payload is {a.max_payload_kg:g} kg)"
    if method not in a.drop_methods:
        return f"cannot drop by {method} (it can: {', '.join(a.drop_methods)})"
    dims = sorted((parcel.length_m, parcel.width_m, parcel.height_m), reverse=True)
    if any(d > b for d, b in zip(dims, sorted(a.cargo_box_m, reverse=True))):
        box = "x".join(f"{d * 100:.0f}" for d in a.cargo_box_m)
        return f"cannot fit the parcel in its {box} cm cargo box"
    return None


def airframe_choice(fleet: Fleet, hub: Hub, parcel: Parcel, method: str) -> tuple[str, str]:
    """(airframe name, why): the lightest airframe based at the hub that can take the parcel by that method.

    When a lighter one cannot, the reason names it and says why, so that a plan never switches to
    another (heavier, hungrier, differently simulated) airframe silently. With none that can, the
    lightest is returned so that the preflight verdict can say what fails.
    """
    based = {v.airframe for v in fleet.vehicles if v.hub == hub.name}
    pool = sorted([a for a in fleet.airframes if a.name in based] or fleet.airframes, key=lambda a: a.empty_mass_kg)
    if not pool:
        raise InputError("the fleet has no airframe", field="airframe")
    where = f"at hub {hub.name!r}" if based else "in the fleet"
    what = f"{parcel.mass_kg:g} kg by {method}"
    skipped = []
    for a in pool:
        why = _unfit(a, parcel, method)
        if why is None:
            if not skipped:
                return a.name, f"{a.name}: the lightest airframe {where} that can take {what}"
            return a.name, f"{a.name} chosen: " + "; ".join(f"{n} {w}" for n, w in skipped)
        skipped.append((a.name, why))
    return pool[0].name, f"{pool[0].name}: no airframe {where} can take {what} (" + \
        "; ".join(f"{n} {w}" for n, w in skipped) + ")"


def choose_default(fleet: Fleet, hub: Hub) -> str | None:
    """The airframe a delivery from this hub gets when nothing rules it out: the lightest based there."""
    based = {v.airframe for v in fleet.vehicles if v.hub == hub.name}
    pool = [a for a in fleet.airframes if a.name in based] or list(fleet.airframes)
    return min(pool, key=lambda a: a.empty_mass_kg).name if pool else None


def choose_airframe(fleet: Fleet, hub: Hub, parcel: Parcel, method: str) -> str:
    """The lightest airframe based at the hub that can carry the parcel by that method (see airframe_choice)."""
    return airframe_choice(fleet, hub, parcel, method)[0]


# Hover held over the zone at cruise height before the drop and again after it: the flight monitor
# compares the throttle of the two (same place, height and wind) to tell a release from a jammed
# gripper. Without them a payload place never hovers with its parcel, and in wind the outbound and
# return legs fly different airspeeds, so the throttle could not be compared at all.
WEIGH_S = 5.0


# SRV_Channel::Aux_servo_function_t (libraries/SRV_Channel/SRV_Channel.h)
SERVO_FUNCTION_GRIPPER = 28
SERVO_FUNCTION_WINCH = 88


def winch_servo(airframe: Airframe) -> int:
    """The output the winch is wired to: the first one after the gripper's that no motor uses."""
    free = [n for n in range(1, 17) if n > airframe.rotor_count and n != airframe.gripper_servo]
    if not free:
        raise InputError(f"airframe {airframe.name!r}: no servo output left for a winch beside {airframe.rotor_count} "
                         f"motors and the gripper on SERVO{airframe.gripper_servo}", field="airframe.gripper_servo")
    return next((n for n in free if n > airframe.gripper_servo), free[0])


def drop_device_params(airframe: Airframe, method: str) -> dict[str, float]:
    """What ArduPilot needs for the drop device to be there and healthy (checked in its source).

    Gripper (AP_Gripper): GRIP_ENABLE and GRIP_TYPE 1 (servo) are read at boot; the servo output is
    SERVOn_FUNCTION 28. Every method carries the parcel in the gripper (the winch's hook is one).
    Winch (AP_Winch_PWM): WINCH_TYPE 1 (read at boot) and a SERVOn_FUNCTION 88 output, without which
    AP_Winch_PWM::healthy() is false and arming fails "PreArm: winch unhealthy". A DO_WINCH length
    command pays out at WINCH_RATE_MAX whatever rate the item asks for (ModeAuto::do_winch ->
    AP_Winch::release_length, position control with WINCH_POS_P), so the rate the plan times the
    lowering with is set there. The line length it reports is the commanded one (no encoder).
    """
    if airframe.gripper_servo <= airframe.rotor_count:
        raise InputError(f"SERVO{airframe.gripper_servo} drives motor {airframe.gripper_servo} of airframe "
                         f"{airframe.name!r} ({airframe.rotor_count} rotors): put the gripper on an output above "
                         f"{airframe.rotor_count}", field="airframe.gripper_servo")
    p: dict[str, float] = {"GRIP_ENABLE": 1, "GRIP_TYPE": 1,
                           f"SERVO{airframe.gripper_servo}_FUNCTION": SERVO_FUNCTION_GRIPPER}
    if method == "winch":
        p.update({"WINCH_TYPE": 1, f"SERVO{winch_servo(airframe)}_FUNCTION": SERVO_FUNCTION_WINCH,
                  "WINCH_RATE_MAX": airframe.winch_rate_mps, "WINCH_POS_P": 1.0})
    return p


def _wp(lon: float, lat: float, alt: float, label: str = "", hold_s: float = 0.0) -> MissionItem:
    return MissionItem(C.NAV_WAYPOINT, C.FRAME_GLOBAL_RELATIVE_ALT_INT, param1=hold_s, lat=lat, lon=lon, alt=alt, label=label)


def _legs_for(route: Route, payload_kg: float, label: str) -> list[Leg]:
    legs = []
    ll = route.points_ll
    for (lon1, lat1), (lon2, lat2) in zip(ll, ll[1:]):
        d = geodesic_distance_m(lon1, lat1, lon2, lat2)
        if d > 0.01:
            legs.append(Leg("cruise", distance_m=d, course_deg=bearing_deg(lon1, lat1, lon2, lat2), payload_kg=payload_kg, label=label))
    return legs


HOLD_LABEL = "hold for the recipient"


def _hold_time(hold_s: float) -> float:
    # AP_Mission keeps NAV_LOITER_TIME's time as a uint16 of whole seconds (Mission_Command.p1)
    if not (isinstance(hold_s, (int, float)) and math.isfinite(hold_s) and 10 <= hold_s <= 1800):
        raise InputError(f"hold time must be 10 to 1800 s, got {hold_s!r}", field="hold_s")
    return float(math.ceil(hold_s))


def _attended(items: list[MissionItem], lon: float, lat: float, alt: float, hold_s: float,
              kg: float) -> tuple[list[MissionItem], Leg]:
    """Insert the hold after the weigh waypoint over the zone: NAV_LOITER_TIME at cruise height (clear of
    everything the route was planned over, and what the recipient sees arrive), then a DO_JUMP past the
    drop to the climb-back waypoint. The jump runs only when the hold's time is up (AP_Mission
    advance_current_nav_cmd -> get_next_cmd follows it); a clearance skips it by setting the current
    item to the drop (ModeAuto verify_loiter_time never completes the hold early)."""
    weigh = next(i for i, it in enumerate(items) if it.label == "over zone: weigh")
    back = next(i for i, it in enumerate(items) if it.label.startswith("climb") and it.label.endswith("weigh"))
    hold = MissionItem(C.NAV_LOITER_TIME, C.FRAME_GLOBAL_RELATIVE_ALT_INT, param1=hold_s, lat=lat, lon=lon, alt=alt,
                       label=HOLD_LABEL)
    # repeat -1: AP_MISSION_JUMP_REPEAT_FOREVER, a forward jump taken every time the hold runs out
    jump = MissionItem(C.DO_JUMP, C.FRAME_MISSION, param1=back + 2, param2=-1, label="recipient absent: home with the parcel")
    out = items[:weigh + 1] + [hold, jump] + items[weigh + 1:]
    return out, Leg("hover", hover_s=hold_s, payload_kg=kg, label=HOLD_LABEL)


def build_plan(airspace: Airspace, fleet: Fleet, hub_name: str, zone: LandingZone, parcel: Parcel, *,
               airframe_name: str | None = None, method: DropMethod | None = None,
               planner: RoutePlanner | None = None, hold_s: float | None = None) -> FlightPlan:
    """Plan one delivery. Raises InputError for a bad zone/method, NoRouteError when no path exists.

    An attended parcel (Parcel.attended) holds above the zone for up to `hold_s` (default
    Operations.attended_hold_s) before its drop; see AttendedHold."""
    hub = fleet.hub(hub_name)
    ops = fleet.operations
    method = method or ops.drop_method
    auto, auto_reason = airframe_choice(fleet, hub, parcel, method)
    # naming the airframe the choice would make (a stored delivery rebuilt) is the same plan
    if airframe_name is None or airframe_name == auto:
        airframe_name, airframe_reason = auto, auto_reason
        # not the lightest the hub has: a different vehicle flies, and the operator must know it
        switched = auto != choose_default(fleet, hub)
    else:
        airframe_reason, switched = f"{airframe_name}: named by the operator", False
    airframe = fleet.airframe(airframe_name)
    if method not in airframe.drop_methods:
        raise InputError(f"airframe {airframe.name!r} cannot drop by {method!r} (it can: {', '.join(airframe.drop_methods)})",
                         field="method")
    validate_landing_zone(zone, airspace, ops, airframe)
    planner = planner or make_planner(airspace, hub, ops)
    route_out = planner.route((hub.lon, hub.lat), (zone.lon, zone.lat))
    route_back = route_out.reversed()

    cruise = ops.cruise_alt_m
    zone_ground = (zone.elevation_m - hub.elevation_m) if zone.elevation_m is not None else 0.0
    above_zone = cruise - zone_ground  # height above the zone's ground at cruise
    if above_zone < 10:
        raise InputError(f"the zone's ground is {zone_ground:.0f} m above the hub: cruise height {cruise:g} m leaves "
                         f"only {above_zone:.0f} m clearance", field="zone.elevation_m")
    warnings: list[str] = [f"airframe {airframe_reason}"] if switched else []
    kg = parcel.mass_kg

    # -- mission ---------------------------------------------------------------------------------
    home = MissionItem(C.NAV_WAYPOINT, C.FRAME_GLOBAL, lat=hub.lat, lon=hub.lon, alt=hub.elevation_m, label="home")
    items = [home,
             MissionItem(C.NAV_TAKEOFF, C.FRAME_GLOBAL_RELATIVE_ALT_INT, lat=0, lon=0, alt=cruise, label="take off"),
             MissionItem(C.DO_CHANGE_SPEED, C.FRAME_MISSION, param1=1, param2=airframe.cruise_speed_mps, param3=-1,
                         label="cruise speed")]
    for lon, lat in route_out.points_ll[1:-1]:
        items.append(_wp(lon, lat, cruise, "out"))
    legs: list[Leg] = [Leg("climb", dz_m=cruise, payload_kg=kg, label="take off")]
    legs += _legs_for(route_out, kg, "out")

    zl, zt = zone.lon, zone.lat
    at_zone = len(legs)
    if method == "payload_place":
        # ArduPilot flies to the item's position at its current altitude, then descends until it senses
        # touchdown; param1 is the maximum descent (m) and must exceed what is needed, or the parcel
        # comes home ("PayloadPlace: Reached maximum descent").
        max_descent = math.ceil(above_zone + 10.0)
        items += [_wp(zl, zt, cruise, "over zone: weigh", hold_s=WEIGH_S),
                  MissionItem(C.NAV_PAYLOAD_PLACE, C.FRAME_GLOBAL_RELATIVE_ALT_INT, param1=max_descent,
                              lat=zt, lon=zl, alt=cruise, label="payload place"),
                  _wp(zl, zt, cruise, "climbed back: weigh", hold_s=WEIGH_S)]
        # PayloadPlace::run descends the whole way at LAND_SPEED (or PLDP_SPEED_DN), not WPNAV_SPEED_DN
        legs += [Leg("descent", dz_m=-above_zone, payload_kg=kg, label="lower to ground",
                     speed_mps=min(LAND_SPEED_MPS, airframe.descent_speed_mps)),
                 Leg("hover", hover_s=ops.hover_at_zone_s, payload_kg=0.0, label="release"),
                 Leg("climb", dz_m=above_zone, payload_kg=0.0, label="climb back")]
    elif method == "gripper":
        drop_alt = zone_ground + ops.drop_alt_m
        items += [_wp(zl, zt, cruise, "over zone: weigh", hold_s=WEIGH_S),
                  _wp(zl, zt, drop_alt, "down to drop height"),
                  MissionItem(C.DO_GRIPPER, C.FRAME_MISSION, param1=1, param2=C.GRIPPER_ACTION_RELEASE, label="release"),
                  MissionItem(C.NAV_LOITER_TIME, C.FRAME_GLOBAL_RELATIVE_ALT_INT, param1=3, lat=zt, lon=zl, alt=drop_alt,
                              label="let go"),
                  _wp(zl, zt, cruise, "climb back: weigh", hold_s=WEIGH_S)]
        d = cruise - drop_alt
        legs += [Leg("descent", dz_m=-d, payload_kg=kg), Leg("hover", hover_s=ops.hover_at_zone_s, payload_kg=0.0),
                 Leg("climb", dz_m=d, payload_kg=0.0)]
    else:  # winch
        h_agl = min(above_zone, airframe.winch_line_m - 2.0, 25.0)
        hover_alt = zone_ground + h_agl
        line = h_agl + 0.5
        pay_s = math.ceil(line / airframe.winch_rate_mps) + 3
        items += [_wp(zl, zt, cruise, "over zone: weigh", hold_s=WEIGH_S),
                  _wp(zl, zt, hover_alt, "winch height"),
                  MissionItem(C.DO_WINCH, C.FRAME_MISSION, param1=1, param2=C.WINCH_RELATIVE_LENGTH_CONTROL, param3=line,
                              param4=airframe.winch_rate_mps, label="lower parcel"),
                  MissionItem(C.NAV_LOITER_TIME, C.FRAME_GLOBAL_RELATIVE_ALT_INT, param1=pay_s, lat=zt, lon=zl, alt=hover_alt,
                              label="lowering"),
                  MissionItem(C.DO_GRIPPER, C.FRAME_MISSION, param1=1, param2=C.GRIPPER_ACTION_RELEASE, label="release"),
                  MissionItem(C.NAV_LOITER_TIME, C.FRAME_GLOBAL_RELATIVE_ALT_INT, param1=3, lat=zt, lon=zl, alt=hover_alt,
                              label="let go"),
                  MissionItem(C.DO_WINCH, C.FRAME_MISSION, param1=1, param2=C.WINCH_RELATIVE_LENGTH_CONTROL, param3=-line,
                              param4=airframe.winch_rate_mps, label="wind in"),
                  MissionItem(C.NAV_LOITER_TIME, C.FRAME_GLOBAL_RELATIVE_ALT_INT, param1=pay_s, lat=zt, lon=zl, alt=hover_alt,
                              label="winding in"),
                  _wp(zl, zt, cruise, "climb back: weigh", hold_s=WEIGH_S)]
        d = cruise - hover_alt
        legs += [Leg("descent", dz_m=-d, payload_kg=kg), Leg("hover", hover_s=pay_s + 3, payload_kg=kg),
                 Leg("hover", hover_s=pay_s + max(0.0, ops.hover_at_zone_s - 2 * pay_s - 3), payload_kg=0.0),
                 Leg("climb", dz_m=d, payload_kg=0.0)]
    if parcel.attended:
        hold_s = _hold_time(ops.attended_hold_s if hold_s is None else hold_s)
        items, hold_leg = _attended(items, zl, zt, cruise, hold_s, kg)
        legs.insert(at_zone, hold_leg)
    legs.insert(at_zone, Leg("hover", hover_s=WEIGH_S, payload_kg=kg, label="weigh with the parcel"))
    legs.append(Leg("hover", hover_s=WEIGH_S, payload_kg=0.0, label="weigh after the release"))
    for lon, lat in route_back.points_ll[1:-1]:
        items.append(_wp(lon, lat, cruise, "back"))
    items.append(MissionItem(C.NAV_LAND, C.FRAME_GLOBAL_RELATIVE_ALT_INT, lat=hub.lat, lon=hub.lon, alt=0, label="land at hub"))
    legs += _legs_for(route_back, 0.0, "back")
    # MAVLink carries positions as int32 1e-7 degrees: plan with exactly what the vehicle will store
    items = [it.with_(lat=round(it.lat, 7), lon=round(it.lon, 7)) for it in items]
    # NAV_LAND comes down at WPNAV_SPEED_DN to LAND_ALT_LOW, then at LAND_SPEED (ArduCopter land_run_vertical_control)
    fast = max(0.0, cruise - LAND_ALT_LOW_M)
    legs += [Leg("descent", dz_m=-fast, payload_kg=0.0, label="land"),
             Leg("descent", dz_m=-(cruise - fast), payload_kg=0.0, label="land",
                 speed_mps=min(LAND_SPEED_MPS, airframe.descent_speed_mps))]

    # -- fence, rally, params ----------------------------------------------------------------------
    lowest_ground = min(0.0, zone_ground)
    fence_alt_max = airspace.ceiling_m + lowest_ground  # rel_home; keeps every point under the AGL ceiling
    fence, fence_zones, fw = build_fence(airspace, planner, hub, route_out, ops)
    warnings += fw
    rally = [MissionItem(C.NAV_RALLY_POINT, C.FRAME_GLOBAL_RELATIVE_ALT_INT, lat=hub.lat, lon=hub.lon, alt=round(cruise),
                         label=f"hub {hub.name}")]
    params = {
        "FENCE_ENABLE": 1, "FENCE_TYPE": 1 | 4,  # max altitude + polygons/circles
        "FENCE_ACTION": 1,  # AC_Fence::Action::RTL_AND_LAND
        "FENCE_ALT_MAX": round(fence_alt_max, 1), "FENCE_MARGIN": ops.fence_margin_m,
        "RTL_ALT": round(cruise * 100),  # centimetres
        "WPNAV_SPEED": round(airframe.cruise_speed_mps * 100),
        # the vertical speeds the energy model's legs assume, so that the vehicle flies what was predicted
        "WPNAV_SPEED_UP": round(airframe.climb_speed_mps * 100),
        "WPNAV_SPEED_DN": round(airframe.descent_speed_mps * 100),
        "LAND_SPEED": round(LAND_SPEED_MPS * 100), "LAND_ALT_LOW": round(LAND_ALT_LOW_M * 100),
    }
    params.update(drop_device_params(airframe, method))
    return FlightPlan(hub=hub, zone=zone, airframe=airframe, ops=ops, parcel=parcel, method=method,
                      route_out=route_out, route_back=route_back, cruise_alt_m=cruise,
                      zone_ground_rel_home_m=zone_ground, legs=legs, mission=items, fence=fence, rally=rally,
                      params=params, fence_alt_max_m=round(fence_alt_max, 1), airspace_name=airspace.name,
                      warnings=warnings, fence_zones=fence_zones, airframe_reason=airframe_reason)


def _ring_items(poly: Polygon, frame, command: int) -> list[MissionItem]:
    coords = list(poly.exterior.coords)[:-1]
    xs, ys = zip(*coords)
    lons, lats = frame.to_lonlat(list(xs), list(ys))
    n = len(coords)
    return [MissionItem(command, C.FRAME_GLOBAL, param1=n, lat=round(la, 7), lon=round(lo, 7)) for lo, la in zip(lons, lats)]


def _simplify_within(poly: BaseGeometry, must_contain: BaseGeometry, max_vertices: int) -> Polygon | None:
    """An inclusion polygon with at most max_vertices that still covers `must_contain`."""
    if isinstance(poly, Polygon):
        candidates = [Polygon(poly.exterior)]
    else:
        candidates = [Polygon(g.exterior) for g in poly.geoms if g.intersects(must_contain)]
        if len(candidates) != 1:
            return None
    p = candidates[0]
    tol = 1.0
    while len(p.exterior.coords) - 1 > max_vertices and tol < 5000:
        p2 = p.simplify(tol, preserve_topology=True)
        if not p2.covers(must_contain):
            # simplifying may cut across the corridor: shrink first so the simplified ring stays inside
            p2 = p.buffer(-tol).simplify(tol)
        if isinstance(p2, Polygon) and p2.covers(must_contain):
            p = Polygon(p2.exterior)
        tol *= 1.6
    return p if len(p.exterior.coords) - 1 <= max_vertices and p.covers(must_contain) else None


def _superset_within(poly: BaseGeometry, keep_clear: BaseGeometry, max_vertices: int) -> list[Polygon]:
    """Exclusion polygons covering `poly` with few vertices that stay clear of `keep_clear`."""
    out = []
    parts = [poly] if isinstance(poly, Polygon) else list(poly.geoms)
    for part in parts:
        p = Polygon(part.exterior)
        if len(p.exterior.coords) - 1 > max_vertices:
            hull = p.convex_hull
            tol = 1.0
            q = p
            while len(q.exterior.coords) - 1 > max_vertices and tol < 2000:
                q = Polygon(p.buffer(tol, join_style="mitre").simplify(tol).exterior)
                tol *= 1.6
            if hull.intersects(keep_clear) and not q.intersects(keep_clear):
                p = q
            elif not hull.intersects(keep_clear) and len(hull.exterior.coords) - 1 <= max_vertices:
                p = hull
            else:
                p = q
        out.append(p)
    return out


def build_fence(airspace: Airspace, planner: RoutePlanner, hub: Hub, route: Route,
                ops: Operations) -> tuple[list[MissionItem], list[str], list[str]]:
    """Inclusion polygon (service area), exclusions near the route, return point at the hub."""
    frame = planner.frame
    warnings: list[str] = []
    corridor = LineString(route.points_xy).buffer(ops.fence_margin_m + 1.0)
    budget = ops.fence_max_vertices - 1  # one item for the return point
    inclusion = _simplify_within(planner.service, corridor, min(40, budget - 3))
    items: list[MissionItem] = []
    if inclusion is None:
        warnings.append("service area could not be simplified to the fence vertex limit: no inclusion fence")
    else:
        items += _ring_items(inclusion, frame, C.NAV_FENCE_POLYGON_VERTEX_INCLUSION)
    line = LineString(route.points_xy)
    names = []
    # temporary restrictions in force for this flight first: they are why the route bends where it does
    temporary = getattr(planner, "restriction_shapes", {})
    for name, geom in sorted(temporary.values(), key=lambda ng: ng[1].distance(line)):
        new = []
        for p in _superset_within(geom, corridor, 12):
            new += _ring_items(p, frame, C.NAV_FENCE_POLYGON_VERTEX_EXCLUSION)
        if len(items) + len(new) > budget:
            warnings.append(f"fence item limit {ops.fence_max_vertices} reached: restriction {name!r} is not in the fence")
            continue
        items += new
        names.append(f"restriction {name}")
    # exclusions for the zones nearest the route, until the budget is spent
    zones_xy = airspace.zones_xy if frame == airspace.frame else [frame.project(airspace.frame.unproject(z)) for z in airspace.zones_xy]
    nearest = sorted(planner.relevant, key=lambda i: zones_xy[i].distance(line))
    for i in nearest:
        z = airspace.zones[i]
        if z.is_circle:
            new = [MissionItem(C.NAV_FENCE_CIRCLE_EXCLUSION, C.FRAME_GLOBAL, param1=round(z.radius_m, 1),
                               lat=round(z.geometry_ll.y, 7), lon=round(z.geometry_ll.x, 7))]
        else:
            new = []
            for p in _superset_within(zones_xy[i], corridor, 12):
                new += _ring_items(p, frame, C.NAV_FENCE_POLYGON_VERTEX_EXCLUSION)
        if len(items) + len(new) > budget:
            warnings.append(f"fence item limit {ops.fence_max_vertices} reached: zone {z.name!r} and farther ones are not in the fence")
            break
        items += new
        names.append(z.name)
    items.append(MissionItem(C.NAV_FENCE_RETURN_POINT, C.FRAME_GLOBAL, lat=hub.lat, lon=hub.lon, label="return point"))
    return canonical_fence(items), names, warnings
