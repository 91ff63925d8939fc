"""What a delivery flight reports: events (appended to the store) and a final report."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import Any

# Delivery phases, in flight order
PHASES = ("preflight", "taking_off", "en_route", "at_zone", "lowering", "released", "returning", "landed")

# Event kinds a flight emits. Phase changes use the phase name; faults and reactions have their own.
EVENT_KINDS = (
    "uploaded", "armed", *PHASES[1:],
    "drop_failed", "fence_breach", "low_battery", "link_lost", "link_restored", "rtl", "aborted", "failed",
    "reserve_used", "failsafe", "mode_change", "gps_loss", "return_route", "crashed", "lost",
    # attended drop (protocol/attended.py)
    "holding_for_recipient", "cleared_to_drop", "recipient_absent",
    # reroute in flight around a new restriction (runtime/fly.py DeliveryFlight.reroute)
    "rerouted", "reroute_failed", "holding",
)

# What a flight ended as. Each is a claim a recipient, a merchant and the KPIs rely on:
#   delivered                 released in the zone, home at the hub, nothing went wrong on the way
#   delivered_with_incidents  released in the zone and home, but an incident happened (see INCIDENT_KINDS)
#   misdelivered              the parcel left the drone, but not on the zone's ground
#   returned_with_parcel      home at the hub with the parcel still aboard
#   landed_away               on the ground (disarmed) away from the hub: where, how far, parcel aboard or not
#   lost                      the link went and never came back: last known position only
#   crashed                   the autopilot said so, or it disarmed falling
#   aborted                   an operator abort before any release (the vehicle is home)
#   failed                    never got airborne: preparation, upload or arming failed
OUTCOMES = ("delivered", "delivered_with_incidents", "misdelivered", "returned_with_parcel", "landed_away", "lost",
            "crashed", "aborted", "failed")

# Incidents: each is reported once per flight episode, with its count, duration and worst value.
#   fence_breach   a fence breached (FENCE_STATUS / "... fence(s) breached"); worst: deepest breach seen
#   reserve_used   the battery held less than the planned reserve in flight; worst: least Wh left
#   low_battery    the rest of the flight needed more than the battery held (plus reserve), or the
#                  autopilot's own battery failsafe; worst: least Wh left
#   link_loss      no heartbeat for link_timeout_s; worst: the longest silence, s
#   failsafe       an autopilot failsafe (EKF, GPS glitch, dead reckoning, battery, GCS, radio, terrain)
#   gps_loss       GPS_RAW_INT fix below 3D while airborne; worst: the lowest fix type
#   mode_change    the autopilot changed mode by itself (a failsafe, the fence); worst: the last mode
INCIDENT_KINDS = ("fence_breach", "reserve_used", "low_battery", "link_loss", "failsafe", "gps_loss", "mode_change")


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


@dataclass
class DeliveryEvent:
    kind: str
    time: datetime = field(default_factory=utcnow)
    lat: float | None = None
    lon: float | None = None
    alt_rel_m: float | None = None
    message: str = ""
    data: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["time"] = self.time.isoformat()
        return d


@dataclass
class Progress:
    """Live state for a progress display or a map; emitted a few times a second."""

    phase: str
    lat: float | None
    lon: float | None
    alt_rel_m: float | None
    groundspeed_mps: float | None
    battery_pct: float | None
    distance_to_go_m: float | None
    eta_s: float | None
    mission_seq: int | None
    mode: str | None
    sysid: int


@dataclass
class Incident:
    """One incident of a flight: a fence breach that flickers in and out is one incident with a count.

    `first`/`last` are vehicle times (UTC) of its first start and its last end (or last sighting while
    it is still open); `duration_s` sums the time it was open; `worst` is the worst value seen, in
    `unit` (for a failsafe or mode change: a name). `detail` names the kinds of failsafe or the modes.
    """

    kind: str
    first: datetime
    last: datetime
    count: int = 1
    duration_s: float = 0.0
    worst: float | str | None = None
    unit: str = ""
    message: str = ""
    detail: list[str] = field(default_factory=list)
    open: bool = True

    def to_dict(self) -> dict:
        d = asdict(self)
        d["first"], d["last"] = self.first.isoformat(), self.last.isoformat()
        d["duration_s"] = round(self.duration_s, 1)
        if isinstance(self.worst, float):
            d["worst"] = round(self.worst, 2)
        return d


@dataclass
class DeliveryReport:
    outcome: str  # one of OUTCOMES
    reason: str | None = None  # why, when the outcome alone does not say (returned_with_parcel: recipient_absent)
    # where the parcel is: "delivered", "aboard", "misdelivered" (left the drone off target), "unknown"
    parcel: str = "unknown"
    drop_lat: float | None = None  # only for a parcel that left the drone (delivered or misdelivered)
    drop_lon: float | None = None
    drop_distance_m: float | None = None  # from the zone centre
    drop_time: datetime | None = None
    takeoff_time: datetime | None = None
    landed_time: datetime | None = None
    flight_time_s: float | None = None
    # where the flight ended: the landing point, or for `lost` the last position heard
    end_lat: float | None = None
    end_lon: float | None = None
    end_distance_from_hub_m: float | None = None
    end_mode: str | None = None
    energy_used_wh: float | None = None
    # predicted (as the verdict had it) vs used, whole and per phase: see runtime.fly._energy_summary
    energy: dict[str, Any] | None = None
    battery_used_pct: float | None = None
    incidents: list[Incident] = field(default_factory=list)
    events: list[DeliveryEvent] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return self.outcome == "delivered"

    def to_dict(self) -> dict:
        d = asdict(self)
        for k in ("drop_time", "takeoff_time", "landed_time"):
            d[k] = getattr(self, k).isoformat() if getattr(self, k) else None
        d["incidents"] = [i.to_dict() for i in self.incidents]
        d["events"] = [e.to_dict() for e in self.events]
        return d
