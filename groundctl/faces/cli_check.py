"""`groundctl check`: plan a delivery and say go or no-go, with every reason.

Exit codes: 0 go, 1 no-go, 2 bad input or an unusable weather source (message on stderr, or a JSON
object on stdout with --json; never a traceback).

This module is also the one path from command-line options to a verdict: `plan_for` (scenario ->
plan), `weather_from_options` (options -> one Weather, the same defaults everywhere: no wind direction
means variable, the worst case), `decide` (plan + weather -> Verdict), `render_verdict` and
`print_error`. `plan`, `check` and `fly` all go through them; the API reaches the same `preflight`
with the same Weather defaults through core.weather.weather_from_dict.
"""

from __future__ import annotations

import json
import re
import sys
import textwrap
from datetime import datetime, timezone
from pathlib import Path
from typing import Optional

import click
import typer
from typer.core import TyperGroup
from rich.console import Console
from rich.table import Table
from rich.text import Text

from groundctl.core.plan import HANDLING_FLAGS, Parcel, build_plan, make_planner
from groundctl.core.preflight import Verdict, preflight
from groundctl.core.weather import Weather, load_weather_file, parse_metar, weather_from_values
from groundctl.errors import GroundctlError, InputError

_STYLE = {"pass": "green", "warn": "yellow", "fail": "bold red"}
_SIZE = re.compile(r"^\s*([\d.]+)\s*[x×*]\s*([\d.]+)\s*[x×*]\s*([\d.]+)\s*(cm|m)?\s*$", re.IGNORECASE)
DROP_METHODS = ("payload_place", "gripper", "winch")
NO_WEATHER = "no weather given: no verdict"

# -- the weather options, declared once for every command that decides ------------------------------
OPT_METAR = typer.Option(None, "--metar", help="METAR text")
OPT_FORECAST = typer.Option(None, "--forecast-url", help="Open-Meteo style forecast endpoint")
OPT_WEATHER_FILE = typer.Option(None, "--weather-file", help="weather JSON (or a saved forecast)")
OPT_WIND = typer.Option(None, "--wind", help="10 m wind speed, m/s")
OPT_WIND_DIR = typer.Option(None, "--wind-dir", help="wind from, degrees true (default: variable, a headwind on "
                                                     "every leg)")
OPT_GUST = typer.Option(None, "--gust", help="10 m gust, m/s")
OPT_PRECIP = typer.Option(None, "--precip", help="precipitation, mm/h")
OPT_VIS = typer.Option(None, "--visibility", help="visibility, m")
OPT_TEMP = typer.Option(None, "--temp", help="temperature, °C")
OPT_CLOUDS = typer.Option(None, "--clouds", help="METAR sky groups, e.g. 'BKN008 OVC020' (hundreds of feet), or NSC")
OPT_WX = typer.Option(None, "--wx", help="METAR present weather, e.g. '-SN BR', or none")
OPT_NOW = typer.Option(None, "--now", help="decide as of this UTC time (ISO 8601); default now")
OPT_TIMEOUT = typer.Option(5.0, "--timeout", help="forecast request timeout, s")


def parse_size(text: str) -> tuple[float, float, float]:
    """'LxWxH' in metres, or with a 'cm' suffix in centimetres: '0.3x0.2x0.1', '30x20x10cm'."""
    m = _SIZE.match(text or "")
    if not m:
        raise InputError(f"expected LxWxH like 0.3x0.2x0.1 or 30x20x10cm, got {text!r}", field="parcel_size")
    scale = 0.01 if (m.group(4) or "m").lower() == "cm" else 1.0
    try:
        dims = tuple(float(g) * scale for g in m.groups()[:3])
    except ValueError:
        raise InputError(f"not numbers: {text!r}", field="parcel_size") from None
    if any(d <= 0 for d in dims):
        raise InputError(f"every dimension must be positive, got {text!r}", field="parcel_size")
    return dims  # type: ignore[return-value]


def parse_now(text: str | None) -> datetime:
    if not text:
        return datetime.now(timezone.utc)
    try:
        t = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise InputError(f"not an ISO 8601 time: {text!r}", field="now") from None
    return t.astimezone(timezone.utc) if t.tzinfo else t.replace(tzinfo=timezone.utc)


