"""The map page in headless Chromium: it must draw the zones it fetched, not just serve HTML."""

from __future__ import annotations

import os
import shutil
import subprocess

import httpx
import numpy as np
import pytest

from tests.api.conftest import CLINIC_EAST, FARM_NORTH, OP, OP_KEY, register, zone_body

CHROMIUM = os.environ.get("CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no chromium (apt-get install -y chromium)")

ZONE_RGB = (0x22, 0xB1, 0x4C)  # COLORS.zone in map.js
NOFLY_RGB = (0xE8, 0xA2, 0x9E)
AREA_RGB = (0xDC, 0xE8, 0xF5)
ROUTE_RGB = (0x7B, 0x3F, 0xA0)
VEHICLE_RGB = (0xFF, 0x7F, 0x0E)


def screenshot(url: str, out, tmp_path, size=(1000, 800)) -> np.ndarray:
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
           "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run",
           "--disable-default-apps", "--disable-extensions", f"--user-data-dir={tmp_path / 'chromium-profile'}",
           # let the page's fetch() calls finish before the shot is taken
           "--virtual-time-budget=8000", "--run-all-compositor-stages-before-draw",
           f"--window-size={size[0]},{size[1]}", f"--screenshot={out}", url]
    p = subprocess.run(cmd, capture_output=True, timeout=90)
    assert out.exists(), p.stderr.decode()[-2000:]
    from PIL import Image
    return np.asarray(Image.open(out).convert("RGB")).astype(int)


def count(img: np.ndarray, rgb, tol=6, panel=(210, 210)) -> int:
    """Pixels of a colour on the map itself: the legend panel in the top-left corner has a swatch of each."""
    hit = np.abs(img - np.array(rgb)).max(axis=2) <= tol
    hit[:panel[0], :panel[1]] = False
    return int(hit.sum())


def test_map_draws_area_no_fly_zones_zones_and_routes(server, tmp_path):
    with httpx.Client(base_url=server.url, timeout=30) as c:
        h = register(c, "map")
        zids = [c.post("/api/v1/zones", json=zone_body(p, name=n), headers=h).json()["id"]
                for p, n in ((CLINIC_EAST, "clinic"), (FARM_NORTH, "farm"))]
        d = c.post("/api/v1/deliveries", json={"zone_id": zids[0], "parcel": {"mass_kg": 1}}, headers=OP)
        assert d.json()["state"] == "planned"
    img = screenshot(f"{server.url}/#key={OP_KEY}", tmp_path / "map.png", tmp_path)
    assert img.shape[:2] == (800, 1000)
    assert count(img, AREA_RGB) > 50_000, "service area not drawn"
    assert count(img, NOFLY_RGB) > 2_000, "no-fly zones not drawn"
    zone_px = count(img, ZONE_RGB)
    assert zone_px > 2 * 80, f"landing zones not drawn ({zone_px} px of the zone colour)"
    assert count(img, ROUTE_RGB, tol=40) > 100, "planned route not drawn"


def test_map_without_key_shows_only_public_layers(server, tmp_path):
    img = screenshot(f"{server.url}/", tmp_path / "public.png", tmp_path)
    assert count(img, AREA_RGB) > 50_000
    assert count(img, ZONE_RGB) == 0  # zones are the recipients' business
    assert count(img, ROUTE_RGB, tol=40) == 0


def test_map_draws_live_vehicles(server, tmp_path):
    """A vehicle's progress (as DeliveryFlight reports it) shows up on the map as it moves."""
    for i, lat in enumerate((-35.370, -35.355)):
        server.service.live.update(f"sim-{i}", {"vehicle": f"sim-{i}", "delivery": None, "phase": "en_route",
                                                "lat": lat, "lon": 149.17, "alt_rel_m": 60.0, "groundspeed_mps": 12.0,
                                                "battery_pct": 90.0, "eta_s": 100.0})
    try:
        img = screenshot(f"{server.url}/#key={OP_KEY}", tmp_path / "live.png", tmp_path)
        assert count(img, VEHICLE_RGB) > 2 * 60, "vehicles not drawn"
    finally:
        server.service.live.vehicles.clear()


RESTRICTION_RGB = (0xF2, 0xC9, 0x4C)  # COLORS.restriction in map.js
INTENT_RGB = (0x1B, 0x7F, 0xC4)
LEGEND = (285, 300)  # the whole legend panel: its swatch of the intent colour is not an intent


def test_map_shows_restrictions_to_everyone_and_intents_to_operators(server, tmp_path):
    from datetime import datetime, timedelta, timezone

    from groundctl.core.intents import build_intent, shape_of
    from groundctl.runtime import intents

    now = datetime.now(timezone.utc)
    with httpx.Client(base_url=server.url, timeout=30) as c:
        r = c.post("/api/v1/restrictions", headers=OP, json={
            "type": "Feature", "geometry": {"type": "Point", "coordinates": [149.178, -35.372]},
            "properties": {"name": "event", "radius_m": 250, "start": now.isoformat(),
                           "end": (now + timedelta(hours=1)).isoformat()}})
        assert r.status_code == 201, r.text
        rid = r.json()["properties"]["id"]
        h = register(c, "intent")
        z = c.post("/api/v1/zones", json=zone_body(CLINIC_EAST, name="clinic"), headers=h).json()
        d = c.post("/api/v1/deliveries", json={"zone_id": z["id"], "parcel": {"mass_kg": 1}}, headers=OP).json()
    svc = server.service
    from groundctl.runtime.store import Delivery
    with svc.store.session() as s:
        plan = svc.deliveries.plan_for(s.get(Delivery, d["id"]))
    frame = svc.airspace.current()[1].frame
    # the intent a dispatch would record, put in place directly: this test is about drawing it
    with svc.store.session() as s:
        intents.put(s, d["id"], build_intent(str(d["id"]), shape_of(plan, frame), now.timestamp()), frame)
    try:
        public = screenshot(f"{server.url}/", tmp_path / "public-r.png", tmp_path)
        assert count(public, RESTRICTION_RGB) > 300, "restriction not drawn on the public map"
        assert count(public, INTENT_RGB, tol=12, panel=LEGEND) == 0, "intents are for operators"
        op = screenshot(f"{server.url}/#key={OP_KEY}", tmp_path / "op-r.png", tmp_path)
        assert count(op, RESTRICTION_RGB) > 300
        assert count(op, INTENT_RGB, tol=12, panel=LEGEND) > 300, "the flight's intent not drawn"
    finally:
        with svc.store.session() as s:
            intents.progress(s, d["id"], frame, now.timestamp(), None, ended=True)
        with httpx.Client(base_url=server.url, timeout=30) as c:
            c.delete(f"/api/v1/restrictions/{rid}", headers=OP)
