"""Signed webhooks through the outbox, against a real receiver on a loopback port that fails, hangs and
recovers: every event arrives, a duplicate only ever repeats a webhook-id, every signature verifies
(checked with the `standardwebhooks` reference package), dead letters are visible and retried, and a
dead endpoint holds only its own messages."""

from __future__ import annotations

import json
import logging
import random
import time
from collections import defaultdict
from datetime import datetime

import httpx
import pytest

from groundctl.faces.api import Settings, create_app
from groundctl.runtime.notify import NotifySettings
from tests.api.conftest import (BACKENDS, CLINIC_EAST, OP, OP_KEY, ThreadServer, assert_problem, backend_url,
                                put_weather, register, zone_body)
from tests.api.receivers import WebhookReceiver

standardwebhooks = pytest.importorskip("standardwebhooks")

# a day of retries squeezed into about a second and a half; the attempt timeout well below the receiver's hang
FAST = dict(backoff_s=(0.1, 0.2, 0.4, 0.8), jitter=0.2, attempt_timeout_s=1.0, poll_s=0.05, stale_scan_s=3600,
            allow_private_urls=True)


def start_server(tmp, database_url: str | None = None, **notify) -> ThreadServer:
    s = Settings(data_dir=tmp, operator_keys=(OP_KEY,), database_url=database_url,
                 notify=NotifySettings(**{**FAST, **notify}))
    srv = ThreadServer(create_app(s)).start()
    put_weather(srv.url)
    return srv


def outbox(c: httpx.Client, **params) -> list[dict]:
    r = c.get("/api/v1/outbox", params={"limit": 500, **params}, headers=OP)
    assert r.status_code == 200, r.text
    return r.json()["items"]


def wait_settled(c: httpx.Client, timeout: float = 60, **params) -> list[dict]:
    """Every message sent or dead-lettered (none pending)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        items = outbox(c, **params)
        if items and all(m["state"] != "pending" for m in items):
            return items
        time.sleep(0.1)
    raise AssertionError(json.dumps(outbox(c, **params), indent=1)[-3000:])


def plan_and_cancel(c: httpx.Client, h: dict, n: int, cancel: int) -> list[int]:
    """n planned deliveries to one of the recipient's zones; the first `cancel` of them cancelled (aborted)."""
    zid = c.post("/api/v1/zones", json=zone_body(CLINIC_EAST), headers=h).json()["id"]
    ids = []
    for i in range(n):
        d = c.post("/api/v1/deliveries", json={"zone_id": zid, "parcel": {"mass_kg": 0.5}}, headers=OP)
        assert d.status_code == 201 and d.json()["state"] == "planned", d.text
        ids.append(d.json()["id"])
    for did in ids[:cancel]:
        assert c.post(f"/api/v1/deliveries/{did}/abort", json={}, headers=OP).json()["state"] == "aborted"
    return ids


@pytest.fixture
def receiver():
    r = WebhookReceiver(hang_s=2.0).start()
    yield r
    r.stop()


