"""create_app(settings) -> FastAPI: the ground-station service over HTTP."""

from __future__ import annotations

import logging
import secrets
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import Depends, FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

from groundctl.faces.api import limits, problems
from groundctl.faces.api.headers import SecurityHeaders, install_docs
from groundctl.faces.api.secrecy import RefuseKeyInUrl, install_log_redaction
from groundctl.faces.api.routes import (airspace, attended, deliveries, fleet, handoff, live, notifications, recipients,
                                        restrictions, tracking, zones)
from groundctl.runtime.services import Service, Settings

log = logging.getLogger("groundctl.api")
STATIC = Path(__file__).resolve().parent.parent / "static"

PROBLEM = {"description": "problem details", "content": {"application/problem+json": {"schema": {
    "type": "object", "required": ["type", "title", "status", "detail", "errors"],
    "properties": {"type": {"type": "string"}, "title": {"type": "string"}, "status": {"type": "integer"},
                   "detail": {"type": "string"},
                   "errors": {"type": "array", "items": {"type": "object", "properties": {
                       "field": {"type": ["string", "null"]}, "reason": {"type": "string"}}}}}}}}}
ERRORS = {code: PROBLEM for code in (400, 401, 404, 409, 413, 422, 429, 500, 502)}


class GroundctlAPI(FastAPI):
    def build_middleware_stack(self):
        # outside Starlette's ServerErrorMiddleware, which add_middleware cannot reach: a 500 gets the
        # security headers too, and so do the refusals of the middlewares below
        return SecurityHeaders(super().build_middleware_stack())


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings.from_env()
    keys = tuple(settings.operator_keys)
    if not keys:
        # an unknowable key: operator endpoints stay locked rather than open, and nothing secret is logged
        keys = ("dev-" + secrets.token_urlsafe(16),)
        log.warning("no operator key configured (GROUNDCTL_OPERATOR_KEYS): operator endpoints refuse every key "
                    "for this run")
    install_log_redaction(keys)
    lim = limits.Limits(settings)  # a bad rate or proxy setting fails here, naming it, before anything starts
    service = Service(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        install_log_redaction(keys)  # again: uvicorn may have (re)configured its loggers since create_app
        service.live.start()
        if settings.resume_flights:
            resumed = await service.flights.resume_all()
            if resumed:
                log.info("resumed monitoring of deliveries %s", resumed)
        try:
            yield
        finally:
            await service.stop()
            service.store.close()

    # docs_url/redoc_url None: FastAPI's own pages load Swagger UI and ReDoc from a CDN; install_docs
    # serves Swagger UI from the vendored package instead
    app = GroundctlAPI(title="groundctl", version="0.1.0", lifespan=lifespan, responses=ERRORS,
                       docs_url=None, redoc_url=None, dependencies=[Depends(limits.recipient_writes)],
                       description="Drone parcel delivery ground station: recipients register landing zones, "
                                   "operators plan, dispatch and watch deliveries.")
    app.state.service = service
    app.state.settings = settings
    app.state.operator_keys = keys
    app.state.limits = lim
    app.state.allowed_origins = frozenset(o.strip().lower().rstrip("/")
                                          for o in settings.allowed_origins if o.strip())
    problems.install(app)
    app.add_middleware(problems.BodyLimit, max_bytes=settings.max_body_bytes)
    app.add_middleware(RefuseKeyInUrl)
    install_docs(app)
    for r in (recipients, zones, fleet, airspace, restrictions, deliveries, live, notifications, attended, tracking,
              handoff):
        app.include_router(r.router)

    @app.get("/healthz", tags=["meta"], summary="Liveness: does nothing else")
    async def healthz() -> dict:
        return {"ok": True}

    @app.get("/", include_in_schema=False)
    async def index() -> FileResponse:
        return FileResponse(STATIC / "index.html", media_type="text/html")

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app
