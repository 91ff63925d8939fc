"""One error hierarchy for the whole package.

Every error that reaches a user names *where* (a dotted field path) and *why*, so the CLI can print
it and the API can turn it into problem-details JSON without knowing which layer raised it.
"""

from __future__ import annotations

from dataclasses import dataclass, field


class GroundctlError(Exception):
    """Root of every error groundctl raises on purpose."""

    status = 400  # HTTP status the API maps this kind to
    title = "groundctl error"

    def __init__(self, message: str, *, field: str | None = None) -> None:
        self.field = field
        self.reason = message
        super().__init__(f"{field}: {message}" if field else message)

    def to_dict(self) -> dict:
        return {"field": self.field, "reason": self.reason}


class InputError(GroundctlError):
    """Bad input: a file, a request body or a command-line value."""

    status = 422
    title = "invalid input"


class ValidationErrors(InputError):
    """Several input problems found at once; all are reported, not just the first."""

    def __init__(self, errors: list[InputError]) -> None:
        self.errors = errors
        super().__init__("; ".join(str(e) for e in errors))

    def to_dict(self) -> dict:
        return {"errors": [e.to_dict() for e in self.errors]}


class NoRouteError(GroundctlError):
    """No path exists between two points inside the free airspace."""

    status = 422
    title = "no route"


class NotFound(GroundctlError):
    status = 404
    title = "not found"


class Conflict(GroundctlError):
    status = 409
    title = "conflict"


@dataclass
class CheckFailure:
    name: str
    message: str


class PlanRefused(GroundctlError):
    """A plan failed one or more preflight checks; carries every failure."""

    status = 422
    title = "plan refused"

    def __init__(self, failures: list[CheckFailure]) -> None:
        self.failures = failures
        super().__init__("; ".join(f"{f.name}: {f.message}" for f in failures))

    def to_dict(self) -> dict:
        return {"failures": [{"check": f.name, "message": f.message} for f in self.failures]}


class LinkError(GroundctlError):
    """The vehicle link failed: timeout, no ack, lost heartbeat."""

    status = 502
    title = "vehicle link error"


class TransferError(LinkError):
    """A mission/fence/rally transfer failed or its read-back did not match."""

    title = "transfer failed"


class CommandError(LinkError):
    """A command was refused (COMMAND_ACK not ACCEPTED) or never acknowledged."""

    title = "command failed"


@dataclass
class Problem:
    """Helper for collecting several InputErrors before raising them together."""

    errors: list[InputError] = field(default_factory=list)

    def add(self, field_: str, message: str) -> None:
        self.errors.append(InputError(message, field=field_))

    def raise_if_any(self) -> None:
        if len(self.errors) == 1:
            raise self.errors[0]
        if self.errors:
            raise ValidationErrors(self.errors)
