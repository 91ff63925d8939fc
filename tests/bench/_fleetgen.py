"""Virtual ArduPilot copters for the capacity bench: many vehicles' telemetry over real UDP, one process.

`python -m tests.bench._fleetgen CONFIG_JSON` sends, for each link (a receiver's UDP port), system ids
1..per_link from one socket, for `duration_s` once it prints `READY`, then prints its counters as JSON.

Frames are packed by pymavlink beforehand (a cycle of 20 ticks of 100 ms per system id: seq, position
and attitude move on), so this process can feed thousands of vehicles on a shared machine; every
link's system id k sends the same bytes. Vehicles are spread evenly over each 100 ms tick, not sent in
lock-step. A vehicle's tick goes out as one datagram (ArduPilot's UDP ports write what its MAVLink
buffer holds: several messages per datagram), or one datagram per message with `"per_message": true`.
Does not import groundctl: the receiver under test is checked against what pymavlink wrote.

Mixes (messages per vehicle-second in MIXES_RATE):
- today6x10: the six streams the old capacity bench used, 10 Hz each, + HEARTBEAT 1 Hz.
- all10: what an ArduPilot copter sends a GCS that asked REQUEST_DATA_STREAM(ALL, 10 Hz): every
  message of the stream groups in GCS_MAVLink_Parameters.cpp a SITL copter emits, 10 Hz + HEARTBEAT.
- monitor10: every message the monitor reads, position, attitude and VFR_HUD at 10 Hz, the rest at the
  delivery's rates (FleetMonitor(streams=FLEET_STREAMS_10HZ)).
- monitor: only what groundctl's monitor reads, at the rates FleetMonitor asks for (FLEET_STREAMS).
"""

from __future__ import annotations

import json
import math
import os
import pickle
import random
import socket
import sys
import time

os.environ["MAVLINK20"] = "1"
from pymavlink.dialects.v20 import ardupilotmega as M  # noqa: E402

HOME = (-35.3632, 149.1652)
TICK_S = 0.1
CYCLE = 20  # ticks: 2 s, so 0.5 Hz streams fit
SLOTS = 20  # sends spread over each tick

MIXES: dict[str, dict[str, float]] = {
    "today6x10": {**{n: 10.0 for n in ("GLOBAL_POSITION_INT", "ATTITUDE", "VFR_HUD", "SYS_STATUS", "BATTERY_STATUS",
                                        "MISSION_CURRENT")}, "HEARTBEAT": 1.0},
    "all10": {**{n: 10.0 for n in (
        "RAW_IMU", "SCALED_IMU2", "SCALED_IMU3", "SCALED_PRESSURE", "SCALED_PRESSURE2",  # RAW_SENSORS
        "SYS_STATUS", "POWER_STATUS", "MEMINFO", "MISSION_CURRENT", "GPS_RAW_INT", "NAV_CONTROLLER_OUTPUT",
        "FENCE_STATUS", "POSITION_TARGET_GLOBAL_INT",  # EXTENDED_STATUS
        "GLOBAL_POSITION_INT", "LOCAL_POSITION_NED",  # POSITION
        "SERVO_OUTPUT_RAW", "RC_CHANNELS",  # RC_CHANNELS
        "ATTITUDE", "SIMSTATE", "AHRS2",  # EXTRA1
        "VFR_HUD",  # EXTRA2
        "AHRS", "WIND", "SYSTEM_TIME", "TERRAIN_REPORT", "BATTERY_STATUS", "EKF_STATUS_REPORT", "VIBRATION",  # EXTRA3
    )}, "HEARTBEAT": 1.0},
    "monitor10": {"GLOBAL_POSITION_INT": 10, "ATTITUDE": 10, "VFR_HUD": 10, "SYS_STATUS": 2, "BATTERY_STATUS": 1,
                  "MISSION_CURRENT": 2, "EKF_STATUS_REPORT": 1, "GPS_RAW_INT": 1, "FENCE_STATUS": 1,
                  "HOME_POSITION": 0.5, "WIND": 1, "SERVO_OUTPUT_RAW": 2, "HEARTBEAT": 1.0},
    "monitor": {"GLOBAL_POSITION_INT": 4, "SYS_STATUS": 2, "BATTERY_STATUS": 1, "VFR_HUD": 4, "MISSION_CURRENT": 2,
                "EKF_STATUS_REPORT": 1, "GPS_RAW_INT": 1, "ATTITUDE": 2, "FENCE_STATUS": 1, "HOME_POSITION": 0.5,
                "WIND": 1, "SERVO_OUTPUT_RAW": 2, "HEARTBEAT": 1.0},
}
MIXES_RATE = {k: sum(v.values()) for k, v in MIXES.items()}
_RANGE = {"int8_t": (-128, 127), "uint8_t": (0, 255), "int16_t": (-32768, 32767), "uint16_t": (0, 65535),
          "int32_t": (-2**31, 2**31 - 1), "uint32_t": (0, 2**32 - 1), "int64_t": (-2**63, 2**63 - 1),
          "uint64_t": (0, 2**64 - 1), "uint8_t_mavlink_version": (3, 3)}


