"""Operators' live view (WebSocket), KPIs, and the data behind the map page."""

from __future__ import annotations

import asyncio
from datetime import datetime, timezone
from typing import Annotated
from urllib.parse import urlsplit

from fastapi import APIRouter, Depends, Query, Request, WebSocket, WebSocketDisconnect
from starlette.concurrency import run_in_threadpool

from groundctl.faces.api.deps import Operator, ServiceDep, api_key_header, key_ok, operator
from groundctl.faces.api.limits import RateLimited

router = APIRouter(prefix="/api/v1", tags=["operators"])


def _utc(d: datetime | None) -> datetime | None:
    if d is None:
        return None
    return d.replace(tzinfo=timezone.utc) if d.tzinfo is None else d.astimezone(timezone.utc)


@router.get("/kpis", summary="Operator KPIs over a period (by dispatch time; naive times are UTC)")
async def kpis(_: Operator, svc: ServiceDep, since: Annotated[datetime | None, Query()] = None,
               until: Annotated[datetime | None, Query()] = None) -> dict:
    return await run_in_threadpool(svc.reports.kpis, _utc(since), _utc(until))


@router.get("/live", summary="Latest position and phase of every vehicle (the WebSocket sends the same)")
async def live(_: Operator, svc: ServiceDep) -> dict:
    return svc.live.snapshot()


@router.get("/map", summary="Everything the map draws: anonymous callers get the airspace and hubs only; "
                           "vehicles, zones and routes need an operator key (a wrong key is 401)")
async def map_data(request: Request, svc: ServiceDep,
                   key: Annotated[str | None, Depends(api_key_header)] = None) -> dict:
    if key is not None:
        await operator(request, key)  # a wrong key is refused, never quietly served the public view
    out = await run_in_threadpool(svc.reports.map_data, key is not None)
    if key is None:
        # live vehicles carry positions, delivery ids and ETAs: who is getting a parcel, where, and when
        out = {**{k: out[k] for k in PUBLIC_MAP}, "zones": [], "routes": [], "vehicles": []}
    return out


PUBLIC_MAP = ("airspace", "airspace_version", "hubs", "restrictions")  # restrictions are public, as NOTAMs are
KEY_PROTOCOL = "groundctl.key."


def origin_allowed(ws: WebSocket) -> bool:
    """Browsers always send Origin on a WebSocket and pages cannot forge it; other clients (scripts, the
    CLI) send none and are judged by their key alone. Allowed: this service's own pages (Origin names the
    host the request was sent to) and the origins listed in Settings.allowed_origins."""
    origin = ws.headers.get("origin")
    if origin is None:
        return True
    origin = origin.strip().lower().rstrip("/")
    if origin in ws.app.state.allowed_origins:
        return True
    u = urlsplit(origin)
    host = (ws.headers.get("host") or "").strip().lower()
    return u.scheme in ("http", "https") and bool(host) and u.netloc == host


@router.websocket("/live/ws")
async def live_ws(ws: WebSocket) -> None:
    # Browsers cannot set headers on a WebSocket. The map offers the key as a subprotocol
    # ("groundctl.key.<key>"); other clients may send X-API-Key. Never a query parameter: URLs are logged
    # (RefuseKeyInUrl closes such a connection before it gets here).
    if not origin_allowed(ws):
        # a page on another site could otherwise ride a key the operator's browser offers it (or probe
        # keys): refused before the key is even looked at
        await ws.close(code=1008, reason="origin not allowed")
        return
    offered = [p for p in ws.scope.get("subprotocols", []) if p.startswith(KEY_PROTOCOL)]
    candidates = [k for k in [p[len(KEY_PROTOCOL):] for p in offered] + [ws.headers.get("x-api-key")] if k]
    limits = ws.app.state.limits
    try:
        if candidates:
            await limits.credentials_allowed(ws)
    except RateLimited:
        await ws.close(code=1008, reason="too many wrong keys from this address; try later")
        return
    if not any(key_ok(ws, k) for k in candidates):
        if candidates:
            await limits.credentials_failed(ws)
        await ws.close(code=1008, reason="missing or invalid operator key")
        return
    hub = ws.app.state.service.live
    await ws.accept(subprotocol=offered[0] if offered else None)
    q = hub.subscribe()
    recv = None
    try:
        await ws.send_json(hub.snapshot())
        recv = asyncio.ensure_future(ws.receive())
        while True:
            get = asyncio.ensure_future(q.get())
            done, _ = await asyncio.wait({get, recv}, return_when=asyncio.FIRST_COMPLETED)
            if recv in done:
                get.cancel()
                msg = recv.result()
                if msg["type"] == "websocket.disconnect":
                    return
                recv = asyncio.ensure_future(ws.receive())  # clients may ping; nothing to answer
                continue
            await ws.send_text(get.result())
    except (WebSocketDisconnect, RuntimeError):
        pass
    finally:
        hub.unsubscribe(q)
        if recv is not None and not recv.done():
            recv.cancel()