_now = parse_now  # the old name


def plan_for(scenario: str | Path, zone: str, *, hub: str | None = None, airframe: str | None = None,
             parcel_kg: float = 1.0, parcel_size: str | None = None, handling: list[str] | tuple[str, ...] = (),
             method: str | None = None, description: str = "parcel"):
    """Scenario (directory or bundled name) -> (scenario, route planner, FlightPlan). Every command
    plans through here, so a bad option is refused the same way everywhere."""
    from groundctl.core.fleet import pydantic_to_input_error
    from groundctl.core.scenario import load_scenario
    from pydantic import ValidationError

    sc = load_scenario(scenario)
    if not sc.fleet.hubs:
        raise InputError("the fleet has no hub", field="hub")
    hub_obj = sc.fleet.hub(hub) if hub else sc.fleet.hubs[0]
    bad = [h for h in handling if h not in HANDLING_FLAGS]
    if bad:
        raise InputError(f"unknown handling flag {bad[0]!r} (known: {', '.join(HANDLING_FLAGS)})", field="handling")
    if method is not None and method not in DROP_METHODS:
        raise InputError(f"unknown drop method {method!r} (known: {', '.join(DROP_METHODS)})", field="method")
    size = dict(zip(("length_m", "width_m", "height_m"), parse_size(parcel_size))) if parcel_size else {}
    try:
        parcel = Parcel(mass_kg=parcel_kg, handling=tuple(handling), description=description, **size)
    except ValidationError as e:
        raise pydantic_to_input_error(e, "parcel") from None
    z = sc.zone(zone)
    planner = make_planner(sc.airspace, hub_obj, sc.fleet.operations)
    plan = build_plan(sc.airspace, sc.fleet, hub_obj.name, z, parcel, airframe_name=airframe,
                      method=method, planner=planner)  # type: ignore[arg-type]
    return sc, planner, plan


def weather_from_options(*, now: datetime, lat: float, lon: float, metar: str | None = None,
                         forecast_url: str | None = None, weather_file: str | Path | None = None,
                         wind: float | None = None, wind_dir: float | None = None, gust: float | None = None,
                         precip: float | None = None, visibility: float | None = None, temp: float | None = None,
                         clouds: str | None = None, wx: str | None = None,
                         timeout_s: float = 5.0, client=None) -> Weather | None:
    """One weather source from command-line options, or None when none was given. More than one source
    is refused rather than silently merged. A wind without a direction is variable (worst case)."""
    values = {"wind": wind, "wind_dir": wind_dir, "gust": gust, "precip": precip, "visibility": visibility,
              "temp": temp, "clouds": clouds, "wx": wx}
    given = [name for name, v in (("--metar", metar), ("--forecast-url", forecast_url),
                                  ("--weather-file", weather_file)) if v]
    if any(v is not None for v in values.values()):
        given.append("--wind/--gust/--precip/--visibility/--temp/--clouds/--wx")
    if len(given) > 1:
        raise InputError(f"give one weather source, not {' and '.join(given)}", field="weather")
    if metar:
        return parse_metar(metar, now=now)
    if weather_file:
        return load_weather_file(weather_file, now=now)
    if forecast_url:
        from groundctl.runtime.weather_fetch import ForecastClient

        client = client or ForecastClient(forecast_url, timeout_s=timeout_s)
        return client.forecast_sync(lat, lon, now=now)
    if given:
        return weather_from_values(now=now, wind_mps=wind, wind_dir_deg=wind_dir, gust_mps=gust,
                                   precip_mmph=precip, visibility_m=visibility, temp_c=temp, clouds=clouds,
                                   present_weather=wx)
    return None


def decide(plan, airspace, *, now: datetime, calibration=None, **weather_options) -> Verdict:
    """Plan + weather options -> the verdict. With no weather the verdict is NO-GO ("no weather
    observation"); `plan` asks `weather_given` first and says there is no verdict instead."""
    w = weather_from_options(now=now, lat=plan.hub.lat, lon=plan.hub.lon, **weather_options)
    return verdict_for(plan, w, airspace, now=now, calibration=calibration)


def verdict_for(plan, weather: Weather | None, airspace, *, now: datetime, calibration=None) -> Verdict:
    kw = {"calibration": calibration} if calibration is not None else {}
    return preflight(plan, weather, now=now, airspace=airspace, **kw)


