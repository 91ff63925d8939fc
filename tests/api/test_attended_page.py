"""The tracking page's attended-drop parts in a real headless Chromium, without flying (the flown hold is in
test_tracking_page.py): the presence card before dispatch and its button, and while the drone holds, the
countdown whose bar is the share of the hold still left, checked in the screenshot's pixels."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

import httpx
import pytest

from tests.api.browser import CHROMIUM, DESKTOP, PHONE, Browser, count
from tests.api.conftest import CLINIC_EAST, OP, register, zone_body
from tests.api.test_attended_presence import ATTENDED, hold_events
from tests.api.test_tracking import link_of, start_server

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no chromium (apt-get install -y chromium)")

# track.css: the presence card's background, the countdown bar's fill
PRESENCE_CARD = (0xFF, 0xF1, 0xC9)
HOLD_FILL = (0x00, 0x89, 0x7B)


def test_presence_button_then_hold_countdown(tmp_path):
    srv = start_server(tmp_path / "data")
    browser = Browser(tmp_path / "chromium")
    try:
        with httpx.Client(base_url=srv.url, timeout=30) as c:
            h = register(c, "ana")
            zid = c.post("/api/v1/zones", json=zone_body(CLINIC_EAST, name="ana lawn"), headers=h).json()["id"]
            plain = c.post("/api/v1/deliveries", json={"zone_id": zid, "parcel": {"mass_kg": 0.5}}, headers=OP).json()
            d = c.post("/api/v1/deliveries", json={"zone_id": zid, "parcel": ATTENDED}, headers=OP).json()
            did = d["id"]
            url = link_of(srv, c, did, h)

            # a parcel that needs nobody: no presence card
            browser.open(link_of(srv, c, plain["id"], h), PHONE, mobile=True, ready="document.body.dataset.renders")
            assert browser.eval("document.getElementById('presence').hidden")
            assert count(browser.screenshot(tmp_path / "plain.png", full=True), PRESENCE_CARD, tol=2) == 0

            browser.open(url, PHONE, mobile=True, ready="document.body.dataset.renders")
            img = browser.screenshot(tmp_path / "presence.png", full=True)
            text = browser.eval("document.body.innerText")
            assert count(img, PRESENCE_CARD, tol=2) > 20_000, "presence card not drawn"
            assert "I'm here / I'll be there" in text and "waits at most 3 min" in text, text
            browser.eval("document.getElementById('presence-btn').click(); true")
            browser.wait("document.getElementById('presence-text').textContent.startsWith('Thank you')")
            assert browser.eval("document.getElementById('presence-btn').hidden")
            ev = [e for e in c.get(f"/api/v1/deliveries/{did}", headers=OP).json()["events"]
                  if e["kind"] == "presence_confirmed"]
            assert [e["data"] for e in ev] == [{"by": "recipient", "via": "page"}]

            # the drone holds: 300 s left of a 480 s hold
            hold_events(srv.service.store, did, deadline=datetime.now(timezone.utc) + timedelta(seconds=300),
                        hold_s=480, absent=False)
            browser.open(url, DESKTOP, ready="!document.getElementById('clearance').hidden")
            left = int(browser.eval("document.body.dataset.holdLeft"))
            assert 280 <= left <= 300, left
            assert re.search(r"It waits [45]:\d\d more", browser.eval("document.getElementById('hold-left').textContent"))
            assert browser.eval("document.getElementById('presence').hidden")  # the hold replaces the ask
            w, hgt = browser.eval("[document.getElementById('hold-bar').clientWidth,"
                                  " document.getElementById('hold-bar').clientHeight]")
            img = browser.screenshot(tmp_path / "holding.png", full=True)
            share = count(img, HOLD_FILL, tol=2) / (w * hgt)
            assert abs(share - left / 480) < 0.08, (share, left / 480)
            # it counts down between polls
            browser.wait(f"+document.body.dataset.holdLeft <= {left - 2}", timeout=10)
    finally:
        browser.close()
        srv.stop()
