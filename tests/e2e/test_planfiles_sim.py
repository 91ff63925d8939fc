"""QGroundControl's own sample plans (tests/data/qgc) through `groundctl mission upload / download`
against the built-in simulator over TCP: what the vehicle holds is what the file says, the file
written back reads the same, and a Mission Planner fence file comes out that uploads again."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from groundctl.core import mavcmd as C
from groundctl.core.planfiles import read_plan
from groundctl.protocol import verify
from sim.launch import start_sim

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "tests" / "data" / "qgc"
HOME = "-35.363261,149.16523,584,0"  # the ArduPilot sample plan's planned home


def gc(*args, timeout=300):
    r = subprocess.run([sys.executable, "-m", "groundctl", *args], capture_output=True, text=True, timeout=timeout,
                       cwd=ROOT, env={**os.environ, "COLUMNS": "200"})
    return r.returncode, r.stdout, r.stderr


@pytest.fixture(scope="module")
def sim_url():
    with start_sim(["--speedup", "20", "--home", HOME], timeout=30) as (_, urls):
        yield urls[0]


def test_qgc_ardupilot_sample_plan_uploaded_and_downloaded(sim_url, tmp_path):
    src = DATA / "ArduPilotSITL-ArduCopter.plan"
    # as QGC saved it, one item has no altitude to send: refused, naming the item, before any link is used
    code, _, err = gc("mission", "upload", str(src), "--connect", sim_url)
    assert code == 2 and "mission.items[5].params[6]" in err and "above terrain" in err
    code, out, err = gc("mission", "upload", str(src), "--connect", sim_url, "--terrain-frame", "--json")
    assert code == 0, (out, err)
    doc = json.loads(out)
    assert doc["verified"] is True and any("terrain frame" in w for w in doc["warnings"])
    sent = read_plan(src.read_text(), src.name, terrain="frame")
    back = tmp_path / "back.plan"
    code, out, err = gc("mission", "download", "--connect", sim_url, "-o", str(back))
    assert code == 0, (out, err)
    got = read_plan(back.read_text(), back.name)  # no conversion needed any more
    assert len(got.mission) == len(sent.mission) == 12
    assert verify(sent.mission, got.mission, C.MISSION_TYPE_MISSION) == []
    written = json.loads(back.read_text())
    assert {it["frame"] for it in written["mission"]["items"]} <= {0, 2, 3, 10}
    # the plan has no rally points: the Mission Planner rally file is the home line alone, and verified
    ral = tmp_path / "none.rally.waypoints"
    code, out, err = gc("mission", "download", "--connect", sim_url, "-o", str(ral))
    assert code == 0, (out, err)
    assert len(ral.read_text().splitlines()) == 2


def test_qgc_geofence_plan_and_mission_planner_fence_file(sim_url, tmp_path):
    src = DATA / "ce_geofence_home_base.plan"
    code, out, err = gc("mission", "upload", str(src), "--connect", sim_url)
    assert code == 0, (out, err)
    assert "made for PX4" in err  # converted, and said so
    fen = tmp_path / "home_base.fence.waypoints"
    code, out, err = gc("mission", "download", "--connect", sim_url, "-o", str(fen))
    assert code == 0, (out, err)
    lines = fen.read_text().splitlines()
    # Mission Planner drops the first line (home) of a fence file; the rest is the fence, 8 vertices
    assert lines[0] == "QGC WPL 110" and lines[1].split("\t")[3] == "16" and len(lines) == 2 + 8
    sent = read_plan(src.read_text(), src.name)
    got = read_plan(fen.read_text(), fen.name)
    assert got.kinds == (C.MISSION_TYPE_FENCE,) and verify(sent.fence, got.fence, C.MISSION_TYPE_FENCE) == []
    code, out, err = gc("mission", "upload", str(fen), "--connect", sim_url, "--json")
    assert code == 0, (out, err)
    assert [(t["type"], t["items"]) for t in json.loads(out)["transfers"]] == [("fence", 8)]
