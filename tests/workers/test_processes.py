"""`serve --processes N`: the API in N processes on PostgreSQL, flights left to workers; refused on SQLite."""

from __future__ import annotations

import os
import subprocess
import sys

import httpx
from sqlalchemy import create_engine, text

from tests.api.conftest import OP, OP_KEY, ROOT, ProcServer, register, zone_body

CLINIC_EAST = (-35.3569483, 149.193836)


def test_several_api_processes_need_postgresql(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    r = subprocess.run([sys.executable, "-m", "groundctl.faces.api", "--processes", "2", "--no-sim", "--data",
                        str(tmp_path)], cwd=ROOT, env={**env, "GROUNDCTL_OPERATOR_KEYS": OP_KEY},
                       capture_output=True, text=True, timeout=60)
    assert r.returncode != 0
    assert "processes: several API processes need PostgreSQL (set DATABASE_URL)" in r.stderr + r.stdout


def test_two_api_processes_share_one_database_and_offer_flights_to_workers(pg_cluster, tmp_path):
    url = pg_cluster.create_database()
    srv = ProcServer(tmp_path, database_url=url, extra=("--processes", "2")).start(timeout=90)
    try:
        children = subprocess.run(["pgrep", "-P", str(srv.proc.pid)], capture_output=True, text=True).stdout.split()
        # uvicorn's supervisor and its two API processes (and nothing flies in any of them)
        assert len(children) >= 2, children
        # a loaded machine plans slowly: the timeout is for a hung server, not a slow one
        with httpx.Client(base_url=srv.url, timeout=120) as c:
            h = register(c)
            zid = c.post("/api/v1/zones", json=zone_body(CLINIC_EAST), headers=h).json()["id"]
            # whichever process answers, each sees what the other wrote
            for _ in range(6):
                assert c.get(f"/api/v1/zones/{zid}", headers=h).status_code == 200
            v = c.get("/api/v1/vehicles/dr-01", headers=OP).json()
            c.put("/api/v1/vehicles/dr-01", json={**v, "connection": "tcp:127.0.0.1:9"}, headers=OP)
            did = c.post("/api/v1/deliveries", json={"zone_id": zid, "parcel": {"mass_kg": 1.0}},
                         headers=OP).json()["id"]
            r = c.post(f"/api/v1/deliveries/{did}/dispatch", json={"vehicle": "dr-01"}, headers=OP)
            assert r.status_code == 200 and r.json()["state"] == "dispatched", r.text
        engine = create_engine(url)
        with engine.connect() as conn:
            lease = conn.execute(text("select owner, generation from flight_leases where delivery_id = :d"),
                                 {"d": did}).one()
        engine.dispose()
        assert tuple(lease) == (None, 0)  # offered to the workers, flown by none of the API processes
    finally:
        srv.stop()
