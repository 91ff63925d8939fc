"""Who is calling: operators by API key (configured), recipients by bearer token (registered)."""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, HTTPException, Query, Request
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from starlette.requests import HTTPConnection
from starlette.concurrency import run_in_threadpool

from groundctl.runtime.services import Service

api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="operator API key")
bearer = HTTPBearer(auto_error=False, description="recipient token from POST /api/v1/recipients")

MAX_ID = 2**62  # keeps ids inside a signed 64-bit column on every backend


def service(request: Request) -> Service:
    return request.app.state.service


def key_ok(request: HTTPConnection, key: str | None) -> bool:
    if not key:
        return False
    # compare against every key in constant time so timing does not reveal a near miss
    return any(hmac.compare_digest(key.encode(), k.encode()) for k in request.app.state.operator_keys)


def _unauthorized(what: str) -> HTTPException:
    return HTTPException(401, detail=f"missing or invalid {what}", headers={"WWW-Authenticate": "Bearer"})


async def check_key(conn: HTTPConnection, key: str | None) -> bool:
    """key_ok, counting wrong keys per client address (limits.Limits.credentials_*: 429 once over)."""
    limits = conn.app.state.limits
    if key:
        await limits.credentials_allowed(conn)
    ok = key_ok(conn, key)
    if key and not ok:
        await limits.credentials_failed(conn)
    return ok


async def operator(request: Request, key: Annotated[str | None, Depends(api_key_header)]) -> bool:
    if not await check_key(request, key):
        raise _unauthorized("operator API key (X-API-Key)")
    return True


async def recipient(request: Request, cred: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]) -> dict:
    if cred is None or not cred.credentials:
        raise _unauthorized("recipient token (Authorization: Bearer ...)")
    limits = request.app.state.limits
    await limits.credentials_allowed(request)
    r = None
    if len(cred.credentials) <= 200:
        r = await run_in_threadpool(service(request).recipients.for_token, cred.credentials)
    if r is None:
        await limits.credentials_failed(request)
        raise _unauthorized("recipient token (Authorization: Bearer ...)")
    return r


@dataclass
class Caller:
    operator: bool
    recipient_id: int | None  # None for an operator: sees every recipient's records


async def caller(request: Request, key: Annotated[str | None, Depends(api_key_header)],
                 cred: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]) -> Caller:
    if key is not None:
        if not await check_key(request, key):
            raise _unauthorized("operator API key (X-API-Key)")
        return Caller(True, None)
    r = await recipient(request, cred)
    return Caller(False, r["id"])


class Page:
    def __init__(self, limit: Annotated[int, Query(ge=1, le=500, description="page size")] = 50,
                 offset: Annotated[int, Query(ge=0, le=MAX_ID, description="items to skip")] = 0) -> None:
        self.limit = limit
        self.offset = offset


Operator = Annotated[bool, Depends(operator)]
RecipientDep = Annotated[dict, Depends(recipient)]
CallerDep = Annotated[Caller, Depends(caller)]
ServiceDep = Annotated[Service, Depends(service)]
PageDep = Annotated[Page, Depends()]
