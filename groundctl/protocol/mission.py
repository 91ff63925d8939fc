"""Mission, fence and rally transfer (MAVLink mission protocol), as ArduPilot speaks it.

Checked against libraries/GCS_MAVLink/MissionItemProtocol.cpp:
- upload: the vehicle drives. After MISSION_COUNT it asks for each item with MISSION_REQUEST (the
  non-INT message, even on MAVLink 2: queued_request_send), re-asks every ~1 s (update()) and gives up
  with MISSION_ACK OPERATION_CANCELLED after 8 s without an item (upload_timeout_ms). An item with
  the wrong seq gets MISSION_ACK INVALID_SEQUENCE and the transfer goes on. The last item is answered
  with MISSION_ACK ACCEPTED; a count of 0 is answered with ACCEPTED at once. A count above the
  vehicle's capacity gets NO_SPACE. A repeated MISSION_COUNT from the same GCS restarts the upload.
- download: MISSION_REQUEST_LIST -> MISSION_COUNT; each MISSION_REQUEST_INT -> MISSION_ITEM_INT.
  While an upload is running the vehicle answers with MISSION_ACK DENIED.
- every MISSION_ACK carries the mission_type; fence and rally need MAVLink 2 (UNSUPPORTED otherwise).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pymavlink.dialects.v20 import ardupilotmega as mavlink

from groundctl.core.mission import MissionItem, compare
from groundctl.errors import TransferError
from groundctl.protocol._base import Machine, enum_name, src

MISSION_TYPE_NAMES = {mavlink.MAV_MISSION_TYPE_MISSION: "mission", mavlink.MAV_MISSION_TYPE_FENCE: "fence",
                      mavlink.MAV_MISSION_TYPE_RALLY: "rally"}
_REQUESTS = ("MISSION_REQUEST_INT", "MISSION_REQUEST")
_ITEMS = ("MISSION_ITEM_INT", "MISSION_ITEM")


@dataclass(frozen=True)
class TransferProgress:
    """Items handled so far out of `total` (sent for an upload, received for a download)."""

    mission_type: int
    done: int
    total: int


def item_to_message(item: MissionItem, seq: int, target_sys: int, target_comp: int,
                    mission_type: int) -> mavlink.MAVLink_mission_item_int_message:
    return mavlink.MAVLink_mission_item_int_message(
        target_sys, target_comp, seq, item.frame, item.command, 0, item.autocontinue,
        item.param1, item.param2, item.param3, item.param4,
        round(item.lat * 1e7), round(item.lon * 1e7), item.alt, mission_type)


def message_to_item(msg: Any) -> MissionItem:
    """MISSION_ITEM_INT (x, y in 1e-7 degrees) or the old MISSION_ITEM (x, y in degrees)."""
    scale = 1e-7 if msg.get_type() == "MISSION_ITEM_INT" else 1.0
    return MissionItem(command=msg.command, frame=msg.frame, param1=msg.param1, param2=msg.param2,
                       param3=msg.param3, param4=msg.param4, lat=msg.x * scale, lon=msg.y * scale, alt=msg.z,
                       autocontinue=msg.autocontinue)


def verify(sent: list[MissionItem], got: list[MissionItem], mission_type: int) -> list[str]:
    """Read-back check: every difference that matters, ignoring the ones ArduPilot introduces."""
    return compare(sent, got, mission_type)


class _Transfer(Machine):
    def __init__(self, target_sys: int, target_comp: int, mission_type: int, gcs: tuple[int, int] | None) -> None:
        super().__init__()
        if mission_type not in MISSION_TYPE_NAMES:
            raise ValueError(f"unknown mission_type {mission_type}")
        self.target_sys = target_sys
        self.target_comp = target_comp
        self.mission_type = mission_type
        self.gcs = gcs
        self._started = False

    @property
    def what(self) -> str:
        return MISSION_TYPE_NAMES[self.mission_type]

    def _relevant(self, msg: Any) -> bool:
        """From our vehicle, about our mission type, and (when we know who we are) addressed to us."""
        if self.done or not self._started:
            return False
        s, c = src(msg)
        if s != self.target_sys or (self.target_comp and c != self.target_comp):
            return False
        if getattr(msg, "mission_type", self.mission_type) != self.mission_type:
            return False
        if self.gcs is not None:
            ts = getattr(msg, "target_system", 0)
            if ts and ts != self.gcs[0]:
                return False
        return True


class MissionUpload(_Transfer):
    """Upload `items` (item 0 = home for a mission). result: number of items once the vehicle ACCEPTED.

    The vehicle drives the transfer, so after its first request this side only answers; before it,
    MISSION_COUNT is re-sent every `retry_s`. No progress for `timeout_s` fails the transfer.

    ArduPilot sends its final MISSION_ACK once. If it is lost, silence follows the last item; then
    MISSION_REQUEST_LIST asks for the vehicle's count, and the same count ends the upload with
    `confirmed_by_count` set (the read-back `verify` is what proves the content).
    """

    def __init__(self, target_sys: int, target_comp: int, mission_type: int, items: list[MissionItem], *,
                 retry_s: float = 1.5, timeout_s: float = 15.0, gcs: tuple[int, int] | None = None) -> None:
        super().__init__(target_sys, target_comp, mission_type, gcs)
        self.items = list(items)
        self.retry_s = retry_s
        self.timeout_s = timeout_s
        self._sent: set[int] = set()
        self._last_progress = 0.0
        self._last_count = 0.0
        self._last_probe: float | None = None
        self.count_sends = 0
        self.confirmed_by_count = False

    def _send_count(self, now: float) -> None:
        self.outbox.append(mavlink.MAVLink_mission_count_message(
            self.target_sys, self.target_comp, len(self.items), self.mission_type))
        self.count_sends += 1
        self._last_count = now

    def _tick(self, now: float) -> None:
        if not self._started:
            self._started = True
            self._last_progress = now
            self._send_count(now)
        elif now - self._last_progress >= self.timeout_s:
            n = len(self.items)
            if not self._sent:
                why = f"no request for an item after {self.count_sends} MISSION_COUNTs"
            elif n - 1 in self._sent:
                # the ACCEPTED may be what was lost: the vehicle could hold the whole list
                why = "all items sent but no MISSION_ACK, nor a MISSION_COUNT when asked; read back to see what the vehicle holds"
            else:
                why = f"vehicle stopped asking after {len(self._sent)} of {n} items"
            self._fail(TransferError(f"{self.what} upload timed out ({self.timeout_s:g} s without progress): {why}"))
            return
        elif not self._sent and now - self._last_count >= self.retry_s:
            self._send_count(now)
        elif self._all_sent() and now - self._last_progress >= self.retry_s and (
                self._last_probe is None or now - self._last_probe >= self.retry_s):
            self._last_probe = now
            self.outbox.append(mavlink.MAVLink_mission_request_list_message(
                self.target_sys, self.target_comp, self.mission_type))
        dl = self._last_progress + self.timeout_s
        if not self._sent:
            dl = min(dl, self._last_count + self.retry_s)
        elif self._all_sent():
            dl = min(dl, max(self._last_progress, self._last_probe or 0.0) + self.retry_s)
        self._deadline = dl

    def _all_sent(self) -> bool:
        return bool(self.items) and len(self.items) - 1 in self._sent

    def receive(self, msg: Any, now: float) -> None:
        if not self._relevant(msg):
            return
        t = msg.get_type()
        if t in _REQUESTS:
            seq = msg.seq
            if not 0 <= seq < len(self.items):
                return  # not a list we sent; a stale request from an earlier transfer
            self.outbox.append(item_to_message(self.items[seq], seq, self.target_sys, self.target_comp, self.mission_type))
            self._last_progress = now
            self._last_probe = None
            self._deadline = now + (self.retry_s if seq == len(self.items) - 1 else self.timeout_s)
            if seq not in self._sent:
                self._sent.add(seq)
                self.events.append(TransferProgress(self.mission_type, len(self._sent), len(self.items)))
        elif t == "MISSION_COUNT":
            if self._last_probe is None:
                return
            if msg.count == len(self.items):
                self.confirmed_by_count = True
                self._finish(len(self.items))
            else:
                self._fail(TransferError(f"{self.what} upload: no MISSION_ACK, and the vehicle holds "
                                         f"{msg.count} items, not {len(self.items)}"))
        elif t == "MISSION_ACK":
            r = msg.type
            if r == mavlink.MAV_MISSION_INVALID_SEQUENCE:
                return  # the vehicle saw an item it did not ask for; it keeps asking
            if r == mavlink.MAV_MISSION_DENIED and self._last_probe is not None:
                return  # our count query reached a vehicle still receiving: it will ask again
            if r == mavlink.MAV_MISSION_ACCEPTED:
                # only an ACCEPTED after the last item ends it; an earlier one is left over from a
                # previous transfer (clear, or an upload this one restarted)
                if not self.items or len(self.items) - 1 in self._sent:
                    self._finish(len(self.items))
                return
            self._fail(TransferError(
                f"{self.what} upload refused: {enum_name('MAV_MISSION_RESULT', r)}"
                f" after {len(self._sent)} of {len(self.items)} items"))


class MissionDownload(_Transfer):
    """Read the vehicle's list. result: list[MissionItem] (degrees; for a mission, item 0 is home).

    Each request is re-sent after `retry_s`, `max_tries` times in all, then the transfer fails.
    Duplicated and out-of-order items are kept once; MISSION_ITEM (float) is accepted too.
    """

    def __init__(self, target_sys: int, target_comp: int, mission_type: int, *, retry_s: float = 1.0,
                 max_tries: int = 5, gcs: tuple[int, int] | None = None) -> None:
        super().__init__(target_sys, target_comp, mission_type, gcs)
        self.retry_s = retry_s
        self.max_tries = max_tries
        self.count: int | None = None
        self._items: dict[int, MissionItem] = {}
        self._waiting: int | None = None  # None while waiting for the count
        self._tries = 0
        self._last_sent = 0.0

    def _send_request(self, now: float, retry: bool = False) -> None:
        if self._waiting is None:
            m = mavlink.MAVLink_mission_request_list_message(self.target_sys, self.target_comp, self.mission_type)
        else:
            m = mavlink.MAVLink_mission_request_int_message(self.target_sys, self.target_comp, self._waiting,
                                                            self.mission_type)
        self.outbox.append(m)
        self._tries = self._tries + 1 if retry else 1
        self._last_sent = now
        self._deadline = now + self.retry_s

    def _tick(self, now: float) -> None:
        if not self._started:
            self._started = True
            self._send_request(now)
        elif now - self._last_sent >= self.retry_s:
            if self._tries >= self.max_tries:
                what = "MISSION_COUNT" if self._waiting is None else f"item {self._waiting} of {self.count}"
                self._fail(TransferError(f"{self.what} download: no {what} after {self._tries} tries"))
                return
            self._send_request(now, retry=True)

    def _next(self, now: float) -> None:
        assert self.count is not None
        missing = next((i for i in range(self.count) if i not in self._items), None)
        if missing is None:
            self.outbox.append(mavlink.MAVLink_mission_ack_message(
                self.target_sys, self.target_comp, mavlink.MAV_MISSION_ACCEPTED, self.mission_type))
            self._finish([self._items[i] for i in range(self.count)])
        else:
            self._waiting = missing
            self._send_request(now)

    def receive(self, msg: Any, now: float) -> None:
        if not self._relevant(msg):
            return
        t = msg.get_type()
        if t == "MISSION_COUNT":
            if msg.count != self.count:
                # first count, or the list changed under us (the vehicle also sends its count after
                # a request beyond the end): start over with the new size
                self.count = msg.count
                self._items.clear()
                self._next(now)
        elif t in _ITEMS:
            if self.count is None or not 0 <= msg.seq < self.count or msg.seq in self._items:
                return
            self._items[msg.seq] = message_to_item(msg)
            self.events.append(TransferProgress(self.mission_type, len(self._items), self.count))
            if msg.seq == self._waiting:
                self._next(now)
        elif t == "MISSION_ACK":
            r = msg.type
            if r in (mavlink.MAV_MISSION_ACCEPTED, mavlink.MAV_MISSION_INVALID_SEQUENCE):
                return
            self._fail(TransferError(f"{self.what} download refused: {enum_name('MAV_MISSION_RESULT', r)}"))


class MissionClear(_Transfer):
    """MISSION_CLEAR_ALL for one mission type; done on MISSION_ACK ACCEPTED."""

    def __init__(self, target_sys: int, target_comp: int, mission_type: int, *, retry_s: float = 1.0,
                 max_tries: int = 5, gcs: tuple[int, int] | None = None) -> None:
        super().__init__(target_sys, target_comp, mission_type, gcs)
        self.retry_s = retry_s
        self.max_tries = max_tries
        self._tries = 0
        self._last_sent = 0.0

    def _tick(self, now: float) -> None:
        if self._started and now - self._last_sent < self.retry_s:
            return
        if self._tries >= self.max_tries:
            self._fail(TransferError(f"{self.what} clear: no MISSION_ACK after {self._tries} tries"))
            return
        self._started = True
        self.outbox.append(mavlink.MAVLink_mission_clear_all_message(self.target_sys, self.target_comp,
                                                                     self.mission_type))
        self._tries += 1
        self._last_sent = now
        self._deadline = now + self.retry_s

    def receive(self, msg: Any, now: float) -> None:
        if not self._relevant(msg) or msg.get_type() != "MISSION_ACK":
            return
        if msg.type == mavlink.MAV_MISSION_ACCEPTED:
            self._finish(None)
        elif msg.type != mavlink.MAV_MISSION_INVALID_SEQUENCE:
            self._fail(TransferError(f"{self.what} clear refused: {enum_name('MAV_MISSION_RESULT', msg.type)}"))
