"""Reroute in flight through the HTTP API (issue 11, item 3): a delivery flies on the built-in simulator; an
operator adds a restriction across the rest of its route; the flight supervisor (told by the restriction
service) gives the flight a new cleared route in the air, the delivery's stored route and its operational
intent follow, and the parcel is delivered."""

from __future__ import annotations

import json
import math
import time
from datetime import datetime, timedelta, timezone

import httpx
import pytest
from shapely.geometry import LineString, Point, Polygon
from shapely.ops import unary_union

from groundctl.runtime.intents import IntentRow
from tests.api.conftest import OP, register, start_thread_server, zone_body
from tests.api.test_flight import FLIGHT_ZONE, start_vehicle_sim, use_sim, wait_state

pytestmark = pytest.mark.timeout(300)


def test_restriction_added_mid_flight_reroutes_the_flight_and_it_delivers(tmp_path):
    srv = start_thread_server(tmp_path)
    sim = start_vehicle_sim()
    try:
        with httpx.Client(base_url=srv.url, timeout=30) as c:
            use_sim(c, sim.urls[0])
            h = register(c)
            zid = c.post("/api/v1/zones", json=zone_body(FLIGHT_ZONE, name="yard"), headers=h).json()["id"]
            d = c.post("/api/v1/deliveries", json={"zone_id": zid, "parcel": {"mass_kg": 1.0}}, headers=OP).json()
            route0 = d["route"]
            assert c.post(f"/api/v1/deliveries/{d['id']}/dispatch", json={"vehicle": "dr-01"}, headers=OP).status_code == 200
            svc = srv.service
            frame = svc.airspace.current()[1].frame
            line = LineString([frame.to_xy(*p) for p in route0])
            hub_xy = line.coords[0]

            def first_leg(volume):
                return Polygon([frame.to_xy(*p) for p in volume["outline"]]) if volume.get("outline") else Point(hub_xy)
            # wait until the drone is on its way, 250 m out
            end = time.monotonic() + 120
            while time.monotonic() < end:
                p = svc.deliveries.progress.get(d["id"]) or {}
                if p.get("phase") == "en_route" and p.get("lat") is not None and \
                        math.dist(frame.to_xy(p["lon"], p["lat"]), hub_xy) > 250:
                    break
                time.sleep(0.05)
            else:
                raise AssertionError(f"never en route: {p}")
            # a circle on the route ahead of it
            c_xy = line.interpolate(0.7, normalized=True)
            lon, lat = (float(v) for v in frame.to_lonlat(c_xy.x, c_xy.y))
            now = datetime.now(timezone.utc)
            feat = {"type": "Feature", "geometry": {"type": "Point", "coordinates": [lon, lat]},
                    "properties": {"name": "crane on the route", "radius_m": 80.0, "start": (now - timedelta(minutes=1)).isoformat(),
                                   "end": (now + timedelta(hours=1)).isoformat()}}
            assert c.post("/api/v1/restrictions", json=feat, headers=OP).status_code == 201
            # the intent is replaced just after the 'rerouted' event: watch it until it is, or the flight is down
            intent_at_reroute = None
            end = time.monotonic() + 120
            while time.monotonic() < end:
                kinds = [e["kind"] for e in c.get(f"/api/v1/deliveries/{d['id']}", headers=OP).json()["events"]]
                if "rerouted" in kinds:
                    with svc.store.session() as s:
                        vols = s.get(IntentRow, d["id"]).data["volumes"]
                    intent_at_reroute = next((v for v in vols if v["label"].startswith("leg")), {"label": None})
                    legs_at_reroute = [first_leg(v) for v in vols if v["label"].startswith("leg out")]
                    if first_leg(intent_at_reroute).distance(Point(hub_xy)) > 100:
                        break
                if "landed" in kinds:
                    break
                time.sleep(0.05)
            assert intent_at_reroute is not None, "no 'rerouted' event before the landing"
            done = wait_state(c, d["id"], {"landed", "failed", "aborted", "lost", "crashed"}, 240)
            end = time.monotonic() + 30
            while done["outcome"] is None and time.monotonic() < end:
                time.sleep(0.2)
                done = c.get(f"/api/v1/deliveries/{d['id']}", headers=OP).json()
            events = done["events"]
            kinds = [e["kind"] for e in events]
            assert "rerouted" in kinds, json.dumps(events, indent=1)[-3000:]
            ev = next(e for e in events if e["kind"] == "rerouted")
            assert ev["data"]["restriction"] == "crane on the route" and ev["data"]["extra_m"] > 0
            assert done["outcome"] == "delivered", kinds
            # the stored route (for the map) is the new one, clear of the circle with the lateral margin
            circle = Point(c_xy).buffer(80.0)
            new_line = LineString([frame.to_xy(*p) for p in done["route"]])
            assert done["route"] != route0 and new_line.distance(circle) > 25.0
            # the flight's reserved sky was replaced by one built from the new route, from where the drone was
            assert intent_at_reroute["label"] == "leg out 1", intent_at_reroute
            assert first_leg(intent_at_reroute).distance(Point(hub_xy)) > 100  # starts out there, not at the hub
            assert unary_union(legs_at_reroute).buffer(1.0).covers(new_line)  # and it follows the new route
            # every position the drone reported after the reroute began is outside the circle
            assert all(not circle.contains(Point(frame.to_xy(e["lon"], e["lat"]))) for e in events if e.get("lat"))
    finally:
        sim.stop()
        srv.stop()
