"""Fleet monitor: a few UDP sockets fanned into one VehicleState per (link, system id).

For watching hundreds of vehicles in one process. Where `MavLink` wakes the event loop once per
datagram and decodes every message with pymavlink, this drains each socket when it becomes readable
(one wake-up for whatever the kernel has queued, up to `drain_max` datagrams, into one reused buffer)
and frames it with `protocol.fastframe`, which decodes only the messages and fields the monitor reads.

A MAVLink system id has 8 bits, so a vehicle is known by (link, system id): link i is the i-th
socket, and each socket can carry its own 1..255. A vehicle's address is learnt from what it sends
(or given with `add_peer` when it listens first); replies and heartbeats go there.

On a vehicle's first heartbeat the monitor asks it for only the streams it reads
(REQUEST_DATA_STREAM ALL stop, then MAV_CMD_SET_MESSAGE_INTERVAL per message, both honoured by
ArduPilot: GCS_Param.cpp handle_request_data_stream and GCS_Common.cpp set_message_interval), and
asks once more a few seconds later because UDP may lose the first request, and again while no
timed stream has come (a booting autopilot heartbeats before it takes requests).
"""

from __future__ import annotations

import asyncio
import logging
import socket
from typing import Any, Callable, Iterable

from pymavlink.dialects.v20 import ardupilotmega as mavlink

from groundctl.protocol.fastframe import FrameParser
from groundctl.protocol.telemetry import StatusText, VehicleState
from groundctl.runtime.link import GCS_COMPID, GCS_SYSID, UDP_RCVBUF

log = logging.getLogger(__name__)

Observer = Callable[[Any, "StatusText | None", float], None]

# monitor streams (Hz): the same set a delivery asks for (runtime/vehicle.py STREAMS)
FLEET_STREAMS: dict[int, float] = {
    mavlink.MAVLINK_MSG_ID_GLOBAL_POSITION_INT: 4, mavlink.MAVLINK_MSG_ID_SYS_STATUS: 2,
    mavlink.MAVLINK_MSG_ID_BATTERY_STATUS: 1, mavlink.MAVLINK_MSG_ID_VFR_HUD: 4,
    mavlink.MAVLINK_MSG_ID_MISSION_CURRENT: 2, mavlink.MAVLINK_MSG_ID_EKF_STATUS_REPORT: 1,
    mavlink.MAVLINK_MSG_ID_GPS_RAW_INT: 1, mavlink.MAVLINK_MSG_ID_ATTITUDE: 2,
    mavlink.MAVLINK_MSG_ID_FENCE_STATUS: 1, mavlink.MAVLINK_MSG_ID_HOME_POSITION: 0.5,
    mavlink.MAVLINK_MSG_ID_WIND: 1, mavlink.MAVLINK_MSG_ID_SERVO_OUTPUT_RAW: 2,
}
# the same at 10 Hz for position, attitude and speed (what the fleet capacity bench's headline mix sends)
FLEET_STREAMS_10HZ: dict[int, float] = {
    **FLEET_STREAMS, mavlink.MAVLINK_MSG_ID_GLOBAL_POSITION_INT: 10, mavlink.MAVLINK_MSG_ID_ATTITUDE: 10,
    mavlink.MAVLINK_MSG_ID_VFR_HUD: 10,
}
_ASK_TIMES = 2  # stream requests per vehicle (first heartbeat, then again)
_ASK_AGAIN_S = 3.0
_ASK_MAX = 20
# streams that carry time_boot_ms: once one arrives, the vehicle has taken the ask
_TIMED = {mavlink.MAVLINK_MSG_ID_GLOBAL_POSITION_INT, mavlink.MAVLINK_MSG_ID_ATTITUDE,
          mavlink.MAVLINK_MSG_ID_SYSTEM_TIME}


def stream_requests(sysid: int, compid: int, streams: dict[int, float]) -> list:
    """Stop every stream group, then ask for each message at its rate."""
    msgs: list = [mavlink.MAVLink_request_data_stream_message(sysid, compid, mavlink.MAV_DATA_STREAM_ALL, 0, 0)]
    for msg_id, hz in streams.items():
        msgs.append(mavlink.MAVLink_command_long_message(
            sysid, compid, mavlink.MAV_CMD_SET_MESSAGE_INTERVAL, 0, msg_id, 1e6 / hz, 0, 0, 0, 0, 0))
    return msgs


