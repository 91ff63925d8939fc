"""API processes and flight workers on PostgreSQL, as separate real processes, flying the built-in
simulator: two API processes, two `groundctl worker`s, three deliveries; one worker is killed with
SIGKILL mid-flight. Every delivery completes, every event is stored exactly once, the killed worker's
flights are taken over after its lease runs out; the takeover time is printed (wall and vehicle time).
An abort sent to one API process reaches the worker flying the delivery through the database.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, text

from tests.api.conftest import OP, OP_KEY, ProcServer, register, zone_body

launch = pytest.importorskip("sim.launch")

ROOT = Path(__file__).resolve().parents[2]
SPEEDUP = "5"
LEASE_S = 10.0  # the default: the figure printed is the one a deployment gets
# Three hubs, a flight from each: flights from one hub share its climb and are deconflicted by delaying all
# but one (core/intents.py); from three hubs they fly at once. (name, hub lat, lon, zone lat, lon)
SITES = [("cmac", -35.363261, 149.165230, -35.3690, 149.1610),
         ("west", -35.3640, 149.1500, -35.3600, 149.1440),
         ("south", -35.3770, 149.1620, -35.3800, 149.1560)]
ELEVATION_M = 584
# every process of one deployment signs tracking links with one secret (else each data directory has its own)
TRACKING_SECRET = "takeover-test-" + "x" * 32
ONCE = ("planned", "dispatched", "uploaded", "armed", "taking_off", "en_route", "at_zone", "released", "returning",
        "landed", "report")


class Worker:
    def __init__(self, name: str, url: str, log_dir: Path) -> None:
        env = {**os.environ, "DATABASE_URL": url, "GROUNDCTL_OPERATOR_KEYS": OP_KEY, "PYTHONUNBUFFERED": "1",
               "GROUNDCTL_TRACKING_SECRET": TRACKING_SECRET}
        self.name = name
        self.log = log_dir / f"worker-{name}.log"
        self.proc = subprocess.Popen([sys.executable, "-m", "groundctl", "worker", "--id", name, "--lease-s",
                                      str(LEASE_S), "--data-dir", str(log_dir)],
                                     cwd=ROOT, env=env, stdout=open(self.log, "wb"), stderr=subprocess.STDOUT)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()


class LiveFeed:
    """The live WebSocket of one API process, read in a thread: (wall monotonic, message) pairs."""

    def __init__(self, url: str) -> None:
        import websockets.sync.client as wsc

        self.ws = wsc.connect(url.replace("http", "ws") + "/api/v1/live/ws", additional_headers=OP)
        self.ws.__enter__()  # closed in close()
        self.messages: list[tuple[float, dict]] = []
        self._t = threading.Thread(target=self._read, daemon=True)
        self._t.start()

    def _read(self) -> None:
        try:
            for raw in self.ws:
                self.messages.append((time.monotonic(), json.loads(raw)))
        except Exception:  # noqa: BLE001 - closed at the end of the test
            pass

    def positions(self, delivery: int) -> list[tuple[float, dict]]:
        out = []
        for t, m in list(self.messages):
            for v in m.get("vehicles", []) if m.get("type") == "snapshot" else []:
                if v.get("delivery") == delivery and v.get("vehicle_boot_ms") is not None:
                    out.append((t, v))
        return out

    def close(self) -> None:
        self.ws.close()


def rows(url: str, sql: str, **params) -> list[tuple]:
    engine = create_engine(url)
    try:
        with engine.connect() as c:
            return [tuple(r) for r in c.execute(text(sql), params)]
    finally:
        engine.dispose()


def wait_for(what, timeout: float, every: float = 0.3):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        got = what()
        if got:
            return got
        time.sleep(every)
    return what()


def start_sims() -> list:
    return [launch.start_sim(["--home", f"{lat},{lon},{ELEVATION_M},0", "--sysid", str(i), "--speedup", SPEEDUP,
                              "--no-ekf-s", "1", "--payload-kg", "1.0", "--battery-wh", "222", "--mass-kg", "3.4"])
            for i, (_, lat, lon, _, _) in enumerate(SITES, start=1)]


def setup_hubs(c: httpx.Client, sims: list) -> None:
    """A hub per site with a quad (dr-01..03) on its simulator."""
    v1 = c.get("/api/v1/vehicles/dr-01", headers=OP).json()
    for i, ((hub, lat, lon, _, _), sim) in enumerate(zip(SITES, sims), start=1):
        r = c.put(f"/api/v1/hubs/{hub}", json={"name": hub, "lat": lat, "lon": lon, "elevation_m": ELEVATION_M},
                  headers=OP)
        assert r.status_code in (200, 201), r.text
        body = {**v1, "name": f"dr-0{i}", "hub": hub, "sysid": i, "connection": sim.urls[0]}
        r = c.put(f"/api/v1/vehicles/dr-0{i}", json=body, headers=OP)
        assert r.status_code in (200, 201), r.text


def plan_deliveries(c: httpx.Client) -> list[int]:
    """A zone near each hub and a planned delivery to it from that hub."""
    h = register(c)
    ids = []
    for hub, _, _, zlat, zlon in SITES:
        r = c.post("/api/v1/zones", json=zone_body((zlat, zlon), name=f"zone {hub}"), headers=h)
        assert r.status_code == 201, r.text
        d = c.post("/api/v1/deliveries", json={"zone_id": r.json()["id"], "parcel": {"mass_kg": 1.0}, "hub": hub},
                   headers=OP)
        assert d.status_code == 201 and d.json()["state"] == "planned", d.text
        ids.append(d.json()["id"])
    return ids


class Deployment:
    def __init__(self, url: str, apis: list[ProcServer], workers: list[Worker], sims: list) -> None:
        self.url, self.apis, self.workers, self.sims = url, apis, workers, sims
        self.ca, self.cb = (httpx.Client(base_url=a.url, timeout=30) for a in apis)


@pytest.fixture(scope="module")
def deployment(pg_cluster, tmp_path_factory):
    """Two API processes (--flights workers), two workers, three simulated quads at three hubs, one database."""
    tmp = tmp_path_factory.mktemp("workers")
    mp = pytest.MonkeyPatch()
    mp.setenv("GROUNDCTL_TRACKING_SECRET", TRACKING_SECRET)  # for the API processes
    url = pg_cluster.create_database()
    sims = start_sims()
    apis = [ProcServer(tmp / "a", database_url=url, extra=("--flights", "workers")),
            ProcServer(tmp / "b", database_url=url, extra=("--flights", "workers"))]
    workers: list[Worker] = []
    try:
        for a in apis:
            a.data_dir.mkdir()
            a.start(timeout=60)
        workers = [Worker("w1", url, tmp), Worker("w2", url, tmp)]
        dep = Deployment(url, apis, workers, sims)
        setup_hubs(dep.ca, sims)
        yield dep
    finally:
        for w in workers:
            w.stop()
        for a in apis:
            a.stop()
        for sim in sims:
            sim.stop()
        mp.undo()


@pytest.mark.slow
def test_two_apis_two_workers_kill_one_worker_mid_flight(deployment):
    url, workers, apis = deployment.url, deployment.workers, deployment.apis
    ca, cb = deployment.ca, deployment.cb
    feed = None
    try:
        ids = plan_deliveries(ca)
        feed = LiveFeed(apis[1].url)  # watched on the other API process than the one dispatching
        for did, vehicle, c in zip(ids, ("dr-01", "dr-02", "dr-03"), (ca, cb, ca)):
            r = c.post(f"/api/v1/deliveries/{did}/dispatch", json={"vehicle": vehicle}, headers=OP)
            assert r.status_code == 200, r.text

        def owners() -> dict[int, str]:
            return {d: o for d, o in rows(url, "select delivery_id, owner from flight_leases where owner is not null")}

        def all_en_route() -> bool:
            return all(cb.get(f"/api/v1/deliveries/{d}", headers=OP).json()["state"] in
                       ("en_route", "at_zone", "lowering", "released", "returning", "landed") for d in ids)

        assert wait_for(lambda: len(owners()) == 3, 60), owners()
        assert wait_for(all_en_route, 240), [cb.get(f"/api/v1/deliveries/{d}", headers=OP).json()["state"] for d in ids]
        before = owners()
        victim = max(workers, key=lambda w: list(before.values()).count(w.name))
        orphaned = [d for d, o in before.items() if o == victim.name]
        # the live feed on API process b shows the flights the workers fly, with their vehicle time
        assert wait_for(lambda: all(feed.positions(d) for d in ids), 30), "no live positions through NOTIFY"

        victim.kill()
        t_kill = time.monotonic()
        last_before = {d: feed.positions(d)[-1] for d in orphaned}
        def taken_over() -> dict[int, str] | None:
            now = owners()
            return now if all(now.get(d) not in (None, victim.name) for d in orphaned) else None

        taken = wait_for(taken_over, LEASE_S + 30, every=0.1)
        t_taken = time.monotonic()
        assert taken and all(taken[d] != victim.name for d in orphaned), taken

        done = {}
        for d in ids:
            end = time.monotonic() + 300
            while time.monotonic() < end:
                v = ca.get(f"/api/v1/deliveries/{d}", headers=OP).json()
                if v["state"] in ("landed", "failed", "lost", "crashed") and v["outcome"] is not None:
                    break
                time.sleep(0.5)
            done[d] = v
        for d, v in done.items():
            kinds = [e["kind"] for e in v["events"]]
            assert v["state"] == "landed" and v["outcome"] == "delivered", (d, v["state"], v["outcome"], kinds)
            for k in ONCE:
                assert kinds.count(k) == 1, (d, k, kinds)
        dup = rows(url, "select delivery_id, kind, occurrence, count(*) from delivery_events "
                        "group by delivery_id, kind, occurrence having count(*) > 1")
        assert dup == []
        # what the store says about the takeover: claimed again only after the dead lease ran out
        for d, gen, prev, claimed, expired in rows(url, "select delivery_id, generation, previous_owner, claimed_at, "
                                                        "previous_expired_at from flight_leases"):
            if d in orphaned:
                assert (gen, prev) == (2, victim.name) and claimed >= expired, (d, gen, prev, claimed, expired)
            else:
                assert gen == 1 and prev is None

        # figures: wall time from the kill to the new claim; vehicle time the flight went unwatched
        wall = t_taken - t_kill
        gaps = []
        for d in orphaned:
            t0, p0 = last_before[d]
            after = [(t, p) for t, p in feed.positions(d) if t > t_kill and p.get("worker") != victim.name]
            assert after, f"no live positions from the new owner of delivery {d}"
            t1, p1 = after[0]
            vt = (p1["vehicle_boot_ms"] - p0["vehicle_boot_ms"]) / 1000
            gaps.append((d, vt, t1 - t0))
        print(f"\ntakeover after SIGKILL of {victim.name} (lease {LEASE_S:.0f} s, sim speed-up {SPEEDUP}): "
              f"claimed again {wall:.1f} s (wall) after the kill; " + "; ".join(
                  f"delivery {d}: {vt:.1f} s of vehicle time ({w:.1f} s wall) between the last position from the "
                  f"dead worker and the first from its successor" for d, vt, w in gaps))
        assert wall < LEASE_S + 15, wall
    finally:
        if feed is not None:
            feed.close()


@pytest.mark.slow
def test_abort_sent_to_one_api_reaches_the_worker_flying(deployment):
    """Dispatched through API process a, aborted through b: the command crosses the database to the worker
    that flies it, which brings the parcel home; the abort is recorded by the flight (with the vehicle's
    position), once."""
    ca, cb, url = deployment.ca, deployment.cb, deployment.url
    h = register(ca, "abort")
    zid = ca.post("/api/v1/zones", json=zone_body((SITES[0][3], SITES[0][4]), name="abort zone"), headers=h).json()["id"]
    r = ca.post("/api/v1/deliveries", json={"zone_id": zid, "parcel": {"mass_kg": 1.0}, "hub": "cmac"}, headers=OP)
    did = r.json()["id"]
    # dr-01 is free once the previous test's flight from cmac has landed
    assert wait_for(lambda: ca.post(f"/api/v1/deliveries/{did}/dispatch", json={"vehicle": "dr-01"},
                                    headers=OP).status_code == 200, 120, every=2), "dr-01 never became free"
    assert wait_for(lambda: cb.get(f"/api/v1/deliveries/{did}", headers=OP).json()["state"] == "en_route", 120)
    r = cb.post(f"/api/v1/deliveries/{did}/abort", json={"action": "rtl"}, headers=OP)
    assert r.status_code == 200 and r.json()["state"] == "aborted", r.text
    d = wait_for(lambda: (v := cb.get(f"/api/v1/deliveries/{did}", headers=OP).json())["outcome"] and v, 240)
    kinds = [e["kind"] for e in d["events"]]
    assert d["state"] == "aborted" and d["outcome"] == "aborted", kinds
    assert kinds.count("aborted") == 1 and "landed" in kinds and "released" not in kinds
    aborted = next(e for e in d["events"] if e["kind"] == "aborted")
    assert aborted["lat"] is not None, aborted  # the flight's record, not the API's stand-in
    (cmd,) = rows(url, "select kind, done_by, result from flight_commands where delivery_id = :d", d=did)
    owner = rows(url, "select owner from flight_leases where delivery_id = :d", d=did)[0][0]
    assert cmd[0] == "abort" and cmd[1] == owner and cmd[2] == {"ok": True}, cmd
