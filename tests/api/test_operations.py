"""Operators over real HTTP: deliveries (planning, refusal, listing), fleet, airspace, errors and limits."""

from __future__ import annotations

import json

import httpx

from tests.api.conftest import CLINIC_EAST, FARM_NORTH, OP, ROOT, assert_problem, register, zone_body


def _zone(client, latlon=CLINIC_EAST) -> tuple[dict, int]:
    h = register(client)
    r = client.post("/api/v1/zones", json=zone_body(latlon), headers=h)
    assert r.status_code == 201, r.text
    return h, r.json()["id"]


def test_planned_delivery_has_plan_summary(client):
    h, zid = _zone(client)
    r = client.post("/api/v1/deliveries", json={"zone_id": zid, "parcel": {"mass_kg": 1.2}}, headers=OP)
    assert r.status_code == 201, r.text
    d = r.json()
    assert d["state"] == "planned" and d["failures"] == []
    assert d["plan"]["hub"] == "cmac" and d["plan"]["distance_out_m"] > 1000
    assert d["route"][0] == [149.16523, -35.363261]
    assert [e["kind"] for e in d["events"]] == ["planned"]
    assert d["verdict"]["detail"]["checks"]


def test_40kg_parcel_is_refused_with_every_reason(client):
    h, zid = _zone(client)
    r = client.post("/api/v1/deliveries", json={"zone_id": zid, "parcel": {"mass_kg": 40}}, headers=OP)
    assert r.status_code == 201, r.text
    d = r.json()
    assert d["state"] == "refused"
    checks = {f["check"] for f in d["failures"]}
    assert {"payload_mass", "takeoff_mass", "energy"} <= checks, d["failures"]
    assert all(f["message"] for f in d["failures"])
    assert d["events"][0]["kind"] == "refused"
    # a refused delivery cannot fly
    assert_problem(client.post(f"/api/v1/deliveries/{d['id']}/dispatch", json={}, headers=OP), 409)
    # the recipient sees the refusal too
    assert client.get(f"/api/v1/deliveries/{d['id']}", headers=h).json()["state"] == "refused"


def test_forbidden_handling_is_refused(client):
    _, zid = _zone(client)
    d = client.post("/api/v1/deliveries", json={"zone_id": zid, "parcel": {"mass_kg": 0.5, "handling": ["signature"]}},
                    headers=OP).json()
    assert d["state"] == "refused" and d["failures"], d


def test_list_filter_and_paginate(client):
    _, zid = _zone(client, FARM_NORTH)
    ids = [client.post("/api/v1/deliveries", json={"zone_id": zid, "parcel": {"mass_kg": m}}, headers=OP).json()["id"]
           for m in (0.5, 0.7, 30, 0.9)]
    refused = client.get("/api/v1/deliveries", params={"state": "refused", "limit": 500}, headers=OP).json()
    assert ids[2] in [d["id"] for d in refused["items"]]
    assert all(d["state"] == "refused" for d in refused["items"])
    planned = client.get("/api/v1/deliveries", params={"state": "planned"}, headers=OP).json()
    assert {ids[0], ids[1], ids[3]} <= {d["id"] for d in planned["items"]}
    total = planned["total"]
    seen = []
    for off in range(0, total, 2):
        page = client.get("/api/v1/deliveries", params={"state": "planned", "limit": 2, "offset": off}, headers=OP).json()
        assert page["limit"] == 2 and page["offset"] == off and len(page["items"]) <= 2
        seen += [d["id"] for d in page["items"]]
    assert len(seen) == total == len(set(seen))
    assert seen == sorted(seen, reverse=True)  # newest first
    assert_problem(client.get("/api/v1/deliveries", params={"limit": 0}, headers=OP), 422)
    assert_problem(client.get("/api/v1/deliveries", params={"state": "flying"}, headers=OP), 422)


def test_abort_a_planned_delivery_cancels_it(client):
    _, zid = _zone(client)
    d = client.post("/api/v1/deliveries", json={"zone_id": zid, "parcel": {"mass_kg": 1}}, headers=OP).json()
    r = client.post(f"/api/v1/deliveries/{d['id']}/abort", json={"action": "rtl"}, headers=OP)
    assert r.status_code == 200 and r.json()["state"] == "aborted"
    assert_problem(client.post(f"/api/v1/deliveries/{d['id']}/abort", json={}, headers=OP), 409)


def test_dispatch_needs_a_connected_vehicle(client):
    _, zid = _zone(client)
    d = client.post("/api/v1/deliveries", json={"zone_id": zid, "parcel": {"mass_kg": 1}}, headers=OP).json()
    p = assert_problem(client.post(f"/api/v1/deliveries/{d['id']}/dispatch", json={"vehicle": "hx-01"}, headers=OP),
                       409)
    assert "planned for 'quad-x-delivery'" in p["detail"] and "no MAVLink connection" in p["detail"]
    assert_problem(client.post(f"/api/v1/deliveries/{d['id']}/dispatch", json={"vehicle": "zz"}, headers=OP), 404)
    assert client.get(f"/api/v1/deliveries/{d['id']}", headers=OP).json()["state"] == "planned"


def test_operator_endpoints_need_the_key(client):
    h = register(client)
    assert_problem(client.post("/api/v1/deliveries", json={"zone_id": 1, "parcel": {"mass_kg": 1}}, headers=h), 401)
    assert_problem(client.get("/api/v1/hubs", headers={"X-API-Key": "wrong"}), 401)
    assert_problem(client.get("/api/v1/kpis"), 401)
    assert client.get("/api/v1/hubs", headers=OP).json()["items"][0]["name"] == "cmac"


