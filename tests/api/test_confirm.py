"""Confirmation and disputes through the real server: the recipient answers once, after the drop, from the
API or the page's link; operators see and resolve disputes; KPIs count confirmations, disputes and the time
to confirm; a parcel nobody confirmed in time is flagged.

Flights are recorded the way the flight supervisor records them (events, then the flight's report), so
that the clock of each step is known; tests/api/test_tracking_page.py flies one for real."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import httpx
import pytest

from groundctl.protocol.events import DeliveryEvent, DeliveryReport
from tests.api.conftest import (BACKENDS, CLINIC_EAST, FARM_NORTH, OP, Clock, assert_problem, backend_url, register,
                                zone_body)
from tests.api.test_tracking import link_of, start_server, token_of

HOUR = 3600.0


class FrozenClock(Clock):
    """The service's clock stands still (plus an offset the test sets): waits are exact, not a race with
    how long the test itself takes on a busy machine."""

    def __init__(self) -> None:
        super().__init__()
        self.t = datetime.now(timezone.utc)

    def __call__(self) -> datetime:
        return self.t + self.offset


@pytest.fixture(scope="module")
def clock():
    return FrozenClock()


@pytest.fixture(scope="module", params=BACKENDS)
def srv(request, tmp_path_factory, clock):
    """On SQLite and PostgreSQL: "once" is the database's primary key, the lists are its queries."""
    s = start_server(tmp_path_factory.mktemp("confirm"), clock=clock, unconfirmed_after_s=6 * HOUR,
                     database_url=backend_url(request, request.param))
    yield s
    s.stop()


def fly(srv, did: int, released_ago_s: float, *, parcel: str = "delivered") -> None:
    """Record a flight of a planned delivery that released its parcel `released_ago_s` ago (service clock)."""
    now = srv.service.settings.clock()
    rel = now - timedelta(seconds=released_ago_s)
    store = srv.service.store
    with store.session() as s:
        from groundctl.runtime.store import Delivery
        z = s.get(Delivery, did).zone
        store.append(s, did, DeliveryEvent("dispatched", time=rel - timedelta(minutes=5),
                                           data={"vehicle": "dr-01", "eta_promised": rel.isoformat()}))
        for i, k in enumerate(("armed", "taking_off", "en_route", "at_zone")):
            store.append(s, did, DeliveryEvent(k, time=rel - timedelta(minutes=4 - i)))
        store.append(s, did, DeliveryEvent("released", time=rel, lat=z["lat"], lon=z["lon"]))
        if parcel != "delivered":
            store.append(s, did, DeliveryEvent("drop_failed", time=rel))
        store.append(s, did, DeliveryEvent("returning", time=rel + timedelta(seconds=10)))
        store.append(s, did, DeliveryEvent("landed", time=rel + timedelta(minutes=4)))
        rep = DeliveryReport("delivered" if parcel == "delivered" else "returned_with_parcel", parcel=parcel,
                             drop_lat=z["lat"] if parcel == "delivered" else None,
                             drop_lon=z["lon"] if parcel == "delivered" else None).to_dict()
        rep.pop("events", None)
        store.append(s, did, DeliveryEvent("report", time=rel + timedelta(minutes=4), message=rep["outcome"], data=rep))


def plan(c, headers, latlon=CLINIC_EAST, name="lawn") -> int:
    zid = c.post("/api/v1/zones", json=zone_body(latlon, name=name), headers=headers).json()["id"]
    d = c.post("/api/v1/deliveries", json={"zone_id": zid, "parcel": {"mass_kg": 1.0}}, headers=OP).json()
    assert d["state"] == "planned", d
    return d["id"]


