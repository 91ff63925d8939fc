"""Mission transfer of 500 items over a bad link, driven in simulated time against the scripted
ArduPilot endpoint: 20 % loss each way, duplicates and reordering, several seeds. What a user relies
on: the list arrives whole and in order, within the overall deadline the machine states."""

import random

import pytest

from groundctl.core import mavcmd as C
from groundctl.core.mission import MissionItem
from groundctl.protocol import MissionDownload, MissionUpload, TransferProgress, verify
from groundctl.protocol.mission import item_to_message, message_to_item
from tests.protocol.fakes import GCS, M, FakeMissionEndpoint, run_machine, v

HUB = (-35.3632621, 149.1652374)
N = 500


def items_for(mt: int, n: int = N) -> list[MissionItem]:
    if mt == C.MISSION_TYPE_MISSION:
        head = [MissionItem(C.NAV_WAYPOINT, C.FRAME_GLOBAL, lat=HUB[0], lon=HUB[1], alt=584.0)]
        return head + [MissionItem(C.NAV_WAYPOINT, C.FRAME_GLOBAL_RELATIVE_ALT_INT, lat=HUB[0] + (i // 25) * 2e-4,
                                   lon=HUB[1] + (i % 25) * 2e-4, alt=40.0 + i % 7) for i in range(n - 1)]
    cmd = C.NAV_FENCE_CIRCLE_EXCLUSION if mt == C.MISSION_TYPE_FENCE else C.NAV_RALLY_POINT
    return [MissionItem(cmd, C.FRAME_GLOBAL_RELATIVE_ALT_INT, param1=20.0 + i if mt == 1 else 0.0,
                        lat=HUB[0] + i * 1e-5, lon=HUB[1], alt=30.0 if mt == 2 else 0.0) for i in range(n)]


def bad_link(rng: random.Random, loss: float = 0.2, dup: float = 0.05, late: float = 0.1):
    """Drop with `loss`; otherwise deliver, now or (with `late`) up to 0.4 s later, so later packets
    overtake it; sometimes twice."""
    def channel(msg, now):
        if rng.random() < loss:
            return []
        at = now + (rng.uniform(0.05, 0.4) if rng.random() < late else 0.0)
        out = [(at, msg)]
        if rng.random() < dup:
            out.append((at + rng.uniform(0.0, 0.3), msg))
        return out
    return channel


@pytest.mark.parametrize("mt", [0, 1, 2], ids=["mission", "fence", "rally"])
@pytest.mark.parametrize("seed", range(3))
def test_500_items_up_and_back_at_20_percent_loss(mt, seed):
    rng = random.Random(1000 * mt + seed)
    items = items_for(mt)
    veh = FakeMissionEndpoint(mission_type=mt)
    up = MissionUpload(1, 1, mt, items)
    end = run_machine(up, veh, until=up.overall_s + 5, up=bad_link(rng), down=bad_link(rng))
    assert up.ok, up.error
    assert end <= up.overall_s
    assert verify(items, [message_to_item(m) for m in veh.stored], mt) == [] and len(veh.stored) == N
    events = [e for e in up.take_events() if isinstance(e, TransferProgress)]
    assert events[-1].done == N and events[-1].phase == "upload"

    down = MissionDownload(1, 1, mt)
    t_down = run_machine(down, veh, until=600, up=bad_link(rng), down=bad_link(rng))
    assert down.ok, down.error
    assert verify(items, down.result, mt) == []
    assert t_down <= down.overall_s
    got = [e.done for e in down.take_events() if isinstance(e, TransferProgress)]
    assert got == list(range(1, N + 1))  # each item counted once, however often it arrived


def test_download_keeps_retrying_one_item_while_the_rest_arrive():
    # item 7's answer is lost 12 times in a row: far more than any fixed try count would allow,
    # yet the transfer moves on around it and finishes
    items = items_for(2, 40)
    veh = FakeMissionEndpoint(mission_type=2, stored=[item_to_message(it, i, *GCS, 2) for i, it in enumerate(items)])
    lost = {"n": 0}

    def down(msg, now):
        if msg.get_type() == "MISSION_ITEM_INT" and msg.seq == 7 and lost["n"] < 12:
            lost["n"] += 1
            return []
        return [(now, msg)]
    d = MissionDownload(1, 1, 2, retry_s=1.0, min_retry_s=0.1, window=4)
    run_machine(d, veh, until=60, down=down)
    assert d.ok, d.error
    assert lost["n"] == 12 and verify(items, d.result, 2) == []


def test_download_stops_at_its_overall_deadline_and_says_so():
    # a vehicle that answers just often enough never to stall, but too slowly to finish
    items = items_for(0, 50)
    veh = FakeMissionEndpoint(stored=[item_to_message(it, i, *GCS, 0) for i, it in enumerate(items)])
    rng = random.Random(3)
    d = MissionDownload(1, 1, 0, base_s=2.0, per_item_s=0.1, stall_s=5.0)
    run_machine(d, veh, until=60,
                down=lambda m, now: [] if m.get_type() == "MISSION_ITEM_INT" and rng.random() < 0.9 else [(now, m)])
    assert d.done and not d.ok
    assert "mission download not done within its overall deadline of 7 s for 50 items" in str(d.error), d.error


def test_download_pipelines_requests_on_a_clean_link():
    items = items_for(0, 100)
    veh = FakeMissionEndpoint(stored=[item_to_message(it, i, *GCS, 0) for i, it in enumerate(items)])
    d = MissionDownload(1, 1, 0, window=4)
    first = d.poll(0.0)
    d.receive(v(M.MAVLink_mission_count_message(*GCS, 100, 0)), 0.01)
    reqs = [m.seq for m in d.poll(0.01)]
    assert [m.get_type() for m in first] == ["MISSION_REQUEST_LIST"] and reqs == [0, 1, 2, 3]
    d = MissionDownload(1, 1, 0, window=4)
    run_machine(d, veh)
    assert d.ok and d.requests == 101  # one list request, one request per item: nothing re-sent
