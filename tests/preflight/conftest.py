"""Shared fixtures: the CMAC example scenario and a fixed "now" (core has no clock)."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import pytest

from groundctl.core.airspace import load_airspace
from groundctl.core.fleet import load_fleet, load_landing_zones
from groundctl.core.plan import Parcel, build_plan

REPO = Path(__file__).resolve().parents[2]
CMAC = REPO / "missions" / "cmac"
DATA = Path(__file__).parent / "data"
NOW = datetime(2026, 11, 21, 6, 30, tzinfo=timezone.utc)


@pytest.fixture(scope="session")
def cmac():
    airspace = load_airspace(CMAC / "airspace.geojson")
    fleet = load_fleet(CMAC / "fleet.toml")
    zones = {z.name: z for z in load_landing_zones(CMAC / "zones.geojson")}
    return airspace, fleet, zones


@pytest.fixture(scope="session")
def make_plan(cmac):
    airspace, fleet, zones = cmac
    cache = {}

    def make(mass_kg: float = 1.2, zone: str = "clinic-east", airframe: str | None = "quad-x-delivery", **parcel_kw):
        key = (mass_kg, zone, airframe, tuple(sorted(parcel_kw.items())))
        if key not in cache:
            cache[key] = build_plan(airspace, fleet, "cmac", zones[zone], Parcel(mass_kg=mass_kg, **parcel_kw),
                                    airframe_name=airframe)
        return cache[key]

    return make
