"""Tracking links and changing one's mind, against the real server on loopback.

The link is a capability: it opens one delivery, and a wrong, tampered, revoked or expired token, or one
used on anything but its own delivery, gets a 404 that carries nothing of anyone's delivery."""

from __future__ import annotations

import os
import stat
from datetime import timedelta

import httpx
import pytest

from groundctl.faces.api import Settings, create_app
from groundctl.faces.api.secrecy import redact
from groundctl.runtime import tracking
from tests.api.conftest import (BACKENDS, CLINIC_EAST, FARM_NORTH, NEAR_HUB, OP, OP_KEY, Clock, ThreadServer,
                                assert_problem, backend_url, put_weather, register, zone_body)


PUBLIC_URL = "https://parcels.example.test"  # where recipients would reach the service (Settings.public_url)


def start_server(tmp, **settings) -> ThreadServer:
    srv = ThreadServer(create_app(Settings(data_dir=tmp, operator_keys=(OP_KEY,), public_url=PUBLIC_URL,
                                           **settings))).start()
    put_weather(srv.url)
    return srv


def link_of(srv: ThreadServer, c: httpx.Client, did: int, headers: dict) -> str:
    """The delivery's tracking link as its recipient reads it from the API, pointed at the test's port."""
    url = c.get(f"/api/v1/deliveries/{did}", headers=headers).json()["tracking_url"]
    assert url.startswith(PUBLIC_URL + "/t/"), url
    return srv.url + url[len(PUBLIC_URL):]


@pytest.fixture(scope="module")
def clock():
    return Clock()


@pytest.fixture(scope="module", params=BACKENDS)
def srv(request, tmp_path_factory, clock):
    """On SQLite and PostgreSQL: links, changes and their refusals are storage (locks, rollbacks)."""
    s = start_server(tmp_path_factory.mktemp("tracking"), clock=clock,
                     database_url=backend_url(request, request.param))
    yield s
    s.stop()


@pytest.fixture
def c(srv):
    with httpx.Client(base_url=srv.url, timeout=30) as client:
        yield client


def plan(c, headers, latlon=CLINIC_EAST, name="lawn", **zone) -> tuple[int, int]:
    zid = c.post("/api/v1/zones", json=zone_body(latlon, name=name, **zone), headers=headers).json()["id"]
    d = c.post("/api/v1/deliveries", json={"zone_id": zid, "parcel": {"mass_kg": 1.0}}, headers=OP).json()
    assert d["state"] == "planned", d
    return zid, d["id"]


def token_of(url: str) -> str:
    return url.rsplit("/", 1)[1]


def test_a_link_opens_its_own_delivery_and_nothing_else(srv, c, tmp_path):
    ha, hb = register(c, "alice"), register(c, "bob")
    lat, lon = CLINIC_EAST
    ring = [[lon - 2e-4, lat - 2e-4], [lon + 2e-4, lat - 2e-4], [lon + 2e-4, lat + 2e-4], [lon - 2e-4, lat + 2e-4],
            [lon - 2e-4, lat - 2e-4]]
    _, a = plan(c, ha, name="alice-lawn", instructions="alice-secret-instructions",
                polygon={"type": "Polygon", "coordinates": [ring]})
    bz, b = plan(c, hb, FARM_NORTH, name="bob-field")
    ua, ub = link_of(srv, c, a, ha), link_of(srv, c, b, hb)
    ta, tb = token_of(ua), token_of(ub)
    assert ta != tb and len(ta) >= 43  # 256 bits, urlsafe

    ja = c.get(f"/api/v1/track/{ta}").json()
    assert ja["delivery"] == a and ja["zone"]["name"] == "alice-lawn" and ja["drone"] is None
    assert ja["instructions"] == "alice-secret-instructions" and ja["can_change"] and not ja["can_confirm"]
    assert ja["zone"]["polygon"] == {"type": "Polygon", "coordinates": [ring]}  # GeoJSON, as the page draws it
    assert "bob" not in str(ja)
    page = c.get(f"/t/{ta}")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert page.headers["cache-control"] == "no-store" and page.headers["referrer-policy"] == "no-referrer"
    assert "/static/track.js" in page.text and "cdn" not in page.text.lower()
    for asset in ("track.js", "track.css"):
        assert c.get(f"/static/{asset}").status_code == 200

    # wrong, tampered, truncated, padded, overlong, someone's recipient token: 404 with nothing in it
    flip = ta[:-1] + ("A" if ta[-1] != "A" else "B")
    reg = c.post("/api/v1/recipients", json={"name": "mallory"}).json()["token"]
    for bad in (flip, ta[:-1], ta + "A", "x" * 43, "A" * 300, reg, "..%2F..%2Fetc", str(a)):
        for r in (c.get(f"/api/v1/track/{bad}"), c.get(f"/t/{bad}"),
                  c.patch(f"/api/v1/track/{bad}", json={"instructions": "x"}),
                  c.post(f"/api/v1/track/{bad}/confirmation", json={"status": "received"})):
            assert r.status_code == 404, (bad, r.status_code, r.text)
            assert "alice" not in r.text and "bob" not in r.text and "lawn" not in r.text
        assert c.get(f"/t/{bad}").status_code == 404
    # bob's link cannot reach alice's zone, and alice's link cannot move her parcel to bob's zone
    assert c.get(f"/api/v1/track/{tb}").json()["delivery"] == b
    r = c.patch(f"/api/v1/track/{ta}", json={"zone_id": bz})
    assert_problem(r, 404)
    assert c.get(f"/api/v1/track/{ta}").json()["zone"]["name"] == "alice-lawn"
    # nor can bob's bearer token act on alice's delivery
    assert_problem(c.patch(f"/api/v1/deliveries/{a}", json={"instructions": "x"}, headers=hb), 404)
    assert_problem(c.post(f"/api/v1/deliveries/{a}/confirmation", json={"status": "received"}, headers=hb), 404)

    # only the hash and a nonce are stored: the database alone does not open the page
    with srv.service.store.session() as s:
        from groundctl.runtime.handoff_tables import TrackingLink
        row = s.get(TrackingLink, a)
        assert ta not in (row.token_hash, row.nonce)
    secret = srv.service.settings.data_dir / tracking.SECRET_FILE
    assert stat.S_IMODE(os.stat(secret).st_mode) == 0o600
    assert ta not in redact(f'"GET /t/{ta} HTTP/1.1" 200') and ta not in redact(f"GET /api/v1/track/{ta}/confirmation")


