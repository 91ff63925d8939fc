"""Email notifications against a real SMTP server on loopback (aiosmtpd), and the zone-staleness reminder."""

from __future__ import annotations

import logging
import time
from datetime import timedelta

import httpx
import pytest

from groundctl.faces.api import Settings, create_app
from groundctl.runtime.notify import NotifySettings
from tests.api.conftest import CLINIC_EAST, OP, OP_KEY, Clock, ThreadServer, put_weather, register, zone_body
from tests.api.receivers import SmtpReceiver, WebhookReceiver
from tests.api.test_webhooks import FAST, outbox, plan_and_cancel, wait_settled

pytest.importorskip("aiosmtpd")


def start_server(tmp, clock=None, **notify) -> ThreadServer:
    # no test here hangs the SMTP server; a 1 s attempt timeout (FAST's, below the webhook receiver's
    # hang) only turned a slow conversation on a loaded machine into a timeout and a dead letter
    notify = {**FAST, "attempt_timeout_s": 10.0, **notify}
    s = Settings(data_dir=tmp, operator_keys=(OP_KEY,), notify=NotifySettings(**notify),
                 **({"clock": clock} if clock else {}))
    srv = ThreadServer(create_app(s)).start()
    put_weather(srv.url)
    return srv


@pytest.fixture
def smtp():
    r = SmtpReceiver().start()
    yield r
    r.stop()


def distinct(smtp: SmtpReceiver) -> list:
    """One message per Message-ID: an SMTP conversation the sender gave up on (timeout) but the server
    completed is sent again with the same Message-ID, as a webhook keeps its webhook-id."""
    seen, out = set(), []
    for m in list(smtp.messages):
        if m["Message-ID"] not in seen:
            seen.add(m["Message-ID"])
            out.append(m)
    return out


def wait_mail(smtp: SmtpReceiver, n: int, timeout: float = 30) -> list:
    end = time.monotonic() + timeout
    while len(distinct(smtp)) < n:
        assert time.monotonic() < end, [m["subject"] for m in smtp.messages]
        time.sleep(0.05)
    return distinct(smtp)


def test_email_with_tracking_link_and_what_happens_next(tmp_path, smtp):
    srv = start_server(tmp_path, smtp_host="127.0.0.1", smtp_port=smtp.port, smtp_from="drones@station.test")
    try:
        with httpx.Client(base_url=srv.url, timeout=30) as c:
            h = register(c)
            r = c.put("/api/v1/recipients/me/notifications", json={"email_enabled": True, "email": "ana@home.test"},
                      headers=h)
            assert r.status_code == 200 and r.json()["email_enabled"], r.text
            [did] = plan_and_cancel(c, h, n=1, cancel=1)
            planned, aborted = sorted(wait_mail(smtp, 2), key=lambda m: "stopped" in m["subject"])
            rows = {m["kind"]: m for m in wait_settled(c)}
            assert {k: m["state"] for k, m in rows.items()} == {"planned": "sent", "aborted": "sent"}
            for m in (planned, aborted):
                assert m["To"] == "ana@home.test" and m["From"] == "drones@station.test"
            assert planned["Subject"] == f"Delivery planned (delivery {did})"
            assert planned["Message-ID"] == f"<{rows['planned']['webhook_id']}@groundctl>"
            text = planned.get_content()
            link = next(w for w in text.split() if "/t/" in w)
            assert link.startswith("http"), text
            assert "What happens next: the delivery is cancelled" in aborted.get_content()

            # the recipient narrows what they want: nothing else is queued for them
            c.put("/api/v1/recipients/me/notifications",
                  json={"email_enabled": True, "email": "ana@home.test", "kinds": ["delivered"]}, headers=h)
            [other] = plan_and_cancel(c, h, n=1, cancel=1)
            assert outbox(c, delivery_id=other) == []
            # and email off means no email
            c.put("/api/v1/recipients/me/notifications", json={"email_enabled": False}, headers=h)
            assert c.get("/api/v1/recipients/me/notifications", headers=h).json()["email_enabled"] is False
    finally:
        srv.stop()


