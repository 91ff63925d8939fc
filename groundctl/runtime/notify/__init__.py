"""Notifications: signed webhooks and email, announced through an outbox written with each event."""

from groundctl.runtime.notify.messages import KINDS  # noqa: F401
from groundctl.runtime.notify.settings import NotifySettings  # noqa: F401
