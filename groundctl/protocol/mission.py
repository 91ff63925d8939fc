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

import math
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
    """Items handled so far out of `total` (requested by the vehicle in an upload, received in a
    download). `restarts`: uploads the vehicle cancelled and this side began again."""

    mission_type: int
    done: int
    total: int
    phase: str = "upload"
    restarts: int = 0


class _Rto:
    """Retry interval from the measured round trip (Jacobson/Karels, RFC 6298), so a fast link is not
    left idle a whole second per lost packet and a slow radio is not flooded. Only first-try exchanges
    are sampled (Karn): the reply to a retry cannot be told from the reply to the original."""

    def __init__(self, initial_s: float, floor_s: float, ceiling_s: float) -> None:
        self.floor, self.ceiling = floor_s, ceiling_s
        self.srtt: float | None = None
        self.rttvar = 0.0
        self.rto = initial_s

    def sample(self, rtt: float) -> None:
        if self.srtt is None:
            self.srtt, self.rttvar = rtt, rtt / 2
        else:
            self.rttvar = 0.75 * self.rttvar + 0.25 * abs(self.srtt - rtt)
            self.srtt = 0.875 * self.srtt + 0.125 * rtt
        self.rto = min(self.ceiling, max(self.floor, self.srtt + 4 * self.rttvar))


def overall_deadline_s(count: int, base_s: float, per_item_s: float) -> float:
    """The whole transfer's time limit: scales with the list, so 500 items on a bad link get the time
    they need while a dead link still ends in a bounded time."""
    return base_s + per_item_s * count


def item_to_message(item: MissionItem, seq: int, target_sys: int, target_comp: int,
                    mission_type: int) -> mavlink.MAVLink_mission_item_int_message:
    return mavlink.MAVLink_mission_item_int_message(
        target_sys, target_comp, seq, item.frame, item.command, 0, item.autocontinue,
        item.param1, item.param2, item.param3, item.param4,
        round(item.lat * 1e7), round(item.lon * 1e7), item.alt, mission_type)


