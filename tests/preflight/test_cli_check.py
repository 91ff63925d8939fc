"""`groundctl check` through typer's CliRunner and once as a real subprocess."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import typer
from rich.console import Console
from typer.testing import CliRunner

from groundctl.core.preflight import preflight
from groundctl.faces.cli_check import parse_size, register, render_verdict, weather_from_options
from groundctl.errors import InputError

from .conftest import CMAC, DATA, NOW, REPO
from .test_forecast_http import server  # noqa: F401  (the loopback forecast server fixture)

FAIR = "YSCB 210600Z 31008KT 9999 FEW030 18/05 Q1012"
AT = ["--now", "2026-11-21T06:30:00Z"]


@pytest.fixture(scope="module")
def app():
    a = typer.Typer()
    register(a)
    return a


def run(app, *args):
    return CliRunner().invoke(app, ["check", str(CMAC), *args])


def test_go_exits_0_with_a_table(app):
    r = run(app, "--zone", "clinic-east", "--parcel-kg", "1.2", "--metar", FAIR, *AT)
    assert r.exit_code == 0, r.output
    assert "GO" in r.stdout and "NO-GO" not in r.stdout
    assert "energy" in r.stdout and "takeoff_mass" in r.stdout


def test_no_go_exits_1_and_json_lists_every_failure(app):
    r = run(app, "--zone", "clinic-east", "--parcel-kg", "40", "--handling", "signature", "--parcel-size", "60x20x10cm",
            "--wind", "16", "--wind-dir", "45", "--json", *AT)
    assert r.exit_code == 1, r.output
    d = json.loads(r.stdout, parse_constant=lambda c: pytest.fail(f"{c} is not JSON"))
    assert d["go"] is False
    assert {"payload_mass", "takeoff_mass", "parcel_size", "handling", "wind", "headwind", "energy"} <= set(d["failures"])
    assert d["plan"]["zone"] == "clinic-east" and d["weather"]["source"] == "command line"


def test_weather_file_and_method_and_airframe(app):
    r = run(app, "--zone", "farm-north", "--airframe", "hexa-heavy", "--method", "winch", "--parcel-kg", "3",
            "--weather-file", str(DATA / "weather_calm.json"), "--json", *AT)
    assert r.exit_code == 0, r.output
    d = json.loads(r.stdout)
    assert d["plan"]["airframe"] == "hexa-heavy" and d["plan"]["method"] == "winch"
    assert d["weather"]["source"] == "hub anemometer"


def test_no_weather_is_no_go(app):
    r = run(app, "--zone", "clinic-east", *AT)
    assert r.exit_code == 1
    assert "no weather observation" in r.stdout


@pytest.mark.parametrize("args, field", [
    (["--zone", "nowhere"], "zone"),
    (["--zone", "clinic-east", "--metar", "hello world"], "metar"),
    (["--zone", "clinic-east", "--metar", FAIR, "--wind", "5"], "weather"),
    (["--zone", "clinic-east", "--parcel-size", "big"], "parcel_size"),
    (["--zone", "clinic-east", "--handling", "urgent"], "handling"),
    (["--zone", "clinic-east", "--method", "parachute"], "method"),
    (["--zone", "clinic-east", "--parcel-kg", "-1"], "parcel.mass_kg"),
    (["--zone", "clinic-east", "--hub", "mars"], "hub"),
    (["--zone", "clinic-east", "--airframe", "hexa-heavy", "--method", "gripper"], "method"),
    (["--zone", "island", "--wind", "3"], None),  # unreachable on purpose: a NoRouteError
    (["--zone", "clinic-east", "--forecast-url", "http://127.0.0.1:9/v1/forecast", "--timeout", "0.5"], "forecast_url"),
])
def test_bad_input_exits_2_with_the_field_on_stderr(app, args, field):
    r = run(app, *args, *AT)
    assert r.exit_code == 2, r.output
    assert r.stdout == ""
    assert r.stderr.startswith("error: ")
    if field:
        assert f"{field}:" in r.stderr
    assert "Traceback" not in r.stderr


def test_missing_scenario_dir(app, tmp_path):
    r = CliRunner().invoke(app, ["check", str(tmp_path / "nope"), "--zone", "x"])
    assert r.exit_code == 2 and "not a directory" in r.stderr


def test_real_subprocess():
    code = "import typer; from groundctl.faces.cli_check import register; app=typer.Typer(); register(app); app()"
    ok = subprocess.run([sys.executable, "-c", code, "check", str(CMAC), "--zone", "clinic-east", "--parcel-kg", "1.2",
                         "--metar", FAIR, *AT, "--json"], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["go"] is True
    bad = subprocess.run([sys.executable, "-c", code, "check", str(CMAC), "--zone", "clinic-east", "--metar", "garbage"],
                         capture_output=True, text=True, cwd=REPO, timeout=120)
    assert bad.returncode == 2 and bad.stderr.startswith("error: metar:") and "Traceback" not in bad.stderr


# -- the reusable pieces -----------------------------------------------------------------------------


def test_weather_from_options_sources():
    kw = dict(now=NOW, lat=-35.36, lon=149.16)
    assert weather_from_options(**kw) is None
    assert weather_from_options(**kw, metar=FAIR).source == "METAR YSCB"
    assert weather_from_options(**kw, temp=12).temp_c == 12
    assert weather_from_options(**kw, weather_file=DATA / "forecast_cmac.json").valid_time.hour == 6
    with pytest.raises(InputError) as e:
        weather_from_options(**kw, metar=FAIR, weather_file="x.json")
    assert e.value.field == "weather"


def test_parse_size():
    assert parse_size("0.3x0.2x0.1") == pytest.approx((0.3, 0.2, 0.1))
    assert parse_size("30 x 20 x 10 cm") == pytest.approx((0.3, 0.2, 0.1))
    for bad in ("", "1x2", "0x1x1", "axbxc"):
        with pytest.raises(InputError):
            parse_size(bad)


def test_render_verdict(make_plan):
    console = Console(record=True, width=200)
    v = preflight(make_plan(2.5), None, now=NOW)
    render_verdict(v, console)
    text = console.export_text()
    assert "NO-GO" in text and "payload_mass" in text and "no weather observation" in text


def test_forecast_url_from_the_loopback_server(app, server):  # noqa: F811
    r = run(app, "--zone", "clinic-east", "--parcel-kg", "1.2", "--forecast-url", f"{server}/ok/v1/forecast", "--json", *AT)
    assert r.exit_code == 0, r.output
    d = json.loads(r.stdout)
    assert d["weather"]["source"].startswith("forecast") and d["weather"]["valid_time"].startswith("2026-11-21T06:00")
    assert "interpolated between 10 m and 80 m" in next(c for c in d["checks"] if c["check"] == "wind")["message"]
    r = run(app, "--zone", "clinic-east", "--forecast-url", f"{server}/fail/v1/forecast", *AT)
    assert r.exit_code == 2 and "HTTP 500" in r.stderr
