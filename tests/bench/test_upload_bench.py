"""Mission upload benchmark, run on demand: `pytest -m bench -s tests/bench/test_upload_bench.py`.

Mission upload of 100 and 500 NAV_WAYPOINT items to the built-in simulator at speedup 1 over TCP, so
the vehicle's protocol timing is real: groundctl (`Vehicle.run(MissionUpload)`, and
`Vehicle.upload_verified` = upload + read-back + compare) against pymavlink's MAVWPLoader driven by a
plain `mavutil.mavlink_connection` loop the way MAVProxy's wp module does it (upload; and upload +
`wp list`-style read-back + compare), same simulator, same run. The same against ArduPilot SITL when
ARDUPILOT_SITL is set.

The machine this runs on is shared and its load changes by the second, so the runs are interleaved
(groundctl, peer, groundctl, peer, ...) and the ratio reported is the median of the paired ratios
(each groundctl run over the peer run right after it): load that drifts over the run cancels out
of each pair. The ratio of the medians is printed too.

Figures are printed as a table and written to /tmp/groundctl_upload_bench.json.
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.bench

OUT = Path("/tmp/groundctl_upload_bench.json")
HOME = (-35.3632, 149.1652)
REPS = int(os.environ.get("GROUNDCTL_BENCH_REPS", "7"))
SIZES = (100, 500)
RESULTS: dict = {}


@pytest.fixture(autouse=True)
def _only_on_demand(request):
    if "bench" not in (request.config.getoption("-m") or "") and os.environ.get("GROUNDCTL_BENCH") != "1":
        pytest.skip("benchmark: run with -m bench or GROUNDCTL_BENCH=1")


@pytest.fixture(scope="module", autouse=True)
def _write_json():
    yield
    if RESULTS:
        RESULTS["machine"] = {"cpus": os.cpu_count(), "python": sys.version.split()[0],
                              "loadavg": os.getloadavg()}
        OUT.write_text(json.dumps(RESULTS, indent=2, default=str))
        print(f"\nfigures written to {OUT}")


def _table(title: str, head: list[str], rows: list[list]) -> str:
    cells = [[str(c) for c in r] for r in [head, *rows]]
    w = [max(len(r[i]) for r in cells) for i in range(len(head))]
    line = "  ".join("-" * x for x in w)
    out = [f"\n{title}", "  ".join(h.ljust(w[i]) for i, h in enumerate(cells[0])), line]
    out += ["  ".join(c.rjust(w[i]) if i else c.ljust(w[i]) for i, c in enumerate(r)) for r in cells[1:]]
    return "\n".join(out)


def _mission(n: int):
    """n items: 0 = home (frame 0), then n-1 NAV_WAYPOINTs in frame 6 on a small grid near HOME, 60 m."""
    from groundctl.core import mavcmd as C
    from groundctl.core.mission import MissionItem

    items = [MissionItem(C.NAV_WAYPOINT, C.FRAME_GLOBAL, lat=HOME[0], lon=HOME[1], alt=584.0)]
    for i in range(1, n):
        items.append(MissionItem(C.NAV_WAYPOINT, C.FRAME_GLOBAL_RELATIVE_ALT_INT,
                                 lat=HOME[0] + (i // 25) * 2e-4, lon=HOME[1] + (i % 25) * 2e-4, alt=60.0))
    return items


class PeerMissionLink:
    """pymavlink the way MAVProxy's wp module uses it: MAVWPLoader + a mavutil connection, blocking reads."""

    def __init__(self, url: str, target_sys: int = 1, target_comp: int = 1) -> None:
        from pymavlink import mavutil

        self.mavutil = mavutil
        self.m = mavutil.mavlink_connection(url, source_system=255, source_component=190, autoreconnect=False)
        self.ts, self.tc = target_sys, target_comp
        hb = self.m.recv_match(type="HEARTBEAT", blocking=True, timeout=15)
        if hb is None:
            raise RuntimeError(f"pymavlink: no HEARTBEAT on {url}")
        self.m.target_system, self.m.target_component = target_sys, target_comp

    def close(self) -> None:
        self.m.close()

    def _drain(self) -> None:
        while self.m.recv_match(blocking=False) is not None:
            pass

    def loader(self, items):
        from pymavlink import mavwp

        mav = self.mavutil.mavlink
        wl = mavwp.MAVWPLoader(self.ts, self.tc)
        for seq, it in enumerate(items):
            wl.add(mav.MAVLink_mission_item_int_message(
                self.ts, self.tc, seq, it.frame, it.command, 0, it.autocontinue, it.param1, it.param2,
                it.param3, it.param4, round(it.lat * 1e7), round(it.lon * 1e7), it.alt, 0))
        return wl

    def upload(self, wl, timeout_s: float = 15.0) -> None:
        """MAVProxy wp: send MISSION_COUNT, answer each MISSION_REQUEST / _INT with wploader.wp(seq), end on the ACK."""
        mav = self.mavutil.mavlink
        self._drain()
        n = wl.count()
        self.m.waypoint_count_send(n)
        last = time.monotonic()
        requested = False
        sent_last = False
        while True:
            msg = self.m.recv_match(type=["MISSION_REQUEST", "MISSION_REQUEST_INT", "MISSION_ACK"],
                                    blocking=True, timeout=1.0)
            now = time.monotonic()
            if msg is None:
                if now - last > timeout_s:
                    raise RuntimeError("pymavlink upload timed out")
                if not requested:
                    self.m.waypoint_count_send(n)  # MAVProxy resends the count until the vehicle asks
                continue
            if msg.get_srcSystem() != self.ts or getattr(msg, "mission_type", 0) != 0:
                continue
            if msg.get_type() == "MISSION_ACK":
                if msg.type == mav.MAV_MISSION_ACCEPTED and sent_last:
                    return
                if msg.type in (mav.MAV_MISSION_ACCEPTED, mav.MAV_MISSION_INVALID_SEQUENCE):
                    continue
                raise RuntimeError(f"pymavlink upload refused: {msg.type}")
            if not 0 <= msg.seq < n:
                continue
            requested = True
            last = now
            wp = wl.wp(msg.seq)
            wp.target_system, wp.target_component = self.ts, self.tc
            self.m.mav.send(wp)
            sent_last = sent_last or msg.seq == n - 1

    def download(self, timeout_s: float = 15.0) -> list:
        """MAVProxy `wp list`: MISSION_REQUEST_LIST, then one MISSION_REQUEST_INT at a time, ACK at the end."""
        mav = self.mavutil.mavlink
        self._drain()
        self.m.mav.mission_request_list_send(self.ts, self.tc, 0)
        count, got, last = None, [], time.monotonic()
        while True:
            msg = self.m.recv_match(type=["MISSION_COUNT", "MISSION_ITEM_INT"], blocking=True, timeout=1.0)
            now = time.monotonic()
            if msg is None or msg.get_srcSystem() != self.ts:
                if now - last > timeout_s:
                    raise RuntimeError("pymavlink download timed out")
                if msg is None:  # resend what we wait for
                    if count is None:
                        self.m.mav.mission_request_list_send(self.ts, self.tc, 0)
                    else:
                        self.m.mav.mission_request_int_send(self.ts, self.tc, len(got), 0)
                continue
            if msg.get_type() == "MISSION_COUNT" and count is None:
                count = msg.count
            elif msg.get_type() == "MISSION_ITEM_INT" and count is not None and msg.seq == len(got):
                got.append(msg)
            else:
                continue
            last = now
            if count is not None and len(got) == count:
                self.m.mav.mission_ack_send(self.ts, self.tc, mav.MAV_MISSION_ACCEPTED, 0)
                return got
            self.m.mav.mission_request_int_send(self.ts, self.tc, len(got), 0)

    @staticmethod
    def compare(items, got) -> None:
        """What a MAVProxy user checks after `wp list`: count, command, position, altitude (home skipped)."""
        if len(got) != len(items):
            raise RuntimeError(f"read back {len(got)} items, sent {len(items)}")
        for it, m in zip(items[1:], got[1:]):
            if (m.command != it.command or abs(m.x - round(it.lat * 1e7)) > 1 or abs(m.y - round(it.lon * 1e7)) > 1
                    or abs(m.z - it.alt) > 0.01):
                raise RuntimeError(f"item {m.seq} differs")


