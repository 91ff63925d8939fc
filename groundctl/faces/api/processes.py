"""The API in several processes (uvicorn workers) with flights in `groundctl worker` processes.

uvicorn starts each API process from an import string, so the settings travel in the environment:
DATABASE_URL, GROUNDCTL_OPERATOR_KEYS, GROUNDCTL_DATA, GROUNDCTL_SCENARIO_DIR, GROUNDCTL_ASSUME_CALM and
GROUNDCTL_FLIGHTS=workers (flights are offered to the workers instead of flown here).
"""

from __future__ import annotations

import os
from pathlib import Path

from groundctl.errors import InputError
from groundctl.runtime.services import Settings

FLIGHT_MODES = ("inline", "workers")


def flight_mode(value: str | None = None) -> str:
    mode = (value or os.environ.get("GROUNDCTL_FLIGHTS") or "inline").strip().lower()
    if mode not in FLIGHT_MODES:
        raise InputError(f"must be one of {', '.join(FLIGHT_MODES)}, got {mode!r}", field="flights")
    return mode


def export_settings(settings: Settings, flights: str) -> None:
    """Put what the API processes need into the environment they inherit."""
    os.environ["GROUNDCTL_OPERATOR_KEYS"] = ",".join(settings.operator_keys)
    if settings.data_dir is not None:
        os.environ["GROUNDCTL_DATA"] = str(settings.data_dir)
    if settings.database_url:
        os.environ["DATABASE_URL"] = settings.database_url
    os.environ["GROUNDCTL_SCENARIO_DIR"] = str(settings.scenario_dir)
    os.environ["GROUNDCTL_ASSUME_CALM"] = "1" if settings.assume_calm else "0"
    os.environ["GROUNDCTL_FLIGHTS"] = flights


def settings_from_env() -> Settings:
    s = Settings.from_env()
    if os.environ.get("GROUNDCTL_DATA"):
        s.data_dir = Path(os.environ["GROUNDCTL_DATA"])
    if os.environ.get("GROUNDCTL_SCENARIO_DIR"):
        s.scenario_dir = Path(os.environ["GROUNDCTL_SCENARIO_DIR"])
    s.assume_calm = os.environ.get("GROUNDCTL_ASSUME_CALM") == "1"
    return s


def app_from_env():
    """uvicorn's factory for each API process."""
    from groundctl.faces.api.app import create_app  # noqa: PLC0415
    from groundctl.runtime.services.remote_flights import RemoteFlights  # noqa: PLC0415

    app = create_app(settings_from_env())
    if flight_mode() == "workers":
        RemoteFlights.of(app.state.service)
    return app
