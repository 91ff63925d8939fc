"""The service's go/no-go: the same preflight as the CLI, turned into what the store and the API keep."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from groundctl.core.airspace import Airspace
from groundctl.core.calibration import Calibration
from groundctl.core.plan import FlightPlan
from groundctl.core.preflight import preflight
from groundctl.core.weather import Weather


@dataclass
class VerdictView:
    go: bool
    failures: list[dict]
    detail: dict


def json_safe(v: Any) -> Any:
    """JSON-safe copy: non-finite numbers become null (JSON has no Infinity), anything else a string."""
    if isinstance(v, dict):
        return {str(k): json_safe(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [json_safe(x) for x in v]
    if isinstance(v, float):
        return v if math.isfinite(v) else None
    if v is None or isinstance(v, (str, int, bool)):
        return v
    return str(v)


def verdict_for(plan: FlightPlan, weather: Weather | None, now: datetime, airspace: Airspace | None,
                calibration: Calibration | None = None) -> VerdictView:
    v = preflight(plan, weather, now=now, airspace=airspace, calibration=calibration)
    fails = [{"check": c.name, "message": c.message} for c in v.failures]
    return VerdictView(v.go, fails, json_safe(v.to_dict()))


def time_to_drop_s(plan: FlightPlan) -> float:
    """Planned seconds from take-off to the parcel leaving the aircraft (first leg without payload)."""
    t = 0.0
    for leg in plan.legs:
        if leg.payload_kg == 0 and plan.parcel.mass_kg > 0:
            break
        t += plan.leg_time_s(leg)
    return t