async def _groundctl_link(url: str):
    from groundctl.runtime.link import MavLink
    from groundctl.runtime.vehicle import Vehicle

    link = await MavLink(url).open(timeout_s=30)
    v = Vehicle(link, 1)
    await v.wait_heartbeat(30)
    return link, v


async def _groundctl_upload(v, items) -> float:
    from groundctl.protocol import MissionUpload
    from groundctl.runtime.vehicle import GCS

    t0 = time.perf_counter()
    n = await v.run(MissionUpload(v.sysid, v.compid, 0, items, gcs=GCS))
    dt = time.perf_counter() - t0
    assert n == len(items)
    return dt


async def _groundctl_verified(v, items) -> float:
    t0 = time.perf_counter()
    got = await v.upload_verified(0, items)
    dt = time.perf_counter() - t0
    assert len(got) == len(items)
    return dt


def _peer_upload(peer, items) -> float:
    wl = peer.loader(items)  # building the loader is not timed, as MissionUpload's construction is not
    t0 = time.perf_counter()
    peer.upload(wl)
    return time.perf_counter() - t0


def _peer_verified(peer, items) -> float:
    wl = peer.loader(items)
    t0 = time.perf_counter()
    peer.upload(wl)
    peer.compare(items, peer.download())
    return time.perf_counter() - t0


