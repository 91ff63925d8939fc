"""Transports: TCP server (several clients, like SITL's serial ports), UDP out and
UDP in. Everything is non-blocking and driven by the runner's single selector.
"""

from __future__ import annotations

import errno
import selectors
import socket
import time

from pymavlink.dialects.v20 import ardupilotmega as mavlink

MAX_OUTBUF = 4 * 1024 * 1024


class Link:
    """One peer. Has its own MAVLink encoder (own sequence numbers, as an
    ArduPilot channel does) and its own parser."""

    closable = False

    def __init__(self, vehicle):
        self.vehicle = vehicle
        self.mav = mavlink.MAVLink(None, srcSystem=vehicle.sysid, srcComponent=1)
        self.mav.robust_parsing = True

    def send_msg(self, msg) -> None:
        try:
            buf = msg.pack(self.mav)
        except Exception:  # pragma: no cover - a bad field must not kill the sim
            return
        self.mav.seq = (self.mav.seq + 1) % 256  # pack() alone does not advance it
        self.send_bytes(buf)

    def feed(self, data: bytes) -> None:
        try:
            msgs = self.mav.parse_buffer(data) or []
        except Exception:
            return
        for m in msgs:
            self.vehicle.on_message(self, m)

    def send_bytes(self, buf: bytes) -> None:  # pragma: no cover - abstract
        raise NotImplementedError


class TcpClient(Link):
    closable = True

    def __init__(self, vehicle, sock: socket.socket, runner):
        super().__init__(vehicle)
        self.sock = sock
        self.runner = runner
        self.out = bytearray()
        self.closed = False
        self.dirty = False
        self.want_write = False
        runner.sel.register(sock, selectors.EVENT_READ, self._ready)

    def _ready(self, mask: int) -> None:
        if mask & selectors.EVENT_READ:
            try:
                data = self.sock.recv(65536)
            except (BlockingIOError, InterruptedError):
                data = None
            except OSError:
                return self.close()
            if data == b"":
                return self.close()
            if data:
                self.feed(data)
        if mask & selectors.EVENT_WRITE and not self.closed:
            self._flush()

    def send_bytes(self, buf: bytes) -> None:
        # queued and written once per loop iteration: one send() per burst, not per message
        if self.closed:
            return
        self.out += buf
        if len(self.out) > MAX_OUTBUF:
            self.close()  # a client that never reads is dropped, not buffered forever
            return
        if not self.dirty:
            self.dirty = True
            self.runner.dirty.append(self)

    def flush(self) -> None:
        self.dirty = False
        if self.closed or not self.out:
            return
        self._flush()
        if self.out and not self.want_write:
            self.want_write = True
            self.runner.sel.modify(self.sock, selectors.EVENT_READ | selectors.EVENT_WRITE, self._ready)

    def _flush(self) -> None:
        try:
            n = self.sock.send(self.out)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            return self.close()
        del self.out[:n]
        if not self.out and self.want_write:
            self.want_write = False
            self.runner.sel.modify(self.sock, selectors.EVENT_READ, self._ready)

    def close(self) -> None:
        if self.closed:
            return
        if self.out:
            try:
                self.sock.send(self.out)  # best effort: e.g. the ACK of a reboot command
            except OSError:
                pass
        self.closed = True
        try:
            self.runner.sel.unregister(self.sock)
        except (KeyError, ValueError):
            pass
        try:
            self.sock.close()
        except OSError:
            pass
        self.vehicle.remove_link(self)


class TcpServer:
    """Listening socket. On reboot it is closed and re-bound to the same port,
    so a client sees the connection drop and a refused connect, as with SITL."""

    def __init__(self, vehicle, runner, host: str, port: int):
        self.vehicle = vehicle
        self.runner = runner
        self.host = host
        self.port = port
        self.sock = None
        self._listen()
        vehicle.servers.append(self)

    def _listen(self) -> None:
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((self.host, self.port))
        s.listen(16)
        s.setblocking(False)
        self.port = s.getsockname()[1]
        self.sock = s
        self.runner.sel.register(s, selectors.EVENT_READ, self._accept)

    def _accept(self, mask: int) -> None:
        try:
            conn, _ = self.sock.accept()
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            return
        conn.setblocking(False)
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.vehicle.add_link(TcpClient(self.vehicle, conn, self.runner))

    def url(self) -> str:
        return f"tcp:{self.host}:{self.port}"

    def pause(self) -> None:
        if self.sock is not None:
            try:
                self.runner.sel.unregister(self.sock)
            except (KeyError, ValueError):
                pass
            self.sock.close()
            self.sock = None

    def resume(self) -> None:
        if self.sock is None:
            for _ in range(50):
                try:
                    self._listen()
                    return
                except OSError as e:  # TIME_WAIT etc.; SO_REUSEADDR normally avoids this
                    if e.errno != errno.EADDRINUSE:
                        raise
                    time.sleep(0.01)

    def close(self) -> None:
        self.pause()


class UdpPeer(Link):
    def __init__(self, vehicle, port: "UdpPort", addr):
        super().__init__(vehicle)
        self.port = port
        self.addr = addr

    def send_bytes(self, buf: bytes) -> None:
        try:
            self.port.sock.sendto(buf, self.addr)
        except (BlockingIOError, InterruptedError):
            pass  # UDP: dropping on a full socket buffer is what a radio does
        except OSError:
            pass


class UdpPort:
    """--udp-out: a fixed peer to send to, plus whoever sends to us.
    --udp-in: bound and silent until someone sends; replies go to the last sender."""

    def __init__(self, vehicle, runner, host: str, port: int, out: bool):
        self.vehicle = vehicle
        self.runner = runner
        self.out = out
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setblocking(False)
        self.peers: dict = {}
        if out:
            self.sock.bind(("0.0.0.0" if host not in ("127.0.0.1", "localhost") else "127.0.0.1", 0))
            self._peer((host, port))
        else:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self.sock.bind((host, port))
        self.host, self.port = self.sock.getsockname()[:2]
        self.target = (host, port)
        runner.sel.register(self.sock, selectors.EVENT_READ, self._ready)

    def _peer(self, addr):
        p = self.peers.get(addr)
        if p is None:
            p = UdpPeer(self.vehicle, self, addr)
            self.peers[addr] = p
            self.vehicle.add_link(p)
        return p

    def _ready(self, mask: int) -> None:
        for _ in range(64):
            try:
                data, addr = self.sock.recvfrom(65536)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return
            if not self.out:
                # reply to the last sender only
                for a, p in list(self.peers.items()):
                    if a != addr:
                        self.vehicle.remove_link(p)
                        del self.peers[a]
            self._peer(addr).feed(data)

    def url(self) -> str:
        if self.out:
            return f"udpout:{self.target[0]}:{self.target[1]}"
        return f"udp:{self.host}:{self.port}"