class FleetVehicle:
    __slots__ = ("link", "sysid", "addr", "state", "observer", "asked", "asked_at")

    def __init__(self, link: int, sysid: int, addr, compid: int) -> None:
        self.link, self.sysid, self.addr = link, sysid, addr
        self.state = VehicleState(sysid, compid)
        self.observer: Observer | None = None
        self.asked = 0
        self.asked_at = 0.0

    @property
    def key(self) -> tuple[int, int]:
        return (self.link, self.sysid)


class FleetMonitor:
    """Vehicles on `binds` (one UDP socket each). `on_vehicle(v)` is called when (link, sysid) is first
    heard and may return an observer fn(msg, statustext_or_None, now) (a FlightMonitor's `observe`),
    called after the vehicle's state has taken each message."""

    def __init__(self, binds: Iterable[tuple[str, int]] = (("127.0.0.1", 0),), *, compid: int = 1,
                 streams: dict[int, float] | None = FLEET_STREAMS,
                 on_vehicle: Callable[[FleetVehicle], Observer | None] | None = None,
                 heartbeat_s: float = 1.0, drain_max: int = 256, rcvbuf: int = UDP_RCVBUF) -> None:
        self.binds = list(binds)
        self.compid = compid
        self.streams = streams
        self.on_vehicle = on_vehicle
        self.heartbeat_s = heartbeat_s
        self.drain_max = drain_max
        self.rcvbuf = rcvbuf
        self.vehicles: dict[tuple[int, int], FleetVehicle] = {}
        self._by_link: list[dict[int, FleetVehicle]] = [{} for _ in self.binds]
        self._socks: list[socket.socket] = []
        self._parsers = [FrameParser() for _ in self.binds]
        self._mav = mavlink.MAVLink(None, srcSystem=GCS_SYSID, srcComponent=GCS_COMPID)
        self._hb = mavlink.MAVLink_heartbeat_message(mavlink.MAV_TYPE_GCS, mavlink.MAV_AUTOPILOT_INVALID, 0, 0,
                                                     mavlink.MAV_STATE_ACTIVE, 3)
        self._packed_requests: dict[int, list[bytes]] = {}
        self._buf = bytearray(65536)
        self._task: asyncio.Task | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.wakeups = self.datagrams = self.messages = self.errors = 0

    # -- lifecycle --------------------------------------------------------------------------------
    async def open(self) -> "FleetMonitor":
        self._loop = loop = asyncio.get_running_loop()
        for i, (host, port) in enumerate(self.binds):
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            try:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self.rcvbuf)
            except OSError:
                pass
            s.bind((host, port))
            s.setblocking(False)
            self._socks.append(s)
            loop.add_reader(s.fileno(), self._readable, i)
        self._task = asyncio.create_task(self._heartbeat_loop(), name="fleet heartbeat")
        return self

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        for s in self._socks:
            if self._loop is not None:
                self._loop.remove_reader(s.fileno())
            s.close()
        self._socks.clear()

    async def __aenter__(self) -> "FleetMonitor":
        return await self.open()

    async def __aexit__(self, *exc) -> None:
        await self.close()

    @property
    def ports(self) -> list[int]:
        return [s.getsockname()[1] for s in self._socks]

    @property
    def parsers(self) -> list[FrameParser]:
        return self._parsers

    def add_peer(self, link: int, sysid: int, addr: tuple[str, int]) -> FleetVehicle:
        """A vehicle that listens (udp server): where to send before it has spoken."""
        v = self._by_link[link].get(sysid) or self._new(link, sysid, addr)
        v.addr = addr
        return v

    def get(self, link: int, sysid: int) -> FleetVehicle | None:
        return self._by_link[link].get(sysid)

    # -- receive ----------------------------------------------------------------------------------
    def _new(self, link: int, sysid: int, addr) -> FleetVehicle:
        v = FleetVehicle(link, sysid, addr, self.compid)
        self.vehicles[(link, sysid)] = v
        self._by_link[link][sysid] = v
        if self.on_vehicle is not None:
            v.observer = self.on_vehicle(v)
        return v

    def _readable(self, link: int) -> None:
        """Drain the socket: every queued datagram in this one wake-up (bounded, so one busy link
        cannot starve the others or the loop's timers)."""
        recv = self._socks[link].recvfrom_into
        buf, parse = self._buf, self._parsers[link].parse
        vehicles = self._by_link[link]
        now = self._loop.time()
        self.wakeups += 1
        n_dgram = n_msg = 0
        for _ in range(self.drain_max):
            try:
                n, addr = recv(buf)
            except (BlockingIOError, InterruptedError):
                break
            except OSError as e:  # ICMP port unreachable from a vehicle that went away
                log.debug("fleet link %d: %s", link, e)
                continue
            n_dgram += 1
            v = None
            for m in parse(buf, n):
                if v is None or v.sysid != m[1]:  # a datagram mostly holds one vehicle's messages
                    v = vehicles.get(m[1])
                    if v is None:
                        v = self._new(link, m[1], addr)
                    elif v.addr != addr:
                        v.addr = addr
                n_msg += 1
                try:
                    text = v.state.update(m, now)
                    if v.observer is not None:
                        v.observer(m, text, now)
                except Exception:  # one vehicle's broken monitor must not stop the others' telemetry
                    self.errors += 1
                    if self.errors <= 10:
                        log.exception("fleet: vehicle %s: %s", v.key, m.get_type())
        self.datagrams += n_dgram
        self.messages += n_msg

    # -- send -------------------------------------------------------------------------------------
    def send(self, link: int, sysid: int, msg) -> bool:
        """Encode and send to a vehicle; False when its address is not known yet."""
        v = self._by_link[link].get(sysid)
        if v is None or v.addr is None or not self._socks:
            return False
        buf = msg.pack(self._mav)
        self._mav.seq = (self._mav.seq + 1) % 256
        try:
            self._socks[link].sendto(buf, v.addr)
        except OSError as e:  # a full send buffer drops, as UDP does
            log.debug("fleet send to %s: %s", v.key, e)
            return False
        return True

    async def _heartbeat_loop(self) -> None:
        while True:
            self.tick(self._loop.time())
            await asyncio.sleep(self.heartbeat_s)

    def tick(self, now: float) -> None:
        """GCS heartbeat to every vehicle, and the stream requests still owed."""
        hb = self._hb.pack(self._mav)
        timed = bool(self.streams and _TIMED & set(self.streams))
        for link, vehicles in enumerate(self._by_link):
            sock = self._socks[link]
            for addr in {v.addr for v in vehicles.values() if v.addr is not None}:
                try:
                    sock.sendto(hb, addr)
                except OSError:
                    pass
            if self.streams is None:
                continue
            for v in vehicles.values():
                # an ask sent while the autopilot is still booting is lost (SITL heartbeats before
                # its streams start): ask again until a timed stream arrives, a few times at most
                owed = v.asked < _ASK_TIMES or (v.asked < _ASK_MAX and timed and v.state.time_boot_ms is None)
                if (owed and v.state.last_heartbeat is not None and v.addr is not None
                        and now - v.asked_at >= _ASK_AGAIN_S):
                    v.asked += 1
                    v.asked_at = now
                    for buf in self._requests(v.sysid):
                        try:
                            sock.sendto(buf, v.addr)
                        except OSError:
                            break

    def _requests(self, sysid: int) -> list[bytes]:
        """Packed once per system id: pymavlink packs ~20k messages a second, and a thousand vehicles
        coming up together would otherwise cost a second of the loop."""
        bufs = self._packed_requests.get(sysid)
        if bufs is None:
            bufs = []
            for m in stream_requests(sysid, self.compid, self.streams or {}):
                bufs.append(m.pack(self._mav))
                self._mav.seq = (self._mav.seq + 1) % 256
            self._packed_requests[sysid] = bufs
        return bufs


__all__ = ["FleetMonitor", "FleetVehicle", "FLEET_STREAMS", "FLEET_STREAMS_10HZ", "stream_requests"]
