"""`groundctl restriction add|list|lift`: temporary restrictions in the service's database (the data
directory `serve` uses, or DATABASE_URL). A running service honours them for planning at its next route
query: every process reads the same table."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from groundctl.errors import GroundctlError

restriction_app = typer.Typer(help="Temporary restrictions (like NOTAMs): add, list, lift", no_args_is_help=True)


def _service(data_dir: Optional[Path]):
    from groundctl.runtime.services import Service, Settings  # noqa: PLC0415
    return Service(Settings.from_env(data_dir=data_dir, resume_flights=False))


def _fail(e: GroundctlError, as_json: bool) -> None:
    if as_json:
        print(json.dumps({"error": str(e), "kind": type(e).__name__, **e.to_dict()}))
    else:
        Console(stderr=True).print(f"[red]error[/red] {e}")
    raise typer.Exit(2)


def _when(text: Optional[str], field: str) -> Optional[str]:
    """Accept 'now', '+2h', '+30m' or an ISO time with its offset; ISO text is passed on unchanged."""
    if text is None:
        return None
    now = datetime.now(timezone.utc)
    if text == "now":
        return now.isoformat()
    if text.startswith("+") and text[-1] in "mhd" and text[1:-1].replace(".", "", 1).isdigit():
        n = float(text[1:-1])
        return (now + timedelta(**{{"m": "minutes", "h": "hours", "d": "days"}[text[-1]]: n})).isoformat()
    if text.startswith("+"):
        raise GroundctlError(f"{text!r}: say +30m, +2h or +1d, or an ISO time", field=field)
    return text


def register(app: typer.Typer) -> None:
    @restriction_app.command("add")
    def add(
        file: Path = typer.Argument(..., help="GeoJSON Feature (Polygon, MultiPolygon, or Point with radius_m)"),
        start: Optional[str] = typer.Option(None, "--start", help="overrides the file: ISO time, 'now', '+30m'"),
        end: Optional[str] = typer.Option(None, "--end", help="overrides the file: ISO time, '+2h'"),
        name: Optional[str] = typer.Option(None, "--name", help="overrides the file's name"),
        data_dir: Optional[Path] = typer.Option(None, "--data-dir", help="the service's data (GROUNDCTL_DATA or ./data)"),
        as_json: bool = typer.Option(False, "--json", help="print JSON for machines"),
    ) -> None:
        """Add a restriction; deliveries planned across it are re-planned or refused."""
        from groundctl.core.airspace import load_json  # noqa: PLC0415
        try:
            feature = load_json(file)
            if isinstance(feature, dict) and isinstance(feature.get("properties"), dict):
                props = feature["properties"]
                for k, v in (("start", _when(start, "start")), ("end", _when(end, "end")), ("name", name)):
                    if v is not None:
                        props[k] = v
            out = _service(data_dir).restrictions.add(feature)
        except GroundctlError as e:
            _fail(e, as_json)
        p = out["properties"]
        if as_json:
            print(json.dumps(out))
            return
        eff = p["effect"]
        Console().print(f"restriction [bold]{p['id']}[/bold] {p['name']!r} {p['status']}: {p['start']} to {p['end']}; "
                        f"re-planned deliveries {eff['replanned'] or 'none'}, refused {eff['refused'] or 'none'} "
                        f"({eff['applied_in_s']:.2f} s)")

    @restriction_app.command("list")
    def list_(
        all_: bool = typer.Option(False, "--all", help="include lifted and ended ones"),
        data_dir: Optional[Path] = typer.Option(None, "--data-dir"),
        as_json: bool = typer.Option(False, "--json"),
    ) -> None:
        """Restrictions in force or upcoming."""
        try:
            fc = _service(data_dir).restrictions.list(all_)
        except GroundctlError as e:
            _fail(e, as_json)
        if as_json:
            print(json.dumps(fc))
            return
        t = Table("id", "name", "status", "start", "end", "band")
        for f in fc["features"]:
            p = f["properties"]
            band = f"{p.get('floor_m', 0):g}-{p.get('ceiling_m', 'inf')} m {p.get('altitude_ref', 'agl')}"
            t.add_row(str(p["id"]), p["name"], p["status"], p["start"], p["end"], band)
        Console().print(t)

    @restriction_app.command("lift")
    def lift(
        restriction_id: int = typer.Argument(..., min=1),
        data_dir: Optional[Path] = typer.Option(None, "--data-dir"),
        as_json: bool = typer.Option(False, "--json"),
    ) -> None:
        """Lift a restriction before its end."""
        try:
            out = _service(data_dir).restrictions.lift(restriction_id)
        except GroundctlError as e:
            _fail(e, as_json)
        if as_json:
            print(json.dumps(out))
        else:
            Console().print(f"restriction {restriction_id} lifted; re-planned {out['properties']['effect']['replanned'] or 'none'}")

    app.add_typer(restriction_app, name="restriction")
