"""Every module that declares tables on groundctl.runtime.store.Base, imported so that the metadata the
store migrates and checks against (Alembic, create_all) holds them all. One import line per module."""

from groundctl.runtime import store  # noqa: F401  (the original tables)
from groundctl.runtime import handoff_tables  # noqa: F401  (tracking links, confirmations and disputes)
from groundctl.runtime.notify import tables as notify_tables  # noqa: F401  (webhook endpoints, preferences, outbox)
from groundctl.runtime import erasure  # noqa: F401  (recipient_erasures: who was erased, when, on whose request)
from groundctl.runtime import attended  # noqa: F401  (attended_clear_codes: one-time codes that clear an attended drop)
from groundctl.runtime import intents  # noqa: F401  (operational_intents: the sky each dispatched flight reserves)
from groundctl.runtime import leases  # noqa: F401  (flight_leases, flight_commands: which worker flies which delivery)
from groundctl.runtime import restrictions  # noqa: F401  (restrictions: temporary no-fly zones with a time window)
