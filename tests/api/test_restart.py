"""Kill the server (SIGKILL) mid-flight, start it again on the same data directory (SQLite) or database
(PostgreSQL): the delivery carries on to 'landed' and no event is lost or repeated."""

from __future__ import annotations

import os
import time

import httpx
import pytest
from sqlalchemy import create_engine, text

from tests.api.conftest import OP, ProcServer, backend_url, register, zone_body
from tests.pg import BACKENDS
from tests.api.test_flight import FLIGHT_ZONE, HUB, use_sim, wait_state

pytest.importorskip("groundctl.runtime.fly")
launch = pytest.importorskip("sim.launch")


def _rows(url: str, sql: str, **params) -> list[tuple]:
    engine = create_engine(url)
    try:
        with engine.connect() as c:
            return [tuple(r) for r in c.execute(text(sql), params)]
    finally:
        engine.dispose()


@pytest.mark.slow
# On PostgreSQL this is 1.5 minutes of CI for what tests/workers/test_takeover.py already shows there (a process
# killed mid-flight, the flight resumed, each event once): it runs with -m slow or GROUNDCTL_SLOW=1.
@pytest.mark.parametrize("backend", [b if b == "sqlite" else pytest.param(b, marks=pytest.mark.slow) for b in BACKENDS])
def test_sigkill_mid_flight_and_resume(tmp_path, request, backend):
    if backend != "sqlite" and "slow" not in (request.config.getoption("-m") or "") \
            and os.environ.get("GROUNDCTL_SLOW") != "1":
        pytest.skip("PostgreSQL case: run with -m slow or GROUNDCTL_SLOW=1 (tests/workers covers kill and resume there)")
    url = backend_url(request, backend)
    db = url or f"sqlite:///{tmp_path / 'groundctl.db'}"
    # the simulator is the aircraft: it keeps flying while the ground station is dead
    sim = launch.start_sim(["--home", HUB, "--sysid", "1", "--speedup", "5", "--no-ekf-s", "1", "--payload-kg", "1.0",
                            "--battery-wh", "222", "--mass-kg", "3.4"])
    srv = ProcServer(tmp_path, database_url=url).start()
    try:
        with httpx.Client(base_url=srv.url, timeout=30) as c:
            use_sim(c, sim.urls[0])
            h = register(c)
            zid = c.post("/api/v1/zones", json=zone_body(FLIGHT_ZONE), headers=h).json()["id"]
            did = c.post("/api/v1/deliveries", json={"zone_id": zid, "parcel": {"mass_kg": 1.0}}, headers=OP).json()["id"]
            assert c.post(f"/api/v1/deliveries/{did}/dispatch", json={}, headers=OP).status_code == 200
            before = wait_state(c, did, {"en_route", "failed", "landed"}, 120)
            assert before["state"] == "en_route", before
        srv.kill()
        killed_kinds = [r[0] for r in _rows(db, "select kind from delivery_events where delivery_id = :d order by id",
                                            d=did)]
        assert "en_route" in killed_kinds and "landed" not in killed_kinds

        srv = ProcServer(tmp_path, database_url=url).start()
        with httpx.Client(base_url=srv.url, timeout=30) as c:
            done = wait_state(c, did, {"landed", "failed"}, 240)
            kinds = [e["kind"] for e in done["events"]]
            assert done["state"] == "landed", kinds
            end = time.monotonic() + 20
            while done["outcome"] is None and time.monotonic() < end:
                time.sleep(0.3)
                done = c.get(f"/api/v1/deliveries/{did}", headers=OP).json()
            kinds = [e["kind"] for e in done["events"]]
            assert kinds[:len(killed_kinds)] == killed_kinds  # history kept as it was
            for k in ("planned", "dispatched", "uploaded", "armed", "taking_off", "en_route", "at_zone", "released",
                      "returning", "landed", "report"):
                assert kinds.count(k) == 1, (k, kinds)
            assert done["outcome"] == "delivered", kinds
            assert done["proof_of_delivery"]["distance_from_zone_centre_m"] < 10
        rows = _rows(db, "select kind, occurrence, count(*) from delivery_events where delivery_id = :d "
                         "group by kind, occurrence having count(*) > 1", d=did)
        assert rows == []
    finally:
        srv.stop()
        sim.stop()
