"""Recipients: registration, their token (rotate, revoke) and erasure; operators' side of the same.

Operator keys rotate by configuration: GROUNDCTL_OPERATOR_KEYS holds several keys at once (comma-separated),
every one of them valid; add the new key, move the clients over, then remove the old one (see README).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Response
from fastapi.security import HTTPAuthorizationCredentials
from starlette.concurrency import run_in_threadpool

from groundctl.faces.api import limits
from groundctl.faces.api.deps import MAX_ID, Operator, RecipientDep, ServiceDep, bearer
from groundctl.faces.api.schemas import RecipientIn

router = APIRouter(prefix="/api/v1", tags=["recipients"])
RecipientId = Annotated[int, Path(ge=1, le=MAX_ID)]
BearerDep = Annotated[HTTPAuthorizationCredentials, Depends(bearer)]


@router.post("/recipients", status_code=201, dependencies=[Depends(limits.registrations)],
             summary="Register a recipient; the token is shown once (rate-limited per client address)")
async def register(body: RecipientIn, svc: ServiceDep) -> dict:
    view, token = await run_in_threadpool(svc.recipients.register, body.name, body.contact)
    return {"recipient": view, "token": token,
            "note": "keep this token: only its hash is stored, it cannot be shown again"}


@router.get("/me", summary="The calling recipient")
async def me(r: RecipientDep) -> dict:
    return r


# -- the recipient's own token and account -------------------------------------------------------------

@router.post("/recipients/me/token", summary="Rotate the calling token: a new one is returned once, the old one "
                                             "stops working at once")
async def rotate_token(r: RecipientDep, svc: ServiceDep, cred: BearerDep) -> dict:
    token = await run_in_threadpool(svc.recipients.rotate_token, r["id"], cred.credentials)
    return {"recipient": r, "token": token, "note": "keep this token: the old one no longer works, and this one "
                                                   "cannot be shown again"}


@router.delete("/recipients/me/token", status_code=204,
               summary="Revoke the calling token (sign out everywhere); nothing can act for this recipient "
                       "until an operator helps: rotate instead to keep access")
async def revoke_token(r: RecipientDep, svc: ServiceDep) -> Response:
    await run_in_threadpool(svc.recipients.revoke_token, r["id"])
    return Response(status_code=204)


@router.delete("/recipients/me", summary="Erase the calling recipient: name, contact, zones, webhooks and "
                                         "preferences go; delivery records stay, anonymised (409 while a "
                                         "delivery to them is in flight)")
async def erase_me(r: RecipientDep, svc: ServiceDep) -> dict:
    return await run_in_threadpool(svc.recipients.erase, r["id"], "recipient")


# -- operators ---------------------------------------------------------------------------------------------

@router.delete("/operator/recipients/{recipient_id}", tags=["operators"],
               summary="Erase a recipient (their request by another channel, or abuse); as DELETE /recipients/me")
async def erase_recipient(recipient_id: RecipientId, _: Operator, svc: ServiceDep) -> dict:
    return await run_in_threadpool(svc.recipients.erase, recipient_id, "operator")


@router.delete("/operator/recipients/{recipient_id}/token", status_code=204, tags=["operators"],
               summary="Revoke a recipient's token (reported leaked, or abuse)")
async def revoke_recipient_token(recipient_id: RecipientId, _: Operator, svc: ServiceDep) -> Response:
    await run_in_threadpool(svc.recipients.revoke_token, recipient_id)
    return Response(status_code=204)
