"""FleetMonitor against the built-in simulator over real UDP: vehicles are (link, system id), and the
streams it asks for are the streams that come (judged in the vehicle's own time_boot_ms)."""

from __future__ import annotations

import asyncio

import pytest
from pymavlink.dialects.v20 import ardupilotmega as mavlink

from groundctl.runtime.fleet import FleetMonitor
from sim.launch import start_sim

GPI, SYS, VFR = (mavlink.MAVLINK_MSG_ID_GLOBAL_POSITION_INT, mavlink.MAVLINK_MSG_ID_SYS_STATUS,
                 mavlink.MAVLINK_MSG_ID_VFR_HUD)


def _sims(n_links: int, per_link: int):
    sims = []
    try:
        for _ in range(n_links):  # every simulator uses system ids 1..per_link: they collide across links
            sims.append(start_sim(["--udp-in", "127.0.0.1:0", "--count", str(per_link), "--sysid", "1",
                                   "--speedup", "5", "--no-ekf-s", "0"], timeout=60))
    except BaseException:
        for h in sims:
            h.stop()
        raise
    return sims


async def _until(pred, timeout_s: float, what: str) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout_s
    while not pred():
        if loop.time() > end:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


def test_same_sysid_on_two_links_are_two_vehicles_and_get_only_the_streams_asked():
    sims = _sims(2, 2)
    seen: dict[tuple[int, int], list[tuple[str, int]]] = {}

    def on_vehicle(v):
        log = seen.setdefault(v.key, [])

        def observe(msg, text, now):
            ms = getattr(msg, "time_boot_ms", None)
            if ms is None:  # SYS_STATUS and VFR_HUD carry no time: date them by the last position's
                ms = v.state.time_boot_ms
            log.append((msg.get_type(), ms))
        return observe

    async def run():
        fleet = FleetMonitor([("127.0.0.1", 0), ("127.0.0.1", 0)], streams={GPI: 10, SYS: 1},
                             on_vehicle=on_vehicle, heartbeat_s=0.2)
        async with fleet:
            for link, h in enumerate(sims):
                for sysid, urls in h.ready:
                    _, host, port = urls[0].split(":")
                    fleet.add_peer(link, sysid, (host, int(port)))
            keys = {(0, 1), (0, 2), (1, 1), (1, 2)}
            await _until(lambda: all(fleet.vehicles[k].state.has_position and fleet.vehicles[k].asked >= 2
                                     for k in keys), 60, "four vehicles with a position and streams asked twice")
            start = {k: fleet.vehicles[k].state.time_boot_ms for k in keys}
            # three vehicle seconds after the second request has surely been applied
            await _until(lambda: all(fleet.vehicles[k].state.time_boot_ms - start[k] >= 5000 for k in keys), 60,
                         "five vehicle seconds")
            return fleet, start

    fleet, start = asyncio.run(run())
    try:
        assert set(fleet.vehicles) == {(0, 1), (0, 2), (1, 1), (1, 2)}
        for key, v in fleet.vehicles.items():
            assert v.state.sysid == key[1]
            assert abs(v.state.lat - (-35.3632)) < 0.01, key
            assert v.state.voltage_v is not None and v.state.armed is False
            t0, t1 = start[key] + 2000, start[key] + 5000
            window = [(t, ms) for t, ms in seen[key] if ms is not None and t0 <= ms < t1]
            gpi = sum(1 for t, _ in window if t == "GLOBAL_POSITION_INT")
            # asked 10 Hz (the sim's default is 4): ~30 in three vehicle seconds
            assert 24 <= gpi <= 33, (key, gpi)
            # REQUEST_DATA_STREAM ALL stop turned off what was not asked for again
            assert not [t for t, _ in window if t in ("VFR_HUD", "ATTITUDE", "WIND")], key
        assert sum(p.bad_crc for p in fleet.parsers) == 0
        assert fleet.wakeups <= fleet.datagrams
    finally:
        for h in sims:
            h.stop()


@pytest.mark.parametrize("bad", ["garbage", "bad_crc"])
def test_noise_on_the_socket_makes_no_vehicle(bad):
    """Bytes that are not a valid frame for a decoded message do not create a vehicle."""
    import socket

    async def run():
        async with FleetMonitor(streams=None) as fleet:
            mav = mavlink.MAVLink(None, srcSystem=42, srcComponent=1)
            frame = bytearray(mavlink.MAVLink_heartbeat_message(2, 3, 0, 0, 3, 3).pack(mav))
            data = bytes(frame[:-1] + bytes([frame[-1] ^ 0xFF])) if bad == "bad_crc" else b"\x00noise\xfe\x01"
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                s.sendto(data, ("127.0.0.1", fleet.ports[0]))
                s.sendto(bytes(frame), ("127.0.0.1", fleet.ports[0]))  # then a good one
            await _until(lambda: fleet.datagrams >= 2, 10, "two datagrams")
            return fleet

    fleet = asyncio.run(run())
    assert list(fleet.vehicles) == [(0, 42)]
    assert fleet.vehicles[(0, 42)].state.messages == 1
    p = fleet.parsers[0]
    assert (p.bad_crc, p.decoded) == ((1, 1) if bad == "bad_crc" else (0, 1))


def test_asks_again_until_a_timed_stream_comes():
    """A booting autopilot heartbeats before it takes stream requests: the fleet keeps asking (every
    3 s of its clock) until position arrives, then stops."""
    import socket

    async def run():
        async with FleetMonitor(streams={GPI: 4}, heartbeat_s=3600) as fleet:  # ticks driven by hand
            mav = mavlink.MAVLink(None, srcSystem=9, srcComponent=1)
            hb = mavlink.MAVLink_heartbeat_message(2, 3, 0, 0, 3, 3).pack(mav)
            gpi = mavlink.MAVLink_global_position_int_message(1000, 0, 0, 0, 0, 0, 0, 0, 0).pack(mav)
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as veh:
                veh.bind(("127.0.0.1", 0))
                veh.settimeout(2.0)
                veh.sendto(hb, ("127.0.0.1", fleet.ports[0]))
                await _until(lambda: fleet.get(0, 9) is not None and fleet.get(0, 9).state.last_heartbeat, 10, "hb")

                def asks_at(t: float) -> int:
                    fleet.tick(t)
                    n = 0
                    veh.settimeout(0.5)
                    try:
                        while True:
                            data = veh.recv(65535)
                            msgs = mavlink.MAVLink(None).parse_buffer(data) or []
                            n += sum(1 for m in msgs if m.get_type() == "REQUEST_DATA_STREAM")
                    except socket.timeout:
                        return n

                t0 = 1e6
                got = [asks_at(t0), asks_at(t0 + 1), asks_at(t0 + 3), asks_at(t0 + 6)]
                veh.sendto(gpi, ("127.0.0.1", fleet.ports[0]))
                await _until(lambda: fleet.get(0, 9).state.time_boot_ms == 1000, 10, "position")
                got.append(asks_at(t0 + 9))
                return got

    assert asyncio.run(run()) == [1, 0, 1, 1, 0]
