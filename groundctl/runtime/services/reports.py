"""What operators look at: KPIs over a period and the map (airspace, hubs, zones, routes, vehicles)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select

from groundctl.core.intents import intent_to_json
from groundctl.runtime import intents
from groundctl.runtime import restrictions as rs
from groundctl.runtime.kpis import kpis
from groundctl.runtime.live import LiveHub
from groundctl.runtime.services.airspace import AirspaceService
from groundctl.runtime.services.fleet import FleetService
from groundctl.runtime.services.handoff import unconfirmed_after_s
from groundctl.runtime.services.settings import Settings
from groundctl.runtime.store import IN_FLIGHT_STATES, Delivery, Store, Zone


class ReportService:
    def __init__(self, settings: Settings, store: Store, fleet: FleetService, airspace: AirspaceService,
                 live: LiveHub) -> None:
        self.settings = settings
        self.store = store
        self.fleet = fleet
        self.airspace = airspace
        self.live = live

    def kpis(self, since: datetime | None, until: datetime | None) -> dict:
        return kpis(self.store, since, until, on_time_grace_s=self.settings.on_time_grace_s,
                    unconfirmed_after_s=unconfirmed_after_s(self.settings), now=self.settings.clock())

    def map_data(self, operator: bool) -> dict:
        version, airspace = self.airspace.current()
        fleet = self.fleet.current()
        now = self.settings.clock()
        frame = airspace.frame
        restrictions = []
        with self.store.session() as s:
            rows = s.scalars(select(rs.RestrictionRow).where(rs.RestrictionRow.lifted_at.is_(None),
                                                             rs.RestrictionRow.end > now).order_by(rs.RestrictionRow.id))
            for row in rows:
                r = rs.to_restriction(row)
                restrictions.append({"id": row.id, "name": r.zone.name, "start": r.start.isoformat(),
                                     "end": r.end.isoformat(), "in_force": r.start <= now,
                                     "floor_m": r.zone.floor_m, "ceiling_m": r.zone.ceiling_m
                                     if r.zone.ceiling_m != float("inf") else None, "altitude_ref": r.zone.altitude_ref,
                                     "geometry": r.geometry_ll(frame).__geo_interface__})
        # restrictions are public like the airspace: a recipient may see why a route bends
        out: dict[str, Any] = {"airspace": airspace.to_geojson(), "airspace_version": version,
                               "hubs": [h.model_dump(mode="json") for h in fleet.hubs], "zones": [], "routes": [],
                               "vehicles": [], "restrictions": restrictions, "intents": []}
        if operator:
            # vehicles, zones and routes say where people live and where parcels go: operators only
            out["vehicles"] = list(self.live.vehicles.values())
            with self.store.session() as s:
                out["zones"] = [{"id": z.id, "name": z.name, "lat": z.lat, "lon": z.lon,
                                 "clear_radius_m": z.clear_radius_m, "polygon": z.polygon}
                                for z in s.scalars(select(Zone).order_by(Zone.id).limit(5000))]
                rows = s.scalars(select(Delivery).where(Delivery.state.in_(("planned",) + IN_FLIGHT_STATES))
                                 .order_by(Delivery.id.desc()).limit(200))
                out["routes"] = [{"delivery": d.id, "state": d.state, "vehicle": d.vehicle, "points": d.route}
                                 for d in rows if d.route]
                # the sky each flight in the air (or about to leave) still holds, shrunk to what is left of it
                index = intents.active(s, frame, now.timestamp())
                out["intents"] = [intent_to_json(it, frame) for it in index.intents.values()]
        return out