def test_a_refused_delivery_has_no_link_and_a_rotated_one_stops_working(srv, c):
    h = register(c, "carol")
    zid = c.post("/api/v1/zones", json=zone_body(NEAR_HUB, name="pad"), headers=h).json()["id"]
    heavy = c.post("/api/v1/deliveries", json={"zone_id": zid, "parcel": {"mass_kg": 40.0}}, headers=OP).json()
    assert heavy["state"] == "refused"
    with srv.service.store.session() as s:
        assert tracking.tracking_url(s, heavy["id"], srv.url) is None
    _, did = plan(c, h, NEAR_HUB, name="pad2")
    old = token_of(link_of(srv, c, did, h))
    with srv.service.store.session() as s:
        new = token_of(tracking.rotate_link(s, did))
    assert new != old
    assert c.get(f"/api/v1/track/{old}").status_code == 404
    assert c.get(f"/api/v1/track/{new}").json()["delivery"] == did


def test_change_of_mind_before_dispatch_is_planned_again_and_checked(srv, c):
    h, other = register(c, "dave"), register(c, "erin")
    z1, did = plan(c, h, CLINIC_EAST, name="front", instructions="front door")
    z2 = c.post("/api/v1/zones", json=zone_body(FARM_NORTH, name="back field"), headers=h).json()["id"]
    foreign = c.post("/api/v1/zones", json=zone_body(NEAR_HUB, name="erin pad"), headers=other).json()["id"]
    token = token_of(link_of(srv, c, did, h))
    before = c.get(f"/api/v1/deliveries/{did}", headers=OP).json()
    assert {z["name"] for z in c.get(f"/api/v1/track/{token}").json()["zones"]} == {"front", "back field"}

    # from the page (capability link): another of one's own zones; planned again, route and plan follow
    r = c.patch(f"/api/v1/track/{token}", json={"zone_id": z2})
    assert r.status_code == 200, r.text
    assert r.json()["zone"]["name"] == "back field" and r.json()["state"] == "planned"
    after = c.get(f"/api/v1/deliveries/{did}", headers=OP).json()
    assert after["zone_id"] == z2 and after["route"] != before["route"] and after["verdict"]["go"]
    assert after["route"][-1] == pytest.approx([FARM_NORTH[1], FARM_NORTH[0]])
    assert after["plan"]["distance_out_m"] != before["plan"]["distance_out_m"]
    # the new zone's own instructions come with it (it had none)
    assert after["zone"]["instructions"] is None
    # from the API (bearer token): new instructions only; the plan stays
    r = c.patch(f"/api/v1/deliveries/{did}", json={"instructions": "leave it by the shed"}, headers=h)
    assert r.status_code == 200, r.text
    again = c.get(f"/api/v1/deliveries/{did}", headers=OP).json()
    assert again["zone"]["instructions"] == "leave it by the shed" and again["route"] == after["route"]
    kinds = [(e["kind"], e["data"].get("via")) for e in again["events"]]
    assert ("zone_changed", "page") in kinds and ("instructions_changed", "api") in kinds
    zc = next(e for e in again["events"] if e["kind"] == "zone_changed")
    assert zc["data"]["from_zone_id"] == z1 and zc["data"]["to_zone_id"] == z2

    # another recipient's zone is a missing one; a bad body names its field
    assert_problem(c.patch(f"/api/v1/deliveries/{did}", json={"zone_id": foreign}, headers=h), 404)
    assert_problem(c.patch(f"/api/v1/deliveries/{did}", json={}, headers=h), 422)
    body = assert_problem(c.patch(f"/api/v1/track/{token}", json={"instructions": "x" * 2001}), 422)
    assert body["errors"][0]["field"] == "instructions"

    # re-checked: in a gale the move is refused with every reason and the delivery stays as it was
    gale = {"valid_time": srv.service.settings.clock().isoformat(), "source": "test: gale",
            "wind": [{"height_m": 10, "speed_mps": 25.0, "dir_deg": 200}], "gust_mps": 32.0, "precip_mmph": 0.0,
            "visibility_m": 10000, "temp_c": 18}
    assert c.put("/api/v1/weather", json=gale, headers=OP).status_code == 200
    try:
        body = assert_problem(c.patch(f"/api/v1/track/{token}", json={"zone_id": z1}), 422)
        assert any(e["field"].startswith("check.") for e in body["errors"]), body
        assert c.get(f"/api/v1/deliveries/{did}", headers=OP).json()["zone_id"] == z2
    finally:
        put_weather(srv.url)

    # cancelled: nothing more to change, and the reason says so
    assert c.post(f"/api/v1/deliveries/{did}/abort", json={}, headers=OP).json()["state"] == "aborted"
    body = assert_problem(c.patch(f"/api/v1/track/{token}", json={"instructions": "x"}), 409)
    assert "aborted" in body["detail"]


