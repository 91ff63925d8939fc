"""The fleet fast path (protocol/fastframe.py) must give the monitor exactly what pymavlink gives it.

Frames are made by pymavlink itself (MAVLink 1, 2, signed, zero-truncated payloads) from random field
values; the byte streams are then cut short and corrupted at random. On any such bytes the fast parser
must return exactly pymavlink's decoded messages of the ids it decodes, field for field, and reject
every frame whose CRC is wrong. Feeding VehicleState from either must leave it in the same state.
"""

from __future__ import annotations

import math
import os
import struct

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from pymavlink.dialects.v20 import ardupilotmega as mavlink

from groundctl.protocol.fastframe import MONITOR_FIELDS, FrameParser, x25crc
from groundctl.protocol.telemetry import VehicleState

# more examples with -m slow / GROUNDCTL_SLOW=1; the default keeps this file to seconds
_N = 4 if os.environ.get("GROUNDCTL_SLOW") == "1" else 1

# decoded ones, and a few a vehicle sends that the monitor does not read (they must be stepped over)
NAMES = sorted(MONITOR_FIELDS) + ["RAW_IMU", "PARAM_VALUE", "AHRS2", "NAV_CONTROLLER_OUTPUT", "COMMAND_ACK"]
_INT = {"int8_t": (-128, 127), "uint8_t": (0, 255), "int16_t": (-32768, 32767), "uint16_t": (0, 65535),
        "int32_t": (-2**31, 2**31 - 1), "uint32_t": (0, 2**32 - 1), "int64_t": (-2**63, 2**63 - 1),
        "uint64_t": (0, 2**64 - 1), "uint8_t_mavlink_version": (0, 255)}


def _scalar(ftype: str):
    if ftype == "float":
        return st.floats(width=32, allow_nan=True, allow_infinity=True)
    if ftype == "double":
        return st.floats(allow_nan=True)
    lo, hi = _INT[ftype]
    # zeros often: MAVLink 2 truncates trailing zero bytes, and that path must be exercised
    return st.one_of(st.just(0), st.integers(lo, hi), st.sampled_from([lo, hi]))


def _field(ftype: str, n: int):
    if ftype == "char":
        # printable, non-ASCII and NUL bytes; up to the full length (a full STATUSTEXT chunk has no NUL)
        return st.one_of(st.binary(max_size=n), st.text("abcPayloadPlce: \x00", max_size=n).map(str.encode))
    if n:
        return st.lists(_scalar(ftype), min_size=n, max_size=n)
    return _scalar(ftype)


@st.composite
def frames(draw):
    name = draw(st.sampled_from(NAMES))
    cls = mavlink.mavlink_map[getattr(mavlink, "MAVLINK_MSG_ID_" + name)]
    length = dict(zip(cls.ordered_fieldnames, cls.array_lengths))  # array_lengths is in wire order
    args = [draw(_field(t, length[f])) for f, t in zip(cls.fieldnames, cls.fieldtypes)]
    msg = cls(*args)
    mav = mavlink.MAVLink(None, srcSystem=draw(st.integers(0, 255)), srcComponent=draw(st.integers(0, 255)))
    mav.seq = draw(st.integers(0, 255))
    v1 = cls.id < 256 and draw(st.booleans())
    if not v1 and draw(st.booleans()):
        mav.signing.secret_key = bytes(range(32))
        mav.signing.link_id = draw(st.integers(0, 255))
        mav.signing.timestamp = draw(st.integers(1, 2**40))
        mav.signing.sign_outgoing = True
    return msg.pack(mav, force_mavlink1=v1)


def _pymavlink(data: bytes) -> list:
    mav = mavlink.MAVLink(None)
    mav.robust_parsing = True
    return [m for m in (mav.parse_buffer(data) or []) if m.get_type() in MONITOR_FIELDS]


def _same(a, b) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return struct.pack("<d", a) == struct.pack("<d", b) or (math.isnan(a) and math.isnan(b))
    return type(a) is type(b) and a == b


