from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body
from starlette.concurrency import run_in_threadpool

from groundctl.faces.api.deps import Operator, ServiceDep

router = APIRouter(prefix="/api/v1", tags=["airspace"])


@router.get("/airspace", summary="The airspace in force (GeoJSON); public, so recipients can see the service area")
async def get_airspace(svc: ServiceDep) -> dict:
    version, airspace = await run_in_threadpool(svc.airspace.current)
    return {**airspace.to_geojson(), "version": version}


@router.put("/airspace", summary="Replace the airspace (validated by core.airspace.parse_airspace)")
async def put_airspace(_: Operator, svc: ServiceDep, body: dict[str, Any] = Body(...)) -> dict:
    body = {k: v for k, v in body.items() if k != "version"}  # a GET result can be PUT back as it is
    return await run_in_threadpool(svc.airspace.replace, body)


@router.get("/weather", summary="The weather the go/no-go verdict uses", tags=["operators"])
async def get_weather(_: Operator, svc: ServiceDep) -> dict:
    w = await run_in_threadpool(svc.airspace.weather)
    return {"weather": w.to_dict() if w is not None else None}


@router.put("/weather", summary="Set the weather (core.weather's JSON form: valid_time, wind[], gust_mps ...)",
            tags=["operators"])
async def put_weather(_: Operator, svc: ServiceDep, body: dict[str, Any] = Body(...)) -> dict:
    return {"weather": await run_in_threadpool(svc.airspace.set_weather, body)}
