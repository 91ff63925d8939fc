"""The recipient's answers through the API (their bearer token), and the operators' disputes and
unconfirmed deliveries. The tracking page does the same through its capability link (routes/tracking.py)."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query
from pydantic import Field
from starlette.concurrency import run_in_threadpool

from groundctl.faces.api.deps import MAX_ID, Operator, PageDep, RecipientDep, ServiceDep
from groundctl.faces.api.routes.tracking import ChangeIn, ConfirmIn, change_args, handoff
from groundctl.faces.api.schemas import _In

router = APIRouter(prefix="/api/v1")
DeliveryId = Annotated[int, Path(ge=1, le=MAX_ID)]


class ResolveIn(_In):
    resolution: Literal["redelivered", "refunded", "rejected", "other"]
    note: str = Field(default="", max_length=2000)


@router.patch("/deliveries/{delivery_id}", tags=["deliveries"],
              summary="The recipient, before dispatch: other drop instructions or another of their zones "
                      "(planned and checked again); 409 with the reason after dispatch")
async def change(delivery_id: DeliveryId, body: ChangeIn, r: RecipientDep, svc: ServiceDep) -> dict:
    h = handoff(svc)
    return await run_in_threadpool(lambda: h.change(delivery_id, r["id"], via="api", **change_args(body)))


@router.post("/deliveries/{delivery_id}/confirmation", status_code=201, tags=["deliveries"],
             summary="The recipient, after the drop: confirm receipt or report a problem (once)")
async def confirm(delivery_id: DeliveryId, body: ConfirmIn, r: RecipientDep, svc: ServiceDep) -> dict:
    return await run_in_threadpool(handoff(svc).confirm, delivery_id, r["id"], body.status, body.message, "api")


@router.get("/disputes", tags=["operators"], summary="Problems recipients reported, oldest first (open by default)")
async def disputes(_: Operator, svc: ServiceDep, page: PageDep,
                   status: Annotated[Literal["open", "resolved", "all"], Query()] = "open") -> dict:
    return await run_in_threadpool(handoff(svc).disputes, status, page.limit, page.offset)


@router.post("/disputes/{delivery_id}/resolve", tags=["operators"], summary="Close a dispute with what was done")
async def resolve(delivery_id: DeliveryId, body: ResolveIn, _: Operator, svc: ServiceDep) -> dict:
    return await run_in_threadpool(handoff(svc).resolve, delivery_id, body.resolution, body.note)


@router.get("/unconfirmed", tags=["operators"],
            summary="Delivered parcels the recipient has neither confirmed nor disputed within the configured time")
async def unconfirmed(_: Operator, svc: ServiceDep, page: PageDep) -> dict:
    return await run_in_threadpool(handoff(svc).unconfirmed, page.limit, page.offset)
