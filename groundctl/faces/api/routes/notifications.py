"""Notifications: recipients' webhook endpoints and preferences, operators' integrations and the outbox."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from groundctl.errors import Conflict, NotFound
from groundctl.faces.api.deps import MAX_ID, Operator, PageDep, RecipientDep, ServiceDep
from groundctl.runtime.notify import manage, outbox
from groundctl.runtime.notify.messages import KINDS
from groundctl.runtime.notify.sender import sender_lifespan, settings_of
from groundctl.runtime.notify.settings import NotifySettings
from groundctl.runtime.store import utcnow

# the background sender lives as long as the app (FastAPI merges a router's lifespan into the app's)
router = APIRouter(prefix="/api/v1", tags=["notifications"], lifespan=sender_lifespan)
EndpointId = Annotated[int, Path(ge=1, le=MAX_ID)]
MessageId = Annotated[int, Path(ge=1, le=MAX_ID)]
Kind = Literal[KINDS]  # type: ignore[valid-type]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class EndpointIn(_In):
    url: str = Field(min_length=1, max_length=2000, description="http(s) URL receiving signed POSTs")
    kinds: list[Kind] | None = Field(default=None, max_length=len(KINDS), description="default: every kind")
    description: str | None = Field(default=None, max_length=200)


class PrefsIn(_In):
    kinds: list[Kind] | None = Field(default=None, max_length=len(KINDS),
                                     description="kinds wanted on any channel; default: every kind")
    email_enabled: bool = False
    email: str | None = Field(default=None, max_length=254, pattern=r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]+$")


def notify_settings(request: Request) -> NotifySettings:
    return settings_of(request.app.state.settings)


def _now(svc) -> object:
    return svc.settings.clock() if hasattr(svc, "settings") else utcnow()


SECRET_NOTE = ("keep the secret: it is shown only now (POST .../rotate-secret makes a new one). Verify each webhook "
               "as Standard Webhooks describes: webhook-signature = v1,base64(HMAC-SHA256(key, "
               "'{webhook-id}.{webhook-timestamp}.{body}')), key = base64-decoded secret after 'whsec_'")


# -- recipients ----------------------------------------------------------------------------------------

@router.get("/recipients/me/notifications", summary="The caller's notification preferences")
async def get_prefs(r: RecipientDep, svc: ServiceDep) -> dict:
    return await run_in_threadpool(manage.get_prefs, svc.store, r["id"])


@router.put("/recipients/me/notifications", summary="Choose kinds, and email on or off")
async def put_prefs(body: PrefsIn, r: RecipientDep, svc: ServiceDep) -> dict:
    return await run_in_threadpool(manage.put_prefs, svc.store, r["id"], body.kinds, body.email_enabled, body.email,
                                   _now(svc))


@router.get("/recipients/me/webhooks", summary="The caller's webhook endpoints (secrets are never listed)")
async def list_webhooks(r: RecipientDep, svc: ServiceDep) -> dict:
    return await run_in_threadpool(manage.list_endpoints, svc.store, r["id"])


@router.post("/recipients/me/webhooks", status_code=201, summary="Add a webhook endpoint; its secret is shown once")
async def create_webhook(body: EndpointIn, r: RecipientDep, svc: ServiceDep, request: Request,
                         response: Response) -> dict:
    ep = await run_in_threadpool(manage.create_endpoint, svc.store, r["id"], body.url, body.kinds, body.description,
                                 allow_private=notify_settings(request).allow_private_urls, now=_now(svc))
    response.headers["Location"] = f"/api/v1/recipients/me/webhooks/{ep['id']}"
    return {**ep, "note": SECRET_NOTE}


@router.get("/recipients/me/webhooks/{endpoint_id}")
async def get_webhook(endpoint_id: EndpointId, r: RecipientDep, svc: ServiceDep) -> dict:
    return await run_in_threadpool(manage.get_endpoint, svc.store, r["id"], endpoint_id)


@router.post("/recipients/me/webhooks/{endpoint_id}/rotate-secret", summary="A new secret (shown once)")
async def rotate_webhook(endpoint_id: EndpointId, r: RecipientDep, svc: ServiceDep) -> dict:
    return await run_in_threadpool(manage.rotate_secret, svc.store, r["id"], endpoint_id)


@router.delete("/recipients/me/webhooks/{endpoint_id}", status_code=204)
async def delete_webhook(endpoint_id: EndpointId, r: RecipientDep, svc: ServiceDep) -> Response:
    await run_in_threadpool(manage.delete_endpoint, svc.store, r["id"], endpoint_id)
    return Response(status_code=204)


@router.get("/recipients/me/notifications/messages", summary="What was sent to the caller, and how it went")
async def my_messages(r: RecipientDep, svc: ServiceDep, page: PageDep,
                      state: Literal["pending", "sent", "dead"] | None = None) -> dict:
    return await run_in_threadpool(lambda: outbox.list_messages(svc.store, state=state, recipient_id=r["id"],
                                                                limit=page.limit, offset=page.offset))


# -- operators: integrations and the outbox ---------------------------------------------------------------

@router.get("/integrations", tags=["operators"], summary="Operator integrations: hear about every delivery")
async def list_integrations(_: Operator, svc: ServiceDep) -> dict:
    return await run_in_threadpool(manage.list_endpoints, svc.store, None)


@router.post("/integrations", status_code=201, tags=["operators"],
             summary="Add an integration endpoint (a merchant's order system); its secret is shown once")
async def create_integration(body: EndpointIn, _: Operator, svc: ServiceDep, response: Response) -> dict:
    ep = await run_in_threadpool(manage.create_endpoint, svc.store, None, body.url, body.kinds, body.description,
                                 allow_private=True, now=_now(svc))
    response.headers["Location"] = f"/api/v1/integrations/{ep['id']}"
    return {**ep, "note": SECRET_NOTE}


@router.get("/integrations/{endpoint_id}", tags=["operators"])
async def get_integration(endpoint_id: EndpointId, _: Operator, svc: ServiceDep) -> dict:
    return await run_in_threadpool(manage.get_endpoint, svc.store, None, endpoint_id)


@router.post("/integrations/{endpoint_id}/rotate-secret", tags=["operators"], summary="A new secret (shown once)")
async def rotate_integration(endpoint_id: EndpointId, _: Operator, svc: ServiceDep) -> dict:
    return await run_in_threadpool(manage.rotate_secret, svc.store, None, endpoint_id)


@router.delete("/integrations/{endpoint_id}", status_code=204, tags=["operators"])
async def delete_integration(endpoint_id: EndpointId, _: Operator, svc: ServiceDep) -> Response:
    await run_in_threadpool(manage.delete_endpoint, svc.store, None, endpoint_id)
    return Response(status_code=204)


@router.get("/outbox", tags=["operators"], summary="Notifications: pending, sent, or dead-lettered (state=dead)")
async def list_outbox(_: Operator, svc: ServiceDep, page: PageDep,
                      state: Literal["pending", "sent", "dead"] | None = None,
                      endpoint_id: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
                      delivery_id: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None) -> dict:
    return await run_in_threadpool(lambda: outbox.list_messages(svc.store, state=state, endpoint_id=endpoint_id,
                                                                delivery_id=delivery_id, limit=page.limit,
                                                                offset=page.offset))


@router.get("/outbox/stats", tags=["operators"], summary="Messages and attempts per state")
async def outbox_stats(_: Operator, svc: ServiceDep) -> dict:
    return await run_in_threadpool(outbox.counts, svc.store)


@router.post("/outbox/{message_id}/retry", tags=["operators"], summary="Send a dead-lettered message again")
async def retry_message(message_id: MessageId, _: Operator, svc: ServiceDep) -> dict:
    n = await run_in_threadpool(lambda: outbox.retry(svc.store, _now(svc), message_id=message_id))
    if n == 0:
        state = await run_in_threadpool(outbox.state_of, svc.store, message_id)
        if state is None:
            raise NotFound(f"outbox message {message_id} not found", field="message_id")
        raise Conflict(f"outbox message {message_id} is {state}; only a dead message is retried", field="message_id")
    return {"retried": n}


@router.post("/outbox/retry", tags=["operators"], summary="Send every dead-lettered message (of an endpoint) again")
async def retry_dead(_: Operator, svc: ServiceDep,
                     endpoint_id: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None) -> dict:
    return {"retried": await run_in_threadpool(lambda: outbox.retry(svc.store, _now(svc), endpoint_id=endpoint_id))}