def test_smtp_refusal_is_retried_then_dead_lettered_and_the_password_never_logged(tmp_path, smtp, caplog):
    caplog.set_level(logging.DEBUG)
    password = "pw-" + "s3cret" * 4
    # aiosmtpd offers no AUTH on a plain connection: every login fails, as with a wrong password
    srv = start_server(tmp_path, smtp_host="127.0.0.1", smtp_port=smtp.port, smtp_user="station",
                       smtp_password=password, backoff_s=(0.05, 0.05))
    try:
        assert password not in repr(srv.app.state.settings.notify)
        with httpx.Client(base_url=srv.url, timeout=30) as c:
            h = register(c)
            c.put("/api/v1/recipients/me/notifications", json={"email_enabled": True, "email": "bo@home.test"},
                  headers=h)
            plan_and_cancel(c, h, n=1, cancel=0)
            [dead] = wait_settled(c)
            assert dead["state"] == "dead" and dead["attempts"] == 3 and "AUTH" in dead["last_error"], dead
            assert smtp.messages == []
            body = c.get("/api/v1/outbox", params={"state": "dead"}, headers=OP).text
            assert password not in body
        assert password not in caplog.text
    finally:
        srv.stop()


def test_zone_about_to_go_stale_is_announced_once_per_staleness_period(tmp_path, smtp):
    clock = Clock()
    receiver = WebhookReceiver().start()
    srv = start_server(tmp_path, clock=clock, stale_scan_s=0.05, stale_warn_days=7, smtp_host="127.0.0.1",
                       smtp_port=smtp.port)
    try:
        with httpx.Client(base_url=srv.url, timeout=30) as c:
            h = register(c)
            c.put("/api/v1/recipients/me/notifications", json={"email_enabled": True, "email": "cy@home.test"},
                  headers=h)
            c.post("/api/v1/recipients/me/webhooks", json={"url": receiver.url("/z"), "kinds": ["zone_stale"]},
                   headers=h)
            z = c.post("/api/v1/zones", json=zone_body(CLINIC_EAST), headers=h).json()
            time.sleep(0.3)  # several scans while the zone is fresh: nothing
            assert outbox(c) == []

            clock.offset = timedelta(days=174)  # six days before it goes stale
            wait_mail(smtp, 1)
            rows = wait_settled(c)
            assert sorted(m["channel"] for m in rows) == ["email", "webhook"], rows
            assert all(m["state"] == "sent" for m in rows), rows  # only sent messages are pruned below
            assert "reconfirm" in distinct(smtp)[0]["Subject"].lower()
            assert f"/api/v1/zones/{z['id']}/confirm" in distinct(smtp)[0].get_content()
            time.sleep(0.3)  # more scans in the same period: still once
            assert len(outbox(c)) == 2 and len(distinct(smtp)) == 1

            # reconfirming starts a new period; its own reminder comes near its own end
            assert c.post(f"/api/v1/zones/{z['id']}/confirm", headers=h).status_code == 200
            time.sleep(0.3)
            assert len(outbox(c)) == 2
            clock.offset = timedelta(days=174 + 175)
            wait_mail(smtp, 2)
            first = {m["id"] for m in rows}
            end = time.monotonic() + 30
            while {m["id"] for m in outbox(c)} & first:  # sent 175 days ago: pruned (kept 30 days)
                assert time.monotonic() < end, outbox(c)
                time.sleep(0.05)
            assert len(wait_settled(c)) == 2
            assert len({hit.headers["webhook-id"] for hit in receiver.for_path("/z")}) == 2
            time.sleep(0.3)  # pruning the first period's messages does not bring its reminder back
            assert len(distinct(smtp)) == 2 and len(outbox(c)) == 2
    finally:
        srv.stop()
        receiver.stop()


def test_without_an_smtp_server_email_is_dead_lettered_at_once_with_the_reason(tmp_path):
    srv = start_server(tmp_path, smtp_host=None)
    try:
        with httpx.Client(base_url=srv.url, timeout=30) as c:
            h = register(c)
            c.put("/api/v1/recipients/me/notifications", json={"email_enabled": True, "email": "di@home.test"},
                  headers=h)
            plan_and_cancel(c, h, n=1, cancel=0)
            [dead] = wait_settled(c)
            assert dead["state"] == "dead" and dead["attempts"] == 1, dead
            assert "GROUNDCTL_SMTP_HOST" in dead["last_error"]
            assert c.get("/api/v1/outbox/stats", headers=OP).json() == {"dead": {"messages": 1, "attempts": 1}}
    finally:
        srv.stop()
