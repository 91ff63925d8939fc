"""Recipients' tokens (rotate, revoke), erasure with anonymised delivery records, quotas, operator key
rotation, and calm air assumed only for simulated vehicles: against the real server on loopback, flights
on the built-in simulator."""

from __future__ import annotations

import sqlite3
import threading

import httpx
import pytest

from groundctl.faces.api import Settings, create_app
from tests.api.conftest import (BACKENDS, CLINIC_EAST, FARM_NORTH, OP, ThreadServer, assert_problem, backend_url,
                                register, start_thread_server, zone_body)

launch = pytest.importorskip("sim.launch")


@pytest.fixture(scope="module", params=BACKENDS)
def srv(request, tmp_path_factory):
    s = start_thread_server(tmp_path_factory.mktemp("recipients"), max_zones_per_recipient=2,
                            database_url=backend_url(request, request.param))
    yield s
    s.stop()


@pytest.fixture
def c(srv):
    with httpx.Client(base_url=srv.url, timeout=30) as client:
        yield client


def bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


# -- tokens -------------------------------------------------------------------------------------------

def test_rotation_returns_a_new_token_once_and_the_old_one_stops_at_once(c):
    old = c.post("/api/v1/recipients", json={"name": "rotator"}).json()["token"]
    r = c.post("/api/v1/recipients/me/token", headers=bearer(old))
    assert r.status_code == 200, r.text
    new = r.json()["token"]
    assert new != old and new.startswith("gct_")
    assert r.headers["cache-control"] == "no-store"
    assert_problem(c.get("/api/v1/me", headers=bearer(old)), 401)
    assert c.get("/api/v1/me", headers=bearer(new)).json()["name"] == "rotator"
    assert_problem(c.post("/api/v1/recipients/me/token", headers=bearer(old)), 401)  # no second new token
    # the new token is never shown again
    assert new not in c.get("/api/v1/me", headers=bearer(new)).text


