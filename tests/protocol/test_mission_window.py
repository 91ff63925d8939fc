"""Read-back window: it widens on a clean link (so a long list is not one round trip per item) and
narrows when replies go missing (ArduPilot drops a reply its link has no room for)."""

from groundctl.protocol import MissionDownload, verify
from groundctl.protocol.mission import item_to_message
from tests.protocol.fakes import GCS, M, FakeMissionEndpoint, run_machine, v
from tests.protocol.test_mission_lossy import items_for


def _outstanding_after_count(d: MissionDownload, count: int) -> list[int]:
    d.poll(0.0)
    d.receive(v(M.MAVLink_mission_count_message(*GCS, count, 0)), 0.01)
    return [m.seq for m in d.poll(0.01)]


def test_window_widens_with_each_first_try_answer_up_to_its_cap():
    items = items_for(0, 200)
    stored = [item_to_message(it, i, *GCS, 0) for i, it in enumerate(items)]
    d = MissionDownload(1, 1, 0, window=4, max_window=16)
    assert _outstanding_after_count(d, 200) == [0, 1, 2, 3]
    d.receive(v(stored[0]), 0.02)
    # one answer: one slot freed and one more allowed, so two new requests
    assert [m.seq for m in d.poll(0.02)] == [4, 5]
    for s in range(1, 60):
        d.receive(v(stored[s]), 0.03)
        d.poll(0.03)
    assert d.window == 16 and len(d._out) == 16


def test_window_halves_when_requests_time_out_and_never_drops_below_the_start():
    items = items_for(0, 300)
    stored = [item_to_message(it, i, *GCS, 0) for i, it in enumerate(items)]
    d = MissionDownload(1, 1, 0, window=4, max_window=32, retry_s=1.0, min_retry_s=1.0)
    _outstanding_after_count(d, 300)
    t = 0.02
    for s in range(40):
        d.receive(v(stored[s]), t)
        d.poll(t)
    assert d.window == 32
    d.poll(t + 1.5)  # every outstanding request is late: the link lost them
    assert d.window == 16
    d.poll(t + 3.0)
    d.poll(t + 4.5)
    d.poll(t + 6.0)
    assert d.window == 4


def test_a_clean_read_back_sends_each_request_once_with_the_wider_window():
    items = items_for(0, 500)
    veh = FakeMissionEndpoint(stored=[item_to_message(it, i, *GCS, 0) for i, it in enumerate(items)])
    d = MissionDownload(1, 1, 0)
    run_machine(d, veh)
    assert d.ok and verify(items, d.result, 0) == []
    assert d.requests == 501 and d.window == d.max_window
