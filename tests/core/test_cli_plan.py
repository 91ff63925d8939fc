"""`groundctl plan` as a user runs it: a real process, files written, errors without tracebacks."""

import json
import subprocess

import pytest

from tests.conftest import MISSIONS, groundctl_cmd


def run(*args, cwd):
    return subprocess.run([*groundctl_cmd(), *args], capture_output=True, text=True, cwd=cwd, timeout=120)


@pytest.mark.parametrize("scenario,zone", [("cmac", "clinic-east"), ("muhanga", "health-centre-kibangu")])
def test_plan_writes_files(tmp_path, scenario, zone):
    r = run("plan", str(MISSIONS / scenario), "--zone", zone, "--out", str(tmp_path), "--json", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    files = doc["files"]
    plan = json.loads(open(files["plan"]).read())
    assert plan["fileType"] == "Plan" and plan["mission"]["items"]
    png = open(files["png"], "rb").read()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 20_000
    assert open(files["waypoints"]).readline().strip() == "QGC WPL 110"
    assert doc["plan"]["distance_out_m"] > 1000
    assert doc["plan"]["skirted_zones"]  # both examples bend round a zone


def test_plan_human_output(tmp_path):
    r = run("plan", "cmac", "--zone", "clinic-east", "--out", str(tmp_path), cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "distance out / back" in r.stdout and "Substation" in r.stdout


@pytest.mark.parametrize("zone,needle", [("island", "separate parts of the free airspace"),
                                         ("helipad-roof", "Hospital helipad"),
                                         ("nowhere", "unknown landing zone 'nowhere'")])
def test_plan_errors_exit_nonzero_without_traceback(tmp_path, zone, needle):
    r = run("plan", "cmac", "--zone", zone, "--out", str(tmp_path), cwd=tmp_path)
    assert r.returncode == 2
    assert needle in r.stderr.replace("\n", " ")
    assert "Traceback" not in r.stderr + r.stdout
    assert not list(tmp_path.glob("*.plan"))  # nothing written for a refused plan


def test_bad_scenario_file(tmp_path):
    (tmp_path / "airspace.geojson").write_text("{not json")
    (tmp_path / "fleet.toml").write_text("")
    r = run("plan", str(tmp_path), "--zone", "x", cwd=tmp_path)
    assert r.returncode == 2 and "not valid JSON" in r.stderr and "Traceback" not in r.stderr