# the outbox is storage (one transaction with the event, leases taken by conditional updates): both engines
@pytest.mark.parametrize("backend", BACKENDS)
def test_flaky_receiver_gets_every_event_duplicates_share_the_id_signatures_verify(tmp_path, receiver, caplog,
                                                                                  request, backend):
    caplog.set_level(logging.DEBUG)
    srv = start_server(tmp_path, backend_url(request, backend))
    try:
        with httpx.Client(base_url=srv.url, timeout=30) as c:
            # the recipient's endpoint fails twice, hangs twice (the receiver gets those, the sender gives
            # up on them: duplicates), then recovers; the merchant's integration hangs once, then fails once
            receiver.script["/recipient"] = ["500", "500", "hang", "hang"]
            receiver.script["/merchant"] = ["hang", "500"]
            h = register(c)
            mine = c.post("/api/v1/recipients/me/webhooks", json={"url": receiver.url("/recipient")}, headers=h)
            assert mine.status_code == 201, mine.text
            merchant = c.post("/api/v1/integrations", json={"url": receiver.url("/merchant"),
                                                            "kinds": ["planned", "aborted"]}, headers=OP)
            assert merchant.status_code == 201, merchant.text
            secrets = {"/recipient": mine.json()["secret"], "/merchant": merchant.json()["secret"]}
            assert all(s.startswith("whsec_") for s in secrets.values())
            # shown once: never listed again
            assert "secret" not in c.get("/api/v1/recipients/me/webhooks", headers=h).json()["items"][0]
            assert "secret" not in c.get("/api/v1/integrations", headers=OP).json()["items"][0]

            ids = plan_and_cancel(c, h, n=4, cancel=2)
            items = wait_settled(c)
            expected = {(did, k) for did in ids for k in ["planned"]} | {(did, "aborted") for did in ids[:2]}

            figures = {}
            for path, ep in (("/recipient", mine.json()), ("/merchant", merchant.json())):
                rows = [m for m in items if m["endpoint_id"] == ep["id"]]
                assert {m["state"] for m in rows} == {"sent"}, rows
                assert {(m["delivery_id"], m["kind"]) for m in rows} == expected  # one per event, each sent
                hits = receiver.for_path(path)
                wh = standardwebhooks.Webhook(secrets[path])
                by_id: dict[str, set[bytes]] = defaultdict(set)
                for hit in hits:
                    payload = wh.verify(hit.body, hit.headers)  # raises if the signature does not verify
                    by_id[hit.headers["webhook-id"]].add(hit.body)
                    assert payload["type"] in ("delivery.planned", "delivery.aborted")
                # every event arrived (the receiver read it, whatever it answered)...
                assert set(by_id) == {m["webhook_id"] for m in rows}
                # ...and a duplicate is the same message again: one body per webhook-id
                assert all(len(bodies) == 1 for bodies in by_id.values())
                got = {(json.loads(next(iter(b)))["data"]["delivery_id"], json.loads(next(iter(b)))["type"][9:])
                       for b in by_id.values()}
                assert got == expected
                ok_ids = {hit.headers["webhook-id"] for hit in hits if hit.answered == "ok"}
                assert ok_ids == set(by_id)  # each one acknowledged in the end
                figures[path] = {"events": len(rows), "requests": len(hits),
                                 "retried": sum(m["attempts"] - 1 for m in rows),
                                 "redelivered": len(hits) - len(by_id)}
            assert figures["/recipient"]["retried"] == 4 and figures["/merchant"]["retried"] == 2, figures
            # the failed and the hung requests were received: the same webhook-id came again
            assert figures["/recipient"]["redelivered"] == 4, figures
            planned = json.loads(next(h.body for h in receiver.for_path("/recipient") if b"delivery.planned" in h.body))
            assert planned["data"]["tracking_url"] and "/t/" in planned["data"]["tracking_url"]
            earliest, latest = planned["data"]["window"]["after_dispatch_s"]  # the promise, counted from dispatch
            assert 0 < earliest < latest and "between" in planned["data"]["text"]
            print(f"webhook figures ({backend}):", figures)
        for s in secrets.values():
            assert s not in caplog.text and s[6:] not in caplog.text
    finally:
        srv.stop()


@pytest.mark.parametrize("backend", BACKENDS)
def test_dead_letter_after_the_schedule_then_an_operator_retries(tmp_path, receiver, request, backend):
    srv = start_server(tmp_path, backend_url(request, backend), backoff_s=(0.05, 0.1))
    try:
        with httpx.Client(base_url=srv.url, timeout=30) as c:
            receiver.after["/down"] = "500"
            h = register(c)
            ep = c.post("/api/v1/recipients/me/webhooks", json={"url": receiver.url("/down")}, headers=h).json()
            [did] = plan_and_cancel(c, h, n=1, cancel=0)
            [dead] = wait_settled(c)
            assert dead["state"] == "dead" and dead["attempts"] == 3 and dead["last_status"] == 500, dead
            assert dead["delivery_id"] == did and dead["endpoint_id"] == ep["id"]
            assert len(receiver.for_path("/down")) == 3
            assert [m["id"] for m in outbox(c, state="dead")] == [dead["id"]]
            assert outbox(c, state="sent") == []
            # operators only
            assert c.get("/api/v1/outbox", headers=h).status_code == 401
            assert_problem(c.post(f"/api/v1/outbox/{dead['id']}/retry", headers=h), 401)
            # the recipient sees what happened to their notifications
            mine = c.get("/api/v1/recipients/me/notifications/messages", headers=h).json()["items"]
            assert [m["state"] for m in mine] == ["dead"]

            receiver.after["/down"] = "ok"
            r = c.post(f"/api/v1/outbox/{dead['id']}/retry", headers=OP)
            assert r.status_code == 200 and r.json() == {"retried": 1}, r.text
            [again] = wait_settled(c)
            assert again["state"] == "sent" and again["webhook_id"] == dead["webhook_id"], again
            ids = {hit.headers["webhook-id"] for hit in receiver.for_path("/down")}
            assert ids == {dead["webhook_id"]}
            # only a dead message is retried; a missing one is 404
            assert_problem(c.post(f"/api/v1/outbox/{dead['id']}/retry", headers=OP), 409)
            assert_problem(c.post("/api/v1/outbox/999999/retry", headers=OP), 404)
    finally:
        srv.stop()


