"""Fleet telemetry capacity, run on demand: `pytest -m bench -s tests/bench/test_capacity_bench.py`.

How many vehicles one monitoring process can watch on one core. Virtual ArduPilot copters
(tests/bench/_fleetgen.py: frames packed by pymavlink, sent over real UDP from other processes) feed
one receiver process (tests/bench/_capacity_rx.py) per variant; 250 system ids per link (socket), so
2500 vehicles are 10 links. Variants: a plain pymavlink loop (the peer, decode only), groundctl as it
was (`MavLink` + VehicleState + FlightMonitor), the fastframe decoder alone, the FleetMonitor (socket
drained per wake-up + fastframe) on asyncio and on uvloop.

The figure is CPU per message: the receiver's own process CPU time (getrusage) over the frames it
received in the window, not wall time, so a busy machine does not change it much and nothing fails
when the machine is busy. Projected vehicles per core = 1 s / (CPU per message x the mix's messages
per vehicle-second). The run-queue wait the receiver saw (/proc/thread-self/schedstat) and the
machine's CPU pressure (/proc/pressure/cpu) are reported beside it, with kernel socket drops and the
generators' achieved rate, so a starved run is visible rather than silent.

Env: GROUNDCTL_CAP_MIX (monitor10: the ladder's mix), GROUNDCTL_CAP_LADDER (250,1000,2500),
GROUNDCTL_CAP_VARIANTS, GROUNDCTL_CAP_COMPARE_MIXES (today6x10: every variant again at
GROUNDCTL_CAP_MIX_N=1000), GROUNDCTL_CAP_MIXES (all10,monitor: groundctl as it was and fleet_uvloop
at MIX_N), GROUNDCTL_CAP_WINDOW_S (6), GROUNDCTL_CAP_PER_MESSAGE_VARIANTS (fastframe,fleet: again at
MIX_N with one message per datagram instead of a vehicle's tick per datagram), GROUNDCTL_CAP_PROFILE
(a directory: cProfile dumps of the receivers), GROUNDCTL_CAP_REPEATS (1: runs of the ladder per N).
Figures: /tmp/groundctl_capacity_bench.json, rewritten after every row.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from tests.bench._fleetgen import MIXES_RATE

pytestmark = [pytest.mark.bench, pytest.mark.timeout(3600)]

ROOT = Path(__file__).resolve().parents[2]
OUT = Path("/tmp/groundctl_capacity_bench.json")
PER_LINK = 250
PER_GEN = 1000  # vehicles per generator process
LADDER = [int(x) for x in os.environ.get("GROUNDCTL_CAP_LADDER", "250,1000,2500").split(",")]
VARIANTS = os.environ.get("GROUNDCTL_CAP_VARIANTS",
                          "pymavlink,today,fastframe,fastframe_uvloop,fleet,fleet_uvloop").split(",")
# at MIX_N: every variant on these mixes, and the old and the new receiver on those
COMPARE_MIXES = [m for m in os.environ.get("GROUNDCTL_CAP_COMPARE_MIXES", "today6x10").split(",") if m]
MIXES = [m for m in os.environ.get("GROUNDCTL_CAP_MIXES", "all10,monitor").split(",") if m]
MIX_N = int(os.environ.get("GROUNDCTL_CAP_MIX_N", "1000"))
MIX_VARIANTS = ("today", "fleet_uvloop")
REPEATS = int(os.environ.get("GROUNDCTL_CAP_REPEATS", "1"))
WARMUP_S = 3.0
WINDOW_S = float(os.environ.get("GROUNDCTL_CAP_WINDOW_S", "6"))
# one message per datagram (as a router forwarding each message would send them): where draining counts
PER_MESSAGE_VARIANTS = [v for v in os.environ.get("GROUNDCTL_CAP_PER_MESSAGE_VARIANTS", "fastframe,fleet").split(",") if v]
HEADLINE_MIX = os.environ.get("GROUNDCTL_CAP_MIX", "monitor10")


def _table(title: str, head: list[str], rows: list[list]) -> str:
    cells = [[str(c) for c in r] for r in [head, *rows]]
    w = [max(len(r[i]) for r in cells) for i in range(len(head))]
    out = [f"\n{title}", "  ".join(h.ljust(w[i]) for i, h in enumerate(cells[0])), "  ".join("-" * x for x in w)]
    out += ["  ".join(c.rjust(w[i]) if i else c.ljust(w[i]) for i, c in enumerate(r)) for r in cells[1:]]
    return "\n".join(out)


def _env() -> dict:
    e = dict(os.environ)
    e["PYTHONPATH"] = str(ROOT) + (os.pathsep + e["PYTHONPATH"] if e.get("PYTHONPATH") else "")
    return e


def _line(proc: subprocess.Popen, what: str, timeout_s: float) -> str:
    """Next stdout line, or the process's stderr in the error."""
    import selectors

    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    if not sel.select(timeout_s):
        proc.kill()
        raise RuntimeError(f"{what}: nothing within {timeout_s:g} s; stderr: {_tail(proc)}")
    line = proc.stdout.readline()
    if not line:
        proc.wait()
        raise RuntimeError(f"{what} exited {proc.returncode}: {_tail(proc)}")
    return line


