"""Hubs, airframes, vehicles and the operations block: one consistent fleet, cached between writes."""

from __future__ import annotations

import threading
from typing import Any

from pydantic import ValidationError
from sqlalchemy import func, select

from groundctl.core.fleet import Airframe, Fleet, Hub, Vehicle, parse_fleet, pydantic_to_input_error
from groundctl.errors import Conflict, NotFound
from groundctl.runtime.services.settings import Settings
from groundctl.runtime.store import IN_FLIGHT_STATES, Delivery, FleetItem, Store

KINDS = {"hub": Hub, "airframe": Airframe, "vehicle": Vehicle}


class FleetService:
    def __init__(self, settings: Settings, store: Store) -> None:
        self.settings = settings
        self.store = store
        self.now = settings.clock
        self._lock = threading.RLock()
        self._fleet: Fleet | None = None

    def seed(self) -> None:
        """An empty database starts from the scenario's fleet."""
        import tomllib  # noqa: PLC0415

        with self.store.session() as s:
            if s.scalar(select(func.count()).select_from(FleetItem)) == 0:
                fleet = parse_fleet(tomllib.loads((self.settings.scenario_dir / "fleet.toml").read_text()))
                for kind, items in (("hub", fleet.hubs), ("airframe", fleet.airframes), ("vehicle", fleet.vehicles)):
                    for it in items:
                        s.add(FleetItem(kind=kind, name=it.name, data=it.model_dump(mode="json")))
                s.add(FleetItem(kind="operations", name="operations", data=fleet.operations.model_dump(mode="json")))

    def current(self) -> Fleet:
        with self._lock:
            if self._fleet is None:
                with self.store.session() as s:
                    rows = list(s.scalars(select(FleetItem)))
                data: dict[str, Any] = {"hub": [], "airframe": [], "vehicle": []}
                ops = {}
                for r in sorted(rows, key=lambda r: r.name):
                    if r.kind == "operations":
                        ops = r.data
                    elif r.kind in data:
                        data[r.kind].append(r.data)
                self._fleet = Fleet.model_validate({**data, "operations": ops})
            return self._fleet

    def invalidate(self) -> None:
        with self._lock:
            self._fleet = None

    # -- simulated vehicles ---------------------------------------------------------------------------
    def simulator_links(self) -> tuple[dict[str, str], set[str]]:
        """(vehicle -> connection URL that `serve` gave it for a simulator, vehicles flying right now)."""
        with self.store.session() as s:
            managed = {r.name: r.data for r in s.scalars(select(FleetItem).where(FleetItem.kind == "simulated"))}
            busy = set(s.scalars(select(Delivery.vehicle).where(Delivery.state.in_(IN_FLIGHT_STATES))))
        return managed, busy

    def vehicle_kind(self, vehicle: str) -> str:
        """"sim" for a vehicle `serve` flies on its own simulator, else "vehicle": their energy
        calibrations are kept apart, as they are different machines under one airframe name."""
        managed, _ = self.simulator_links()
        return "sim" if vehicle in managed and managed[vehicle] == self.current().vehicle(vehicle).connection else "vehicle"

    def use_simulator(self, vehicle: str, url: str) -> None:
        """Point a vehicle at a simulator, remembering that the link is ours to replace on the next start."""
        v = self.current().vehicle(vehicle)
        self.put("vehicle", vehicle, {**v.model_dump(mode="json"), "connection": url})
        with self.store.session() as s:
            row = s.get(FleetItem, ("simulated", vehicle))
            if row is None:
                s.add(FleetItem(kind="simulated", name=vehicle, data=url, updated_at=self.now()))
            else:
                row.data, row.updated_at = url, self.now()

    # -- items ----------------------------------------------------------------------------------------
    def items(self, kind: str) -> list[dict]:
        f = self.current()
        items = {"hub": f.hubs, "airframe": f.airframes, "vehicle": f.vehicles}[kind]
        return [it.model_dump(mode="json") for it in items]

    def item(self, kind: str, name: str) -> dict:
        for it in self.items(kind):
            if it["name"] == name:
                return it
        raise NotFound(f"no {kind} named {name!r}", field="name")

    def put(self, kind: str, name: str, data: dict) -> tuple[dict, bool]:
        """Create or replace a hub/airframe/vehicle; the whole fleet must stay consistent."""
        data = {**data, "name": name}
        try:
            item = KINDS[kind].model_validate(data)
        except ValidationError as e:
            raise pydantic_to_input_error(e) from None
        with self._lock, self.store.session() as s:
            if kind == "vehicle":
                self.refuse_if_flying(s, name)
            existing = s.get(FleetItem, (kind, name))
            created = existing is None
            trial = self._fleet_dict(s)
            trial[kind] = [d for d in trial[kind] if d["name"] != name] + [item.model_dump(mode="json")]
            self._check_fleet(trial)
            if existing is None:
                s.add(FleetItem(kind=kind, name=name, data=item.model_dump(mode="json"), updated_at=self.now()))
            else:
                existing.data = item.model_dump(mode="json")
                existing.updated_at = self.now()
            self._fleet = None
        return item.model_dump(mode="json"), created

    def delete(self, kind: str, name: str) -> None:
        with self._lock, self.store.session() as s:
            row = s.get(FleetItem, (kind, name))
            if row is None:
                raise NotFound(f"no {kind} named {name!r}", field="name")
            if kind == "vehicle":
                self.refuse_if_flying(s, name)
            trial = self._fleet_dict(s)
            trial[kind] = [d for d in trial[kind] if d["name"] != name]
            self._check_fleet(trial, deleting=f"{kind} {name!r}")
            s.delete(row)
            self._fleet = None

    def _fleet_dict(self, s) -> dict:
        out: dict[str, Any] = {"hub": [], "airframe": [], "vehicle": [], "operations": {}}
        for r in s.scalars(select(FleetItem)):
            if r.kind == "operations":
                out["operations"] = r.data
            elif r.kind in out:
                out[r.kind].append(r.data)
        return out

    @staticmethod
    def _check_fleet(d: dict, deleting: str | None = None) -> None:
        try:
            Fleet.model_validate(d)
        except ValidationError as e:
            msg = "; ".join(err["msg"].removeprefix("Value error, ") for err in e.errors())
            if deleting:
                raise Conflict(f"cannot delete {deleting}: {msg}", field="name") from None
            raise Conflict(msg, field="name") from None

    @staticmethod
    def refuse_if_flying(s, vehicle: str) -> None:
        busy = s.scalar(select(Delivery.id).where(Delivery.vehicle == vehicle, Delivery.state.in_(IN_FLIGHT_STATES)))
        if busy is not None:
            raise Conflict(f"vehicle {vehicle!r} is flying delivery {busy}", field="vehicle")
