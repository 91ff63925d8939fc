"""`groundctl check`: plan a delivery and say go or no-go, with every reason.

Exit codes: 0 go, 1 no-go, 2 bad input or an unusable weather source (message on stderr, no traceback).
`weather_from_options` and `render_verdict` are shared with the main CLI's plan/fly commands.
"""

from __future__ import annotations

import json
import re
from datetime import datetime, timezone
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from groundctl.core.airspace import load_airspace
from groundctl.core.fleet import load_fleet, load_landing_zones
from groundctl.core.plan import HANDLING_FLAGS, Parcel, build_plan
from groundctl.core.preflight import Verdict, preflight
from groundctl.core.weather import Weather, load_weather_file, parse_metar, weather_from_values
from groundctl.errors import GroundctlError, InputError

_STYLE = {"pass": "green", "warn": "yellow", "fail": "bold red"}
_SIZE = re.compile(r"^\s*([\d.]+)\s*[x×*]\s*([\d.]+)\s*[x×*]\s*([\d.]+)\s*(cm|m)?\s*$", re.IGNORECASE)


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


def weather_from_options(*, now: datetime, lat: float, lon: float, metar: str | None = None,
                         forecast_url: str | None = None, weather_file: str | Path | None = None,
                         wind: float | None = None, wind_dir: float | None = None, gust: float | None = None,
                         precip: float | None = None, visibility: float | None = None, temp: float | None = None,
                         timeout_s: float = 5.0, client=None) -> Weather | None:
    """One weather source from command-line options, or None when none was given (preflight then
    fails with "no weather observation"). More than one source is refused rather than silently merged."""
    values = {"wind": wind, "wind_dir": wind_dir, "gust": gust, "precip": precip, "visibility": visibility,
              "temp": temp}
    given = [name for name, v in (("--metar", metar), ("--forecast-url", forecast_url),
                                  ("--weather-file", weather_file)) if v]
    if any(v is not None for v in values.values()):
        given.append("--wind/--gust/--precip/--visibility/--temp")
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
                                   precip_mmph=precip, visibility_m=visibility, temp_c=temp)
    return None


def _fmt(v) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.1f}" if abs(v) < 1e5 else f"{v:.3g}"
    return str(v)


def render_verdict(verdict: Verdict, console: Console) -> None:
    """The verdict as a table an operator reads top to bottom: the answer first, then every check."""
    s = verdict.summary
    head = "[bold green]GO[/]" if verdict.go else f"[bold red]NO-GO[/] ({len(verdict.failures)} failed)"
    if s:
        console.print(f"{head}  {s.get('hub')} -> {s.get('zone')}  airframe {s.get('airframe')}, "
                      f"{s.get('parcel_kg')} kg by {s.get('method')}, "
                      f"{(s.get('distance_out_m', 0) + s.get('distance_back_m', 0)) / 1000:.1f} km")
    else:
        console.print(head)
    table = Table(show_lines=False)
    for col in ("check", "status", "value", "limit", "unit", "what it means"):
        table.add_column(col, overflow="fold")
    for c in verdict.checks:
        style = _STYLE[c.status]
        table.add_row(c.name, f"[{style}]{c.status.upper()}[/]", _fmt(c.value), _fmt(c.limit), c.unit, c.message)
    console.print(table)
    if verdict.weather is not None:
        w = verdict.weather
        notes = f" ({'; '.join(w.notes)})" if w.notes else ""
        console.print(f"weather: {w.source}, valid {w.valid_time:%Y-%m-%d %H:%MZ}{notes}")


