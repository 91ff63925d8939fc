"""One receiver of the capacity bench, in a process of its own so its CPU time is its own.

`python -m tests.bench._capacity_rx CONFIG_JSON`: binds one UDP socket per link on 127.0.0.1, prints
`{"ports": [...]}`, waits for a line on stdin (the generators are sending), lets `warmup_s` pass, then
measures `window_s` and prints one JSON line. Variants:

- pymavlink: a plain pymavlink loop (select over the sockets, MAVLink.parse_buffer per link, the last
  message per (link, system, type) kept as mavutil's `messages` does). Decode only: no vehicle state.
- today: groundctl as it was: `MavLink` per link (asyncio datagram endpoint, pymavlink parse), a
  VehicleState + FlightMonitor per vehicle through `MavLink.subscribe`.
- fastframe: the same asyncio datagram endpoints (one callback per datagram) with protocol.fastframe
  instead of pymavlink: the decoding change alone.
- fleet: runtime.fleet.FleetMonitor (socket drained per wake-up + fastframe), same state + monitor.
- fastframe_uvloop, fleet_uvloop: the same on uvloop's event loop.
"""

from __future__ import annotations

import asyncio
import datetime
import json
import os
import resource
import select
import socket
import sys
import time
from pathlib import Path

HOME = (-35.3632, 149.1652)


def _schedstat() -> tuple[float, float]:
    """(on-CPU s, runnable-but-waiting s) of this thread: /proc/self/schedstat."""
    try:
        f = Path("/proc/thread-self/schedstat").read_text().split()
        return int(f[0]) / 1e9, int(f[1]) / 1e9
    except (OSError, IndexError, ValueError):
        return float("nan"), float("nan")


def _pressure_some_s() -> float:
    """Machine-wide CPU pressure: seconds some runnable task waited (/proc/pressure/cpu `some total`)."""
    try:
        line = Path("/proc/pressure/cpu").read_text().splitlines()[0]
        return int(line.rsplit("total=", 1)[1]) / 1e6
    except (OSError, IndexError, ValueError):
        return float("nan")


def _drops(ports: list[int]) -> int:
    """Datagrams the kernel dropped on our sockets (receive buffer full): /proc/net/udp."""
    total = 0
    try:
        for line in Path("/proc/net/udp").read_text().splitlines()[1:]:
            f = line.split()
            if int(f[1].split(":")[1], 16) in ports:
                total += int(f[-1])
    except (OSError, IndexError, ValueError):
        return -1
    return total


def _cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


class Meter:
    def __init__(self, ports: list[int], count) -> None:
        self.ports, self.count = ports, count

    def snap(self) -> dict:
        on_cpu, wait = _schedstat()
        return {"cpu": _cpu_s(), "wall": time.monotonic(), "frames": self.count(), "runq": wait,
                "psi": _pressure_some_s(), "drops": _drops(self.ports), "load": os.getloadavg()[0]}

    @staticmethod
    def result(a: dict, b: dict, **extra) -> dict:
        wall = b["wall"] - a["wall"]
        return {"wall_s": wall, "t0": a["wall"], "t1": b["wall"], "cpu_s": b["cpu"] - a["cpu"], "frames": b["frames"] - a["frames"],
                "runq_wait_s": b["runq"] - a["runq"], "psi_some_s": b["psi"] - a["psi"],
                "socket_drops": b["drops"] - a["drops"], "loadavg_1m": a["load"], **extra}


def _flight_spec():
    from groundctl.core import mavcmd as C
    from groundctl.core.mission import MissionItem
    from groundctl.protocol import FlightSpec

    zone = (HOME[0] + 0.006, HOME[1] + 0.006)
    mid = ((HOME[0] + zone[0]) / 2, (HOME[1] + zone[1]) / 2 + 0.001)

    def wp(lat, lon, alt=60.0, cmd=C.NAV_WAYPOINT, **kw):
        return MissionItem(cmd, C.FRAME_GLOBAL_RELATIVE_ALT_INT, lat=lat, lon=lon, alt=alt, **kw)

    mission = [MissionItem(C.NAV_WAYPOINT, C.FRAME_GLOBAL, lat=HOME[0], lon=HOME[1], alt=584),
               wp(0, 0, cmd=C.NAV_TAKEOFF), wp(*mid), wp(*zone, cmd=C.NAV_PAYLOAD_PLACE, param1=50), wp(*mid),
               wp(*HOME, alt=0, cmd=C.NAV_LAND)]
    return FlightSpec(mission=mission, drop_seq=3, method="payload_place", zone_lat=zone[0], zone_lon=zone[1],
                      hub_lat=HOME[0], hub_lon=HOME[1], battery_wh=100.0, wh_per_m=0.01, reserve_wh=10.0)


