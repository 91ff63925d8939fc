"""FleetMonitor against ArduPilot SITL: ArduPilot sends a fleet socket only the streams it asked for.

SITL's SERIAL1 is pointed at the fleet's UDP socket (udpclient); the first TCP port only releases the
boot. After REQUEST_DATA_STREAM(ALL, stop) and SET_MESSAGE_INTERVAL, the vehicle's own time_boot_ms
dates the messages: position at the asked rate, nothing from the stream groups that were stopped.
"""

from __future__ import annotations

import asyncio

import pytest
from pymavlink.dialects.v20 import ardupilotmega as mavlink

from groundctl.runtime.fleet import FleetMonitor
from groundctl.runtime.sitl import cleanup, start_sitl
from tests.e2e.conftest import NEEDS_SITL

pytestmark = [pytest.mark.sitl, pytest.mark.timeout(300), NEEDS_SITL]

HOME = (-35.3632, 149.1652, 584.0)
GPI, SYS = mavlink.MAVLINK_MSG_ID_GLOBAL_POSITION_INT, mavlink.MAVLINK_MSG_ID_SYS_STATUS


async def _until(pred, timeout_s: float, what: str) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout_s
    while not pred():
        if loop.time() > end:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.1)


def test_sitl_sends_only_the_streams_the_fleet_asked_for():
    seen: list[tuple[str, int | None]] = []

    def on_vehicle(v):
        def observe(msg, text, now):
            seen.append((msg.get_type(), v.state.time_boot_ms))
        return observe

    async def run():
        fleet = FleetMonitor(streams={GPI: 5, SYS: 1}, on_vehicle=on_vehicle, heartbeat_s=0.5)
        await fleet.open()
        sitl = start_sitl(*HOME, speedup=1, extra_args=["--serial1", f"udpclient:127.0.0.1:{fleet.ports[0]}"])
        writer = None
        try:
            _, host, port = sitl.url.split(":")
            reader, writer = await asyncio.open_connection(host, int(port))  # releases the boot

            async def discard():
                while await reader.read(65536):
                    pass
            drain = asyncio.create_task(discard())
            await _until(lambda: (v := fleet.get(0, 1)) is not None and v.asked >= 2
                         and v.state.time_boot_ms is not None, 120, "SITL heard on the fleet socket, asked twice")
            v = fleet.get(0, 1)
            start = v.state.time_boot_ms
            await _until(lambda: v.state.time_boot_ms - start >= 6000, 60, "six vehicle seconds")
            drain.cancel()
            return v, start
        finally:
            if writer is not None:
                writer.close()
            await fleet.close()
            cleanup(sitl)

    v, start = asyncio.run(run())
    assert v.state.vehicle_type == mavlink.MAV_TYPE_QUADROTOR and v.state.voltage_v is not None
    window = [t for t, ms in seen if ms is not None and start + 2000 <= ms < start + 6000]
    gpi = window.count("GLOBAL_POSITION_INT")
    assert 16 <= gpi <= 24, gpi  # 5 Hz over four vehicle seconds
    assert 2 <= window.count("SYS_STATUS") <= 6
    stopped = {"VFR_HUD", "ATTITUDE", "WIND", "BATTERY_STATUS", "EKF_STATUS_REPORT", "GPS_RAW_INT", "SYSTEM_TIME"}
    assert not stopped & set(window), sorted(stopped & set(window))


def test_fastframe_reads_sitl_traffic_as_pymavlink_does():
    """Every stream group at 10 Hz from a real ArduPilot: the same messages and values from either decoder."""
    import socket
    import time

    from groundctl.protocol.fastframe import FrameParser
    from tests.protocol.test_fastframe import _assert_same, _pymavlink

    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(1.0)
    sitl = start_sitl(*HOME, speedup=1, extra_args=["--serial1", f"udpclient:127.0.0.1:{sock.getsockname()[1]}"])
    tcp = None
    grams: list[bytes] = []
    try:
        _, host, port = sitl.url.split(":")
        tcp = socket.create_connection((host, int(port)), timeout=10)  # releases the boot
        mav = mavlink.MAVLink(None, srcSystem=255, srcComponent=190)
        ask = mavlink.MAVLink_request_data_stream_message(1, 1, mavlink.MAV_DATA_STREAM_ALL, 10, 1).pack(mav)
        types: set[str] = set()
        asked = 0.0
        end = time.monotonic() + 120  # a bounded capture: data to compare, not a timing
        while time.monotonic() < end:
            try:
                data, addr = sock.recvfrom(65535)
            except socket.timeout:
                continue
            # SERIAL1 streams nothing but HEARTBEAT until asked, and an ask sent before the
            # boot has finished is lost: ask again each second until position comes
            if "GLOBAL_POSITION_INT" not in types and time.monotonic() - asked >= 1.0:
                sock.sendto(ask, addr)
                asked = time.monotonic()
            grams.append(data)
            types |= {m.get_type() for m in FrameParser().parse(data)}
            if len(grams) >= 300 and {"GLOBAL_POSITION_INT", "ATTITUDE", "VFR_HUD", "SYS_STATUS"} <= types:
                break
    finally:
        if tcp is not None:
            tcp.close()
        sock.close()
        cleanup(sitl)
    assert {"GLOBAL_POSITION_INT", "ATTITUDE", "VFR_HUD", "SYS_STATUS"} <= types, sorted(types)
    parser = FrameParser()
    decoded = 0
    for d in grams:
        fast = parser.parse(d)
        _assert_same(fast, _pymavlink(d))
        decoded += len(fast)
    assert parser.bad_crc == 0 and parser.truncated == 0
    assert decoded >= 100 and parser.skipped > 0  # it steps over the streams the monitor does not read