def test_a_dead_endpoint_does_not_delay_another_recipient(tmp_path, receiver):
    # the stuck receiver holds every request far beyond the attempt timeout; were the other recipient's
    # messages queued behind it, each would wait at least one timeout (5 s) per stuck message ahead of it
    srv = start_server(tmp_path, backoff_s=(30.0,), attempt_timeout_s=5.0)
    receiver.hang_s = 20.0
    try:
        with httpx.Client(base_url=srv.url, timeout=30) as c:
            receiver.after["/stuck"] = "hang"
            a, b = register(c, "stuck"), register(c, "fine")
            ea = c.post("/api/v1/recipients/me/webhooks", json={"url": receiver.url("/stuck")}, headers=a).json()
            eb = c.post("/api/v1/recipients/me/webhooks", json={"url": receiver.url("/fine")}, headers=b).json()
            plan_and_cancel(c, a, n=4, cancel=0)  # queued first
            while not receiver.for_path("/stuck"):  # and the stuck endpoint is hanging
                time.sleep(0.05)
            t0 = time.monotonic()
            healthz = c.get("/healthz")
            api_s = time.monotonic() - t0
            plan_and_cancel(c, b, n=2, cancel=1)
            fine = wait_settled(c, endpoint_id=eb["id"])
            stuck = outbox(c, endpoint_id=ea["id"])
            assert len(fine) == 3 and all(m["state"] == "sent" and m["attempts"] == 1 for m in fine), fine
            # the server's own clock: from the event's transaction to the receiver's 2xx
            lat = [(datetime.fromisoformat(m["sent_at"]) - datetime.fromisoformat(m["created_at"])).total_seconds()
                   for m in fine]
            assert max(lat) < 5.0, lat
            # meanwhile the stuck endpoint works through its own queue, one hung attempt at a time
            assert len(stuck) == 4 and all(m["state"] == "pending" for m in stuck), stuck
            hits = [h.at for h in receiver.for_path("/stuck")]
            assert all(b - a >= 4.5 for a, b in zip(hits, hits[1:])), hits
            assert healthz.status_code == 200
            print(f"other recipient: 3/3 sent first try, latency max {max(lat) * 1000:.0f} ms; stuck endpoint: "
                  f"{len(receiver.for_path('/stuck'))} request(s) hanging, 4 pending; /healthz meanwhile {api_s * 1000:.0f} ms")
    finally:
        srv.stop()


