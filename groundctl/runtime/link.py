"""asyncio MAVLink links: one socket, many vehicles told apart by system id.

URLs: `tcp:HOST:PORT` (connect, reconnect on loss), `udpin:HOST:PORT` (listen; reply to each
vehicle's own address), `udpout:HOST:PORT` / `udp:HOST:PORT` (send to a vehicle that listens).
Decoding happens in the protocol callback and updates each vehicle's state synchronously, so the
cost per message is one parse and one dict lookup: nothing here waits on the network.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from dataclasses import dataclass
from typing import Callable

from pymavlink.dialects.v20 import ardupilotmega as mavlink

from groundctl.errors import InputError, LinkError

log = logging.getLogger(__name__)

GCS_SYSID = 255
GCS_COMPID = mavlink.MAV_COMP_ID_MISSIONPLANNER
UDP_RCVBUF = 4 * 1024 * 1024


@dataclass(frozen=True)
class Endpoint:
    kind: str  # "tcp", "udpin", "udpout"
    host: str
    port: int

    @classmethod
    def parse(cls, url: str) -> "Endpoint":
        parts = url.split(":")
        if len(parts) != 3 or parts[0] not in ("tcp", "udpin", "udpout", "udp"):
            raise InputError(f"{url!r} is not a MAVLink URL (tcp:HOST:PORT, udpin:HOST:PORT or udpout:HOST:PORT)",
                             field="connection")
        try:
            port = int(parts[2])
        except ValueError:
            raise InputError(f"port {parts[2]!r} is not a number", field="connection") from None
        if not 0 <= port <= 65535:
            raise InputError(f"port {port} out of range", field="connection")
        return cls("udpout" if parts[0] == "udp" else parts[0], parts[1], port)


class _Proto(asyncio.Protocol, asyncio.DatagramProtocol):
    def __init__(self, link: "MavLink") -> None:
        self.link = link

    def connection_made(self, transport) -> None:
        self.link._transport = transport
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.type == socket.SOCK_DGRAM:
            # simulators and fleets send every vehicle's telemetry in bursts: the default ~200 KB
            # buffer overflowed at 100 vehicles x 60 msg/s (kernel drops matched the lost seqs)
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, UDP_RCVBUF)
            except OSError:
                pass

    def data_received(self, data: bytes) -> None:
        self.link._feed(data, None)

    def datagram_received(self, data: bytes, addr) -> None:
        self.link._feed(data, addr)

    def connection_lost(self, exc) -> None:
        self.link._on_lost(exc)

    def error_received(self, exc) -> None:  # UDP: ICMP port unreachable while the vehicle restarts
        log.debug("udp error %s", exc)


class MavLink:
    """One MAVLink connection. `listeners` get (msg, now) for every decoded message."""

    def __init__(self, url: str, *, heartbeat_s: float = 1.0) -> None:
        self.url = url
        self.endpoint = Endpoint.parse(url)
        self.heartbeat_s = heartbeat_s
        self._mav = mavlink.MAVLink(None, srcSystem=GCS_SYSID, srcComponent=GCS_COMPID)
        self._mav.robust_parsing = True
        self._transport = None
        self._addr_by_sysid: dict[int, tuple] = {}
        self._listeners: dict[int | None, list[Callable]] = {}
        self._tasks: list[asyncio.Task] = []
        self._closed = False
        self._connected = asyncio.Event()
        self.messages_in = 0
        self.bytes_in = 0
        self.reconnects = 0

    # -- lifecycle --------------------------------------------------------------------------------
    async def open(self, timeout_s: float = 10.0) -> "MavLink":
        loop = asyncio.get_running_loop()
        ep = self.endpoint
        if ep.kind == "tcp":
            await self._connect_tcp(timeout_s)
        elif ep.kind == "udpin":
            await loop.create_datagram_endpoint(lambda: _Proto(self), local_addr=(ep.host, ep.port))
            self._connected.set()
        else:
            await loop.create_datagram_endpoint(lambda: _Proto(self), remote_addr=(ep.host, ep.port))
            self._connected.set()
        self._tasks.append(asyncio.create_task(self._heartbeat_loop(), name=f"hb {self.url}"))
        return self

    async def _connect_tcp(self, timeout_s: float) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        last: Exception | None = None
        while loop.time() < deadline and not self._closed:
            try:
                await asyncio.wait_for(
                    loop.create_connection(lambda: _Proto(self), self.endpoint.host, self.endpoint.port),
                    timeout=max(0.1, deadline - loop.time()))
                self._connected.set()
                return
            except (OSError, asyncio.TimeoutError) as e:
                last = e
                await asyncio.sleep(0.5)
        raise LinkError(f"cannot connect to {self.url}: {last}", field="connection")

    @property
    def local_port(self) -> int | None:
        if self._transport is None:
            return None
        sock = self._transport.get_extra_info("sockname")
        return sock[1] if sock else None

    async def close(self) -> None:
        self._closed = True
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            try:
                await t
            except (asyncio.CancelledError, Exception):
                pass
        if self._transport is not None:
            self._transport.close()

    async def __aenter__(self) -> "MavLink":
        return await self.open()

    async def __aexit__(self, *exc) -> None:
        await self.close()

    def _on_lost(self, exc) -> None:
        self._transport = None
        self._connected.clear()
        if not self._closed and self.endpoint.kind == "tcp":
            # the vehicle rebooted or the link dropped: keep trying in the background
            self._tasks.append(asyncio.get_running_loop().create_task(self._reconnect()))

    async def _reconnect(self) -> None:
        while not self._closed and self._transport is None:
            try:
                await self._connect_tcp(timeout_s=5.0)
                self.reconnects += 1
                log.info("reconnected to %s", self.url)
            except LinkError:
                await asyncio.sleep(1.0)

    async def wait_connected(self, timeout_s: float) -> None:
        await asyncio.wait_for(self._connected.wait(), timeout_s)

    # -- traffic ----------------------------------------------------------------------------------
    def add_peer(self, sysid: int, addr: tuple[str, int]) -> None:
        """udpin: where a vehicle listens, for sending before it has spoken to us."""
        self._addr_by_sysid[sysid] = addr

    def subscribe(self, sysid: int | None, fn: Callable) -> Callable[[], None]:
        """Call fn(msg, now) for messages from sysid (None: from every system). Returns unsubscribe."""
        self._listeners.setdefault(sysid, []).append(fn)
        return lambda: self._listeners.get(sysid, []).remove(fn) if fn in self._listeners.get(sysid, []) else None

    def _feed(self, data: bytes, addr) -> None:
        self.bytes_in += len(data)
        try:
            msgs = self._mav.parse_buffer(data) or []
        except mavlink.MAVError:
            return
        now = asyncio.get_running_loop().time()
        for msg in msgs:
            if msg.get_type() == "BAD_DATA":
                continue
            self.messages_in += 1
            sysid = msg.get_srcSystem()
            if addr is not None:
                self._addr_by_sysid[sysid] = addr
            for fn in self._listeners.get(sysid, ()):
                fn(msg, now)
            for fn in self._listeners.get(None, ()):
                fn(msg, now)

    def send(self, msg, sysid: int | None = None) -> bool:
        """Encode and send; False when there is no connection right now (the caller's machine retries)."""
        if self._transport is None:
            return False
        buf = msg.pack(self._mav)
        self._mav.seq = (self._mav.seq + 1) % 256
        if self.endpoint.kind == "tcp":
            self._transport.write(buf)
        elif self.endpoint.kind == "udpin":
            targets = [self._addr_by_sysid[sysid]] if sysid in self._addr_by_sysid else list(set(self._addr_by_sysid.values()))
            for addr in targets:
                self._transport.sendto(buf, addr)
        else:
            self._transport.sendto(buf)
        return True

    async def _heartbeat_loop(self) -> None:
        hb = mavlink.MAVLink_heartbeat_message(mavlink.MAV_TYPE_GCS, mavlink.MAV_AUTOPILOT_INVALID, 0, 0,
                                               mavlink.MAV_STATE_ACTIVE, 3)
        while True:
            self.send(hb)
            await asyncio.sleep(self.heartbeat_s)
