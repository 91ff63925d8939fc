"""Recipients: registration and the bearer tokens they act with (only the tokens' hashes are stored)."""

from __future__ import annotations

import secrets

from sqlalchemy import select

from groundctl.runtime.services.settings import Settings
from groundctl.runtime.store import Recipient, Store, token_hash


def recipient_view(r: Recipient) -> dict:
    return {"id": r.id, "name": r.name, "contact": r.contact, "created_at": r.created_at.isoformat()}


class RecipientService:
    def __init__(self, settings: Settings, store: Store) -> None:
        self.settings = settings
        self.store = store
        self.now = settings.clock

    def register(self, name: str, contact: str | None) -> tuple[dict, str]:
        token = "gct_" + secrets.token_urlsafe(32)
        with self.store.session() as s:
            r = Recipient(name=name, contact=contact, token_hash=token_hash(token), created_at=self.now())
            s.add(r)
            s.flush()
            view = recipient_view(r)
        return view, token

    def for_token(self, token: str) -> dict | None:
        with self.store.session() as s:
            r = s.scalar(select(Recipient).where(Recipient.token_hash == token_hash(token)))
            return None if r is None else recipient_view(r)
