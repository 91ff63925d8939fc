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
from groundctl.faces import cli_check as _ck

app = typer.Typer(cls=_ck.JsonErrorsGroup, add_completion=False, no_args_is_help=True,
                  help="Ground station for drone parcel delivery: plan, check, fly, serve.")
console = Console()
err = Console(stderr=True)


@app.callback()
def _root() -> None:
    """Ground station for drone parcel delivery."""


def fail(e: GroundctlError, code: int = 2, as_json: bool = False) -> None:
    """Print a refused input (stderr, or one JSON object on stdout with --json) and exit."""
    from groundctl.faces.cli_check import print_error

    print_error(e, as_json)
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
    """Load a scenario and plan: the same path as `check` (cli_check.plan_for)."""
    from groundctl.faces.cli_check import plan_for

    return plan_for(scenario, zone, hub=hub, airframe=airframe, parcel_kg=parcel_kg, parcel_size=parcel_size,
                    handling=handling, method=method)


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
    metar: Optional[str] = _ck.OPT_METAR,
    forecast_url: Optional[str] = _ck.OPT_FORECAST,
    weather_file: Optional[Path] = _ck.OPT_WEATHER_FILE,
    wind: Optional[float] = _ck.OPT_WIND,
    wind_dir: Optional[float] = _ck.OPT_WIND_DIR,
    gust: Optional[float] = _ck.OPT_GUST,
    precip: Optional[float] = _ck.OPT_PRECIP,
    visibility: Optional[float] = _ck.OPT_VIS,
    temp: Optional[float] = _ck.OPT_TEMP,
    clouds: Optional[str] = _ck.OPT_CLOUDS,
    wx: Optional[str] = _ck.OPT_WX,
    now: Optional[str] = _ck.OPT_NOW,
    timeout_s: float = _ck.OPT_TIMEOUT,
    as_json: bool = typer.Option(False, "--json", help="print JSON for machines (errors too)"),
    vehicle_kind: str = typer.Option("vehicle", "--vehicle-kind", help="whose energy calibration: vehicle, sim or sitl"),
    data_dir: Optional[Path] = typer.Option(None, "--data-dir", help="flown flights (GROUNDCTL_DATA or ./data)"),
) -> None:
    """Plan a delivery: shortest route clear of no-fly zones, ArduPilot mission, fence, rally; write plan files.
    With weather options, also the go/no-go verdict (exit 1 on NO-GO), exactly as `check` decides it."""
    wx_opts = dict(metar=metar, forecast_url=forecast_url, weather_file=weather_file, wind=wind, wind_dir=wind_dir,
                   gust=gust, precip=precip, visibility=visibility, temp=temp, clouds=clouds, wx=wx)
    try:
        t = _ck.parse_now(now)
        sc, planner, p = plan_delivery(scenario, zone, hub, airframe, parcel_kg, parcel_size, handling, method)
        from groundctl.core.planfiles import write_plan_files

        stem = f"{p.hub.name}-{p.zone.name}-{p.method}"
        paths = write_plan_files(p, sc.airspace, out, stem)
        if png:
            from groundctl.faces.render import render_plan_png

            paths["png"] = render_plan_png(p, sc.airspace, planner, out / f"{stem}.png")
        given = weather and _ck.weather_given(**wx_opts)
        verdict = None
        if given:
            from groundctl.runtime.calibration import calibration_from

            # the same calibration `check` reads, so that both give one verdict
            cal = calibration_from(data_dir, p.airframe.name, vehicle_kind)
            verdict = _ck.decide(p, sc.airspace, now=t, timeout_s=timeout_s, calibration=cal, **wx_opts)
    except GroundctlError as e:
        fail(e, as_json=as_json)
        return
    # no weather is not a NO-GO for a plan: there is simply nothing to decide on yet
    no_verdict = None if verdict is not None else (_ck.NO_WEATHER if weather else "verdict not asked (--no-weather)")
    if as_json:
        doc = {"plan": p.summary(), "files": {k: str(v) for k, v in paths.items()},
               "route_out": p.route_out.points_ll,
               "verdict": verdict.to_dict() if verdict is not None else None}
        if no_verdict:
            doc["no_verdict"] = no_verdict
        print(json.dumps(doc, indent=2))
    else:
        console.print(_summary_table(p))
        for k, v in paths.items():
            console.print(f"  {k:10s} {v}", overflow="fold")
        if verdict is not None:
            _ck.render_verdict(verdict, console)
        else:
            console.print(f"[yellow]{no_verdict}[/]" + (" (give --metar, --forecast-url, --weather-file or --wind "
                                                         "for a go/no-go)" if weather else ""))
    if verdict is not None and not verdict.go:
        raise typer.Exit(1)


