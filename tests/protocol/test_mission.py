import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from groundctl.core import mavcmd as C
from groundctl.core.mission import MissionItem
from groundctl.errors import TransferError
from groundctl.protocol import MissionClear, MissionDownload, MissionUpload, TransferProgress, verify
from groundctl.protocol.mission import item_to_message, message_to_item
from tests.protocol.fakes import GCS, M, FakeMissionEndpoint, roundtrip, run_machine, v

HUB = (-35.3632621, 149.1652374)


def mission(n_wp: int = 4) -> list[MissionItem]:
    items = [MissionItem(C.NAV_WAYPOINT, C.FRAME_GLOBAL, lat=HUB[0], lon=HUB[1], alt=584.0),
             MissionItem(C.NAV_TAKEOFF, C.FRAME_GLOBAL_RELATIVE_ALT_INT, alt=40.0),
             MissionItem(C.DO_CHANGE_SPEED, C.FRAME_MISSION, param1=1, param2=12, param3=-1)]
    for i in range(n_wp):
        items.append(MissionItem(C.NAV_WAYPOINT, C.FRAME_GLOBAL_RELATIVE_ALT_INT,
                                 lat=HUB[0] + 0.001 * (i + 1), lon=HUB[1] + 0.0007 * i, alt=40.0))
    items.append(MissionItem(C.NAV_PAYLOAD_PLACE, C.FRAME_GLOBAL_RELATIVE_ALT_INT, param1=50,
                             lat=HUB[0] + 0.006, lon=HUB[1] + 0.004, alt=40.0))
    items.append(MissionItem(C.NAV_LAND, C.FRAME_GLOBAL_RELATIVE_ALT_INT, lat=HUB[0], lon=HUB[1]))
    return items


def req(seq, mt=0, sysid=1, intmsg=False):
    cls = M.MAVLink_mission_request_int_message if intmsg else M.MAVLink_mission_request_message
    return v(cls(*GCS, seq, mt), sysid)


def ack(result, mt=0, sysid=1):
    return v(M.MAVLink_mission_ack_message(*GCS, result, mt), sysid)


# -- upload, scripted ------------------------------------------------------------------------------

def test_upload_scripted_ardupilot_conversation():
    items = mission(2)
    up = MissionUpload(1, 1, 0, items)
    out = up.poll(0.0)
    assert [m.get_type() for m in out] == ["MISSION_COUNT"]
    assert out[0].count == len(items) and out[0].mission_type == 0
    sent = []
    for seq in range(len(items)):
        # ArduPilot asks with MISSION_REQUEST (non-INT); answer with MISSION_ITEM_INT anyway
        up.receive(req(seq, intmsg=(seq == 3)), 0.1 * seq)
        got = up.poll(0.1 * seq)
        assert [m.get_type() for m in got] == ["MISSION_ITEM_INT"]
        sent.append(got[0])
    up.receive(ack(M.MAV_MISSION_ACCEPTED), 1.0)
    assert up.ok and up.result == len(items)
    wp = sent[3]
    assert (wp.x, wp.y) == (round(items[3].lat * 1e7), round(items[3].lon * 1e7))
    assert wp.frame == C.FRAME_GLOBAL_RELATIVE_ALT_INT and wp.current == 0 and wp.autocontinue == 1
    progress = [e for e in up.take_events() if isinstance(e, TransferProgress)]
    assert progress[-1].done == progress[-1].total == len(items)


def test_upload_ignores_other_system_and_other_mission_type():
    items = mission(1)
    up = MissionUpload(1, 1, C.MISSION_TYPE_FENCE, items)
    up.poll(0)
    up.receive(req(0, mt=C.MISSION_TYPE_MISSION), 0.1)          # another mission type
    up.receive(req(0, mt=C.MISSION_TYPE_FENCE, sysid=2), 0.1)   # another vehicle
    up.receive(ack(M.MAV_MISSION_NO_SPACE, mt=0), 0.1)          # ack for the mission, not the fence
    up.receive(ack(M.MAV_MISSION_ERROR, sysid=3, mt=1), 0.1)
    assert up.poll(0.2) == [] and not up.done


