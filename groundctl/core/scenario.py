"""A scenario directory: airspace.geojson + fleet.toml + zones.geojson (the files an operator keeps)."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path

from groundctl.core.airspace import Airspace, load_airspace
from groundctl.core.fleet import Fleet, LandingZone, load_landing_zones, parse_fleet
from groundctl.core.textfile import read_text
from groundctl.errors import InputError, ValidationErrors

PACKAGE_MISSIONS = Path(__file__).resolve().parents[2] / "missions"
REQUIRED = ("airspace.geojson", "fleet.toml")


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
        known = ", ".join(z.name for z in self.zones) or "none: the scenario has no zones.geojson"
        raise InputError(f"unknown landing zone {name!r} (known: {known})", field="zone")


def bundled() -> list[str]:
    if not PACKAGE_MISSIONS.is_dir():
        return []
    return sorted(d.name for d in PACKAGE_MISSIONS.iterdir() if (d / "fleet.toml").is_file())


def resolve(path: str | Path) -> Path:
    """A directory, or the name of a bundled example under missions/ (e.g. 'cmac'). A directory of that
    name in the working directory wins over the bundled one."""
    p = Path(path)
    if p.is_dir():
        return p
    name = str(path)
    if name in bundled():
        return PACKAGE_MISSIONS / name
    names = ", ".join(bundled()) or "none"
    what = "is a file, not a scenario directory" if p.is_file() else "not a directory"
    raise InputError(f"{what}, nor a bundled scenario name (bundled: {names}); a scenario directory holds "
                     f"{', '.join(REQUIRED)} and zones.geojson", field=name)


def load_fleet_file(path: str | Path) -> Fleet:
    p = Path(path)
    text = read_text(p)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise InputError(f"not valid TOML: {e}", field=str(p)) from None
    return parse_fleet(data, p.name)


def load_scenario(path: str | Path) -> Scenario:
    """Every file's problems at once (a bad airspace and a bad fleet are both reported), each naming
    its file and the reason."""
    p = resolve(path)
    errors: list[InputError] = []
    missing = [n for n in REQUIRED if not (p / n).exists()]
    if missing:
        raise InputError(f"missing {', '.join(missing)}", field=str(p))
    airspace = fleet = None
    zones: list[LandingZone] = []
    for name, load in (("airspace.geojson", load_airspace), ("fleet.toml", load_fleet_file),
                       ("zones.geojson", load_landing_zones)):
        f = p / name
        if name == "zones.geojson" and not f.exists():
            continue  # zones can also come from the API's store
        try:
            value = load(f)
        except ValidationErrors as e:
            errors += e.errors
            continue
        except InputError as e:
            errors.append(e)
            continue
        if name == "airspace.geojson":
            airspace = value
        elif name == "fleet.toml":
            fleet = value
        else:
            zones = value
    if errors:
        raise errors[0] if len(errors) == 1 else ValidationErrors(errors)
    return Scenario(p, airspace, fleet, zones)
