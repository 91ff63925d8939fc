"""The flight supervisor: dispatches deliveries to vehicles, runs their flights, records what the vehicles
did, and reconnects to flights still in the air after a restart.

Everything here runs on the event loop, so every database write and every plan rebuild is handed to a
worker thread: a slow disk or a big airspace must not stall the telemetry of other flights. A flight's
events are written by one writer task in the order the flight raised them.
"""

from __future__ import annotations

import asyncio
import logging
import math
from dataclasses import asdict
from datetime import timedelta
from typing import Any

from sqlalchemy import select

from groundctl.core.energy import plan_energy
from groundctl.core.intents import IntentParams, build_intent, deconflict, layers_for, scaled, shape_of
from groundctl.core.fleet import Vehicle
from groundctl.core.plan import FlightPlan, Parcel, build_plan
from groundctl.core.fleet import LandingZone
from groundctl.errors import CheckFailure, Conflict, GroundctlError, NotFound, PlanRefused
from groundctl.runtime.attended import presence_refusal
from groundctl.runtime.calibration import calibration_for, flight_from_report
from groundctl.runtime.calibration import record as record_flight
from groundctl.runtime.events import DeliveryEvent, Progress
from groundctl.runtime import intents
from groundctl.runtime.live import LiveHub
from groundctl.runtime.services.airspace import AirspaceService
from groundctl.runtime.services.deliveries import DeliveryService
from groundctl.runtime.services.fleet import FleetService
from groundctl.runtime.services.handoff import claim_planned
from groundctl.runtime.services.settings import Settings
from groundctl.runtime.services.zones import ZoneService
from groundctl.runtime.store import IN_FLIGHT_STATES, Delivery, Store, Zone, is_active
from groundctl.runtime.verdicts import time_to_drop_s, verdict_for

log = logging.getLogger("groundctl.flights")
INTENT_STEP_M = 400.0  # release reserved sky behind a flight in steps of about one intent volume
REROUTE_POLL_S = 2.0  # how often a flight worker looks for restrictions added by another process


class EventWriter:
    """Writes one flight's events in order, off the event loop; `drain` waits until all are stored."""

    def __init__(self, store: Store, delivery_id: int) -> None:
        self.store = store
        self.delivery_id = delivery_id
        self.queue: asyncio.Queue[DeliveryEvent | None] = asyncio.Queue()
        self.task = asyncio.get_running_loop().create_task(self._run(), name=f"events-{delivery_id}")

    def put(self, ev: DeliveryEvent) -> None:
        self.queue.put_nowait(ev)

    async def _run(self) -> None:
        while (ev := await self.queue.get()) is not None:
            try:
                await asyncio.to_thread(self.store.append_event, self.delivery_id, ev)
            except Exception:  # one unwritable event must not silence the rest of the flight
                log.exception("delivery %s: could not record %s", self.delivery_id, ev.kind)

    async def drain(self) -> None:
        self.queue.put_nowait(None)
        await asyncio.shield(self.task)


