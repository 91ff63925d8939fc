"""The check command reads the calibration that flown flights left in the data directory."""

import json
import subprocess

from groundctl.core.calibration import FlightEnergy
from groundctl.runtime.calibration import record
from groundctl.runtime.store import Store, database_url
from tests.conftest import groundctl_cmd


def check(tmp_path, *extra):
    p = subprocess.run([*groundctl_cmd(), "check", "cmac", "--zone", "lab-south", "--wind", "3", "--json", *extra],
                       capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert p.returncode in (0, 1), p.stdout + p.stderr
    d = json.loads(p.stdout)
    return d, next(c for c in d["checks"] if c["check"] == "calibration")


def test_check_uses_flown_flights_of_the_same_vehicle_kind(tmp_path):
    data = tmp_path / "flights"
    store = Store(database_url(data))
    for _ in range(3):
        record(store, FlightEnergy("quad-x-delivery", "sim", 50.0, 60.0))
    store.close()
    d, cal = check(tmp_path, "--data-dir", str(data), "--vehicle-kind", "sim")
    assert cal["status"] == "pass" and "calibrated on 3 sim flights" in cal["message"]
    assert d["energy"]["calibration"]["factor"] == 1.2
    # the real aircraft of the same name has never flown: uncalibrated
    d, cal = check(tmp_path, "--data-dir", str(data))
    assert cal["status"] == "warn" and "uncalibrated" in cal["message"]


def test_check_creates_no_data_directory_just_to_read(tmp_path):
    _, cal = check(tmp_path)
    assert cal["status"] == "warn"
    assert not (tmp_path / "data").exists()


def test_unknown_vehicle_kind_is_bad_input(tmp_path):
    p = subprocess.run([*groundctl_cmd(), "check", "cmac", "--zone", "lab-south", "--vehicle-kind", "drone", "--json"],
                       capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert p.returncode == 2 and json.loads(p.stdout)["field"] == "vehicle_kind"
