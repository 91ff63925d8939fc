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
)


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
class DeliveryReport:
    outcome: str  # "delivered", "returned_with_parcel", "misdelivered" (released off target), "aborted", "failed"
    drop_lat: float | None = None
    drop_lon: float | None = None
    drop_distance_m: float | None = None  # from the zone centre
    drop_time: datetime | None = None
    takeoff_time: datetime | None = None
    landed_time: datetime | None = None
    flight_time_s: float | None = None
    energy_used_wh: float | None = None
    battery_used_pct: float | None = None
    events: list[DeliveryEvent] = field(default_factory=list)

    def to_dict(self) -> dict:
        d = asdict(self)
        for k in ("drop_time", "takeoff_time", "landed_time"):
            d[k] = getattr(self, k).isoformat() if getattr(self, k) else None
        d["events"] = [e.to_dict() for e in self.events]
        return d