def test_answers_once_after_the_drop_disputes_and_kpis(srv, clock):
    with httpx.Client(base_url=srv.url, timeout=30) as c:
        h = register(c, "gina")
        ids = [plan(c, h, name=f"z{i}") for i in range(5)]
        waiting = plan(c, h, FARM_NORTH, name="not yet")
        # released 40, 30, 20, 10 minutes ago; the last one's parcel stayed aboard (a failed drop)
        for i, ago in zip(ids, (40 * 60, 30 * 60, 20 * 60, 10 * 60)):
            fly(srv, i, ago)
        fly(srv, ids[4], 5 * 60, parcel="aboard")

        # before the drop there is nothing to confirm
        body = assert_problem(c.post(f"/api/v1/deliveries/{waiting}/confirmation", json={"status": "received"},
                                     headers=h), 409)
        assert "released" in body["detail"] and body["errors"][0]["field"] == "delivery_id"
        # bad answers name their field
        for bad, field in (({"status": "lost"}, "status"), ({"status": "received", "message": "x" * 1001}, "message"),
                           ({"status": "received", "extra": 1}, "extra")):
            b = assert_problem(c.post(f"/api/v1/deliveries/{ids[0]}/confirmation", json=bad, headers=h), 422)
            assert b["errors"][0]["field"] == field, b

        # received (API) 40 min after its drop; received (page link) 10 min after; damaged (page) and wrong place
        # (API) on the next two; the failed drop's recipient says not received
        r = c.post(f"/api/v1/deliveries/{ids[0]}/confirmation", json={"status": "received"}, headers=h)
        assert r.status_code == 201 and r.json()["status"] == "received" and r.json()["via"] == "api", r.text
        t1 = token_of(link_of(srv, c, ids[1], h))
        assert c.get(f"/api/v1/track/{t1}").json()["can_confirm"] is True
        clock.offset = timedelta(minutes=-20)  # i.e. 10 minutes after ids[1] was released
        try:
            r = c.post(f"/api/v1/track/{t1}/confirmation", json={"status": "received", "message": "thanks!"})
            assert r.status_code == 201, r.text
        finally:
            clock.offset = timedelta()
        t2 = token_of(link_of(srv, c, ids[2], h))
        assert c.post(f"/api/v1/track/{t2}/confirmation",
                      json={"status": "damaged", "message": "corner crushed"}).status_code == 201
        assert c.post(f"/api/v1/deliveries/{ids[3]}/confirmation", json={"status": "wrong_place",
                      "message": "on the neighbour's roof"}, headers=h).status_code == 201
        assert c.post(f"/api/v1/deliveries/{ids[4]}/confirmation", json={"status": "not_received"},
                      headers=h).status_code == 201

        # the answer is in the delivery's view; the recipient's words are not copied into its events (erasing
        # the recipient blanks them in one place)
        view = c.get(f"/api/v1/deliveries/{ids[2]}", headers=OP).json()
        assert view["confirmation"]["status"] == "damaged" and view["confirmation"]["message"] == "corner crushed"
        assert ("disputed", "page") in [(e["kind"], e["data"].get("via")) for e in view["events"]]
        assert "corner crushed" not in str(view["events"])
        # once: a second answer from either side is refused, the first one stands
        assert_problem(c.post(f"/api/v1/track/{t1}/confirmation", json={"status": "not_received"}), 409)
        assert_problem(c.post(f"/api/v1/deliveries/{ids[2]}/confirmation", json={"status": "received"}, headers=h), 409)
        j = c.get(f"/api/v1/track/{t1}").json()
        assert j["confirmation"]["status"] == "received" and j["confirmation"]["message"] == "thanks!"
        assert j["can_confirm"] is False

        # operators: open disputes, oldest first; anonymous and recipients may not look
        assert c.get("/api/v1/disputes").status_code == 401
        assert c.get("/api/v1/disputes", headers=h).status_code == 401
        d = c.get("/api/v1/disputes", headers=OP).json()
        assert [(x["delivery"], x["status"]) for x in d["items"]] == [
            (ids[2], "damaged"), (ids[3], "wrong_place"), (ids[4], "not_received")]
        assert d["items"][0]["message"] == "corner crushed" and d["items"][0]["proof_of_delivery"]["lat"] is not None
        r = c.post(f"/api/v1/disputes/{ids[2]}/resolve", json={"resolution": "redelivered", "note": "sent again"},
                   headers=OP)
        assert r.status_code == 200 and r.json()["resolution"] == "redelivered", r.text
        assert_problem(c.post(f"/api/v1/disputes/{ids[2]}/resolve", json={"resolution": "refunded"}, headers=OP), 409)
        assert_problem(c.post(f"/api/v1/disputes/{ids[0]}/resolve", json={"resolution": "refunded"}, headers=OP), 404)
        assert [x["delivery"] for x in c.get("/api/v1/disputes", headers=OP).json()["items"]] == [ids[3], ids[4]]
        assert [x["delivery"] for x in c.get("/api/v1/disputes", params={"status": "resolved"},
                                            headers=OP).json()["items"]] == [ids[2]]
        assert c.get(f"/api/v1/track/{t2}").json()["confirmation"]["resolution"] == "redelivered"

        # KPIs over the 4 parcels that reached the ground (the failed drop is not a delivered one)
        k = c.get("/api/v1/kpis", headers=OP).json()
        assert k["delivered"] == 4
        assert k["confirmed"] == 2 and k["confirmation_rate"] == 0.5
        assert k["disputed"] == 2 and k["dispute_rate"] == 0.5
        assert k["disputes_by_status"] == {"damaged": 1, "wrong_place": 1} and k["disputes_open"] == 1
        ttc = k["time_to_confirmation_s"]
        assert ttc["confirmations"] == 2
        # 40 min (answered now) and 10 min (answered with the clock 20 min back): median 25 min, p90 40 min
        assert ttc["median"] == 25 * 60 and ttc["p90"] == 40 * 60
        assert k["unconfirmed_overdue"] == 0