def test_upload_resends_count_until_first_request_then_waits():
    up = MissionUpload(1, 1, 0, mission(1), retry_s=1.5, timeout_s=15)
    assert len(up.poll(0.0)) == 1
    assert up.poll(1.0) == []
    assert [m.get_type() for m in up.poll(1.6)] == ["MISSION_COUNT"]
    assert up.deadline() == pytest.approx(3.1)
    up.receive(req(0), 2.0)
    assert len(up.poll(2.0)) == 1
    # after the first request the vehicle drives: nothing re-sent by us
    assert up.poll(5.0) == [] and up.poll(10.0) == []
    assert not up.done


def test_upload_invalid_sequence_does_not_end_the_transfer():
    items = mission(1)
    up = MissionUpload(1, 1, 0, items)
    up.poll(0)
    up.receive(req(0), 0.1)
    up.receive(ack(M.MAV_MISSION_INVALID_SEQUENCE), 0.2)
    assert not up.done
    for seq in range(1, len(items)):
        up.receive(req(seq), 0.3)
    up.receive(ack(M.MAV_MISSION_ACCEPTED), 0.4)
    assert up.ok


def test_upload_early_accepted_is_stale_and_ignored():
    items = mission(1)
    up = MissionUpload(1, 1, 0, items)
    up.poll(0)
    up.receive(ack(M.MAV_MISSION_ACCEPTED), 0.05)  # left over from a clear
    up.receive(req(0), 0.1)
    up.receive(ack(M.MAV_MISSION_ACCEPTED), 0.2)
    assert not up.done


def test_upload_no_space():
    up = MissionUpload(1, 1, 0, mission(3))
    veh = FakeMissionEndpoint(capacity=4)
    run_machine(up, veh)
    assert up.done and not up.ok
    assert isinstance(up.error, TransferError)
    assert "MAV_MISSION_NO_SPACE" in str(up.error) and "mission upload refused" in str(up.error)
    with pytest.raises(TransferError):
        up.unwrap()


def test_upload_vehicle_never_answers_times_out_with_clear_error():
    up = MissionUpload(1, 1, 2, mission(1), retry_s=1.5, timeout_s=15)
    t = 0.0
    while not up.done and t < 30:
        up.poll(t)
        t += 0.5
    assert up.done and "rally upload timed out" in str(up.error)
    assert "no request for an item after" in str(up.error) and t <= 15.6


def test_upload_lost_final_ack_says_so():
    items = mission(0)
    up = MissionUpload(1, 1, 0, items, timeout_s=5)
    up.poll(0)
    for seq in range(len(items)):
        up.receive(req(seq), 0.1)
    t = 0.1
    probes = 0
    while not up.done:
        probes += sum(m.get_type() == "MISSION_REQUEST_LIST" for m in up.poll(t))
        t += 0.5
    assert "all items sent but no MISSION_ACK" in str(up.error) and probes >= 2


def test_upload_lost_final_ack_recovered_by_asking_the_count():
    items = mission(1)
    up = MissionUpload(1, 1, 0, items, retry_s=1.5)
    up.poll(0)
    for seq in range(len(items)):
        up.receive(req(seq), 0.1)
    assert [m.get_type() for m in up.poll(0.1)] == ["MISSION_ITEM_INT"] * len(items)
    assert up.poll(1.0) == []
    assert [m.get_type() for m in up.poll(1.7)] == ["MISSION_REQUEST_LIST"]
    up.receive(ack(M.MAV_MISSION_DENIED), 1.8)  # still receiving on the vehicle's side: not an error
    assert not up.done
    up.receive(v(M.MAVLink_mission_count_message(*GCS, len(items), 0)), 1.9)
    assert up.ok and up.confirmed_by_count


def test_upload_lost_final_ack_and_wrong_count_fails():
    items = mission(1)
    up = MissionUpload(1, 1, 0, items, retry_s=1.5)
    up.poll(0)
    for seq in range(len(items)):
        up.receive(req(seq), 0.1)
    up.poll(2.0)
    up.receive(v(M.MAVLink_mission_count_message(*GCS, 3, 0)), 2.1)
    assert "vehicle holds 3 items, not" in str(up.error)


def test_upload_vehicle_cancels_then_starts_again_until_the_overall_deadline():
    items = mission(1)
    up = MissionUpload(1, 1, 0, items, base_s=20, per_item_s=1.0)
    assert up.overall_s == 20 + len(items)
    up.poll(0)
    up.receive(req(0), 0.1)
    up.poll(0.1)
    # ArduPilot gave up after 8 s without an item on a bad link: begin again with MISSION_COUNT
    up.receive(ack(M.MAV_MISSION_OPERATION_CANCELLED), 9)
    assert not up.done and up.restarts == 1
    assert [m.get_type() for m in up.poll(9)] == ["MISSION_COUNT"]
    ev = up.take_events()[-1]
    assert (ev.done, ev.restarts) == (0, 1)
    up.receive(req(0), 9.5)
    # past the overall deadline a cancel ends it, saying so
    up.receive(ack(M.MAV_MISSION_OPERATION_CANCELLED), up.overall_s + 1)
    assert "MAV_MISSION_OPERATION_CANCELLED" in str(up.error) and "after 1 of" in str(up.error)


