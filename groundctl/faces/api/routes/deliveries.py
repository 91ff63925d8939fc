from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Body, Path, Query
from starlette.concurrency import run_in_threadpool

from groundctl.faces.api.deps import MAX_ID, CallerDep, Operator, PageDep, ServiceDep
from groundctl.faces.api.schemas import AbortIn, DeliveryIn, DispatchIn

router = APIRouter(prefix="/api/v1", tags=["deliveries"])
DeliveryId = Annotated[int, Path(ge=1, le=MAX_ID)]
State = Literal["planned", "refused", "dispatched", "taking_off", "en_route", "at_zone", "lowering", "released",
                "returning", "landed", "aborted", "failed"]


@router.post("/deliveries", status_code=201,
             summary="Plan a delivery: 'planned' with the plan summary, or 'refused' with every failed check")
async def create_delivery(body: DeliveryIn, _: Operator, svc: ServiceDep) -> dict:
    return await run_in_threadpool(svc.deliveries.create, body.zone_id, body.parcel.model_dump(), body.hub, body.method)


@router.get("/deliveries", summary="Deliveries (a recipient sees only their own), newest first")
async def list_deliveries(who: CallerDep, svc: ServiceDep, page: PageDep,
                          state: Annotated[State | None, Query()] = None,
                          vehicle: Annotated[str | None, Query(max_length=100)] = None) -> dict:
    return await run_in_threadpool(svc.deliveries.list, who.recipient_id, state, page.limit, page.offset, vehicle)


@router.get("/deliveries/{delivery_id}", summary="State, ETA and proof of delivery")
async def get_delivery(delivery_id: DeliveryId, who: CallerDep, svc: ServiceDep) -> dict:
    return await run_in_threadpool(svc.deliveries.get, who.recipient_id, delivery_id)


@router.post("/deliveries/{delivery_id}/dispatch", summary="Fly a planned delivery on a vehicle")
async def dispatch(delivery_id: DeliveryId, _: Operator, svc: ServiceDep,
                   body: Annotated[DispatchIn | None, Body()] = None) -> dict:
    return await svc.flights.dispatch(delivery_id, body.vehicle if body else None, bool(body and body.force))


@router.post("/deliveries/{delivery_id}/abort", summary="Abort: return to launch or land now; cancels a planned one")
async def abort(delivery_id: DeliveryId, _: Operator, svc: ServiceDep,
                body: Annotated[AbortIn | None, Body()] = None) -> dict:
    return await svc.flights.abort(delivery_id, body.action if body else "rtl")
