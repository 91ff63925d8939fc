"""A scripted ArduPilot for the protocol tests: message helpers and the vehicle side of the mission protocol.

FakeMissionEndpoint follows libraries/GCS_MAVLink/MissionItemProtocol.cpp: MISSION_REQUEST (not
_INT) during uploads, re-request after 1 s, OPERATION_CANCELLED after 8 s of silence,
INVALID_SEQUENCE for an unexpected item, ACCEPTED after the last one, NO_SPACE over capacity.
"""

from __future__ import annotations

from pymavlink.dialects.v20 import ardupilotmega as mavlink

M = mavlink
VEH = (1, 1)
GCS = (255, 190)


def v(msg, sysid: int = 1, compid: int = 1):
    """Stamp a message as if parsed from the link, sent by (sysid, compid)."""
    # not msg.id: STATUSTEXT and BATTERY_STATUS have a field of that name
    msg._header = M.MAVLink_header(msg.get_msgId(), srcSystem=sysid, srcComponent=compid)
    return msg


def roundtrip(msg, sysid: int = 255, compid: int = 190):
    """Encode with a real MAVLink 2 encoder and parse it back byte by byte."""
    enc = M.MAVLink(None, srcSystem=sysid, srcComponent=compid)
    data = msg.pack(enc)
    dec = M.MAVLink(None)
    out = None
    for b in data:
        r = dec.parse_char(bytes([b]))
        if r is not None:
            out = r
    assert out is not None, f"{msg.get_type()} did not parse back"
    return out


def statustext(text: str, severity: int = 6):
    """ArduPilot's GCS::send_textv chunking: > 50 chars -> id != 0 and 50-char pieces."""
    raw = text.encode()
    if len(raw) <= 50:
        return [v(M.MAVLink_statustext_message(severity, raw, 0, 0))]
    out, i = [], 0
    while True:
        piece = raw[i:i + 50]
        out.append(v(M.MAVLink_statustext_message(severity, piece, 7, len(out))))
        i += 50
        if len(piece) < 50:
            return out


class FakeMissionEndpoint:
    """The vehicle side of the mission protocol for one mission type."""

    def __init__(self, mission_type: int = 0, capacity: int = 700, stored=None, ask_int: bool = False,
                 sysid: int = 1):
        self.mission_type = mission_type
        self.capacity = capacity
        self.stored = list(stored or [])  # MISSION_ITEM_INT messages
        self.receiving = False
        self.request_i = 0
        self.count = 0
        self.incoming: list = []
        self.t_receive = self.t_request = 0.0
        self.ask_int = ask_int
        self.sysid = sysid
        self.acks: list[int] = []
        self.requests_sent = 0

    def _v(self, msg):
        return v(msg, self.sysid, 1)

    def _ack(self, result):
        self.acks.append(result)
        return self._v(M.MAVLink_mission_ack_message(*GCS, result, self.mission_type))

    def _request(self, now):
        self.t_request = now
        self.requests_sent += 1
        cls = M.MAVLink_mission_request_int_message if self.ask_int else M.MAVLink_mission_request_message
        return self._v(cls(*GCS, self.request_i, self.mission_type))

    def handle(self, msg, now) -> list:
        t = msg.get_type()
        if getattr(msg, "mission_type", self.mission_type) != self.mission_type:
            return []
        if t == "MISSION_COUNT":
            if msg.count > self.capacity:
                return [self._ack(M.MAV_MISSION_NO_SPACE)]
            self.count = msg.count
            self.incoming = []
            if msg.count == 0:
                self.stored = []
                return [self._ack(M.MAV_MISSION_ACCEPTED)]
            self.receiving, self.request_i, self.t_receive = True, 0, now
            return [self._request(now)]
        if t == "MISSION_ITEM_INT":
            if not self.receiving:
                return []
            if msg.seq != self.request_i:
                return [self._ack(M.MAV_MISSION_INVALID_SEQUENCE)]
            self.incoming.append(msg)
            self.t_receive = now
            self.request_i += 1
            if self.request_i >= self.count:
                self.receiving = False
                self.stored = self.incoming
                return [self._ack(M.MAV_MISSION_ACCEPTED)]
            return [self._request(now)]
        if t == "MISSION_REQUEST_LIST":
            if self.receiving:
                return [self._ack(M.MAV_MISSION_DENIED)]
            return [self._v(M.MAVLink_mission_count_message(*GCS, len(self.stored), self.mission_type))]
        if t == "MISSION_REQUEST_INT":
            if self.receiving:
                return [self._ack(M.MAV_MISSION_DENIED)]
            if msg.seq >= len(self.stored):
                return [self._v(M.MAVLink_mission_count_message(*GCS, len(self.stored), self.mission_type)),
                        self._ack(M.MAV_MISSION_INVALID_SEQUENCE)]
            s = self.stored[msg.seq]
            return [self._v(M.MAVLink_mission_item_int_message(
                *GCS, msg.seq, s.frame, s.command, 0, s.autocontinue, s.param1, s.param2, s.param3, s.param4,
                s.x, s.y, s.z, self.mission_type))]
        if t == "MISSION_CLEAR_ALL":
            self.receiving = False
            self.stored = []
            return [self._ack(M.MAV_MISSION_ACCEPTED)]
        return []

    def tick(self, now) -> list:
        if not self.receiving:
            return []
        if now - self.t_receive > 8.0:
            self.receiving = False
            return [self._ack(M.MAV_MISSION_OPERATION_CANCELLED)]
        if now - self.t_request > 1.0:
            return [self._request(now)]
        return []


def run_machine(machine, vehicle, *, until: float = 60.0, dt: float = 0.05, up=None, down=None):
    """Run machine against vehicle in simulated time. up/down(msgs, now) may drop, duplicate, delay."""
    now = 0.0
    in_flight: list[tuple[float, object]] = []  # (arrival time, msg) vehicle -> gcs
    to_vehicle: list[tuple[float, object]] = []
    while now < until and not machine.done:
        for m in machine.poll(now):
            for at, mm in (up(m, now) if up else [(now, m)]):
                to_vehicle.append((at, mm))
        to_vehicle.sort(key=lambda p: p[0])
        while to_vehicle and to_vehicle[0][0] <= now:
            _, m = to_vehicle.pop(0)
            for r in vehicle.handle(roundtrip_if_needed(m), now):
                in_flight.extend(down(r, now) if down else [(now, r)])
        for r in vehicle.tick(now):
            in_flight.extend(down(r, now) if down else [(now, r)])
        in_flight.sort(key=lambda p: p[0])
        while in_flight and in_flight[0][0] <= now:
            _, r = in_flight.pop(0)
            machine.receive(r, now)
        now = round(now + dt, 6)
    return now


def roundtrip_if_needed(m):
    return m