def _random_args(cls, rnd: random.Random) -> list:
    """Every field non-trivial, so payloads have their real length (MAVLink 2 truncates zeros)."""
    length = dict(zip(cls.ordered_fieldnames, cls.array_lengths))
    args = []
    for name, t in zip(cls.fieldnames, cls.fieldtypes):
        def one():
            if t in ("float", "double"):
                return rnd.uniform(-100, 100)
            lo, hi = _RANGE[t]
            return rnd.randint(max(lo, 0), min(hi, 30000))
        n = length[name]
        args.append(b"x" * n if t == "char" else [one() for _ in range(n)] if n else one())
    return args


def _message(name: str, sysid: int, tick: int, rnd: random.Random):
    """A plausible copter on a delivery: armed in AUTO, circling 60 m above the hub."""
    t_ms = 600_000 + tick * 100
    a = 2 * math.pi * (tick / CYCLE + sysid / 250)
    lat, lon = HOME[0] + 0.002 * math.sin(a), HOME[1] + 0.002 * math.cos(a)
    if name == "HEARTBEAT":
        return M.MAVLink_heartbeat_message(M.MAV_TYPE_QUADROTOR, M.MAV_AUTOPILOT_ARDUPILOTMEGA, 217, 3,
                                           M.MAV_STATE_ACTIVE, 3)
    if name == "GLOBAL_POSITION_INT":
        return M.MAVLink_global_position_int_message(t_ms, round(lat * 1e7), round(lon * 1e7), 644_000, 60_000,
                                                     round(900 * math.cos(a)), round(-900 * math.sin(a)), -5,
                                                     round(math.degrees(a) * 100) % 36000)
    if name == "ATTITUDE":
        return M.MAVLink_attitude_message(t_ms, 0.02, -0.05, a % (2 * math.pi) - math.pi, 0.01, 0.01, 0.1)
    if name == "VFR_HUD":
        return M.MAVLink_vfr_hud_message(9.1, 9.0, round(math.degrees(a)) % 360, 47, 644.0, -0.05)
    if name == "SYS_STATUS":
        s = 0x1 | 0x2 | 0x4 | 0x8 | 0x20 | 0x10000000
        return M.MAVLink_sys_status_message(s, s, s, 450, 15_400, 2_150, 81, 0, 0, 0, 0, 0, 0)
    if name == "BATTERY_STATUS":
        return M.MAVLink_battery_status_message(0, 0, 1, 3200, [3850] * 4 + [65535] * 6, 2_150, 1_500 + tick,
                                                810 + tick, 81, 1_500, 1, [0] * 4, 0, 0)
    if name == "MISSION_CURRENT":
        return M.MAVLink_mission_current_message(2, 6, 2, 0)
    if name == "GPS_RAW_INT":
        return M.MAVLink_gps_raw_int_message(t_ms * 1000, 3, round(lat * 1e7), round(lon * 1e7), 644_000, 80, 120,
                                             910, 9000, 14)
    if name == "EKF_STATUS_REPORT":
        return M.MAVLink_ekf_status_report_message(0x3FF, 0.1, 0.1, 0.1, 0.1, 0.0)
    if name == "FENCE_STATUS":
        return M.MAVLink_fence_status_message(0, 0, 0, 0)
    if name == "HOME_POSITION":
        return M.MAVLink_home_position_message(round(HOME[0] * 1e7), round(HOME[1] * 1e7), 584_000, 0, 0, 0,
                                               [1, 0, 0, 0], 0, 0, 0)
    if name == "WIND":
        return M.MAVLink_wind_message(225.0, 4.2, 0.1)
    if name == "SERVO_OUTPUT_RAW":
        return M.MAVLink_servo_output_raw_message(t_ms * 1000, 0, *([1550] * 4 + [1100] * 4), *([0] * 8))
    if name == "SYSTEM_TIME":
        return M.MAVLink_system_time_message(1_764_460_800_000_000 + t_ms * 1000, t_ms)
    cls = M.mavlink_map[getattr(M, "MAVLINK_MSG_ID_" + name)]
    return cls(*_random_args(cls, rnd))


