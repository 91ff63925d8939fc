"""A scenario directory: airspace.geojson + fleet.toml + zones.geojson (the files an operator keeps)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from groundctl.core.airspace import Airspace, load_airspace
from groundctl.core.fleet import Fleet, LandingZone, load_fleet, load_landing_zones
from groundctl.errors import InputError

PACKAGE_MISSIONS = Path(__file__).resolve().parents[2] / "missions"


@dataclass
class Scenario:
    path: Path
    airspace: Airspace
    fleet: Fleet
    zones: list[LandingZone]

    def zone(self, name: str) -> LandingZone:
        for z in self.zones:
            if z.name == name:
                return z
        raise InputError(f"unknown landing zone {name!r} (known: {', '.join(z.name for z in self.zones)})", field="zone")


def resolve(path: str | Path) -> Path:
    """A directory, or the name of a bundled example under missions/ (e.g. 'cmac')."""
    p = Path(path)
    if p.is_dir():
        return p
    if (PACKAGE_MISSIONS / str(path)).is_dir():
        return PACKAGE_MISSIONS / str(path)
    raise InputError(f"no scenario directory {str(path)!r} (bundled: "
                     f"{', '.join(sorted(d.name for d in PACKAGE_MISSIONS.iterdir() if d.is_dir())) if PACKAGE_MISSIONS.is_dir() else 'none'})",
                     field="scenario")


def load_scenario(path: str | Path) -> Scenario:
    p = resolve(path)
    missing = [n for n in ("airspace.geojson", "fleet.toml") if not (p / n).is_file()]
    if missing:
        raise InputError(f"missing {', '.join(missing)}", field=str(p))
    zones = load_landing_zones(p / "zones.geojson") if (p / "zones.geojson").is_file() else []
    return Scenario(p, load_airspace(p / "airspace.geojson"), load_fleet(p / "fleet.toml"), zones)
