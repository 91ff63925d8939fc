"""A delivery that really flies: HTTP API -> plan -> DeliveryFlight -> the built-in simulator over TCP."""

from __future__ import annotations

import json
import time

import httpx
import pytest

from tests.api.conftest import OP, register, start_thread_server, zone_body

pytest.importorskip("groundctl.runtime.fly")
launch = pytest.importorskip("sim.launch")

HUB = "-35.363261,149.165230,584,353"
SPEEDUP = "20"
# 1.1 km out: long enough for the monitor to see level flight with and without the parcel
FLIGHT_ZONE = (-35.3720, 149.1600)


def start_vehicle_sim(payload_kg: float = 1.0):
    return launch.start_sim(["--home", HUB, "--sysid", "1", "--speedup", SPEEDUP, "--no-ekf-s", "1",
                             "--payload-kg", str(payload_kg), "--battery-wh", "222", "--mass-kg", "3.4"])


def wait_state(c: httpx.Client, did: int, states: set[str], timeout: float, headers=OP) -> dict:
    end = time.monotonic() + timeout
    d = {}
    while time.monotonic() < end:
        d = c.get(f"/api/v1/deliveries/{did}", headers=headers).json()
        if d["state"] in states:
            return d
        time.sleep(0.2)
    raise AssertionError(f"delivery {did} stuck in {d.get('state')}: {json.dumps(d.get('events'), indent=1)[-3000:]}")


def use_sim(c: httpx.Client, url: str, vehicle: str = "dr-01") -> None:
    v = c.get(f"/api/v1/vehicles/{vehicle}", headers=OP).json()
    assert c.put(f"/api/v1/vehicles/{vehicle}", json={**v, "connection": url}, headers=OP).status_code == 200


@pytest.mark.slow
def test_dispatch_flies_to_landed_with_proof_of_delivery(tmp_path):
    srv = start_thread_server(tmp_path)
    sim = start_vehicle_sim()
    try:
        with httpx.Client(base_url=srv.url, timeout=30) as c:
            use_sim(c, sim.urls[0])
            h = register(c)
            zid = c.post("/api/v1/zones", json=zone_body(FLIGHT_ZONE, name="yard"), headers=h).json()["id"]
            d = c.post("/api/v1/deliveries", json={"zone_id": zid, "parcel": {"mass_kg": 1.0}}, headers=OP).json()
            assert d["state"] == "planned", d

            import websockets.sync.client as wsc
            ws = wsc.connect(srv.url.replace("http", "ws") + "/api/v1/live/ws", additional_headers=OP)

            r = c.post(f"/api/v1/deliveries/{d['id']}/dispatch", json={"vehicle": "dr-01"}, headers=OP)
            assert r.status_code == 200, r.text
            assert r.json()["state"] == "dispatched" and r.json()["eta_promised"]
            # a second dispatch of the same vehicle is refused while it flies
            d2 = c.post("/api/v1/deliveries", json={"zone_id": zid, "parcel": {"mass_kg": 1.0}}, headers=OP).json()
            assert c.post(f"/api/v1/deliveries/{d2['id']}/dispatch", json={"vehicle": "dr-01"},
                          headers=OP).status_code == 409

            mid = wait_state(c, d["id"], {"en_route", "at_zone", "lowering", "released", "returning", "landed",
                                          "failed"}, 120, headers=h)
            assert mid["state"] != "failed", mid
            if mid["state"] == "en_route":
                assert mid["eta"] is not None  # the recipient sees an ETA while it is on its way
            moving = []
            for _ in range(2000):  # frames queued since connecting come first; read until the vehicle shows
                f = json.loads(ws.recv(timeout=5))
                moving += [v for v in f.get("vehicles", []) if v["vehicle"] == "dr-01" and v["lat"] is not None]
                if len(moving) >= 3:
                    break
            ws.close()
            assert moving and moving[-1]["lat"] is not None and moving[-1]["delivery"] == d["id"]

            done = wait_state(c, d["id"], {"landed", "failed", "aborted"}, 240)
            kinds = [e["kind"] for e in done["events"]]
            assert done["state"] == "landed", kinds
            for k in ("planned", "dispatched", "armed", "taking_off", "en_route", "at_zone", "released", "returning",
                      "landed"):
                assert kinds.count(k) == 1, kinds
            # report arrives just after the landing event
            end = time.monotonic() + 20
            while done["outcome"] is None and time.monotonic() < end:
                time.sleep(0.2)
                done = c.get(f"/api/v1/deliveries/{d['id']}", headers=OP).json()
            assert done["outcome"] == "delivered", json.dumps(done["events"], indent=1)
            pod = done["proof_of_delivery"]
            assert pod["lat"] is not None and pod["distance_from_zone_centre_m"] < 10, pod
            mine = c.get(f"/api/v1/deliveries/{d['id']}", headers=h).json()
            assert mine["state"] == "landed" and mine["delivered"] and mine["proof_of_delivery"] == pod
            k = c.get("/api/v1/kpis", headers=OP).json()
            assert k["deliveries"] == 1 and k["delivered"] == 1 and k["first_attempt_success_rate"] == 1.0
            assert k["median_drop_distance_m"] is not None and k["on_time_rate"] is not None
            # the energy the verdict predicted against what the vehicle's battery monitor reported, per airframe
            frame = k["energy_by_airframe"][done["airframe"]] if "airframe" in done else next(iter(k["energy_by_airframe"].values()))
            assert frame["flights"] == 1 and frame["used_wh"] > 0 and frame["predicted_wh"] > 0
            assert frame["ratio"] == pytest.approx(frame["used_wh"] / frame["predicted_wh"], rel=1e-2)
            print("KPIs:", k)
            later = c.get("/api/v1/kpis", params={"since": "2100-01-01T00:00:00Z"}, headers=OP).json()
            assert later["deliveries"] == 0 and later["first_attempt_success_rate"] is None
    finally:
        sim.stop()
        srv.stop()


