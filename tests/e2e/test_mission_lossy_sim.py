"""Mission, fence and rally uploaded and read back over real TCP to the built-in simulator dropping
20 % of packets each way (`--loss 0.2`: the vehicle drops what it receives and what it sends).
Judged by outcome: every transfer verified on its first attempt, within the deadline the machines
state. Two seeds here; ten with `-m slow` or GROUNDCTL_SLOW=1.

The mission is 500 items. Fence and rally go to the simulator's capacity (ArduPilot's: 84 fence
items, 20 rally points; a larger list is refused with NO_SPACE); 500 of each over the same kind
of link are in tests/protocol/test_mission_lossy.py against the scripted endpoint.
"""

import asyncio
import os
import time

import pytest

from groundctl.core import mavcmd as C
from groundctl.core.mission import MissionItem
from groundctl.protocol import TransferProgress
from groundctl.runtime.link import MavLink
from groundctl.runtime.vehicle import Vehicle
from sim.launch import start_sim

HOME = (-35.3632621, 149.1652374)


def lists() -> dict[int, list[MissionItem]]:
    mission = [MissionItem(C.NAV_WAYPOINT, C.FRAME_GLOBAL, lat=HOME[0], lon=HOME[1], alt=584.0)]
    mission += [MissionItem(C.NAV_WAYPOINT, C.FRAME_GLOBAL_RELATIVE_ALT_INT, lat=HOME[0] + (i // 25) * 2e-4,
                            lon=HOME[1] + (i % 25) * 2e-4, alt=40.0 + i % 7) for i in range(499)]
    fence = [MissionItem(C.NAV_FENCE_CIRCLE_EXCLUSION, C.FRAME_GLOBAL, param1=10.0 + i % 5,
                         lat=HOME[0] + 0.002 + (i // 10) * 5e-4, lon=HOME[1] + (i % 10) * 5e-4) for i in range(84)]
    rally = [MissionItem(C.NAV_RALLY_POINT, C.FRAME_GLOBAL_RELATIVE_ALT_INT, lat=HOME[0] + i * 1e-4,
                         lon=HOME[1] - 1e-3, alt=30.0 + i) for i in range(20)]
    return {C.MISSION_TYPE_MISSION: mission, C.MISSION_TYPE_FENCE: fence, C.MISSION_TYPE_RALLY: rally}


async def _transfer_all(url: str) -> dict:
    out: dict = {}
    async with MavLink(url) as link:
        v = Vehicle(link, 1)
        try:
            await v.wait_heartbeat(30)
            for mt, items in lists().items():
                seen: list[TransferProgress] = []
                t0 = time.perf_counter()
                # attempts=1: the machines themselves must get through, not a retry of the whole list
                got = await v.upload_verified(mt, items, attempts=1, on_progress=seen.append)
                out[mt] = {"s": time.perf_counter() - t0, "n": len(got),
                           "restarts": max((p.restarts for p in seen), default=0),
                           "phases": {p.phase for p in seen}, "last": seen[-1]}
        finally:
            v.close()
    return out


def _run_seed(seed: int) -> dict:
    with start_sim(["--loss", "0.2", "--seed", str(seed), "--speedup", "20", "--home",
                    f"{HOME[0]},{HOME[1]},584,0"], timeout=30) as (_, urls):
        res = asyncio.run(asyncio.wait_for(_transfer_all(urls[0]), 900))
    sizes = {mt: len(items) for mt, items in lists().items()}
    for mt, r in res.items():
        assert r["n"] == sizes[mt]
        assert r["phases"] == {"upload", "download"}
        assert (r["last"].phase, r["last"].done, r["last"].total) == ("download", sizes[mt], sizes[mt])
    print(f"\nseed {seed}: " + ", ".join(f"{['mission', 'fence', 'rally'][mt]} {r['n']} items {r['s']:.1f} s"
                                        f" ({r['restarts']} restarts)" for mt, r in res.items()))
    return res


@pytest.mark.parametrize("seed", [1, 2])
@pytest.mark.timeout(600)
def test_lossy_upload_and_read_back(seed):
    _run_seed(seed)


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_lossy_upload_and_read_back_ten_seeds(request):
    # ~6 minutes: not in every CI run (the `slow` marker alone does not deselect it)
    if "slow" not in (request.config.getoption("-m") or "") and os.environ.get("GROUNDCTL_SLOW") != "1":
        pytest.skip("ten seeds of 500-item lossy transfers: run with -m slow or GROUNDCTL_SLOW=1")
    ok, times = 0, []
    failures = []
    for seed in range(101, 111):
        try:
            res = _run_seed(seed)
        except Exception as e:  # noqa: BLE001 - counted and reported, then the test fails
            failures.append(f"seed {seed}: {e}")
            continue
        ok += 1
        times.append(sum(r["s"] for r in res.values()))
    print(f"\n{ok}/10 seeds verified; total seconds per seed: {[round(t, 1) for t in times]}")
    assert ok == 10, failures
