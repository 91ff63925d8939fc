"""Attended drop through the real HTTP API: a signature parcel flies to the zone, holds there with
`awaiting_clearance: true`, and is released only when the recipient clears it (tracking link or one-time
code); refusals name the reason. Flown on the built-in simulator over TCP."""

from __future__ import annotations

import time

import httpx

from groundctl.runtime import tracking
from tests.api.conftest import OP, assert_problem, register, start_thread_server, zone_body
from tests.api.test_flight import FLIGHT_ZONE, start_vehicle_sim, use_sim, wait_state

ATTENDED = {"mass_kg": 1.0, "handling": ["signature"], "attended": True}


def wait_for(c: httpx.Client, did: int, headers, cond, timeout: float) -> dict:
    end = time.monotonic() + timeout
    d: dict = {}
    while time.monotonic() < end:
        d = c.get(f"/api/v1/deliveries/{did}", headers=headers).json()
        if cond(d):
            return d
        time.sleep(0.1)
    raise AssertionError(f"delivery {did}: condition not met; last {d.get('state')}, {d.get('events')}")


def test_signature_parcel_without_attendance_is_refused_and_codes_need_an_attended_drop(tmp_path):
    srv = start_thread_server(tmp_path)
    try:
        with httpx.Client(base_url=srv.url, timeout=30) as c:
            h = register(c)
            zid = c.post("/api/v1/zones", json=zone_body(FLIGHT_ZONE, name="yard"), headers=h).json()["id"]
            plain = c.post("/api/v1/deliveries", json={"zone_id": zid, "parcel": {"mass_kg": 1.0,
                           "handling": ["signature"]}}, headers=OP).json()
            assert plain["state"] == "refused" and any(f["check"] == "handling" for f in plain["failures"]), plain
            ok = c.post("/api/v1/deliveries", json={"zone_id": zid, "parcel": ATTENDED}, headers=OP).json()
            assert ok["state"] == "planned" and ok["attended"] is True and ok["awaiting_clearance"] is False, ok
            assert ok["plan"]["attended_hold_s"] == 180
            other = c.post("/api/v1/deliveries", json={"zone_id": zid, "parcel": {"mass_kg": 1.0}}, headers=OP).json()
            assert_problem(c.post(f"/api/v1/deliveries/{other['id']}/clear-code", headers=h), 409)
            # someone else's delivery is not found, and a code that is not six digits is bad input
            h2 = register(c, "someone else")
            assert_problem(c.post(f"/api/v1/deliveries/{ok['id']}/clear-code", headers=h2), 404)
            p = assert_problem(c.post(f"/api/v1/deliveries/{ok['id']}/clear-to-drop", json={"code": "12ab"},
                                      headers=h), 422)
            assert "code" in str(p)
            assert_problem(c.post(f"/api/v1/deliveries/{ok['id']}/clear-to-drop", json={"code": "123456"},
                                  headers=h), 409)  # no code issued yet
            code = c.post(f"/api/v1/deliveries/{ok['id']}/clear-code", headers=h)
            assert code.status_code == 201 and len(code.json()["code"]) == 6
            # before it flies nothing holds: the code is not used up by trying
            right = code.json()["code"]
            p = assert_problem(c.post(f"/api/v1/deliveries/{ok['id']}/clear-to-drop", json={"code": right},
                                      headers=h), 409)
            assert "not in flight" in p["detail"]
            wrong = f"{(int(right) + 1) % 10 ** 6:06d}"
            for left in (4, 3, 2, 1, 0):
                p = assert_problem(c.post(f"/api/v1/deliveries/{ok['id']}/clear-to-drop", json={"code": wrong},
                                          headers=OP), 403)
                assert f"{left} tries left" in p["detail"]
            p = assert_problem(c.post(f"/api/v1/deliveries/{ok['id']}/clear-to-drop", json={"code": right},
                                      headers=OP), 409)
            assert "locked" in p["detail"]  # five wrong guesses lock even the right code out
            assert_problem(c.post("/api/v1/track/not-a-token/clear-to-drop"), 404)
    finally:
        srv.stop()


def test_attended_drop_holds_until_the_recipient_clears_it(tmp_path):
    srv = start_thread_server(tmp_path)
    sim = start_vehicle_sim()
    try:
        with httpx.Client(base_url=srv.url, timeout=30) as c:
            use_sim(c, sim.urls[0])
            h = register(c)
            zid = c.post("/api/v1/zones", json=zone_body(FLIGHT_ZONE, name="yard"), headers=h).json()["id"]
            d = c.post("/api/v1/deliveries", json={"zone_id": zid, "parcel": ATTENDED}, headers=OP).json()
            did = d["id"]
            assert d["state"] == "planned", d
            with srv.service.store.session() as s:
                token = tracking.tracking_token(s, did)
                s.commit()
            code = c.post(f"/api/v1/deliveries/{did}/clear-code", headers=h).json()["code"]
            # the recipient says she will be there (test_attended_presence.py: without it dispatch is 409)
            assert c.post(f"/api/v1/track/{token}/presence").json()["presence_confirmed"] is True
            r = c.post(f"/api/v1/deliveries/{did}/dispatch", json={"vehicle": "dr-01"}, headers=OP)
            assert r.status_code == 200, r.text
            # on its way: nothing to clear yet, and the refusal says why
            wait_state(c, did, {"en_route"}, 120, headers=h)
            p = assert_problem(c.post(f"/api/v1/track/{token}/clear-to-drop"), 409)
            assert "not holding" in p["detail"]
            held = wait_for(c, did, h, lambda x: x["awaiting_clearance"] or x["state"] in ("landed", "failed"), 180)
            assert held["awaiting_clearance"] is True and held["hold_deadline"], held
            assert held["state"] == "at_zone" and not held["delivered"]
            # the recipient clears it from the tracking page
            r = c.post(f"/api/v1/track/{token}/clear-to-drop")
            assert r.status_code == 200, r.text
            assert r.json()["clearance"]["cleared_by"] == "recipient"
            # once is enough: the code cannot clear it again
            p = assert_problem(c.post(f"/api/v1/deliveries/{did}/clear-to-drop", json={"code": code}, headers=h), 409)
            assert "already cleared" in p["detail"]
            done = wait_state(c, did, {"landed", "failed", "aborted"}, 240)
            assert done["outcome"] == "delivered" and done["delivered"], done
            assert done["awaiting_clearance"] is False and done["hold_ended"] == "cleared"
            kinds = [e["kind"] for e in done["events"]]
            assert kinds.index("holding_for_recipient") < kinds.index("cleared_to_drop") < kinds.index("released")
    finally:
        sim.stop()
        srv.stop()