def test_upload_silence_mid_transfer_restarts_and_overall_deadline_ends_it():
    items = mission(3)
    up = MissionUpload(1, 1, 0, items, timeout_s=10, base_s=20, per_item_s=1.0)
    up.poll(0)
    up.receive(req(0), 0.1)
    up.receive(req(1), 0.2)
    t, counts = 0.2, 0
    while not up.done:
        counts += sum(m.get_type() == "MISSION_COUNT" for m in up.poll(t))
        t = round(t + 0.5, 3)
    # the cancel was lost: silence past ArduPilot's 8 s means it dropped the upload, so start again
    assert up.restarts == 1 and counts >= 1
    # and a vehicle that then never answers the new count ends it within timeout_s more
    assert "no request for an item after" in str(up.error) and "1 restarts" in str(up.error), up.error
    assert "asked for 2 of 8 items" in str(up.error) and t <= 20.8


def test_upload_overall_deadline_scales_with_the_item_count():
    items = mission(3)
    up = MissionUpload(1, 1, 0, items, timeout_s=10, base_s=5, per_item_s=0.5)
    up.poll(0)
    t = 0.0
    seq = 0
    while not up.done:
        # a vehicle that keeps cancelling at item 2: progress, then a restart, forever
        up.receive(req(seq), t)
        seq += 1
        if seq == 3:
            up.receive(ack(M.MAV_MISSION_OPERATION_CANCELLED), t)
            seq = 0
        up.poll(t)
        t = round(t + 0.25, 3)
    assert up.restarts > 3
    assert "overall deadline of 9 s for 8 items" in str(up.error), up.error
    assert t <= 9 + 0.3


def test_upload_empty_list_accepted_at_once():
    up = MissionUpload(1, 1, 1, [])
    run_machine(up, FakeMissionEndpoint(mission_type=1))
    assert up.ok and up.result == 0


def test_upload_against_fake_ardupilot_then_download_and_verify():
    items = mission(5)
    veh = FakeMissionEndpoint()
    up = MissionUpload(1, 1, 0, items)
    run_machine(up, veh)
    assert up.ok
    assert veh.requests_sent == len(items)
    down = MissionDownload(1, 1, 0)
    run_machine(down, veh)
    got = down.unwrap()
    assert len(got) == len(items)
    assert got[4].lat == pytest.approx(items[4].lat, abs=1e-7)
    assert verify(items, got, 0) == []
    assert veh.acks[-1] == M.MAV_MISSION_ACCEPTED


# -- upload under loss, duplication and reordering (hypothesis) -----------------------------------

def _lossy(draw_plan):
    """A channel that drops, duplicates and delays per a pre-drawn list of decisions."""
    plan = list(draw_plan)

    def channel(msg, now):
        if not plan:
            return [(now, msg)]
        drop, dup, delay = plan.pop(0)
        if drop:
            return []
        out = [(now + delay, msg)]
        if dup:
            out.append((now + delay + 0.07, msg))
        return out
    return channel


decisions = st.lists(st.tuples(st.booleans().map(lambda b: b and True), st.booleans(),
                               st.sampled_from([0.0, 0.0, 0.05, 0.3, 0.9])), max_size=60)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(up_plan=decisions, down_plan=decisions, n_wp=st.integers(0, 8), ask_int=st.booleans())
