"""The background sender: drains the outbox over HTTP (signed webhooks) and SMTP (email).

One asyncio task started by `serve`. Isolation is per endpoint: at most one attempt per endpoint is in
flight and a busy endpoint's messages are not even fetched, so a slow or dead endpoint only ever holds its
own queue. Blocking work (the database, SMTP, name lookups) runs on the sender's own small thread pools, not
on the loop's default executor that flights write their events through: a slow mail server or a slow
database answer for notifications never queues a flight's event behind it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import smtplib
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from email.message import EmailMessage
from functools import partial
from contextlib import asynccontextmanager
from typing import AsyncIterator, Callable

import httpx

from groundctl.runtime.notify import outbox
from groundctl.runtime.notify.settings import NotifySettings
from groundctl.runtime.notify.signing import headers as signed_headers
from groundctl.runtime.notify.urls import refuse_private_target
from groundctl.runtime.store import Store, utcnow

log = logging.getLogger("groundctl.notify")


def send_email(cfg: NotifySettings, to: str, subject: str, text: str, msg_id: str) -> None:
    """One message over SMTP (blocking: run it in a thread). Raises on any refusal."""
    m = EmailMessage()
    m["From"] = cfg.smtp_from
    m["To"] = to
    m["Subject"] = subject
    # the same Message-ID on every attempt: a mail client shows a resent message once
    m["Message-ID"] = f"<{msg_id}@groundctl>"
    m.set_content(text)
    if not cfg.smtp_host:
        raise RuntimeError("no SMTP server configured (GROUNDCTL_SMTP_HOST)")
    cls = smtplib.SMTP_SSL if cfg.smtp_ssl else smtplib.SMTP
    with cls(cfg.smtp_host, cfg.smtp_port, timeout=cfg.attempt_timeout_s) as c:
        if cfg.smtp_starttls and not cfg.smtp_ssl:
            c.starttls()
        if cfg.smtp_user:
            c.login(cfg.smtp_user, cfg.smtp_password or "")
        c.send_message(m)


class Sender:
    def __init__(self, store: Store, cfg: NotifySettings, *, clock: Callable[[], datetime] = utcnow,
                 rng: random.Random | None = None) -> None:
        self.store = store
        self.cfg = cfg
        self.now = clock
        self.rng = rng or random.Random()
        self.busy: set[str] = set()
        self.tasks: set[asyncio.Task] = set()
        self._sem = asyncio.Semaphore(max(1, cfg.concurrency))
        self._main: asyncio.Task | None = None
        self._client: httpx.AsyncClient | None = None
        self._wake = asyncio.Event()
        self._last_scan = float("-inf")
        self.stats = {"attempts": 0, "sent": 0, "failed_attempts": 0, "dead": 0}
        self._db_pool = ThreadPoolExecutor(2, thread_name_prefix="notify-db")
        self._io_pool = ThreadPoolExecutor(max(1, min(cfg.concurrency, 8)), thread_name_prefix="notify-io")

    async def _db(self, fn, *args, **kw):  # noqa: ANN001, ANN202
        return await asyncio.get_running_loop().run_in_executor(self._db_pool, partial(fn, *args, **kw))

    async def _io(self, fn, *args, **kw):  # noqa: ANN001, ANN202
        return await asyncio.get_running_loop().run_in_executor(self._io_pool, partial(fn, *args, **kw))

    def start(self) -> None:
        if self._main is None:
            self._main = asyncio.get_running_loop().create_task(self._run(), name="notify-sender")

    def wake(self) -> None:
        """Look at the outbox now rather than at the next poll (a new event was just appended)."""
        self._wake.set()

    async def stop(self) -> None:
        if self._main is not None:
            self._main.cancel()
            try:
                await self._main
            except (asyncio.CancelledError, Exception):
                pass
            self._main = None
        for t in list(self.tasks):
            t.cancel()
        for t in list(self.tasks):
            try:
                await t
            except (asyncio.CancelledError, Exception):
                pass
        if self._client is not None:
            await self._client.aclose()
            self._client = None
        # threads stuck in an SMTP conversation end at their own socket timeout; nobody waits for them
        self._io_pool.shutdown(wait=False, cancel_futures=True)
        self._db_pool.shutdown(wait=False, cancel_futures=True)

    async def _run(self) -> None:
        # no redirects: a 3xx is not a delivery, and following one could lead a webhook somewhere private
        self._client = httpx.AsyncClient(timeout=self.cfg.attempt_timeout_s, follow_redirects=False,
                                         headers={"user-agent": "groundctl-webhooks/1"})
        while True:
            try:
                await self.tick()
            except asyncio.CancelledError:
                raise
            except Exception:  # the database may be briefly unavailable; the next poll tries again
                log.exception("notification sender: poll failed")
            try:
                await asyncio.wait_for(self._wake.wait(), self.cfg.poll_s)
            except asyncio.TimeoutError:
                pass
            self._wake.clear()

    async def tick(self) -> int:
        """One look at the outbox: start an attempt for each due message of an idle endpoint."""
        if time.monotonic() - self._last_scan >= self.cfg.stale_scan_s:
            self._last_scan = time.monotonic()
            await self._db(outbox.enqueue_stale_zones, self.store, self.now(), timedelta(days=self.cfg.stale_warn_days))
            await self._db(outbox.prune_sent, self.store, self.now() - timedelta(days=self.cfg.keep_sent_days))
        free = max(0, self.cfg.concurrency - len(self.busy))
        if free == 0:
            return 0
        lease = timedelta(seconds=self.cfg.attempt_timeout_s * 3 + 30)
        due = await self._db(outbox.claim_due, self.store, self.now(), set(self.busy),
                                      min(free, self.cfg.batch), lease)
        for m in due:
            self.busy.add(m["endpoint_key"])
            t = asyncio.get_running_loop().create_task(self._attempt(m), name=f"notify-{m['id']}")
            self.tasks.add(t)
            t.add_done_callback(self.tasks.discard)
        return len(due)

    async def _attempt(self, m: dict) -> None:
        ok, status, error, give_up = False, None, None, False
        try:
            async with self._sem:
                try:
                    if m["channel"] == "email" and not self.cfg.smtp_host:
                        # nothing to retry until an operator configures a server (and retries the dead letters)
                        error, give_up = "no SMTP server configured (GROUNDCTL_SMTP_HOST)", True
                    elif m["channel"] == "email":
                        mail = json.loads(m["body"])
                        await asyncio.wait_for(self._io(send_email, self.cfg, m["email_to"], mail["subject"],
                                                                 mail["text"], m["msg_id"]),
                                               self.cfg.attempt_timeout_s + 1)
                        ok = True
                    elif m["endpoint_gone"]:
                        error, give_up = "the endpoint was deleted", True
                    else:
                        status, error = await self._post(m)
                        ok = status is not None and 200 <= status < 300
                except asyncio.TimeoutError:
                    error = f"timed out after {self.cfg.attempt_timeout_s:g} s"
                except (httpx.HTTPError, OSError, smtplib.SMTPException, RuntimeError, ValueError) as e:
                    error = f"{type(e).__name__}: {e}"
            self.stats["attempts"] += 1
            self.stats["sent" if ok else "failed_attempts"] += 1
            try:
                state = await self._db(outbox.record_attempt, self.store, m["id"], self.now(), ok,
                                                status=status, error=error, schedule=self.cfg.backoff_s,
                                                jitter=self.cfg.jitter, give_up=give_up, rng=self.rng)
            except Exception:  # unrecorded: the lease runs out and the message is tried again
                log.exception("notification %s: could not record the attempt", m["msg_id"])
                return
            if state == "dead":
                self.stats["dead"] += 1
                # the id and the endpoint only: URLs may carry tokens, and bodies carry personal data
                log.warning("notification %s to %s dead-lettered after %d attempts: %s", m["msg_id"],
                            m["endpoint_key"], m["attempts"] + 1, error)
        finally:
            self.busy.discard(m["endpoint_key"])
        if ok:
            self._wake.set()  # this endpoint may have more waiting

    async def _post(self, m: dict) -> tuple[int | None, str | None]:
        if not m["integration"] and not self.cfg.allow_private_urls:
            why = await refuse_private_target(m["url"], lambda *a: self._io(socket.getaddrinfo, *a))
            if why:
                return None, why
        body = m["body"].encode()
        h = signed_headers(m["secret"], m["msg_id"], int(self.now().timestamp()), body)
        assert self._client is not None

        async def go() -> int:
            # stream and never read the body: a hostile endpoint cannot make us download anything
            async with self._client.stream("POST", m["url"], content=body, headers=h) as r:
                return r.status_code

        # httpx's timeout is per read; the wait_for bounds the whole attempt (a receiver that trickles)
        status = await asyncio.wait_for(go(), self.cfg.attempt_timeout_s)
        return status, None if 200 <= status < 300 else f"HTTP {status}"


def settings_of(settings) -> NotifySettings:
    """The service settings' notification part (`notify`), or one read from the environment."""
    cfg = getattr(settings, "notify", None)
    if not isinstance(cfg, NotifySettings):
        cfg = NotifySettings.from_env()
        try:
            settings.notify = cfg  # one object for the sender and the API
        except AttributeError:
            pass
    return cfg


@asynccontextmanager
async def sender_lifespan(app) -> AsyncIterator[None]:  # noqa: ANN001
    """Run the sender for as long as the API app runs (`groundctl serve`)."""
    svc = app.state.service
    cfg = settings_of(app.state.settings)
    sender = Sender(svc.store, cfg, clock=getattr(svc.settings, "clock", utcnow)) if cfg.enabled else None
    app.state.notify_sender = sender
    if sender is not None:
        sender.start()
    try:
        yield
    finally:
        if sender is not None:
            await sender.stop()
