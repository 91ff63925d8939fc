"""The outbox: rows written in the transaction of the event they announce, drained by the sender.

Every function here is synchronous database work: the sender calls it on its own thread pool so the
event loop (flights, the API) never waits on the database for a notification.
"""

from __future__ import annotations

import json
import logging
import random
import secrets
from datetime import datetime, timedelta
from typing import Any, Iterable, Sequence

from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from groundctl.runtime.notify import messages
from groundctl.runtime.notify.tables import NotifyPreference, OutboxMessage, WebhookEndpoint, ZoneStaleMark
from groundctl.runtime.store import Delivery, Event, FleetItem, Store, Zone

log = logging.getLogger("groundctl.notify")

MAX_ERROR = 500


def _body(kind: str, time: datetime, data: dict) -> str:
    return json.dumps({"type": f"{'zone' if kind == 'zone_stale' else 'delivery'}.{kind}",
                       "timestamp": time.isoformat(), "data": data}, separators=(",", ":"), sort_keys=True)


def _wants(kinds: Any, kind: str) -> bool:
    return kinds is None or kind in kinds


def _targets(s: Session, recipient_id: int | None, kind: str, integrations: bool) -> list[tuple[str, dict]]:
    """(endpoint_key, row fields) for everyone who should hear about `kind`."""
    out: list[tuple[str, dict]] = []
    prefs = s.get(NotifyPreference, recipient_id) if recipient_id is not None else None
    if recipient_id is not None and (prefs is None or _wants(prefs.kinds, kind)):
        for ep in s.scalars(select(WebhookEndpoint).where(WebhookEndpoint.recipient_id == recipient_id)):
            if _wants(ep.kinds, kind):
                out.append((f"webhook:{ep.id}", {"channel": "webhook", "endpoint_id": ep.id}))
        if prefs is not None and prefs.email_enabled and prefs.email:
            out.append((f"email:{prefs.email.lower()}", {"channel": "email", "email_to": prefs.email}))
    if integrations:
        for ep in s.scalars(select(WebhookEndpoint).where(WebhookEndpoint.recipient_id.is_(None))):
            if _wants(ep.kinds, kind):
                out.append((f"webhook:{ep.id}", {"channel": "webhook", "endpoint_id": ep.id}))
    return out


def _add(s: Session, scope: str, kind: str, time: datetime, data: dict, targets: list[tuple[str, dict]],
         **common: Any) -> int:
    if not targets:
        return 0
    keys = {f"{scope}:{kind}:{key}": (key, fields) for key, fields in targets}
    have = set(s.scalars(select(OutboxMessage.dedupe_key).where(OutboxMessage.dedupe_key.in_(list(keys)))))
    body = _body(kind, time, data)
    email = None
    n = 0
    for dk, (key, fields) in keys.items():
        if dk in have:
            continue
        if fields["channel"] == "email":
            if email is None:
                subject, text = messages.email_text(kind, data)
                email = json.dumps({"subject": subject, "text": text})
            payload = email
        else:
            payload = body
        row = OutboxMessage(msg_id="msg_" + secrets.token_urlsafe(18), dedupe_key=dk, endpoint_key=key, kind=kind,
                            body=payload, state="pending", attempts=0, next_attempt_at=time, created_at=time,
                            **fields, **common)
        try:
            with s.begin_nested():
                s.add(row)
                s.flush()
            n += 1
        except IntegrityError:  # a concurrent writer queued the same message: it is there once
            pass
    return n


def enqueue_for_event(s: Session, delivery_id: int, ev: Event) -> int:
    """Queue the notifications a just-appended event announces, in the caller's (the event's) transaction."""
    kind = messages.kind_for(ev)
    if kind is None:
        return 0
    d = s.get(Delivery, delivery_id)
    if d is None:
        return 0
    # one message per (delivery, kind, endpoint): a flight that reports "failed" twice, or fails after an
    # abort's report, does not tell the recipient twice
    targets = _targets(s, d.recipient_id, kind, integrations=True)
    if not targets:
        return 0  # nobody listens: no message to build (nor a tracking link to derive)
    note = messages.for_event(s, d, ev)
    if note is None:
        return 0
    kind, data = note
    return _add(s, f"delivery:{delivery_id}", kind, ev.time, data, targets, recipient_id=d.recipient_id,
                delivery_id=delivery_id, event_id=ev.id)


