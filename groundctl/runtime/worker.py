"""`groundctl worker`: a process that flies deliveries, so that API processes do not have to.

Each worker claims flights through leases (runtime/leases.py), heartbeats them, and hands each to the same
flight supervisor a single-process `serve` uses. A worker that dies (SIGKILL, a lost machine) stops
heartbeating; when its lease runs out (`lease_s`, 10 s by default) another worker claims the flight,
reconnects to the vehicle and carries on from the stored events: monitoring only once the vehicle has
been armed, from the upload again before that (the store keeps each once-only event once). Commands sent
through the database (abort, clear-to-drop) are carried out by whichever worker owns the flight, and its
positions and events reach every API process's live feed through NOTIFY (runtime/livebus.py).

A worker stopped with SIGTERM/SIGINT hands its flights back at once (the lease expires now) instead of
making the others wait for the lease to run out.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import uuid
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import select

from groundctl.errors import GroundctlError
from groundctl.runtime import leases
from groundctl.runtime.events import DeliveryEvent
from groundctl.runtime.store import Delivery, is_active

log = logging.getLogger("groundctl.worker")

# once the vehicle has been armed, a new owner only watches; before that it prepares it again
_STARTED = frozenset({"armed", "taking_off", "en_route", "at_zone", "lowering", "released", "returning", "landed",
                      "holding_for_recipient"})


@dataclass
class WorkerOptions:
    lease_s: float = 10.0  # a dead worker's flights are taken over within about this (plus poll_s)
    poll_s: float = 1.0  # how often to look for work and commands when no NOTIFY wakes the worker
    capacity: int = 100  # flights at once
    owner: str = field(default_factory=lambda: f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}")

    def __post_init__(self) -> None:
        if not self.lease_s > 0:
            raise GroundctlError(f"must be positive, got {self.lease_s}", field="lease_s")
        if not self.poll_s > 0:
            raise GroundctlError(f"must be positive, got {self.poll_s}", field="poll_s")
        if self.capacity < 1:
            raise GroundctlError(f"must be at least 1, got {self.capacity}", field="capacity")


class FlightWorker:
    """Runs on one event loop with a Service whose flight supervisor it feeds."""

    def __init__(self, service, options: WorkerOptions | None = None) -> None:
        self.service = service
        self.store = service.store
        self.supervisor = service.flights
        self.opt = options or WorkerOptions()
        self.owner = self.opt.owner
        self.held: dict[int, int] = {}  # delivery -> lease generation
        self.claims: dict[int, leases.Claim] = {}
        self._wake = asyncio.Event()
        self._commands = asyncio.Event()
        self._listener = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lost: set[int] = set()
        self._fence()

    def _fence(self) -> None:
        """Every event this worker's flights record is written only while it still holds the flight's lease,
        checked in the event's own transaction (the lease row is share-locked, so a claim waits for the
        write or the write sees the claim): a worker that stalled past its lease and woke up cannot add
        to a flight another worker now flies."""
        store, plain = self.store, self.store.append_event

        def append_event(delivery_id: int, ev: DeliveryEvent):
            gen = self.held.get(delivery_id)
            if gen is None and delivery_id not in self._lost:
                return plain(delivery_id, ev)  # not a flight of ours (a refusal before flying, say)
            with store.session() as s:
                mine = gen is not None and s.execute(
                    select(leases.FlightLease.delivery_id)
                    .where(leases.FlightLease.delivery_id == delivery_id, leases.FlightLease.owner == self.owner,
                           leases.FlightLease.generation == gen, leases.FlightLease.done_at.is_(None))
                    .with_for_update(read=True)).first() is not None
                if not mine:
                    log.warning("delivery %s: not recording %s: this worker no longer holds the flight",
                                delivery_id, ev.kind)
                    return None
                return store.append(s, delivery_id, ev)

        store.append_event = append_event  # type: ignore[method-assign]  (this process's store only)

    # -- the live feed: what this worker shows, decorated with what only it knows ----------------------
    def decorate(self, data: dict) -> None:
        data["worker"] = self.owner
        flight = self.supervisor.flights.get(data.get("delivery"))
        mon = getattr(flight, "monitor", None)
        if mon is not None and self._loop is not None and mon.clock.has_vehicle_time:
            # the autopilot's own milliseconds since boot: the one clock every worker reads alike (the UTC
            # it is anchored to depends on when a worker first heard it)
            data["vehicle_boot_ms"] = mon.state.time_boot_ms
            data["vehicle_time"] = mon.vehicle_time(self._loop.time()).isoformat()

    # -- main loop ------------------------------------------------------------------------------------
    async def run(self, stop: asyncio.Event) -> None:
        self._loop = asyncio.get_running_loop()
        url = leases.listen_url(self.store.engine)
        if url is not None:
            from groundctl.runtime.livebus import Listener  # noqa: PLC0415

            def on_notify(channel: str, _payload: str) -> None:
                ev = self._commands if channel == leases.COMMANDS else self._wake
                self._loop.call_soon_threadsafe(ev.set)

            self._listener = Listener(url, [leases.WORK, leases.COMMANDS], on_notify).start()
        tasks = [asyncio.create_task(self._heartbeats(), name="heartbeats"),
                 asyncio.create_task(self._claims(), name="claims"),
                 asyncio.create_task(self._command_loop(), name="commands")]
        log.info("worker %s: lease %.1f s, polling every %.1f s", self.owner, self.opt.lease_s, self.opt.poll_s)
        try:
            await stop.wait()
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await self._hand_back()
            if self._listener is not None:
                self._listener.stop()

    async def _hand_back(self) -> None:
        """Stop flying (the flights are not over) and let another worker claim them now."""
        held = dict(self.held)
        await self.supervisor.stop()
        for did, gen in held.items():
            try:
                await asyncio.to_thread(leases.release, self.store, did, self.owner, gen)
            except Exception:  # noqa: BLE001 - the lease then runs out on its own
                log.exception("could not release delivery %s", did)
        self.held.clear()

    async def _heartbeats(self) -> None:
        period = self.opt.lease_s / 4
        while True:
            await asyncio.sleep(period)
            if not self.held:
                continue
            try:
                kept = await asyncio.to_thread(leases.heartbeat, self.store, self.owner, dict(self.held),
                                               self.opt.lease_s)
            except Exception:  # noqa: BLE001 - a database blip: try again; the lease has 4 periods of slack
                log.exception("heartbeat failed")
                continue
            for did in set(self.held) - kept:
                # another worker took it (we were too slow to heartbeat): two must never fly one flight
                log.warning("lost the lease of delivery %s: stopping its flight here", did)
                self._lost.add(did)
                self.held.pop(did, None)
                task = self.supervisor.tasks.get(did)
                if task is not None:
                    task.cancel()

    async def _claims(self) -> None:
        while True:
            got = []
            try:
                await asyncio.to_thread(leases.adopt_unleased, self.store)
                # one flight per round, then a short pause: the other workers woken by the same NOTIFY get
                # their share instead of the quickest taking everything
                room = min(1, self.opt.capacity - len(self.held))
                got = await asyncio.to_thread(leases.claim, self.store, self.owner, self.opt.lease_s, room)
                for c in got:
                    self.held[c.delivery_id] = c.generation
                    self.claims[c.delivery_id] = c
                    await self._start(c)
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001
                log.exception("claiming flights failed")
            if got:
                await asyncio.sleep(0.2)
                continue
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), self.opt.poll_s)
            except asyncio.TimeoutError:
                pass

    # -- one flight -----------------------------------------------------------------------------------
    def _flight_args(self, delivery_id: int):
        """(plan, vehicle, stored events, resume, departure delay) or (None, why, events, ...) for a thread."""
        sup = self.supervisor
        with self.store.session() as s:
            d = s.get(Delivery, delivery_id)
            events = self.store.events(s, delivery_id) if d is not None else []
            kinds = [e.kind for e in events]
            if d is None or not is_active(kinds):
                return None, None, events, False, 0.0
            v = next((v for v in sup.fleet.current().vehicles if v.name == d.vehicle), None)
            if v is None or not v.connection:
                return None, f"cannot fly: vehicle {d.vehicle!r} is no longer in the fleet or has no connection", \
                    events, False, 0.0
            try:
                stored_plan = getattr(sup, "_stored_plan", None)
                plan = stored_plan(s, d) if stored_plan is not None else sup.deliveries.plan_for(d)
            except GroundctlError as e:
                return None, f"cannot rebuild plan: {e}", events, False, 0.0
            resume = bool(_STARTED & set(kinds))
            delay = 0.0
            dispatched = next((e for e in events if e.kind == "dispatched"), None)
            dep = ((dispatched.data or {}).get("departure") if dispatched is not None else None)
            if dep and not resume:
                delay = max(0.0, (datetime.fromisoformat(dep) - leases.db_now(s)).total_seconds())
            s.expunge_all()
        return plan, v, events, resume, delay

    async def _start(self, c: leases.Claim) -> None:
        did = c.delivery_id
        plan, v, events, resume, delay = await asyncio.to_thread(self._flight_args, did)
        if plan is None:
            if v is not None:  # a reason: the flight cannot go on
                await asyncio.to_thread(self.store.append_event, did, DeliveryEvent("failed", message=v))
            await asyncio.to_thread(leases.finish, self.store, did, self.owner, c.generation)
            self.held.pop(did, None)
            return
        log.info("delivery %s: claimed (generation %d%s), %s", did, c.generation,
                 f", taken over from {c.previous_owner}" if c.previous_owner else "",
                 "monitoring" if resume else "preparing the vehicle")
        kw = {"delay_s": delay} if delay > 0 else {}
        self.supervisor.start_flight(did, plan, v, resume=resume, seen=tuple(events), **kw)
        task = self.supervisor.tasks.get(did)
        if task is not None:
            task.add_done_callback(lambda t, did=did, gen=c.generation: self._ended(did, gen, t))

    def _ended(self, did: int, gen: int, task: asyncio.Task) -> None:
        if task.cancelled() or did in self._lost:
            self._lost.discard(did)
            return  # stopped, not over: released at hand-back, or already someone else's
        # the flight ran to its end (report or failed): nobody claims it again
        self.held.pop(did, None)
        asyncio.get_running_loop().create_task(asyncio.to_thread(leases.finish, self.store, did, self.owner, gen))

    # -- commands -------------------------------------------------------------------------------------
    async def _command_loop(self) -> None:
        while True:
            try:
                await self._carry_out_commands()
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001
                log.exception("commands failed")
            self._commands.clear()
            try:
                # short: an abort should not wait a poll period when NOTIFY is missing (SQLite)
                await asyncio.wait_for(self._commands.wait(), min(self.opt.poll_s, 0.5))
            except asyncio.TimeoutError:
                pass

    async def _carry_out_commands(self) -> None:
        mine = [did for did in self.held if did in self.supervisor.flights]
        if not mine:
            return
        cmds = await asyncio.to_thread(leases.pending, self.store, mine)
        if not cmds:
            return
        now = await asyncio.to_thread(self._db_now)
        for c in cmds:
            flight = self.supervisor.flights.get(c.delivery_id)
            if flight is None:
                continue
            if leases.expired(c, now):
                result = {"error": {"type": "Conflict", "field": c.kind,
                                    "message": "the command expired before the flight's worker could carry it out"}}
            else:
                result = await self._do(flight, c)
            await asyncio.to_thread(leases.answer, self.store, c.id, self.owner, result)

    def _db_now(self) -> datetime:
        with self.store.session() as s:
            return leases.db_now(s)

    async def _do(self, flight, c) -> dict:
        try:
            if c.kind == "abort":
                await flight.abort((c.data or {}).get("action", "rtl"))
                return {"ok": True}
            if c.kind == "clear_to_drop":
                return {"ok": await flight.clear_to_drop((c.data or {}).get("by", "recipient"))}
            return {"error": {"type": "InputError", "field": "kind", "message": f"unknown command {c.kind!r}"}}
        except GroundctlError as e:
            return {"error": {"type": type(e).__name__, "field": e.field, "message": e.reason}}
        except Exception as e:  # noqa: BLE001 - reported to the API process that asked
            log.exception("command %s on delivery %s", c.kind, c.delivery_id)
            return {"error": {"type": "GroundctlError", "field": c.kind, "message": f"{type(e).__name__}: {e}"}}


# -- the process --------------------------------------------------------------------------------------

async def run_worker(settings, options: WorkerOptions, stop: asyncio.Event | None = None) -> None:
    """Build the service (its store, fleet, airspace, supervisor) without HTTP and fly until stopped."""
    import signal  # noqa: PLC0415

    from groundctl.runtime.livebus import NotifyingLiveHub  # noqa: PLC0415
    from groundctl.runtime.services import Service  # noqa: PLC0415

    from sqlalchemy.exc import IntegrityError  # noqa: PLC0415

    try:
        service = await asyncio.to_thread(Service, settings)
    except IntegrityError:
        # an API process seeding the same empty database at this moment won the race: it is seeded now
        await asyncio.sleep(1.0)
        service = await asyncio.to_thread(Service, settings)
    worker = FlightWorker(service, options)
    if service.store.engine.dialect.name == "postgresql":
        hub = NotifyingLiveHub(settings.live_hz, service.store.engine, decorate=worker.decorate)
        service.live = service.flights.live = hub
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError):  # not the main thread (tests): the caller stops it
            pass
    print(f"worker {options.owner}: flying deliveries from {service.store.engine.url.render_as_string()}",
          flush=True)
    try:
        await worker.run(stop)
    finally:
        await service.stop()
        service.store.close()


__all__ = ["FlightWorker", "WorkerOptions", "run_worker"]
