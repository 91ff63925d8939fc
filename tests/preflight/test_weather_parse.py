"""Weather parsers: METAR of many shapes, Open-Meteo JSON, weather files, command-line values, the wind profile."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from groundctl.core.weather import (
    KT_TO_MPS,
    Weather,
    WindLevel,
    load_weather_file,
    parse_metar,
    parse_open_meteo,
    weather_from_dict,
    weather_from_values,
)
from groundctl.errors import InputError

from .conftest import DATA, NOW

# -- METAR ---------------------------------------------------------------------------------------


def test_plain_metar_wind_visibility_temperature():
    w = parse_metar("YSCB 210600Z 31008KT 9999 FEW030 18/05 Q1012", now=NOW)
    assert w.source == "METAR YSCB"
    assert w.valid_time == datetime(2026, 11, 21, 6, 0, tzinfo=timezone.utc)
    assert w.wind == (WindLevel(10.0, pytest.approx(8 * KT_TO_MPS, rel=1e-4), 310.0),)
    assert w.gust_mps is None
    assert w.visibility_m == 10000
    assert w.temp_c == 18.0
    assert w.precip_mmph == 0.0
    assert w.age_s(NOW) == 1800


def test_calm():
    w = parse_metar("KJFK 210551Z 00000KT 10SM CLR 10/M02 A3012", now=NOW)
    assert w.wind[0].speed_mps == 0 and w.wind[0].dir_deg is None
    assert w.visibility_m == pytest.approx(16093.44)
    assert w.temp_c == 10.0
    assert w.wind_at(60).speed_mps == 0


def test_variable_light_wind_and_cavok():
    w = parse_metar("YSCB 210600Z VRB03KT CAVOK 18/05 Q1012", now=NOW)
    assert w.wind[0].dir_deg is None
    assert w.wind[0].speed_mps == pytest.approx(3 * KT_TO_MPS, rel=1e-4)
    assert w.visibility_m == 10000
    assert any("variable" in n for n in w.notes)


def test_gusting_with_variable_range():
    w = parse_metar("YSCB 210600Z 31015G25KT 280V340 9999 FEW030 18/05 Q1012", now=NOW)
    assert w.wind[0].speed_mps == pytest.approx(15 * KT_TO_MPS, rel=1e-4)
    assert w.gust_mps == pytest.approx(25 * KT_TO_MPS, rel=1e-4)
    assert w.wind_dir_range_deg == (280.0, 340.0)
    at = w.wind_at(60)
    assert at.dir_range_deg == (280.0, 340.0)


def test_metres_per_second_and_rain():
    w = parse_metar("UUEE 210600Z 27008MPS 5000 -RA BR OVC010 02/01 Q1002", now=NOW)
    assert w.wind[0].speed_mps == 8.0
    assert w.visibility_m == 5000
    assert w.precip_mmph == 2.5  # light rain, top of the AMS "light" band
    assert "BR" in w.phenomena
    assert any("estimated" in n for n in w.notes)


def test_thunderstorm_heavy_rain_and_vicinity_showers():
    w = parse_metar("YSCB 210600Z 31015KT 3000 +TSRA VCSH BKN020CB 18/15 Q1008", now=NOW)
    assert "TS" in w.phenomena and "CB" in w.phenomena
    assert w.precip_mmph == 15.0


def test_us_hourly_precip_remark_wins_over_estimate():
    w = parse_metar("KORD 210551Z 27015G22KT 2 1/2SM -SN BR OVC008 M02/M04 A2990 RMK P0012", now=NOW)
    assert w.precip_mmph == pytest.approx(0.12 * 25.4)
    assert w.temp_c == -2.0
    assert w.visibility_m == pytest.approx(2.5 * 1609.344)


def test_missing_wind_and_visibility_groups():
    w = parse_metar("EGLL 210620Z ///// //// // ////// 12/10 Q1020", now=NOW)
    assert w.wind == ()
    assert w.wind_at(60) is None
    assert w.visibility_m is None  # the parser alone would say 10 km here
    assert "wind group missing" in w.notes and "visibility group missing" in w.notes


def test_month_rolls_back_for_a_report_from_last_month():
    now = datetime(2026, 12, 1, 0, 20, tzinfo=timezone.utc)
    w = parse_metar("YSCB 302350Z 31008KT 9999 18/05 Q1012", now=now)
    assert w.valid_time == datetime(2026, 11, 30, 23, 50, tzinfo=timezone.utc)
    w = parse_metar("YSCB 312350Z 31008KT 9999 18/05 Q1012", now=datetime(2026, 3, 1, 0, 5, tzinfo=timezone.utc))
    assert w.valid_time == datetime(2026, 1, 31, 23, 50, tzinfo=timezone.utc)  # February has no 31st


@pytest.mark.parametrize("text", ["hello world", "", "   ", "KXYZ 2106Z garbage", "YSCB 210600Z 99999KT 9999 18/05",
                                  "YSCB 219900Z 31008KT 9999 18/05 Q1012"])
def test_garbage_names_the_metar_field(text):
    with pytest.raises(InputError) as e:
        parse_metar(text, now=NOW)
    assert e.value.field == "metar"


def test_naive_now_refused():
    with pytest.raises(InputError) as e:
        parse_metar("YSCB 210600Z 31008KT 9999 18/05 Q1012", now=datetime(2026, 11, 21, 6, 30))
    assert e.value.field == "now"


# -- wind profile ----------------------------------------------------------------------------------


def test_power_law_extrapolation_from_10_m():
    w = weather_from_values(now=NOW, wind_mps=10, wind_dir_deg=270)
    at = w.wind_at(60)
    assert at.speed_mps == pytest.approx(10 * 6 ** (1 / 7))
    assert "1/7 power-law" in at.how
    assert w.gust_at(60) is None


def test_interpolation_between_levels_and_direction_across_north():
    w = Weather(wind=(WindLevel(120, 12.0, 10.0), WindLevel(10, 4.0, 350.0), WindLevel(80, 10.0, 0.0)),
                valid_time=NOW, source="t")
    at = w.wind_at(45)
    assert at.speed_mps == pytest.approx(4 + (45 - 10) / 70 * 6)
    assert at.dir_deg == pytest.approx(355.0)
    assert "interpolated" in at.how
    assert w.wind_at(80).speed_mps == 10.0
    assert w.wind_at(150).speed_mps == pytest.approx(12 * (150 / 120) ** (1 / 7))


@given(st.floats(0, 40), st.floats(1, 119), st.floats(1, 119))
def test_wind_profile_never_falls_with_height(v10, h1, h2):
    w = weather_from_values(now=NOW, wind_mps=v10, wind_dir_deg=180)
    lo, hi = sorted((h1, h2))
    assert w.wind_at(lo).speed_mps <= w.wind_at(hi).speed_mps + 1e-9


# -- Open-Meteo ------------------------------------------------------------------------------------


def forecast():
    return json.loads((DATA / "forecast_cmac.json").read_text())


def test_open_meteo_nearest_hour_and_units():
    w = parse_open_meteo(forecast(), now=NOW)  # 06:30 -> nearest is 06:00 or 07:00; ties go to the first
    assert w.valid_time == datetime(2026, 11, 21, 6, 0, tzinfo=timezone.utc)
    assert [lv.height_m for lv in w.wind] == [10, 80, 120]
    assert w.wind[0].speed_mps == pytest.approx(14.4 / 3.6)
    assert w.wind[1].dir_deg == 304
    assert w.gust_mps == pytest.approx(27.0 / 3.6)
    assert w.precip_mmph == 0.1
    assert w.visibility_m == 22800
    assert w.temp_c == 17.3
    at = w.wind_at(60)
    assert "interpolated between 10 m and 80 m" in at.how
    w2 = parse_open_meteo(forecast(), now=datetime(2026, 11, 21, 8, 40, tzinfo=timezone.utc))
    assert w2.valid_time.hour == 9


def test_open_meteo_metres_per_second_unixtime_and_offset():
    obj = {"utc_offset_seconds": 36000, "hourly_units": {"wind_speed_10m": "m/s", "temperature_2m": "°F"},
           "hourly": {"time": ["2026-11-21T16:00", "2026-11-21T17:00"], "wind_speed_10m": [5.0, 6.0],
                      "wind_direction_10m": [90, 100], "temperature_2m": [50.0, None]}}
    w = parse_open_meteo(obj, now=NOW)  # 16:00 at UTC+10 is 06:00Z
    assert w.valid_time == datetime(2026, 11, 21, 6, 0, tzinfo=timezone.utc)
    assert w.wind[0].speed_mps == 5.0
    assert w.temp_c == pytest.approx(10.0)
    assert w.visibility_m is None and w.gust_mps is None
    unix = {"hourly_units": {"time": "unixtime", "wind_speed_10m": "kn"},
            "hourly": {"time": [int(NOW.timestamp())], "wind_speed_10m": [10]}}
    assert parse_open_meteo(unix, now=NOW).wind[0].speed_mps == pytest.approx(10 * KT_TO_MPS)


@pytest.mark.parametrize("mutate, field", [
    (lambda o: o.pop("hourly"), "forecast.hourly"),
    (lambda o: o["hourly"].update(time=[]), "forecast.hourly.time"),
    (lambda o: o["hourly"]["wind_speed_10m"].pop(), "forecast.hourly.wind_speed_10m"),
    (lambda o: o["hourly_units"].update(wind_speed_10m="furlong/fortnight"), "forecast.hourly_units.wind_speed_10m"),
    (lambda o: o["hourly"]["time"].__setitem__(2, "yesterday"), "forecast.hourly.time[2]"),
    (lambda o: o["hourly"]["wind_speed_10m"].__setitem__(2, "fast"), "forecast.hourly.wind_speed_10m[2]"),
])
def test_open_meteo_bad_shapes_name_the_field(mutate, field):
    obj = forecast()
    mutate(obj)
    with pytest.raises(InputError) as e:
        parse_open_meteo(obj, now=NOW)
    assert e.value.field == field


# -- files and values ------------------------------------------------------------------------------


def test_weather_file_round_trip(tmp_path):
    w = load_weather_file(DATA / "weather_calm.json")
    assert w.source == "hub anemometer" and w.wind[0].speed_mps == 3.0
    assert weather_from_dict(json.loads(json.dumps(w.to_dict()))) == w
    saved = tmp_path / "forecast.json"
    saved.write_text((DATA / "forecast_cmac.json").read_text())
    assert load_weather_file(saved, now=NOW).wind[0].height_m == 10
    with pytest.raises(InputError):
        load_weather_file(saved)


@pytest.mark.parametrize("obj, field", [
    ({"wind": []}, "weather.valid_time"),
    ({"valid_time": "2026-11-21T06:00"}, "weather.valid_time"),
    ({"valid_time": "2026-11-21T06:00Z", "wind": [{"height_m": 10, "speed_mps": -1}]}, "weather.wind[0].speed_mps"),
    ({"valid_time": "2026-11-21T06:00Z", "gust_mps": "strong"}, "weather.gust_mps"),
    ({"valid_time": "2026-11-21T06:00Z", "windspeed": 3}, "weather"),
])
def test_weather_dict_errors_name_the_field(obj, field):
    with pytest.raises(InputError) as e:
        weather_from_dict(obj)
    assert e.value.field == field


def test_weather_file_errors(tmp_path):
    with pytest.raises(InputError, match="file not found"):
        load_weather_file(tmp_path / "nope.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{")
    with pytest.raises(InputError, match="not valid JSON"):
        load_weather_file(bad)


def test_command_line_values():
    w = weather_from_values(now=NOW, wind_mps=6, wind_dir_deg=360, gust_mps=9, precip_mmph=0, visibility_m=8000, temp_c=12)
    assert w.wind[0].dir_deg == 0 and w.valid_time == NOW and w.source == "command line"
    with pytest.raises(InputError) as e:
        weather_from_values(now=NOW, wind_mps=6, gust_mps=3)
    assert e.value.field == "gust"
    with pytest.raises(InputError) as e:
        weather_from_values(now=NOW, wind_dir_deg=90)
    assert e.value.field == "wind_dir"
    with pytest.raises(InputError) as e:
        weather_from_values(now=NOW, wind_mps=float("nan"))
    assert e.value.field == "wind"
