"""The airspace in force (versioned, so a delivery is always rebuilt on the airspace it was planned on),
the route planners built on it, and the weather the verdict reads."""

from __future__ import annotations

import json
import threading
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select

from groundctl.core.airspace import Airspace, parse_airspace
from groundctl.core.fleet import Hub
from groundctl.core.plan import make_planner
from groundctl.core.restrictions import Restriction, blocking
from groundctl.runtime import restrictions as restriction_store
from groundctl.core.weather import Weather, weather_from_dict, weather_from_values
from groundctl.errors import NotFound
from groundctl.runtime.services.fleet import FleetService
from groundctl.runtime.services.settings import Settings
from groundctl.runtime.store import AirspaceVersion, FleetItem, Store


PLAN_HORIZON = timedelta(hours=1)  # a delivery planned now flies within this: its route honours what is in force


class OverlayPlanner:
    """One prepared planner with temporary restrictions laid over it. Adding or lifting a restriction is
    local work on the prepared free space (core.routing add_obstacle / remove_obstacle), not a rebuild;
    each route query brings the overlay to the set in force for its flight, under a lock."""

    def __init__(self, planner) -> None:  # noqa: ANN001 (core.routing.RoutePlanner)
        self.planner = planner
        self.lock = threading.Lock()
        self.applied: dict[str, Restriction] = {}

    def sync(self, wanted: dict[str, Restriction]) -> None:
        for key in [k for k in self.applied if k not in wanted]:
            self.planner.remove_obstacle(key)
            del self.applied[key]
        for key, r in wanted.items():
            if key not in self.applied:
                self.planner.add_obstacle_xy(key, r.geometry_xy(self.planner.frame))
                self.applied[key] = r

    def view(self, wanted: dict[str, Restriction]) -> "PlannerView":
        return PlannerView(self, wanted)


class PlannerView:
    """What build_plan sees: the planner with exactly `wanted` laid over it while it routes."""

    def __init__(self, overlay: OverlayPlanner, wanted: dict[str, Restriction]) -> None:
        self._overlay = overlay
        self.wanted = wanted

    def route(self, start_ll, goal_ll):  # noqa: ANN001
        with self._overlay.lock:
            self._overlay.sync(self.wanted)
            return self._overlay.planner.route(start_ll, goal_ll)

    @property
    def restriction_shapes(self) -> dict[str, tuple[str, Any]]:
        """key -> (name, outline in the planner's frame, unbuffered): for the fence."""
        frame = self._overlay.planner.frame
        return {k: (r.zone.name, r.geometry_xy(frame)) for k, r in self.wanted.items()}

    def __getattr__(self, name: str) -> Any:
        return getattr(self._overlay.planner, name)


class AirspaceService:
    def __init__(self, settings: Settings, store: Store, fleet: FleetService) -> None:
        self.settings = settings
        self.store = store
        self.fleet = fleet
        self.now = settings.clock
        self._lock = threading.RLock()
        self._airspaces: dict[int, Airspace] = {}
        self._current: int | None = None
        self._planners: dict[tuple, OverlayPlanner] = {}
        self._restrictions: list[Restriction] = []
        self._restrictions_gen: tuple | None = None

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

    def base_planner(self, version: int, hub: Hub):
        """Preparing a planner costs seconds on a big airspace; reuse one per (airspace, hub, ops)."""
        ops = self.fleet.current().operations
        key = (version, hub, ops)
        with self._lock:
            p = self._planners.get(key)
        if p is None:
            p = OverlayPlanner(make_planner(self.current(version)[1], hub, ops))
            with self._lock:
                p = self._planners.setdefault(key, p)
        return p

    def planner(self, version: int, hub: Hub, *, temporary: bool = True, window: tuple[datetime, datetime] | None = None):
        """A planner for flights in `window` (default: from now for PLAN_HORIZON): the airspace plus the
        temporary restrictions in force then that reach the flight band. `temporary=False`: the airspace
        alone (a landing zone is judged on the lasting airspace, not on today's closures)."""
        base = self.base_planner(version, hub)
        if not temporary:
            return base.view({})
        t0, t1 = window or (self.now(), self.now() + PLAN_HORIZON)
        ops = self.fleet.current().operations
        wanted = {r.key: r for r in blocking(self.restrictions_in_force(t0, t1), t0, t1,
                                             ops.cruise_alt_m + ops.vertical_margin_m, hub.elevation_m)}
        return base.view(wanted)

    def restrictions_in_force(self, t0: datetime, t1: datetime) -> list[Restriction]:
        with self.store.session() as s:
            gen = restriction_store.generation(s)
            with self._lock:
                cached = self._restrictions if self._restrictions_gen == gen else None
            if cached is None:
                cached = [restriction_store.to_restriction(r) for r in s.scalars(
                    select(restriction_store.RestrictionRow).where(restriction_store.RestrictionRow.lifted_at.is_(None)))]
                with self._lock:
                    self._restrictions, self._restrictions_gen = cached, gen
        return [r for r in cached if r.active(t0, t1)]

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
