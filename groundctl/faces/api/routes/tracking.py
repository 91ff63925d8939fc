"""The recipient's tracking page behind a per-delivery capability link, and the JSON it reads.

Whoever holds /t/<token> may see that one delivery and act on it as its recipient (change it before
dispatch, confirm or dispute it afterwards). A wrong, revoked or expired token is a plain 404 that says
nothing about whether the delivery exists. The token is in the path, so these responses are never cached
and never leak it through a Referer; the access log redacts it (secrecy.py).
"""

from __future__ import annotations

import hashlib
from pathlib import Path as FsPath
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Path, Request
from fastapi.responses import FileResponse, HTMLResponse
from pydantic import Field
from starlette.concurrency import run_in_threadpool

from groundctl.errors import NotFound
from groundctl.faces.api.deps import ServiceDep
from groundctl.faces.api.schemas import _In
from groundctl.runtime.services.handoff import MESSAGE_MAX, HandoffService

router = APIRouter(tags=["tracking"])
STATIC = FsPath(__file__).resolve().parents[2] / "static"
# no length limit here: an overlong token is just another wrong one (404), not an invalid request
Token = Annotated[str, Path(min_length=1, description="the capability token from the tracking link")]
PRIVATE = {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer", "X-Robots-Tag": "noindex, nofollow"}

NOT_FOUND_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Link not found</title><link rel="stylesheet" href="/static/track.css"></head>
<body><main class="card"><h1>This tracking link does not work</h1>
<p>It may be mistyped or it may have expired. Ask the sender for a new one.</p></main></body></html>
"""


def handoff(svc) -> HandoffService:
    """The service's handoff part: tracking links, change of mind, answers (routes/attended.py uses it too)."""
    return svc.handoff


class ChangeIn(_In):
    zone_id: int | None = Field(default=None, ge=1, le=2**62, description="another of the recipient's zones")
    instructions: str | None = Field(default=None, max_length=2000,
                                     description="new drop instructions; null clears them, absent keeps them")


class ConfirmIn(_In):
    status: Literal["received", "not_received", "damaged", "wrong_place"] = Field(
        description="received, or the problem: not_received, damaged, wrong_place")
    message: str = Field(default="", max_length=MESSAGE_MAX)


async def link_writes(request: Request, token: Token) -> None:
    """Writes through a link count against the same budget as a recipient token's (per link, by hash): a
    leaked link must not become a way to re-plan deliveries or append events without end."""
    lim = getattr(request.app.state, "limits", None)
    if lim is not None and lim.recipient_writes:
        identity = "link:" + hashlib.sha256(token.encode()).hexdigest()[:32]  # never the token itself
        await lim.limiter.hit("recipient_writes", "writes per tracking link", lim.recipient_writes, identity)


LinkWrites = Depends(link_writes)


def change_args(body: ChangeIn) -> dict:
    return {"zone_id": body.zone_id, "instructions": body.instructions,
            "set_instructions": "instructions" in body.model_fields_set}


@router.get("/t/{token}", include_in_schema=False)
async def page(token: Token, svc: ServiceDep):
    try:
        await run_in_threadpool(handoff(svc).delivery_for_token, token)
    except NotFound:
        return HTMLResponse(NOT_FOUND_PAGE, status_code=404, headers=PRIVATE)
    return FileResponse(STATIC / "track.html", media_type="text/html", headers=PRIVATE)


@router.get("/api/v1/track/{token}", summary="The delivery a tracking link opens: state, ETA, the drone while it "
                                             "approaches, drop instructions, proof of delivery")
async def track(token: Token, svc: ServiceDep) -> dict:
    return await run_in_threadpool(handoff(svc).track, token)


@router.patch("/api/v1/track/{token}", dependencies=[LinkWrites],
              summary="Before dispatch: other drop instructions or another of the recipient's zones (planned and "
                      "checked again); 409 after dispatch")
async def change(token: Token, body: ChangeIn, svc: ServiceDep) -> dict:
    h = handoff(svc)
    did = await run_in_threadpool(h.delivery_for_token, token)
    await run_in_threadpool(lambda: h.change(did, None, via="page", **change_args(body)))
    return await run_in_threadpool(h.track, token)


@router.post("/api/v1/track/{token}/confirmation", status_code=201, dependencies=[LinkWrites],
             summary="After the drop: confirm receipt or report a problem (once)")
async def confirm(token: Token, body: ConfirmIn, svc: ServiceDep) -> dict:
    h = handoff(svc)
    did = await run_in_threadpool(h.delivery_for_token, token)
    return await run_in_threadpool(h.confirm, did, None, body.status, body.message, "page")

