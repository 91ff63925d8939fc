"""A worker that lost a flight's lease (it stalled past the lease and another worker took the flight over)
records nothing more for that flight, on both engines; while it holds the lease its events are stored."""

from __future__ import annotations

import time
from types import SimpleNamespace

import pytest

from groundctl.runtime import leases
from groundctl.runtime.events import DeliveryEvent
from groundctl.runtime.store import Delivery, Recipient, Store
from groundctl.runtime.worker import FlightWorker, WorkerOptions


@pytest.fixture
def store(db_url):
    s = Store(db_url)
    yield s
    s.close()


def test_a_worker_that_lost_the_lease_records_nothing_more(store):
    with store.session() as s:
        r = Recipient(name="r", token_hash="d" * 64)
        s.add(r)
        s.flush()
        d = Delivery(recipient_id=r.id, zone_id=1, zone={}, parcel={}, airspace_version=1, state="planned")
        s.add(d)
        s.flush()
        did = d.id
    store.append_event(did, DeliveryEvent("dispatched"))
    leases.offer(store, did)
    # the worker as far as recording goes: its store and the flights it holds (no flight is flown here)
    stalled = FlightWorker(SimpleNamespace(store=store, flights=SimpleNamespace(flights={}, tasks={})),
                           WorkerOptions(lease_s=0.3, owner="stalled"))
    (c,) = leases.claim(store, "stalled", 0.3, 1)
    stalled.held[did] = c.generation
    assert store.append_event(did, DeliveryEvent("uploaded")) is not None
    time.sleep(0.5)  # no heartbeat: the lease runs out
    (taken,) = leases.claim(store, "successor", 30.0, 1)
    assert taken.previous_owner == "stalled"
    assert store.append_event(did, DeliveryEvent("armed")) is None  # the stalled worker wakes up: refused
    assert store.append_event(did, DeliveryEvent("link_lost")) is None
    with store.session() as s:
        assert store.kinds(s, did) == ["dispatched", "uploaded"]