def test_a_parcel_left_unconfirmed_is_flagged_for_operators(srv, clock):
    with httpx.Client(base_url=srv.url, timeout=30) as c:
        h = register(c, "hank")
        quiet, answered, jammed = plan(c, h, name="quiet"), plan(c, h, name="answered"), plan(c, h, name="jammed")
        limit = 6 * HOUR
        fly(srv, quiet, limit - 60)
        fly(srv, answered, limit + 60)
        fly(srv, jammed, limit + 60, parcel="aboard")  # nothing was delivered: nothing to confirm
        assert c.post(f"/api/v1/deliveries/{answered}/confirmation", json={"status": "received"},
                      headers=h).status_code == 201
        before = [x["delivery"] for x in c.get("/api/v1/unconfirmed", headers=OP).json()["items"]]
        assert quiet not in before and answered not in before
        assert c.get(f"/api/v1/deliveries/{quiet}", headers=OP).json()["unconfirmed_overdue"] is False
        clock.offset = timedelta(seconds=120)
        try:
            u = c.get("/api/v1/unconfirmed", headers=OP).json()
            listed = [x["delivery"] for x in u["items"]]
            assert quiet in listed and answered not in listed and jammed not in listed
            assert u["unconfirmed_after_s"] == limit
            row = next(x for x in u["items"] if x["delivery"] == quiet)
            assert row["waiting_s"] == limit - 60 + 120
            for who in (OP, h):  # operators and the recipient see the flag
                view = c.get(f"/api/v1/deliveries/{quiet}", headers=who).json()
                assert view["unconfirmed_overdue"] is True and view["confirmation"] is None
            for other in (answered, jammed):
                assert c.get(f"/api/v1/deliveries/{other}", headers=OP).json()["unconfirmed_overdue"] is False
            assert c.get("/api/v1/kpis", headers=OP).json()["unconfirmed_overdue"] >= 1
            assert c.get("/api/v1/unconfirmed", headers=h).status_code == 401
        finally:
            clock.offset = timedelta()


def test_racing_answers_one_wins_the_rest_are_refused(srv):
    """Two tabs and an API client answering at once: exactly one answer is stored, the others get 409."""
    from concurrent.futures import ThreadPoolExecutor

    with httpx.Client(base_url=srv.url, timeout=60) as c:
        h = register(c, "ida")
        did = plan(c, h, name="race")
        fly(srv, did, 60)
        token = token_of(link_of(srv, c, did, h))

        def answer(i: int) -> int:
            with httpx.Client(base_url=srv.url, timeout=60) as cc:
                status = ("received", "damaged", "not_received", "wrong_place")[i % 4]
                if i % 2:
                    return cc.post(f"/api/v1/track/{token}/confirmation", json={"status": status}).status_code
                return cc.post(f"/api/v1/deliveries/{did}/confirmation", json={"status": status},
                               headers=h).status_code

        with ThreadPoolExecutor(8) as pool:
            codes = list(pool.map(answer, range(8)))
        assert sorted(codes) == [201] + [409] * 7, codes
        view = c.get(f"/api/v1/deliveries/{did}", headers=OP).json()
        kinds = [e["kind"] for e in view["events"]]
        assert kinds.count("confirmed") + kinds.count("disputed") == 1, kinds
