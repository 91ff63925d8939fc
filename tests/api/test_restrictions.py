"""Temporary restrictions over real HTTP: added and lifted by operators, honoured by planning for their
time window at once, planned deliveries re-planned around them or refused, bad input refused whole."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from shapely.geometry import LineString

from tests.api.conftest import CLINIC_EAST, OP, assert_problem, register, zone_body

# on the straight first leg from the hub towards clinic-east (see its route on the map)
ON_ROUTE = (149.1712, -35.3645)


def feature(lonlat=ON_ROUTE, radius=150.0, start=None, end=None, **props):
    now = datetime.now(timezone.utc)
    start = start or now - timedelta(minutes=1)
    end = end or now + timedelta(hours=2)
    return {"type": "Feature", "geometry": {"type": "Point", "coordinates": list(lonlat)},
            "properties": {"name": props.pop("name", "fire at the depot"), "radius_m": radius,
                           "start": start.isoformat(), "end": end.isoformat(), **props}}


@pytest.fixture
def planned(client):
    h = register(client)
    z = client.post("/api/v1/zones", json=zone_body(CLINIC_EAST, name="clinic"), headers=h).json()
    d = client.post("/api/v1/deliveries", json={"zone_id": z["id"], "parcel": {"mass_kg": 1.0}}, headers=OP)
    assert d.status_code == 201 and d.json()["state"] == "planned", d.text
    return d.json()


def clearance_m(route, server, lonlat, radius):
    frame = server.service.airspace.current()[1].frame
    line = frame.project(LineString(route))
    from shapely.geometry import Point
    return line.distance(Point(frame.to_xy(*lonlat))) - radius


def lift_all(client):
    for f in client.get("/api/v1/restrictions").json()["features"]:
        client.delete(f"/api/v1/restrictions/{f['properties']['id']}", headers=OP)


def test_restriction_on_the_route_replans_the_planned_delivery_around_it(client, server, planned):
    before = planned["route"]
    assert clearance_m(before, server, ON_ROUTE, 150) < 0  # the restriction sits on today's route
    r = client.post("/api/v1/restrictions", json=feature(), headers=OP)
    assert r.status_code == 201, r.text
    rid = r.json()["properties"]["id"]
    assert r.headers["location"] == f"/api/v1/restrictions/{rid}"
    effect = r.json()["properties"]["effect"]
    assert planned["id"] in effect["replanned"] and effect["applied_in_s"] < 30
    d = client.get(f"/api/v1/deliveries/{planned['id']}", headers=OP).json()
    assert d["state"] == "planned"
    margin = server.service.fleet.current().operations.lateral_margin_m
    assert clearance_m(d["route"], server, ON_ROUTE, 150) >= margin - 1.0  # around it, with the lateral margin
    assert [e for e in d["events"] if e["kind"] == "replanned"]
    # the fence of a plan made now carries the restriction as an exclusion
    assert any(name.startswith("restriction") for name in d["plan"]["fence_zones"]), d["plan"]["fence_zones"]
    # public list shows it with its window and status
    listed = client.get("/api/v1/restrictions").json()["features"]
    assert [f["properties"]["status"] for f in listed if f["properties"]["id"] == rid] == ["in_force"]
    # lifted: the next re-plan takes the short way again
    r = client.delete(f"/api/v1/restrictions/{rid}", headers=OP)
    assert r.status_code == 200 and r.json()["properties"]["status"] == "lifted"
    assert planned["id"] in r.json()["properties"]["effect"]["replanned"]
    d = client.get(f"/api/v1/deliveries/{planned['id']}", headers=OP).json()
    assert clearance_m(d["route"], server, ON_ROUTE, 150) < 0
    assert_problem(client.delete(f"/api/v1/restrictions/{rid}", headers=OP), 409)


def test_restriction_only_counts_in_its_time_window(client, server, planned):
    tomorrow = datetime.now(timezone.utc) + timedelta(days=1)
    r = client.post("/api/v1/restrictions", json=feature(start=tomorrow, end=tomorrow + timedelta(hours=3)), headers=OP)
    assert r.status_code == 201, r.text
    assert r.json()["properties"]["status"] == "upcoming"
    assert planned["id"] not in r.json()["properties"]["effect"]["replanned"]
    d = client.get(f"/api/v1/deliveries/{planned['id']}", headers=OP).json()
    assert d["route"] == planned["route"]
    lift_all(client)


def test_restriction_over_the_zone_refuses_the_planned_delivery_with_the_reason(client, planned):
    r = client.post("/api/v1/restrictions", json=feature(lonlat=(CLINIC_EAST[1], CLINIC_EAST[0]), radius=300,
                                                         name="police operation"), headers=OP)
    assert r.status_code == 201, r.text
    assert planned["id"] in r.json()["properties"]["effect"]["refused"]
    d = client.get(f"/api/v1/deliveries/{planned['id']}", headers=OP).json()
    assert d["state"] == "refused"
    refused = [e for e in d["events"] if e["kind"] == "refused"][-1]
    assert "restriction" in refused["message"]
    lift_all(client)


@pytest.mark.parametrize("change,field", [
    (lambda f: f["properties"].pop("end"), "restriction.properties"),
    (lambda f: f["properties"].update(start="2026-11-30T10:00:00"), "restriction.properties.start"),
    (lambda f: f["properties"].update(end="2020-01-01T00:00:00Z"), "restriction.properties.end"),
    (lambda f: f["properties"].pop("radius_m"), "restriction.properties.radius_m"),
    (lambda f: f["properties"].update(ceiling_m=-5), "restriction.properties.ceiling_m"),
    (lambda f: f["properties"].update(colour="red"), "restriction.properties"),
    (lambda f: f.update(geometry={"type": "Point", "coordinates": [500, 0]}), "restriction.geometry"),
    (lambda f: f.update(type="FeatureCollection"), "restriction"),
])
def test_bad_restrictions_are_refused_naming_the_field_and_nothing_is_stored(client, change, field):
    before = client.get("/api/v1/restrictions", params={"include_past": True}).json()["features"]
    f = feature()
    change(f)
    p = assert_problem(client.post("/api/v1/restrictions", json=f, headers=OP), 422)
    assert any(e["field"].startswith(field) for e in p["errors"]), p
    assert client.get("/api/v1/restrictions", params={"include_past": True}).json()["features"] == before


def test_only_operators_add_or_lift(client):
    assert_problem(client.post("/api/v1/restrictions", json=feature()), 401)
    assert_problem(client.delete("/api/v1/restrictions/1"), 401)
