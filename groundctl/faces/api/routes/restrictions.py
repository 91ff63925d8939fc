"""Temporary restrictions (like NOTAMs): operators add and lift them; anyone may read them, as they may
read the airspace."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Path, Query, Response
from starlette.concurrency import run_in_threadpool

from groundctl.faces.api.deps import MAX_ID, Operator, ServiceDep

router = APIRouter(prefix="/api/v1", tags=["airspace"])
RestrictionId = Annotated[int, Path(ge=1, le=MAX_ID)]

EXAMPLE = {"type": "Feature", "geometry": {"type": "Point", "coordinates": [149.172, -35.364]},
           "properties": {"name": "fire at the depot", "radius_m": 250, "start": "2026-11-30T10:00:00Z",
                          "end": "2026-11-30T16:00:00Z", "floor_m": 0, "ceiling_m": 150, "altitude_ref": "agl",
                          "reason": "fire brigade operations"}}


@router.get("/restrictions", summary="Temporary restrictions in force or upcoming (GeoJSON); public")
async def list_restrictions(svc: ServiceDep, include_past: Annotated[bool, Query()] = False) -> dict:
    return await run_in_threadpool(svc.restrictions.list, include_past)


@router.get("/restrictions/{restriction_id}", summary="One restriction")
async def get_restriction(restriction_id: RestrictionId, svc: ServiceDep) -> dict:
    return await run_in_threadpool(svc.restrictions.get, restriction_id)


@router.post("/restrictions", status_code=201,
             summary="Add a temporary restriction (a GeoJSON Feature with start, end and an altitude band); "
                     "planned deliveries that cross it are re-planned or refused")
async def add_restriction(_: Operator, svc: ServiceDep, response: Response,
                          body: dict[str, Any] = Body(..., examples=[EXAMPLE])) -> dict:
    out = await run_in_threadpool(svc.restrictions.add, body)
    response.headers["Location"] = f"/api/v1/restrictions/{out['properties']['id']}"
    return out


@router.delete("/restrictions/{restriction_id}", summary="Lift a restriction before its end")
async def lift_restriction(restriction_id: RestrictionId, _: Operator, svc: ServiceDep) -> dict:
    return await run_in_threadpool(svc.restrictions.lift, restriction_id)
