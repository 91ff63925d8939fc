"""Recipients and landing zones over real HTTP: registration, ownership, validation, staleness."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import httpx
import pytest

from tests.api.conftest import (CLINIC_EAST, HELIPAD, ISLAND, OP, OUTSIDE, Clock, assert_problem, calm_weather, register,
                                start_thread_server, zone_body)


def test_register_returns_token_once_and_stores_only_its_hash(client, server):
    r = client.post("/api/v1/recipients", json={"name": "Ada", "contact": "ada@example.org"})
    assert r.status_code == 201
    token = r.json()["token"]
    assert len(token) > 40
    me = client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"})
    assert me.status_code == 200 and me.json()["name"] == "Ada"
    from sqlalchemy import select
    from groundctl.runtime.store import Recipient, token_hash
    with server.service.store.session() as s:
        row = s.scalar(select(Recipient).where(Recipient.id == me.json()["id"]))
        assert row.token_hash == token_hash(token) and token not in row.token_hash
    assert_problem(client.get("/api/v1/me", headers={"Authorization": "Bearer nope"}), 401)
    assert_problem(client.get("/api/v1/me"), 401)


def test_zone_crud(client):
    h = register(client)
    r = client.post("/api/v1/zones", json=zone_body(instructions="by the gate", contact="+61 2 0000"), headers=h)
    assert r.status_code == 201, r.text
    z = r.json()
    assert z["hub"] == "cmac" and z["stale"] is False and z["reach"]["cmac"]["ok"]
    assert r.headers["location"] == f"/api/v1/zones/{z['id']}"
    assert client.get(f"/api/v1/zones/{z['id']}", headers=h).json()["instructions"] == "by the gate"
    r = client.put(f"/api/v1/zones/{z['id']}", json=zone_body(name="renamed", radius=8), headers=h)
    assert r.status_code == 200 and r.json()["name"] == "renamed" and r.json()["clear_radius_m"] == 8
    listing = client.get("/api/v1/zones", headers=h).json()
    assert listing["total"] == 1 and listing["items"][0]["name"] == "renamed"
    assert client.post(f"/api/v1/zones/{z['id']}/confirm", headers=h).status_code == 200
    assert client.delete(f"/api/v1/zones/{z['id']}", headers=h).status_code == 204
    assert_problem(client.get(f"/api/v1/zones/{z['id']}", headers=h), 404)


def test_zone_with_outline(client):
    h = register(client)
    lat, lon = CLINIC_EAST
    d = 0.0001
    ring = [[lon - d, lat - d], [lon + d, lat - d], [lon + d, lat + d], [lon - d, lat + d], [lon - d, lat - d]]
    r = client.post("/api/v1/zones", json=zone_body(polygon={"type": "Polygon", "coordinates": [ring]}), headers=h)
    assert r.status_code == 201, r.text
    assert r.json()["polygon"]["coordinates"][0] == ring


def test_other_recipients_zones_and_deliveries_are_404(client):
    a, b = register(client, "a"), register(client, "b")
    z = client.post("/api/v1/zones", json=zone_body(), headers=a).json()
    zid = z["id"]
    assert_problem(client.get(f"/api/v1/zones/{zid}", headers=b), 404)
    assert_problem(client.put(f"/api/v1/zones/{zid}", json=zone_body(name="mine"), headers=b), 404)
    assert_problem(client.post(f"/api/v1/zones/{zid}/confirm", headers=b), 404)
    assert_problem(client.delete(f"/api/v1/zones/{zid}", headers=b), 404)
    assert client.get("/api/v1/zones", headers=b).json()["total"] == 0
    # and the same answer as for a zone that never existed
    missing = client.get("/api/v1/zones/999999", headers=b).json()
    other = client.get(f"/api/v1/zones/{zid}", headers=b).json()
    assert missing["title"] == other["title"] and missing["status"] == other["status"]
    assert client.get(f"/api/v1/zones/{zid}", headers=a).json()["name"] == z["name"]  # untouched
    d = client.post("/api/v1/deliveries", json={"zone_id": zid, "parcel": {"mass_kg": 0.5}}, headers=OP).json()
    assert_problem(client.get(f"/api/v1/deliveries/{d['id']}", headers=b), 404)
    assert client.get("/api/v1/deliveries", headers=b).json()["total"] == 0
    mine = client.get(f"/api/v1/deliveries/{d['id']}", headers=a).json()
    assert mine["state"] == "planned" and "recipient_id" not in mine  # recipients see state, not operations


def _count(server) -> int:
    from sqlalchemy import func, select
    from groundctl.runtime.store import Zone
    with server.service.store.session() as s:
        return s.scalar(select(func.count()).select_from(Zone))


LAT, LON = CLINIC_EAST
BOWTIE = [[LON - 1e-4, LAT - 1e-4], [LON + 1e-4, LAT + 1e-4], [LON + 1e-4, LAT - 1e-4], [LON - 1e-4, LAT + 1e-4],
          [LON - 1e-4, LAT - 1e-4]]
INVALID = {
    "outside the service area": (zone_body(OUTSIDE), [("zone.position", "outside the service area")]),
    "in a no-fly zone": (zone_body(HELIPAD), [("zone.position", "no-fly zone 'Hospital helipad'")]),
    "unreachable (enclosed by a no-fly zone)": (zone_body(ISLAND), [("zone.position", "separate parts")]),
    "malformed GeoJSON": (zone_body(polygon={"type": "Polygon", "coordinates": "nope"}),
                          [("polygon.coordinates", "non-empty list of rings")]),
    "unclosed ring": (zone_body(polygon={"type": "Polygon", "coordinates": [BOWTIE[:-1]]}),
                      [("polygon.coordinates[0]", "not closed")]),
    "wrong geometry type": (zone_body(polygon={"type": "Point", "coordinates": [LON, LAT]}),
                            [("polygon", "not allowed")]),
    "self-intersecting polygon": (zone_body(polygon={"type": "Polygon", "coordinates": [BOWTIE]}),
                                  [("polygon.coordinates", "self-intersection at")]),
    "latitude out of range": (zone_body((95.0, LON)), [("lat", "less than or equal to 90")]),
    "longitude out of range": (zone_body((LAT, 190.0)), [("lon", "less than or equal to 180")]),
    "polygon coordinate out of range": (
        zone_body(polygon={"type": "Polygon", "coordinates": [[[LON, LAT], [LON, 91], [LON + 1e-4, LAT], [LON, LAT]]]}),
        [("polygon.coordinates[0][1]", "latitude 91.0 out of range")]),
    "clear radius below the airframe minimum": (zone_body(radius=2), [("zone.clear_radius_m", "smaller than")]),
    "several reasons at once": (zone_body(HELIPAD, radius=1),
                                [("zone.clear_radius_m", "smaller than"), ("zone.position", "no-fly zone")]),
    "not a number": ({**zone_body(), "lat": "north"}, [("lat", "valid number")]),
    "unknown field": ({**zone_body(), "colour": "red"}, [("colour", "Extra inputs")]),
}


@pytest.mark.parametrize("case", list(INVALID), ids=list(INVALID))
def test_invalid_zone_is_refused_with_every_reason_and_nothing_stored(client, server, case):
    body, expected = INVALID[case]
    h = register(client)
    before = _count(server)
    p = assert_problem(client.post("/api/v1/zones", json=body, headers=h), 422)
    got = [(e["field"], e["reason"]) for e in p["errors"]]
    for field, words in expected:
        assert any(f == field and words in reason for f, reason in got), (field, words, got)
    assert len(got) == len(expected), got
    assert _count(server) == before
    assert client.get("/api/v1/zones", headers=h).json()["total"] == 0


def test_refused_update_leaves_the_zone_as_it_was(client):
    h = register(client)
    z = client.post("/api/v1/zones", json=zone_body(), headers=h).json()
    assert_problem(client.put(f"/api/v1/zones/{z['id']}", json=zone_body(HELIPAD), headers=h), 422)
    assert client.get(f"/api/v1/zones/{z['id']}", headers=h).json() == z


def test_out_of_range_zone(tmp_path):
    """With small batteries the far side of the map is beyond a round trip from the hub."""
    srv = start_thread_server(tmp_path)
    try:
        with httpx.Client(base_url=srv.url, timeout=30) as c:
            for name in ("quad-x-delivery", "hexa-heavy"):
                a = c.get(f"/api/v1/airframes/{name}", headers=OP).json()
                r = c.put(f"/api/v1/airframes/{name}", json={**a, "battery_wh": a["battery_wh"] / 2.5}, headers=OP)
                assert r.status_code == 200, r.text
            h = register(c)
            p = assert_problem(c.post("/api/v1/zones", json=zone_body(CLINIC_EAST), headers=h), 422)
            assert p["errors"][0]["field"] == "zone.position"
            assert "out of range" in p["errors"][0]["reason"], p
            assert c.get("/api/v1/zones", headers=h).json()["total"] == 0
            near = c.post("/api/v1/zones", json=zone_body((-35.3600, 149.1660)), headers=h)
            assert near.status_code == 201, near.text
    finally:
        srv.stop()


def test_stale_zone_must_be_reconfirmed(tmp_path):
    clock = Clock()
    srv = start_thread_server(tmp_path, clock=clock)
    try:
        with httpx.Client(base_url=srv.url, timeout=30) as c:
            h = register(c)
            z = c.post("/api/v1/zones", json=zone_body(), headers=h).json()
            clock.offset = timedelta(days=181)  # cmac: zone_stale_after_days = 180 (default)
            assert c.get(f"/api/v1/zones/{z['id']}", headers=h).json()["stale"] is True
            p = assert_problem(c.post("/api/v1/deliveries", json={"zone_id": z["id"], "parcel": {"mass_kg": 1}},
                                      headers=OP), 409)
            assert "reconfirm" in p["detail"]
            r = c.post(f"/api/v1/zones/{z['id']}/confirm", headers=h)
            assert r.status_code == 200 and r.json()["stale"] is False
            # the weather set at start is 181 days old now too: an operator gives a fresh report
            fresh = {**calm_weather(), "valid_time": (datetime.now(timezone.utc) + clock.offset).isoformat()}
            assert c.put("/api/v1/weather", json=fresh, headers=OP).status_code == 200
            d = c.post("/api/v1/deliveries", json={"zone_id": z["id"], "parcel": {"mass_kg": 1}}, headers=OP)
            assert d.status_code == 201 and d.json()["state"] == "planned", d.text
    finally:
        srv.stop()