from groundctl.faces import cli_airframe as _cli_airframe  # noqa: E402

_cli_airframe.register(app)
from groundctl.faces import cli_mission as _cli_mission  # noqa: E402
_cli_mission.register(app)
from groundctl.faces import cli_restriction as _cli_restriction  # noqa: E402
_cli_restriction.register(app)

_ck.register(app)  # `check`: the go/no-go command lives with the verdict path


@app.command()
def fly(
    scenario: str = typer.Argument("cmac", help="scenario directory or bundled name"),
    zone: str = typer.Option("clinic-east", "--zone", "-z", help="landing zone name"),
    hub: Optional[str] = typer.Option(None, help="hub name (default: the first hub)"),
    airframe: Optional[str] = typer.Option(None, help="airframe name"),
    parcel_kg: float = typer.Option(1.0, "--parcel-kg"),
    parcel_size: Optional[str] = typer.Option(None, "--parcel-size", help="LxWxH in metres"),
    handling: list[str] = typer.Option([], "--handling"),
    method: Optional[str] = typer.Option(None, help="payload_place | gripper | winch"),
    connect: Optional[str] = typer.Option(None, "--connect", help="MAVLink URL: tcp:HOST:PORT, udpin:HOST:PORT, udpout:HOST:PORT"),
    sim: bool = typer.Option(False, "--sim", help="start the built-in simulator at the hub"),
    sitl: bool = typer.Option(False, "--sitl", help="start ArduPilot SITL (ARDUPILOT_SITL) at the hub"),
    speedup: float = typer.Option(1.0, help="simulator / SITL speed-up"),
    sim_args: str = typer.Option("", "--sim-args", help="extra flags for the built-in simulator, e.g. '--loss 0.2 --gripper-jam'"),
    sysid: Optional[int] = typer.Option(None, help="vehicle system id (default: the first that sends a heartbeat)"),
    wind: Optional[float] = typer.Option(None, help="wind m/s at 10 m"),
    wind_dir: Optional[float] = typer.Option(None, "--wind-dir", help="degrees, where the wind comes from"),
    gust: Optional[float] = typer.Option(None),
    temp: Optional[float] = typer.Option(None, "--temp", help="temperature, degC (the cold derates the battery)"),
    precip: Optional[float] = typer.Option(None, "--precip", help="precipitation, mm/h"),
    visibility: Optional[float] = typer.Option(None, "--visibility", help="visibility, m"),
    clouds: Optional[str] = typer.Option(None, "--clouds", help="METAR sky groups, e.g. 'BKN015 OVC030' or NSC"),
    wx: Optional[str] = typer.Option(None, "--wx", help="METAR present weather, e.g. '-RA BR', or none"),
    metar: Optional[str] = typer.Option(None),
    weather_file: Optional[Path] = typer.Option(None, "--weather-file"),
    as_json: bool = typer.Option(False, "--json", help="print the delivery report as JSON"),
    data_dir: Optional[Path] = typer.Option(None, "--data-dir", help="where flown flights calibrate the energy model "
                                            "(default: GROUNDCTL_DATA or ./data, shared with `serve`)"),
    calibrate: bool = typer.Option(True, help="use and extend the airframe's energy calibration from flown flights"),
) -> None:
    """Plan, check, upload with read-back, arm and fly one delivery; show live progress; report."""
    import asyncio
    import shlex

    if sum([bool(connect), sim, sitl]) != 1:
        fail(GroundctlError("give exactly one of --connect URL, --sim or --sitl", field="vehicle"), as_json=as_json)
    try:
        sc, planner, p = plan_delivery(scenario, zone, hub, airframe, parcel_kg, parcel_size, handling, method)
        from groundctl.core.preflight import preflight
        from groundctl.faces.cli_check import render_verdict, weather_from_options
        from groundctl.runtime.events import utcnow

        now = utcnow()
        w = weather_from_options(now=now, lat=p.hub.lat, lon=p.hub.lon, metar=metar, weather_file=weather_file,
                                 wind=wind, wind_dir=wind_dir, gust=gust, temp=temp, precip=precip,
                                 visibility=visibility, clouds=clouds, wx=wx)
        kind = "sim" if sim else "sitl" if sitl else "vehicle"
        store = _calibration_store(data_dir) if calibrate else None
        from groundctl.runtime.calibration import calibration_for

        cal = calibration_for(store, p.airframe.name, kind) if store else None
        verdict = preflight(p, w, now=now, airspace=sc.airspace, calibration=cal)
    except GroundctlError as e:
        fail(e, as_json=as_json)
        return
    if not as_json:
        console.print(_summary_table(p))
        render_verdict(verdict, console)
    if not verdict.go:
        if as_json:
            print(json.dumps({"outcome": "not_flown", "verdict": verdict.to_dict()}, indent=2, default=str))
        else:
            err.print("[bold red]NO-GO:[/] " + "; ".join(f"{c.name}: {c.message}" for c in verdict.failures))
        raise typer.Exit(1)
    launched = None
    try:
        if sim:
            from sim.launch import start_sim

            from groundctl.runtime.sim_args import sim_airframe_args

            launched = start_sim([*sim_airframe_args(p, w), "--speedup", str(speedup), *shlex.split(sim_args)])
            url = launched.urls[0]
        elif sitl:
            from groundctl.runtime.sitl import delivery_params, start_sitl

            launched = start_sitl(p.hub.lat, p.hub.lon, p.hub.elevation_m, p.hub.heading_deg, speedup=speedup,
                                  params=delivery_params(p))
            url = launched.url
        else:
            url = connect
        report = asyncio.run(_fly_live(p, url, sysid, as_json, verdict.energy))
    except GroundctlError as e:
        fail(e, as_json=as_json)
        return
    finally:
        if launched is not None:
            launched.stop()
    if store is not None:
        from groundctl.runtime.calibration import flight_from_report, record

        sample = flight_from_report(p.airframe.name, kind, report.energy)
        if sample is not None:
            record(store, sample, vehicle=url)
        store.close()
    if as_json:
        print(json.dumps(report.to_dict(), indent=2))
    else:
        _print_report(report, p)
    raise typer.Exit(0 if report.outcome == "delivered" else 1)


