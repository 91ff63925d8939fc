"""Hubs, airframes and vehicles; the core.fleet models are the schema.

No `from __future__ import annotations` here: the body type of each generated route is a local variable,
which FastAPI can only see as a real annotation, not as a string.
"""


from typing import Annotated, Any

from fastapi import APIRouter, Path, Response
from starlette.concurrency import run_in_threadpool

from groundctl.core.fleet import Airframe, Hub, Vehicle
from groundctl.errors import InputError
from groundctl.faces.api.deps import Operator, ServiceDep

router = APIRouter(prefix="/api/v1", tags=["fleet"])
Name = Annotated[str, Path(min_length=1, max_length=100)]


def _routes(kind: str, plural: str, model: type) -> None:
    async def list_items(_: Operator, svc: ServiceDep) -> dict:
        items = await run_in_threadpool(svc.fleet.items, kind)
        return {"items": items, "total": len(items)}

    async def get_item(name: Name, _: Operator, svc: ServiceDep) -> dict:
        return await run_in_threadpool(svc.fleet.item, kind, name)

    async def put_item(name: Name, body: model, _: Operator, svc: ServiceDep, response: Response) -> Any:  # type: ignore[valid-type]
        if body.name != name:
            raise InputError(f"body name {body.name!r} differs from the path's {name!r}", field="name")
        item, created = await run_in_threadpool(svc.fleet.put, kind, name, body.model_dump(mode="json"))
        response.status_code = 201 if created else 200
        return item

    async def delete_item(name: Name, _: Operator, svc: ServiceDep) -> Response:
        await run_in_threadpool(svc.fleet.delete, kind, name)
        return Response(status_code=204)

    router.add_api_route(f"/{plural}", list_items, methods=["GET"], name=f"list_{plural}", summary=f"List {plural}")
    router.add_api_route(f"/{plural}/{{name}}", get_item, methods=["GET"], name=f"get_{kind}")
    router.add_api_route(f"/{plural}/{{name}}", put_item, methods=["PUT"], name=f"put_{kind}",
                         summary=f"Create or replace a {kind}", responses={201: {"description": "created"}})
    router.add_api_route(f"/{plural}/{{name}}", delete_item, methods=["DELETE"], name=f"delete_{kind}",
                         status_code=204)


_routes("hub", "hubs", Hub)
_routes("airframe", "airframes", Airframe)
_routes("vehicle", "vehicles", Vehicle)