def build(mix: str, per_link: int, per_message: bool) -> list[list[list[bytes]]]:
    """[sysid-1][tick] -> datagrams of that vehicle's tick."""
    rates = MIXES[mix]
    out = []
    for sysid in range(1, per_link + 1):
        mav = M.MAVLink(None, srcSystem=sysid, srcComponent=1)
        rnd = random.Random(sysid)
        ticks = []
        for tick in range(CYCLE):
            frames = []
            for name, hz in rates.items():
                # on ticks where the stream's count crosses an integer: hz * CYCLE * TICK_S per cycle
                if math.floor((tick + 1) * hz * TICK_S) > math.floor(tick * hz * TICK_S):
                    frames.append(_message(name, sysid, tick, rnd).pack(mav))
                    mav.seq = (mav.seq + 1) % 256
            ticks.append(frames if per_message else [b"".join(frames)])
        out.append(ticks)
    return out


def _cached_build(mix: str, n: int, per_message: bool):
    """pymavlink packs ~10k frames a second: keep the all10 table (140k frames) between runs."""
    stamp = int(os.path.getmtime(__file__))  # a changed generator builds afresh
    path = f"/tmp/groundctl_fleetgen_{mix}_{n}_{int(per_message)}_{stamp}.pickle"
    try:
        with open(path, "rb") as f:
            return pickle.load(f)
    except (OSError, pickle.PickleError, EOFError):
        table = build(mix, n, per_message)
        tmp = f"{path}.{os.getpid()}"
        with open(tmp, "wb") as f:
            pickle.dump(table, f)
        os.replace(tmp, path)
        return table


def main() -> None:
    cfg = json.loads(sys.argv[1])
    links = [(cfg.get("host", "127.0.0.1"), p) for p in cfg["ports"]]
    per_link, duration = cfg["per_link"], cfg["duration_s"]
    table = _cached_build(cfg["mix"], max(per_link), cfg.get("per_message", False))
    socks = []
    for _ in links:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
        socks.append(s)
    # (socket, address, that vehicle's [tick][datagrams]) spread over SLOTS per tick
    vehicles = [(socks[li], links[li], table[k]) for li in range(len(links)) for k in range(per_link[li])]
    slots = [vehicles[i::SLOTS] for i in range(SLOTS)]
    print("READY", flush=True)
    msgs = dgrams = errors = late = 0
    n_msg_tick = [[_n_frames(d) for d in ticks] for ticks in table]  # [sysid-1][tick] -> frames
    t0 = time.monotonic()
    end = t0 + duration
    progress = [(t0, 0)]  # (monotonic s, frames sent so far): the bench reads what fell in its window
    tick = 0
    while True:
        base = t0 + tick * TICK_S
        if base >= end:
            break
        c = tick % CYCLE
        for si, group in enumerate(slots):
            delay = base + si * (TICK_S / SLOTS) - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            elif delay < -TICK_S:
                late += 1
            for sock, addr, ticks in group:
                for d in ticks[c]:
                    try:
                        sock.sendto(d, addr)
                        dgrams += 1
                    except OSError:
                        errors += 1
        for li in range(len(links)):
            for k in range(per_link[li]):
                msgs += n_msg_tick[k][c]
        progress.append((time.monotonic(), msgs))
        tick += 1
    wall = time.monotonic() - t0
    cpu = time.process_time()
    print(json.dumps({"msgs": msgs, "datagrams": dgrams, "errors": errors, "wall_s": wall, "late_slots": late,
                      "msg_per_s": msgs / wall, "cpu_s": cpu, "vehicles": len(vehicles),
                      "progress": progress}), flush=True)


def _n_frames(datagrams: list[bytes]) -> int:
    """Frames in one vehicle-tick's datagrams, by walking the headers pymavlink wrote."""
    n = 0
    for d in datagrams:
        i = 0
        while i < len(d):
            ln = d[i + 1]
            i += (12 + ln + (13 if d[i + 2] & 1 else 0)) if d[i] == 0xFD else 8 + ln
            n += 1
    return n


if __name__ == "__main__":
    main()
