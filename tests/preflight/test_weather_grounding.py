"""Weather that grounds drones: cloud base / vertical visibility under cruise height, icing, present
weather nobody can read, and the forecast's low cloud (fetched from a real HTTP server on 127.0.0.1).

Every case is a real report run through the real parser and the real preflight of the CMAC plan
(cruise 60 m above the hub; default airframe clearance 30 m under a ceiling, icing at or below +3 °C).
"""

from __future__ import annotations

import copy
import json
import threading
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

import pytest

from groundctl.core.fleet import parse_fleet
from groundctl.core.preflight import preflight
from groundctl.core.weather import (
    CloudLayer,
    parse_metar,
    parse_open_meteo,
    parse_sky,
    weather_from_dict,
    weather_from_values,
)
from groundctl.errors import InputError
from groundctl.runtime.weather_fetch import ForecastClient

from .conftest import DATA, NOW

M = "YSCB 210600Z 31008KT "  # the fixed part of every METAR below: 8 kt from 310 at 06:00Z on the 21st


def run(make_plan, weather, airframe_update: dict | None = None):
    plan = make_plan(1.2)
    if airframe_update:
        plan = replace(plan, airframe=plan.airframe.model_copy(update=airframe_update))
    assert plan.cruise_alt_m == 60  # the numbers in the messages below depend on it
    return preflight(plan, weather, now=NOW)


# (case, METAR tail, check, status, words the message must hold)
CASES = [
    ("overcast below cruise", "9999 OVC002 12/08 Q1012", "cloud_base", "fail",
     "overcast base 61 m (OVC002) is below cruise 60 m + 30 m clearance = 90 m"),
    ("broken below cruise", "9999 BKN001 12/08 Q1012", "cloud_base", "fail", "broken cloud base 30 m (BKN001)"),
    ("vertical visibility", "0200 FG VV001 09/09 Q1012", "cloud_base", "fail",
     "sky obscured, vertical visibility 30 m (VV001) is below cruise 60 m + 30 m clearance = 90 m"),
    ("snow at -2", "4000 -SN BKN040 M02/M03 Q1012", "icing", "fail", "light snow (-SN) at -2.0 °C"),
    ("freezing fog", "0400 FZFG NSC M01/M01 Q1012", "icing", "fail", "freezing fog (FZFG) at -1.0 °C"),
    ("freezing drizzle, even at +4", "9999 -FZDZ BKN040 04/03 Q1012", "icing", "fail", "light freezing drizzle (-FZDZ)"),
    ("rain at +2", "9999 -RA SCT030 02/01 Q1012", "icing", "fail", "light rain (-RA) at 2.0 °C"),
    ("mist at +1", "3000 BR SCT030 01/00 Q1012", "icing", "fail", "mist (BR) at 1.0 °C"),
    ("cloud in the flight band at sub-zero", "9999 SCT002 BKN040 M03/M05 Q1012", "icing", "fail",
     "scattered cloud base 61 m (SCT002) in the flight band (up to 90 m) at -3.0 °C"),
    ("rain at +4, close to the icing line", "9999 -RA SCT030 04/02 Q1012", "icing", "warn",
     "4.0 °C is within 2 °C of +3 °C"),
    ("rain at +12", "9999 -RA SCT030 12/08 Q1012", "icing", "pass", "12.0 °C, above the +3 °C icing line"),
    ("unrecognised group", "9999 XXYY SCT030 12/05 Q1012", "significant_weather", "warn",
     "present weather XXYY could not be read: unknown, not none"),
    ("automatic station //", "9999 // SCT030 12/05 Q1012", "significant_weather", "warn",
     "present weather // could not be read: unknown, not none"),
    ("unknown group near the icing line", "9999 XXYY SCT030 02/01 Q1012", "icing", "warn",
     "present weather XXYY could not be read"),
    ("few and scattered below cruise are fine", "9999 FEW001 SCT002 BKN030 12/05 Q1012", "cloud_base", "pass",
     "broken cloud base 914 m (BKN030) is above cruise 60 m + 30 m clearance = 90 m"),
    ("ceiling just above the margin", "9999 BKN003 12/05 Q1012", "cloud_base", "warn", "close above"),
    ("ceiling not measured", "9999 BKN/// 12/05 Q1012", "cloud_base", "warn", "broken cloud base not measured"),
    ("no cloud group", "9999 12/05 Q1012", "cloud_base", "warn", "cloud not reported: unknown"),
    ("CAVOK", "CAVOK 12/05 Q1012", "cloud_base", "pass", "no cloud reported that matters"),
    ("automatic station, sky not measured", "9999 // ////// 12/05 Q1012", "cloud_base", "warn",
     "cloud not reported: unknown"),
]