def _new_monitor(state, loop):
    from groundctl.protocol import FlightMonitor

    return FlightMonitor(_SPEC, state, clock_anchor=(loop.time(), datetime.datetime.now(datetime.timezone.utc)))


_SPEC = None


def _emit(obj: dict) -> None:
    print(json.dumps(obj), flush=True)


# -- plain pymavlink ---------------------------------------------------------------------------------
def run_pymavlink(cfg: dict) -> dict:
    os.environ["MAVLINK20"] = "1"
    from pymavlink.dialects.v20 import ardupilotmega as mavlink

    socks = []
    for _ in range(cfg["links"]):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        s.bind(("127.0.0.1", 0))
        socks.append(s)
    ports = [s.getsockname()[1] for s in socks]
    _emit({"ports": ports})
    sys.stdin.readline()
    parsers = {s.fileno(): (li, mavlink.MAVLink(None)) for li, s in enumerate(socks)}
    for _, p in parsers.values():
        p.robust_parsing = True
    messages: dict = {}
    n = [0]
    meter = Meter(ports, lambda: n[0])
    fds = {s.fileno(): s for s in socks}
    start = time.monotonic()
    t_a = start + cfg["warmup_s"]
    t_b = t_a + cfg["window_s"]
    a = None
    while True:
        now = time.monotonic()
        if a is None and now >= t_a:
            a = meter.snap()
        if now >= t_b:
            break
        ready, _, _ = select.select(socks, [], [], 0.2)
        for s in ready:
            data = s.recv(65535)
            li, mav = parsers[s.fileno()]
            for m in mav.parse_buffer(data) or ():
                if m.get_type() == "BAD_DATA":
                    continue
                messages[(li, m.get_srcSystem(), m.get_type())] = m
                n[0] += 1
    b = meter.snap()
    heard = len({(k[0], k[1]) for k in messages})
    return Meter.result(a, b, vehicles_heard=heard, lag_p99_ms=None)


# -- asyncio variants -------------------------------------------------------------------------------
async def _measure(cfg: dict, ports: list[int], count, heard, polls) -> dict:
    loop = asyncio.get_running_loop()
    lags: list[float] = []
    stop = asyncio.Event()

    async def lag_probe():
        while not stop.is_set():
            t = loop.time()
            await asyncio.sleep(0.02)
            lags.append(max(0.0, loop.time() - t - 0.02))

    async def monitor_poll():
        while not stop.is_set():
            now = loop.time()
            for m in polls():
                m.poll(now)
                m.take_events()
            await asyncio.sleep(1.0)

    tasks = [asyncio.create_task(lag_probe()), asyncio.create_task(monitor_poll())]
    await asyncio.sleep(cfg["warmup_s"])
    meter = Meter(ports, count)
    lags.clear()
    a = meter.snap()
    await asyncio.sleep(cfg["window_s"])
    b = meter.snap()
    stop.set()
    for t in tasks:
        t.cancel()
    lags.sort()
    p99 = 1e3 * lags[int(0.99 * (len(lags) - 1))] if lags else None
    return Meter.result(a, b, vehicles_heard=heard(), lag_p99_ms=p99, lag_max_ms=1e3 * lags[-1] if lags else None)


async def _go() -> None:
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)


