"""The recipient's tracking page in a real headless Chromium, following a delivery the built-in simulator
really flies: the drone on the map while it approaches (phone and desktop), nothing of it after the drop,
the proof of delivery once it is down, nothing about anyone else's delivery, and the recipient's answer
given by clicking the page; before that, a change of mind made on the page.

The parcel is an attended one: the drone holds above the zone until the recipient presses "clear to drop"
on the page, so the in-flight screenshots are taken while it waits for us, however busy the machine is
(the hold is long in vehicle time), and the button the page offers is the one that releases the parcel."""

from __future__ import annotations

import shutil
import time

import httpx
import pytest

from tests.conftest import MISSIONS

from tests.api.browser import CHROMIUM, DESKTOP, PHONE, Browser, count
from tests.api.conftest import NEAR_HUB, OP, assert_problem, register, zone_body
from tests.api.test_tracking import link_of, start_server

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no chromium (apt-get install -y chromium)")
launch = pytest.importorskip("sim.launch")

HUB = "-35.363261,149.165230,584,353"
FLIGHT_ZONE = (-35.3720, 149.1600)  # 1.1 km from the hub
OTHER_ZONE = (-35.3569483, 149.193836)
# track.js COLORS, and the proof card's background in track.css
DRONE = (0xFF, 0x7F, 0x0E)
ZONE = (0x22, 0xB1, 0x4C)
DROP = (0xE6, 0x00, 0x7E)
PROOF_CARD = (0xDF, 0xF3, 0xE4)
PRESENCE_CARD = (0xFF, 0xF1, 0xC9)
APPROACH = {"dispatched", "taking_off", "en_route", "at_zone", "lowering"}
ATTENDED = {"mass_kg": 1.0, "handling": ["signature"], "attended": True}
AFTER_DROP = {"released", "returning", "landed"}


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    b = Browser(tmp_path_factory.mktemp("chromium"))
    yield b
    b.close()


def shoot(browser: Browser, url: str, size, out, *, full: bool = True) -> dict | None:
    """Load the page at a size and screenshot it (the whole page, or the first screenful); None if it
    redrew while the shot was taken (then what it drew and what it says it drew might differ)."""
    browser.open(url, size, mobile=size == PHONE, ready="document.body.dataset.renders")
    before = browser.eval("document.body.dataset.renders")
    img = browser.screenshot(out, full=full)
    state, drone, after, text = browser.eval(
        "[document.body.dataset.state, document.body.dataset.drone, document.body.dataset.renders,"
        " document.body.innerText]")
    if before != after:
        return None
    return {"size": size, "state": state, "drone": drone == "1", "img": img, "text": text}


def scenario_with_long_hold(tmp_path):
    """The example scenario with an attended hold of 8 minutes of vehicle time (12 s at speed-up 40)."""
    d = tmp_path / "scenario"
    shutil.copytree(MISSIONS / "cmac", d)
    fleet = (d / "fleet.toml").read_text()
    (d / "fleet.toml").write_text(fleet.replace("[operations]\n", "[operations]\nattended_hold_s = 480\n", 1))
    return d