@pytest.mark.parametrize("case, tail, check, status, words", CASES, ids=[c[0] for c in CASES])
def test_metar_case(make_plan, case, tail, check, status, words):
    v = run(make_plan, parse_metar(M + tail, now=NOW))
    c = v.check(check)
    assert c.status == status, c.message
    assert words in c.message
    if status == "fail":
        assert not v.go and check in v.to_dict()["failures"]


def test_automatic_station_slashes():
    w = parse_metar("LFPG 210600Z AUTO 24012KT 9999 // ///////// 12/08 Q1003", now=NOW)
    assert w.unknown_weather == ("//",) and w.clouds is None and "cloud not measured (/////////)" in w.notes


def test_fail_carries_the_numbers(make_plan):
    c = run(make_plan, parse_metar(M + "9999 OVC002 12/08 Q1012", now=NOW)).check("cloud_base")
    assert c.value == pytest.approx(61, abs=0.5) and c.limit == 90 and c.unit == "m"
    c = run(make_plan, parse_metar(M + "4000 -SN BKN040 M02/M03 Q1012", now=NOW)).check("icing")
    assert c.value == -2 and c.limit == 3 and c.unit == "°C"


def test_fair_weather_goes_with_every_new_check_passing(make_plan):
    v = run(make_plan, parse_metar(M + "9999 FEW030 18/05 Q1012", now=NOW))
    assert {v.check(n).status for n in ("cloud_base", "icing", "significant_weather")} == {"pass"}


def test_unknown_group_is_kept_not_dropped_and_bad_wind_is_still_an_error():
    w = parse_metar(M + "9999 XXYY SCT030 12/05 Q1012", now=NOW)
    assert w.unknown_weather == ("XXYY",) and w.present_weather == ()
    assert any("could not be read" in n for n in w.notes)
    with pytest.raises(InputError):  # a broken wind group is not "unknown weather": refuse the report
        parse_metar("YSCB 210600Z 99999KT 9999 18/05", now=NOW)


# -- thresholds per airframe ------------------------------------------------------------------------


def test_airframe_thresholds(make_plan):
    snow = parse_metar(M + "4000 -SN BKN040 M02/M03 Q1012", now=NOW)
    v = run(make_plan, snow, {"allow_icing": True})
    assert v.check("icing").status == "warn" and "allow_icing" in v.check("icing").message
    rain2 = parse_metar(M + "9999 -RA SCT030 02/01 Q1012", now=NOW)
    assert run(make_plan, rain2, {"icing_temp_c": 0.0}).check("icing").status == "warn"  # 2 °C, near 0
    assert run(make_plan, rain2, {"icing_temp_c": -3.0}).check("icing").status == "pass"
    ovc = parse_metar(M + "9999 OVC004 12/08 Q1012", now=NOW)  # 122 m
    assert run(make_plan, ovc).check("cloud_base").status == "pass"
    c = run(make_plan, ovc, {"cloud_clearance_m": 70.0}).check("cloud_base")
    assert c.status == "fail" and "cruise 60 m + 70 m clearance = 130 m" in c.message


def test_thresholds_come_from_fleet_toml():
    import tomllib

    from .conftest import CMAC

    data = tomllib.loads((CMAC / "fleet.toml").read_text())
    a = parse_fleet(data).airframes[0]
    assert (a.cloud_clearance_m, a.icing_temp_c, a.allow_icing) == (30.0, 3.0, False)  # the defaults
    data["airframe"][0].update(cloud_clearance_m=50, icing_temp_c=1.5, allow_icing=True)
    a = parse_fleet(data).airframes[0]
    assert (a.cloud_clearance_m, a.icing_temp_c, a.allow_icing) == (50.0, 1.5, True)
    data["airframe"][0]["icing_temp_c"] = 40
    with pytest.raises(InputError) as e:
        parse_fleet(data, "fleet.toml")
    assert "icing_temp_c" in str(e.value)