def test_links_expire_days_after_the_delivery_ended(srv, c, clock):
    """Runs last in this module: it moves the service's clock."""
    h = register(c, "frank")
    z_old, ended = plan(c, h, CLINIC_EAST, name="old")
    _, live = plan(c, h, FARM_NORTH, name="new")
    t_ended, t_live = token_of(link_of(srv, c, ended, h)), token_of(link_of(srv, c, live, h))
    assert c.post(f"/api/v1/deliveries/{ended}/abort", json={}, headers=OP).json()["state"] == "aborted"
    j = c.get(f"/api/v1/track/{t_ended}").json()
    assert j["state"] == "aborted" and j["link_expires_at"] is not None and not j["can_change"]
    days = tracking.config_for(srv.service.store.engine).link_days
    try:
        clock.offset = timedelta(days=days) - timedelta(minutes=1)
        assert c.get(f"/api/v1/track/{t_ended}").status_code == 200
        clock.offset = timedelta(days=days) + timedelta(minutes=1)
        for r in (c.get(f"/api/v1/track/{t_ended}"), c.get(f"/t/{t_ended}")):
            assert r.status_code == 404 and "old" not in r.text
        # a delivery that has not ended keeps its link, however long it waits
        assert c.get(f"/api/v1/track/{t_live}").json()["delivery"] == live
    finally:
        clock.offset = timedelta()


def test_writes_through_a_link_are_rate_limited_per_link(tmp_path):
    srv = start_server(tmp_path, rate_recipient_writes="3/minute")
    try:
        with httpx.Client(base_url=srv.url, timeout=30) as c:
            h = register(c, "ivan")
            _, a = plan(c, h, name="a")
            _, b = plan(c, h, FARM_NORTH, name="b")
            ta, tb = token_of(link_of(srv, c, a, h)), token_of(link_of(srv, c, b, h))
            for i in range(3):
                assert c.patch(f"/api/v1/track/{ta}", json={"instructions": f"try {i}"}).status_code == 200
            r = c.patch(f"/api/v1/track/{ta}", json={"instructions": "one too many"})
            assert_problem(r, 429)
            assert int(r.headers["retry-after"]) >= 1
            # the budget is the link's: another link, and reading, go on
            assert c.patch(f"/api/v1/track/{tb}", json={"instructions": "fine"}).status_code == 200
            assert c.get(f"/api/v1/track/{ta}").json()["instructions"] == "try 2"
    finally:
        srv.stop()


def test_settings_from_the_environment_name_a_bad_variable(monkeypatch):
    from groundctl.errors import InputError

    monkeypatch.setenv("GROUNDCTL_PUBLIC_URL", "https://parcels.example.org")
    monkeypatch.setenv("GROUNDCTL_TRACKING_LINK_DAYS", "3.5")
    monkeypatch.setenv("GROUNDCTL_UNCONFIRMED_AFTER_S", "7200")
    s = Settings.from_env()
    assert (s.public_url, s.tracking_link_days, s.unconfirmed_after_s) == ("https://parcels.example.org", 3.5, 7200.0)
    for bad in ("-1", "0", "soon", "inf"):
        monkeypatch.setenv("GROUNDCTL_TRACKING_LINK_DAYS", bad)
        with pytest.raises(InputError) as e:
            Settings.from_env()
        assert e.value.field == "GROUNDCTL_TRACKING_LINK_DAYS"
