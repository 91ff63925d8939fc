"""Signed webhooks through the outbox, against a real receiver on a loopback port that fails, hangs and
recovers: every event arrives, a duplicate only ever repeats a webhook-id, every signature verifies
(checked with the `standardwebhooks` reference package), dead letters are visible and retried, and a
dead endpoint holds only its own messages."""

from __future__ import annotations

import json
import logging
import time
from collections import defaultdict

import httpx
import pytest

from groundctl.faces.api import Settings, create_app
from groundctl.runtime.notify import NotifySettings
from tests.api.conftest import CLINIC_EAST, OP, OP_KEY, ThreadServer, assert_problem, put_weather, register, zone_body
from tests.api.receivers import WebhookReceiver

standardwebhooks = pytest.importorskip("standardwebhooks")

# a day of retries squeezed into about a second and a half; the attempt timeout well below the receiver's hang
FAST = dict(backoff_s=(0.1, 0.2, 0.4, 0.8), jitter=0.2, attempt_timeout_s=0.5, poll_s=0.05, stale_scan_s=3600,
            allow_private_urls=True)


def start_server(tmp, **notify) -> ThreadServer:
    s = Settings(data_dir=tmp, operator_keys=(OP_KEY,))
    s.notify = NotifySettings(**{**FAST, **notify})
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
    r = WebhookReceiver(hang_s=1.0).start()
    yield r
    r.stop()


def test_flaky_receiver_gets_every_event_duplicates_share_the_id_signatures_verify(tmp_path, receiver, caplog):
    caplog.set_level(logging.DEBUG)
    srv = start_server(tmp_path)
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
                                 "duplicates_received": len(hits) - len(by_id)}
            assert figures["/recipient"]["retried"] == 4 and figures["/merchant"]["retried"] == 2, figures
            # the hung requests were received: the same webhook-id came again
            assert figures["/recipient"]["duplicates_received"] >= 2, figures
            planned = json.loads(next(h.body for h in receiver.for_path("/recipient") if b"delivery.planned" in h.body))
            assert planned["data"]["tracking_url"] and "/t/" in planned["data"]["tracking_url"]
            print("webhook figures:", figures)
        for s in secrets.values():
            assert s not in caplog.text and s[6:] not in caplog.text
    finally:
        srv.stop()


def test_dead_letter_after_the_schedule_then_an_operator_retries(tmp_path, receiver):
    srv = start_server(tmp_path, backoff_s=(0.05, 0.1))
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
    # the stuck receiver hangs far longer than the timeout, for every request
    srv = start_server(tmp_path, backoff_s=(0.1, 0.1, 0.1), attempt_timeout_s=0.5)
    receiver.hang_s = 5.0
    try:
        with httpx.Client(base_url=srv.url, timeout=30) as c:
            receiver.after["/stuck"] = "hang"
            a, b = register(c, "stuck"), register(c, "fine")
            ea = c.post("/api/v1/recipients/me/webhooks", json={"url": receiver.url("/stuck")}, headers=a).json()
            c.post("/api/v1/recipients/me/webhooks", json={"url": receiver.url("/fine")}, headers=b)
            # the stuck endpoint's backlog is queued first: 6 messages x 4 attempts x 0.5 s of timeouts
            plan_and_cancel(c, a, n=6, cancel=0)
            t0 = time.monotonic()
            healthz = c.get("/healthz")
            api_s = time.monotonic() - t0
            plan_and_cancel(c, b, n=2, cancel=1)
            end = time.monotonic() + 30
            while len({h.headers["webhook-id"] for h in receiver.for_path("/fine")}) < 3:
                assert time.monotonic() < end, receiver.hits
                time.sleep(0.05)
            stuck = outbox(c, endpoint_id=ea["id"])
            # the other recipient had all three while the stuck endpoint had not worked through its first
            # round of attempts: not one of its messages is dead yet, most have not even been tried
            assert len(stuck) == 6 and all(m["state"] == "pending" for m in stuck), stuck
            assert sum(1 for m in stuck if m["attempts"] == 0) >= 3, stuck
            assert healthz.status_code == 200
            print(f"API answered in {api_s * 1000:.0f} ms while the stuck endpoint hung; the other recipient got "
                  f"3/3 with the stuck endpoint at {sum(m['attempts'] for m in stuck)} attempts")
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