async def run_today(cfg: dict) -> dict:
    from groundctl.protocol import VehicleState
    from groundctl.runtime.link import MavLink

    loop = asyncio.get_running_loop()
    links = [await MavLink("udpin:127.0.0.1:0").open() for _ in range(cfg["links"])]
    ports = [link.local_port for link in links]
    monitors: list = []

    def subscriber(sysid):
        state = VehicleState(sysid, 1)
        mon = _new_monitor(state, loop)
        monitors.append(mon)
        upd, obs = state.update, mon.observe

        def on_msg(msg, now):
            obs(msg, upd(msg, now), now)
        return on_msg

    for li, link in enumerate(links):
        for sysid in range(1, cfg["per_link"][li] + 1):
            link.subscribe(sysid, subscriber(sysid))
    _emit({"ports": ports})
    await _go()
    res = await _measure(cfg, ports, lambda: sum(x.messages_in for x in links),
                         lambda: sum(1 for m in monitors if m.state.messages), lambda: monitors)
    for link in links:
        await link.close()
    return res


class _FastProto(asyncio.DatagramProtocol):
    """fastframe behind asyncio's own datagram transport: one callback per datagram."""

    def __init__(self, link: int, loop, on_new) -> None:
        from groundctl.protocol.fastframe import FrameParser

        self.link, self.loop, self.on_new = link, loop, on_new
        self.parser = FrameParser()
        self.vehicles: dict = {}

    def connection_made(self, transport) -> None:
        transport.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)

    def datagram_received(self, data: bytes, addr) -> None:
        now = self.loop.time()
        vehicles = self.vehicles
        for m in self.parser.parse(data):
            v = vehicles.get(m[1])
            if v is None:
                v = vehicles[m[1]] = self.on_new(m[1])
            state, obs = v
            obs(m, state.update(m, now), now)


async def run_fastframe(cfg: dict) -> dict:
    from groundctl.protocol import VehicleState

    loop = asyncio.get_running_loop()
    monitors: list = []

    def on_new(sysid):
        state = VehicleState(sysid, 1)
        mon = _new_monitor(state, loop)
        monitors.append(mon)
        return state, mon.observe

    protos, transports = [], []
    for li in range(cfg["links"]):
        tr, pr = await loop.create_datagram_endpoint(lambda li=li: _FastProto(li, loop, on_new),
                                                     local_addr=("127.0.0.1", 0))
        protos.append(pr)
        transports.append(tr)
    ports = [tr.get_extra_info("sockname")[1] for tr in transports]
    _emit({"ports": ports})
    await _go()
    res = await _measure(cfg, ports, lambda: sum(p.parser.frames for p in protos),
                         lambda: len(monitors), lambda: monitors)
    for tr in transports:
        tr.close()
    return res


async def run_fleet(cfg: dict) -> dict:
    from groundctl.runtime.fleet import FleetMonitor

    loop = asyncio.get_running_loop()
    monitors: list = []

    def on_vehicle(v):
        mon = _new_monitor(v.state, loop)
        monitors.append(mon)
        return mon.observe

    fleet = FleetMonitor([("127.0.0.1", 0)] * cfg["links"], on_vehicle=on_vehicle)
    await fleet.open()
    ports = fleet.ports
    _emit({"ports": ports})
    await _go()
    res = await _measure(cfg, ports, lambda: sum(p.frames for p in fleet.parsers), lambda: len(fleet.vehicles),
                         lambda: monitors)
    res["wakeups"], res["datagrams"] = fleet.wakeups, fleet.datagrams
    await fleet.close()
    return res


def main() -> None:
    global _SPEC
    cfg = json.loads(sys.argv[1])
    v = cfg["variant"]
    if v == "pymavlink":
        res = run_pymavlink(cfg)
    else:
        _SPEC = _flight_spec()
        fn = {"today": run_today, "fastframe": run_fastframe, "fastframe_uvloop": run_fastframe, "fleet": run_fleet,
              "fleet_uvloop": run_fleet}[v]
        if v.endswith("uvloop"):
            import uvloop

            with asyncio.Runner(loop_factory=uvloop.new_event_loop) as r:
                res = r.run(fn(cfg))
        else:
            res = asyncio.run(fn(cfg))
    res["variant"] = v
    _emit(res)


if __name__ == "__main__":
    if os.environ.get("GROUNDCTL_CAP_PROFILE"):  # a directory: one cProfile dump per variant
        import cProfile

        variant = json.loads(sys.argv[1])["variant"]
        cProfile.run("main()", os.path.join(os.environ["GROUNDCTL_CAP_PROFILE"], f"rx_{variant}.prof"))
    else:
        main()
