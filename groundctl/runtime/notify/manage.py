"""Endpoints and preferences, as recipients and operators manage them (synchronous database work)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, select

from groundctl.errors import InputError, NotFound
from groundctl.runtime.notify.messages import KINDS
from groundctl.runtime.notify.signing import new_secret
from groundctl.runtime.notify.tables import NotifyPreference, WebhookEndpoint
from groundctl.runtime.notify.urls import check_url
from groundctl.runtime.store import Store

MAX_ENDPOINTS = 10  # per recipient: each one multiplies every notification


def check_kinds(kinds: Any, field: str = "kinds") -> list[str] | None:
    if kinds is None:
        return None
    bad = [k for k in kinds if k not in KINDS]
    if bad:
        raise InputError(f"unknown kind(s) {', '.join(map(repr, bad))}; known: {', '.join(KINDS)}", field=field)
    return sorted(set(kinds), key=KINDS.index)


def endpoint_view(ep: WebhookEndpoint, secret: bool = False) -> dict:
    v = {"id": ep.id, "url": ep.url, "kinds": ep.kinds, "description": ep.description,
         "integration": ep.recipient_id is None, "created_at": ep.created_at.isoformat()}
    if secret:
        v["secret"] = ep.secret
    return v


def create_endpoint(store: Store, recipient_id: int | None, url: str, kinds: list[str] | None,
                    description: str | None, *, allow_private: bool, now: datetime) -> dict:
    """A new endpoint and its signing secret; the secret is in this answer only."""
    url = check_url(url, allow_private=allow_private or recipient_id is None)
    kinds = check_kinds(kinds)
    with store.session() as s:
        if recipient_id is not None:
            n = s.scalar(select(func.count()).select_from(WebhookEndpoint)
                         .where(WebhookEndpoint.recipient_id == recipient_id)) or 0
            if n >= MAX_ENDPOINTS:
                raise InputError(f"at most {MAX_ENDPOINTS} webhook endpoints per recipient; delete one first",
                                 field="url")
        ep = WebhookEndpoint(recipient_id=recipient_id, url=url, secret=new_secret(), kinds=kinds,
                             description=description, created_at=now)
        s.add(ep)
        s.flush()
        return endpoint_view(ep, secret=True)


def _own(s, recipient_id: int | None, endpoint_id: int) -> WebhookEndpoint:
    ep = s.get(WebhookEndpoint, endpoint_id)
    # a recipient's endpoint is not an integration and another recipient's is not yours: both are 404
    if ep is None or ep.recipient_id != recipient_id:
        raise NotFound(f"webhook endpoint {endpoint_id} not found", field="endpoint_id")
    return ep


def list_endpoints(store: Store, recipient_id: int | None) -> dict:
    with store.session() as s:
        q = select(WebhookEndpoint).order_by(WebhookEndpoint.id)
        q = q.where(WebhookEndpoint.recipient_id.is_(None) if recipient_id is None
                    else WebhookEndpoint.recipient_id == recipient_id)
        return {"items": [endpoint_view(ep) for ep in s.scalars(q.limit(1000))]}


def get_endpoint(store: Store, recipient_id: int | None, endpoint_id: int) -> dict:
    with store.session() as s:
        return endpoint_view(_own(s, recipient_id, endpoint_id))


def delete_endpoint(store: Store, recipient_id: int | None, endpoint_id: int) -> None:
    """Its pending messages are dead-lettered by the sender ("the endpoint was deleted"), not lost silently."""
    with store.session() as s:
        s.delete(_own(s, recipient_id, endpoint_id))


def rotate_secret(store: Store, recipient_id: int | None, endpoint_id: int) -> dict:
    with store.session() as s:
        ep = _own(s, recipient_id, endpoint_id)
        ep.secret = new_secret()
        return endpoint_view(ep, secret=True)


def prefs_view(p: NotifyPreference | None) -> dict:
    if p is None:
        return {"kinds": None, "email_enabled": False, "email": None}
    return {"kinds": p.kinds, "email_enabled": p.email_enabled, "email": p.email}


def get_prefs(store: Store, recipient_id: int) -> dict:
    with store.session() as s:
        return prefs_view(s.get(NotifyPreference, recipient_id))


def put_prefs(store: Store, recipient_id: int, kinds: list[str] | None, email_enabled: bool, email: str | None,
              now: datetime) -> dict:
    kinds = check_kinds(kinds)
    if email_enabled and not email:
        raise InputError("email notifications need an email address", field="email")
    with store.session() as s:
        p = s.get(NotifyPreference, recipient_id)
        if p is None:
            p = NotifyPreference(recipient_id=recipient_id)
            s.add(p)
        p.kinds, p.email_enabled, p.email, p.updated_at = kinds, email_enabled, email, now
        s.flush()
        return prefs_view(p)
