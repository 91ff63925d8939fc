"""Recipients: registration and the bearer tokens they act with (only the tokens' hashes are stored)."""

from __future__ import annotations

import secrets

from sqlalchemy import select, update

from groundctl.errors import Conflict, NotFound
from groundctl.runtime.erasure import erase_recipient, unusable_token_hash
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

    # -- token rotation, revocation, erasure (see runtime/erasure.py) -----------------------------------
    def rotate_token(self, recipient_id: int, current: str) -> str:
        """A new token for the one presented; the old stops working in the same commit. Compare-and-swap
        on the presented token's hash, so two rotations racing with one token leave exactly one winner."""
        token = "gct_" + secrets.token_urlsafe(32)
        with self.store.session() as s:
            done = s.execute(update(Recipient).where(Recipient.id == recipient_id,
                                                     Recipient.token_hash == token_hash(current))
                             .values(token_hash=token_hash(token))).rowcount
        if done != 1:
            raise Conflict("this token was rotated or revoked meanwhile; it no longer works", field="token")
        return token

    def revoke_token(self, recipient_id: int) -> None:
        with self.store.session() as s:
            done = s.execute(update(Recipient).where(Recipient.id == recipient_id)
                             .values(token_hash=unusable_token_hash())).rowcount
        if done != 1:
            raise NotFound(f"recipient {recipient_id} not found", field="recipient_id")

    def erase(self, recipient_id: int, requested_by: str) -> dict:
        with self.store.session() as s:
            return erase_recipient(self.store, s, recipient_id, self.now(), requested_by)