class FlightSupervisor:
    def __init__(self, settings: Settings, store: Store, fleet: FleetService, airspace: AirspaceService,
                 zones: ZoneService, deliveries: DeliveryService, live: LiveHub) -> None:
        self.settings = settings
        self.store = store
        self.fleet = fleet
        self.airspace = airspace
        self.zones = zones
        self.deliveries = deliveries
        self.live = live
        self.now = settings.clock
        self.flights: dict[int, Any] = {}  # delivery id -> DeliveryFlight
        self.tasks: dict[int, asyncio.Task] = {}
        self.writers: dict[int, EventWriter] = {}
        self.progress = deliveries.progress
        self._arriving: set[int] = set()  # deliveries whose 'arriving' was recorded
        self._flown: dict[int, float] = {}  # delivery id -> route flown when its intent was last shrunk

    # -- dispatch -------------------------------------------------------------------------------------
    def _pick_vehicle(self, s, d: Delivery, name: str | None) -> Vehicle:
        fleet = self.fleet.current()
        busy = set(s.scalars(select(Delivery.vehicle).where(Delivery.state.in_(IN_FLIGHT_STATES))))
        if name is not None:
            v = next((v for v in fleet.vehicles if v.name == name), None)
            if v is None:
                raise NotFound(f"no vehicle named {name!r}", field="vehicle")
            problems = []
            if v.hub != d.hub:
                problems.append(f"is based at hub {v.hub!r}, the delivery leaves from {d.hub!r}")
            if v.airframe != d.airframe:
                problems.append(f"is a {v.airframe!r}, the delivery was planned for {d.airframe!r}")
            if not v.connection:
                problems.append("has no MAVLink connection configured")
            if v.name in busy:
                problems.append("is flying another delivery")
            if problems:
                raise Conflict(f"vehicle {name!r} " + "; ".join(problems), field="vehicle")
            return v
        for v in fleet.vehicles:
            if v.hub == d.hub and v.airframe == d.airframe and v.connection and v.name not in busy:
                return v
        raise Conflict(f"no idle {d.airframe!r} with a connection at hub {d.hub!r}", field="vehicle")

    def _dispatch_record(self, delivery_id: int, vehicle: str | None,
                         force: bool = False) -> tuple[dict, FlightPlan, Vehicle]:
        """Check, choose the vehicle and record the dispatch: database and planning work, for a thread."""
        with self.store.session() as s:
            # claim the row before reading it: a change of mind committed meanwhile cannot leave this
            # dispatch flying the plan it replaced (the state check below then refuses what is not planned)
            claim_planned(s, delivery_id)
            d = self.deliveries.own(s, None, delivery_id)
            if d.state != "planned":
                raise Conflict(f"delivery {delivery_id} is {d.state}; only a planned delivery can be dispatched",
                               field="delivery_id")
            z = s.get(Zone, d.zone_id)
            if z is not None and self.zones.view(z)["stale"]:
                raise Conflict(f"zone {d.zone_id} is stale; the recipient must reconfirm it", field="zone_id")
            absent = None if force else presence_refusal(s, d)  # attended drop: nobody said they will be there
            if absent:
                raise Conflict(absent, field="force")
            v = self._pick_vehicle(s, d, vehicle)
            plan = self.deliveries.plan_for(d)
            now = self.now()
            kind = self.fleet.vehicle_kind(v.name)
            airspace = self.airspace.current(d.airspace_version)[1]
            # the weather at dispatch, not at planning, decides
            weather = self.airspace.weather(kind)
            cal = calibration_for(self.store, plan.airframe.name, kind)
            verdict = verdict_for(plan, weather, now, airspace, cal)
            if not verdict.go:
                raise PlanRefused([CheckFailure(f["check"], f["message"]) for f in verdict.failures])
            plan, dec = self._reserve_sky(s, d, plan, lambda p: verdict_for(p, weather, now, airspace, cal), now)
            eta = now + timedelta(seconds=self.settings.dispatch_allowance_s + dec.delay_s + time_to_drop_s(plan))
            d.vehicle = v.name
            self.store.append(s, d.id, DeliveryEvent("dispatched", time=now, message=f"dispatched on {v.name}",
                                                     data={"vehicle": v.name, "connection": v.connection,
                                                           "eta_promised": eta.isoformat(),
                                                           "departure": (now + timedelta(seconds=dec.delay_s)).isoformat(),
                                                           "cruise_alt_m": plan.cruise_alt_m,
                                                           "deconfliction": dec.to_dict() if dec.conflicts else None}))
            view = self.deliveries.view(s, d, operator=True)
        return view, plan, v, dec.delay_s

    def _reserve_sky(self, s, d: Delivery, plan: FlightPlan, verdict_of, now) -> tuple[FlightPlan, Any]:
        """The flight's operational intent, deconflicted against every accepted one (a later departure or a
        lower layer) and stored in this transaction; (the plan to fly, the deconfliction). Refuses with the
        deliveries it meets, or when the only free layer fails the verdict."""
        frame = self.airspace.current()[1].frame
        ops = self.fleet.current().operations
        k = self.settings.intent_time_scale
        params = scaled(shape_of(plan, frame), IntentParams(start_allowance_s=self.settings.dispatch_allowance_s), k)[1]
        variants = {plan.cruise_alt_m: plan}

        def shape_at(alt: float):
            if alt not in variants:
                variants[alt] = self._plan_at(d, alt)
            return scaled(shape_of(variants[alt], frame), params, k)[0]

        with intents.lock():
            intents.serialise(s)
            index = intents.active(s, frame, now.timestamp())
            layers = layers_for(plan.cruise_alt_m, ops.layer_spacing_m, ops.lowest_layer_m, ops.layer_count)
            dec = deconflict(index, str(d.id), now.timestamp(), layers, shape_at,
                             max_delay_s=ops.max_departure_delay_s * k, step_s=30.0 * k, params=params)
            if not dec.ok:
                raise PlanRefused([CheckFailure("deconfliction", dec.reason)])
            if dec.cruise_alt_m != plan.cruise_alt_m:
                plan = variants[dec.cruise_alt_m]
                verdict = verdict_of(plan)
                if not verdict.go:
                    raise PlanRefused([CheckFailure("deconfliction", f"{dec.reason}, but then: " + "; ".join(
                        f["message"] for f in verdict.failures))])
            intents.put(s, d.id, dec.intent, frame)
        return plan, dec

    def _plan_at(self, d: Delivery, cruise_alt_m: float) -> FlightPlan:
        """The stored delivery's plan flown at another cruise layer (the route stays: a lower band blocks no
        zone the planned one did not)."""
        version, airspace = self.airspace.current(d.airspace_version)
        fleet = self.fleet.current()
        hub = fleet.hub(d.hub)
        layered = fleet.model_copy(update={"operations": fleet.operations.model_copy(update={"cruise_alt_m": cruise_alt_m})})
        return build_plan(airspace, layered, d.hub, LandingZone.model_validate(d.zone), Parcel.model_validate(d.parcel),
                          airframe_name=d.airframe, method=d.method, planner=self.airspace.planner(version, hub))

    def _stored_plan(self, s, d: Delivery) -> FlightPlan:
        """The plan a dispatched delivery flies: its own, at the layer deconfliction gave it."""
        plan = self.deliveries.plan_for(d)
        alt = intents.layer_of(s, d.id)
        return plan if alt is None or abs(alt - plan.cruise_alt_m) < 1e-6 else self._plan_at(d, alt)

    async def dispatch(self, delivery_id: int, vehicle: str | None, force: bool = False) -> dict:
        view, plan, v, delay_s = await asyncio.to_thread(self._dispatch_record, delivery_id, vehicle, force)
        self.start_flight(delivery_id, plan, v, resume=False, seen=(), delay_s=delay_s)
        return view

    # -- flying ---------------------------------------------------------------------------------------
    def start_flight(self, delivery_id: int, plan: FlightPlan, vehicle: Vehicle, *, resume: bool,
                     seen: tuple[str, ...], delay_s: float = 0.0) -> None:
        task = asyncio.get_running_loop().create_task(self._fly(delivery_id, plan, vehicle, resume, seen, delay_s),
                                                      name=f"delivery-{delivery_id}")
        self.tasks[delivery_id] = task
        self._ensure_reroute_watch()

    def record(self, delivery_id: int, ev: DeliveryEvent, vehicle: str | None = None) -> None:
        """Queue a flight's event for the store (in order, off the loop) and show it on the live feed."""
        writer = self.writers.get(delivery_id)
        if writer is not None:
            writer.put(ev)
        else:  # no flight running (a late callback): still recorded, in a thread
            asyncio.get_running_loop().create_task(asyncio.to_thread(self.store.append_event, delivery_id, ev))
        self.live.publish({"type": "event", "delivery": delivery_id, "vehicle": vehicle, **ev.to_dict()})

    async def _fly(self, delivery_id: int, plan: FlightPlan, vehicle: Vehicle, resume: bool,
                   seen: tuple[str, ...], delay_s: float = 0.0) -> None:
        writer = self.writers[delivery_id] = EventWriter(self.store, delivery_id)
        self._flown[delivery_id] = -1e9

        def on_event(ev: DeliveryEvent) -> None:
            self.record(delivery_id, ev, vehicle.name)

        def on_progress(p: Progress) -> None:
            # a reroute in flight replaces the flight's plan: distances and the intent follow the new one
            self._on_progress(delivery_id, vehicle.name, getattr(self.flights.get(delivery_id), "plan", plan), p)

        cancelled = False
        try:
            from groundctl.runtime.fly import DeliveryFlight  # noqa: PLC0415
            kind = await asyncio.to_thread(self.fleet.vehicle_kind, vehicle.name)
            cal = await asyncio.to_thread(calibration_for, self.store, plan.airframe.name, kind)
            weather = await asyncio.to_thread(self.airspace.weather, kind)
            prediction = await asyncio.to_thread(plan_energy, plan, weather, limits=False, calibration=cal)
            flight = DeliveryFlight(plan, vehicle.connection, sysid=vehicle.sysid, on_event=on_event,
                                    on_progress=on_progress, resume=resume, seen_events=seen, prediction=prediction)
            self.flights[delivery_id] = flight
            if delay_s > 0:
                # deconfliction put the departure back: the vehicle waits on the ground, the task stays abortable
                await asyncio.sleep(delay_s)
            report = await flight.run()
            sample = flight_from_report(plan.airframe.name, kind, report.energy)
            if sample is not None:
                await asyncio.to_thread(record_flight, self.store, sample, vehicle=vehicle.name, delivery_id=delivery_id)
            data = report.to_dict()
            data.pop("events", None)
            writer.put(DeliveryEvent("report", message=report.outcome, data=data))
        except asyncio.CancelledError:
            # the service is stopping: the flight is not over, and the next start resumes it
            cancelled = True
            raise
        except Exception as e:  # any failure of the flight machinery ends in a recorded 'failed'
            log.exception("delivery %s failed", delivery_id)
            self.record(delivery_id, DeliveryEvent("failed", message=f"{type(e).__name__}: {e}"), vehicle.name)
        finally:
            self.flights.pop(delivery_id, None)
            self.tasks.pop(delivery_id, None)
            self.writers.pop(delivery_id, None)
            self._arriving.discard(delivery_id)
            await writer.drain()  # what the flight said is stored before its task ends, even when cancelled
            self._flown.pop(delivery_id, None)
            if not cancelled:  # a stopping service leaves the flight's reserved sky to the next start
                await asyncio.to_thread(self._intent_progress, delivery_id, None, True)

    def _on_progress(self, delivery_id: int, vehicle: str, plan: FlightPlan, p: Progress) -> None:
        data = asdict(p)
        now = self.now()
        data.update({"vehicle": vehicle, "delivery": delivery_id, "time": now.isoformat()})
        # the flight's eta_s runs to the landing at the hub; a recipient wants the drop: subtract the way back
        if p.phase in ("preflight", "taking_off", "en_route") and p.distance_to_go_m is not None:
            a = plan.airframe
            to_zone = max(0.0, p.distance_to_go_m - plan.route_back.length_m)
            gs = p.groundspeed_mps if p.groundspeed_mps and p.groundspeed_mps > 1.0 else a.cruise_speed_mps
            lower_s = max(0.0, plan.cruise_alt_m - plan.zone_ground_rel_home_m) / a.descent_speed_mps
            climb_s = 0.0 if p.phase != "preflight" else plan.cruise_alt_m / a.climb_speed_mps
            eta_s = to_zone / gs + lower_s + climb_s
            data["eta_to_zone_s"] = round(eta_s, 1)
            data["eta_to_zone"] = (now + timedelta(seconds=eta_s)).isoformat()
            # "arriving" (the recipient's two-minute notice): once, when the live ETA to the zone, in vehicle
            # time, falls to the notice; the store keeps one per delivery, so a resumed flight repeats nothing
            if (p.phase != "preflight" and eta_s <= self.settings.notify.arriving_notice_s
                    and delivery_id not in self._arriving):
                self._arriving.add(delivery_id)
                self.record(delivery_id, DeliveryEvent(
                    "arriving", time=now, lat=p.lat, lon=p.lon, alt_rel_m=p.alt_rel_m,
                    message=f"about {eta_s:.0f} s to the zone",
                    data={"eta_to_zone_s": round(eta_s, 1), "eta_to_zone": data["eta_to_zone"]}), vehicle)
        for k, v in list(data.items()):
            if isinstance(v, float) and not math.isfinite(v):
                data[k] = None
        self.progress[delivery_id] = data
        self.live.update(vehicle, data)
        if p.distance_to_go_m is not None and math.isfinite(p.distance_to_go_m) and p.phase != "preflight":
            flown = max(0.0, plan.distance_m - p.distance_to_go_m)
            first = self._flown.get(delivery_id) == -1e9
            if first or flown - self._flown.get(delivery_id, flown) >= INTENT_STEP_M:
                # release the sky behind the vehicle now and then, not on every telemetry frame; the first
                # time, re-time the intent from the real take-off: the dispatch allowance is spent
                self._flown[delivery_id] = flown
                asyncio.get_running_loop().create_task(asyncio.to_thread(
                    self._intent_progress, delivery_id, flown - INTENT_STEP_M, False, plan if first else None, flown))

    def _intent_progress(self, delivery_id: int, flown_m: float | None, ended: bool,
                         retime: FlightPlan | None = None, at_m: float = 0.0) -> None:
        try:
            frame = self.airspace.current()[1].frame
            now = self.now().timestamp()
            with self.store.session() as s:
                if retime is not None and not ended:
                    k = self.settings.intent_time_scale
                    shape, params = scaled(shape_of(retime, frame), IntentParams(start_allowance_s=0.0), k)
                    # a resumed flight is part-way along: date its departure back by the time flown so far
                    departure = now - (shape.climb_s + at_m / shape.cruise_speed_mps if at_m > 0 else 0.0)
                    it = build_intent(str(delivery_id), shape, departure, params)
                    it.state = "activated"
                    intents.put(s, delivery_id, it.shrink(now=now, flown_m=flown_m), frame)
                    return
                intents.progress(s, delivery_id, frame, now, flown_m, ended)
        except Exception:  # the intent shrinks late rather than the flight failing
            log.exception("delivery %s: could not update its operational intent", delivery_id)

    # -- abort ----------------------------------------------------------------------------------------
    def _state_and_kinds(self, delivery_id: int) -> tuple[str, list[str]]:
        with self.store.session() as s:
            d = self.deliveries.own(s, None, delivery_id)
            return d.state, self.store.kinds(s, d.id)

    def _has_event(self, delivery_id: int, kind: str) -> bool:
        with self.store.session() as s:
            return kind in self.store.kinds(s, delivery_id)

    async def abort(self, delivery_id: int, action: str) -> dict:
        state, kinds = await asyncio.to_thread(self._state_and_kinds, delivery_id)
        if state == "planned":
            await asyncio.to_thread(self.store.append_event, delivery_id,
                                    DeliveryEvent("aborted", message="cancelled before dispatch", data={"action": "cancel"}))
        elif is_active(kinds):
            flight = self.flights.get(delivery_id)
            if flight is None:
                raise Conflict(f"delivery {delivery_id} has no live link to its vehicle right now", field="delivery_id")
            await flight.abort(action)
            # the flight records the abort itself, with the vehicle's position; only if it stays silent
            # (a link that is down, say) is the operator's request recorded here
            for _ in range(30):
                await asyncio.sleep(0.1)
                if await asyncio.to_thread(self._has_event, delivery_id, "aborted"):
                    break
            else:
                ev = DeliveryEvent("aborted", message=f"operator abort: {action}", data={"action": action})
                await asyncio.to_thread(self.store.append_event, delivery_id, ev)
                self.live.publish({"type": "event", "delivery": delivery_id, **ev.to_dict()})
        else:
            raise Conflict(f"delivery {delivery_id} is {state}; nothing to abort", field="delivery_id")
        return await asyncio.to_thread(self.deliveries.get, None, delivery_id)

    # -- restart --------------------------------------------------------------------------------------
    def _resumable(self) -> list[tuple[int, FlightPlan | None, Vehicle | None, tuple[str, ...], str | None]]:
        """(delivery, plan, vehicle, events so far, why it cannot resume) for every flight left in the air."""
        out = []
        with self.store.session() as s:
            rows = list(s.scalars(select(Delivery).where(Delivery.state.in_(IN_FLIGHT_STATES + ("aborted",)))))
            todo = [(d, tuple(self.store.kinds(s, d.id))) for d in rows]
            fleet = self.fleet.current()
            for d, kinds in todo:
                if not is_active(kinds) or d.id in self.tasks:
                    continue
                v = next((v for v in fleet.vehicles if v.name == d.vehicle), None)
                if v is None or not v.connection:
                    out.append((d.id, None, None, kinds, f"cannot resume: vehicle {d.vehicle!r} is no longer in the "
                                                         "fleet or has no connection"))
                    continue
                try:
                    plan = self._stored_plan(s, d)
                except GroundctlError as e:
                    out.append((d.id, None, None, kinds, f"cannot rebuild plan: {e}"))
                    continue
                out.append((d.id, plan, v, kinds, None))
        return out

    async def resume_all(self) -> list[int]:
        """Reconnect to every flight that was in the air when the service stopped."""
        resumed = []
        for delivery_id, plan, v, kinds, why in await asyncio.to_thread(self._resumable):
            if why is not None:
                await asyncio.to_thread(self.store.append_event, delivery_id, DeliveryEvent("failed", message=why))
                continue
            assert plan is not None and v is not None
            self.start_flight(delivery_id, plan, v, resume=True, seen=kinds)
            resumed.append(delivery_id)
        return resumed

    # -- reroute in flight (issue 11, item 3) ---------------------------------------------------------
    def restrictions_changed(self) -> None:
        """A restriction was added or lifted (RestrictionService calls this, from any thread): look at the
        flights in the air now rather than at the next poll."""
        loop = getattr(self, "_reroute_loop", None)
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._reroute_kick.set)

    def _ensure_reroute_watch(self) -> None:
        task = getattr(self, "_reroute_task", None)
        if task is None or task.done():
            self._reroute_loop = asyncio.get_running_loop()
            self._reroute_kick = asyncio.Event()
            self._reroute_task = self._reroute_loop.create_task(self._reroute_watch(), name="reroute-watch")

    def _restrictions_generation(self) -> tuple:
        from groundctl.runtime import restrictions as restriction_store  # noqa: PLC0415

        with self.store.session() as s:
            return restriction_store.generation(s)

    async def _reroute_watch(self) -> None:
        """While flights run: every REROUTE_POLL_S (sooner when told), if the restrictions changed (another
        process may have added one: the generation is in the database), check each flight in the air."""
        checked: dict[int, tuple] = {}  # delivery -> the generation its route was last checked against
        while self.tasks:
            try:
                await asyncio.wait_for(self._reroute_kick.wait(), REROUTE_POLL_S)
            except asyncio.TimeoutError:
                pass
            self._reroute_kick.clear()
            try:
                gen = await asyncio.to_thread(self._restrictions_generation)
                todo = [(did, f) for did, f in list(self.flights.items()) if checked.get(did) != gen]
                # each flight's reroute holds it for seconds (hold, upload, read back): the others must not wait
                results = await asyncio.gather(*(self.reroute_if_crossed(did, f) for did, f in todo),
                                               return_exceptions=True)
                for (did, _), res in zip(todo, results):
                    if isinstance(res, BaseException):
                        log.error("delivery %s: reroute check failed: %r", did, res)
                    # a flight still on the ground is checked once it is up; one at its zone once it leaves
                    elif res != "ground" and not (isinstance(res, dict) and res.get("result") == "later"):
                        checked[did] = gen
                for gone in [k for k in checked if k not in self.flights]:
                    del checked[gone]
            except Exception:  # the watch must outlive one bad check
                log.exception("reroute watch")

    def _reroute_check(self, delivery_id: int, plan: FlightPlan, here: tuple[float, float], seq: int):
        """(restriction name, plan_fn) when the rest of the route crosses a restriction in force for the rest
        of the flight and reaching its cruise layer; None when it is clear. Database and planning: a thread."""
        from shapely.geometry import LineString, Point  # noqa: PLC0415

        from groundctl.core.reroute import reroute  # noqa: PLC0415

        with self.store.session() as s:
            d = s.get(Delivery, delivery_id)
            version = d.airspace_version if d is not None else None
        version, airspace = self.airspace.current(version)
        now = self.now()
        window = (now, now + timedelta(seconds=plan.nominal_time_s() * 2 + self.settings.dispatch_allowance_s))
        view = self.airspace.planner(version, plan.hub, window=window)
        frame = view.frame
        rest = [here] + [(it.lon, it.lat) for it in plan.mission[max(seq, 1):] if it.is_nav and (it.lat or it.lon)]
        xy = [tuple(frame.to_xy(lon, lat)) for lon, lat in rest]
        path = LineString(xy) if len(xy) > 1 else Point(xy[0])
        # the route keeps the lateral margin from every zone: closer than half of it is crossing
        margin = plan.ops.lateral_margin_m / 2
        hit = next((name for name, geom in view.restriction_shapes.values() if path.intersects(geom.buffer(margin))), None)
        if hit is None:
            return None

        def plan_fn(here_ll, seq_, released, home):
            return reroute(plan, airspace, view, here_ll, seq_, released=released, home=home)
        return hit, plan_fn

    async def reroute_if_crossed(self, delivery_id: int, flight: Any) -> dict | str | None:
        """If the flight's remaining route crosses a restriction, reroute it (DeliveryFlight.reroute), then
        store the new route for the map and replace its operational intent. "ground": not in the air yet."""
        mon, v = flight.monitor, flight.vehicle
        if mon is None or v is None or not mon.airborne or not v.state.has_position:
            return "ground"
        if mon.phase in ("landing", "landed"):
            return None
        s = v.state
        here, seq = (s.lon, s.lat), s.mission_seq or 1
        found = await asyncio.to_thread(self._reroute_check, delivery_id, flight.plan, here, seq)
        if found is None:
            return None
        name, plan_fn = found
        result = await flight.reroute(plan_fn, restriction=name)
        rr = result.get("reroute")
        if rr is not None:
            here = (v.state.lon, v.state.lat) if v.state.has_position else here
            await asyncio.to_thread(self._rerouted_record, delivery_id, rr, here)
            # the new plan's distances (and the new intent) start where the vehicle is: shrink from there
            self._flown[delivery_id] = 0.0
        return result

    def _rerouted_record(self, delivery_id: int, rr: Any, here: tuple[float, float]) -> None:
        from groundctl.core.intents import build_intent  # noqa: PLC0415
        from groundctl.core.reroute import intent_shape  # noqa: PLC0415

        plan = rr.plan
        try:
            with self.store.session() as s:
                d = s.get(Delivery, delivery_id)
                if d is None:
                    return
                # the map draws the route still to fly: out (from here) on the way out, home on the way back
                pts = plan.route_out.points_ll if rr.leg == "out" else plan.route_back.points_ll[::-1]
                d.route = [list(p) for p in pts]
                d.summary = {**(d.summary or {}), **plan.summary(), "rerouted": True}
                frame = self.airspace.current()[1].frame
                k = self.settings.intent_time_scale
                shape, params = scaled(intent_shape(rr, here, frame), IntentParams(start_allowance_s=0.0), k)
                with intents.lock():
                    intents.serialise(s)
                    it = build_intent(str(delivery_id), shape, self.now().timestamp(), params)
                    it.state = "activated"  # in the air
                    intents.put(s, delivery_id, it, frame)
        except Exception:  # the flight flies its new route even if the record lags
            log.exception("delivery %s: could not record the new route", delivery_id)

    async def stop(self) -> None:
        for t in list(self.tasks.values()):
            t.cancel()
        for t in list(self.tasks.values()):
            try:
                await t
            except (asyncio.CancelledError, Exception):
                pass
