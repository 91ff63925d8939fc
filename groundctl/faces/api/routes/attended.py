"""Attended drop: the recipient's word that they will be there, and their "clear to drop" while the drone
holds above their zone.

Presence: the tracking link's POST .../presence ("I'll be there"), or the recipient's bearer token, or an
operator the recipient told (POST /deliveries/{id}/presence); recorded once as `presence_confirmed`.
Dispatch of an attended parcel is refused (409) until then unless the operator passes force.

Two ways in: the tracking link (its token is the capability: whoever holds it is the recipient), or the
one-time code the recipient was given, sent by the recipient (bearer token) or by an operator the
recipient read it to. A clearance that cannot act (not holding yet, hold over, already cleared) is 409
with the reason; a wrong code is 403 and counts against the code.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Request
from pydantic import Field
from starlette.concurrency import run_in_threadpool

from groundctl.faces.api.deps import MAX_ID, CallerDep, ServiceDep
from groundctl.faces.api.schemas import _In
from groundctl.runtime.attended import CODE_DIGITS, AttendedService

router = APIRouter(prefix="/api/v1", tags=["attended drop"])
DeliveryId = Annotated[int, Path(ge=1, le=MAX_ID)]
Token = Annotated[str, Path(min_length=1, description="the capability token from the tracking link")]


class ClearIn(_In):
    code: str = Field(pattern=rf"^[0-9]{{{CODE_DIGITS}}}$", description=f"the {CODE_DIGITS}-digit one-time code "
                      "the recipient was given")


def attended(svc) -> AttendedService:
    """The service's attended part (built on first use when the composition root does not build it)."""
    a = getattr(svc, "attended", None)
    if a is None:
        a = AttendedService(svc)
        svc.attended = a
    return a


def _delivery_for_token(svc, token: str) -> int:
    from groundctl.faces.api.routes.tracking import handoff  # the tracking link belongs to the handoff service

    return handoff(svc).delivery_for_token(token)


async def _link_writes(request: Request, token: Token) -> None:
    from groundctl.faces.api.routes.tracking import link_writes  # the same budget as the link's other writes

    await link_writes(request, token)


@router.post("/track/{token}/presence", dependencies=[Depends(_link_writes)],
             summary="Attended drop: the recipient will be at the zone (once; needed before dispatch)")
async def presence_by_link(token: Token, svc: ServiceDep) -> dict:
    delivery_id = await run_in_threadpool(_delivery_for_token, svc, token)
    return await run_in_threadpool(lambda: attended(svc).confirm_presence(None, delivery_id, by="recipient",
                                                                          via="page"))


@router.post("/deliveries/{delivery_id}/presence",
             summary="Attended drop: the recipient will be at the zone (the recipient, or an operator they told)")
async def presence(delivery_id: DeliveryId, who: CallerDep, svc: ServiceDep) -> dict:
    by = "operator" if who.operator else "recipient"
    return await run_in_threadpool(lambda: attended(svc).confirm_presence(who.recipient_id, delivery_id, by=by,
                                                                          via="api"))


@router.get("/track/{token}/hold", summary="Attended drop as the tracking page shows it: presence, and while the "
            "drone holds, the time left (vehicle seconds)")
async def hold_by_link(token: Token, svc: ServiceDep) -> dict:
    delivery_id = await run_in_threadpool(_delivery_for_token, svc, token)
    return await attended(svc).hold(delivery_id)


@router.post("/track/{token}/clear-to-drop", summary="The recipient is at the zone: release the parcel now "
             "(only while the drone holds above it, see awaiting_clearance)")
async def clear_by_link(token: Token, svc: ServiceDep) -> dict:
    delivery_id = await run_in_threadpool(_delivery_for_token, svc, token)
    r = await attended(svc).clear(delivery_id, by="recipient")
    # the tracking page sees the recipient's view, not the operator's
    return {k: r[k] for k in ("id", "state", "delivered", "clearance") if k in r}


@router.post("/deliveries/{delivery_id}/clear-code", status_code=201,
             summary="A new one-time code that clears an attended drop (shown once; an earlier code stops working)")
async def clear_code(delivery_id: DeliveryId, who: CallerDep, svc: ServiceDep) -> dict:
    return await run_in_threadpool(attended(svc).issue_code, who.recipient_id, delivery_id)


@router.post("/deliveries/{delivery_id}/clear-to-drop",
             summary="Clear an attended drop with the recipient's one-time code (recipient or operator)")
async def clear_by_code(delivery_id: DeliveryId, body: ClearIn, who: CallerDep, svc: ServiceDep) -> dict:
    by = "operator" if who.operator else "recipient"
    return await attended(svc).clear(delivery_id, by=by, recipient_id=who.recipient_id, code=body.code)