def _calibration_store(data_dir: Optional[Path]):
    from groundctl.runtime.store import Store, database_url

    return Store(database_url(data_dir))


async def _fly_live(p, url: str, sysid, quiet: bool, prediction=None):
    from rich.live import Live

    from groundctl.runtime.fly import DeliveryFlight

    state = {"stage": "connecting", "progress": None, "events": []}

    def view():
        t = Table(title=f"{p.hub.name} -> {p.zone.name} ({p.method}) on {url}", show_header=False, min_width=60)
        t.add_column(style="bold")
        t.add_column()
        pr = state["progress"]
        t.add_row("stage", state["stage"])
        if pr is not None:
            t.add_row("phase", f"[cyan]{pr.phase}[/]  mode {pr.mode}  item {pr.mission_seq}")
            if pr.lat is not None:
                t.add_row("position", f"{pr.lat:.6f}, {pr.lon:.6f}  {pr.alt_rel_m:.0f} m")
            if pr.distance_to_go_m is not None:
                t.add_row("to go", f"{pr.distance_to_go_m / 1000:.2f} km, ETA {pr.eta_s / 60:.1f} min")
            if pr.battery_pct is not None:
                t.add_row("battery", f"{pr.battery_pct:.0f} %")
        for e in state["events"][-8:]:
            t.add_row(e.time.strftime("%H:%M:%S"), f"{e.kind} {e.message}".strip())
        return t

    def on_event(e):
        state["events"].append(e)

    def on_progress(pr):
        state["progress"] = pr

    def on_stage(s):
        state["stage"] = s

    flight = DeliveryFlight(p, url, sysid=sysid, on_event=on_event, on_progress=on_progress, on_stage=on_stage,
                            prediction=prediction)
    if quiet:
        return await flight.run()
    import asyncio

    with Live(view(), console=console, refresh_per_second=4) as live:
        task = asyncio.create_task(flight.run())
        while not task.done():
            live.update(view())
            await asyncio.sleep(0.25)
        live.update(view())
    return task.result()


