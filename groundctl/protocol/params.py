"""Parameter set and read, confirmed by PARAM_VALUE.

Checked against libraries/GCS_MAVLink/GCS_Param.cpp and AP_Param.cpp: PARAM_SET with an unknown
name (or NaN/inf) gets no reply at all, so "never confirmed" usually means "no such parameter".
A write is echoed by PARAM_VALUE with the stored value (cast to the parameter's own type: an
integer parameter rounds); a read-only parameter is answered with its old value and a
"Param write denied" STATUSTEXT. ArduPilot ignores PARAM_SET.param_type and uses its own.
Names are at most 16 characters, NUL-padded when shorter.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from pymavlink.dialects.v20 import ardupilotmega as mavlink

from groundctl.errors import InputError, TransferError
from groundctl.protocol._base import Machine, src, text_field

NAME_MAX = 16
_INT_TYPES = {mavlink.MAV_PARAM_TYPE_UINT8, mavlink.MAV_PARAM_TYPE_INT8, mavlink.MAV_PARAM_TYPE_UINT16,
              mavlink.MAV_PARAM_TYPE_INT16, mavlink.MAV_PARAM_TYPE_UINT32, mavlink.MAV_PARAM_TYPE_INT32}


@dataclass(frozen=True)
class ParamValue:
    name: str
    value: float
    param_type: int


def check_name(name: str) -> bytes:
    raw = name.encode("ascii")
    if not raw or len(raw) > NAME_MAX:
        raise InputError(f"parameter names are 1 to {NAME_MAX} ASCII characters, got {len(raw)}", field=f"params.{name}")
    return raw


def same_value(want: float, got: float, param_type: int | None = None) -> bool:
    """Does the echoed value mean what we set? float32 storage and integer types round."""
    if param_type in _INT_TYPES:
        want = float(round(want))
    return math.isclose(want, got, rel_tol=1e-5, abs_tol=1e-6)


def param_value_of(msg: Any) -> ParamValue:
    return ParamValue(text_field(msg.param_id), float(msg.param_value), msg.param_type)


class _ParamMachine(Machine):
    def __init__(self, target_sys: int, target_comp: int, retry_s: float, max_tries: int) -> None:
        super().__init__()
        self.target_sys, self.target_comp = target_sys, target_comp
        self.retry_s, self.max_tries = retry_s, max_tries
        self._tries: dict[str, int] = {}
        self._last_sent = 0.0
        self._started = False

    def _param_value(self, msg: Any) -> ParamValue | None:
        if self.done or not self._started or msg.get_type() != "PARAM_VALUE":
            return None
        s, c = src(msg)
        if s != self.target_sys or (self.target_comp and c != self.target_comp):
            return None
        return param_value_of(msg)

    def _pending(self) -> list[str]:  # pragma: no cover - overridden
        raise NotImplementedError

    def _send_one(self, name: str) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    def _give_up(self, names: list[str]) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    def _tick(self, now: float) -> None:
        if self._started and now - self._last_sent < self.retry_s:
            return
        pending = self._pending()
        exhausted = [n for n in pending if self._tries.get(n, 0) >= self.max_tries]
        if exhausted:
            self._give_up(exhausted)
            return
        self._started = True
        for n in pending:
            self._send_one(n)
            self._tries[n] = self._tries.get(n, 0) + 1
        self._last_sent = now
        self._deadline = now + self.retry_s


class ParamSet(_ParamMachine):
    """Set parameters; each counts as done when a PARAM_VALUE echoes the value. result: {name: value}.

    `types` gives MAV_PARAM_TYPE per name (from a ParamRead) so integer parameters compare rounded;
    without it REAL32 is sent (ArduPilot ignores the field). Unconfirmed names are re-sent every
    `retry_s`; after `max_tries` the machine fails naming them, and the value the vehicle reported
    if it reported a different one (read-only or out of range).
    """

    def __init__(self, target_sys: int, target_comp: int, values: dict[str, float], *,
                 types: dict[str, int] | None = None, retry_s: float = 1.0, max_tries: int = 5) -> None:
        super().__init__(target_sys, target_comp, retry_s, max_tries)
        for n in values:
            check_name(n)
        self.values = {n: float(v) for n, v in values.items()}
        self.types = dict(types or {})
        self.confirmed: dict[str, float] = {}
        self.reported: dict[str, float] = {}  # last different value the vehicle echoed
        if not self.values:
            self._finish({})

    def _pending(self) -> list[str]:
        return [n for n in self.values if n not in self.confirmed]

    def _send_one(self, name: str) -> None:
        self.outbox.append(mavlink.MAVLink_param_set_message(
            self.target_sys, self.target_comp, check_name(name), self.values[name],
            self.types.get(name, mavlink.MAV_PARAM_TYPE_REAL32)))

    def _give_up(self, names: list[str]) -> None:
        parts = []
        for n in names:
            if n in self.reported:
                parts.append(f"{n}: set {self.values[n]:g}, vehicle kept {self.reported[n]:g}")
            else:
                parts.append(f"{n}: no PARAM_VALUE after {self._tries[n]} tries (unknown parameter?)")
        self._fail(TransferError("parameters not confirmed: " + "; ".join(parts)))

    def receive(self, msg: Any, now: float) -> None:
        pv = self._param_value(msg)
        if pv is None or pv.name not in self.values or pv.name in self.confirmed:
            return
        self.types.setdefault(pv.name, pv.param_type)
        if same_value(self.values[pv.name], pv.value, pv.param_type):
            self.confirmed[pv.name] = pv.value
            self.reported.pop(pv.name, None)
            self.events.append(pv)
            if not self._pending():
                self._finish(dict(self.confirmed))
        else:
            # an old value streamed before our write took effect, or a refusal; a re-send decides
            self.reported[pv.name] = pv.value


class ParamRead(_ParamMachine):
    """PARAM_REQUEST_READ by name. result: {name: ParamValue}; fails naming what never came."""

    def __init__(self, target_sys: int, target_comp: int, names: list[str], *, retry_s: float = 1.0,
                 max_tries: int = 5) -> None:
        super().__init__(target_sys, target_comp, retry_s, max_tries)
        for n in names:
            check_name(n)
        self.names = list(dict.fromkeys(names))
        self.values: dict[str, ParamValue] = {}
        if not self.names:
            self._finish({})

    def _pending(self) -> list[str]:
        return [n for n in self.names if n not in self.values]

    def _send_one(self, name: str) -> None:
        self.outbox.append(mavlink.MAVLink_param_request_read_message(
            self.target_sys, self.target_comp, check_name(name), -1))

    def _give_up(self, names: list[str]) -> None:
        self._fail(TransferError(f"no PARAM_VALUE for {', '.join(names)} after {self.max_tries} tries "
                                 "(unknown parameter?)"))

    def receive(self, msg: Any, now: float) -> None:
        pv = self._param_value(msg)
        if pv is None or pv.name not in self.names or pv.name in self.values:
            return
        self.values[pv.name] = pv
        self.events.append(pv)
        if not self._pending():
            self._finish(dict(self.values))
