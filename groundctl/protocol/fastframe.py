"""MAVLink framing for fleets: frame, filter by message id, check the CRC, decode only the fields used.

pymavlink decodes every message it sees, field by field in Python, and computes the X.25 CRC one byte
at a time in Python: at fleet scale that was about half of the CPU per message. Here a frame is found
from its header alone, a message the monitor does not read is stepped over by its declared length
(as pymavlink and the C library do for an id they cannot decode), and a message it does read is
CRC-checked with its CRC_EXTRA (never skipped) and unpacked by one precompiled struct that reads the
header's seq, system and component and the needed fields, padding MAVLink 2's zero-truncated payload.

The CRC is MAVLink's CRC-16/MCRF4XX, which is the reflected form of CCITT: it is computed with the
stdlib's C `binascii.crc_hqx` on bit-reversed bytes (reversing every input byte and the 16-bit result
turns the reflected CRC into the plain one), so no byte is touched in Python.

Messages come out as `FastMessage` tuples that answer what `VehicleState.update` and `FlightMonitor`
ask of a pymavlink message (`get_type()`, `get_srcSystem()`, `get_srcComponent()`, `get_seq()` and
the field attributes), with the same values pymavlink gives (tests/protocol/test_fastframe.py).
Signed MAVLink 2 frames are accepted with the signature unchecked, as pymavlink does with no key.
Sans-IO: bytes in, messages out; no socket, no clock.
"""

from __future__ import annotations

import re
import struct
from binascii import crc_hqx
from operator import itemgetter
from typing import Iterable

from pymavlink.dialects.v20 import ardupilotmega as mavlink

# What groundctl.protocol.telemetry.VehicleState and the FlightMonitor read, per message.
MONITOR_FIELDS: dict[str, tuple[str, ...]] = {
    "HEARTBEAT": ("type", "autopilot", "base_mode", "custom_mode", "system_status"),
    "GLOBAL_POSITION_INT": ("time_boot_ms", "lat", "lon", "alt", "relative_alt", "vx", "vy", "vz", "hdg"),
    "ATTITUDE": ("time_boot_ms", "roll", "pitch", "yaw"),
    "SYS_STATUS": ("voltage_battery", "current_battery", "battery_remaining", "onboard_control_sensors_present",
                   "onboard_control_sensors_enabled", "onboard_control_sensors_health"),
    "BATTERY_STATUS": ("id", "battery_remaining", "current_battery", "energy_consumed", "current_consumed",
                       "time_remaining"),
    "GPS_RAW_INT": ("fix_type", "satellites_visible", "eph"),
    "EKF_STATUS_REPORT": ("flags",),
    "VFR_HUD": ("groundspeed", "airspeed", "throttle", "climb"),
    "MISSION_CURRENT": ("seq", "total", "mission_state"),
    "MISSION_ITEM_REACHED": ("seq",),
    "HOME_POSITION": ("latitude", "longitude", "altitude"),
    "WIND": ("direction", "speed", "speed_z"),
    "FENCE_STATUS": ("breach_status", "breach_count", "breach_type", "breach_time"),
    "WINCH_STATUS": ("line_length", "speed", "status"),
    "STATUSTEXT": ("severity", "text", "id", "chunk_seq"),
    "SYSTEM_TIME": ("time_boot_ms", "time_unix_usec"),
    "SERVO_OUTPUT_RAW": tuple(f"servo{i}_raw" for i in range(1, 17)),
}

_REV = bytes(int(f"{i:08b}"[::-1], 2) for i in range(256))  # each byte's bits reversed
_V1, _V2 = mavlink.PROTOCOL_MARKER_V1, mavlink.PROTOCOL_MARKER_V2
_SIGNED = mavlink.MAVLINK_IFLAG_SIGNED
_SIG_LEN = mavlink.MAVLINK_SIGNATURE_BLOCK_LEN
_H2 = struct.Struct("<xBB4xHB").unpack_from  # v2 header: len, incompat flags, msgid low 16, high 8
_TOKEN = re.compile(r"(\d*)([a-zA-Z?])")


def x25crc(data: bytes, crc_extra: int | None = None) -> int:
    """MAVLink's CRC-16/MCRF4XX of data (then crc_extra), in C."""
    c = crc_hqx(bytes(data).translate(_REV), 0xFFFF)
    if crc_extra is not None:
        c = crc_hqx(_REV[crc_extra:crc_extra + 1], c)
    return (_REV[c & 0xFF] << 8) | _REV[c >> 8]


class FastMessage(tuple):
    """(seq, srcSystem, srcComponent, *fields): duck-types the parts of a pymavlink message groundctl reads."""

    __slots__ = ()
    _type = "UNKNOWN"
    _id = -1

    def get_type(self) -> str:
        return self._type

    def get_msgId(self) -> int:
        return self._id

    def get_seq(self) -> int:
        return self[0]

    def get_srcSystem(self) -> int:
        return self[1]

    def get_srcComponent(self) -> int:
        return self[2]

    def to_dict(self) -> dict:
        return {"mavpackettype": self._type, **{k: getattr(self, k) for k in self._fields}}

    def __repr__(self) -> str:
        return f"{self._type}(sys={self[1]}, comp={self[2]}, seq={self[0]}, " + ", ".join(
            f"{k}={getattr(self, k)!r}" for k in self._fields) + ")"


