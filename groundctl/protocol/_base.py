"""What every protocol machine shares: an outbox, an event queue and a terminal state."""

from __future__ import annotations

from typing import Any, Generic, TypeVar

from pymavlink.dialects.v20 import ardupilotmega as mavlink

from groundctl.errors import GroundctlError

T = TypeVar("T")


def enum_name(enum: str, value: int) -> str:
    """MAVLink enum entry name, or '<ENUM> <value>' for a value this dialect does not know."""
    entry = mavlink.enums.get(enum, {}).get(value)
    return entry.name if entry is not None else f"{enum} {value}"


def text_field(value: Any) -> str:
    """A MAVLink char[] field as str: pymavlink gives str when it decoded, bytes when a test built it."""
    if isinstance(value, (bytes, bytearray)):
        value = bytes(value).decode("ascii", "replace")
    nul = value.find("\x00")
    return value if nul < 0 else value[:nul]


def src(msg: Any) -> tuple[int, int]:
    return msg.get_srcSystem(), msg.get_srcComponent()


class Machine(Generic[T]):
    """Base of the request/response machines (mission transfer, command, params).

    The runtime calls `receive(msg, now)` for every decoded message from the link, and `poll(now)`
    after each receive and whenever `deadline()` passes; `poll` returns the messages to send. The
    machine never reads a clock, so tests drive time by passing `now`.
    """

    def __init__(self) -> None:
        self.outbox: list[Any] = []
        self.events: list[Any] = []
        self.done = False
        self.result: T | None = None
        self.error: GroundctlError | None = None
        self._deadline: float | None = None

    # -- for the runtime -------------------------------------------------------------------------
    def receive(self, msg: Any, now: float) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    def poll(self, now: float) -> list[Any]:
        """Run timers, then hand over (and forget) everything queued for sending."""
        if not self.done:
            self._tick(now)
        out, self.outbox = self.outbox, []
        return out

    def deadline(self) -> float | None:
        """Monotonic time at which `poll` next has something to do; None once done."""
        return None if self.done else self._deadline

    def take_events(self) -> list[Any]:
        ev, self.events = self.events, []
        return ev

    @property
    def ok(self) -> bool:
        return self.done and self.error is None

    def unwrap(self) -> T:
        """The result, or raise the error. Only meaningful once `done`."""
        if self.error is not None:
            raise self.error
        if not self.done:
            raise RuntimeError("machine not finished")
        return self.result  # type: ignore[return-value]

    # -- for subclasses --------------------------------------------------------------------------
    def _tick(self, now: float) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    def _finish(self, result: T) -> None:
        self.done, self.result, self._deadline = True, result, None

    def _fail(self, error: GroundctlError) -> None:
        self.done, self.error, self._deadline = True, error, None
