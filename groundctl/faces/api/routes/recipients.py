from __future__ import annotations

from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool

from groundctl.faces.api.deps import RecipientDep, ServiceDep
from groundctl.faces.api.schemas import RecipientIn

router = APIRouter(prefix="/api/v1", tags=["recipients"])


@router.post("/recipients", status_code=201, summary="Register a recipient; the token is shown once")
async def register(body: RecipientIn, svc: ServiceDep) -> dict:
    view, token = await run_in_threadpool(svc.register, body.name, body.contact)
    return {"recipient": view, "token": token,
            "note": "keep this token: only its hash is stored, it cannot be shown again"}


@router.get("/me", summary="The calling recipient")
async def me(r: RecipientDep) -> dict:
    return r
