"""Rate limits on what anyone on the internet can do: register, and write as a recipient.

Counting uses the `limits` library (moving windows). Its storage is chosen by a URI in Settings
(`rate_limit_storage`): the default "async+memory://" counts inside this process. With several API
processes behind one address, each counts on its own, so a client may get up to N times a limit; point
every process at one shared store ("async+redis://host:6379", "async+memcached://...") to share the
counts. Quotas that must be exact whatever the number of processes (zones per recipient) are counted in
the database by the service, inside the transaction that writes.

The client address is the TCP peer. X-Forwarded-For is read only when that peer is one of the
`trusted_proxies` (addresses or networks): otherwise anyone could pick a fresh address per request.
"""

from __future__ import annotations

import hashlib
import ipaddress
import math
import time
from dataclasses import dataclass

from fastapi import HTTPException
from limits import RateLimitItem, parse_many
from limits.storage import storage_from_string
from limits.aio.strategies import MovingWindowRateLimiter
from starlette.requests import HTTPConnection

WRITES = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class RateLimited(HTTPException):
    """429 with Retry-After; the problem body names the limit (see problems.install)."""

    def __init__(self, name: str, what: str, limit: RateLimitItem, retry_after_s: int) -> None:
        self.limit_name = name
        self.limit_text = str(limit)  # "30 per 1 minute"
        self.retry_after_s = retry_after_s
        super().__init__(429, detail=f"rate limit reached: {what}: at most {self.limit_text}; retry in {retry_after_s} s",
                         headers={"Retry-After": str(retry_after_s)})


def _networks(items) -> tuple:
    out = []
    for it in items:
        try:
            out.append(ipaddress.ip_network(str(it).strip(), strict=False))
        except ValueError as e:
            raise ValueError(f"trusted_proxies: {it!r} is not an address or network ({e})") from None
    return tuple(out)


def _ip(text: str):
    try:
        return ipaddress.ip_address(text.strip())
    except ValueError:
        return None


@dataclass
class ClientAddress:
    trusted: tuple = ()

    def __call__(self, conn: HTTPConnection) -> str:
        peer = conn.scope.get("client")[0] if conn.scope.get("client") else "unknown"
        if not self.trusted or not self._is_trusted(_ip(peer)):
            return peer
        # walk the chain from the nearest hop outwards: the first address not ours is the client.
        # Entries further left were written by the client itself and prove nothing.
        hops = [h.strip() for v in conn.headers.getlist("x-forwarded-for") for h in v.split(",") if h.strip()]
        for hop in reversed(hops):
            ip = _ip(hop)
            if ip is None:
                return peer  # garbage in the chain: count the request against the proxy, not a made-up name
            if not self._is_trusted(ip):
                return str(ip)
        return peer

    def _is_trusted(self, ip) -> bool:
        return ip is not None and any(ip in n for n in self.trusted)


class RateLimiter:
    """Moving-window limits keyed by (name, identity)."""

    def __init__(self, storage_uri: str = "async+memory://") -> None:
        self.storage = storage_from_string(storage_uri)
        self.strategy = MovingWindowRateLimiter(self.storage)

    async def hit(self, name: str, what: str, limits: list[RateLimitItem], identity: str) -> None:
        """Count one request, or raise RateLimited (counting nothing) when any window is full."""
        for item in limits:
            if not await self.strategy.test(item, name, identity):
                reset, _ = await self.strategy.get_window_stats(item, name, identity)
                raise RateLimited(name, what, item, max(1, math.ceil(reset - time.time())))
        for item in limits:
            await self.strategy.hit(item, name, identity)


def parse_rates(field: str, text: str) -> list[RateLimitItem]:
    """'30/minute;300/day' -> limits; an empty string means no limit. Bad text names the setting."""
    if not text or not text.strip():
        return []
    try:
        return list(parse_many(text))
    except ValueError as e:
        raise ValueError(f"{field}: {text!r} is not a rate like '30/minute;300/day' ({e})") from None


class Limits:
    """The API's limits, built once per app from Settings (so a bad setting fails at start, naming it)."""

    def __init__(self, settings) -> None:
        self.client_address = ClientAddress(_networks(settings.trusted_proxies))
        self.registrations = parse_rates("rate_registrations", settings.rate_registrations)
        self.recipient_writes = parse_rates("rate_recipient_writes", settings.rate_recipient_writes)
        self.failed_credentials = parse_rates("rate_failed_credentials", settings.rate_failed_credentials)
        self.limiter = RateLimiter(settings.rate_limit_storage)

    # -- guessing keys and tokens --------------------------------------------------------------------
    # Only credentials that were presented and wrong count (a client that sends none is told so and is no
    # guesser); once an address is over the limit even a right key waits, or a guesser would learn from
    # which answer changes.
    async def credentials_allowed(self, conn: HTTPConnection) -> None:
        for item in self.failed_credentials:
            addr = self.client_address(conn)
            if not await self.limiter.strategy.test(item, "failed_credentials", addr):
                reset, _ = await self.limiter.strategy.get_window_stats(item, "failed_credentials", addr)
                raise RateLimited("failed_credentials", "wrong keys or tokens per client address", item,
                                  max(1, math.ceil(reset - time.time())))

    async def credentials_failed(self, conn: HTTPConnection) -> None:
        for item in self.failed_credentials:
            await self.limiter.strategy.hit(item, "failed_credentials", self.client_address(conn))

    async def registration(self, conn: HTTPConnection) -> None:
        if self.registrations:
            await self.limiter.hit("registrations_per_address", "registrations per client address",
                                   self.registrations, self.client_address(conn))

    async def recipient_write(self, conn: HTTPConnection) -> None:
        """Writes made with a recipient's bearer token, counted per token (not per address: one
        household's router should not share a budget with its neighbours')."""
        if not self.recipient_writes or conn.scope.get("method") not in WRITES:
            return
        auth = conn.headers.get("authorization") or ""
        scheme, _, token = auth.partition(" ")
        if scheme.lower() != "bearer" or not token.strip() or conn.headers.get("x-api-key") is not None:
            return  # operators are not limited here; a request without a token is refused anyway
        identity = hashlib.sha256(token.strip().encode()).hexdigest()[:32]  # never the token itself
        await self.limiter.hit("recipient_writes", "writes per recipient", self.recipient_writes, identity)


async def recipient_writes(conn: HTTPConnection) -> None:
    """App-wide dependency: every bearer-authenticated write, whichever router it lands in."""
    if conn.scope.get("type") == "http":
        await conn.app.state.limits.recipient_write(conn)


async def registrations(conn: HTTPConnection) -> None:
    await conn.app.state.limits.registration(conn)
