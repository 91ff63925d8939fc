"""`groundctl serve`: the service on uvicorn with the example airspace and a simulated fleet.

The operator key is never printed except once, when serve generates it (see stored_operator_key), and
never appears in a URL: the map takes it from the address fragment (/#key=...), which browsers do not send.

One `python -m sim` process per vehicle, started at its hub through sim.launch; each vehicle's
connection URL is written into the fleet so deliveries dispatched to it fly on the simulator.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import secrets
import signal
import sys
from pathlib import Path

import uvicorn

from groundctl.faces.api.app import create_app
from groundctl.runtime.services import Settings

log = logging.getLogger("groundctl.serve")


def start_fleet_sims(app, speedup: float = 1.0) -> list:
    """Start a simulator per vehicle at its hub and point the vehicle at it; returns the sim handles.

    Vehicles an operator connected to something else are left alone, and so is a vehicle that was flying
    when the service stopped: its simulator may still be in the air, and the resumed flight reconnects to it.
    """
    from sim.launch import start_sim  # noqa: PLC0415  (sim is a peer package, only needed here)

    from groundctl.runtime.sim_args import sim_vehicle_args  # noqa: PLC0415

    svc = app.state.service
    fleet = svc.fleet.current()
    managed, busy = svc.fleet.simulator_links()
    handles = []
    try:
        for v in fleet.vehicles:
            if v.name in busy:
                print(f"  {v.name}: flying a delivery; keeping its link {v.connection}", flush=True)
                continue
            if v.connection and managed.get(v.name) != v.connection:
                print(f"  {v.name}: operator link {v.connection}", flush=True)
                continue
            hub, frame = fleet.hub(v.hub), fleet.airframe(v.airframe)
            # the simulated parcel: a reference parcel, so the monitor sees the release
            # die_with_parent: a serve killed outright (SIGKILL, OOM killer) leaves no simulator running
            # with its ports open; the ExitStack in serve() stops them on every orderly exit
            h = start_sim([*sim_vehicle_args(hub, frame, fleet.operations.reference_parcel_kg or 1.0),
                           "--sysid", str(v.sysid), "--speedup", str(speedup), "--tcp", "127.0.0.1:0"],
                          die_with_parent=True)
            handles.append(h)
            url = h.by_sysid[v.sysid][0]
            svc.fleet.use_simulator(v.name, url)
            print(f"  {v.name} (sysid {v.sysid}) simulated at hub {hub.name}: {url}", flush=True)
    except BaseException:
        for h in handles:
            h.stop()
        raise
    return handles


KEY_FILE = "operator-key"
# proxy_headers off: uvicorn would otherwise take X-Forwarded-For from any loopback peer as the client
# address, and the per-address rate limits with it; Settings.trusted_proxies says whose headers count.
# No Server header: the version of the stack is nobody's business.
UVICORN_OPTIONS = {"proxy_headers": False, "server_header": False}


def stored_operator_key(data_dir: str | Path | None) -> tuple[str, Path, bool]:
    """(key, file, generated now): the development operator key kept in the data directory, mode 0600.

    Generated once and kept, so restarts need not print it again: stdout often ends up in a journal.
    """
    d = Path(data_dir or os.environ.get("GROUNDCTL_DATA") or "./data")
    d.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = (d / KEY_FILE).resolve()
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        os.chmod(path, 0o600)
        key = path.read_text().strip()
        if key:
            return key, path, False
        fd = os.open(path, os.O_WRONLY | os.O_TRUNC)
    key = "dev-" + secrets.token_urlsafe(16)
    with os.fdopen(fd, "w") as f:
        f.write(key + "\n")
    return key, path, True


def serve(host: str = "127.0.0.1", port: int = 8000, *, data_dir: str | Path | None = None,
          settings: Settings | None = None, sim: bool = True, speedup: float = 1.0,
          log_level: str = "info", processes: int = 1, flights: str | None = None) -> None:
    """Run the service until interrupted. With no operator key configured, uses the one stored in the data
    directory, generating it (and printing it, that once) on the first start.

    `processes` > 1 runs the API in that many processes and needs PostgreSQL (DATABASE_URL); flights then
    run in `groundctl worker` processes (`flights="workers"`, see faces/api/processes.py)."""
    from groundctl.faces.api.processes import export_settings, flight_mode  # noqa: PLC0415
    from groundctl.runtime.store import database_url  # noqa: PLC0415

    settings = settings or Settings.from_env()
    flights = "workers" if processes > 1 else flight_mode(flights)
    if processes < 1:
        raise SystemExit("processes: must be at least 1")
    if data_dir is not None:
        settings.data_dir = Path(data_dir)
    if processes > 1 and database_url(settings.data_dir, settings.database_url).startswith("sqlite"):
        raise SystemExit("processes: several API processes need PostgreSQL (set DATABASE_URL)")
    if settings.operator_keys:
        print("operator keys: from GROUNDCTL_OPERATOR_KEYS", flush=True)
    else:
        key, path, new = stored_operator_key(settings.data_dir)
        settings.operator_keys = (key,)
        if new:
            print(f"operator key (generated; shown only this once, stored in {path}): {key}", flush=True)
        else:
            print(f"operator key: the one stored in {path} (set GROUNDCTL_OPERATOR_KEYS to choose your own)",
                  flush=True)
    if sim:
        # the simulated fleet flies in the simulator's still air: that is the weather it really has
        settings.assume_calm = True
        # the simulators fly `speedup` times faster than the wall clock: so do their reserved volumes of sky
        settings.intent_time_scale = 1.0 / speedup
    app = create_app(settings)  # also migrates and seeds the database before any API process starts
    with contextlib.ExitStack() as stack:
        # uvicorn re-raises SIGTERM once it has shut down; with the default handler that kills the process
        # before the simulators are stopped, so turn it into an exit that unwinds this `with` (set before
        # the simulators start, so a SIGTERM while they boot stops the ones already running too)
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
        if sim:
            print("starting the simulated fleet:", flush=True)
            for h in start_fleet_sims(app, speedup):
                stack.callback(h.stop)
        print(f"map: http://{host}:{port}/#key=<operator key>   API docs: http://{host}:{port}/docs", flush=True)
        if flights == "workers":
            print(f"API in {processes} process(es); flights fly in `groundctl worker` processes", flush=True)
            export_settings(settings, flights)
            uvicorn.run("groundctl.faces.api.processes:app_from_env", factory=True, workers=processes, host=host,
                        port=port, log_level=log_level, **UVICORN_OPTIONS)
        else:
            uvicorn.run(app, host=host, port=port, log_level=log_level, **UVICORN_OPTIONS)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m groundctl.faces.api", description=__doc__)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--data", default=None, help="data directory (default ./data or $GROUNDCTL_DATA)")
    p.add_argument("--no-sim", action="store_true", help="do not start simulators for the fleet")
    p.add_argument("--speedup", type=float, default=1.0, help="simulator time speed-up")
    p.add_argument("--scenario", default=None, help="directory with airspace.geojson + fleet.toml to seed from")
    p.add_argument("--log-level", default="info")
    p.add_argument("--processes", type=int, default=1, help="API processes (more than 1 needs PostgreSQL)")
    p.add_argument("--flights", choices=("inline", "workers"), default=None,
                   help="fly here (inline, the default) or in `groundctl worker` processes")
    a = p.parse_args(argv)
    s = Settings.from_env()
    if a.scenario:
        s.scenario_dir = Path(a.scenario)
    serve(a.host, a.port, data_dir=a.data, settings=s, sim=not a.no_sim, speedup=a.speedup, log_level=a.log_level,
          processes=a.processes, flights=a.flights)
    return 0


if __name__ == "__main__":
    sys.exit(main())
