"""Per-delivery capability links: whoever holds the link sees that one delivery's tracking page.

Why the token is derived, not stored: notifications (planned, dispatched, arriving, delivered) must all
carry the same link, written long after the delivery was planned, possibly by another process. Storing
the token would let a copy of the database open every recipient's page (their landing zone, the drone
approaching it); storing only a hash would make the link impossible to repeat. So the token is
HMAC-SHA256(server secret, delivery id, nonce): the secret lives outside the database (a 0600 file in the
data directory, like the operator key, or GROUNDCTL_TRACKING_SECRET, which every process of a scaled
deployment must share), the nonce and the token's sha256 live in the row. A lookup is by hash, so it
needs no secret; re-deriving the link does, and a process with a different secret gets None rather than
a link that does not open.

A link works from planning until `link_days` after the delivery ended (landed, failed, lost, crashed,
or cancelled before dispatch); an unknown, revoked or expired token is indistinguishable from a wrong one.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import os
import secrets
import threading
import weakref
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Callable

from sqlalchemy import select
from sqlalchemy.orm import Session

from groundctl.runtime.handoff_tables import TrackingLink
from groundctl.runtime.store import Delivery, Event, token_hash, utcnow

log = logging.getLogger("groundctl.tracking")

SECRET_FILE = "tracking-secret"
SECRET_ENV = "GROUNDCTL_TRACKING_SECRET"
PUBLIC_URL_ENV = "GROUNDCTL_PUBLIC_URL"
DEFAULT_LINK_DAYS = 7.0
TOKEN_MAX_LEN = 64  # a derived token is 43 characters; anything much longer is not one of ours
_CONTEXT = b"groundctl/tracking-link/v1"
# a delivery is over once one of these happened; a cancelled one ('aborted' before dispatch) too
END_KINDS = ("landed", "report", "failed", "lost", "crashed")


def default_public_url() -> str:
    return (os.environ.get(PUBLIC_URL_ENV) or "http://127.0.0.1:8000").rstrip("/")


def load_secret(data_dir: str | Path | None) -> bytes:
    """The server's link secret: $GROUNDCTL_TRACKING_SECRET, else <data dir>/tracking-secret (0600),
    generated on first use. Never logged."""
    env = os.environ.get(SECRET_ENV, "").strip()
    if env:
        return env.encode()
    d = Path(data_dir or os.environ.get("GROUNDCTL_DATA") or "./data")
    d.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = d / SECRET_FILE
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        if path.stat().st_mode & 0o777 != 0o600:
            os.chmod(path, 0o600)
        text = path.read_text().strip()
        if len(text) >= 32:
            return text.encode()
        fd = os.open(path, os.O_WRONLY | os.O_TRUNC)  # empty or truncated (a crash while writing): start over
    text = secrets.token_urlsafe(32)
    with os.fdopen(fd, "w") as f:
        f.write(text + "\n")
    return text.encode()


@dataclass
class TrackingConfig:
    secret: bytes
    link_days: float = DEFAULT_LINK_DAYS
    public_url: str = field(default_factory=default_public_url)
    clock: Callable[[], datetime] = utcnow


_configs: "weakref.WeakKeyDictionary[object, TrackingConfig]" = weakref.WeakKeyDictionary()
_lock = threading.Lock()


def _engine_of(bind):
    return getattr(bind, "engine", bind)


def configure(engine, *, data_dir: str | Path | None = None, secret: bytes | None = None,
              link_days: float | None = None, public_url: str | None = None,
              clock: Callable[[], datetime] | None = None) -> TrackingConfig:
    """Tie a database (its engine) to the secret and settings its links are made with. The service calls
    this when it starts; a bind nobody configured falls back to the environment and its SQLite directory."""
    cfg = TrackingConfig(secret=secret or load_secret(data_dir),
                         link_days=DEFAULT_LINK_DAYS if link_days is None else float(link_days),
                         public_url=(public_url or default_public_url()).rstrip("/"), clock=clock or utcnow)
    with _lock:
        _configs[_engine_of(engine)] = cfg
    return cfg


def config_for(bind) -> TrackingConfig:
    engine = _engine_of(bind)
    with _lock:
        cfg = _configs.get(engine)
    if cfg is not None:
        return cfg
    data_dir = None
    url = getattr(engine, "url", None)
    if url is not None and url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
        data_dir = Path(url.database).parent  # the SQLite file lives in the data directory
    return configure(engine, data_dir=data_dir)


def derive_token(secret: bytes, delivery_id: int, nonce: str) -> str:
    mac = hmac.new(secret, _CONTEXT + b"\0" + str(int(delivery_id)).encode() + b"\0" + nonce.encode(),
                   hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac).rstrip(b"=").decode()


def _new_link(s: Session, delivery_id: int, cfg: TrackingConfig) -> TrackingLink:
    nonce = secrets.token_hex(16)
    link = TrackingLink(delivery_id=delivery_id, nonce=nonce,
                        token_hash=token_hash(derive_token(cfg.secret, delivery_id, nonce)), created_at=cfg.clock())
    s.add(link)
    s.flush()
    return link


def ensure_link(s: Session, delivery_id: int) -> TrackingLink | None:
    """The delivery's link, created if it has none yet; None for a refused or unknown delivery (nothing
    will fly, so there is nothing to track)."""
    link = s.get(TrackingLink, delivery_id)
    if link is not None:
        return link
    d = s.get(Delivery, delivery_id)
    if d is None or d.state == "refused":
        return None
    return _new_link(s, delivery_id, config_for(s.get_bind()))


def rotate_link(s: Session, delivery_id: int) -> str | None:
    """A new link for the delivery; the old one stops working at once. Returns the new URL."""
    cfg = config_for(s.get_bind())
    link = s.get(TrackingLink, delivery_id)
    if link is None:
        return tracking_url(s, delivery_id)
    link.nonce = secrets.token_hex(16)
    link.token_hash = token_hash(derive_token(cfg.secret, delivery_id, link.nonce))
    link.revoked_at = None
    s.flush()
    return tracking_url(s, delivery_id)


def revoke_link(s: Session, delivery_id: int) -> None:
    link = s.get(TrackingLink, delivery_id)
    if link is not None and link.revoked_at is None:
        link.revoked_at = config_for(s.get_bind()).clock()


def ended_at(s: Session, delivery_id: int, events: list | None = None) -> datetime | None:
    """When the delivery was over, or None while it is still to fly or flying. `events`: the delivery's
    stored events when the caller has them already."""
    rows = ([(e.kind, e.time) for e in events] if events is not None else
            list(s.execute(select(Event.kind, Event.time).where(Event.delivery_id == delivery_id))))
    kinds = {k for k, _ in rows}
    ends = [t for k, t in rows if k in END_KINDS or (k == "aborted" and "dispatched" not in kinds)]
    return min(ends) if ends else None


def expires_at(s: Session, delivery_id: int, link_days: float | None = None,
               events: list | None = None) -> datetime | None:
    end = ended_at(s, delivery_id, events)
    if end is None:
        return None
    days = config_for(s.get_bind()).link_days if link_days is None else link_days
    return end + timedelta(days=days)


def _usable(s: Session, link: TrackingLink, cfg: TrackingConfig, events: list | None = None) -> bool:
    if link.revoked_at is not None:
        return False
    exp = expires_at(s, link.delivery_id, cfg.link_days, events)
    return exp is None or cfg.clock() < exp


def tracking_token(s: Session, delivery_id: int, events: list | None = None) -> str | None:
    """The raw token of a delivery's live link (created if needed), or None (refused, revoked, expired,
    or this process's secret is not the one the link was made with)."""
    cfg = config_for(s.get_bind())
    link = ensure_link(s, delivery_id)
    if link is None or not _usable(s, link, cfg, events):
        return None
    token = derive_token(cfg.secret, delivery_id, link.nonce)
    if not hmac.compare_digest(token_hash(token), link.token_hash):
        log.warning("tracking link of delivery %s was made with another secret; set %s the same in every process",
                    delivery_id, SECRET_ENV)
        return None
    return token


def tracking_url(s: Session, delivery_id: int, base_url: str | None = None, *,
                 events: list | None = None) -> str | None:
    """The recipient's tracking page for a delivery, for notifications: `<public base URL>/t/<token>`.

    Runs in the caller's transaction (an outbox row and its link are written together); None when the
    delivery has no live link (refused, revoked, expired)."""
    token = tracking_token(s, delivery_id, events)
    if token is None:
        return None
    base = (base_url or config_for(s.get_bind()).public_url).rstrip("/")
    return f"{base}/t/{token}"


def delivery_for_token(s: Session, token: str) -> int | None:
    """The delivery a token opens, or None: unknown, malformed, revoked and expired all look the same."""
    if not token or len(token) > TOKEN_MAX_LEN:
        return None
    link = s.scalar(select(TrackingLink).where(TrackingLink.token_hash == token_hash(token)))
    if link is None or not _usable(s, link, config_for(s.get_bind())):
        return None
    return link.delivery_id