def test_fleet_stays_consistent(client):
    v = client.get("/api/v1/vehicles/dr-02", headers=OP).json()
    p = assert_problem(client.put("/api/v1/vehicles/dr-02", json={**v, "hub": "nowhere"}, headers=OP), 409)
    assert "unknown hub 'nowhere'" in p["detail"]
    assert_problem(client.delete("/api/v1/hubs/cmac", headers=OP), 409)  # vehicles are based there
    assert_problem(client.put("/api/v1/vehicles/dr-02", json={**v, "sysid": 999}, headers=OP), 422)
    r = client.put("/api/v1/vehicles/dr-09", json={**v, "name": "dr-09", "sysid": 9}, headers=OP)
    assert r.status_code == 201, r.text
    assert client.delete("/api/v1/vehicles/dr-09", headers=OP).status_code == 204
    assert_problem(client.get("/api/v1/vehicles/dr-09", headers=OP), 404)


def test_airspace_get_put(client):
    a = client.get("/api/v1/airspace").json()
    assert a["type"] == "FeatureCollection" and a["features"][0]["properties"]["kind"] == "service_area"
    bad = json.loads((ROOT / "missions/cmac/airspace.geojson").read_text())
    bad["features"][1]["properties"]["kind"] = "danger"
    p = assert_problem(client.put("/api/v1/airspace", json=bad, headers=OP), 422)
    assert p["errors"][0]["field"].startswith("features[1]")
    assert client.get("/api/v1/airspace").json()["version"] == a["version"]
    r = client.put("/api/v1/airspace", json=a, headers=OP)
    assert r.status_code == 200 and r.json()["version"] == a["version"] + 1


def test_weather_put_is_validated(client):
    p = assert_problem(client.put("/api/v1/weather", json={"wind": []}, headers=OP), 422)
    assert p["errors"][0]["field"] == "weather.valid_time"


def test_problem_details_everywhere(client, server):
    assert_problem(client.get("/no/such/path"), 404)
    assert_problem(client.delete("/api/v1/airspace", headers=OP), 405)
    assert_problem(client.get("/api/v1/zones/0", headers=register(client)), 422)
    assert_problem(client.post("/api/v1/recipients", content=b"{not json", headers={"content-type": "application/json"}),
                   422)
    big = b'{"name": "' + b"x" * (server.service.settings.max_body_bytes + 10) + b'"}'
    p = assert_problem(client.post("/api/v1/recipients", content=big, headers={"content-type": "application/json"}), 413)
    assert p["errors"][0]["field"] == "body"

    def chunks():
        for _ in range(200):
            yield b"x" * 10_000

    assert_problem(client.post("/api/v1/recipients", content=chunks(), headers={"content-type": "application/json"}),
                   413)


def test_kpis_and_map_data(client):
    k = client.get("/api/v1/kpis", params={"since": "2020-01-01T00:00:00Z"}, headers=OP)
    assert k.status_code == 200 and "first_attempt_success_rate" in k.json()
    public = client.get("/api/v1/map").json()
    assert public["zones"] == [] and public["hubs"][0]["name"] == "cmac"
    _zone(client)
    full = client.get("/api/v1/map", headers=OP).json()
    assert full["zones"] and full["airspace"]["features"]


def test_openapi_and_map_page_are_served(client):
    assert client.get("/openapi.json").json()["info"]["title"] == "groundctl"
    page = client.get("/")
    assert page.status_code == 200 and "map.js" in page.text
    js = client.get("/static/map.js").text
    assert "http" not in js.replace("https:", "").replace("location.protocol", "")  # no CDN, no tile server


def test_live_websocket_auth(server):
    import websockets.sync.client as wsc
    from websockets.exceptions import InvalidStatus, ConnectionClosedError

    from tests.api.conftest import OP_KEY
    base = server.url.replace("http", "ws") + "/api/v1/live/ws"
    with wsc.connect(base, subprotocols=[f"groundctl.key.{OP_KEY}"]) as ws:  # how the map page connects
        assert ws.subprotocol == f"groundctl.key.{OP_KEY}"
        assert json.loads(ws.recv(timeout=5))["type"] == "snapshot"
    with wsc.connect(base, additional_headers={"X-API-Key": OP_KEY}) as ws:  # command-line clients
        assert json.loads(ws.recv(timeout=5))["type"] == "snapshot"
    # a wrong key, and even the right one in the URL (where access logs would keep it), are refused
    for kw in ({"additional_headers": {"X-API-Key": "wrong"}}, {"subprotocols": ["groundctl.key.wrong"]},
               {"uri": base + f"?key={OP_KEY}"}):
        try:
            with wsc.connect(**{"uri": base, **kw}) as ws:
                ws.recv(timeout=5)
            raise AssertionError(f"accepted: {kw}")
        except (InvalidStatus, ConnectionClosedError):
            pass


def test_no_weather_no_go(tmp_path):
    """Without a weather report the service refuses to plan a flight rather than assume calm air."""
    from tests.api.conftest import register, start_thread_server, zone_body

    srv = start_thread_server(tmp_path, weather=False)
    try:
        with httpx.Client(base_url=srv.url, timeout=30) as c:
            h = register(c)
            zid = c.post("/api/v1/zones", json=zone_body(), headers=h).json()["id"]
            d = c.post("/api/v1/deliveries", json={"zone_id": zid, "parcel": {"mass_kg": 1.0}}, headers=OP).json()
            assert d["state"] == "refused"
            assert any("weather" in f["check"] for f in d["failures"]), d["failures"]
    finally:
        srv.stop()