def test_upload_survives_loss_duplicates_reordering(up_plan, down_plan, n_wp, ask_int):
    # keep loss below the point where ArduPilot itself would cancel: at most 1 in 3 dropped
    up_plan = [(d and i % 3 == 0, dup, dl) for i, (d, dup, dl) in enumerate(up_plan)]
    down_plan = [(d and i % 3 == 1, dup, dl) for i, (d, dup, dl) in enumerate(down_plan)]
    items = mission(n_wp)
    veh = FakeMissionEndpoint(ask_int=ask_int)
    up = MissionUpload(1, 1, 0, items)
    run_machine(up, veh, until=120, up=_lossy(up_plan), down=_lossy(down_plan))
    assert up.done
    if up.ok and not up.confirmed_by_count:
        # ACCEPTED only comes after the vehicle stored every item, in order
        assert [m.seq for m in veh.stored] == list(range(len(items)))
        assert [message_to_item(m).command for m in veh.stored] == [i.command for i in items]
    elif up.ok:
        assert len(veh.stored) == len(items)
    else:
        # the only acceptable failure is ArduPilot cancelling or the final ack lost: never a wrong list
        assert isinstance(up.error, TransferError)
        assert "OPERATION_CANCELLED" in str(up.error) or "no MISSION_ACK" in str(up.error)


# -- download --------------------------------------------------------------------------------------

def _stored(items, mt=0):
    return [item_to_message(it, i, *GCS, mt) for i, it in enumerate(items)]


def test_download_retries_same_seq_and_tolerates_duplicates_and_out_of_order():
    items = mission(2)
    stored = _stored(items)
    d = MissionDownload(1, 1, 0, retry_s=1.0, min_retry_s=1.0, window=1, max_window=1)
    assert [m.get_type() for m in d.poll(0)] == ["MISSION_REQUEST_LIST"]
    d.receive(v(M.MAVLink_mission_count_message(*GCS, len(items), 0)), 0.1)
    out = d.poll(0.1)
    assert [(m.get_type(), m.seq) for m in out] == [("MISSION_REQUEST_INT", 0)]
    assert d.poll(0.5) == []
    out = d.poll(1.2)  # lost: same seq again
    assert [(m.get_type(), m.seq) for m in out] == [("MISSION_REQUEST_INT", 0)]
    d.receive(v(stored[2]), 1.3)  # out of order: kept
    d.receive(v(stored[0]), 1.3)
    d.receive(v(stored[0]), 1.35)  # duplicate
    assert [m.seq for m in d.poll(1.4)] == [1]
    d.receive(v(stored[1]), 1.5)
    out = d.poll(1.5)
    assert [m.seq for m in out] == [3]  # 2 is already here
    for s in stored[3:]:
        d.receive(v(s), 1.6)
    out = d.poll(1.7)
    assert out[-1].get_type() == "MISSION_ACK" and out[-1].type == M.MAV_MISSION_ACCEPTED
    assert d.ok and len(d.result) == len(items)


def test_download_accepts_old_mission_item_float():
    d = MissionDownload(1, 1, 2)
    d.poll(0)
    d.receive(v(M.MAVLink_mission_count_message(*GCS, 1, 2)), 0.1)
    d.poll(0.1)
    d.receive(v(M.MAVLink_mission_item_message(*GCS, 0, 3, C.NAV_RALLY_POINT, 0, 1, 0, 0, 0, 0,
                                               -35.36, 149.17, 40.0, 2)), 0.2)
    d.poll(0.2)
    (it,) = d.unwrap()
    assert (it.lat, it.lon, it.alt) == (pytest.approx(-35.36), pytest.approx(149.17), 40.0)


def test_download_gives_up_naming_the_item():
    d = MissionDownload(1, 1, 0, retry_s=1, min_retry_s=1, stall_s=3)
    d.poll(0)
    d.receive(v(M.MAVLink_mission_count_message(*GCS, 5, 0)), 0.1)
    t = 0.1
    while not d.done:
        d.poll(t)
        t += 0.25
    assert "no item 0 of 5 after 3 tries (3 s without a new item; 0 received)" in str(d.error)


def test_download_no_count():
    d = MissionDownload(1, 1, 1, stall_s=2)
    t = 0.0
    while not d.done:
        d.poll(t)
        t += 0.5
    assert str(d.error) == "fence download: no MISSION_COUNT after 2 tries (2 s without a new item; 0 received)"


def test_download_empty_and_denied():
    d = MissionDownload(1, 1, 0)
    d.poll(0)
    d.receive(v(M.MAVLink_mission_count_message(*GCS, 0, 0)), 0.1)
    assert d.poll(0.1)[0].get_type() == "MISSION_ACK" and d.result == []
    d = MissionDownload(1, 1, 0)
    d.poll(0)
    d.receive(ack(M.MAV_MISSION_DENIED), 0.1)
    assert "MAV_MISSION_DENIED" in str(d.error)