def _tail(proc: subprocess.Popen) -> str:
    f = proc.stderr or getattr(proc, "errfile", None)
    if f is None:
        return ""
    f.seek(0)
    return f.read()[-1500:]


def run_one(variant: str, n: int, mix: str, per_message: bool = False) -> dict:
    links = -(-n // PER_LINK)
    per_link = [min(PER_LINK, n - i * PER_LINK) for i in range(links)]
    rx_cfg = {"variant": variant, "links": links, "per_link": per_link, "warmup_s": WARMUP_S, "window_s": WINDOW_S}
    err = tempfile.TemporaryFile(mode="w+")  # a pipe nobody reads would block a receiver that logs
    rx = subprocess.Popen([sys.executable, "-m", "tests.bench._capacity_rx", json.dumps(rx_cfg)], cwd=ROOT,
                          env=_env(), stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err, text=True)
    rx.errfile = err
    gens: list[subprocess.Popen] = []
    try:
        ports = json.loads(_line(rx, f"receiver {variant}", 60))["ports"]
        per_gen_links = PER_GEN // PER_LINK
        for g in range(0, links, per_gen_links):
            cfg = {"ports": ports[g:g + per_gen_links], "per_link": per_link[g:g + per_gen_links], "mix": mix,
                   "duration_s": WARMUP_S + WINDOW_S + 2.0, "per_message": per_message}
            gens.append(subprocess.Popen([sys.executable, "-m", "tests.bench._fleetgen", json.dumps(cfg)], cwd=ROOT,
                                         env=_env(), stdout=subprocess.PIPE, stderr=err, text=True))
            gens[-1].errfile = err
        for g in gens:
            assert _line(g, "generator", 300).strip() == "READY"
        rx.stdin.write("go\n")
        rx.stdin.flush()
        res = json.loads(_line(rx, f"receiver {variant}", WARMUP_S + WINDOW_S + 60))
        gen = [json.loads(_line(g, "generator", WARMUP_S + WINDOW_S + 60)) for g in gens]
    finally:
        for p in (rx, *gens):
            try:
                p.wait(10)  # done after its last line (a profiled receiver writes its dump then)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
    wall = res["wall_s"]
    # what the generators sent inside the receiver's window (both read CLOCK_MONOTONIC)
    offered = sum(_sent_between(g["progress"], res["t0"], res["t1"]) for g in gen) / wall
    us = 1e6 * res["cpu_s"] / max(1, res["frames"])
    return dict(
        variant=variant, n=n, mix=mix, links=links, per_message=per_message,
        mix_msg_per_vehicle_s=MIXES_RATE[mix], offered_msg_s=offered,
        expected_msg_s=n * MIXES_RATE[mix], recv_msg_s=res["frames"] / wall,
        recv_ratio=(res["frames"] / wall) / offered if offered else 0.0,
        cpu_core=res["cpu_s"] / wall, us_per_msg=us,
        projected_vehicles_per_core=1e6 / (us * MIXES_RATE[mix]),
        runq_wait_per_s=res["runq_wait_s"] / wall, psi_some_per_s=res["psi_some_s"] / wall,
        socket_drops_s=res["socket_drops"] / wall, loadavg_1m=res["loadavg_1m"],
        lag_p99_ms=res.get("lag_p99_ms"), vehicles_heard=res["vehicles_heard"],
        datagrams_per_wakeup=(res["datagrams"] / res["wakeups"]) if res.get("wakeups") else None,
        generator_cpu_core=sum(g["cpu_s"] / g["wall_s"] for g in gen), generator_late_slots=sum(g["late_slots"] for g in gen),
        window_s=wall)


def _sent_between(progress: list, t0: float, t1: float) -> float:
    def at(t: float) -> float:
        prev = progress[0]
        for cur in progress:
            if cur[0] >= t:
                span = cur[0] - prev[0]
                return prev[1] + (cur[1] - prev[1]) * ((t - prev[0]) / span if span > 0 else 1.0)
            prev = cur
        return prev[1]
    return at(t1) - at(t0)


def _fmt(r: dict) -> list:
    lag = r["lag_p99_ms"]
    return [r["variant"], r["n"], r["mix"] + ("/msg" if r["per_message"] else ""), f"{r['offered_msg_s']:.0f}",
            f"{r['recv_msg_s']:.0f}", f"{100 * r['recv_ratio']:.1f}", f"{r['socket_drops_s']:.0f}", f"{r['cpu_core']:.2f}",
            f"{r['us_per_msg']:.2f}", f"{r['projected_vehicles_per_core']:.0f}",
            "-" if lag is None else f"{lag:.0f}", r["vehicles_heard"],
            "-" if r["datagrams_per_wakeup"] is None else f"{r['datagrams_per_wakeup']:.1f}",
            f"{r['runq_wait_per_s']:.2f}", f"{r['psi_some_per_s']:.2f}", f"{r['generator_cpu_core']:.2f}",
            f"{r['loadavg_1m']:.1f}"]


HEAD = ["variant", "N", "mix", "offered/s", "recv/s", "recv%", "drops/s", "rx core", "us/msg", "veh/core",
        "lag p99", "heard", "dgram/wake", "runq/s", "psi/s", "gen cores", "load1"]


def _save(rows: list, summary: dict | None = None) -> None:
    OUT.write_text(json.dumps({"rows": rows, "summary": summary, "machine": {
        "cpus": os.cpu_count(), "python": sys.version.split()[0],
        "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}}, indent=2))


def test_fleet_capacity():
    rows: list[dict] = []

    def run(*args) -> None:
        rows.append(run_one(*args))
        print("  ".join(map(str, _fmt(rows[-1]))), flush=True)
        _save(rows)

    print("\n" + "  ".join(HEAD))
    for n in LADDER:
        for _ in range(REPEATS):  # interleaved, so a burst of other load falls on every variant alike
            for v in VARIANTS:
                run(v, n, HEADLINE_MIX)
    for mix in COMPARE_MIXES:
        for v in VARIANTS:
            run(v, MIX_N, mix)
    for mix in MIXES:
        for v in MIX_VARIANTS:
            run(v, MIX_N, mix)
    for v in PER_MESSAGE_VARIANTS:
        run(v, MIX_N, HEADLINE_MIX, True)
    print(_table(f"Fleet telemetry capacity, one receiver process per row ({os.cpu_count()} CPUs shared with the "
                 f"generators and whatever else runs); one vehicle tick per datagram (mix/msg: one message per "
                 f"datagram); {WINDOW_S:g} s window", HEAD, [_fmt(r) for r in rows]))
    print("us/msg = receiver process CPU (user+sys) / frames received; veh/core = 1 s / (us/msg x mix msg per "
          f"vehicle-s) ({', '.join(f'{k} {v:g}' for k, v in MIXES_RATE.items())}); recv% = received / generators' "
          "offered rate in the window; runq/s = s per s the receiver was runnable but not running; psi/s = machine "
          "CPU pressure (some); dgram/wake = datagrams read per wake-up")
    summary: dict = {}
    for mix in dict.fromkeys(r["mix"] for r in rows):
        for v in VARIANTS + list(MIX_VARIANTS):
            mine = [r for r in rows if r["variant"] == v and r["mix"] == mix and not r["per_message"]]
            if mine and f"{v} {mix}" not in summary:
                summary[f"{v} {mix}"] = {
                    "variant": v, "mix": mix, "n": sorted({r["n"] for r in mine}), "runs": len(mine),
                    "us_per_msg_median": statistics.median(r["us_per_msg"] for r in mine),
                    "projected_vehicles_per_core_median": statistics.median(
                        r["projected_vehicles_per_core"] for r in mine),
                    "kept_up_at": [r["n"] for r in mine if r["recv_ratio"] >= 0.95 and r["vehicles_heard"] == r["n"]]}
    for s in summary.values():
        peer = summary.get(f"pymavlink {s['mix']}", {}).get("us_per_msg_median")
        s["ratio_to_pymavlink"] = s["us_per_msg_median"] / peer if peer else None
    print(_table("Summary: median over the N run; ratio = us/msg over the plain pymavlink loop's on the same mix in "
                 "the same run (< 1 is cheaper); kept up = received >= 95 % of what was sent and every vehicle heard "
                 "(wall-clock: depends on the machine's other load, see runq/s)",
                 ["variant", "mix", "msg/veh-s", "N", "us/msg", "veh/core", "ratio", "kept up at N"],
                 [[s["variant"], s["mix"], f"{MIXES_RATE[s['mix']]:g}", ",".join(map(str, s["n"])),
                   f"{s['us_per_msg_median']:.2f}", f"{s['projected_vehicles_per_core_median']:.0f}",
                   "-" if s["ratio_to_pymavlink"] is None else f"{s['ratio_to_pymavlink']:.2f}",
                   ",".join(map(str, s["kept_up_at"])) or "-"] for s in summary.values()]))
    _save(rows, summary)
    print(f"figures written to {OUT}")
    # a report, not a timed assertion: only that every receiver measured something
    assert all(r["recv_msg_s"] > 0 for r in rows), "a receiver received nothing"


def test_decode_path_cpu():
    """The per-message work without sockets or an event loop, replayed from memory and timed by process CPU
    (best of 5), so the split between decoding, vehicle state and monitor holds on a busy machine too."""
    import datetime
    import timeit

    from pymavlink.dialects.v20 import ardupilotmega as mavlink

    from groundctl.protocol import FlightMonitor, VehicleState
    from groundctl.protocol.fastframe import FrameParser
    from tests.bench._capacity_rx import _flight_spec
    from tests.bench._fleetgen import CYCLE, build

    spec = _flight_spec()
    out: dict = {}
    rows = []
    for mix in (HEADLINE_MIX, "all10"):
        table = build(mix, 50, False)
        dgrams = [d for tick in range(CYCLE) for ticks in table for d in ticks[tick]]
        frames = sum(len(mavlink.MAVLink(None).parse_buffer(d) or []) for d in dgrams)
        anchor = (0.0, datetime.datetime.now(datetime.timezone.utc))

        def monitors():
            states = {s: VehicleState(s, 1) for s in range(1, 51)}
            return {s: (st.update, FlightMonitor(spec, st, clock_anchor=anchor).observe) for s, st in states.items()}

        def pym_decode():
            p = mavlink.MAVLink(None)
            p.robust_parsing = True
            for d in dgrams:
                p.parse_buffer(d)

        def pym_full():
            p = mavlink.MAVLink(None)
            p.robust_parsing = True
            vs = monitors()
            for i, d in enumerate(dgrams):
                for m in p.parse_buffer(d) or ():
                    upd, obs = vs[m.get_srcSystem()]
                    obs(m, upd(m, i * 0.002), i * 0.002)

        def fast_decode():
            p = FrameParser()
            for d in dgrams:
                p.parse(d)

        def fast_full():
            p = FrameParser()
            vs = monitors()
            for i, d in enumerate(dgrams):
                for m in p.parse(d):
                    upd, obs = vs[m[1]]
                    obs(m, upd(m, i * 0.002), i * 0.002)

        res = {}
        for name, fn in (("pymavlink decode", pym_decode), ("pymavlink + state + monitor (today)", pym_full),
                         ("fastframe decode", fast_decode), ("fastframe + state + monitor", fast_full)):
            best = min(timeit.Timer(fn, timer=time.process_time).repeat(5, 1))
            res[name] = 1e6 * best / frames
        out[mix] = res
        for name, us in res.items():
            rows.append([mix, name, f"{us:.2f}", f"{res[name] / res['pymavlink decode']:.2f}",
                         f"{1e6 / (us * MIXES_RATE[mix]):.0f}"])
    print(_table("Per-message CPU without sockets (replayed datagrams of 50 vehicles, 2 s; process CPU, best of 5)",
                 ["mix", "path", "us/msg", "ratio to pymavlink decode", "veh/core (this part only)"], rows))
    data = json.loads(OUT.read_text()) if OUT.exists() else {}
    data["decode_path_us_per_msg"] = out
    OUT.write_text(json.dumps(data, indent=2))
    assert all(v > 0 for r in out.values() for v in r.values())
