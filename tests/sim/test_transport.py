"""UDP transports, several TCP clients, packet loss."""

import socket
import time

from pymavlink.dialects.v20 import ardupilotmega as M

from sim.launch import start_sim
from tests.sim.mav import MavClient


def udp_recv(sock, mav, mtype, timeout=5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        sock.settimeout(0.1)
        try:
            data, addr = sock.recvfrom(65536)
        except socket.timeout:
            continue
        for m in mav.parse_buffer(data) or []:
            if m.get_type() == mtype:
                return m, addr
    return None, None


def test_udp_out_reaches_a_listening_gcs_and_answers_it():
    gcs = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    gcs.bind(("127.0.0.1", 0))
    port = gcs.getsockname()[1]
    mav = M.MAVLink(None, srcSystem=255, srcComponent=190)
    with start_sim(["--speedup", "10", "--udp-out", f"127.0.0.1:{port}"]) as (proc, urls):
        assert urls == [f"udpout:127.0.0.1:{port}"]
        hb, addr = udp_recv(gcs, mav, "HEARTBEAT")
        assert hb is not None
        gcs.sendto(M.MAVLink_param_request_read_message(1, 1, b"RTL_ALT", -1).pack(mav), addr)
        pv, _ = udp_recv(gcs, mav, "PARAM_VALUE")
        assert pv.param_id == "RTL_ALT" and pv.param_value == 1500
    gcs.close()


def test_udp_in_replies_to_last_sender():
    with start_sim(["--speedup", "10", "--udp-in", "127.0.0.1:0"]) as (proc, urls):
        _, host, port = urls[0].split(":")
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        mav = M.MAVLink(None, srcSystem=255, srcComponent=190)
        s.sendto(M.MAVLink_heartbeat_message(6, 8, 0, 0, 0, 3).pack(mav), (host, int(port)))
        hb, _ = udp_recv(s, mav, "HEARTBEAT")
        assert hb is not None and hb.type == M.MAV_TYPE_QUADROTOR
        s.close()


def test_two_tcp_clients_both_get_telemetry(sim):
    a, b = MavClient(sim.urls[0]), MavClient(sim.urls[0])
    assert a.recv("HEARTBEAT", timeout=5) and b.recv("HEARTBEAT", timeout=5)
    # a command's ACK goes to the asking link only
    assert a.command(M.MAV_CMD_DO_SET_MODE, 1, 5) == M.MAV_RESULT_ACCEPTED
    assert b.recv("COMMAND_ACK", timeout=0.5) is None
    assert b.recv("HEARTBEAT", lambda m: m.custom_mode == 5, 5)
    a.close()
    b.close()


def test_loss_drops_packets_and_leaves_sequence_gaps(sim_factory):
    h = sim_factory("--speedup", "20", "--loss", "0.3", "--seed", "4")
    c = MavClient(h.urls[0])
    seqs = []
    deadline = time.monotonic() + 2
    while time.monotonic() < deadline:
        for m in c.poll():
            seqs.append(m.get_seq())
    gaps = sum((b - a) % 256 - 1 for a, b in zip(seqs, seqs[1:]))
    ratio = gaps / (gaps + len(seqs))
    assert 0.2 < ratio < 0.4
    c.close()


def test_udp_out_count_shares_one_gcs_port():
    gcs = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    gcs.bind(("127.0.0.1", 0))
    port = gcs.getsockname()[1]
    mav = M.MAVLink(None, srcSystem=255, srcComponent=190)
    mav.robust_parsing = True
    with start_sim(["--speedup", "10", "--count", "3", "--udp-out", f"127.0.0.1:{port}"]) as (proc, urls):
        assert urls == [f"udpout:127.0.0.1:{port}"] * 3
        sysids = set()
        deadline = time.monotonic() + 5
        while len(sysids) < 3 and time.monotonic() < deadline:
            hb, addr = udp_recv(gcs, mav, "HEARTBEAT", 1)
            if hb is not None:
                sysids.add(hb.get_srcSystem())
        assert sysids == {1, 2, 3}
    gcs.close()


def test_stream_rates_are_per_link(sim):
    a, b = MavClient(sim.urls[0]), MavClient(sim.urls[0])
    assert a.recv("HEARTBEAT", timeout=5) and b.recv("HEARTBEAT", timeout=5)
    a.send(M.MAVLink_request_data_stream_message(1, 1, M.MAV_DATA_STREAM_ALL, 0, 0))
    a.barrier()
    b.seen.clear()
    assert a.recv("VFR_HUD", timeout=0.5) is None
    assert b.recv("VFR_HUD", timeout=2) is not None
    a.close()
    b.close()