def stale_after(s: Session) -> timedelta:
    """How long a zone stays fresh after its confirmation: the fleet's operations setting."""
    from groundctl.core.fleet import Operations  # noqa: PLC0415

    row = s.get(FleetItem, ("operations", "operations"))
    ops = Operations.model_validate(row.data if row is not None else {})
    return timedelta(days=ops.zone_stale_after_days)


def enqueue_stale_zones(store: Store, now: datetime, warn_before: timedelta, limit: int = 500) -> int:
    """Tell recipients about zones about to go stale (or gone stale unannounced): once per staleness
    period, which a reconfirmation starts afresh (the period is named by its confirmed_at)."""
    n = 0
    with store.session() as s:
        stale_after_ = stale_after(s)
        cutoff = now - stale_after_ + warn_before
        q = (select(Zone).outerjoin(ZoneStaleMark, ZoneStaleMark.zone_id == Zone.id)
             .where(Zone.confirmed_at <= cutoff,
                    or_(ZoneStaleMark.zone_id.is_(None), ZoneStaleMark.confirmed_at != Zone.confirmed_at))
             .order_by(Zone.id).limit(limit))
        for z in list(s.scalars(q)):
            stale_at = z.confirmed_at + stale_after_
            scope = f"zone:{z.id}:{z.confirmed_at.isoformat()}"
            targets = _targets(s, z.recipient_id, "zone_stale", integrations=False)
            n += _add(s, scope, "zone_stale", now, messages.zone_stale(z, stale_at), targets,
                      recipient_id=z.recipient_id)
            mark = s.get(ZoneStaleMark, z.id)
            if mark is None:
                s.add(ZoneStaleMark(zone_id=z.id, confirmed_at=z.confirmed_at))
            else:
                mark.confirmed_at = z.confirmed_at
    return n


# -- the sender's side -------------------------------------------------------------------------------

def claim_due(store: Store, now: datetime, busy: Iterable[str], limit: int, lease: timedelta) -> list[dict]:
    """Pending messages that are due, at most one per endpoint and none for a busy endpoint; each one is
    leased (pushed lease into the future) so a second sender, or this one after a crash, leaves it alone."""
    busy = set(busy)
    out: list[dict] = []
    with store.session() as s:
        q = (select(OutboxMessage).where(OutboxMessage.state == "pending", OutboxMessage.next_attempt_at <= now)
             .order_by(OutboxMessage.next_attempt_at, OutboxMessage.id).limit(limit * 4))
        if busy:
            q = q.where(OutboxMessage.endpoint_key.not_in(busy))
        for m in list(s.scalars(q)):
            if m.endpoint_key in busy or len(out) >= limit:
                continue
            # optimistic claim: only one claimant sees its own update take effect
            won = s.execute(update(OutboxMessage).where(OutboxMessage.id == m.id, OutboxMessage.state == "pending",
                                                        OutboxMessage.next_attempt_at == m.next_attempt_at)
                            .values(next_attempt_at=now + lease)).rowcount
            if won != 1:
                continue
            busy.add(m.endpoint_key)
            ep = s.get(WebhookEndpoint, m.endpoint_id) if m.endpoint_id is not None else None
            out.append({"id": m.id, "msg_id": m.msg_id, "channel": m.channel, "endpoint_key": m.endpoint_key,
                        "url": ep.url if ep else None, "secret": ep.secret if ep else None,
                        "integration": ep is not None and ep.recipient_id is None,
                        "endpoint_gone": m.channel == "webhook" and ep is None,
                        "email_to": m.email_to, "body": m.body, "attempts": m.attempts, "kind": m.kind})
    return out


