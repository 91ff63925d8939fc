"""No two of our drones in the same sky, checked on the simulator: deliveries dispatched from one hub are
deconflicted (a later departure while the hub is busy), and the positions the simulated vehicles
reported never come within a corridor of each other at the same moment while both fly."""

from __future__ import annotations

import math
import threading
import time

import httpx
import pytest

from tests.api.conftest import CLINIC_EAST, OP, register, start_thread_server, zone_body
from tests.api.test_flight import HUB, use_sim, wait_state

launch = pytest.importorskip("sim.launch")
SPEEDUP = 20
NEAR_ZONE = (-35.3560, 149.1700)  # 0.9 km north-east of the hub: a short flight


def sim(sysid: int):
    # one simulator per vehicle, like two drones on two pads at one hub
    return launch.start_sim(["--home", HUB, "--sysid", str(sysid), "--speedup", str(SPEEDUP), "--no-ekf-s", "1",
                             "--payload-kg", "1.0", "--battery-wh", "222", "--mass-kg", "3.4"])


def dispatch(c, h, latlon, name, vehicle):
    zid = c.post("/api/v1/zones", json=zone_body(latlon, name=name), headers=h).json()["id"]
    d = c.post("/api/v1/deliveries", json={"zone_id": zid, "parcel": {"mass_kg": 1.0}}, headers=OP).json()
    assert d["state"] == "planned", d
    r = c.post(f"/api/v1/deliveries/{d['id']}/dispatch", json={"vehicle": vehicle}, headers=OP)
    assert r.status_code == 200, r.text
    dec = {e["kind"]: e for e in r.json()["events"]}["dispatched"]["data"]["deconfliction"]
    return d["id"], dec


def test_flights_from_one_hub_are_deconflicted_and_never_share_sky(tmp_path):
    # the simulators fly 20x faster than the wall clock: so must the sky they reserve
    srv = start_thread_server(tmp_path, intent_time_scale=1.0 / SPEEDUP)
    sims = [sim(1), sim(2)]
    track: list[tuple[float, str, float, float, float]] = []
    stop = threading.Event()

    def sample():  # what the vehicles reported, as the live feed holds it, against one wall clock
        while not stop.is_set():
            for v in list(srv.service.live.vehicles.values()):
                if v.get("lat") is not None and v.get("alt_rel_m") is not None:
                    track.append((time.monotonic(), v["vehicle"], v["lat"], v["lon"], v["alt_rel_m"]))
            time.sleep(0.05)

    t = threading.Thread(target=sample, daemon=True)
    t.start()
    try:
        with httpx.Client(base_url=srv.url, timeout=60) as c:
            use_sim(c, sims[0].urls[0], "dr-01")
            use_sim(c, sims[1].urls[0], "dr-02")
            h = register(c)
            # two at once: both would climb out of the hub together, so the second waits
            far, _ = dispatch(c, h, CLINIC_EAST, "clinic", "dr-01")
            near, dec = dispatch(c, h, NEAR_ZONE, "roof", "dr-02")
            assert dec and dec["ok"] and dec["delay_s"] > 0 and any("delivery" in x for x in dec["conflicts"]), dec
            wait_state(c, near, {"landed"}, timeout=400)
            # the far flight is still out: a short one can go and come back inside its time, once its
            # intent is dated from its real take-off
            assert c.get(f"/api/v1/deliveries/{far}", headers=OP).json()["state"] not in ("landed", "failed")
            again, dec2 = dispatch(c, h, NEAR_ZONE, "roof 2", "dr-02")
            delay2 = dec2["delay_s"] if dec2 else 0.0
            for did in (far, again):
                done = wait_state(c, did, {"landed", "failed", "aborted"}, timeout=400)
                assert done["state"] == "landed", done["events"][-3:]
    finally:
        stop.set()
        t.join(2)
        for s in sims:
            s.stop()
        srv.stop()
    a = [s for s in track if s[1] == "dr-01" and s[4] > 2]
    b = [s for s in track if s[1] == "dr-02" and s[4] > 2]
    assert len(a) > 50 and len(b) > 50
    closest, together = math.inf, 0
    j = 0
    for ta, _, la, lo, al in a:
        while j < len(b) and b[j][0] < ta - 0.25:
            j += 1
        k = j
        while k < len(b) and b[k][0] <= ta + 0.25:  # within 0.25 s of wall time: 5 s of flight
            _, _, lb, lob, alb = b[k]
            together += 1
            if abs(al - alb) < 10:
                dx = (lo - lob) * 111_320 * math.cos(math.radians(la))
                closest = min(closest, math.hypot(dx, (la - lb) * 110_540))
            k += 1
    print(f"\nsecond departure put back {dec['delay_s']:.1f} s of wall time ({dec['delay_s'] * SPEEDUP:.0f} s of "
          f"flight); the next short one {delay2:.1f} s; {together} moments with both in the air; closest approach "
          f"within 10 m of height {closest:.0f} m")
    assert together > 20  # the two really flew at the same time
    assert closest > 40  # the corridor's half-width: two intents never share a volume of sky