def weather_given(**weather_options) -> bool:
    return any(v not in (None, "") for k, v in weather_options.items() if k not in ("timeout_s", "client"))


def error_doc(e: GroundctlError) -> dict:
    return {"error": str(e), "kind": type(e).__name__, **e.to_dict()}


def print_error(e: GroundctlError, as_json: bool = False) -> None:
    """A refused input, for a person (stderr) or a machine (one JSON object on stdout)."""
    if as_json:
        typer.echo(json.dumps(error_doc(e), indent=2, default=str))
        return
    err = Console(stderr=True, soft_wrap=True)
    err.print(f"error: {e}", markup=False, highlight=False)
    for sub in getattr(e, "errors", []) or []:
        err.print(f"  - {sub}", markup=False, highlight=False)


try:  # recent typer carries its own copy of click; older ones use click itself
    from typer._click.exceptions import ClickException as _TyperClickException
    _CLICK_ERRORS: tuple[type[Exception], ...] = (_TyperClickException, click.ClickException)
except ImportError:  # pragma: no cover
    _CLICK_ERRORS = (click.ClickException,)


class JsonErrorsGroup(TyperGroup):
    """A command group whose usage errors (a missing --zone, a word where a number goes) are one JSON
    object on stdout, exit 2, whenever --json is on the command line: a machine reading the JSON
    form never has to parse a usage text."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        argv = list(sys.argv[1:] if args is None else args)
        if "--json" not in argv or not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode, **extra)
        try:
            rv = super().main(argv, prog_name, complete_var, standalone_mode=False, **extra)
        except _CLICK_ERRORS as e:
            typer.echo(json.dumps({"error": e.format_message(), "kind": "UsageError", "field": _param_of(e),
                                   "reason": e.format_message()}, indent=2))
            sys.exit(e.exit_code)
        except (click.Abort, typer.Abort):
            sys.exit(1)
        sys.exit(rv if isinstance(rv, int) else 0)


def _param_of(e) -> str | None:
    param = getattr(e, "param", None)
    if param is None:
        return None
    return (param.opts[0] if getattr(param, "opts", None) else param.name)


def _fmt(v) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.1f}" if abs(v) < 1e5 else f"{v:.3g}"
    return str(v)


def _value_limit(c) -> str:
    if c.value is None and c.limit is None:
        return ""
    unit = f" {c.unit}" if c.unit else ""
    if c.limit is None:
        return f"{_fmt(c.value)}{unit}"
    return f"{_fmt(c.value)} / {_fmt(c.limit)}{unit}"


def render_verdict(verdict: Verdict, console: Console) -> None:
    """The verdict an operator reads top to bottom: the answer first, then every check. Wide consoles get
    a table; below 120 columns each check is a line with its message wrapped underneath, so that
    nothing is cut at 80 columns."""
    s = verdict.summary
    head = "[bold green]GO[/]" if verdict.go else f"[bold red]NO-GO[/] ({len(verdict.failures)} failed)"
    if s:
        console.print(f"{head}  {s.get('hub')} -> {s.get('zone')}  airframe {s.get('airframe')}, "
                      f"{s.get('parcel_kg')} kg by {s.get('method')}, "
                      f"{(s.get('distance_out_m', 0) + s.get('distance_back_m', 0)) / 1000:.1f} km")
    else:
        console.print(head)
    if console.width >= 120:
        table = Table(show_lines=False)
        for col in ("check", "status", "value", "limit", "unit"):
            table.add_column(col, overflow="fold", no_wrap=False)
        table.add_column("what it means", overflow="fold", ratio=1)
        for c in verdict.checks:
            style = _STYLE[c.status]
            table.add_row(c.name, f"[{style}]{c.status.upper()}[/]", _fmt(c.value), _fmt(c.limit), c.unit, c.message)
        console.print(table)
    else:
        width = max((len(c.name) for c in verdict.checks), default=10)
        for c in verdict.checks:
            line = Text()
            line.append(f"{c.status.upper():4s}", style=_STYLE[c.status])
            line.append(f"  {c.name:{width}s}  ", style="bold")
            line.append(_value_limit(c))
            console.print(line, overflow="fold")
            # wrapped by hand: a rich Padding would pad every line with spaces to the full width
            for ln in textwrap.wrap(c.message, max(20, console.width - 6), break_on_hyphens=False) or [""]:
                console.print(Text("      " + ln), overflow="fold")
    if verdict.weather is not None:
        w = verdict.weather
        notes = f" ({'; '.join(w.notes)})" if w.notes else ""
        console.print(Text(f"weather: {w.source}, valid {w.valid_time:%Y-%m-%d %H:%MZ}{notes}"), overflow="fold")


def register(app: typer.Typer) -> None:
    """Add `check` to a Typer app."""
    if app.registered_callback is None and not app.registered_commands:
        # a Typer app with one command and no callback runs that command bare ("app ARGS", not
        # "app check ARGS"); a no-op callback keeps `check` a subcommand. An app's own callback,
        # declared before or after, replaces this one.
        @app.callback()
        def _group() -> None:
            """groundctl"""

    @app.command("check")
    def check(
        scenario: str = typer.Argument(..., help="scenario directory (airspace.geojson, fleet.toml, zones.geojson) "
                                                 "or a bundled name: cmac, muhanga"),
        zone: str = typer.Option(..., "--zone", "-z", help="landing zone name"),
        hub: Optional[str] = typer.Option(None, "--hub", help="hub name (default: the fleet's first hub)"),
        airframe: Optional[str] = typer.Option(None, "--airframe", help="airframe name (default: lightest that fits)"),
        parcel_kg: float = typer.Option(1.0, "--parcel-kg", help="parcel gross mass, kg"),
        parcel_size: Optional[str] = typer.Option(None, "--parcel-size", help="LxWxH in m, or 30x20x10cm"),
        handling: list[str] = typer.Option([], "--handling", help=f"handling flag, repeatable: {', '.join(HANDLING_FLAGS)}"),
        method: Optional[str] = typer.Option(None, "--method", help="payload_place, gripper or winch"),
        metar: Optional[str] = OPT_METAR,
        forecast_url: Optional[str] = OPT_FORECAST,
        weather_file: Optional[Path] = OPT_WEATHER_FILE,
        wind: Optional[float] = OPT_WIND,
        wind_dir: Optional[float] = OPT_WIND_DIR,
        gust: Optional[float] = OPT_GUST,
        precip: Optional[float] = OPT_PRECIP,
        visibility: Optional[float] = OPT_VIS,
        temp: Optional[float] = OPT_TEMP,
        clouds: Optional[str] = OPT_CLOUDS,
        wx: Optional[str] = OPT_WX,
        now: Optional[str] = OPT_NOW,
        timeout_s: float = OPT_TIMEOUT,
        as_json: bool = typer.Option(False, "--json", help="print the verdict as JSON (errors too)"),
        vehicle_kind: str = typer.Option("vehicle", "--vehicle-kind",
                                         help="whose energy calibration: vehicle (real aircraft), sim or sitl"),
        data_dir: Optional[Path] = typer.Option(None, "--data-dir",
                                                help="flown flights (GROUNDCTL_DATA or ./data, shared with fly and serve)"),
    ) -> None:
        """Plan a delivery and decide go / no-go: weather, energy, payload, airspace. Exit 0 go, 1 no-go, 2 bad input."""
        from groundctl.runtime.calibration import calibration_from

        try:
            t = parse_now(now)
            sc, _planner, plan = plan_for(scenario, zone, hub=hub, airframe=airframe, parcel_kg=parcel_kg,
                                          parcel_size=parcel_size, handling=handling, method=method)
            cal = calibration_from(data_dir, plan.airframe.name, vehicle_kind)
            verdict = decide(plan, sc.airspace, now=t, calibration=cal, metar=metar, forecast_url=forecast_url,
                             weather_file=weather_file, wind=wind, wind_dir=wind_dir, gust=gust, precip=precip,
                             visibility=visibility, temp=temp, clouds=clouds, wx=wx, timeout_s=timeout_s)
        except GroundctlError as e:
            print_error(e, as_json)
            raise typer.Exit(2) from None
        if as_json:
            typer.echo(json.dumps(verdict.to_dict(), indent=2, default=str))
        else:
            render_verdict(verdict, Console())
        raise typer.Exit(0 if verdict.go else 1)
