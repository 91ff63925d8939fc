"""COMMAND_LONG / COMMAND_INT with COMMAND_ACK, and the commands a delivery needs.

Checked against libraries/GCS_MAVLink/GCS_Common.cpp: every COMMAND_LONG is answered by one
COMMAND_ACK carrying the command id (handle_command_long); long-running commands answer
MAV_RESULT_IN_PROGRESS first. Forced arm/disarm is param2 = 21196 (GCS.h
magic_force_arm_disarm_value). DO_SET_MODE reads param1 as base_mode and param2 as custom_mode,
which is used only with MAV_MODE_FLAG_CUSTOM_MODE_ENABLED. Copter mode numbers from
ArduCopter/mode.h (enum class Mode::Number).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pymavlink.dialects.v20 import ardupilotmega as mavlink

from groundctl.errors import CommandError
from groundctl.protocol._base import Machine, enum_name, src

# ArduCopter/mode.h, Mode::Number. 8, 10 and 12 are unused.
COPTER_MODES: dict[str, int] = {
    "STABILIZE": 0, "ACRO": 1, "ALT_HOLD": 2, "AUTO": 3, "GUIDED": 4, "LOITER": 5, "RTL": 6, "CIRCLE": 7,
    "LAND": 9, "DRIFT": 11, "SPORT": 13, "FLIP": 14, "AUTOTUNE": 15, "POSHOLD": 16, "BRAKE": 17, "THROW": 18,
    "AVOID_ADSB": 19, "GUIDED_NOGPS": 20, "SMART_RTL": 21, "FLOWHOLD": 22, "FOLLOW": 23, "ZIGZAG": 24,
    "SYSTEMID": 25, "AUTOROTATE": 26, "AUTO_RTL": 27, "TURTLE": 28,
}
COPTER_MODE_NAMES: dict[int, str] = {v: k for k, v in COPTER_MODES.items()}

FORCE_ARM_DISARM = 21196.0
MAV_CMD = mavlink.enums["MAV_CMD"]


def command_name(command: int) -> str:
    e = MAV_CMD.get(command)
    return e.name.removeprefix("MAV_CMD_") if e is not None else f"MAV_CMD {command}"


@dataclass(frozen=True)
class Command:
    """What to send. `as_int` sends COMMAND_INT (params 5/6 as 1e-7 degree ints, `frame` applies)."""

    command: int
    params: tuple[float, float, float, float, float, float, float] = (0, 0, 0, 0, 0, 0, 0)
    as_int: bool = False
    frame: int = mavlink.MAV_FRAME_GLOBAL_RELATIVE_ALT

    @property
    def name(self) -> str:
        return command_name(self.command)

    def message(self, target_sys: int, target_comp: int, confirmation: int = 0) -> Any:
        p = self.params
        if self.as_int:
            return mavlink.MAVLink_command_int_message(target_sys, target_comp, self.frame, self.command, 0, 0,
                                                       p[0], p[1], p[2], p[3], round(p[4] * 1e7), round(p[5] * 1e7), p[6])
        return mavlink.MAVLink_command_long_message(target_sys, target_comp, self.command, confirmation, *p)


def _cmd(command: int, *params: float, **kw: Any) -> Command:
    p = tuple(float(x) for x in params) + (0.0,) * (7 - len(params))
    return Command(command, p, **kw)  # type: ignore[arg-type]


def arm(force: bool = False) -> Command:
    return _cmd(mavlink.MAV_CMD_COMPONENT_ARM_DISARM, 1, FORCE_ARM_DISARM if force else 0)


def disarm(force: bool = False) -> Command:
    return _cmd(mavlink.MAV_CMD_COMPONENT_ARM_DISARM, 0, FORCE_ARM_DISARM if force else 0)


def set_mode(mode: str | int) -> Command:
    """Copter flight mode by name (COPTER_MODES) or number."""
    if isinstance(mode, str):
        try:
            number = COPTER_MODES[mode.upper()]
        except KeyError:
            raise ValueError(f"unknown copter mode {mode!r}; known: {', '.join(COPTER_MODES)}") from None
    else:
        number = mode
    return _cmd(mavlink.MAV_CMD_DO_SET_MODE, mavlink.MAV_MODE_FLAG_CUSTOM_MODE_ENABLED, number)


def mission_start(first: int = 0, last: int = 0) -> Command:
    return _cmd(mavlink.MAV_CMD_MISSION_START, first, last)


def takeoff(alt_m: float) -> Command:
    """NAV_TAKEOFF to alt_m above home (copter: GUIDED and armed)."""
    return _cmd(mavlink.MAV_CMD_NAV_TAKEOFF, 0, 0, 0, float("nan"), 0, 0, alt_m)


def rtl() -> Command:
    return _cmd(mavlink.MAV_CMD_NAV_RETURN_TO_LAUNCH)


def land() -> Command:
    return _cmd(mavlink.MAV_CMD_NAV_LAND, 0, 0, 0, float("nan"), 0, 0, 0)


def gripper(release: bool, instance: int = 1) -> Command:
    return _cmd(mavlink.MAV_CMD_DO_GRIPPER, instance,
                mavlink.GRIPPER_ACTION_RELEASE if release else mavlink.GRIPPER_ACTION_GRAB)


def reboot() -> Command:
    """Reboot the autopilot. The link closes after the ACK: reconnect."""
    return _cmd(mavlink.MAV_CMD_PREFLIGHT_REBOOT_SHUTDOWN, 1)


def set_message_interval(message_id: int, interval_s: float | None) -> Command:
    """Stream a message every interval_s; None stops it (-1), 0 would mean the default rate."""
    us = -1 if interval_s is None else round(interval_s * 1e6)
    return _cmd(mavlink.MAV_CMD_SET_MESSAGE_INTERVAL, message_id, us)


def request_message(message_id: int, *params: float) -> Command:
    return _cmd(mavlink.MAV_CMD_REQUEST_MESSAGE, message_id, *params)


@dataclass(frozen=True)
class CommandProgress:
    """A COMMAND_ACK with MAV_RESULT_IN_PROGRESS; progress is 0-100, or 255 when unknown."""

    command: int
    progress: int


class CommandSender(Machine[Any]):
    """Send one command until its COMMAND_ACK; result: the ACCEPTED ack message.

    Re-sent every `retry_s` with `confirmation` counting up (COMMAND_LONG), `max_tries` in all.
    IN_PROGRESS stops the re-sending and waits up to `in_progress_timeout_s` for the final ack.
    Any result other than ACCEPTED fails with a CommandError naming the command and the result.
    """

    def __init__(self, target_sys: int, target_comp: int, command: Command, *, retry_s: float = 1.0,
                 max_tries: int = 5, in_progress_timeout_s: float = 30.0,
                 gcs: tuple[int, int] | None = None) -> None:
        super().__init__()
        self.target_sys = target_sys
        self.target_comp = target_comp
        self.command = command
        self.retry_s = retry_s
        self.max_tries = max_tries
        self.in_progress_timeout_s = in_progress_timeout_s
        self.gcs = gcs
        self.tries = 0
        self._last_sent = 0.0
        self._in_progress_since: float | None = None

    def _send(self, now: float) -> None:
        self.outbox.append(self.command.message(self.target_sys, self.target_comp, confirmation=min(self.tries, 255)))
        self.tries += 1
        self._last_sent = now
        self._deadline = now + self.retry_s

    def _tick(self, now: float) -> None:
        if self._in_progress_since is not None:
            if now - self._in_progress_since >= self.in_progress_timeout_s:
                self._fail(CommandError(f"{self.command.name}: IN_PROGRESS but no final COMMAND_ACK after "
                                        f"{self.in_progress_timeout_s:g} s"))
            return
        if self.tries == 0 or now - self._last_sent >= self.retry_s:
            if self.tries >= self.max_tries:
                self._fail(CommandError(f"{self.command.name}: no COMMAND_ACK after {self.tries} tries"))
                return
            self._send(now)

    def receive(self, msg: Any, now: float) -> None:
        if self.done or self.tries == 0 or msg.get_type() != "COMMAND_ACK" or msg.command != self.command.command:
            return
        s, c = src(msg)
        if s != self.target_sys or (self.target_comp and c != self.target_comp):
            return
        if self.gcs is not None and msg.target_system and msg.target_system != self.gcs[0]:
            return
        r = msg.result
        if r == mavlink.MAV_RESULT_ACCEPTED:
            self._finish(msg)
        elif r == mavlink.MAV_RESULT_IN_PROGRESS:
            if self._in_progress_since is None:
                self._in_progress_since = now
                self._deadline = now + self.in_progress_timeout_s
            self.events.append(CommandProgress(self.command.command, msg.progress))
        else:
            self._fail(CommandError(f"{self.command.name} refused: {enum_name('MAV_RESULT', r)}"))