def _print_report(r, p) -> None:
    t = Table(title=f"Delivery report: {r.outcome}", show_header=False)
    t.add_column(style="bold")
    t.add_column()
    t.add_row("outcome", f"[{'green' if r.outcome == 'delivered' else 'red'}]{r.outcome}[/]")
    if r.drop_lat is not None:
        t.add_row("drop position", f"{r.drop_lat:.7f}, {r.drop_lon:.7f}")
        t.add_row("from zone centre", f"{r.drop_distance_m:.2f} m (clear radius {p.zone.clear_radius_m:g} m)")
    if r.drop_time:
        t.add_row("drop time", r.drop_time.isoformat(timespec="seconds"))
    if r.flight_time_s is not None:
        t.add_row("flight time", f"{r.flight_time_s:.0f} s (vehicle time)")
    t.add_row("parcel", r.parcel)
    if r.end_distance_from_hub_m is not None and (r.end_distance_from_hub_m > 25 or r.outcome == "lost"):
        t.add_row("ended" if r.outcome != "lost" else "last heard",
                  f"{r.end_lat:.6f}, {r.end_lon:.6f}, {r.end_distance_from_hub_m:.0f} m from the hub ({r.end_mode})")
    for i in r.incidents:
        worst = f", worst {i.worst:.1f} {i.unit}" if isinstance(i.worst, float) else (f", {i.worst}" if i.worst else "")
        t.add_row(f"incident {i.kind}", f"x{i.count}, {i.duration_s:.0f} s{worst}")
    en = r.energy or {}
    if r.energy_used_wh is not None and en.get("predicted_wh"):
        t.add_row("energy", f"{r.energy_used_wh:.1f} Wh used, {en['predicted_wh']:.1f} Wh predicted "
                            f"(x{r.energy_used_wh / en['predicted_wh']:.2f})")
        cal = en.get("calibration") or {}
        t.add_row("calibration", cal.get("source", "none"))
    elif r.energy_used_wh is not None:
        t.add_row("energy used", f"{r.energy_used_wh:.1f} Wh")
    if r.battery_used_pct is not None:
        t.add_row("battery used", f"{r.battery_used_pct:.0f} %")
    t.add_row("events", ", ".join(e.kind for e in r.events))
    console.print(t)


@app.command()
def demo(
    speedup: float = typer.Option(10.0, help="simulator speed-up"),
    method: str = typer.Option("payload_place", help="payload_place | gripper | winch"),
    as_json: bool = typer.Option(False, "--json"),
    data_dir: Optional[Path] = typer.Option(None, "--data-dir", help="where flown flights calibrate the energy model"),
) -> None:
    """Fly the bundled CMAC example on the built-in simulator: a go/no-go with local weather values,
    plan, upload and verify, fly, drop, return, report."""
    fly(scenario="cmac", zone="clinic-east", hub=None, airframe=None, parcel_kg=1.2, parcel_size="0.25x0.2x0.1",
        handling=[], method=method, connect=None, sim=True, sitl=False, speedup=speedup, sim_args="", sysid=None,
        wind=4.0, wind_dir=250.0, gust=6.0, temp=None, precip=None, visibility=None, clouds=None, wx=None,
        metar=None, weather_file=None, as_json=as_json, data_dir=data_dir,
        calibrate=True)


@app.command()
def serve(
    host: str = typer.Option("127.0.0.1", help="address to listen on"),
    port: int = typer.Option(8000),
    data_dir: Optional[Path] = typer.Option(None, help="data directory (SQLite database); default ./data or GROUNDCTL_DATA"),
    sim: bool = typer.Option(True, help="start a simulated fleet for the vehicles without a connection URL"),
    speedup: float = typer.Option(5.0, help="simulator speed-up for the simulated fleet"),
    processes: int = typer.Option(1, help="API processes; more than 1 needs PostgreSQL (DATABASE_URL) and "
                                          "flies in `groundctl worker` processes"),
    flights: Optional[str] = typer.Option(None, help="inline (fly in this process, the default) or workers "
                                                     "(fly in `groundctl worker` processes); or GROUNDCTL_FLIGHTS"),
) -> None:
    """The HTTP service: recipients register landing zones, operators dispatch and track, live map."""
    from groundctl.faces.api import serve as run

    run(host=host, port=port, data_dir=data_dir, sim=sim, speedup=speedup, processes=processes, flights=flights)


@app.command()
def worker(
    data_dir: Optional[Path] = typer.Option(None, help="data directory; default ./data or GROUNDCTL_DATA "
                                                       "(the database is DATABASE_URL's)"),
    lease_s: float = typer.Option(10.0, help="a dead worker's flights are taken over within about this"),
    poll_s: float = typer.Option(1.0, help="how often to look for work when no notification comes"),
    capacity: int = typer.Option(100, help="flights this worker flies at once"),
    worker_id: Optional[str] = typer.Option(None, "--id", help="name in the leases (default host:pid:random)"),
) -> None:
    """Fly dispatched deliveries for API processes started with `serve --flights workers` (or
    --processes N) on the same database: claim flights through leases, take over those of dead workers."""
    import asyncio

    from groundctl.faces.api.processes import settings_from_env
    from groundctl.runtime.worker import WorkerOptions, run_worker

    import logging

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("alembic").setLevel(logging.WARNING)
    settings = settings_from_env()
    if data_dir is not None:
        settings.data_dir = data_dir
    try:
        opt = WorkerOptions(lease_s=lease_s, poll_s=poll_s, capacity=capacity)
        if worker_id:
            opt.owner = worker_id
    except GroundctlError as e:
        fail(e)
    asyncio.run(run_worker(settings, opt))


def main() -> None:  # pragma: no cover
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