def message_to_item(msg: Any) -> MissionItem:
    """MISSION_ITEM_INT (x, y in 1e-7 degrees) or the old MISSION_ITEM (x, y in degrees)."""
    if msg.get_type() == "MISSION_ITEM_INT":
        # rounded to the 1e-7 degree the message carries, so files say -35.3605661, not -35.36056609999999
        lat, lon = round(msg.x * 1e-7, 7), round(msg.y * 1e-7, 7)
    else:
        lat, lon = msg.x, msg.y
    return MissionItem(command=msg.command, frame=msg.frame, param1=msg.param1, param2=msg.param2,
                       param3=msg.param3, param4=msg.param4, lat=lat, lon=lon, alt=msg.z,
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

    The vehicle drives the transfer (it re-asks for an item every second), so after its first request
    this side only answers, as MAVProxy's wp module does; before it, MISSION_COUNT is re-sent every
    `retry_s`. On a bad link ArduPilot may give up (OPERATION_CANCELLED after 8 s without an item,
    and that ACK may itself be lost): this side then starts again with MISSION_COUNT, as long as the
    whole transfer is inside its overall deadline, `base_s + per_item_s * len(items)`: the vehicle
    sets the pace (one re-request a second), so at 20 % loss each way an item takes ~0.6 s on
    average, and a restart late in a long list doubles that; 2 s an item covers it. Failing:
    no request at all for `timeout_s` after the count, or the overall deadline.

    ArduPilot sends its final MISSION_ACK once. If it is lost, silence follows the last item; then
    MISSION_REQUEST_LIST asks for the vehicle's count, and the same count ends the upload with
    `confirmed_by_count` set (the read-back `verify` is what proves the content).
    """

    def __init__(self, target_sys: int, target_comp: int, mission_type: int, items: list[MissionItem], *,
                 retry_s: float = 1.5, timeout_s: float = 15.0, base_s: float = 20.0, per_item_s: float = 2.0,
                 gcs: tuple[int, int] | None = None) -> None:
        super().__init__(target_sys, target_comp, mission_type, gcs)
        self.items = list(items)
        # built once, before the vehicle starts asking: each request is then answered with no work
        # but the send (the vehicle waits on every reply, so per-item cost is transfer time)
        self._msgs = [item_to_message(it, seq, target_sys, target_comp, mission_type)
                      for seq, it in enumerate(self.items)]
        self.retry_s = retry_s
        self.timeout_s = timeout_s
        self.overall_s = overall_deadline_s(len(self.items), base_s, per_item_s)
        self._t0 = 0.0
        self._sent: set[int] = set()
        self._best = 0
        self._last_progress = 0.0
        self._last_count = 0.0
        self._last_probe: float | None = None
        self.count_sends = 0
        self.restarts = 0
        self.confirmed_by_count = False

    def _send_count(self, now: float) -> None:
        self.outbox.append(mavlink.MAVLink_mission_count_message(
            self.target_sys, self.target_comp, len(self.items), self.mission_type))
        self.count_sends += 1
        self._last_count = now

    def _restart(self, now: float, why: str) -> None:
        """Begin again from item 0: the vehicle has dropped the transfer (it restarts on a new count)."""
        self.restarts += 1
        self._sent.clear()
        self._last_probe = None
        self._last_progress = now
        self._send_count(now)
        self.events.append(TransferProgress(self.mission_type, 0, len(self.items), "upload", self.restarts))
        self._deadline = min(now + self.retry_s, self._t0 + self.overall_s)
        del why  # the count of restarts is what the error and the progress report

    def _tick(self, now: float) -> None:
        n = len(self.items)
        if not self._started:
            self._started = True
            self._t0 = self._last_progress = now
            self._send_count(now)
        elif now - self._t0 >= self.overall_s:
            self._fail(TransferError(
                f"{self.what} upload not done within its overall deadline of {self.overall_s:g} s for {n} items: "
                f"the vehicle asked for {len(self._sent)} of {n} in the last try, best {self._best}, "
                f"{self.restarts} restarts after the vehicle gave up"))
            return
        elif now - self._last_progress >= self.timeout_s:
            if self._sent and not self._all_sent():
                # ArduPilot cancels after 8 s without an item; its ACK may be lost too: start over
                self._restart(now, "silence")
                return
            if not self._sent:
                why = f"no request for an item after {self.count_sends} MISSION_COUNTs"
                if self.restarts:
                    why += f" ({self.restarts} restarts; the vehicle had asked for {self._best} of {n} items)"
            else:
                # the ACCEPTED may be what was lost: the vehicle could hold the whole list
                why = "all items sent but no MISSION_ACK, nor a MISSION_COUNT when asked; read back to see what the vehicle holds"
            self._fail(TransferError(f"{self.what} upload timed out ({self.timeout_s:g} s without progress): {why}"))
            return
        elif not self._sent and now - self._last_count >= self.retry_s:
            self._send_count(now)
        elif self._all_sent() and now - self._last_progress >= self.retry_s and (
                self._last_probe is None or now - self._last_probe >= self.retry_s):
            self._last_probe = now
            self.outbox.append(mavlink.MAVLink_mission_request_list_message(
                self.target_sys, self.target_comp, self.mission_type))
        dl = min(self._last_progress + self.timeout_s, self._t0 + self.overall_s)
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
            self.outbox.append(self._msgs[seq])
            self._last_probe = None
            last = seq == len(self.items) - 1
            if seq not in self._sent:
                # a re-request of an item already answered is the vehicle waiting, not progress
                self._last_progress = now
                self._sent.add(seq)
                self._best = max(self._best, len(self._sent))
                self.events.append(TransferProgress(self.mission_type, len(self._sent), len(self.items), "upload",
                                                    self.restarts))
            self._deadline = min(now + (self.retry_s if last else self.timeout_s), self._t0 + self.overall_s)
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
            if r == mavlink.MAV_MISSION_OPERATION_CANCELLED and now - self._t0 < self.overall_s:
                self._restart(now, "cancelled")  # the vehicle timed out waiting on a lossy link
                return
            self._fail(TransferError(
                f"{self.what} upload refused: {enum_name('MAV_MISSION_RESULT', r)}"
                f" after {len(self._sent)} of {len(self.items)} items"))


class MissionDownload(_Transfer):
    """Read the vehicle's list. result: list[MissionItem] (degrees; for a mission, item 0 is home).

    Several MISSION_REQUEST_INTs are outstanding at once: ArduPilot keeps no read-back state
    (MissionItemProtocol::handle_mission_request_int answers any seq on its own, in any order), so a
    read-back is not one round trip per item. The window starts at `window` and grows by one per
    item answered at the first try, up to `max_window`; a request that times out halves it (not
    below `window`), since ArduPilot drops a reply its link has no buffer space for (send_message
    checks HAVE_PAYLOAD_SPACE) and a slow radio must not be flooded. A request not answered within
    the retry interval is sent again; the interval follows the measured round trip, between
    `min_retry_s` and `retry_s`. An item is retried for as long as the transfer as a whole moves: it fails when
    nothing new arrives for `stall_s`, or at the overall deadline `base_s + per_item_s * count`.
    Duplicated and out-of-order items are kept once; MISSION_ITEM (float) is accepted too.
    """

    def __init__(self, target_sys: int, target_comp: int, mission_type: int, *, retry_s: float = 1.0,
                 min_retry_s: float = 0.1, window: int = 4, max_window: int = 32, stall_s: float = 15.0,
                 base_s: float = 15.0, per_item_s: float = 0.5, gcs: tuple[int, int] | None = None) -> None:
        super().__init__(target_sys, target_comp, mission_type, gcs)
        self.min_window = self.window = max(1, window)
        self.max_window = max(self.window, max_window)
        self.stall_s = stall_s
        self.base_s, self.per_item_s = base_s, per_item_s
        self.rto = _Rto(retry_s, min(min_retry_s, retry_s), retry_s)
        self.count: int | None = None
        self._items: dict[int, MissionItem] = {}
        self._cursor = 0  # every seq below it has arrived
        self._out: dict[int, tuple[float, int]] = {}  # seq -> (last sent, tries); -1 = the list request
        self._t0 = 0.0
        self._last_progress = 0.0
        self.requests = 0

    @property
    def overall_s(self) -> float:
        return overall_deadline_s(self.count or 0, self.base_s, self.per_item_s)

    def _send(self, seq: int, now: float) -> None:
        if seq < 0:
            m = mavlink.MAVLink_mission_request_list_message(self.target_sys, self.target_comp, self.mission_type)
        else:
            m = mavlink.MAVLink_mission_request_int_message(self.target_sys, self.target_comp, seq,
                                                            self.mission_type)
        self.outbox.append(m)
        self.requests += 1
        _, tries = self._out.get(seq, (0.0, 0))
        self._out[seq] = (now, tries + 1)

    def _answered(self, seq: int, now: float) -> None:
        sent = self._out.pop(seq, None)
        if sent is not None and sent[1] == 1:
            self.rto.sample(now - sent[0])
            if seq >= 0 and self.window < self.max_window:
                self.window += 1

    def _fill(self, now: float) -> None:
        assert self.count is not None
        while self._cursor < self.count and self._cursor in self._items:
            self._cursor += 1
        seq = self._cursor
        while len(self._out) < self.window and seq < self.count:
            if seq not in self._items and seq not in self._out:
                self._send(seq, now)
            seq += 1

    def _set_deadline(self) -> None:
        dl = min([t + self.rto.rto for t, _ in self._out.values()], default=math.inf)
        dl = min(dl, self._last_progress + self.stall_s, self._t0 + self.overall_s)
        self._deadline = dl

    def _tick(self, now: float) -> None:
        if not self._started:
            self._started = True
            self._t0 = self._last_progress = now
            self._send(-1, now)
        elif now - self._t0 >= self.overall_s:
            n = self.count or 0
            self._fail(TransferError(f"{self.what} download not done within its overall deadline of "
                                     f"{self.overall_s:g} s for {n} items: {len(self._items)} of {n} received"))
            return
        elif now - self._last_progress >= self.stall_s:
            if self.count is None:
                what = "MISSION_COUNT"
            else:
                seq = min(self._out, default=self._cursor)
                what = f"item {seq} of {self.count}"
            tries = max((k for _, k in self._out.values()), default=0)
            self._fail(TransferError(f"{self.what} download: no {what} after {tries} tries "
                                     f"({self.stall_s:g} s without a new item; {len(self._items)} received)"))
            return
        else:
            late = [seq for seq, (t, _) in sorted(self._out.items()) if now - t >= self.rto.rto]
            if late:
                self.window = max(self.min_window, self.window // 2)
            for seq in late:
                self._send(seq, now)
        self._set_deadline()

    def _progress(self, now: float) -> None:
        assert self.count is not None
        self._last_progress = now
        if len(self._items) == self.count:
            self.outbox.append(mavlink.MAVLink_mission_ack_message(
                self.target_sys, self.target_comp, mavlink.MAV_MISSION_ACCEPTED, self.mission_type))
            self._finish([self._items[i] for i in range(self.count)])
            return
        self._fill(now)
        self._set_deadline()

    def receive(self, msg: Any, now: float) -> None:
        if not self._relevant(msg):
            return
        t = msg.get_type()
        if t == "MISSION_COUNT":
            self._answered(-1, now)
            if msg.count != self.count:
                # first count, or the list changed under us (the vehicle also sends its count after
                # a request beyond the end): start over with the new size
                self.count = msg.count
                self._items.clear()
                self._out.clear()
                self._cursor = 0
                self._progress(now)
        elif t in _ITEMS:
            if self.count is None or not 0 <= msg.seq < self.count:
                return
            self._answered(msg.seq, now)
            if msg.seq in self._items:
                self._fill(now)
                return
            self._items[msg.seq] = message_to_item(msg)
            self.events.append(TransferProgress(self.mission_type, len(self._items), self.count, "download"))
            self._progress(now)
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
