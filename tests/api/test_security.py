"""Security fixes (issue 9, item 6), each against the real server on loopback.

The live map is for operators, a zone outline is stored only in the validated form, the operator key
never reaches a log or stdout, and the database files are private to the service's user.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import secrets
import stat
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import websockets
from shapely.geometry import MultiPoint, Point

from tests.api.conftest import (CLINIC_EAST, OP, OUTSIDE, ROOT, assert_problem, calm_weather, free_port,
                                register, start_thread_server, zone_body)

# -- 1. the map's live layer is for operators ------------------------------------------------------


def _fly_one(server) -> None:
    server.service.live.update("sim-7", {"vehicle": "sim-7", "delivery": 4242, "phase": "en_route",
                                         "lat": -35.36, "lon": 149.17, "alt_rel_m": 60.0, "groundspeed_mps": 12.0,
                                         "battery_pct": 90.0, "eta_s": 100.0, "eta_to_zone_s": 40.0})


def test_anonymous_map_shows_no_vehicles_or_deliveries(server, client):
    _fly_one(server)
    try:
        r = client.get("/api/v1/map")
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["airspace"]["features"], "the public layer (airspace) is still served"
        assert not body.get("vehicles"), body.get("vehicles")
        assert not body.get("routes") and not body.get("zones")
        assert "4242" not in r.text and "sim-7" not in r.text and "eta" not in r.text
        op = client.get("/api/v1/map", headers=OP).json()
        assert [v["delivery"] for v in op["vehicles"]] == [4242]
    finally:
        server.service.live.vehicles.clear()


def test_map_with_a_wrong_key_is_refused_not_downgraded(server, client):
    _fly_one(server)
    try:
        body = assert_problem(client.get("/api/v1/map", headers={"X-API-Key": "not-the-key"}), 401)
        assert "4242" not in str(body)
    finally:
        server.service.live.vehicles.clear()


# -- 2. zone outlines: validated, stored in the validated form --------------------------------------

def _square(latlon, d=0.00004) -> list[list[float]]:
    lat, lon = latlon
    return [[lon - d, lat - d], [lon + d, lat - d], [lon + d, lat + d], [lon - d, lat + d], [lon - d, lat - d]]


def _outline_to(latlon, far_lonlat) -> list[list[float]]:
    """A convex outline around the centre reaching out to a far point (valid, contains the centre)."""
    hull = MultiPoint([tuple(p) for p in _square(latlon)[:-1]] + [far_lonlat]).convex_hull
    return [list(c) for c in hull.exterior.coords]


def _zones_total(client, h) -> int:
    return client.get("/api/v1/zones", headers=h).json()["total"]


@pytest.mark.parametrize("polygon, field, reason", [
    ({"type": "Polygon", "coordinates": [[p + [42.0] for p in _square(CLINIC_EAST)]]},
     "polygon.coordinates[0][0]", "[longitude, latitude]"),
    ({"type": "Polygon", "coordinates": [_square(CLINIC_EAST)], "crs": "urn:ogc:def:crs:EPSG::3857"},
     "polygon.crs", "unknown member"),
    ({"type": "Polygon", "coordinates": [_square(CLINIC_EAST)[:-1]]}, "polygon.coordinates[0]", "not closed"),
    ({"type": "Polygon", "coordinates": [[_square(CLINIC_EAST)[i] for i in (0, 2, 1, 3, 0)]]},
     "polygon.coordinates", "self-intersection"),
    ({"type": "Polygon", "coordinates": [
        [[CLINIC_EAST[1] + 0.0001 * __import__("math").cos(a / 300 * 6.283),
          CLINIC_EAST[0] + 0.0001 * __import__("math").sin(a / 300 * 6.283)] for a in range(300)]
        + [[CLINIC_EAST[1] + 0.0001, CLINIC_EAST[0]]]]},
     "polygon.coordinates[0]", "limit"),
])
def test_bad_zone_outline_is_refused_and_nothing_stored(client, polygon, field, reason):
    h = register(client, "outline")
    before = _zones_total(client, h)
    body = assert_problem(client.post("/api/v1/zones", json=zone_body(polygon=polygon), headers=h), 422)
    hits = [e for e in body["errors"] if e["field"] == field]
    assert hits and reason in hits[0]["reason"], body["errors"]
    assert _zones_total(client, h) == before


def test_outline_is_stored_validated_and_deliveries_to_it_work(client):
    h = register(client, "outline-ok")
    ring = [[lon + 0, lat] for lon, lat in _square(CLINIC_EAST)]
    r = client.post("/api/v1/zones", json=zone_body(polygon={"type": "Polygon", "coordinates": [ring]}), headers=h)
    assert r.status_code == 201, r.text
    poly = client.get(r.headers["Location"], headers=h).json()["polygon"]
    assert set(poly) == {"type", "coordinates"} and all(len(p) == 2 for p in poly["coordinates"][0])
    d = client.post("/api/v1/deliveries", json={"zone_id": r.json()["id"], "parcel": {"mass_kg": 1}}, headers=OP)
    assert d.status_code == 201, d.text


def test_outline_stored_by_an_older_version_answers_409_not_500(server, client):
    from groundctl.runtime.store import Zone
    h = register(client, "outline-legacy")
    zid = client.post("/api/v1/zones", json=zone_body(), headers=h).json()["id"]
    with server.service.store.session() as s:  # what the old code stored when sent 3-D positions
        s.get(Zone, zid).polygon = {"type": "Polygon", "coordinates": [[p + [42] for p in _square(CLINIC_EAST)]]}
    body = assert_problem(client.post("/api/v1/deliveries", json={"zone_id": zid, "parcel": {"mass_kg": 1}},
                                      headers=OP), 409)
    assert body["errors"][0]["field"] == "zone_id" and "outline" in body["detail"], body


def test_outline_reaching_far_from_the_centre_is_refused(client):
    h = register(client, "outline-far")
    far = (CLINIC_EAST[1] - 0.008, CLINIC_EAST[0] - 0.002)  # ~750 m west, still in the service area
    polygon = {"type": "Polygon", "coordinates": [_outline_to(CLINIC_EAST, far)]}
    body = assert_problem(client.post("/api/v1/zones", json=zone_body(polygon=polygon), headers=h), 422)
    assert any(e["field"] == "polygon" and "500 m" in e["reason"] for e in body["errors"]), body["errors"]


def test_outline_leaving_the_service_area_is_refused(client):
    h = register(client, "outline-out")
    polygon = {"type": "Polygon", "coordinates": [_outline_to(CLINIC_EAST, (OUTSIDE[1], OUTSIDE[0]))]}
    body = assert_problem(client.post("/api/v1/zones", json=zone_body(polygon=polygon), headers=h), 422)
    assert any(e["field"] == "polygon" and "service area" in e["reason"] for e in body["errors"]), body["errors"]


def test_outline_reaching_a_no_fly_zone_is_refused_though_the_centre_is_clear(server, client):
    _, airspace = server.service.airspace.current()
    ops = server.service.fleet.current().operations
    centre = Point(server.service.airspace.current()[1].frame.to_xy(CLINIC_EAST[1], CLINIC_EAST[0]))
    relevant = airspace.blocking(ops.cruise_alt_m + ops.vertical_margin_m, 0.0)
    i = min(relevant, key=lambda k: airspace.zones_xy[k].distance(centre))
    target = airspace.zones[i].geometry_ll.representative_point()
    h = register(client, "outline-nfz")
    assert client.post("/api/v1/zones", json=zone_body(), headers=h).status_code == 201  # the centre alone is fine
    polygon = {"type": "Polygon", "coordinates": [_outline_to(CLINIC_EAST, (target.x, target.y))]}
    before = _zones_total(client, h)
    body = assert_problem(client.post("/api/v1/zones", json=zone_body(polygon=polygon), headers=h), 422)
    assert any(e["field"] == "polygon" and airspace.zones[i].name in e["reason"] for e in body["errors"]), body
    assert _zones_total(client, h) == before


# -- 3. the operator key never reaches a log or stdout ---------------------------------------------

def _serve(data: Path, key: str | None, *extra: str) -> tuple[subprocess.Popen, str, Path]:
    port = free_port()
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("DATABASE_URL", None)
    env.pop("GROUNDCTL_OPERATOR_KEYS", None)
    if key is not None:
        env["GROUNDCTL_OPERATOR_KEYS"] = key
    out = data.parent / f"{data.name}-{time.time_ns()}.out"
    p = subprocess.Popen([sys.executable, "-m", "groundctl.faces.api", "--port", str(port), "--data", str(data),
                          "--no-sim", "--log-level", "debug", *extra],
                         cwd=ROOT, env=env, stdout=open(out, "wb"), stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert p.poll() is None, out.read_text()
        try:
            if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                return p, url, out
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    p.kill()
    raise RuntimeError("server did not come up")


def _stop(p: subprocess.Popen) -> None:
    p.terminate()
    try:
        p.wait(15)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait(5)


async def _ws(url: str, **kw) -> str:
    """'open' when the server accepted the live feed, else the close reason."""
    try:
        async with websockets.connect(url, open_timeout=10, **kw) as ws:
            await asyncio.wait_for(ws.recv(), 10)
            return "open"
    except websockets.exceptions.ConnectionClosed as e:
        return f"closed {e.rcvd.code if e.rcvd else None}"
    except websockets.exceptions.InvalidStatus as e:
        return f"refused {e.response.status_code}"


def test_configured_key_never_reaches_the_access_log_or_stdout(tmp_path):
    key = "sk-" + secrets.token_hex(16)
    p, url, out = _serve(tmp_path / "data", key)
    try:
        hk = {"X-API-Key": key}
        put_weather_key(url, key)
        assert httpx.get(url + "/api/v1/map", headers=hk).status_code == 200
        # a key in the URL is refused, and the attempt is logged without it
        for path in (f"/?key={key}", f"/api/v1/map?key={key}", f"/api/v1/kpis?x=1&key={key}"):
            r = httpx.get(url + path)
            assert r.status_code == 400, (path, r.status_code)
            assert r.json()["errors"][0]["field"] == "key"
        ws = url.replace("http", "ws") + "/api/v1/live/ws"
        assert asyncio.run(_ws(ws, subprotocols=[f"groundctl.key.{key}"])) == "open"
        assert asyncio.run(_ws(ws, additional_headers=hk)) == "open"
        assert asyncio.run(_ws(f"{ws}?key={key}")) != "open"
        assert httpx.get(url + "/api/v1/kpis", headers={"X-API-Key": key + "x"}).status_code == 401
    finally:
        _stop(p)
    text = out.read_text()
    assert "GET /api/v1/map" in text, "the access log is on: the test must see it"
    assert key not in text, [ln for ln in text.splitlines() if key in ln]


def put_weather_key(url: str, key: str) -> None:
    assert httpx.put(f"{url}/api/v1/weather", json=calm_weather(), headers={"X-API-Key": key}).status_code == 200


def test_generated_key_is_printed_once_and_stored_privately(tmp_path):
    data = tmp_path / "data"
    p, url, out = _serve(data, None)
    _stop(p)
    first = out.read_text()
    m = re.search(r"operator key .*?: (dev-[A-Za-z0-9_-]+)", first)
    assert m, first
    key = m.group(1)
    assert first.count(key) == 1, first
    stored = data / "operator-key"
    assert str(stored) in first
    assert stored.read_text().strip() == key
    assert stat.S_IMODE(os.stat(stored).st_mode) == 0o600
    p, url, out = _serve(data, None)
    try:
        assert httpx.get(url + "/api/v1/kpis", headers={"X-API-Key": key}).status_code == 200
    finally:
        _stop(p)
    again = out.read_text()
    assert key not in again and str(stored) in again, again


def test_app_without_keys_does_not_log_its_key(tmp_path, caplog):
    from groundctl.faces.api import Settings, create_app
    with caplog.at_level(logging.DEBUG):
        app = create_app(Settings(data_dir=tmp_path))
    app.state.service.store.close()
    assert app.state.operator_keys
    assert all(k not in caplog.text for k in app.state.operator_keys), caplog.text


# -- 4. the database is private to the service's user ----------------------------------------------

def test_database_files_are_private(tmp_path):
    old = os.umask(0o022)  # a typical login umask: files would come out 0644
    try:
        data = tmp_path / "fresh" / "data"
        srv = start_thread_server(data)
        try:
            with httpx.Client(base_url=srv.url, timeout=30) as c:
                h = register(c, "perm")
                assert c.post("/api/v1/zones", json=zone_body(), headers=h).status_code == 201
            files = {n: data / n for n in ("groundctl.db", "groundctl.db-wal", "groundctl.db-shm")}
            for n, f in files.items():
                assert f.exists(), n
                assert stat.S_IMODE(os.stat(f).st_mode) == 0o600, (n, oct(os.stat(f).st_mode))
            assert stat.S_IMODE(os.stat(data).st_mode) == 0o700, oct(os.stat(data).st_mode)
        finally:
            srv.stop()
    finally:
        os.umask(old)


def test_existing_world_readable_database_is_tightened(tmp_path):
    srv = start_thread_server(tmp_path, weather=False)
    srv.stop()
    for n in ("groundctl.db", "groundctl.db-wal", "groundctl.db-shm"):
        if (tmp_path / n).exists():
            os.chmod(tmp_path / n, 0o644)
    srv = start_thread_server(tmp_path)
    try:
        for n in ("groundctl.db", "groundctl.db-wal", "groundctl.db-shm"):
            f = tmp_path / n
            assert f.exists() and stat.S_IMODE(os.stat(f).st_mode) == 0o600, (n, f.exists() and oct(os.stat(f).st_mode))
    finally:
        srv.stop()
