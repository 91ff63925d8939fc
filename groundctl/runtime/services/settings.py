"""The service's settings: where it keeps its data, who may operate it, and the promises it makes."""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Callable

from groundctl.runtime.store import utcnow

SCENARIO_DIR = Path(__file__).resolve().parents[3] / "missions" / "cmac"


@dataclass
class Settings:
    data_dir: Path | None = None  # default ./data or $GROUNDCTL_DATA
    database_url: str | None = None  # default $DATABASE_URL, else SQLite in data_dir
    operator_keys: tuple[str, ...] = ()  # default $GROUNDCTL_OPERATOR_KEYS (comma-separated)
    scenario_dir: Path = SCENARIO_DIR  # airspace.geojson + fleet.toml seeding an empty database
    max_body_bytes: int = 1_000_000
    live_hz: float = 10.0
    resume_flights: bool = True
    dispatch_allowance_s: float = 60.0  # promised ETA = dispatch + this (upload, arm) + planned time to drop
    on_time_grace_s: float = 60.0
    # With no weather set by an operator (PUT /api/v1/weather) the verdict would refuse every flight; a
    # development station flying a simulator assumes calm air instead. Turn off where real weather matters.
    assume_calm: bool = False  # only the simulated demo fleet may fly without a weather report
    clock: Callable[[], datetime] = utcnow

    @classmethod
    def from_env(cls, **over: Any) -> "Settings":
        keys = tuple(k.strip() for k in os.environ.get("GROUNDCTL_OPERATOR_KEYS", "").split(",") if k.strip())
        s = cls(operator_keys=keys)
        for k, v in over.items():
            setattr(s, k, v)
        return s