def record_attempt(store: Store, msg_id: int, now: datetime, ok: bool, *, status: int | None = None,
                   error: str | None = None, schedule: Sequence[float] = (), jitter: float = 0.0,
                   give_up: bool = False, rng: random.Random | None = None) -> str:
    """Record one attempt; returns the message's new state (sent, pending again with a backoff, or dead)."""
    rng = rng or random
    with store.session() as s:
        m = s.get(OutboxMessage, msg_id)
        if m is None:
            return "gone"
        m.attempts += 1
        m.last_status = status
        m.last_error = None if ok else (error or f"HTTP {status}")[:MAX_ERROR]
        if ok:
            m.state, m.sent_at = "sent", now
        elif give_up or m.attempts > len(schedule):
            m.state, m.dead_at = "dead", now
        else:
            delay = schedule[m.attempts - 1]
            # jitter spreads the retries of many messages that failed together (an endpoint's outage)
            delay *= 1 + rng.uniform(-jitter, jitter)
            m.next_attempt_at = now + timedelta(seconds=max(0.0, delay))
        return m.state


def view(m: OutboxMessage) -> dict:
    return {"id": m.id, "webhook_id": m.msg_id, "channel": m.channel, "endpoint_id": m.endpoint_id,
            "email_to": m.email_to, "recipient_id": m.recipient_id, "delivery_id": m.delivery_id, "kind": m.kind,
            "state": m.state, "attempts": m.attempts, "next_attempt_at": m.next_attempt_at.isoformat(),
            "last_status": m.last_status, "last_error": m.last_error, "created_at": m.created_at.isoformat(),
            "sent_at": m.sent_at.isoformat() if m.sent_at else None,
            "dead_at": m.dead_at.isoformat() if m.dead_at else None}


def list_messages(store: Store, *, state: str | None = None, endpoint_id: int | None = None,
                  delivery_id: int | None = None, recipient_id: int | None = None, limit: int = 50,
                  offset: int = 0) -> dict:
    conds = []
    if state is not None:
        conds.append(OutboxMessage.state == state)
    if endpoint_id is not None:
        conds.append(OutboxMessage.endpoint_id == endpoint_id)
    if delivery_id is not None:
        conds.append(OutboxMessage.delivery_id == delivery_id)
    if recipient_id is not None:
        conds.append(OutboxMessage.recipient_id == recipient_id)
    with store.session() as s:
        total = s.scalar(select(func.count()).select_from(OutboxMessage).where(*conds)) or 0
        rows = s.scalars(select(OutboxMessage).where(*conds).order_by(OutboxMessage.id.desc())
                         .limit(limit).offset(offset))
        return {"items": [view(m) for m in rows], "total": total, "limit": limit, "offset": offset}


def retry(store: Store, now: datetime, *, message_id: int | None = None, endpoint_id: int | None = None) -> int:
    """Give dead messages a fresh schedule (an operator fixed the endpoint). Returns how many."""
    conds = [OutboxMessage.state == "dead"]
    if message_id is not None:
        conds.append(OutboxMessage.id == message_id)
    if endpoint_id is not None:
        conds.append(OutboxMessage.endpoint_id == endpoint_id)
    with store.session() as s:
        return s.execute(update(OutboxMessage).where(*conds).values(
            state="pending", attempts=0, next_attempt_at=now, dead_at=None)).rowcount or 0


def prune_sent(store: Store, before: datetime, limit: int = 5000) -> int:
    """Forget messages sent before `before` (the delivery's own events stay); dead letters are kept."""
    with store.session() as s:
        ids = list(s.scalars(select(OutboxMessage.id).where(OutboxMessage.state == "sent",
                                                            OutboxMessage.sent_at < before).limit(limit)))
        if ids:
            s.execute(delete(OutboxMessage).where(OutboxMessage.id.in_(ids)))
        return len(ids)


def state_of(store: Store, message_id: int) -> str | None:
    with store.session() as s:
        m = s.get(OutboxMessage, message_id)
        return None if m is None else m.state


def counts(store: Store) -> dict:
    with store.session() as s:
        rows = s.execute(select(OutboxMessage.state, func.count(), func.sum(OutboxMessage.attempts))
                         .group_by(OutboxMessage.state)).all()
    return {state: {"messages": n, "attempts": int(a or 0)} for state, n, a in rows}


__all__ = ["enqueue_for_event", "enqueue_stale_zones", "claim_due", "record_attempt", "list_messages", "retry",
           "state_of", "prune_sent", "counts", "view"]
