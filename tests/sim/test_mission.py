"""Mission, fence and rally transfers with ArduPilot's protocol quirks."""

import math
import time

from tests.sim.mav import HOME, M, MavClient, item, offset

FENCE = M.MAV_MISSION_TYPE_FENCE
RALLY = M.MAV_MISSION_TYPE_RALLY


def delivery_items():
    zlat, zlon = offset(HOME[0], HOME[1], 120, 40)
    return [
        item(0, M.MAV_CMD_NAV_WAYPOINT, M.MAV_FRAME_GLOBAL_INT, lat=HOME[0], lon=HOME[1], alt=0),
        item(1, M.MAV_CMD_NAV_TAKEOFF, alt=25.0),
        item(2, M.MAV_CMD_NAV_WAYPOINT, p1=3.7, lat=zlat, lon=zlon, alt=25.0),
        item(3, M.MAV_CMD_NAV_PAYLOAD_PLACE, p1=30.0, lat=zlat, lon=zlon, alt=0),
        item(4, M.MAV_CMD_DO_GRIPPER, M.MAV_FRAME_MISSION, p1=1, p2=0),
        item(5, M.MAV_CMD_DO_CHANGE_SPEED, M.MAV_FRAME_MISSION, p1=1, p2=7.5, p3=-1),
        item(6, M.MAV_CMD_NAV_WAYPOINT, M.MAV_FRAME_GLOBAL_TERRAIN_ALT_INT, lat=HOME[0], lon=HOME[1], alt=12.345),
        item(7, M.MAV_CMD_NAV_LAND, M.MAV_FRAME_GLOBAL_RELATIVE_ALT_INT, p4=7.0, lat=HOME[0], lon=HOME[1], alt=0),
    ]


def test_upload_is_driven_by_mission_request_and_reads_back_with_quirks(gcs):
    gcs.wait_ekf()
    items = delivery_items()
    gcs.send(M.MAVLink_mission_count_message(1, 1, len(items), 0))
    kinds = set()
    while True:
        m = gcs.recv(("MISSION_REQUEST", "MISSION_REQUEST_INT", "MISSION_ACK"), timeout=5)
        assert m is not None
        if m.get_type() == "MISSION_ACK":
            assert m.type == M.MAV_MISSION_ACCEPTED
            break
        kinds.add(m.get_type())
        gcs.send(items[m.seq])
    assert kinds == {"MISSION_REQUEST"}  # not _INT, even on MAVLink 2
    assert gcs.wait_text("Flight plan received", 2)
    back = gcs.download()
    assert len(back) == len(items)
    home = back[0]
    assert home.frame == M.MAV_FRAME_GLOBAL and home.command == 16
    assert (home.x, home.y) == (-353632610, 1491652300) and abs(home.z - 584.0) < 0.01
    assert back[1].frame == M.MAV_FRAME_GLOBAL_RELATIVE_ALT  # 6 -> 3
    assert back[2].param1 == 3.0  # WP hold time is whole seconds
    assert back[3].command == M.MAV_CMD_NAV_PAYLOAD_PLACE and abs(back[3].param1 - 30.0) < 1e-4
    assert (back[4].frame, back[4].param2) == (M.MAV_FRAME_GLOBAL, 0)  # DO items: frame 0
    assert back[5].param2 == 7.5
    assert back[6].frame == M.MAV_FRAME_GLOBAL_TERRAIN_ALT and abs(back[6].z - 12.34) < 1e-4  # cm truncation
    assert back[7].param4 == 1.0  # NAV_LAND param4 reduced to its sign
    cur = gcs.recv("MISSION_CURRENT", lambda m: m.total == 7, 5)
    assert cur.mission_state == M.MISSION_STATE_NOT_STARTED
    # float download path: MISSION_REQUEST answered with MISSION_ITEM in degrees
    back_f = gcs.download(use_int=False)
    assert abs(back_f[2].x - items[2].x * 1e-7) < 1e-5
    assert gcs.wait_text("got MISSION_REQUEST; use MISSION_REQUEST_INT!", 2)


