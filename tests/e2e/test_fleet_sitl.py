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
            await _until(lambda: (v := fleet.get(0, 1)) is not None and v.asked == 2
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