class _Spec:
    """How to decode one message id: CRC_EXTRA, payload size, and the structs for v1 and v2 frames."""

    __slots__ = ("msgid", "name", "extra", "size", "v1", "v2", "cls", "text_at")

    def __init__(self, name: str, fields: Iterable[str]) -> None:
        msgid = getattr(mavlink, "MAVLINK_MSG_ID_" + name)
        pm = mavlink.mavlink_map[msgid]
        want = set(fields)
        unknown = want - set(pm.ordered_fieldnames)
        if unknown:
            raise ValueError(f"fields: {sorted(unknown)} are not fields of {name}")
        tokens = _TOKEN.findall(pm.unpacker.format[1:])
        if len(tokens) != len(pm.ordered_fieldnames):
            raise ValueError(f"{name}: cannot match struct {pm.unpacker.format!r} to its fields")
        fmt, names, last, text_at = [], [], 0, None
        for (count, code), fname in zip(tokens, pm.ordered_fieldnames):
            tok = count + code
            if fname in want:
                if count and code != "s":
                    raise ValueError(f"{name}.{fname}: arrays are not decoded here")
                if code == "s":
                    text_at = 3 + len(names)
                fmt.append(tok)
                names.append(fname)
                last = len(fmt)
            else:
                fmt.append(f"{struct.calcsize('<' + tok)}x")
        body = "".join(fmt[:last])
        self.msgid, self.name, self.extra = msgid, name, bytes([_REV[pm.crc_extra]])
        self.v2 = struct.Struct("<4xBBB3x" + body)  # header seq, sys, comp; payload at 10
        self.v1 = struct.Struct("<2xBBBx" + body)  # payload at 6
        self.size = struct.calcsize("<" + body)  # payload bytes the needed fields reach into
        attrs = {"__slots__": (), "_type": name, "_id": msgid, "_fields": tuple(names)}
        for i, fname in enumerate(names):
            attrs[fname] = property(itemgetter(3 + i))
        self.cls = type(name.title().replace("_", ""), (FastMessage,), attrs)
        self.text_at = text_at


def compile_specs(wanted: dict[str, Iterable[str]] = MONITOR_FIELDS) -> dict[int, _Spec]:
    return {s.msgid: s for s in (_Spec(n, f) for n, f in wanted.items())}


_MONITOR_SPECS = compile_specs()


class FrameParser:
    """Frames MAVLink 1 and 2 out of bytes and decodes the wanted messages.

    `parse(data)` takes one UDP datagram (frames do not span datagrams); `feed(data)` takes a byte
    stream (TCP) and keeps a partial frame for the next call. Counters: `frames` seen, `decoded`,
    `skipped` (ids not wanted, not CRC-checked: nothing is read from them), `bad_crc`, `bad_bytes`
    (noise between frames), `truncated` (a datagram ending inside a frame).
    """

    def __init__(self, wanted: dict[str, Iterable[str]] | None = None) -> None:
        self.specs = _MONITOR_SPECS if wanted is None else compile_specs(wanted)
        self.frames = self.decoded = self.skipped = self.bad_crc = self.bad_bytes = self.truncated = 0
        self._pending = b""

    def feed(self, data: bytes) -> list[FastMessage]:
        buf = self._pending + bytes(data) if self._pending else data
        out: list[FastMessage] = []
        used = self._parse(buf, len(buf), out)
        self._pending = bytes(buf[used:])
        return out

    def parse(self, data, end: int | None = None) -> list[FastMessage]:
        """Messages in data[:end] (a datagram, or a receive buffer filled up to end)."""
        out: list[FastMessage] = []
        n = len(data) if end is None else end
        used = self._parse(data, n, out)
        if used < n:
            self.truncated += 1
        return out

    def _parse(self, data, n: int, out: list) -> int:
        specs = self.specs
        append = out.append
        rev = None  # the bit-reversed copy for the CRC, made once per buffer when first needed
        frames = skipped = bad_crc = bad_bytes = decoded = 0
        i = 0
        while i < n:
            magic = data[i]
            if magic == _V2:
                if i + 10 > n:
                    break
                plen, flags, lo, hi = _H2(data, i)
                end = i + 12 + plen + (_SIG_LEN if flags & _SIGNED else 0)
                if end > n:
                    break
                frames += 1
                spec = specs.get(lo | hi << 16)
                if spec is None or flags & ~_SIGNED:
                    skipped += 1  # unknown incompat flags: pymavlink refuses the frame too
                    i = end
                    continue
                pe = i + 10 + plen  # the CRC's first byte
                st = spec.v2
            elif magic == _V1:
                if i + 6 > n:
                    break
                plen = data[i + 1]
                end = i + 8 + plen
                if end > n:
                    break
                frames += 1
                spec = specs.get(data[i + 5])
                if spec is None:
                    skipped += 1
                    i = end
                    continue
                pe = i + 6 + plen
                st = spec.v1
            else:
                j = i + 1
                while j < n and data[j] != _V1 and data[j] != _V2:
                    j += 1
                bad_bytes += j - i
                i = j
                continue
            if rev is None:
                rev = data[:n].translate(_REV)
            if crc_hqx(spec.extra, crc_hqx(rev[i + 1:pe], 0xFFFF)) != (_REV[data[pe]] << 8) | _REV[data[pe + 1]]:
                bad_crc += 1
                i = end
                continue
            if plen >= spec.size:
                vals = st.unpack_from(data, i)
            else:  # MAVLink 2 drops trailing zero bytes of the payload (and v1 may omit extensions)
                vals = st.unpack(bytes(data[i:pe]) + bytes(spec.size - plen))
            if spec.text_at is not None:
                vals = list(vals)
                raw = vals[spec.text_at]
                vals[spec.text_at] = raw.split(b"\x00", 1)[0].decode("ascii", "replace")
            append(spec.cls(vals))
            decoded += 1
            i = end
        self.frames += frames
        self.skipped += skipped
        self.bad_crc += bad_crc
        self.bad_bytes += bad_bytes
        self.decoded += decoded
        return i


__all__ = ["FrameParser", "FastMessage", "MONITOR_FIELDS", "compile_specs", "x25crc"]
