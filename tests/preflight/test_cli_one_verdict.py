"""One verdict everywhere, through the real CLI (`python -m groundctl` as a separate process, or typer's
CliRunner on the real app): plan, check, fly and the API decide the same way from the same weather;
every command takes a bundled scenario name; bad files exit 2 naming the file and the reason; --json
errors are JSON; plan without weather gives no verdict; the verdict reads at 80 columns."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess

import pytest
from typer.testing import CliRunner

from groundctl.faces.cli import app
from tests.conftest import groundctl_cmd

from .conftest import CMAC, NOW

AT = ["--now", NOW.isoformat()]
FAIR = "YSCB 210600Z 31008KT 9999 FEW030 18/05 Q1012"
SNOW_LOW = "YSCB 210600Z 31008KT 4000 -SN OVC002 M02/M03 Q1012"
WEATHER_CHECKS = {"weather", "wind", "gust", "precipitation", "visibility", "temperature", "significant_weather",
                  "cloud_base", "icing"}


def cli(*args, tmp_path, columns: int | None = None, timeout: float = 120):
    env = {**os.environ, "GROUNDCTL_DATA": str(tmp_path / "data")}
    if columns:
        env["COLUMNS"] = str(columns)
    return subprocess.run([*groundctl_cmd(), *args], capture_output=True, text=True, cwd=tmp_path, env=env,
                          timeout=timeout)


def invoke(*args):
    return CliRunner().invoke(app, list(args))


def no_traceback(r) -> None:
    out = (r.stdout or "") + (r.stderr or "")
    assert "Traceback" not in out and "File \"" not in out, out


# -- a bundled scenario name everywhere ----------------------------------------------------------------


def test_check_takes_a_bundled_scenario_name(tmp_path):
    r = cli("check", "cmac", "--zone", "clinic-east", "--metar", FAIR, *AT, "--json", tmp_path=tmp_path)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["go"] is True


def test_unknown_scenario_names_the_bundled_ones(tmp_path):
    for cmd in ("plan", "check"):
        r = invoke(cmd, "nowhere-land", "--zone", "x", "--wind", "3")
        assert r.exit_code == 2, r.output
        assert "nowhere-land: not a directory, nor a bundled scenario name (bundled: cmac, muhanga" in r.stderr
        no_traceback(r)


# -- plan without weather ----------------------------------------------------------------------------


def test_plan_without_weather_gives_no_verdict(tmp_path):
    r = cli("plan", "cmac", "--zone", "clinic-east", "--out", str(tmp_path), "--no-png", tmp_path=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "no weather given: no verdict" in r.stdout
    assert "NO-GO" not in r.stdout and "no weather observation" not in r.stdout
    r = invoke("plan", "cmac", "--zone", "clinic-east", "--out", str(tmp_path), "--no-png", "--json")
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert doc["verdict"] is None and doc["no_verdict"] == "no weather given: no verdict"


def test_plan_with_weather_decides_and_exits_like_check(tmp_path):
    r = invoke("plan", "cmac", "--zone", "clinic-east", "--out", str(tmp_path), "--no-png", "--metar", SNOW_LOW, *AT)
    assert r.exit_code == 1, r.output
    assert "NO-GO" in r.stdout and "cloud_base" in r.stdout and "icing" in r.stdout
    r = invoke("plan", "cmac", "--zone", "clinic-east", "--out", str(tmp_path), "--no-png", "--metar", FAIR, *AT)
    assert r.exit_code == 0, r.output


# -- the same verdict from plan, check, fly and the API ------------------------------------------------


def weather_part(verdict: dict) -> dict:
    return {c["check"]: (c["status"], c["message"]) for c in verdict["checks"] if c["check"] in WEATHER_CHECKS}


def test_plan_and_check_agree_and_no_direction_is_variable(tmp_path):
    args = ["cmac", "--zone", "farm-north", "--wind", "7", "--gust", "9", *AT, "--json"]
    c = invoke("check", *args)
    p = invoke("plan", *args, "--out", str(tmp_path), "--no-png")
    assert c.exit_code == p.exit_code, (c.output, p.output)
    check, plan = json.loads(c.stdout), json.loads(p.stdout)["verdict"]
    assert check["checks"] == plan["checks"] and check["energy"] == plan["energy"]
    assert "variable" in weather_part(check)["wind"][1]
    assert check["energy"]["wind_dir_deg"] is None  # worst case: a headwind on every leg
    # a direction changes the energy: the default really is the no-direction case, not 0° or any other
    d = json.loads(invoke("check", *args, "--wind-dir", "0").stdout)
    assert d["energy"]["wind_dir_deg"] == 0 and d["energy"] != check["energy"]


def test_fly_decides_as_check_does(tmp_path):
    # a refused flight stops before the vehicle: the port need not answer
    f = cli("fly", "cmac", "--zone", "clinic-east", "--connect", "tcp:127.0.0.1:9", "--wind", "40", "--json",
            tmp_path=tmp_path)
    assert f.returncode == 1, f.stderr
    fly = json.loads(f.stdout)
    assert fly["outcome"] == "not_flown"
    c = invoke("check", "cmac", "--zone", "clinic-east", "--wind", "40", "--json")
    check = json.loads(c.stdout)
    assert weather_part(fly["verdict"]) == weather_part(check)
    assert {"wind", "headwind"} <= set(fly["verdict"]["failures"]) & set(check["failures"])


def test_api_decides_as_check_does(tmp_path):
    """The service's verdict function on the weather an operator PUTs (no direction) against `check`
    reading the same JSON as a weather file."""
    from groundctl.core.weather import weather_from_dict
    from groundctl.faces.cli_check import plan_for
    from groundctl.runtime.verdicts import verdict_for

    body = {"source": "hub anemometer", "valid_time": "2026-11-21T06:20:00Z",
            "wind": [{"height_m": 10, "speed_mps": 6.0}], "gust_mps": 8.0, "precip_mmph": 0.0,
            "visibility_m": 8000, "temp_c": 1.0, "clouds": [{"cover": "OVC", "base_m": 70}],
            "present_weather": ["BR"]}
    (tmp_path / "w.json").write_text(json.dumps(body))
    c = invoke("check", "cmac", "--zone", "clinic-east", "--weather-file", str(tmp_path / "w.json"), *AT, "--json")
    assert c.exit_code == 1, c.output
    check = json.loads(c.stdout)
    sc, _, plan = plan_for("cmac", "clinic-east")
    api = verdict_for(plan, weather_from_dict(body), NOW, sc.airspace)
    got = {c["check"]: c["status"] for c in api.detail["checks"] if c["check"] in WEATHER_CHECKS}
    assert got == {k: v[0] for k, v in weather_part(check).items()}
    assert got["cloud_base"] == "fail" and got["icing"] == "fail"


# -- bad files -----------------------------------------------------------------------------------------

BAD = {
    "binary": (b"\x7fELF\x02\x01\x01\x00\x00\x00" * 50, "is a binary file"),
    "empty": (b"", "is empty"),
    "blank": (b"  \n\n", "is empty"),
    "latin-1": ("name = \"Café\"\n".encode("latin-1"), "is not UTF-8 text: byte 0xe9 at line 1"),
    "utf-16": ("{}".encode("utf-16"), "is not UTF-8 text"),
    "directory": (None, "is a directory, not a file"),
}


def scenario_with(tmp_path, name: str, kind: str):
    d = tmp_path / "sc"
    shutil.copytree(CMAC, d)
    content, reason = BAD[kind]
    (d / name).unlink()
    if content is None:
        (d / name).mkdir()
    else:
        (d / name).write_bytes(content)
    return d, reason


@pytest.mark.parametrize("name", ["airspace.geojson", "zones.geojson", "fleet.toml"])
@pytest.mark.parametrize("kind", list(BAD))
def test_bad_scenario_file_exits_2_naming_it(tmp_path, name, kind):
    d, reason = scenario_with(tmp_path, name, kind)
    for cmd in ("check", "plan"):
        extra = ["--out", str(tmp_path / "out")] if cmd == "plan" else []
        r = invoke(cmd, str(d), "--zone", "clinic-east", "--wind", "3", *extra)
        assert r.exit_code == 2, (cmd, r.output)
        assert f"{d / name}: {reason}" in r.stderr.replace("\n", ""), r.stderr
        no_traceback(r)
        j = invoke(cmd, str(d), "--zone", "clinic-east", "--wind", "3", *extra, "--json")
        assert j.exit_code == 2 and reason in json.loads(j.stdout)["reason"]


@pytest.mark.parametrize("kind", list(BAD))
def test_bad_weather_file_exits_2_naming_it(tmp_path, kind):
    content, reason = BAD[kind]
    f = tmp_path / "weather.json"
    f.mkdir() if content is None else f.write_bytes(content)
    r = invoke("check", "cmac", "--zone", "clinic-east", "--weather-file", str(f))
    assert r.exit_code == 2, r.output
    assert f"{f}: {reason}" in r.stderr.replace("\n", "")
    no_traceback(r)


def test_bad_files_as_a_real_process(tmp_path):
    d, reason = scenario_with(tmp_path, "fleet.toml", "binary")
    for cmd in ("plan", "check"):
        r = cli(cmd, str(d), "--zone", "clinic-east", "--wind", "3", tmp_path=tmp_path)
        assert r.returncode == 2 and "fleet.toml: is a binary file" in r.stderr
        no_traceback(r)
    r = cli("fly", str(d), "--zone", "clinic-east", "--sim", "--wind", "3", tmp_path=tmp_path)
    assert r.returncode == 2 and "fleet.toml: is a binary file" in r.stderr
    no_traceback(r)


def test_every_problem_of_every_file_at_once(tmp_path):
    d, _ = scenario_with(tmp_path, "fleet.toml", "empty")
    (d / "airspace.geojson").write_text("{not json")
    r = invoke("check", str(d), "--zone", "clinic-east", "--wind", "3")
    assert r.exit_code == 2
    assert "airspace.geojson: not valid JSON" in r.stderr and "fleet.toml: is empty" in r.stderr


# -- --json errors are JSON on every command ------------------------------------------------------------


@pytest.mark.parametrize("args", [
    ["plan", "cmac", "--zone", "nowhere"],
    ["check", "cmac", "--zone", "nowhere"],
    ["fly", "cmac", "--zone", "nowhere", "--sim"],
    ["fly", "cmac", "--zone", "clinic-east"],  # no vehicle given
    ["demo", "--method", "parachute"],
    ["check", "cmac"],  # a usage error: --zone missing
    ["plan", "cmac", "--zone", "clinic-east", "--parcel-kg", "heavy"],  # a usage error: not a number
    ["check", "cmac", "--zone", "clinic-east", "--metar", "hello world"],
])
def test_json_errors_are_json(tmp_path, args):
    r = cli(*args, "--json", tmp_path=tmp_path)
    assert r.returncode == 2, (r.stdout, r.stderr)
    doc = json.loads(r.stdout)
    assert doc["error"] and doc["kind"] and "reason" in doc
    no_traceback(r)


# -- 80 columns -----------------------------------------------------------------------------------------


def test_verdict_reads_at_80_columns(tmp_path):
    args = ["check", "cmac", "--zone", "clinic-east", "--metar", SNOW_LOW, *AT]
    r = cli(*args, tmp_path=tmp_path, columns=80)
    assert r.returncode == 1, r.stderr
    lines = r.stdout.splitlines()
    assert max(len(line) for line in lines) <= 80
    assert "…" not in r.stdout and "..." not in r.stdout
    # every check's whole message is there, only wrapped
    flat = " ".join(r.stdout.split())
    for c in json.loads(cli(*args, "--json", tmp_path=tmp_path).stdout)["checks"]:
        assert " ".join(c["message"].split()) in flat, c["check"]
        assert re.search(rf"^{c['status'].upper()}\s+{c['check']}\b", r.stdout, re.M), c["check"]


def test_plan_reads_at_80_columns(tmp_path):
    r = cli("plan", "cmac", "--zone", "clinic-east", "--out", str(tmp_path), "--no-png", "--metar", FAIR, *AT,
            tmp_path=tmp_path, columns=80)
    assert r.returncode == 0, r.stderr
    assert max(len(line) for line in r.stdout.splitlines()) <= 80
    assert "…" not in r.stdout
    assert "Substation" in r.stdout and "GO" in r.stdout