def test_retry_figures_under_a_flaky_receiver_a_dead_one_and_a_healthy_one(tmp_path, receiver):
    """The note's figures: 8 deliveries (8 planned, 4 cancelled: 12 events) to a recipient whose receiver
    fails 30 % of requests with 500 and holds 10 % past the timeout (seeded), a merchant that always
    answers, and a second integration that is down for good."""
    rng = random.Random(15)  # a seed whose first 12 answers hold 4 failures and 3 late ones
    srv = start_server(tmp_path, backoff_s=(0.05, 0.1, 0.2, 0.4, 0.8, 1.6))
    receiver.choosers["/flaky"] = lambda: rng.choices(["ok", "500", "hang"], [60, 30, 10])[0]
    receiver.after["/down"] = "500"
    try:
        with httpx.Client(base_url=srv.url, timeout=30) as c:
            h = register(c)
            ep = c.post("/api/v1/recipients/me/webhooks", json={"url": receiver.url("/flaky")}, headers=h).json()
            secrets, ids = {"/flaky": ep["secret"]}, {"/flaky": ep["id"]}
            for path in ("/shop", "/down"):
                ep = c.post("/api/v1/integrations", json={"url": receiver.url(path)}, headers=OP).json()
                secrets[path], ids[path] = ep["secret"], ep["id"]
            plan_and_cancel(c, h, n=8, cancel=4)
            items = wait_settled(c, timeout=120)
            figures = {}
            for path, secret in secrets.items():
                rows = [m for m in items if m["endpoint_id"] == ids[path]]
                hits = receiver.for_path(path)
                wh = standardwebhooks.Webhook(secret)
                bodies: dict[str, set[bytes]] = defaultdict(set)
                processed: set[str] = set()  # ids the receiver took in (answered 2xx, if late)
                duplicates = 0
                for hit in hits:
                    wh.verify(hit.body, hit.headers)
                    wid = hit.headers["webhook-id"]
                    bodies[wid].add(hit.body)
                    duplicates += wid in processed
                    if hit.answered in ("ok", "hang"):
                        processed.add(wid)
                assert len(rows) == 12 and all(len(b) == 1 for b in bodies.values())
                assert set(bodies) == {m["webhook_id"] for m in rows}
                figures[path] = {"events": len(rows), "sent": sum(m["state"] == "sent" for m in rows),
                                 "dead": sum(m["state"] == "dead" for m in rows), "requests": len(hits),
                                 "retried": sum(m["attempts"] - 1 for m in rows),
                                 "duplicates": duplicates, "answered_ok": sum(h.answered == "ok" for h in hits)}
            assert figures["/shop"] == {"events": 12, "sent": 12, "dead": 0, "requests": 12, "retried": 0,
                                        "duplicates": 0, "answered_ok": 12}
            assert figures["/down"]["dead"] == 12 and figures["/down"]["requests"] == 12 * 7
            # the flaky one: 7 attempts each make a loss (30 % + 10 %)^7 ~ 0.2 % per message
            assert figures["/flaky"]["sent"] == 12 and figures["/flaky"]["retried"] > 0, figures
            # a message the receiver acknowledged in time is never sent again: duplicates only follow a late answer
            seq = defaultdict(list)
            for hit in receiver.for_path("/flaky"):
                seq[hit.headers["webhook-id"]].append(hit.answered)
            assert all(answers.index("ok") == len(answers) - 1 for answers in seq.values()), seq
            late = sum(h.answered == "hang" for h in receiver.for_path("/flaky"))
            assert late and late <= figures["/flaky"]["duplicates"], figures  # each late answer: one more copy
            assert figures["/down"]["duplicates"] == 0
            print("webhook retry figures:", figures, f"(/flaky answered late {late} times)")
    finally:
        srv.stop()


def test_endpoint_input_is_validated_naming_the_field(tmp_path):
    srv = start_server(tmp_path, allow_private_urls=False, enabled=False)
    try:
        with httpx.Client(base_url=srv.url, timeout=30) as c:
            h = register(c)
            for url, why in (("ftp://example.com/x", "http"), ("https://10.0.0.8/hook", "private"),
                             ("http://127.0.0.1:9/x", "private"), ("http://localhost/x", "private"),
                             ("https://user:pw@example.com/", "credentials"), ("https://", "host"),
                             ("https://example.com/" + "a" * 2100, "")):
                r = c.post("/api/v1/recipients/me/webhooks", json={"url": url}, headers=h)
                body = assert_problem(r, 422)
                assert body["errors"][0]["field"].endswith("url"), body
                assert why in json.dumps(body), body
            r = c.post("/api/v1/recipients/me/webhooks", json={"url": "https://example.com/h", "kinds": ["nope"]},
                       headers=h)
            assert any("kinds" in (e["field"] or "") for e in assert_problem(r, 422)["errors"])
            r = c.put("/api/v1/recipients/me/notifications", json={"email_enabled": True}, headers=h)
            assert assert_problem(r, 422)["errors"][0]["field"] == "email"
            r = c.put("/api/v1/recipients/me/notifications", json={"email_enabled": True, "email": "a@b\nBcc: x@y.z"},
                      headers=h)
            assert "email" in assert_problem(r, 422)["errors"][0]["field"]
            ok = c.post("/api/v1/recipients/me/webhooks", json={"url": "https://example.com/h"}, headers=h)
            assert ok.status_code == 201
            # another recipient cannot see or delete it
            other = register(c, "other")
            assert_problem(c.get(f"/api/v1/recipients/me/webhooks/{ok.json()['id']}", headers=other), 404)
            assert_problem(c.delete(f"/api/v1/recipients/me/webhooks/{ok.json()['id']}", headers=other), 404)
            # nor is a recipient's endpoint an operator integration
            assert_problem(c.delete(f"/api/v1/integrations/{ok.json()['id']}", headers=OP), 404)
            assert c.delete(f"/api/v1/recipients/me/webhooks/{ok.json()['id']}", headers=h).status_code == 204
            # an operator's integration may be on the station's own network (a merchant system on the LAN)
            assert c.post("/api/v1/integrations", json={"url": "http://10.0.0.8/orders"}, headers=OP).status_code == 201
    finally:
        srv.stop()


SIM_SPEEDUP = "40"  # the clinic is 2.6 km out: about 7 minutes of vehicle time


