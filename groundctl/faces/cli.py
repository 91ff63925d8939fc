"""groundctl command line: plan, check, fly, demo, serve."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from groundctl.errors import GroundctlError

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Ground station for drone parcel delivery: plan, check, fly, serve.")
console = Console()
err = Console(stderr=True)


@app.callback()
def _root() -> None:
    """Ground station for drone parcel delivery."""


def fail(e: GroundctlError, code: int = 2) -> None:
    err.print(f"[bold red]error:[/] {e}")
    for sub in getattr(e, "errors", []) or []:
        err.print(f"  - {sub}")
    raise typer.Exit(code)


def _parcel(kg: float, size: Optional[str], handling: list[str], description: str = "parcel"):
    from groundctl.core.fleet import pydantic_to_input_error
    from groundctl.core.plan import Parcel
    from pydantic import ValidationError

    dims = {}
    if size:
        try:
            l, w, h = (float(v) for v in size.lower().split("x"))
        except ValueError:
            raise GroundctlError("must be LxWxH in metres, e.g. 0.3x0.2x0.1", field="parcel_size") from None
        dims = {"length_m": l, "width_m": w, "height_m": h}
    try:
        return Parcel(mass_kg=kg, handling=tuple(handling), description=description, **dims)
    except ValidationError as e:
        raise pydantic_to_input_error(e, "parcel") from None


def plan_delivery(scenario: str, zone: str, hub: Optional[str], airframe: Optional[str], parcel_kg: float,
                  parcel_size: Optional[str], handling: list[str], method: Optional[str]):
    """Load a scenario and plan; shared by plan, check-style output and fly."""
    from groundctl.core.plan import build_plan, make_planner
    from groundctl.core.scenario import load_scenario

    sc = load_scenario(scenario)
    hub_name = hub or sc.fleet.hubs[0].name
    parcel = _parcel(parcel_kg, parcel_size, handling)
    planner = make_planner(sc.airspace, sc.fleet.hub(hub_name), sc.fleet.operations)
    plan = build_plan(sc.airspace, sc.fleet, hub_name, sc.zone(zone), parcel, airframe_name=airframe,
                      method=method, planner=planner)
    return sc, planner, plan


def _summary_table(plan) -> Table:
    s = plan.summary()
    t = Table(title=f"Plan {s['hub']} -> {s['zone']}", show_header=False)
    t.add_column(style="bold")
    t.add_column()
    t.add_row("airframe", s["airframe"])
    t.add_row("drop method", s["method"])
    t.add_row("parcel", f"{s['parcel_kg']:g} kg")
    t.add_row("distance out / back", f"{s['distance_out_m'] / 1000:.2f} km / {s['distance_back_m'] / 1000:.2f} km")
    t.add_row("waypoints out", str(s["waypoints_out"]))
    t.add_row("cruise height", f"{s['cruise_alt_m']:g} m above the hub")
    t.add_row("flight time (still air)", f"{s['nominal_flight_time_s'] / 60:.1f} min")
    t.add_row("skirts", ", ".join(s["skirted_zones"]) or "nothing: straight line")
    t.add_row("mission / fence / rally", f"{s['mission_items']} / {s['fence_items']} / {s['rally_points']} items")
    t.add_row("fence ceiling", f"{s['fence_alt_max_m']:g} m (FENCE_ALT_MAX)")
    for w in s["warnings"]:
        t.add_row("[yellow]warning[/]", w)
    return t


@app.command()
def plan(
    scenario: str = typer.Argument(..., help="scenario directory (airspace.geojson, fleet.toml, zones.geojson) or a bundled name: cmac, muhanga"),
    zone: str = typer.Option(..., "--zone", "-z", help="landing zone name"),
    hub: Optional[str] = typer.Option(None, help="hub name (default: the first hub)"),
    airframe: Optional[str] = typer.Option(None, help="airframe name (default: the lightest that can carry the parcel)"),
    parcel_kg: float = typer.Option(1.0, "--parcel-kg", help="parcel mass, kg"),
    parcel_size: Optional[str] = typer.Option(None, "--parcel-size", help="LxWxH in metres"),
    handling: list[str] = typer.Option([], "--handling", help="signature, age_check, controlled_substance, hazardous, cold_chain, fragile"),
    method: Optional[str] = typer.Option(None, help="payload_place | gripper | winch"),
    out: Path = typer.Option(Path("out"), help="directory for .plan, .waypoints, .geojson and .png"),
    png: bool = typer.Option(True, help="also draw a PNG picture of the plan"),
    weather: bool = typer.Option(True, help="show the go/no-go verdict too (needs weather options)"),
    wind: Optional[float] = typer.Option(None, help="wind speed m/s at 10 m (for the verdict)"),
    wind_dir: float = typer.Option(0.0, "--wind-dir", help="wind direction, degrees true, where it blows from"),
    gust: Optional[float] = typer.Option(None, help="gust m/s"),
    metar: Optional[str] = typer.Option(None, help="METAR text for the verdict"),
    as_json: bool = typer.Option(False, "--json", help="print JSON for machines"),
) -> None:
    """Plan a delivery: shortest route clear of no-fly zones, ArduPilot mission, fence, rally; write plan files."""
    try:
        sc, planner, p = plan_delivery(scenario, zone, hub, airframe, parcel_kg, parcel_size, handling, method)
        from groundctl.core.planfiles import write_plan_files

        stem = f"{p.hub.name}-{p.zone.name}-{p.method}"
        paths = write_plan_files(p, sc.airspace, out, stem)
        if png:
            from groundctl.faces.render import render_plan_png

            paths["png"] = render_plan_png(p, sc.airspace, planner, out / f"{stem}.png")
        verdict = _verdict_for(p, wind, wind_dir, gust, metar) if weather else None
    except GroundctlError as e:
        if as_json:
            print(json.dumps({"error": str(e), "kind": type(e).__name__, **e.to_dict()}))
            raise typer.Exit(2)
        fail(e)
        return
    if as_json:
        doc = {"plan": p.summary(), "files": {k: str(v) for k, v in paths.items()},
               "route_out": p.route_out.points_ll}
        if verdict is not None:
            doc["verdict"] = verdict.to_dict()
        print(json.dumps(doc, indent=2))
        return
    console.print(_summary_table(p))
    for k, v in paths.items():
        console.print(f"  {k:10s} {v}")
    if verdict is not None:
        from groundctl.faces.cli_check import render_verdict

        render_verdict(verdict, console)


def _verdict_for(p, wind, wind_dir, gust, metar):
    """Go/no-go for a plan from command-line weather; None if the preflight module is absent."""
    try:
        from groundctl.core.preflight import preflight
        from groundctl.faces.cli_check import weather_from_options
    except ImportError:  # pragma: no cover - preflight lands separately
        return None
    from groundctl.runtime.events import utcnow

    w = weather_from_options(metar=metar, wind=wind, wind_dir=wind_dir, gust=gust) if (wind is not None or metar) else None
    return preflight(p, w, now=utcnow())


try:  # the go/no-go command lives with the preflight code
    from groundctl.faces import cli_check as _cli_check

    _cli_check.register(app)
except ImportError:  # pragma: no cover
    pass


def main() -> None:  # pragma: no cover
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