def test_invalid_sequence_does_not_end_the_transfer(gcs):
    items = delivery_items()[:3]
    gcs.send(M.MAVLink_mission_count_message(1, 1, 3, 0))
    r = gcs.recv("MISSION_REQUEST", timeout=5)
    assert r.seq == 0
    gcs.send(items[2])  # wrong one
    ack = gcs.recv("MISSION_ACK", timeout=5)
    assert ack.type == M.MAV_MISSION_INVALID_SEQUENCE
    for i in range(3):
        r = gcs.recv("MISSION_REQUEST", lambda m, i=i: m.seq == i, 5)
        assert r is not None
        gcs.send(items[i])
    assert gcs.recv("MISSION_ACK", timeout=5).type == M.MAV_MISSION_ACCEPTED


def test_rerequest_every_second_and_cancel_after_eight(sim_factory):
    h = sim_factory("--speedup", "10", "--no-ekf-s", "1")
    c = MavClient(h.urls[0])
    c.recv("HEARTBEAT", timeout=5)
    c.send(M.MAVLink_mission_count_message(1, 1, 4, 0))
    t0 = time.monotonic()
    reqs = []
    ack = None
    while time.monotonic() - t0 < 6:
        m = c.recv(("MISSION_REQUEST", "MISSION_ACK"), timeout=2)
        if m is None:
            continue
        if m.get_type() == "MISSION_ACK":
            ack = m
            break
        reqs.append(time.monotonic() - t0)
    assert ack is not None and ack.type == M.MAV_MISSION_OPERATION_CANCELLED
    # at speedup 10: one request now, repeats ~0.1 s apart, cancel at ~0.8 s
    assert 6 <= len(reqs) <= 10  # counted in sim time, so load on the host does not matter
    assert 0.6 < time.monotonic() - t0 < 4.0
    assert c.wait_text("Mission upload timeout", 1)
    c.close()


def test_count_zero_clears_and_item_without_transfer_is_an_error(gcs):
    assert gcs.upload(delivery_items()) == M.MAV_MISSION_ACCEPTED
    gcs.send(M.MAVLink_mission_count_message(1, 1, 0, 0))
    assert gcs.recv("MISSION_ACK", timeout=5).type == M.MAV_MISSION_ACCEPTED
    assert gcs.download() == []
    gcs.send(delivery_items()[1])
    assert gcs.recv("MISSION_ACK", timeout=5).type == M.MAV_MISSION_ERROR
    assert gcs.upload(delivery_items()) == M.MAV_MISSION_ACCEPTED
    gcs.send(M.MAVLink_mission_clear_all_message(1, 1, 0))
    assert gcs.recv("MISSION_ACK", timeout=5).type == M.MAV_MISSION_ACCEPTED
    assert gcs.download() == []


def test_unsupported_command_aborts_upload(gcs):
    items = delivery_items()[:3]
    items[2] = item(2, 31010)  # a user command ArduPilot does not store
    assert gcs.upload(items) == M.MAV_MISSION_UNSUPPORTED
    items[2] = item(2, M.MAV_CMD_NAV_WAYPOINT, frame=M.MAV_FRAME_LOCAL_NED, lat=HOME[0], lon=HOME[1])
    assert gcs.upload(items) == M.MAV_MISSION_UNSUPPORTED_FRAME


def test_second_uploader_is_denied(sim):
    a, b = MavClient(sim.urls[0], sysid=255), MavClient(sim.urls[0], sysid=254)
    a.send(M.MAVLink_mission_count_message(1, 1, 3, 0))
    assert a.recv("MISSION_REQUEST", timeout=5)
    b.send(M.MAVLink_mission_count_message(1, 1, 2, 0))
    ack = b.recv("MISSION_ACK", timeout=5)
    assert ack.type == M.MAV_MISSION_DENIED
    b.send(M.MAVLink_mission_request_list_message(1, 1, 0))
    assert b.recv("MISSION_ACK", timeout=5).type == M.MAV_MISSION_DENIED
    # other mission types have their own protocol state
    b.send(M.MAVLink_mission_request_list_message(1, 1, RALLY))
    assert b.recv("MISSION_COUNT", timeout=5).count == 0
    a.close()
    b.close()