async def _upload_runs(gc_url: str, peer_url: str) -> dict:
    """Interleaved: each repeat does groundctl upload, peer upload, groundctl verified, peer verified.
    The peer blocks the event loop while it runs, so groundctl is idle then (its link only buffers)."""
    link, v = await _groundctl_link(gc_url)
    # ArduPilot answers MISSION_COUNT with NO_SPACE until AP_Mission has initialised during boot:
    # wait for the vehicle to be ready, as a delivery does, before timing anything
    await v.request_streams()
    await v.wait_ready(120)
    peer = PeerMissionLink(peer_url)
    out: dict = {}
    try:
        await _groundctl_verified(v, _mission(SIZES[0]))  # warm-up: imports, first-use caches, both sides
        _peer_verified(peer, _mission(SIZES[0]))
        for n in SIZES:
            items = _mission(n)
            t = {"groundctl_upload": [], "pymavlink_upload": [], "groundctl_verified": [], "pymavlink_verified": []}
            for _ in range(REPS):
                t["groundctl_upload"].append(await _groundctl_upload(v, items))
                t["pymavlink_upload"].append(_peer_upload(peer, items))
                t["groundctl_verified"].append(await _groundctl_verified(v, items))
                t["pymavlink_verified"].append(_peer_verified(peer, items))
            med = {k: statistics.median(x) for k, x in t.items()}
            paired = {w: [a / b for a, b in zip(t[f"groundctl_{w}"], t[f"pymavlink_{w}"])]
                      for w in ("upload", "verified")}
            out[str(n)] = {
                "runs_s": t, "median_s": med, "paired_ratios": paired,
                "ratio_upload": statistics.median(paired["upload"]),
                "ratio_verified": statistics.median(paired["verified"]),
                "ratio_of_medians_upload": med["groundctl_upload"] / med["pymavlink_upload"],
                "ratio_of_medians_verified": med["groundctl_verified"] / med["pymavlink_verified"],
                "ms_per_item_upload": {k: 1e3 * med[k] / n for k in ("groundctl_upload", "pymavlink_upload")},
            }
    finally:
        peer.close()
        await link.close()
    return out


def _upload_table(target: str, res: dict) -> str:
    rows = []
    for n, r in res.items():
        m = r["median_s"]
        rows.append([n, "upload", f"{m['groundctl_upload']:.3f}", f"{m['pymavlink_upload']:.3f}",
                     f"{r['ratio_upload']:.2f}", f"{r['ratio_of_medians_upload']:.2f}",
                     f"{max(r['paired_ratios']['upload']):.2f}",
                     f"{r['ms_per_item_upload']['groundctl_upload']:.2f}",
                     f"{r['ms_per_item_upload']['pymavlink_upload']:.2f}"])
        rows.append([n, "upload+read-back", f"{m['groundctl_verified']:.3f}", f"{m['pymavlink_verified']:.3f}",
                     f"{r['ratio_verified']:.2f}", f"{r['ratio_of_medians_verified']:.2f}",
                     f"{max(r['paired_ratios']['verified']):.2f}", "", ""])
    return _table(f"Mission upload to {target}, {REPS} interleaved runs (median seconds; ratio = groundctl / "
                  f"pymavlink, < 1 is faster; paired = median of per-run ratios)",
                  ["items", "what", "groundctl s", "pymavlink s", "paired ratio", "ratio of medians",
                   "worst pair", "gc ms/item", "peer ms/item"], rows)


def test_mission_upload_sim():
    from sim.launch import start_sim

    h = start_sim(["--tcp", "127.0.0.1:0", "--speedup", "1"], timeout=30)
    try:
        url = h.urls[0]
        res = asyncio.run(_upload_runs(url, url))  # the sim's TCP port takes several clients
    finally:
        h.stop()
    RESULTS["mission_upload_sim"] = res
    print(_upload_table("the built-in simulator (speedup 1, TCP)", res))
    for r in res.values():
        assert r["ratio_upload"] < 10, "groundctl upload an order of magnitude slower than pymavlink"


def test_mission_upload_sitl():
    if not os.environ.get("ARDUPILOT_SITL"):
        RESULTS["mission_upload_sitl"] = {"skipped": "ARDUPILOT_SITL is not set (no arducopter SITL binary)"}
        print("\nMission upload to ArduPilot SITL: SKIPPED - ARDUPILOT_SITL is not set, so there is no arducopter "
              "SITL binary to start (groundctl/runtime/sitl.py start_sitl needs it)")
        pytest.skip("ARDUPILOT_SITL is not set")
    from groundctl.runtime.sitl import cleanup, start_sitl

    p = start_sitl(HOME[0], HOME[1], 584.0, 0.0, speedup=1)
    try:
        # the first port serves one client (groundctl); pymavlink takes the third (5762 + 10 x instance)
        host_port = p.url.rsplit(":", 1)
        peer_url = f"tcp:127.0.0.1:{int(host_port[1]) + 2}"
        res = asyncio.run(_upload_runs(p.url, peer_url))
    finally:
        cleanup(p)
    RESULTS["mission_upload_sitl"] = res
    print(_upload_table("ArduPilot SITL (speedup 1, TCP)", res))
