"""The protocol machines and the monitor against the built-in simulator, over a real TCP socket.

The simulator (sim/) is written independently from ArduPilot's source and does not import
groundctl; these tests check that the messages the machines build are understood by something else,
and that the monitor reads a simulated delivery the way the scripted tests expect.
"""

from __future__ import annotations

import math
import socket
import time

import pytest
from pymavlink.dialects.v20 import ardupilotmega as M

from groundctl.core import mavcmd as C
from groundctl.core.mission import MissionItem
from groundctl.errors import GroundctlError
from groundctl.protocol import (CommandSender, FlightMonitor, FlightSpec, MissionDownload, MissionUpload, ParamRead,
                                ParamSet, VehicleState, commands, verify)

launch = pytest.importorskip("sim.launch")

HOME = (-35.363261, 149.165230)
GCS = (255, 190)


def offset(dn: float, de: float) -> tuple[float, float]:
    return HOME[0] + dn / 111319.49, HOME[1] + de / (111319.49 * math.cos(math.radians(HOME[0])))


class Link:
    """Blocking driver for tests only: the real runtime is asyncio."""

    def __init__(self, url: str):
        self.url = url
        self.monitor: FlightMonitor | None = None
        self.state = VehicleState(1, 1)
        self._connect()

    def _connect(self, timeout: float = 5.0) -> None:
        _, host, port = self.url.split(":")
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.sock = socket.create_connection((host, int(port)), timeout=2)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        self.sock.settimeout(0.02)
        self.enc = M.MAVLink(None, srcSystem=GCS[0], srcComponent=GCS[1])
        self.dec = M.MAVLink(None)
        self.dec.robust_parsing = True
        self.closed = False

    def close(self) -> None:
        self.sock.close()

    def send(self, msg) -> None:
        self.sock.sendall(msg.pack(self.enc))

    def pump(self, machine=None) -> None:
        try:
            data = self.sock.recv(65536)
            if not data:
                self.closed = True
        except socket.timeout:
            data = b""
        except OSError:
            self.closed, data = True, b""
        now = time.monotonic()
        for m in self.dec.parse_buffer(data) or []:
            if m.get_type() == "BAD_DATA":
                continue
            text = self.state.update(m, now)
            if machine is not None:
                machine.receive(m, now)
            if self.monitor is not None:
                self.monitor.observe(m, text, now)
        if self.monitor is not None:
            self.monitor.poll(now)

    def run(self, machine, timeout: float = 30.0):
        end = time.monotonic() + timeout
        while not machine.done and time.monotonic() < end:
            for out in machine.poll(time.monotonic()):
                self.send(out)
            self.pump(machine)
        return machine.unwrap()

    def wait(self, pred, timeout: float, what: str) -> None:
        end = time.monotonic() + timeout
        while not pred(self.state):
            assert time.monotonic() < end, f"timed out waiting for {what}"
            self.pump()

    def command(self, cmd):
        return self.run(CommandSender(1, 1, cmd, gcs=GCS))


def delivery_mission(alt: float = 12.0, max_descent: float = 0.0) -> tuple[list[MissionItem], tuple[float, float]]:
    zone = offset(60, 20)
    mid = offset(30, 30)
    items = [MissionItem(C.NAV_WAYPOINT, C.FRAME_GLOBAL, lat=HOME[0], lon=HOME[1], alt=584),
             MissionItem(C.NAV_TAKEOFF, C.FRAME_GLOBAL_RELATIVE_ALT_INT, alt=alt),
             MissionItem(C.NAV_WAYPOINT, C.FRAME_GLOBAL_RELATIVE_ALT_INT, lat=mid[0], lon=mid[1], alt=alt),
             MissionItem(C.NAV_PAYLOAD_PLACE, C.FRAME_GLOBAL_RELATIVE_ALT_INT, param1=max_descent, lat=zone[0],
                         lon=zone[1], alt=alt),
             MissionItem(C.NAV_WAYPOINT, C.FRAME_GLOBAL_RELATIVE_ALT_INT, lat=mid[0], lon=mid[1], alt=alt),
             MissionItem(C.NAV_LAND, C.FRAME_GLOBAL_RELATIVE_ALT_INT, lat=HOME[0], lon=HOME[1])]
    return items, zone


