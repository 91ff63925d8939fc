"""Every 4xx/5xx as problem-details JSON (RFC 9457): type, title, status, detail, errors[field, reason]."""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from groundctl.errors import GroundctlError, PlanRefused, ValidationErrors

log = logging.getLogger("groundctl.api")
MEDIA_TYPE = "application/problem+json"


def _slug(title: str) -> str:
    return "-".join(title.lower().replace("/", " ").split())


def problem(status: int, title: str | None = None, detail: str | None = None, errors: list[dict] | None = None,
            headers: dict[str, str] | None = None, **extra: Any) -> JSONResponse:
    title = title or HTTPStatus(status).phrase
    body = {"type": f"urn:groundctl:problem:{_slug(title)}", "title": title, "status": status,
            "detail": detail or title, "errors": errors or [], **extra}
    return JSONResponse(body, status_code=status, media_type=MEDIA_TYPE, headers=headers)


def _field(loc: tuple) -> str:
    parts = [str(p) for p in loc]
    if parts and parts[0] in ("body", "query", "path", "header"):
        where = parts[0]
        parts = parts[1:]
        if where != "body":
            return ".".join(parts) or where
    return ".".join(parts) or "body"


async def _groundctl(request: Request, e: GroundctlError) -> JSONResponse:
    if isinstance(e, ValidationErrors):
        errors = [{"field": x.field, "reason": x.reason} for x in e.errors]
        detail = f"{len(errors)} problems: " + "; ".join(str(x) for x in e.errors)
        return problem(e.status, e.title, detail, errors)
    if isinstance(e, PlanRefused):
        errors = [{"field": f"check.{f.name}", "reason": f.message} for f in e.failures]
        return problem(e.status, e.title, str(e), errors, failures=e.to_dict()["failures"])
    return problem(e.status, e.title, str(e), [{"field": e.field, "reason": e.reason}])


async def _validation(request: Request, e: RequestValidationError) -> JSONResponse:
    errors = []
    for err in e.errors():
        reason = str(err.get("msg", "invalid")).removeprefix("Value error, ")
        errors.append({"field": _field(tuple(err.get("loc", ()))), "reason": reason})
    detail = "; ".join(f"{x['field']}: {x['reason']}" for x in errors)
    return problem(422, "invalid input", detail, errors)


async def _http(request: Request, e: StarletteHTTPException) -> JSONResponse:
    detail = e.detail if isinstance(e.detail, str) else None
    if e.status_code == 404 and detail == "Not Found":
        detail = f"no resource at {request.url.path}"
    errors = [{"field": None, "reason": detail or HTTPStatus(e.status_code).phrase}]
    limit = getattr(e, "limit_name", None)
    if limit is not None:  # limits.RateLimited: name the limit, so a client knows which budget it spent
        return problem(429, "rate limit reached", detail, [{"field": limit, "reason": detail}],
                       headers=e.headers, limit={"name": limit, "rate": e.limit_text},
                       retry_after_s=e.retry_after_s)
    return problem(e.status_code, None, detail, errors, headers=getattr(e, "headers", None))


async def _unexpected(request: Request, e: Exception) -> JSONResponse:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return problem(500, "internal error", "the server failed to handle this request; it has been logged",
                   [{"field": None, "reason": type(e).__name__}])


def install(app: FastAPI) -> None:
    app.add_exception_handler(GroundctlError, _groundctl)
    app.add_exception_handler(RequestValidationError, _validation)
    app.add_exception_handler(StarletteHTTPException, _http)
    app.add_exception_handler(Exception, _unexpected)


class BodyLimit:
    """Refuse request bodies over a size limit before the app parses them (413, problem JSON)."""

    def __init__(self, app, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None:
            try:
                too_big = int(declared) > self.max_bytes
            except ValueError:
                return await problem(400, None, "Content-Length is not a number")(scope, receive, send)
            if too_big:
                return await self._refuse(scope, receive, send)
            return await self.app(scope, receive, send)
        # chunked upload: buffer up to the limit, then replay it to the app
        chunks, size = [], 0
        while True:
            msg = await receive()
            if msg["type"] == "http.disconnect":
                return
            body = msg.get("body", b"")
            size += len(body)
            if size > self.max_bytes:
                return await self._refuse(scope, receive, send)
            chunks.append(body)
            if not msg.get("more_body"):
                break
        replay = [{"type": "http.request", "body": b"".join(chunks), "more_body": False}]

        async def again():
            return replay.pop() if replay else await receive()

        return await self.app(scope, again, send)

    async def _refuse(self, scope, receive, send) -> None:
        resp = problem(413, "request body too large", f"the limit is {self.max_bytes} bytes",
                       [{"field": "body", "reason": f"larger than {self.max_bytes} bytes"}],
                       headers={"Connection": "close"})
        await resp(scope, receive, send)
