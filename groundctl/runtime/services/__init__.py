"""The ground-station services, one per resource, over one store.

    fleet       hubs, airframes, vehicles, operations              services/fleet.py
    airspace    airspace versions, route planners, weather         services/airspace.py
    restrictions temporary restrictions and their effect on plans  services/restrictions.py
    recipients  registration and tokens                            services/recipients.py
    zones       recipients' landing zones                          services/zones.py
    deliveries  planning and the views of deliveries               services/deliveries.py
    flights     the flight supervisor: dispatch, fly, abort, resume services/flights.py
    handoff     tracking links, change of mind, confirmation, disputes services/handoff.py
    reports     KPIs and the map                                   services/reports.py

Faces (the HTTP API, the CLI) call these; they call core for every decision (zone validation, planning,
the go/no-go verdict) and runtime.fly for flying. Synchronous methods touch only the database and core
and are meant for a worker thread; the flight supervisor's async methods run on the event loop and hand
their database and planning work to threads.
"""

from __future__ import annotations

from groundctl.runtime.live import LiveHub
from groundctl.runtime.services.airspace import AirspaceService
from groundctl.runtime.services.deliveries import DeliveryService
from groundctl.runtime.services.fleet import FleetService
from groundctl.runtime.services.flights import FlightSupervisor
from groundctl.runtime.services.handoff import HandoffService
from groundctl.runtime.services.recipients import RecipientService
from groundctl.runtime.services.reports import ReportService
from groundctl.runtime.services.restrictions import RestrictionService
from groundctl.runtime.services.settings import Settings
from groundctl.runtime.services.zones import ZoneService
from groundctl.runtime.store import Store, database_url

__all__ = ["Service", "Settings"]


class Service:
    """The composition root: builds each resource's service on one store and one live hub."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.store = Store(database_url(settings.data_dir, settings.database_url))
        self.live = LiveHub(settings.live_hz)
        self.fleet = FleetService(settings, self.store)
        self.airspace = AirspaceService(settings, self.store, self.fleet)
        self.recipients = RecipientService(settings, self.store)
        self.zones = ZoneService(settings, self.store, self.fleet, self.airspace)
        self.deliveries = DeliveryService(settings, self.store, self.fleet, self.airspace, self.zones, progress={})
        self.flights = FlightSupervisor(settings, self.store, self.fleet, self.airspace, self.zones,
                                        self.deliveries, self.live)
        self.handoff = HandoffService(settings, self.store, self.fleet, self.airspace, self.zones, self.deliveries)
        self.reports = ReportService(settings, self.store, self.fleet, self.airspace, self.live)
        self.restrictions = RestrictionService(settings, self.store, self.airspace, self.deliveries)
        self.restrictions.listeners.append(self.flights.restrictions_changed)  # flights in the air reroute
        self.airspace.seed()
        self.fleet.seed()

    async def stop(self) -> None:
        await self.flights.stop()
        await self.live.stop()
