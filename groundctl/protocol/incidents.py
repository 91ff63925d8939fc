"""Incidents of a flight and the vehicle's clock, for the flight monitor.

An incident (a fence breach, a failsafe, a link outage, ...) is kept once per flight: a condition that
flickers in and out is one incident whose count goes up, whose duration adds up, and whose worst value
is kept. The event stream gets one event when an incident first opens, and another only when the same
condition comes back after `merge_s` of quiet, so a breach that toggles 88 times is one event.

Times are the vehicle's: `VehicleClock` maps the autopilot's time_boot_ms (see telemetry.py) to UTC.
The mapping is anchored once per boot: on the vehicle's own UTC (SYSTEM_TIME time_unix_usec) when that
agrees with ours at the anchor (a real vehicle with a GPS clock), else on our clock at the first
timestamped message (a simulator run faster than real time, or no time source yet). Either way the
time between two events is vehicle time, however late their messages arrive.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Callable

from groundctl.protocol.events import Incident
from groundctl.protocol.telemetry import VehicleState

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
# the vehicle's own UTC is trusted when it is within this of ours when first seen
_UNIX_AGREE_S = 5.0


class VehicleClock:
    def __init__(self, state: VehicleState, wall: Callable[[float], datetime]) -> None:
        self.state = state
        self.wall = wall  # our clock: monotonic `now` -> UTC
        self._anchor: tuple[int, datetime, int] | None = None  # (boot ms, UTC at it, boot number)
        self.source = "receive"  # "vehicle_utc", "boot_ms" (anchored on our clock) or "receive"

    def _anchor_now(self) -> tuple[int, datetime, int] | None:
        s = self.state
        if s.time_boot_ms is None:
            return None
        a = self._anchor
        if a is None or a[2] != s.boots:
            a = (s.time_boot_ms, self.wall(s.time_boot_rx), s.boots)
            self.source = "boot_ms"
        if self.source != "vehicle_utc" and s.unix_usec:
            at = _EPOCH + timedelta(microseconds=s.unix_usec)
            ours = a[1] + timedelta(milliseconds=s.unix_boot_ms - a[0])
            if abs((at - ours).total_seconds()) <= _UNIX_AGREE_S:
                a = (s.unix_boot_ms, at, s.boots)
                self.source = "vehicle_utc"
        self._anchor = a
        return a

    def at_boot_ms(self, ms: int) -> datetime | None:
        a = self._anchor_now()
        if a is None:
            return None
        return a[1] + timedelta(milliseconds=ms - a[0])

    def now(self, now: float) -> datetime:
        """The vehicle's time as of its latest timestamped message (no extrapolation across silence)."""
        s = self.state
        t = self.at_boot_ms(s.time_boot_ms) if s.time_boot_ms is not None else None
        return t if t is not None else self.wall(now)

    @property
    def has_vehicle_time(self) -> bool:
        return self.state.time_boot_ms is not None


class Incidents:
    """Open/close bookkeeping; `open` returns True when the caller should emit an event."""

    def __init__(self, merge_s: float = 60.0) -> None:
        self.merge_s = merge_s
        self.by_kind: dict[str, Incident] = {}
        self._since: dict[str, datetime] = {}  # kind -> when its current episode opened

    def open(self, kind: str, t: datetime, message: str = "", *, worst: float | str | None = None, unit: str = "",
             detail: str | None = None, higher_is_worse: bool = True) -> bool:
        inc = self.by_kind.get(kind)
        if inc is None:
            inc = self.by_kind[kind] = Incident(kind=kind, first=t, last=t, worst=worst, unit=unit, message=message)
            self._since[kind] = t
            if detail:
                inc.detail.append(detail)
            return True
        if detail and detail not in inc.detail:
            inc.detail.append(detail)
        self.worse(kind, worst, higher_is_worse)
        if inc.open:
            inc.last = max(inc.last, t)
            return False
        quiet = (t - inc.last).total_seconds()
        inc.open, inc.count = True, inc.count + 1
        self._since[kind] = t
        if message:
            inc.message = message
        return quiet > self.merge_s

    def add_count(self, kind: str, n: int) -> None:
        """Openings the vehicle counted that we did not see (they fell between two reports)."""
        inc = self.by_kind.get(kind)
        if inc is not None and n > 0:
            inc.count += n

    def worse(self, kind: str, value: float | str | None, higher_is_worse: bool = True) -> None:
        inc = self.by_kind.get(kind)
        if inc is None or value is None:
            return
        if isinstance(value, str) or inc.worst is None or isinstance(inc.worst, str):
            inc.worst = value
        elif (value > inc.worst) if higher_is_worse else (value < inc.worst):
            inc.worst = value

    def close(self, kind: str, t: datetime) -> bool:
        inc = self.by_kind.get(kind)
        if inc is None or not inc.open:
            return False
        start = self._since.pop(kind, t)
        inc.duration_s += max(0.0, (t - start).total_seconds())
        inc.last, inc.open = max(inc.last, t), False
        return True

    def is_open(self, kind: str) -> bool:
        inc = self.by_kind.get(kind)
        return inc is not None and inc.open

    def touch(self, kind: str, t: datetime) -> None:
        inc = self.by_kind.get(kind)
        if inc is not None and inc.open:
            inc.last = max(inc.last, t)

    def snapshot(self, t: datetime) -> list[Incident]:
        """Every incident, with the open ones' duration counted up to `t`."""
        out = []
        for kind, inc in self.by_kind.items():
            c = Incident(**{**inc.__dict__, "detail": list(inc.detail)})
            if inc.open and kind in self._since:
                c.duration_s += max(0.0, (t - self._since[kind]).total_seconds())
                c.last = max(c.last, t)
            out.append(c)
        return out
