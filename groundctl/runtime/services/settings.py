"""The service's settings: where it keeps its data, who may operate it, and the promises it makes."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Callable

from groundctl.errors import InputError
from groundctl.runtime.notify.settings import NotifySettings
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
    # Operational intents are reserved in wall-clock time. A station flying simulators faster than real
    # time (serve --speedup k) must compress them by the same factor, or a 20x simulated flight would
    # hold its sky twenty times too long: wall seconds per second of flight ($GROUNDCTL_INTENT_TIME_SCALE).
    intent_time_scale: float = 1.0
    # Abuse limits (faces/api/limits.py). Rates are "N/period" joined by ";" ("" = none), counted per
    # process unless rate_limit_storage names a shared store ("async+redis://..."); quotas are exact.
    rate_registrations: str = "30/minute;300/day"  # POST /recipients per client address
    rate_recipient_writes: str = "120/minute;5000/day"  # writes per recipient token
    rate_failed_credentials: str = "60/minute;1000/day"  # wrong operator keys / recipient tokens per address
    rate_limit_storage: str = "async+memory://"
    # proxies whose X-Forwarded-For names the client (addresses or networks); none by default: the TCP
    # peer is the client, whatever the request says
    trusted_proxies: tuple[str, ...] = ()
    allowed_origins: tuple[str, ...] = ()  # browser origins besides our own that may open the live feed
    max_zones_per_recipient: int = 20  # each outline has at most core.fleet.MAX_ZONE_VERTICES vertices
    # The recipient's side (runtime/tracking.py, services/handoff.py). public_url is where recipients reach
    # this service: the base of tracking links in notifications ("" = $GROUNDCTL_PUBLIC_URL, else
    # http://127.0.0.1:8000). The link secret is <data_dir>/tracking-secret or $GROUNDCTL_TRACKING_SECRET.
    public_url: str = ""
    tracking_link_days: float = 7.0  # a tracking link works until this long after its delivery ended
    unconfirmed_after_s: float = 24 * 3600.0  # a delivered parcel neither confirmed nor disputed by then is flagged
    # notifications (runtime/notify): the retry schedule, the sender's limits, the SMTP server
    # ($GROUNDCTL_SMTP_HOST/_PORT/_FROM/_USER/_PASSWORD/_STARTTLS/_SSL), the arriving notice
    notify: NotifySettings = field(default_factory=NotifySettings)

    @classmethod
    def from_env(cls, **over: Any) -> "Settings":
        keys = tuple(k.strip() for k in os.environ.get("GROUNDCTL_OPERATOR_KEYS", "").split(",") if k.strip())
        s = cls(operator_keys=keys)
        env = os.environ.get
        s.trusted_proxies = tuple(p.strip() for p in env("GROUNDCTL_TRUSTED_PROXIES", "").split(",") if p.strip())
        s.allowed_origins = tuple(o.strip() for o in env("GROUNDCTL_ALLOWED_ORIGINS", "").split(",") if o.strip())
        s.rate_registrations = env("GROUNDCTL_RATE_REGISTRATIONS", s.rate_registrations)
        s.rate_recipient_writes = env("GROUNDCTL_RATE_RECIPIENT_WRITES", s.rate_recipient_writes)
        s.rate_failed_credentials = env("GROUNDCTL_RATE_FAILED_CREDENTIALS", s.rate_failed_credentials)
        s.rate_limit_storage = env("GROUNDCTL_RATE_LIMIT_STORAGE", s.rate_limit_storage)
        if env("GROUNDCTL_MAX_ZONES_PER_RECIPIENT"):
            s.max_zones_per_recipient = int(env("GROUNDCTL_MAX_ZONES_PER_RECIPIENT"))
        s.public_url = env("GROUNDCTL_PUBLIC_URL", s.public_url)
        for name, attr in (("GROUNDCTL_TRACKING_LINK_DAYS", "tracking_link_days"),
                           ("GROUNDCTL_UNCONFIRMED_AFTER_S", "unconfirmed_after_s")):
            if env(name):
                setattr(s, attr, _positive(name, env(name)))
        if env("GROUNDCTL_INTENT_TIME_SCALE"):
            s.intent_time_scale = _positive("GROUNDCTL_INTENT_TIME_SCALE", env("GROUNDCTL_INTENT_TIME_SCALE"))
        s.notify = NotifySettings.from_env()
        for k, v in over.items():
            setattr(s, k, v)
        return s


def _positive(name: str, text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise InputError(f"not a number: {text!r}", field=name) from None
    if not v > 0 or v == float("inf"):
        raise InputError(f"must be a positive number, not {text!r}", field=name)
    return v