# -- command-line values and weather files ----------------------------------------------------------


def test_command_line_clouds_and_present_weather(make_plan):
    w = weather_from_values(now=NOW, wind_mps=3, temp_c=-1, clouds="VV002", present_weather="FZFG")
    v = run(make_plan, w)
    assert v.check("cloud_base").status == "fail" and v.check("icing").status == "fail"
    assert v.check("significant_weather").status == "fail"  # FZ is severe on its own
    none = weather_from_values(now=NOW, wind_mps=3, temp_c=10, clouds="NSC", present_weather="none")
    v = run(make_plan, none)
    assert {v.check(n).status for n in ("cloud_base", "icing", "significant_weather")} == {"pass"}
    # left out is unknown, never none
    bare = run(make_plan, weather_from_values(now=NOW, wind_mps=3, temp_c=2))
    assert bare.check("significant_weather").status == "warn" and bare.check("cloud_base").status == "warn"
    assert bare.check("icing").status == "warn"
    for bad, field in ((dict(clouds="OVC4"), "clouds"), (dict(present_weather="-XX"), "wx[0]")):
        with pytest.raises(InputError) as e:
            weather_from_values(now=NOW, wind_mps=3, **bad)
        assert e.value.field == field


def test_parse_sky():
    assert parse_sky("BKN008 OVC020CB") == (CloudLayer("BKN", 8 * 30.48, None), CloudLayer("OVC", 20 * 30.48, "CB"))
    assert parse_sky("nsc") == () and parse_sky("CAVOK") == ()
    with pytest.raises(InputError):
        parse_sky("NSC BKN008")


def test_weather_file_round_trip_with_clouds_and_present_weather():
    w = parse_metar(M + "4000 -SN BR BKN005 OVC040 M02/M03 Q1012", now=NOW)
    back = weather_from_dict(json.loads(json.dumps(w.to_dict())))
    assert back == w
    assert back.ceiling.base_m == pytest.approx(152.4) and back.present_weather == ("-SN", "BR")
    old = {"valid_time": "2026-11-21T06:00Z", "wind": [{"height_m": 10, "speed_mps": 3}]}
    assert weather_from_dict(old).present_weather is None and weather_from_dict(old).clouds is None
    with pytest.raises(InputError) as e:
        weather_from_dict({**old, "present_weather": ["SN", "XX"]})
    assert e.value.field == "weather.present_weather[1]"
    with pytest.raises(InputError) as e:
        weather_from_dict({**old, "clouds": [{"cover": "LOTS", "base_m": 100}]})
    assert e.value.field == "weather.clouds[0].cover"


# -- the forecast's low cloud ---------------------------------------------------------------------


BASE = json.loads((DATA / "forecast_cmac.json").read_text())
HOUR = BASE["hourly"]["time"].index("2026-11-21T06:00")


def forecast(**at_six) -> bytes:
    """The CMAC forecast with extra hourly series; each given value sits at 06:00, the hour nearest NOW."""
    doc = copy.deepcopy(BASE)
    n = len(doc["hourly"]["time"])
    for key, value in at_six.items():
        series = [None] * n
        series[HOUR] = value
        doc["hourly"][key] = series
        unit = {"cloud_cover_low": "%", "dew_point_2m": "°C", "weather_code": "wmo code"}.get(key)
        if unit:
            doc["hourly_units"][key] = unit
    if "temperature_2m" in at_six:
        doc["hourly"]["temperature_2m"] = [at_six["temperature_2m"]] * n
    return json.dumps(doc).encode()