def test_a_flown_delivery_announces_each_step_signed(tmp_path, receiver):
    """Dispatch on the built-in simulator: dispatched (ETA, tracking link), arriving (once, when the live ETA
    to the zone falls to two minutes of vehicle time), delivered (proof of delivery), to the recipient and
    the merchant alike, while a dead endpoint of a third party hangs throughout."""
    from tests.api.test_flight import HUB, launch, use_sim, wait_state

    srv = start_server(tmp_path, backoff_s=(0.2, 0.4))
    receiver.hang_s = 3.0
    receiver.after["/dead"] = "hang"
    sim = launch.start_sim(["--home", HUB, "--sysid", "1", "--speedup", SIM_SPEEDUP, "--no-ekf-s", "1",
                            "--payload-kg", "1.0", "--battery-wh", "222", "--mass-kg", "3.4"])
    try:
        with httpx.Client(base_url=srv.url, timeout=30) as c:
            use_sim(c, sim.urls[0])
            h = register(c)
            ep = c.post("/api/v1/recipients/me/webhooks", json={"url": receiver.url("/me")}, headers=h).json()
            shop = c.post("/api/v1/integrations", json={"url": receiver.url("/shop")}, headers=OP).json()
            c.post("/api/v1/integrations", json={"url": receiver.url("/dead")}, headers=OP)
            zid = c.post("/api/v1/zones", json=zone_body(CLINIC_EAST, name="yard"), headers=h).json()["id"]
            d = c.post("/api/v1/deliveries", json={"zone_id": zid, "parcel": {"mass_kg": 1.0}}, headers=OP).json()
            assert c.post(f"/api/v1/deliveries/{d['id']}/dispatch", json={"vehicle": "dr-01"},
                          headers=OP).status_code == 200
            done = wait_state(c, d["id"], {"landed", "failed", "aborted"}, 240)
            assert done["state"] == "landed", [e["kind"] for e in done["events"]]
            end = time.monotonic() + 30
            while not any(m["kind"] == "delivered" and m["state"] == "sent"
                          for m in outbox(c, endpoint_id=ep["id"])):
                assert time.monotonic() < end, outbox(c, endpoint_id=ep["id"])
                time.sleep(0.2)
            for path, secret in (("/me", ep["secret"]), ("/shop", shop["secret"])):
                wh = standardwebhooks.Webhook(secret)
                got = {}
                for hit in receiver.for_path(path):
                    p = wh.verify(hit.body, hit.headers)
                    got.setdefault(p["type"], []).append(p["data"])
                assert list(got) == ["delivery.planned", "delivery.dispatched", "delivery.arriving",
                                     "delivery.delivered"], got
                assert all(len(v) == 1 for v in got.values()), got
                disp, arr, dlv = got["delivery.dispatched"][0], got["delivery.arriving"][0], got["delivery.delivered"][0]
                assert disp["eta"] == done["eta_promised"] and "/t/" in disp["tracking_url"]
                assert 0 <= arr["eta_s"] <= 120, arr
                pod = dlv["proof_of_delivery"]
                assert pod == {**done["proof_of_delivery"], "time": pod["time"]}, (pod, done["proof_of_delivery"])
                assert pod["distance_from_zone_centre_m"] < 10
            arriving = [e for e in done["events"] if e["kind"] == "arriving"]
            assert len(arriving) == 1 and arriving[0]["data"]["eta_to_zone_s"] <= 120
            kinds = [e["kind"] for e in done["events"]]
            assert kinds.index("arriving") < kinds.index("released")
            dead = [m for m in outbox(c) if m["endpoint_id"] not in (ep["id"], shop["id"])]
            assert dead and all(m["state"] == "pending" or m["state"] == "dead" for m in dead)
    finally:
        sim.stop()
        srv.stop()


def test_a_name_resolving_into_the_station_network_is_refused_at_send_time():
    """Registration checks the URL as written; the sender checks where the name points when it sends (a
    recipient could re-point a name at an internal address after registering it)."""
    import asyncio
    import socket

    from groundctl.runtime.notify.urls import refuse_private_target

    async def pooled(*a):
        return socket.getaddrinfo(*a)

    assert "private or loopback" in asyncio.run(refuse_private_target("http://localhost:9/hook"))
    assert "private or loopback" in asyncio.run(refuse_private_target("http://localhost:9/hook", pooled))
    assert asyncio.run(refuse_private_target("https://93.184.216.34/hook", pooled)) is None
    assert "cannot resolve" in asyncio.run(refuse_private_target("https://no-such-host.invalid/hook"))
