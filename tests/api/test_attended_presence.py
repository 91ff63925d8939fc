"""Attended drop, the recipient's side, through the real HTTP server, a real webhook receiver and a real SMTP
server on loopback: the recipient is asked to confirm presence (planned/dispatched notices say how long the
drone waits), confirms once (tracking link or bearer token), dispatch refuses an attended parcel until then
unless forced, and the hold and the return are announced (webhook + email, each once).

The hold's events are stored exactly as a flight stores them (Store.append, the outbox in the same
transaction); the flight that produces them is flown in test_attended.py and test_tracking_page.py."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import httpx
import pytest

from groundctl.runtime.events import DeliveryEvent
from groundctl.faces.api import Settings, create_app
from groundctl.runtime.notify import NotifySettings
from tests.api.conftest import CLINIC_EAST, OP, OP_KEY, ThreadServer, assert_problem, put_weather, register, zone_body
from tests.api.receivers import SmtpReceiver, WebhookReceiver
from tests.api.test_email import wait_mail
from tests.api.test_tracking import PUBLIC_URL, link_of
from tests.api.test_webhooks import FAST, wait_settled

pytest.importorskip("aiosmtpd")

ATTENDED = {"mass_kg": 1.0, "handling": ["signature"], "attended": True}


def hold_events(store, did: int, *, deadline: datetime, hold_s: float, absent: bool) -> None:
    """What a flight records on its way to an attended drop (runtime.services.flights -> Store.append)."""
    now = datetime.now(timezone.utc)
    evs = [DeliveryEvent("dispatched", time=now, data={"vehicle": "dr-01", "eta_promised": now.isoformat()}),
           DeliveryEvent("taking_off", time=now), DeliveryEvent("en_route", time=now),
           DeliveryEvent("at_zone", time=now),
           DeliveryEvent("holding_for_recipient", time=now, message="holding", data={
               "hold_s": hold_s, "deadline": deadline.isoformat(), "deadline_boot_ms": 1}),
           ]
    if absent:
        evs += [DeliveryEvent("recipient_absent", time=now, data={"reason": "recipient_absent"}),
                DeliveryEvent("returning", time=now), DeliveryEvent("landed", time=now),
                DeliveryEvent("report", time=now, message="returned_with_parcel",
                              data={"outcome": "returned_with_parcel", "reason": "recipient_absent",
                                    "parcel": "aboard"})]
    for ev in evs:
        store.append_event(did, ev)


def start_server(tmp, **notify) -> ThreadServer:
    s = Settings(data_dir=tmp, operator_keys=(OP_KEY,), public_url=PUBLIC_URL, notify=NotifySettings(**{**FAST, **notify}))
    srv = ThreadServer(create_app(s)).start()
    put_weather(srv.url)
    return srv


@pytest.fixture
def receivers():
    hook, smtp = WebhookReceiver().start(), SmtpReceiver().start()
    yield hook, smtp
    hook.stop()
    smtp.stop()


def test_presence_is_asked_confirmed_once_and_gates_dispatch_then_hold_and_return_are_announced(tmp_path,
                                                                                                 receivers):
    hook, smtp = receivers
    srv = start_server(tmp_path, smtp_host="127.0.0.1", smtp_port=smtp.port, smtp_from="drones@station.test")
    try:
        with httpx.Client(base_url=srv.url, timeout=30) as c:
            h = register(c, "ana")
            assert c.put("/api/v1/recipients/me/notifications", json={"email_enabled": True, "email": "ana@home.test"},
                         headers=h).status_code == 200
            assert c.post("/api/v1/recipients/me/webhooks", json={"url": hook.url("/ana")}, headers=h).status_code == 201
            # the new kind is one a recipient can choose (and a made-up one is still refused, naming the field)
            r = c.post("/api/v1/recipients/me/webhooks", json={"url": hook.url("/narrow"),
                                                               "kinds": ["holding_for_recipient"]}, headers=h)
            assert r.status_code == 201, r.text
            p = assert_problem(c.post("/api/v1/recipients/me/webhooks", json={"url": hook.url("/x"),
                                                                              "kinds": ["presence"]}, headers=h), 422)
            assert "kinds" in json.dumps(p)
            zid = c.post("/api/v1/zones", json=zone_body(CLINIC_EAST), headers=h).json()["id"]
            d = c.post("/api/v1/deliveries", json={"zone_id": zid, "parcel": ATTENDED}, headers=OP).json()
            assert d["state"] == "planned" and d["presence_confirmed"] is False, d
            did, hold_s = d["id"], d["plan"]["attended_hold_s"]
            url = link_of(srv, c, did, h)
            token = url.rsplit("/", 1)[1]

            # planned: the notice asks for presence and says how long the drone waits
            wait_settled(c, delivery_id=did)
            body = json.loads(next(x.body for x in hook.for_path("/ana") if b"delivery.planned" in x.body))
            assert body["data"]["attended"] is True and body["data"]["presence_confirmed"] is False
            assert "confirm you will be there" in body["data"]["text"]
            assert f"waits at most {round(hold_s / 60)} min" in body["data"]["text"], body
            mail = wait_mail(smtp, 1)[0]
            assert "confirm you will be there" in mail.get_content() and "/t/" in mail.get_content()

            # dispatch without the recipient's word: 409, naming the reason and the way round it
            p = assert_problem(c.post(f"/api/v1/deliveries/{did}/dispatch", json={}, headers=OP), 409)
            assert "has not confirmed" in p["detail"] and "force" in p["detail"], p
            # nobody else confirms for her; a parcel that needs nobody cannot be confirmed
            assert_problem(c.post(f"/api/v1/deliveries/{did}/presence", headers=register(c, "eve")), 404)
            plain = c.post("/api/v1/deliveries", json={"zone_id": zid, "parcel": {"mass_kg": 0.5}}, headers=OP).json()
            assert "not an attended drop" in assert_problem(
                c.post(f"/api/v1/deliveries/{plain['id']}/presence", headers=h), 409)["detail"]
            assert_problem(c.post("/api/v1/track/no-such-token/presence"), 404)
            before = c.get(f"/api/v1/track/{token}/hold").json()
            assert before["can_confirm_presence"] is True and before["presence_confirmed"] is False

            # she confirms from the tracking link; again from the API: recorded once
            r = c.post(f"/api/v1/track/{token}/presence")
            assert r.status_code == 200 and r.json()["presence_confirmed"] is True, r.text
            r = c.post(f"/api/v1/deliveries/{did}/presence", headers=h)
            assert r.status_code == 200 and r.json()["presence_confirmed"] is True
            events = c.get(f"/api/v1/deliveries/{did}", headers=OP).json()["events"]
            assert [(e["kind"], e["data"]["via"]) for e in events if e["kind"] == "presence_confirmed"] == [
                ("presence_confirmed", "page")]
            after = c.get(f"/api/v1/track/{token}/hold").json()
            assert after["presence_confirmed"] is True and after["can_confirm_presence"] is False

            # now the presence check passes: what stops this dispatch is the fleet (no vehicle with a link)
            p = assert_problem(c.post(f"/api/v1/deliveries/{did}/dispatch", json={}, headers=OP), 409)
            assert "confirmed" not in p["detail"], p
            # and an operator may force a parcel nobody confirmed past that check
            other = c.post("/api/v1/deliveries", json={"zone_id": zid, "parcel": ATTENDED}, headers=OP).json()
            p = assert_problem(c.post(f"/api/v1/deliveries/{other['id']}/dispatch", json={"force": True},
                                      headers=OP), 409)
            assert "confirmed" not in p["detail"], p
            assert_problem(c.post(f"/api/v1/deliveries/{did}/dispatch", json={"force": "yes please"},
                                  headers=OP), 422)

            # the drone holds for her, then nobody comes: told once each, with the link, deadline, reason
            deadline = datetime.now(timezone.utc) + timedelta(seconds=hold_s)
            hold_events(srv.service.store, did, deadline=deadline, hold_s=hold_s, absent=False)
            held = c.get(f"/api/v1/track/{token}/hold").json()
            assert held["awaiting_clearance"] is True and 0 < held["hold_left_s"] <= hold_s, held
            hold_events(srv.service.store, did, deadline=deadline, hold_s=hold_s, absent=True)
            rows = wait_settled(c, delivery_id=did)
            per = {}
            for m in rows:
                per.setdefault((m["kind"], m["channel"], m["endpoint_id"]), []).append(m)
            assert all(len(v) == 1 for v in per.values()), per  # each kind once per endpoint
            kinds = {(k, ch) for k, ch, _ in per}
            assert {("holding_for_recipient", "webhook"), ("holding_for_recipient", "email"),
                    ("returned", "webhook"), ("returned", "email")} <= kinds, kinds
            narrow = [json.loads(x.body)["type"] for x in hook.for_path("/narrow")]
            assert set(narrow) == {"delivery.holding_for_recipient"}, narrow
            got = {json.loads(x.body)["type"]: json.loads(x.body)["data"] for x in hook.for_path("/ana")}
            hold_msg = got["delivery.holding_for_recipient"]
            assert hold_msg["deadline"] == deadline.isoformat() and hold_msg["tracking_url"].endswith(token)
            assert "clear it to drop" in hold_msg["text"] and "code" in hold_msg["text"]
            # the dispatched notice reminds her: she said she would be there, and how long the drone waits
            assert f"the drone waits at most {round(hold_s / 60)} min for you" in got["delivery.dispatched"]["text"]
            assert got["delivery.dispatched"]["presence_confirmed"] is True
            ret = got["delivery.returned"]
            assert ret["reason"] == "recipient_absent" and "back to the hub" in ret["next"], ret
            mails = {m["Subject"]: m.get_content() for m in wait_mail(smtp, 4)}
            hold_mail = mails[f"The drone is waiting for you: clear it to drop (delivery {did})"]
            assert deadline.isoformat() in hold_mail and f"Clear it to drop: {hold_msg['tracking_url']}" in hold_mail
            back = mails[f"Your parcel went back to the hub (delivery {did})"]
            assert "recipient absent" in back and "What happens next: the drone is flying the parcel back" in back
            # over: no presence to give any more, and the view says how it ended
            view = c.get(f"/api/v1/deliveries/{did}", headers=h).json()
            assert view["hold_ended"] == "recipient_absent" and view["awaiting_clearance"] is False
            assert c.get(f"/api/v1/track/{token}/hold").json()["can_confirm_presence"] is False
            # a forced flight whose hold ran out: too late to say one will be there, with the reason
            hold_events(srv.service.store, other["id"], deadline=deadline, hold_s=hold_s, absent=True)
            p = assert_problem(c.post(f"/api/v1/deliveries/{other['id']}/presence", headers=h), 409)
            assert "too late" in p["detail"], p
    finally:
        srv.stop()