VARIANTS = {
    # 90 % low cloud, dew point 0.4 °C under 17.3 °C: base about 50 m, under the 90 m the flight needs
    "/lowcloud/v1/forecast": forecast(cloud_cover_low=90, dew_point_2m=16.9),
    # the same cloud with a 6 °C spread: base about 750 m
    "/highbase/v1/forecast": forecast(cloud_cover_low=90, dew_point_2m=11.3),
    # low cloud without a dew point: amount known, height not
    "/nobase/v1/forecast": forecast(cloud_cover_low=80),
    "/snow/v1/forecast": forecast(cloud_cover_low=0, weather_code=73, temperature_2m=-1.0),
    "/clear/v1/forecast": forecast(cloud_cover_low=0, weather_code=1),
    "/oddcode/v1/forecast": forecast(cloud_cover_low=0, weather_code=4, temperature_2m=2.0),
}


class Handler(BaseHTTPRequestHandler):
    queries: list[dict] = []

    def log_message(self, *args) -> None:
        pass

    def do_GET(self) -> None:
        url = urlparse(self.path)
        Handler.queries.append(parse_qs(url.query))
        body = VARIANTS.get(url.path)
        self.send_response(200 if body else 404)
        self.send_header("Content-Type", "application/json")
        body = body or b'{"error": true, "reason": "no such endpoint"}'
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture(scope="module")
def meteo():
    srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    srv.daemon_threads = True
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()
    srv.server_close()


def fetch(meteo, path):
    return ForecastClient(f"{meteo}{path}", timeout_s=5).forecast_sync(-35.363261, 149.165230, now=NOW)


def test_forecast_asks_for_low_cloud_dew_point_and_weather_code(meteo):
    fetch(meteo, "/clear/v1/forecast")
    asked = Handler.queries[-1]["hourly"][0].split(",")
    assert {"cloud_cover_low", "dew_point_2m", "weather_code"} <= set(asked)


def test_forecast_low_cloud_below_cruise_fails(meteo, make_plan):
    w = fetch(meteo, "/lowcloud/v1/forecast")
    (layer,) = w.clouds
    assert layer.cover == "BKN" and layer.base_m == pytest.approx(0.4 * 125, abs=1)  # 90 % is 7 oktas
    c = run(make_plan, w).check("cloud_base")
    assert c.status == "fail" and "forecast low cloud 90 %" in c.message and "dew-point spread" in c.message


def test_forecast_low_cloud_well_above_cruise_passes(meteo, make_plan):
    w = fetch(meteo, "/highbase/v1/forecast")
    assert w.clouds[0].base_m == pytest.approx(6.0 * 125, abs=1)
    assert run(make_plan, w).check("cloud_base").status == "pass"


def test_forecast_low_cloud_without_a_height_warns(meteo, make_plan):
    w = fetch(meteo, "/nobase/v1/forecast")
    assert w.clouds[0].cover == "BKN" and w.clouds[0].base_m is None
    c = run(make_plan, w).check("cloud_base")
    assert c.status == "warn" and "somewhere below about 2000 m" in c.message


def test_forecast_snow_code_ices(meteo, make_plan):
    w = fetch(meteo, "/snow/v1/forecast")
    assert w.present_weather == ("SN",) and w.clouds == ()
    c = run(make_plan, w).check("icing")
    assert c.status == "fail" and "snow (SN) at -1.0 °C" in c.message


def test_forecast_clear_and_odd_codes(meteo, make_plan):
    v = run(make_plan, fetch(meteo, "/clear/v1/forecast"))
    assert v.check("significant_weather").status == "pass" and v.check("cloud_base").status == "pass"
    w = fetch(meteo, "/oddcode/v1/forecast")  # 4 (smoke) is not in Open-Meteo's set: unknown, not none
    assert w.unknown_weather == ("WMO weather code 4",)
    v = run(make_plan, w)
    assert v.check("significant_weather").status == "warn" and v.check("icing").status == "warn"


def test_forecast_without_the_new_series_is_unknown_not_clear():
    w = parse_open_meteo(BASE, now=NOW)
    assert w.clouds is None and w.present_weather is None


def test_saved_forecast_file_with_low_cloud(make_plan):
    from groundctl.core.weather import load_weather_file

    w = load_weather_file(DATA / "forecast_cmac_lowcloud.json", now=NOW)
    assert w.present_weather == ("FG",) and w.clouds[0].base_m == pytest.approx(50, abs=1)
    c = run(make_plan, w).check("cloud_base")
    assert c.status == "fail" and "base estimated from the 0.4 °C dew-point spread" in c.message
