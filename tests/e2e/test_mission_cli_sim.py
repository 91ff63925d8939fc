"""`groundctl mission upload / download` as a test campaign uses it: the real command in its own
process, the built-in simulator over real TCP, a plan written by `groundctl plan`."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from groundctl.core.planfiles import plan_from_text
from groundctl.protocol import verify
from sim.launch import start_sim

ROOT = Path(__file__).resolve().parents[2]
HOME = "-35.3632621,149.1652374,584,0"


def gc(*args, timeout=300):
    r = subprocess.run([sys.executable, "-m", "groundctl", *args], capture_output=True, text=True, timeout=timeout,
                       cwd=ROOT, env={**os.environ, "COLUMNS": "200"})
    return r.returncode, r.stdout, r.stderr


@pytest.fixture(scope="module")
def plan_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("plan")
    code, _, err = gc("plan", "cmac", "--zone", "clinic-east", "--out", str(d))
    assert code == 0, err
    return d


@pytest.fixture(scope="module")
def sim_url():
    with start_sim(["--speedup", "20", "--home", HOME], timeout=30) as (_, urls):
        yield urls[0]


def test_plan_uploaded_downloaded_and_identical(plan_dir, sim_url, tmp_path):
    (plan,) = plan_dir.glob("*.plan")
    code, out, err = gc("mission", "upload", str(plan), "--connect", sim_url, "--json")
    assert code == 0, (out, err)
    doc = json.loads(out)
    sent = plan_from_text(plan.read_text(), str(plan))
    assert doc["verified"] is True and doc["sysid"] == 1
    assert [(t["type"], t["items"]) for t in doc["transfers"]] == [
        ("mission", len(sent[0])), ("fence", len(sent[1])), ("rally", len(sent[2]))]
    assert len(sent[1]) > 3 and len(sent[2]) >= 1  # the CMAC plan really has a fence and rally points

    back = tmp_path / "back.plan"
    code, out, err = gc("mission", "download", "--connect", sim_url, "-o", str(back))
    assert code == 0, (out, err)
    assert "verified" in out
    got = plan_from_text(back.read_text(), str(back))
    for mt in range(3):
        assert len(got[mt]) == len(sent[mt])
        assert verify(sent[mt], got[mt], mt) == [], mt


def test_waypoints_round_trip_in_human_mode(plan_dir, sim_url, tmp_path):
    (wp,) = [p for p in plan_dir.glob("*.waypoints") if p.suffixes == [".waypoints"]]  # not NAME.fence.waypoints
    code, out, err = gc("mission", "upload", str(wp), "--connect", sim_url)
    assert code == 0, (out, err)
    assert "verified" in out and "mission" in out
    assert "upload" in err and "read back" in err  # the progress bar goes to stderr
    back = tmp_path / "back.waypoints"
    code, out, err = gc("mission", "download", "--connect", sim_url, "-o", str(back), "--json")
    assert code == 0, (out, err)
    sent = plan_from_text(wp.read_text(), str(wp))[0]
    got = plan_from_text(back.read_text(), str(back))[0]
    assert verify(sent, got, 0) == []


def test_refused_upload_exits_1_with_the_reason(sim_url, tmp_path):
    # more items than the vehicle has room for (ArduPilot answers MISSION_COUNT with NO_SPACE)
    lines = ["QGC WPL 110", "0\t1\t0\t16\t0\t0\t0\t0\t-35.36326210\t149.16523740\t584.000000\t1"]
    lines += [f"{i}\t0\t3\t16\t0\t0\t0\t0\t-35.36{i:04d}\t149.165\t40.0\t1" for i in range(1, 800)]
    f = tmp_path / "big.waypoints"
    f.write_text("\n".join(lines) + "\n")
    code, out, err = gc("mission", "upload", str(f), "--connect", sim_url, "--json")
    assert code == 1, (out, err)
    doc = json.loads(out)
    assert doc["verified"] is False and "MAV_MISSION_NO_SPACE" in doc["error"]


@pytest.mark.parametrize("args, says", [
    (["upload", "{d}/missing.plan"], "missing.plan: file not found"),
    (["upload", "{d}/bad.plan"], "bad.plan"),
    (["upload", "{d}/nullalt.plan"], "nullalt.plan: mission item 1 (NAV_WAYPOINT) has no alt"),
    (["upload", "{d}/short.waypoints"], "short.waypoints: line 2: expected 12 fields, got 3"),
    (["upload", "{d}/notjson.plan"], "notjson.plan: neither a QGroundControl .plan (JSON: Expecting"),
    (["download", "-o", "{d}/out.kml"], "must end in .plan"),
    (["download", "-o", "{d}/nodir/out.plan"], "does not exist"),
])
def test_bad_input_exits_2_naming_the_file(tmp_path, args, says):
    (tmp_path / "bad.plan").write_text('{"fileType": "Plan", "mission": {"items": []}}')
    (tmp_path / "short.waypoints").write_text("QGC WPL 110\n0 1 0\n")
    (tmp_path / "notjson.plan").write_text("{ mission: ")
    item = {"type": "SimpleItem", "command": 16, "frame": 3, "params": [0, 0, 0, None, -35.36, 149.16, None]}
    (tmp_path / "nullalt.plan").write_text(json.dumps({"fileType": "Plan", "mission": {
        "plannedHomePosition": [-35.36, 149.16, 584], "items": [item]}}))
    args = [a.format(d=tmp_path) for a in args]
    code, out, err = gc("mission", *args, "--connect", "tcp:127.0.0.1:9", "--json")
    assert code == 2, (out, err)
    doc = json.loads(out)
    assert says in doc["error"], doc
    code, out, err = gc("mission", *args, "--connect", "tcp:127.0.0.1:9")
    assert code == 2 and says in err and "Traceback" not in err


def test_bad_url_exits_2(tmp_path):
    code, out, _ = gc("mission", "download", "--connect", "serial-port", "-o", str(tmp_path / "a.plan"), "--json")
    assert code == 2 and "not a MAVLink URL" in json.loads(out)["error"]