def prepare(link: Link, items) -> Link:
    link.wait(lambda s: s.last_heartbeat is not None, 10, "a heartbeat")
    link.run(ParamSet(1, 1, {"GRIP_ENABLE": 1, "GRIP_TYPE": 1, "SERVO9_FUNCTION": 28, "SIM_GRPS_ENABLE": 1,
                             "SIM_GRPS_PIN": 9}))
    link.command(commands.reboot())
    end = time.monotonic() + 5
    while not link.closed and time.monotonic() < end:
        link.pump()
    link.close()
    url = link.url
    for _ in range(20):  # a connection accepted just before the port is re-bound is closed at once
        link = Link(url)
        end = time.monotonic() + 1.0
        while link.state.last_heartbeat is None and not link.closed and time.monotonic() < end:
            link.pump()
        if link.state.last_heartbeat is not None:
            break
        link.close()
    else:
        raise AssertionError("no heartbeat after the reboot")
    link.run(MissionUpload(1, 1, 0, items, gcs=GCS))
    got = link.run(MissionDownload(1, 1, 0, gcs=GCS))
    assert verify(items, got, 0) == []
    link.wait(lambda s: s.position_ready and s.has_position, 20, "an EKF position")
    link.command(commands.gripper(release=False))
    return link


def fly(link: Link, spec: FlightSpec, timeout: float = 30.0) -> list[str]:
    link.monitor = FlightMonitor(spec, link.state)
    link.command(commands.set_mode("GUIDED"))
    link.command(commands.arm())
    link.command(commands.mission_start())
    end = time.monotonic() + timeout
    while link.monitor.phase != "landed" and time.monotonic() < end:
        link.pump()
    return [e.kind for e in link.monitor.events]


@pytest.fixture
def sim():
    handles = []

    def start(*args: str) -> str:
        try:
            h = launch.start_sim(["--speedup", "40", "--no-ekf-s", "1", *args])
        except Exception as e:  # the peer simulator is not ready in this checkout
            pytest.skip(f"simulator did not start: {e}")
        handles.append(h)
        return h.urls[0]
    yield start
    for h in handles:
        h.stop()


def test_transfers_params_and_commands_against_sim(sim):
    link = Link(sim())
    try:
        link.wait(lambda s: s.last_heartbeat is not None, 10, "a heartbeat")
        items, _ = delivery_mission()
        assert link.run(MissionUpload(1, 1, 0, items, gcs=GCS)) == len(items)
        assert verify(items, link.run(MissionDownload(1, 1, 0, gcs=GCS)), 0) == []
        vals = link.run(ParamRead(1, 1, ["RTL_ALT", "FENCE_ENABLE"]))
        assert vals["RTL_ALT"].param_type == M.MAV_PARAM_TYPE_INT32
        assert link.run(ParamSet(1, 1, {"RTL_ALT": 4500, "FENCE_ALT_MAX": 120.1}))["RTL_ALT"] == 4500
        with pytest.raises(GroundctlError, match="NO_SUCH_PARAM"):
            link.run(ParamSet(1, 1, {"NO_SUCH_PARAM": 1}, retry_s=0.2, max_tries=2))
        link.command(commands.set_mode("LOITER"))
        link.wait(lambda s: s.mode == "LOITER", 3, "LOITER in the heartbeat")
    finally:
        link.close()


def test_payload_place_delivery_against_sim(sim):
    link = Link(sim("--payload-kg", "1.0"))
    try:
        items, zone = delivery_mission()
        link = prepare(link, items)
        spec = FlightSpec(mission=items, drop_seq=3, method="payload_place", zone_lat=zone[0], zone_lon=zone[1],
                          hub_lat=HOME[0], hub_lon=HOME[1], battery_wh=100, zone_radius_m=5)
        kinds = fly(link, spec)
        assert kinds == ["armed", "taking_off", "en_route", "at_zone", "lowering", "released", "returning", "landed"], \
            [t.text for t in link.state.texts]
        assert link.monitor.drop_lat is not None
    finally:
        link.close()


def test_gripper_jam_against_sim(sim):
    link = Link(sim("--payload-kg", "1.5", "--gripper-jam"))
    try:
        items, zone = delivery_mission()
        link = prepare(link, items)
        spec = FlightSpec(mission=items, drop_seq=3, method="payload_place", zone_lat=zone[0], zone_lon=zone[1],
                          hub_lat=HOME[0], hub_lon=HOME[1], battery_wh=100, zone_radius_m=5,
                          jam_settle_s=0.05)  # the sim runs 40 times faster than the monotonic clock
        kinds = fly(link, spec)
        assert "drop_failed" in kinds, (kinds, [t.text for t in link.state.texts])
    finally:
        link.close()
