"""The store's event log on both engines: once-only kinds stay once even when writers race, repeats count
up, the state column follows the events, and a failed transaction leaves nothing behind."""

from __future__ import annotations

import threading
from datetime import datetime, timezone

import pytest

from groundctl.runtime.events import DeliveryEvent
from groundctl.runtime.store import Delivery, Event, Recipient, Store


@pytest.fixture
def store(db_url):
    s = Store(db_url)
    yield s
    s.close()


def new_delivery(store: Store) -> int:
    with store.session() as s:
        r = Recipient(name="clinic", token_hash=f"{id(s):064x}"[-64:])
        s.add(r)
        s.flush()
        d = Delivery(recipient_id=r.id, zone_id=1, zone={}, parcel={"mass_kg": 1.0}, airspace_version=1,
                     state="planned")
        s.add(d)
        s.flush()
        return d.id


def ev(kind: str, **kw) -> DeliveryEvent:
    return DeliveryEvent(kind=kind, time=datetime(2026, 11, 30, 1, 0, tzinfo=timezone.utc), **kw)


def test_once_kinds_once_repeats_counted_state_follows(store):
    did = new_delivery(store)
    for kind in ("planned", "dispatched", "dispatched", "link_lost", "taking_off", "link_lost", "en_route"):
        store.append_event(did, ev(kind, data={"nan": float("nan"), "when": datetime(2026, 1, 1, tzinfo=timezone.utc)}))
    with store.session() as s:
        rows = [(e.kind, e.occurrence) for e in store.events(s, did)]
        assert rows == [("planned", 1), ("dispatched", 1), ("link_lost", 1), ("taking_off", 1), ("link_lost", 2),
                        ("en_route", 1)]
        assert s.get(Delivery, did).state == "en_route"
        assert store.events(s, did)[0].data == {"nan": None, "when": "2026-01-01T00:00:00+00:00"}
        assert store.events(s, did)[0].time == datetime(2026, 11, 30, 1, 0, tzinfo=timezone.utc)


def test_racing_writers_store_a_once_kind_once(store):
    """Two processes flying one delivery (a takeover that overlaps) must not both record 'landed'."""
    did = new_delivery(store)
    results: list = []
    go = threading.Barrier(6)

    def write() -> None:
        go.wait()
        results.append(store.append_event(did, ev("landed")))

    threads = [threading.Thread(target=write) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sum(r is not None for r in results) == 1, results
    with store.session() as s:
        assert [e.kind for e in store.events(s, did)] == ["landed"]
        assert s.get(Delivery, did).state == "landed"


def test_failed_transaction_leaves_nothing(store):
    did = new_delivery(store)
    with pytest.raises(RuntimeError):
        with store.session() as s:
            store.append(s, did, ev("dispatched"))
            raise RuntimeError("planning failed half-way")
    with store.session() as s:
        assert store.events(s, did) == []
        assert s.get(Delivery, did).state == "planned"
        assert s.query(Event).count() == 0
