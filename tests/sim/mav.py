"""Helpers for talking raw MAVLink to the simulator over its real TCP socket."""

from __future__ import annotations

import socket
import time

from pymavlink.dialects.v20 import ardupilotmega as mavlink

from sim.launch import start_sim  # noqa: F401  (re-exported for tests)

M = mavlink


class MavClient:
    """Minimal GCS: a socket, a parser, and a queue of what has arrived."""

    def __init__(self, url: str, sysid: int = 255, compid: int = 190, heartbeat: bool = True):
        scheme, host, port = url.split(":")
        assert scheme == "tcp"
        self.addr = (host, int(port))
        self.sock = socket.create_connection(self.addr, timeout=5)
        self.sock.settimeout(0.05)
        self.mav = M.MAVLink(None, srcSystem=sysid, srcComponent=compid)
        self.mav.robust_parsing = True
        self.seen: list = []
        self.texts: list[str] = []
        self._chunks: dict[int, list[str]] = {}
        self.closed = False
        self.heartbeat = heartbeat
        self.hb_period = 0.5  # wall seconds; shorten at high --speedup when FS_GCS matters
        self._last_hb = 0.0

    def close(self) -> None:
        self.sock.close()

    def send(self, msg) -> None:
        self.sock.sendall(msg.pack(self.mav))
        self.mav.seq = (self.mav.seq + 1) % 256

    def poll(self, wait: float = 0.05) -> list:
        if self.heartbeat and time.monotonic() - self._last_hb > self.hb_period:
            self._last_hb = time.monotonic()
            try:
                self.send(M.MAVLink_heartbeat_message(M.MAV_TYPE_GCS, M.MAV_AUTOPILOT_INVALID, 0, 0, 0, 3))
            except OSError:
                pass
        self.sock.settimeout(wait)
        try:
            data = self.sock.recv(65536)
        except socket.timeout:
            return []
        except OSError:
            self.closed = True
            return []
        if not data:
            self.closed = True
            return []
        msgs = self.mav.parse_buffer(data) or []
        for m in msgs:
            if m.get_type() == "STATUSTEXT":
                # long texts arrive in 50-char chunks sharing an id; the last is shorter
                if m.id == 0:
                    self.texts.append(m.text)
                else:
                    self._chunks.setdefault(m.id, []).append(m.text)
                    if len(m.text) < 50:
                        self.texts.append("".join(self._chunks.pop(m.id)))
        self.seen.extend(msgs)
        return msgs

    def recv(self, mtype, cond=None, timeout: float = 10.0):
        """Next message of a type (or types) matching cond, or None on timeout.

        Older messages of the same types are consumed with it; other types are kept."""
        types = {mtype} if isinstance(mtype, str) else set(mtype)
        deadline = time.monotonic() + timeout
        while True:
            for i, m in enumerate(self.seen):
                if m.get_type() in types and (cond is None or cond(m)):
                    self.seen = [x for x in self.seen[:i] if x.get_type() not in types] + self.seen[i + 1:]
                    return m
            if len(self.seen) > 3000:
                del self.seen[:1000]
            if time.monotonic() >= deadline or self.closed:
                return None
            self.poll()

    def barrier(self) -> None:
        """Round trip a command: everything the vehicle sent before handling our earlier
        messages has then arrived (TCP keeps order), so what follows reflects them."""
        assert self.command(M.MAV_CMD_REQUEST_MESSAGE, M.MAVLINK_MSG_ID_HEARTBEAT) == M.MAV_RESULT_ACCEPTED
        self.seen.clear()

    def latest(self, mtype: str, timeout: float = 5.0):
        """The next message of this type to arrive from now on (older ones are dropped)."""
        self.seen = [m for m in self.seen if m.get_type() != mtype]
        return self.recv(mtype, timeout=timeout)

    def wait_text(self, needle: str, timeout: float = 20.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(needle in t for t in self.texts):
                return True
            self.poll()
        return False

    def command(self, cmd, *params, timeout: float = 5.0):
        p = list(params) + [0.0] * (7 - len(params))
        self.seen.clear()  # what follows a command is judged on fresh messages
        self.send(M.MAVLink_command_long_message(1, 1, cmd, 0, *p))
        ack = self.recv("COMMAND_ACK", lambda m: m.command == cmd, timeout)
        return None if ack is None else ack.result

    def set_param(self, name: str, value: float, ptype=M.MAV_PARAM_TYPE_REAL32):
        self.send(M.MAVLink_param_set_message(1, 1, name.encode(), value, ptype))
        return self.recv("PARAM_VALUE", lambda m: m.param_id == name, 5)

    def wait_ekf(self, timeout: float = 20.0):
        return self.recv("EKF_STATUS_REPORT", lambda m: m.flags & M.EKF_POS_HORIZ_ABS, timeout)

    def upload(self, items, mtype=M.MAV_MISSION_TYPE_MISSION, timeout: float = 10.0, attempts: int = 3):
        """Drive an upload the way a GCS must: answer whatever seq is requested, and start
        again if the vehicle gave up (at a high --speedup its 8 s are a fraction of a wall
        second, which a loaded test host can miss)."""
        for _ in range(attempts):
            res = self._upload_once(items, mtype, timeout)
            if res != M.MAV_MISSION_OPERATION_CANCELLED:
                return res
        return res

    def _upload_once(self, items, mtype, timeout):
        self.send(M.MAVLink_mission_count_message(1, 1, len(items), mtype))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            m = self.recv(("MISSION_REQUEST", "MISSION_REQUEST_INT", "MISSION_ACK"),
                          lambda m: m.mission_type == mtype, deadline - time.monotonic())
            if m is None:
                return None
            if m.get_type() == "MISSION_ACK":
                return m.type
            self.send(items[m.seq])
        return None

    def download(self, mtype=M.MAV_MISSION_TYPE_MISSION, use_int: bool = True):
        self.send(M.MAVLink_mission_request_list_message(1, 1, mtype))
        cnt = self.recv("MISSION_COUNT", lambda m: m.mission_type == mtype, 5)
        out = []
        for i in range(cnt.count):
            if use_int:
                self.send(M.MAVLink_mission_request_int_message(1, 1, i, mtype))
                out.append(self.recv("MISSION_ITEM_INT", lambda m: m.seq == i, 5))
            else:
                self.send(M.MAVLink_mission_request_message(1, 1, i, mtype))
                out.append(self.recv("MISSION_ITEM", lambda m: m.seq == i, 5))
        self.send(M.MAVLink_mission_ack_message(1, 1, M.MAV_MISSION_ACCEPTED, mtype))
        return out


def item(seq, cmd, frame=M.MAV_FRAME_GLOBAL_RELATIVE_ALT_INT, p1=0.0, p2=0.0, p3=0.0, p4=0.0,
         lat=0.0, lon=0.0, alt=0.0, mtype=M.MAV_MISSION_TYPE_MISSION):
    return M.MAVLink_mission_item_int_message(1, 1, seq, frame, cmd, 0, 1, p1, p2, p3, p4,
                                              int(round(lat * 1e7)), int(round(lon * 1e7)), alt, mtype)


HOME = (-35.363261, 149.165230, 584.0)


def offset(lat, lon, dn, de):
    import math
    return lat + dn / 111319.49, lon + de / (111319.49 * math.cos(math.radians(lat)))