def test_page_follows_the_flight_then_shows_the_proof_and_takes_the_answer(tmp_path, browser):
    srv = start_server(tmp_path / "data", scenario_dir=scenario_with_long_hold(tmp_path))
    sim = launch.start_sim(["--home", HUB, "--sysid", "1", "--speedup", "40", "--no-ekf-s", "1",
                            "--payload-kg", "1.0", "--battery-wh", "222", "--mass-kg", "3.4"])
    try:
        with httpx.Client(base_url=srv.url, timeout=30) as c:
            v = c.get("/api/v1/vehicles/dr-01", headers=OP).json()
            assert c.put("/api/v1/vehicles/dr-01", json={**v, "connection": sim.urls[0]}, headers=OP).status_code == 200
            h = register(c, "alice")
            front = c.post("/api/v1/zones", json=zone_body(NEAR_HUB, name="alice front",
                                                           instructions="on the front step"), headers=h).json()["id"]
            zid = c.post("/api/v1/zones", json=zone_body(FLIGHT_ZONE, name="alice yard"), headers=h).json()["id"]
            # someone else's planned delivery, whose name and instructions must never show on alice's page
            hb = register(c, "bob")
            bz = c.post("/api/v1/zones", json=zone_body(OTHER_ZONE, name="bob secret garden",
                                                        instructions="bob-only-instructions"), headers=hb).json()["id"]
            bob = c.post("/api/v1/deliveries", json={"zone_id": bz, "parcel": {"mass_kg": 1.0}}, headers=OP).json()
            d = c.post("/api/v1/deliveries", json={"zone_id": front, "parcel": ATTENDED}, headers=OP).json()
            assert d["state"] == "planned" and d["plan"]["attended_hold_s"] == 480, d
            did = d["id"]
            url = link_of(srv, c, did, h)
            token = url.rsplit("/", 1)[1]
            bob_url = link_of(srv, c, bob["id"], hb)

            planned = shoot(browser, url, PHONE, tmp_path / "planned-phone.png", full=False)
            assert planned and planned["state"] == "planned" and not planned["drone"]
            assert count(planned["img"], DRONE) == 0 and count(planned["img"], ZONE) > 200
            assert "on the front step" in planned["text"] and "alice front" in planned["text"]

            # she changes her mind on the page: the yard, with instructions; planned again before it leaves
            browser.eval(f"const s = document.getElementById('zone-select'); s.value = '{zid}';"
                         "document.getElementById('new-instructions').value = 'next to the blue gate';"
                         "document.querySelector('#change-form button').click(); true")
            browser.wait("document.getElementById('change-msg').textContent === 'Saved.'")
            browser.wait("document.getElementById('instructions').textContent === 'next to the blue gate'")
            moved = c.get(f"/api/v1/deliveries/{did}", headers=OP).json()
            assert moved["zone_id"] == zid and moved["zone"]["instructions"] == "next to the blue gate", moved
            assert moved["route"][-1] == pytest.approx([FLIGHT_ZONE[1], FLIGHT_ZONE[0]])
            assert [(e["kind"], e["data"].get("via")) for e in moved["events"] if e["kind"].endswith("_changed")] == [
                ("zone_changed", "page"), ("instructions_changed", "page")]

            # an attended parcel: the page asks her to be there, and she says so on it (dispatch needs it)
            s = shoot(browser, url, PHONE, tmp_path / "presence-phone.png")
            assert s and count(s["img"], PRESENCE_CARD, tol=2) > 20_000 and "I'll be there" in s["text"]
            browser.eval("document.getElementById('presence-btn').click(); true")
            browser.wait("document.getElementById('presence-text').textContent.startsWith('Thank you')")
            assert browser.eval("document.getElementById('presence-btn').hidden")
            r = c.post(f"/api/v1/deliveries/{did}/dispatch", json={"vehicle": "dr-01"}, headers=OP)
            assert r.status_code == 200, r.text
            # after dispatch the drone flies the plan it was given: no change of mind, with the reason
            for resp in (c.patch(f"/api/v1/track/{token}", json={"instructions": "porch"}),
                         c.patch(f"/api/v1/deliveries/{did}", json={"instructions": "porch"}, headers=h)):
                body = assert_problem(resp, 409)
                assert "only before dispatch" in body["detail"], body
            body = assert_problem(c.post(f"/api/v1/track/{token}/confirmation", json={"status": "received"}), 409)
            assert "once the parcel has been released" in body["detail"]

            # another vehicle "flying" bob's delivery, on the way across alice's map: neither bob's page (his
            # delivery is not dispatched) nor alice's may show it
            ghost = {"vehicle": "ghost-07", "delivery": bob["id"], "phase": "en_route", "lat": -35.3675,
                     "lon": 149.1625, "alt_rel_m": 60.0, "heading_deg": 200.0}
            srv.service.live.update("ghost-07", ghost)
            srv.service.deliveries.progress[bob["id"]] = ghost
            shots: list[dict] = []
            seen_drone_in_json = cleared = False
            end = time.monotonic() + 300
            while time.monotonic() < end:
                j = c.get(f"/api/v1/track/{token}").json()
                # the JSON the page reads: the drone only while it approaches, never before or after
                assert (j["drone"] is not None) <= (j["state"] in APPROACH), j
                seen_drone_in_json |= j["drone"] is not None
                assert c.get(f"/api/v1/track/{bob_url.rsplit('/', 1)[1]}").json()["drone"] is None
                for size in (PHONE, DESKTOP):
                    s = shoot(browser, url, size, tmp_path / f"shot-{len(shots)}.png")
                    if s:
                        s["button"], s["left"] = browser.eval(
                            "[!document.getElementById('clearance').hidden, document.body.dataset.holdLeft]")
                        shots.append(s)
                held = [s for s in shots if s["button"] and s["drone"]]
                if not cleared and {s["size"] for s in held} == {PHONE, DESKTOP}:
                    # holding above the zone, drawn at both sizes: the recipient presses the page's button
                    browser.open(url, PHONE, mobile=True, ready="!document.getElementById('clearance').hidden")
                    browser.eval("document.getElementById('clear-btn').click(); true")
                    cleared = True
                if j["state"] == "landed" and j["outcome"]:
                    break
            assert seen_drone_in_json and cleared
            # the button shows exactly while the delivery says the drone holds for the recipient
            assert all(s["state"] == "at_zone" for s in shots if s["button"])
            # with the time the drone still waits, counted down from the 8 minutes of the hold
            assert all(s["left"] is not None and 0 <= int(s["left"]) <= 480 for s in shots if s["button"])
            flying = [s for s in shots if s["state"] in APPROACH and s["drone"]]
            assert {s["size"] for s in flying} == {PHONE, DESKTOP}, [(s["size"], s["state"]) for s in shots]
            for s in flying:  # one drone, alice's: a triangle is about 140 pixels of the colour
                assert 80 < count(s["img"], DRONE) < 200, f"not one drone drawn at {s['size']} in {s['state']}"
            after = [s for s in shots if s["state"] in AFTER_DROP]
            assert after, [s["state"] for s in shots]
            for s in after + [s for s in shots if not s["drone"]]:
                assert count(s["img"], DRONE, tol=20) == 0, f"a drone drawn at {s['size']} in {s['state']}"
            for s in shots:
                assert "bob" not in s["text"].lower()

            # down, with the proof: time, position, distance from the zone centre, and the cross on the map
            final = c.get(f"/api/v1/track/{token}").json()
            pod = final["proof_of_delivery"]
            assert final["outcome"] == "delivered" and pod["distance_from_zone_centre_m"] < 10, final
            events = [e["kind"] for e in c.get(f"/api/v1/deliveries/{did}", headers=OP).json()["events"]]
            assert events.index("cleared_to_drop") < events.index("released"), events  # released by the click
            for size in (PHONE, DESKTOP):
                s = shoot(browser, url, size, tmp_path / f"landed-{size[0]}.png", full=False)
                assert s and s["state"] == "landed"
                # the proof is in the first screenful; the map with the drop position further down on a phone
                assert count(s["img"], PROOF_CARD, tol=2) > 20_000, f"proof section not shown at {size}"
                page = browser.screenshot(tmp_path / f"landed-{size[0]}-full.png", full=True)
                assert count(page, DROP, tol=30) > 40, f"drop position not drawn at {size}"
                assert count(page, DRONE, tol=20) == 0
                assert f"{pod['distance_from_zone_centre_m']:.1f} m" in s["text"]
                assert s["img"].shape[:2] == (size[1], size[0])

            # the recipient answers on the page (phone): damaged, with a message
            browser.open(url, PHONE, mobile=True, ready="!document.getElementById('confirm').hidden")
            browser.eval("document.querySelector('input[value=damaged]').click();"
                         "document.getElementById('confirm-message').value = 'box crushed on one side';"
                         "document.querySelector('#confirm-form button').click(); true")
            browser.wait("!document.getElementById('answer').hidden && document.getElementById('confirm').hidden")
            assert "damaged" in browser.eval("document.getElementById('answer-text').textContent")
            d = c.get("/api/v1/disputes", headers=OP).json()
            assert [(x["delivery"], x["status"], x["message"], x["via"]) for x in d["items"]] == [
                (did, "damaged", "box crushed on one side", "page")]
            # once: the API refuses a second answer
            assert_problem(c.post(f"/api/v1/deliveries/{did}/confirmation", json={"status": "received"},
                                  headers=h), 409)
            k = c.get("/api/v1/kpis", headers=OP).json()
            assert k["delivered"] == 1 and k["dispute_rate"] == 1.0 and k["confirmation_rate"] == 0.0
            assert k["disputes_open"] == 1
    finally:
        sim.stop()
        srv.stop()
