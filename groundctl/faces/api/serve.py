"""`groundctl serve`: the service on uvicorn with the example airspace and a simulated fleet.

One `python -m sim` process per vehicle, started at its hub through sim.launch; each vehicle's
connection URL is written into the fleet so deliveries dispatched to it fly on the simulator.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import secrets
import signal
import sys
from pathlib import Path

import uvicorn

from groundctl.faces.api.app import create_app
from groundctl.runtime.service import Settings

log = logging.getLogger("groundctl.serve")


def start_fleet_sims(app, speedup: float = 1.0) -> list:
    """Start a simulator per vehicle at its hub and point the vehicle at it; returns the sim handles.

    Vehicles an operator connected to something else are left alone, and so is a vehicle that was flying
    when the service stopped: its simulator may still be in the air, and the resumed flight reconnects to it.
    """
    from sim.launch import start_sim  # noqa: PLC0415  (sim is a peer package, only needed here)

    from groundctl.runtime.sim_args import sim_vehicle_args  # noqa: PLC0415

    svc = app.state.service
    fleet = svc.fleet()
    managed, busy = svc.simulator_links()
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
            h = start_sim([*sim_vehicle_args(hub, frame, fleet.operations.reference_parcel_kg or 1.0),
                           "--sysid", str(v.sysid), "--speedup", str(speedup), "--tcp", "127.0.0.1:0"])
            handles.append(h)
            url = h.by_sysid[v.sysid][0]
            svc.use_simulator(v.name, url)
            print(f"  {v.name} (sysid {v.sysid}) simulated at hub {hub.name}: {url}", flush=True)
    except BaseException:
        for h in handles:
            h.stop()
        raise
    return handles


def serve(host: str = "127.0.0.1", port: int = 8000, *, data_dir: str | Path | None = None,
          settings: Settings | None = None, sim: bool = True, speedup: float = 1.0,
          log_level: str = "info") -> None:
    """Run the service until interrupted. Prints the operator key when none is configured."""
    settings = settings or Settings.from_env()
    if data_dir is not None:
        settings.data_dir = Path(data_dir)
    if not settings.operator_keys:
        settings.operator_keys = ("dev-" + secrets.token_urlsafe(16),)
        print(f"operator key for this run (set GROUNDCTL_OPERATOR_KEYS to choose your own): "
              f"{settings.operator_keys[0]}", flush=True)
    if sim:
        # the simulated fleet flies in the simulator's still air: that is the weather it really has
        settings.assume_calm = True
    app = create_app(settings)
    with contextlib.ExitStack() as stack:
        if sim:
            print("starting the simulated fleet:", flush=True)
            for h in start_fleet_sims(app, speedup):
                stack.callback(h.stop)
        print(f"map: http://{host}:{port}/?key={settings.operator_keys[0]}   API docs: http://{host}:{port}/docs",
              flush=True)
        # uvicorn re-raises SIGTERM once it has shut down; with the default handler that kills the process
        # before the simulators are stopped, so turn it into an exit that unwinds this `with`
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
        uvicorn.run(app, host=host, port=port, log_level=log_level)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m groundctl.faces.api", description=__doc__)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--data", default=None, help="data directory (default ./data or $GROUNDCTL_DATA)")
    p.add_argument("--no-sim", action="store_true", help="do not start simulators for the fleet")
    p.add_argument("--speedup", type=float, default=1.0, help="simulator time speed-up")
    p.add_argument("--scenario", default=None, help="directory with airspace.geojson + fleet.toml to seed from")
    p.add_argument("--log-level", default="info")
    a = p.parse_args(argv)
    s = Settings.from_env()
    if a.scenario:
        s.scenario_dir = Path(a.scenario)
    serve(a.host, a.port, data_dir=a.data, settings=s, sim=not a.no_sim, speedup=a.speedup, log_level=a.log_level)
    return 0


if __name__ == "__main__":
    sys.exit(main())
