"""Recipients' landing zones. Another recipient's zone answers 404, exactly like a missing one."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Response
from starlette.concurrency import run_in_threadpool

from groundctl.faces.api.deps import MAX_ID, Operator, PageDep, RecipientDep, ServiceDep
from groundctl.faces.api.schemas import ZoneIn

router = APIRouter(prefix="/api/v1", tags=["zones"])
ZoneId = Annotated[int, Path(ge=1, le=MAX_ID)]


@router.post("/zones", status_code=201, summary="Register a landing zone (validated; refused writes store nothing)")
async def create_zone(body: ZoneIn, r: RecipientDep, svc: ServiceDep, response: Response) -> dict:
    z = await run_in_threadpool(svc.zones.create, r["id"], body.model_dump())
    response.headers["Location"] = f"/api/v1/zones/{z['id']}"
    return z


@router.get("/zones", summary="The caller's landing zones")
async def list_zones(r: RecipientDep, svc: ServiceDep, page: PageDep) -> dict:
    return await run_in_threadpool(svc.zones.list, r["id"], page.limit, page.offset)


@router.get("/zones/{zone_id}")
async def get_zone(zone_id: ZoneId, r: RecipientDep, svc: ServiceDep) -> dict:
    return await run_in_threadpool(svc.zones.get, r["id"], zone_id)


@router.put("/zones/{zone_id}", summary="Replace a zone (validated again; also reconfirms it)")
async def put_zone(zone_id: ZoneId, body: ZoneIn, r: RecipientDep, svc: ServiceDep) -> dict:
    return await run_in_threadpool(svc.zones.update, r["id"], zone_id, body.model_dump())


@router.post("/zones/{zone_id}/confirm", summary="Reconfirm a zone (re-validated against today's airspace)")
async def confirm_zone(zone_id: ZoneId, r: RecipientDep, svc: ServiceDep) -> dict:
    return await run_in_threadpool(svc.zones.confirm, r["id"], zone_id)


@router.delete("/zones/{zone_id}", status_code=204)
async def delete_zone(zone_id: ZoneId, r: RecipientDep, svc: ServiceDep) -> Response:
    await run_in_threadpool(svc.zones.delete, r["id"], zone_id)
    return Response(status_code=204)


@router.get("/operator/zones", tags=["operators"], summary="Every recipient's zones")
async def all_zones(_: Operator, svc: ServiceDep, page: PageDep) -> dict:
    return await run_in_threadpool(svc.zones.list, None, page.limit, page.offset)