@pytest.mark.slow
def test_operator_abort_brings_the_parcel_home(tmp_path):
    srv = start_thread_server(tmp_path)
    sim = start_vehicle_sim()
    try:
        with httpx.Client(base_url=srv.url, timeout=30) as c:
            use_sim(c, sim.urls[0])
            h = register(c)
            zid = c.post("/api/v1/zones", json=zone_body(FLIGHT_ZONE), headers=h).json()["id"]
            did = c.post("/api/v1/deliveries", json={"zone_id": zid, "parcel": {"mass_kg": 1.0}}, headers=OP).json()["id"]
            assert c.post(f"/api/v1/deliveries/{did}/dispatch", json={}, headers=OP).status_code == 200
            assert wait_state(c, did, {"en_route", "failed", "landed"}, 120)["state"] == "en_route"
            r = c.post(f"/api/v1/deliveries/{did}/abort", json={"action": "rtl"}, headers=OP)
            assert r.status_code == 200 and r.json()["state"] == "aborted", r.text
            end = time.monotonic() + 180
            while time.monotonic() < end:
                d = c.get(f"/api/v1/deliveries/{did}", headers=OP).json()
                if d["outcome"]:
                    break
                time.sleep(0.3)
            kinds = [e["kind"] for e in d["events"]]
            assert d["state"] == "aborted" and d["outcome"] == "aborted", kinds
            assert kinds.count("aborted") == 1 and "landed" in kinds and "released" not in kinds
            assert not d["delivered"] and d["proof_of_delivery"] is None
            assert c.get(f"/api/v1/deliveries/{did}", headers=h).json()["state"] == "aborted"
            # the vehicle is free again
            d2 = c.post("/api/v1/deliveries", json={"zone_id": zid, "parcel": {"mass_kg": 1.0}}, headers=OP).json()
            assert c.post(f"/api/v1/deliveries/{d2['id']}/abort", json={}, headers=OP).json()["state"] == "aborted"
            k = c.get("/api/v1/kpis", headers=OP).json()
            assert k["aborted"] == 1 and k["delivered"] == 0 and k["first_attempt_success_rate"] == 0.0
    finally:
        sim.stop()
        srv.stop()