def _assert_same(fast: list, ref: list) -> None:
    assert [m.get_type() for m in fast] == [m.get_type() for m in ref]
    for f, r in zip(fast, ref):
        head = (f.get_srcSystem(), f.get_srcComponent(), f.get_seq())
        assert head == (r.get_srcSystem(), r.get_srcComponent(), r.get_seq())
        for k in MONITOR_FIELDS[f.get_type()]:
            assert _same(getattr(f, k), getattr(r, k)), (f.get_type(), k, getattr(f, k), getattr(r, k))


@settings(max_examples=80 * _N, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(frames(), min_size=1, max_size=8))
def test_same_messages_and_values_as_pymavlink(packed):
    data = b"".join(packed)
    p = FrameParser()
    fast = p.parse(data)
    _assert_same(fast, _pymavlink(data))
    assert p.bad_crc == 0 and p.truncated == 0
    assert p.frames == len(packed)


@settings(max_examples=80 * _N, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(frames(), min_size=1, max_size=6), st.data())
def test_corrupted_and_cut_bytes_agree_with_pymavlink(packed, data):
    """Noise, flipped bits and a cut tail: the same messages come out (or none), never a bad one."""
    buf = bytearray(b"".join(packed))
    for _ in range(data.draw(st.integers(0, 3))):
        at = data.draw(st.integers(0, len(buf) - 1))
        buf[at] ^= 1 << data.draw(st.integers(0, 7))
    if data.draw(st.booleans()):
        buf = buf[:data.draw(st.integers(0, len(buf)))]
    noise = data.draw(st.binary(max_size=6))
    raw = bytes(noise + buf)
    _assert_same(FrameParser().parse(raw), _pymavlink(raw))


@settings(max_examples=30 * _N, deadline=None)
@given(st.lists(frames(), min_size=1, max_size=6), st.integers(1, 40))
def test_stream_feed_in_pieces_equals_whole(packed, step):
    """TCP: a frame split across reads is joined, as pymavlink's buffer does."""
    data = b"".join(packed)
    p = FrameParser()
    got = []
    for i in range(0, len(data), step):
        got += p.feed(data[i:i + step])
    _assert_same(got, _pymavlink(data))


@given(frames())
@settings(max_examples=60 * _N, deadline=None)
def test_bad_crc_is_rejected(frame):
    """Any change to the CRC bytes rejects a decoded message (pymavlink: BAD_DATA)."""
    p = FrameParser()
    sig = 13 if frame[0] == 0xFD and frame[2] & 1 else 0
    at = len(frame) - sig - 1 - (frame[-1 - sig] & 1)  # one of the two CRC bytes
    bad = bytearray(frame)
    bad[at] ^= 0x5A
    assert p.parse(bytes(bad)) == []
    assert _pymavlink(bytes(bad)) == []
    if p.skipped == 0:
        assert p.bad_crc == 1


def test_crc_matches_pymavlink():
    from pymavlink.generator.mavcrc import x25crc_slow

    for data in (b"", b"\x00", b"123456789", bytes(range(256))):
        ref = x25crc_slow(data)
        assert x25crc(data) == ref.crc
        ref.accumulate(bytes([50]))
        assert x25crc(data, 50) == ref.crc
    assert x25crc(b"123456789") == 0x6F91  # CRC-16/MCRF4XX check value


def test_unknown_field_named():
    from groundctl.protocol.fastframe import compile_specs

    with pytest.raises(ValueError, match="lattitude"):
        compile_specs({"GLOBAL_POSITION_INT": ("lattitude",)})


@settings(max_examples=25 * _N, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(frames(), min_size=1, max_size=30))
def test_vehicle_state_the_same_from_either(packed):
    """What the monitor reads, VehicleState, ends the same whichever decoder fed it."""
    data = b"".join(packed)
    fast, ref = FrameParser().parse(data), _pymavlink(data)
    assume(ref)
    sysid = ref[0].get_srcSystem()
    a, b = VehicleState(sysid, 1), VehicleState(sysid, 1)
    ta, tb = [], []
    for i, (f, r) in enumerate(zip(fast, ref)):
        ta.append(a.update(f, float(i)))
        tb.append(b.update(r, float(i)))
    assert ta == tb
    sa, sb = a.snapshot(), b.snapshot()
    for k in sa:
        assert _same(sa[k], sb[k]) or sa[k] == sb[k], k