def test_download_over_lossy_link():
    items = mission(6)
    veh = FakeMissionEndpoint(stored=_stored(items))
    drops = iter([True, False, False, True] * 50)
    d = MissionDownload(1, 1, 0)
    run_machine(d, veh, down=lambda m, now: [] if next(drops) else [(now, m), (now + 0.5, m)])
    assert d.ok and verify(items, d.result, 0) == []


def test_clear():
    veh = FakeMissionEndpoint(stored=_stored(mission(1)))
    c = MissionClear(1, 1, 0)
    run_machine(c, veh)
    assert c.ok and veh.stored == []
    c = MissionClear(1, 1, 0)
    c.poll(0)
    c.receive(ack(M.MAV_MISSION_ERROR), 0.1)
    assert "mission clear refused: MAV_MISSION_ERROR" in str(c.error)


# -- read-back differences -------------------------------------------------------------------------

def _readback(items, mt, fn):
    return [message_to_item(roundtrip(v(fn(item_to_message(it, i, *GCS, mt))), 1, 1)) for i, it in enumerate(items)]


def test_readback_differences_that_are_not_errors():
    items = mission(1)
    items[-1] = items[-1].with_(param4=-7.5)  # NAV_LAND yaw

    def as_ardupilot(m):
        m.frame = {C.FRAME_GLOBAL_RELATIVE_ALT_INT: C.FRAME_GLOBAL_RELATIVE_ALT}.get(m.frame, m.frame)
        if m.command == C.NAV_LAND:
            m.param4 = -1.0
        if m.seq == 0:  # home, rewritten by the vehicle
            m.x, m.y, m.z = m.x + 123, m.y - 77, 590.3
        return m
    assert verify(items, _readback(items, 0, as_ardupilot), 0) == []

    fence = [MissionItem(C.NAV_FENCE_POLYGON_VERTEX_INCLUSION, C.FRAME_GLOBAL_RELATIVE_ALT_INT, param1=3,
                         lat=HUB[0] + d, lon=HUB[1] + e, alt=120) for d, e in ((0, 0), (0.01, 0), (0, 0.01))]

    def fence_back(m):
        m.frame, m.z = 0, 0.0
        return m
    assert verify(fence, _readback(fence, 1, fence_back), 1) == []

    rally = [MissionItem(C.NAV_RALLY_POINT, C.FRAME_GLOBAL_RELATIVE_ALT_INT, lat=HUB[0], lon=HUB[1], alt=40.4)]

    def rally_back(m):
        m.frame, m.z = 3, float(round(m.z))
        return m
    assert verify(rally, _readback(rally, 2, rally_back), 2) == []


def test_readback_real_differences_are_reported():
    items = mission(1)

    def broken(m):
        if m.seq == 3:
            m.z = 60.0
        if m.seq == 4:
            m.param1 = 10.0
        if m.seq == 5:
            m.frame = C.FRAME_GLOBAL_TERRAIN_ALT
        return m
    got = _readback(items, 0, broken)
    problems = verify(items, got, 0)
    assert any("item 3" in p and "altitude 40 sent, 60 read back" in p for p in problems)
    assert any("item 4" in p and "param1 50 sent, 10 read back" in p for p in problems)
    assert any("item 5" in p and "frame" in p for p in problems)
    assert any("sent" in p and "read back" in p for p in verify(items, got[:-1], 0))


def test_item_message_survives_real_encoder():
    it = mission(1)[3]
    m = roundtrip(item_to_message(it, 3, 1, 1, 0))
    assert m.get_type() == "MISSION_ITEM_INT" and m.get_srcSystem() == 255
    back = message_to_item(m)
    assert math.isclose(back.lat, it.lat, abs_tol=1e-7) and back.command == it.command and back.frame == it.frame


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(down_plan=decisions, up_plan=decisions, n_wp=st.integers(0, 8))
def test_download_survives_loss_duplicates_reordering(down_plan, up_plan, n_wp):
    items = mission(n_wp)
    veh = FakeMissionEndpoint(stored=_stored(items))
    d = MissionDownload(1, 1, 0, retry_s=1.0)
    # at most one loss in two per direction
    up_plan = [(drop and i % 2 == 0, dup, delay) for i, (drop, dup, delay) in enumerate(up_plan)]
    down_plan = [(drop and i % 2 == 1, dup, delay) for i, (drop, dup, delay) in enumerate(down_plan)]
    run_machine(d, veh, until=200, up=_lossy(up_plan), down=_lossy(down_plan))
    assert d.ok, d.error
    assert verify(items, d.result, 0) == []
