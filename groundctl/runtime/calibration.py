"""Flown flights in the store, and the calibration the next verdict uses.

The CLI and the service share it: `groundctl fly` records into the same data directory (or
DATABASE_URL) that `groundctl serve` uses, so a flight flown either way calibrates both.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from sqlalchemy import select

from groundctl.core.calibration import Calibration, FlightEnergy, calibrate
from groundctl.errors import InputError
from groundctl.runtime.store import EnergyFlight, Store, database_url

VEHICLE_KINDS = ("sim", "sitl", "vehicle")


def flight_from_report(airframe: str, vehicle_kind: str, energy: dict[str, Any] | None) -> FlightEnergy | None:
    """The calibration sample of a finished flight, or None when its energy was not measured whole
    (a flight that never landed, or a battery monitor that sent nothing)."""
    if not energy or not energy.get("complete") or energy.get("used_wh") is None:
        return None
    model = energy.get("model_wh")
    if not model or model <= 0:
        return None
    factor = (energy.get("calibration") or {}).get("factor") or 1.0
    phases = {ph: (v["predicted_wh"] / factor if v.get("predicted_wh") is not None else None, v.get("used_wh"))
              for ph, v in (energy.get("phases") or {}).items()}
    return FlightEnergy(airframe, vehicle_kind, float(model), float(energy["used_wh"]), phases)


def record(store: Store, flight: FlightEnergy, *, vehicle: str | None = None, delivery_id: int | None = None) -> None:
    with store.session() as s:
        s.add(EnergyFlight(airframe=flight.airframe, vehicle_kind=flight.vehicle_kind, vehicle=vehicle,
                           delivery_id=delivery_id, predicted_wh=flight.predicted_wh, used_wh=flight.used_wh,
                           phases={k: list(v) for k, v in flight.phases.items()}))


def flights(store: Store, airframe: str | None = None, vehicle_kind: str | None = None) -> list[FlightEnergy]:
    q = select(EnergyFlight).order_by(EnergyFlight.id)
    if airframe is not None:
        q = q.where(EnergyFlight.airframe == airframe)
    if vehicle_kind is not None:
        q = q.where(EnergyFlight.vehicle_kind == vehicle_kind)
    with store.session() as s:
        rows = list(s.scalars(q))
    return [FlightEnergy(r.airframe, r.vehicle_kind, r.predicted_wh, r.used_wh,
                         {k: tuple(v) for k, v in (r.phases or {}).items()}) for r in rows]


def check_vehicle_kind(vehicle_kind: str) -> str:
    if vehicle_kind not in VEHICLE_KINDS:
        raise InputError(f"must be one of {', '.join(VEHICLE_KINDS)}", field="vehicle_kind")
    return vehicle_kind


def calibration_for(store: Store | None, airframe: str, vehicle_kind: str) -> Calibration:
    check_vehicle_kind(vehicle_kind)
    return calibrate(airframe, vehicle_kind, flights(store, airframe, vehicle_kind) if store else [])


def calibration_from(data_dir: str | Path | None, airframe: str, vehicle_kind: str) -> Calibration:
    """For commands that only read (check, plan): the data directory's calibration if it has a database
    (or DATABASE_URL names one); no directory or database is created just to find none."""
    check_vehicle_kind(vehicle_kind)
    if not os.environ.get("DATABASE_URL"):
        d = Path(data_dir or os.environ.get("GROUNDCTL_DATA") or "./data")
        if not (d / "groundctl.db").is_file():
            return calibrate(airframe, vehicle_kind, [])
    store = Store(database_url(data_dir))
    try:
        return calibration_for(store, airframe, vehicle_kind)
    finally:
        store.close()
