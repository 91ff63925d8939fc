"""Notification settings: the retry schedule, the sender's limits, and the SMTP server."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

# Delay before each retry, s: exponential-ish, then capped, adding up to about a day (23.7 h) over 11
# attempts. Each delay is jittered by +-jitter so an endpoint's outage does not come back as a thundering herd.
DEFAULT_BACKOFF_S = (5.0, 30.0, 120.0, 600.0, 1800.0, 3600.0, 7200.0, 14400.0, 28800.0, 28800.0)


def _env_bool(name: str, default: bool) -> bool:
    v = os.environ.get(name)
    return default if v is None else v.strip().lower() in ("1", "true", "yes", "on")


@dataclass
class NotifySettings:
    enabled: bool = True  # run the background sender (serve); the outbox is written either way
    backoff_s: tuple[float, ...] = DEFAULT_BACKOFF_S
    jitter: float = 0.2
    attempt_timeout_s: float = 10.0  # one webhook POST or one SMTP conversation, all told
    concurrency: int = 16  # attempts in flight at once, across endpoints (one per endpoint at a time)
    poll_s: float = 0.5
    batch: int = 64
    stale_scan_s: float = 600.0
    stale_warn_days: float = 7.0  # tell a recipient this long before their zone goes stale
    keep_sent_days: float = 30.0  # sent messages are deleted after this; dead letters stay until retried
    arriving_notice_s: float = 120.0  # "arriving" when the live ETA to the zone (vehicle time) falls to this
    # recipients' webhook URLs may not point into the station's own network (SSRF); operators' integrations
    # may (a merchant system on the LAN). Tests on loopback turn this on.
    allow_private_urls: bool = False
    smtp_host: str | None = None
    smtp_port: int = 25
    smtp_from: str = "groundctl@localhost"
    smtp_user: str | None = None
    smtp_password: str | None = field(default=None, repr=False)  # never in a repr, a log or an error
    smtp_starttls: bool = False
    smtp_ssl: bool = False

    @classmethod
    def from_env(cls) -> "NotifySettings":
        e = os.environ
        return cls(smtp_host=e.get("GROUNDCTL_SMTP_HOST") or None,
                   smtp_port=int(e.get("GROUNDCTL_SMTP_PORT") or 25),
                   smtp_from=e.get("GROUNDCTL_SMTP_FROM") or "groundctl@localhost",
                   smtp_user=e.get("GROUNDCTL_SMTP_USER") or None,
                   smtp_password=e.get("GROUNDCTL_SMTP_PASSWORD") or None,
                   smtp_starttls=_env_bool("GROUNDCTL_SMTP_STARTTLS", False),
                   smtp_ssl=_env_bool("GROUNDCTL_SMTP_SSL", False),
                   enabled=_env_bool("GROUNDCTL_NOTIFY", True))