def fence_items(center, half=150.0):
    lat, lon = center
    pts = [offset(lat, lon, dn, de) for dn, de in ((-half, -half), (half, -half), (half, half), (-half, half))]
    out = [item(i, M.MAV_CMD_NAV_FENCE_POLYGON_VERTEX_INCLUSION, M.MAV_FRAME_GLOBAL_INT, p1=4,
                lat=p[0], lon=p[1], alt=55.0, mtype=FENCE) for i, p in enumerate(pts)]
    elat, elon = offset(lat, lon, 60, 60)
    out.append(item(4, M.MAV_CMD_NAV_FENCE_CIRCLE_EXCLUSION, M.MAV_FRAME_GLOBAL_INT, p1=12.5,
                    lat=elat, lon=elon, mtype=FENCE))
    out.append(item(5, M.MAV_CMD_NAV_FENCE_RETURN_POINT, M.MAV_FRAME_GLOBAL_RELATIVE_ALT_INT,
                    lat=lat, lon=lon, alt=20, mtype=FENCE))
    return out


def test_fence_and_rally_round_trip(gcs):
    gcs.wait_ekf()
    fence = fence_items(HOME[:2])
    assert gcs.upload(fence, FENCE) == M.MAV_MISSION_ACCEPTED
    back = gcs.download(FENCE)
    assert [b.command for b in back] == [f.command for f in fence]
    assert all(b.frame == 0 and b.z == 0 for b in back)  # no altitude on fence items
    assert back[0].param1 == 4 and back[4].param1 == 12.5
    assert [(b.x, b.y) for b in back] == [(f.x, f.y) for f in fence]
    rlat, rlon = offset(HOME[0], HOME[1], -80, 30)
    rally = [item(0, M.MAV_CMD_NAV_RALLY_POINT, p1=0, lat=rlat, lon=rlon, alt=27.8, mtype=RALLY)]
    assert gcs.upload(rally, RALLY) == M.MAV_MISSION_ACCEPTED
    back = gcs.download(RALLY)
    assert back[0].z == 27.0 and back[0].frame == M.MAV_FRAME_GLOBAL_RELATIVE_ALT  # whole metres
    m = gcs.set_param("RALLY_TOTAL", 1, M.MAV_PARAM_TYPE_INT8)
    assert m.param_value == 1


def test_bad_fence_is_rejected_whole(gcs):
    good = fence_items(HOME[:2])
    assert gcs.upload(good, FENCE) == M.MAV_MISSION_ACCEPTED
    bad = [item(i, M.MAV_CMD_NAV_FENCE_POLYGON_VERTEX_INCLUSION, M.MAV_FRAME_GLOBAL_INT, p1=2,
                lat=HOME[0] + i * 1e-4, lon=HOME[1], mtype=FENCE) for i in range(2)]
    assert gcs.upload(bad, FENCE) == M.MAV_MISSION_ERROR
    assert gcs.wait_text("Invalid vertex count (2)", 2)
    assert gcs.wait_text("Fence validation failed", 2)
    # fence uploads are atomic: the previous fence is still there
    assert len(gcs.download(FENCE)) == len(good)
    short = fence_items(HOME[:2])[:3]  # polygon of 4 announced, 3 sent
    assert gcs.upload(short, FENCE) == M.MAV_MISSION_ERROR
    assert gcs.wait_text("Incorrect item count", 2)


def test_mission_item_float_upload(gcs):
    items = delivery_items()[:3]
    floats = [M.MAVLink_mission_item_message(1, 1, it.seq, it.frame if it.frame != 6 else 3, it.command,
                                             0, 1, it.param1, it.param2, it.param3, it.param4,
                                             it.x * 1e-7, it.y * 1e-7, it.z, 0) for it in items]
    assert gcs.upload(floats) == M.MAV_MISSION_ACCEPTED
    back = gcs.download()
    # float32 degrees keep ~4e-6 deg: MISSION_ITEM loses up to ~40 units of 1e-7
    assert abs(back[2].x - items[2].x) <= 40 and math.isclose(back[2].z, 25.0)


def test_fence_transfer_needs_mavlink2(gcs):
    from pymavlink.dialects.v10 import ardupilotmega as m1
    mav1 = m1.MAVLink(None, srcSystem=255, srcComponent=190)
    # MAVLink 1 has no mission_type field: a fence count cannot even be expressed, so
    # send MISSION_REQUEST_LIST as v1 and check the mission (type 0) still works over v1
    gcs.sock.sendall(m1.MAVLink_mission_request_list_message(1, 1).pack(mav1))
    assert gcs.recv("MISSION_COUNT", timeout=5).mission_type == 0
