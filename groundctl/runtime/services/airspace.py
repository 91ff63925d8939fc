"""The airspace in force (versioned, so a delivery is always rebuilt on the airspace it was planned on),
the route planners built on it, and the weather the verdict reads."""

from __future__ import annotations

import json
import threading
from typing import Any

from sqlalchemy import func, select

from groundctl.core.airspace import Airspace, parse_airspace
from groundctl.core.fleet import Hub
from groundctl.core.plan import make_planner
from groundctl.core.weather import Weather, weather_from_dict, weather_from_values
from groundctl.errors import NotFound
from groundctl.runtime.services.fleet import FleetService
from groundctl.runtime.services.settings import Settings
from groundctl.runtime.store import AirspaceVersion, FleetItem, Store


class AirspaceService:
    def __init__(self, settings: Settings, store: Store, fleet: FleetService) -> None:
        self.settings = settings
        self.store = store
        self.fleet = fleet
        self.now = settings.clock
        self._lock = threading.RLock()
        self._airspaces: dict[int, Airspace] = {}
        self._current: int | None = None
        self._planners: dict[tuple, Any] = {}

    def seed(self) -> None:
        """An empty database starts from the scenario's airspace."""
        with self.store.session() as s:
            if s.scalar(select(func.count()).select_from(AirspaceVersion)) == 0:
                geo = json.loads((self.settings.scenario_dir / "airspace.geojson").read_text())
                parse_airspace(geo)
                s.add(AirspaceVersion(geojson=geo, created_at=self.now()))

    def current(self, version: int | None = None) -> tuple[int, Airspace]:
        with self._lock:
            if version is None:
                if self._current is None:
                    with self.store.session() as s:
                        self._current = s.scalar(select(func.max(AirspaceVersion.id)))
                version = self._current
            if version not in self._airspaces:
                with self.store.session() as s:
                    row = s.get(AirspaceVersion, version)
                    if row is None:
                        raise NotFound(f"airspace version {version} not found", field="airspace_version")
                    self._airspaces[version] = parse_airspace(row.geojson)
            return version, self._airspaces[version]

    def planner(self, version: int, hub: Hub):
        """Visibility graphs cost tens of milliseconds to build; reuse one per (airspace, hub, ops)."""
        ops = self.fleet.current().operations
        key = (version, hub, ops)
        with self._lock:
            p = self._planners.get(key)
        if p is None:
            p = make_planner(self.current(version)[1], hub, ops)
            with self._lock:
                self._planners[key] = p
        return p

    def replace(self, geo: Any) -> dict:
        parse_airspace(geo)  # raises InputError naming the feature
        with self.store.session() as s:
            row = AirspaceVersion(geojson=geo, created_at=self.now())
            s.add(row)
            s.flush()
            vid = row.id
        with self._lock:
            self._current = vid
        return {"version": vid}

    # -- weather --------------------------------------------------------------------------------------
    def weather(self, vehicle_kind: str | None = None) -> Weather | None:
        """The operator's report; with none, calm air is assumed only when the settings allow it and
        only for a simulated vehicle (vehicle_kind "sim"), or for planning (vehicle_kind None)."""
        with self.store.session() as s:
            row = s.get(FleetItem, ("weather", "current"))
            data = row.data if row is not None else None
        if data is not None:
            return weather_from_dict(data)
        if self.settings.assume_calm and vehicle_kind in (None, "sim"):
            return weather_from_values(now=self.now(), wind_mps=0.0, gust_mps=0.0, precip_mmph=0.0,
                                       visibility_m=10_000.0, temp_c=15.0,
                                       source="assumed calm: no weather set (PUT /api/v1/weather)")
        return None

    def set_weather(self, data: dict) -> dict:
        w = weather_from_dict(data)  # refuses bad input, naming the field
        with self.store.session() as s:
            row = s.get(FleetItem, ("weather", "current"))
            if row is None:
                s.add(FleetItem(kind="weather", name="current", data=w.to_dict(), updated_at=self.now()))
            else:
                row.data, row.updated_at = w.to_dict(), self.now()
        return w.to_dict()
