"""The flight supervisor as an API process sees it when flights run in `groundctl worker` processes.

Dispatch records the dispatch exactly as the in-process supervisor does (same checks, same transaction),
then offers the flight to the workers through a lease row; abort and clear-to-drop become commands in the
database that the owning worker carries out and answers. Nothing about a flight lives in this process's
memory except the live feed, which arrives from the workers (runtime/livebus.py).
"""

from __future__ import annotations

import asyncio
import logging
import time

from groundctl import errors
from groundctl.errors import Conflict, GroundctlError
from groundctl.runtime import leases
from groundctl.runtime.services.flights import FlightSupervisor

log = logging.getLogger("groundctl.flights.remote")


def _raise(err: dict) -> None:
    cls = getattr(errors, str(err.get("type")), None)
    if not (isinstance(cls, type) and issubclass(cls, GroundctlError)) or cls in (errors.ValidationErrors,
                                                                                 errors.PlanRefused):
        cls = GroundctlError
    raise cls(err.get("message") or "the flight's worker refused", field=err.get("field"))


class RemoteFlight:
    """Stands for a flight some worker flies; has the methods the faces call on a DeliveryFlight."""

    def __init__(self, remote: "RemoteFlights", delivery_id: int) -> None:
        self.remote = remote
        self.delivery_id = delivery_id

    async def abort(self, action: str = "rtl") -> None:
        if action not in ("rtl", "land"):
            raise GroundctlError(f"abort action must be 'rtl' or 'land', got {action!r}", field="action")
        # no expiry: an abort still matters to the worker that takes the flight over later
        await self.remote.command(self.delivery_id, "abort", {"action": action}, ttl_s=None, must_answer=False)

    async def clear_to_drop(self, by: str = "recipient") -> dict:
        # a clearance is for now: one the workers could not act on in time must not drop the parcel later
        return await self.remote.command(self.delivery_id, "clear_to_drop", {"by": by},
                                         ttl_s=self.remote.answer_wait_s, must_answer=True)


class _Flights(dict):
    """`flights.get(id)`: a stand-in for any delivery; whether a worker flies it is asked when it is used."""

    def __init__(self, remote: "RemoteFlights") -> None:
        super().__init__()
        self.remote = remote

    def get(self, delivery_id, default=None):  # noqa: ANN001
        return RemoteFlight(self.remote, int(delivery_id)) if delivery_id is not None else default


class RemoteFlights(FlightSupervisor):
    answer_wait_s = 10.0  # how long an API request waits for the owning worker's answer

    def __init__(self, *args, **kw) -> None:
        super().__init__(*args, **kw)
        self.flights = _Flights(self)
        self.relay = None

    @classmethod
    def of(cls, service) -> "RemoteFlights":
        """The in-process supervisor of a built Service, swapped for this one."""
        sup = service.flights
        remote = cls.__new__(cls)
        remote.__dict__.update(sup.__dict__)
        remote.flights = _Flights(remote)
        remote.relay = None
        service.flights = remote
        return remote

    def _follow(self) -> None:
        """Start taking the workers' live feed into this process (PostgreSQL; needs the running loop)."""
        if self.relay is None and self.store.engine.dialect.name == "postgresql":
            from groundctl.runtime.livebus import LiveRelay  # noqa: PLC0415

            self.relay = LiveRelay(self.store.engine, self.live, self.progress).start()

    async def dispatch(self, delivery_id: int, vehicle: str | None, force: bool = False) -> dict:
        self._follow()
        recorded = await asyncio.to_thread(self._dispatch_record, delivery_id, vehicle, force)
        # if this process dies right here, a worker adopts the dispatched delivery (leases.adopt_unleased)
        await asyncio.to_thread(leases.offer, self.store, delivery_id)
        return recorded[0]

    async def resume_all(self) -> list[int]:
        self._follow()  # called once at start-up: the workers resume flights, this process shows them
        return []

    async def command(self, delivery_id: int, kind: str, data: dict, *, ttl_s: float | None,
                      must_answer: bool) -> dict:
        lease = await asyncio.to_thread(leases.holder, self.store, delivery_id)
        if lease is None:
            raise Conflict(f"delivery {delivery_id} is not in flight: no worker flies it", field="delivery_id")
        cid = await asyncio.to_thread(leases.send, self.store, delivery_id, kind, data, ttl_s)
        deadline = time.monotonic() + self.answer_wait_s
        while time.monotonic() < deadline:
            out = await asyncio.to_thread(leases.outcome, self.store, cid)
            if out is not None:
                if "error" in out:
                    _raise(out["error"])
                return out.get("ok") if isinstance(out.get("ok"), dict) else {}
            await asyncio.sleep(0.1)
        if must_answer:
            raise Conflict(f"the worker flying delivery {delivery_id} did not answer within {self.answer_wait_s:.0f} s "
                           f"(owner {lease.owner or 'none yet'}); the {kind} was not carried out", field="delivery_id")
        log.warning("delivery %s: %s queued for the next worker to own the flight", delivery_id, kind)
        return {}

    async def stop(self) -> None:
        if self.relay is not None:
            self.relay.stop()
            self.relay = None