def _now(text: str | None) -> datetime:
    if not text:
        return datetime.now(timezone.utc)
    try:
        t = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise InputError(f"not an ISO 8601 time: {text!r}", field="now") from None
    return t if t.tzinfo else t.replace(tzinfo=timezone.utc)


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
        scenario_dir: Path = typer.Argument(..., help="directory with airspace.geojson, fleet.toml, zones.geojson"),
        zone: str = typer.Option(..., "--zone", help="landing zone name"),
        hub: Optional[str] = typer.Option(None, "--hub", help="hub name (default: the fleet's first hub)"),
        airframe: Optional[str] = typer.Option(None, "--airframe", help="airframe name (default: lightest that fits)"),
        parcel_kg: float = typer.Option(1.0, "--parcel-kg", help="parcel gross mass, kg"),
        parcel_size: Optional[str] = typer.Option(None, "--parcel-size", help="LxWxH in m, or 30x20x10cm"),
        handling: list[str] = typer.Option([], "--handling", help=f"handling flag, repeatable: {', '.join(HANDLING_FLAGS)}"),
        method: Optional[str] = typer.Option(None, "--method", help="payload_place, gripper or winch"),
        metar: Optional[str] = typer.Option(None, "--metar", help="METAR text"),
        forecast_url: Optional[str] = typer.Option(None, "--forecast-url", help="Open-Meteo style forecast endpoint"),
        weather_file: Optional[Path] = typer.Option(None, "--weather-file", help="weather JSON (or a saved forecast)"),
        wind: Optional[float] = typer.Option(None, "--wind", help="10 m wind speed, m/s"),
        wind_dir: Optional[float] = typer.Option(None, "--wind-dir", help="wind from, degrees true"),
        gust: Optional[float] = typer.Option(None, "--gust", help="10 m gust, m/s"),
        precip: Optional[float] = typer.Option(None, "--precip", help="precipitation, mm/h"),
        visibility: Optional[float] = typer.Option(None, "--visibility", help="visibility, m"),
        temp: Optional[float] = typer.Option(None, "--temp", help="temperature, °C"),
        now: Optional[str] = typer.Option(None, "--now", help="check as of this UTC time (ISO 8601); default now"),
        timeout_s: float = typer.Option(5.0, "--timeout", help="forecast request timeout, s"),
        as_json: bool = typer.Option(False, "--json", help="print the verdict as JSON"),
    ) -> None:
        """Plan a delivery and decide go / no-go: weather, energy, payload, airspace. Exit 0 go, 1 no-go, 2 bad input."""
        err = Console(stderr=True, soft_wrap=True)
        try:
            t = _now(now)
            d = scenario_dir
            if not d.is_dir():
                raise InputError("not a directory", field=str(d))
            airspace = load_airspace(d / "airspace.geojson")
            fleet = load_fleet(d / "fleet.toml")
            zones = {z.name: z for z in load_landing_zones(d / "zones.geojson")}
            if zone not in zones:
                raise InputError(f"unknown zone {zone!r} (known: {', '.join(zones)})", field="zone")
            if not fleet.hubs:
                raise InputError("the fleet has no hub", field="hub")
            hub_obj = fleet.hub(hub) if hub else fleet.hubs[0]
            bad = [h for h in handling if h not in HANDLING_FLAGS]
            if bad:
                raise InputError(f"unknown handling flag {bad[0]!r} (known: {', '.join(HANDLING_FLAGS)})", field="handling")
            size = dict(zip(("length_m", "width_m", "height_m"), parse_size(parcel_size))) if parcel_size else {}
            try:
                parcel = Parcel(mass_kg=parcel_kg, handling=tuple(handling), **size)
            except Exception as e:  # pydantic ValidationError: name the option
                from pydantic import ValidationError

                from groundctl.core.fleet import pydantic_to_input_error
                if isinstance(e, ValidationError):
                    raise pydantic_to_input_error(e, "parcel") from None
                raise
            if method is not None and method not in ("payload_place", "gripper", "winch"):
                raise InputError(f"unknown drop method {method!r} (known: payload_place, gripper, winch)", field="method")
            plan = build_plan(airspace, fleet, hub_obj.name, zones[zone], parcel, airframe_name=airframe,
                              method=method)  # type: ignore[arg-type]
            weather = weather_from_options(now=t, lat=hub_obj.lat, lon=hub_obj.lon, metar=metar,
                                           forecast_url=forecast_url, weather_file=weather_file, wind=wind,
                                           wind_dir=wind_dir, gust=gust, precip=precip, visibility=visibility,
                                           temp=temp, timeout_s=timeout_s)
            verdict = preflight(plan, weather, now=t, airspace=airspace)
        except GroundctlError as e:
            err.print(f"error: {e}", markup=False, highlight=False)
            raise typer.Exit(2) from None
        if as_json:
            typer.echo(json.dumps(verdict.to_dict(), indent=2, default=str))
        else:
            render_verdict(verdict, Console(width=160))
        raise typer.Exit(0 if verdict.go else 1)
