"""Kept for imports written before the services were split by resource: see groundctl.runtime.services."""

from groundctl.runtime.services import Service, Settings  # noqa: F401
from groundctl.runtime.verdicts import time_to_drop_s, verdict_for  # noqa: F401
