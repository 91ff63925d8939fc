"""`groundctl airframe`: what each airframe can do, as the energy model sees it, and how far to trust it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from groundctl.errors import GroundctlError


def airframe_doc(sc, name: Optional[str], payloads: list[float], wind: float, temp_c: Optional[float],
                 store, vehicle_kind: str) -> dict:
    """The `--json` document: {"airframes": [{"name", "payloads": [{"payload_kg", "hover_power_w",
    "hover_endurance_min"}], "cruise_power_w", "range_with_reserve_km", "calibration", ...}]}."""
    from groundctl.core.energy import flight_energy, hover_power_w, level_power_w
    from groundctl.core.plan import Leg
    from groundctl.core.rotor import air_density
    from groundctl.core.weather import weather_from_values
    from groundctl.runtime.calibration import calibration_for
    from groundctl.runtime.events import utcnow

    fleet, ops = sc.fleet, sc.fleet.operations
    frames = [fleet.airframe(name)] if name else list(fleet.airframes)
    hub = fleet.hubs[0]
    rho = air_density(hub.elevation_m, temp_c)
    now = utcnow()
    # no direction: the worst heading, as every verdict assumes
    weather = weather_from_values(now=now, wind_mps=wind, wind_dir_deg=None, temp_c=temp_c)
    out = []
    for a in frames:
        cal = calibration_for(store, a.name, vehicle_kind)
        pls = payloads or [0.0, round(a.max_payload_kg / 2, 3), a.max_payload_kg]
        rows = []
        for pl in pls:
            p = hover_power_w(a, a.empty_mass_kg + pl, rho) * cal.factor
            rows.append({"payload_kg": pl, "hover_power_w": round(p, 1),
                         "hover_endurance_min": round(a.battery_wh / p * 60.0, 1),
                         "takeoff_mass_kg": round(a.empty_mass_kg + pl, 3),
                         "within_mtom": a.empty_mass_kg + pl <= a.max_takeoff_mass_at(rho) + 1e-9})
        ref = pls[-1]
        cruise = level_power_w(a, a.empty_mass_kg + ref, a.cruise_speed_mps, rho) * cal.factor
        # an out-and-back delivery at cruise height with this parcel, for the radius search
        legs = [Leg("climb", dz_m=ops.cruise_alt_m, payload_kg=ref, label="take off"),
                Leg("cruise", distance_m=1000.0, payload_kg=ref, label="out"),
                Leg("descent", dz_m=-ops.cruise_alt_m, payload_kg=ref),
                Leg("hover", hover_s=ops.hover_at_zone_s),
                Leg("climb", dz_m=ops.cruise_alt_m),
                Leg("cruise", distance_m=1000.0, course_deg=180.0, label="back"),
                Leg("descent", dz_m=-ops.cruise_alt_m, label="land")]
        e = flight_energy(a, ops, legs, weather, elevation_m=hub.elevation_m, cruise_alt_m=ops.cruise_alt_m,
                          payload_kg=ref, calibration=cal)
        out.append({"name": a.name, "payloads": rows, "cruise_speed_mps": a.cruise_speed_mps,
                    "cruise_power_w": round(cruise, 1), "cruise_payload_kg": ref,
                    "range_with_reserve_km": round(e.max_radius_m / 1000.0, 2),
                    "range_heading_deg": e.max_radius_heading_deg,
                    "battery_wh": a.battery_wh, "usable_wh": round(e.usable_wh, 1), "reserve_wh": round(e.reserve_wh, 1),
                    "max_takeoff_mass_kg": round(a.max_takeoff_mass_at(rho), 3),
                    "efficiency": round(a.efficiency, 4), "efficiency_source": a.efficiency_source,
                    "calibration": cal.to_dict()})
    return {"hub": hub.name, "elevation_m": hub.elevation_m, "air_density_kgm3": round(rho, 4), "wind_mps": wind,
            "temp_c": temp_c, "vehicle_kind": vehicle_kind, "airframes": out}


def _render(doc: dict, console: Console) -> None:
    for a in doc["airframes"]:
        t = Table(title=f"{a['name']} at {doc['hub']} ({doc['elevation_m']:g} m, wind {doc['wind_mps']:g} m/s)",
                  min_width=60)
        t.add_column("payload", justify="right")
        t.add_column("hover power", justify="right")
        t.add_column("hover endurance", justify="right")
        for r in a["payloads"]:
            flag = "" if r["within_mtom"] else " [red](over MTOM)[/]"
            t.add_row(f"{r['payload_kg']:g} kg", f"{r['hover_power_w']:.0f} W", f"{r['hover_endurance_min']:.1f} min{flag}")
        console.print(t)
        console.print(f"  cruise {a['cruise_speed_mps']:g} m/s with {a['cruise_payload_kg']:g} kg: "
                      f"{a['cruise_power_w']:.0f} W")
        console.print(f"  range with reserve: {a['range_with_reserve_km']:.1f} km out and back (worst heading)")
        console.print(f"  efficiency: {a['efficiency_source']}")
        console.print(f"  calibration: {a['calibration']['source']}")


def register(app: typer.Typer) -> None:
    @app.command()
    def airframe(
        scenario: str = typer.Argument(..., help="scenario directory or a bundled name: cmac, muhanga"),
        name: Optional[str] = typer.Argument(None, help="one airframe (default: all)"),
        payload_kg: list[float] = typer.Option([], "--payload-kg", help="payloads to show (repeat); default 0, half, max"),
        wind: float = typer.Option(0.0, "--wind", min=0, max=60, help="wind m/s for the range (worst heading)"),
        temp_c: Optional[float] = typer.Option(None, "--temp", min=-60, max=60, help="air temperature, degC"),
        vehicle_kind: str = typer.Option("vehicle", "--vehicle-kind", help="calibration of: vehicle | sim | sitl"),
        data_dir: Optional[Path] = typer.Option(None, "--data-dir", help="flown flights (GROUNDCTL_DATA or ./data)"),
        as_json: bool = typer.Option(False, "--json", help="print JSON for machines"),
    ) -> None:
        """Per airframe: hover power and endurance at each payload, cruise power, range with reserve, and
        the energy calibration (source, flights, error)."""
        from groundctl.core.scenario import load_scenario
        from groundctl.runtime.calibration import check_vehicle_kind
        from groundctl.runtime.store import Store, database_url

        console, err = Console(), Console(stderr=True)
        store = None
        try:
            check_vehicle_kind(vehicle_kind)
            for pl in payload_kg:
                if not 0 <= pl <= 1000:
                    raise GroundctlError(f"{pl:g} kg is not a payload", field="payload_kg")
            sc = load_scenario(scenario)
            store = Store(database_url(data_dir))
            doc = airframe_doc(sc, name, payload_kg, wind, temp_c, store, vehicle_kind)
        except GroundctlError as e:
            if as_json:
                print(json.dumps({"error": str(e), "kind": type(e).__name__, **e.to_dict()}))
            else:
                err.print(f"[bold red]error:[/] {e}")
            raise typer.Exit(2)
        finally:
            if store is not None:
                store.close()
        if as_json:
            print(json.dumps(doc, indent=2))
        else:
            _render(doc, console)
