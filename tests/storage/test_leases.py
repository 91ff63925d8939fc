"""Flight leases and commands on both engines: a flight is claimed by one worker at a time even when
workers race; a lease that is not heartbeated runs out and the next claim takes it over (generation
up, previous owner kept); a finished flight is never claimed again; commands are answered once."""

from __future__ import annotations

import threading
import time

import pytest

from groundctl.runtime import leases
from groundctl.runtime.events import DeliveryEvent
from groundctl.runtime.leases import FlightLease
from groundctl.runtime.store import Delivery, Recipient, Store


@pytest.fixture
def store(db_url):
    s = Store(db_url)
    yield s
    s.close()


def dispatched(store: Store, n: int) -> list[int]:
    ids = []
    with store.session() as s:
        r = Recipient(name="r", token_hash="c" * 64)
        s.add(r)
        s.flush()
        for _ in range(n):
            d = Delivery(recipient_id=r.id, zone_id=1, zone={}, parcel={}, airspace_version=1, state="planned")
            s.add(d)
            s.flush()
            for kind in ("planned", "dispatched"):
                store.append(s, d.id, DeliveryEvent(kind))
            ids.append(d.id)
    return ids


def test_racing_workers_never_claim_one_flight_twice(store):
    ids = dispatched(store, 12)
    for did in ids:
        leases.offer(store, did)
    got: dict[str, list[int]] = {}
    go = threading.Barrier(4)

    def worker(name: str) -> None:
        go.wait()
        mine = []
        for _ in range(6):
            mine += [c.delivery_id for c in leases.claim(store, name, 30.0, 2)]
        got[name] = mine

    threads = [threading.Thread(target=worker, args=(f"w{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    claimed = [did for mine in got.values() for did in mine]
    assert sorted(claimed) == sorted(ids)  # every flight claimed, none twice
    with store.session() as s:
        rows = {r.delivery_id: r for r in s.query(FlightLease)}
    for name, mine in got.items():
        for did in mine:
            assert rows[did].owner == name and rows[did].generation == 1


def test_expired_lease_is_taken_over_and_the_old_owner_loses_it(store):
    (did,) = dispatched(store, 1)
    leases.offer(store, did)
    (a,) = leases.claim(store, "a", 0.5, 10)
    assert a.generation == 1 and a.previous_owner is None
    assert leases.claim(store, "b", 0.5, 10) == []  # still a's
    assert leases.heartbeat(store, "a", {did: 1}, 0.5) == {did}
    time.sleep(0.7)  # a stops heartbeating: dead
    (b,) = leases.claim(store, "b", 30.0, 10)
    assert (b.generation, b.previous_owner) == (2, "a")
    assert b.claimed_at >= b.previous_expired_at
    assert leases.heartbeat(store, "a", {did: 1}, 30.0) == set()  # a, back from the dead, finds it gone
    assert leases.heartbeat(store, "b", {did: 2}, 30.0) == {did}
    leases.finish(store, did, "b", 2)
    assert leases.holder(store, did) is None
    time.sleep(0.1)
    assert leases.claim(store, "c", 30.0, 10) == []


def test_released_lease_is_claimable_at_once(store):
    (did,) = dispatched(store, 1)
    leases.offer(store, did)
    leases.offer(store, did)  # idempotent
    (a,) = leases.claim(store, "a", 300.0, 10)
    leases.release(store, did, "a", a.generation)
    (b,) = leases.claim(store, "b", 300.0, 10)
    assert (b.delivery_id, b.generation, b.previous_owner) == (did, 2, "a")


def test_flight_without_a_lease_is_adopted_once(store):
    d1, d2 = dispatched(store, 2)
    store.append_event(d2, DeliveryEvent("failed", message="over before the switch"))
    assert leases.adopt_unleased(store) == [d1]  # a finished flight is not adopted
    assert leases.adopt_unleased(store) == []
    assert [c.delivery_id for c in leases.claim(store, "w", 30.0, 10)] == [d1]


def test_commands_are_answered_once_and_expire(store):
    (did,) = dispatched(store, 1)
    cid = leases.send(store, did, "abort", {"action": "rtl"}, ttl_s=None)
    quick = leases.send(store, did, "clear_to_drop", {"by": "recipient"}, ttl_s=0.2)
    assert [c.id for c in leases.pending(store, [did])] == [cid, quick]
    assert leases.outcome(store, cid) is None
    assert leases.answer(store, cid, "a", {"ok": True})
    assert not leases.answer(store, cid, "b", {"error": {"type": "Conflict", "message": "late"}})
    assert leases.outcome(store, cid) == {"ok": True}
    time.sleep(0.3)
    (c,) = leases.pending(store, [did])
    with store.session() as s:
        now = leases.db_now(s)
    assert c.id == quick and leases.expired(c, now)