def test_concurrent_rotations_of_one_token_leave_one_winner(c, srv):
    old = c.post("/api/v1/recipients", json={"name": "racer"}).json()["token"]
    results: list[httpx.Response] = []
    go = threading.Barrier(4)

    def rotate():
        with httpx.Client(base_url=srv.url, timeout=30) as cc:
            go.wait()
            results.append(cc.post("/api/v1/recipients/me/token", headers=bearer(old)))

    threads = [threading.Thread(target=rotate) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    won = [r.json()["token"] for r in results if r.status_code == 200]
    assert len(won) == 1, [(r.status_code, r.text[:100]) for r in results]
    assert all(r.status_code in (401, 409) for r in results if r.status_code != 200)
    assert c.get("/api/v1/me", headers=bearer(won[0])).status_code == 200


def test_revocation_by_the_recipient_and_by_an_operator(c):
    a = c.post("/api/v1/recipients", json={"name": "leaver"}).json()["token"]
    assert c.delete("/api/v1/recipients/me/token", headers=bearer(a)).status_code == 204
    assert_problem(c.get("/api/v1/me", headers=bearer(a)), 401)

    reg = c.post("/api/v1/recipients", json={"name": "leaked"}).json()
    b, rid = reg["token"], reg["recipient"]["id"]
    assert_problem(c.delete(f"/api/v1/operator/recipients/{rid}/token", headers=bearer(b)), 401)  # not theirs
    assert c.delete(f"/api/v1/operator/recipients/{rid}/token", headers=OP).status_code == 204
    assert_problem(c.get("/api/v1/zones", headers=bearer(b)), 401)
    assert_problem(c.delete("/api/v1/operator/recipients/999999/token", headers=OP), 404)


# -- quotas --------------------------------------------------------------------------------------------

def test_zone_quota_per_recipient(c):
    h, other = register(c, "quota"), register(c, "other")
    assert c.post("/api/v1/zones", json=zone_body(CLINIC_EAST, name="a"), headers=h).status_code == 201
    z2 = c.post("/api/v1/zones", json=zone_body(FARM_NORTH, name="b"), headers=h)
    assert z2.status_code == 201
    body = assert_problem(c.post("/api/v1/zones", json=zone_body(CLINIC_EAST, name="c"), headers=h), 409)
    assert body["errors"][0]["field"] == "zones" and "at most 2" in body["errors"][0]["reason"]
    assert c.get("/api/v1/zones", headers=h).json()["total"] == 2  # the refused zone stored nothing
    assert c.post("/api/v1/zones", json=zone_body(name="x"), headers=other).status_code == 201
    assert c.delete(f"/api/v1/zones/{z2.json()['id']}", headers=h).status_code == 204
    assert c.post("/api/v1/zones", json=zone_body(FARM_NORTH, name="c"), headers=h).status_code == 201


# -- operator keys -------------------------------------------------------------------------------------

def test_operator_keys_rotate_through_configuration(tmp_path):
    """Several keys are valid at once; a restart without the old one refuses it."""
    old, new = "operator-key-2025", "operator-key-2026"
    for keys, accepted, refused in (((old, new), (old, new), ()), ((new,), (new,), (old,))):
        srv = ThreadServer(create_app(Settings(data_dir=tmp_path, operator_keys=keys))).start()
        try:
            for k in accepted:
                assert httpx.get(srv.url + "/api/v1/kpis", headers={"X-API-Key": k}).status_code == 200
            for k in refused:
                assert_problem(httpx.get(srv.url + "/api/v1/kpis", headers={"X-API-Key": k}), 401)
        finally:
            srv.stop()


# -- erasure -------------------------------------------------------------------------------------------

HUB = "-35.363261,149.165230,584,353"
FLIGHT_ZONE = (-35.3720, 149.1600)  # 1.1 km out, as in test_flight
NAME, CONTACT, INSTRUCTIONS = "Ada Quintessa Lovelace", "+61 400 123 987", "behind the blue shed, gate code 4471"
EMAIL, HOOK = "ada.quintessa@example.org", "https://hooks.example.org/ada-quintessa"


def database_text(data_dir) -> str:
    """Every value of every row of every table, as text: what a copy of the database would give away."""
    con = sqlite3.connect(f"file:{data_dir / 'groundctl.db'}?mode=ro", uri=True)
    try:
        out = []
        for (table,) in con.execute("SELECT name FROM sqlite_master WHERE type='table'"):
            for row in con.execute(f'SELECT * FROM "{table}"'):
                out.append(f"{table}: " + " ".join(map(str, row)))
        return "\n".join(out)
    finally:
        con.close()


def wait_state(c, did, states, timeout=120.0) -> dict:
    import time  # noqa: PLC0415

    end = time.monotonic() + timeout
    d = {}
    while time.monotonic() < end:
        d = c.get(f"/api/v1/deliveries/{did}", headers=OP).json()
        if d["state"] in states and d.get("outcome"):  # the flight's report is written: it has ended
            return d
        time.sleep(0.2)
    raise AssertionError(f"delivery {did} stuck in {d.get('state')}")


def wait_airborne(c, did, timeout=180.0) -> None:
    import time  # noqa: PLC0415

    # any airborne state before the parcel leaves: at speed-up 20 the outbound leg lasts a few wall
    # seconds, which a loaded machine's polling can miss if only en_route and at_zone count
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if c.get(f"/api/v1/deliveries/{did}", headers=OP).json()["state"] in ("taking_off", "en_route", "at_zone",
                                                                                 "lowering"):
            return
        time.sleep(0.1)
    raise AssertionError(f"delivery {did} never got airborne")


def test_erasure_refused_in_flight_then_erases_personal_data_and_keeps_records(tmp_path):
    srv = start_thread_server(tmp_path)
    sim = launch.start_sim(["--home", HUB, "--sysid", "1", "--speedup", "20", "--no-ekf-s", "1",
                            "--payload-kg", "1.0", "--battery-wh", "222", "--mass-kg", "3.4"])
    try:
        with httpx.Client(base_url=srv.url, timeout=30) as c:
            v = c.get("/api/v1/vehicles/dr-01", headers=OP).json()
            assert c.put("/api/v1/vehicles/dr-01", json={**v, "connection": sim.urls[0]}, headers=OP).status_code == 200
            reg = c.post("/api/v1/recipients", json={"name": NAME, "contact": CONTACT}).json()
            h, rid = bearer(reg["token"]), reg["recipient"]["id"]
            zid = c.post("/api/v1/zones", json=zone_body(FLIGHT_ZONE, name=f"{NAME}'s yard", instructions=INSTRUCTIONS,
                                                        contact=CONTACT), headers=h).json()["id"]
            hook = c.post("/api/v1/recipients/me/webhooks", json={"url": HOOK}, headers=h)
            assert hook.status_code == 201, hook.text
            assert c.put("/api/v1/recipients/me/notifications", json={"email_enabled": True, "email": EMAIL},
                         headers=h).status_code == 200
            flown = c.post("/api/v1/deliveries", json={"zone_id": zid, "parcel": {"mass_kg": 1.0}}, headers=OP).json()
            waiting = c.post("/api/v1/deliveries", json={"zone_id": zid, "parcel": {"mass_kg": 0.5}}, headers=OP).json()
            assert flown["state"] == waiting["state"] == "planned", (flown, waiting)
            r = c.post(f"/api/v1/deliveries/{flown['id']}/dispatch", json={"vehicle": "dr-01"}, headers=OP)
            assert r.status_code == 200, r.text

            # in flight (airborne): refused, with the reason, and nothing changed
            wait_airborne(c, flown["id"])
            body = assert_problem(c.delete("/api/v1/recipients/me", headers=h), 409)
            assert body["errors"][0]["field"] == "deliveries" and str(flown["id"]) in body["detail"]
            assert_problem(c.delete(f"/api/v1/operator/recipients/{rid}", headers=OP), 409)
            assert c.get("/api/v1/me", headers=h).json()["name"] == NAME

            # land where it is: the flight ends sooner than a whole delivery, and its record is just as real
            assert c.post(f"/api/v1/deliveries/{flown['id']}/abort", json={"action": "land"}, headers=OP).status_code == 200
            done = wait_state(c, flown["id"], {"landed", "failed", "aborted", "crashed", "lost"})
            assert done["state"] == "aborted", done["state"]
            kpis_before = c.get("/api/v1/kpis", headers=OP).json()

            r = c.delete("/api/v1/recipients/me", headers=h)
            assert r.status_code == 200, r.text
            assert r.json()["deliveries_kept"] == 2 and r.json()["deliveries_cancelled"] == 1
            assert_problem(c.get("/api/v1/me", headers=h), 401)
            assert_problem(c.delete(f"/api/v1/operator/recipients/{rid}", headers=OP), 404)  # already erased

            # the records stay, anonymised, and still count
            d = c.get(f"/api/v1/deliveries/{flown['id']}", headers=OP).json()
            assert d["state"] == "aborted" and d["outcome"] == done["outcome"] and d["zone_name"] == "erased"
            assert c.get(f"/api/v1/deliveries/{waiting['id']}", headers=OP).json()["state"] == "aborted"
            kpis_after = c.get("/api/v1/kpis", headers=OP).json()
            for k, val in kpis_before.items():
                if isinstance(val, (int, float)) and "cancel" not in k and "abort" not in k:
                    assert kpis_after[k] == val, (k, val, kpis_after[k])
            zones = c.get("/api/v1/operator/zones", headers=OP).json()["items"]
            assert zid not in [z["id"] for z in zones]
            # a new recipient never inherits the erased one's history
            nh = register(c, "next")
            assert c.get("/api/v1/deliveries", headers=nh).json()["total"] == 0
    finally:
        sim.stop()
        srv.stop()
    text = database_text(tmp_path)
    for secret in (NAME, CONTACT, INSTRUCTIONS, EMAIL, HOOK, "Quintessa", "4471"):
        assert secret not in text, (f"{secret!r} is still in the database",
                                    [line[max(0, line.index(secret) - 200):line.index(secret) + 50] for line in text.splitlines() if secret in line])
    assert "taking_off" in text  # the flight's events are there


def test_operator_erases_a_recipient(c):
    reg = c.post("/api/v1/recipients", json={"name": "Bob Operatorerased", "contact": "bob@example.org"}).json()
    h, rid = bearer(reg["token"]), reg["recipient"]["id"]
    assert c.post("/api/v1/zones", json=zone_body(name="bob's"), headers=h).status_code == 201
    assert_problem(c.delete(f"/api/v1/operator/recipients/{rid}", headers=h), 401)  # a recipient is no operator
    r = c.delete(f"/api/v1/operator/recipients/{rid}", headers=OP)
    assert r.status_code == 200 and r.json()["recipient_id"] == rid
    assert_problem(c.get("/api/v1/zones", headers=h), 401)
    assert "Operatorerased" not in c.get("/api/v1/operator/zones", headers=OP).text


# -- calm air only for simulated vehicles --------------------------------------------------------------

def test_assumed_calm_air_never_clears_a_vehicle_that_is_not_simulated(tmp_path):
    """No weather set, assume_calm on (serve's demo default): a vehicle on an operator's own link is refused
    for want of weather; the same vehicle as serve's simulator is not refused for weather."""
    srv = start_thread_server(tmp_path, weather=False, assume_calm=True)
    sim = launch.start_sim(["--home", HUB, "--sysid", "1", "--speedup", "20", "--no-ekf-s", "1",
                            "--payload-kg", "1.0", "--battery-wh", "222", "--mass-kg", "3.4"])
    try:
        with httpx.Client(base_url=srv.url, timeout=30) as c:
            v = c.get("/api/v1/vehicles/dr-01", headers=OP).json()
            # a real aircraft's link (an operator's): here the simulator's port, so only the weather decides
            assert c.put("/api/v1/vehicles/dr-01", json={**v, "connection": sim.urls[0]}, headers=OP).status_code == 200
            h = register(c, "calm")
            zid = c.post("/api/v1/zones", json=zone_body(FLIGHT_ZONE, name="yard"), headers=h).json()["id"]
            d = c.post("/api/v1/deliveries", json={"zone_id": zid, "parcel": {"mass_kg": 1.0}}, headers=OP).json()
            r = c.post(f"/api/v1/deliveries/{d['id']}/dispatch", json={"vehicle": "dr-01"}, headers=OP)
            assert r.status_code >= 400, r.text
            assert "weather" in r.text.lower(), r.text
            assert c.get(f"/api/v1/deliveries/{d['id']}", headers=OP).json()["state"] == "planned"

            srv.service.fleet.use_simulator("dr-01", sim.urls[0])  # what serve does for its own simulators
            r = c.post(f"/api/v1/deliveries/{d['id']}/dispatch", json={"vehicle": "dr-01"}, headers=OP)
            assert r.status_code == 200, r.text
            c.post(f"/api/v1/deliveries/{d['id']}/abort", json={"action": "land"}, headers=OP)
    finally:
        sim.stop()
        srv.stop()
