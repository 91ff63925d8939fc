import math

import pytest

from groundctl.errors import CommandError, InputError, TransferError
from groundctl.protocol import CommandProgress, CommandSender, ParamRead, ParamSet, commands
from groundctl.protocol.command import COPTER_MODES
from tests.protocol.fakes import GCS, M, roundtrip, v


def cack(command, result, sysid=1, progress=0):
    return v(M.MAVLink_command_ack_message(command, result, progress, 0, *GCS), sysid)


def test_command_accepted_first_try():
    c = CommandSender(1, 1, commands.arm())
    (m,) = c.poll(0)
    assert m.get_type() == "COMMAND_LONG" and m.command == 400 and m.param1 == 1 and m.param2 == 0
    assert m.confirmation == 0
    c.receive(cack(400, M.MAV_RESULT_ACCEPTED), 0.1)
    assert c.ok and c.result.result == 0


def test_command_retries_with_confirmation_then_times_out():
    c = CommandSender(1, 1, commands.set_mode("AUTO"), retry_s=1, max_tries=3)
    sent = []
    t = 0.0
    while not c.done:
        sent += c.poll(t)
        c.receive(cack(400, M.MAV_RESULT_ACCEPTED), t)  # another command's ack: not ours
        c.receive(cack(176, M.MAV_RESULT_ACCEPTED, sysid=9), t)  # another vehicle
        t += 0.25
    assert [m.confirmation for m in sent] == [0, 1, 2]
    assert isinstance(c.error, CommandError)
    assert str(c.error) == "DO_SET_MODE: no COMMAND_ACK after 3 tries"


def test_command_lost_ack_then_accepted_on_retry():
    c = CommandSender(1, 1, commands.mission_start(), retry_s=1)
    c.poll(0)
    assert c.poll(0.5) == []
    (m,) = c.poll(1.0)
    assert m.confirmation == 1
    c.receive(cack(300, M.MAV_RESULT_ACCEPTED), 1.1)
    assert c.ok


def test_command_refused_names_result():
    c = CommandSender(1, 1, commands.arm())
    c.poll(0)
    c.receive(cack(400, M.MAV_RESULT_FAILED), 0.1)
    assert str(c.error) == "COMPONENT_ARM_DISARM refused: MAV_RESULT_FAILED"
    with pytest.raises(CommandError):
        c.unwrap()


def test_in_progress_keeps_waiting_without_resending():
    c = CommandSender(1, 1, commands.reboot(), retry_s=1, in_progress_timeout_s=10)
    c.poll(0)
    c.receive(cack(246, M.MAV_RESULT_IN_PROGRESS, progress=40), 0.2)
    assert c.poll(3.0) == [] and not c.done
    assert c.take_events() == [CommandProgress(246, 40)]
    c.receive(cack(246, M.MAV_RESULT_ACCEPTED), 5)
    assert c.ok
    c = CommandSender(1, 1, commands.reboot(), in_progress_timeout_s=10)
    c.poll(0)
    c.receive(cack(246, M.MAV_RESULT_IN_PROGRESS), 0.2)
    c.poll(10.3)
    assert "IN_PROGRESS but no final COMMAND_ACK" in str(c.error)


def test_command_builders():
    assert commands.arm(force=True).params[1] == 21196
    assert commands.disarm().params[:2] == (0, 0)
    m = commands.set_mode("smart_rtl")
    assert m.command == 176 and m.params[0] == M.MAV_MODE_FLAG_CUSTOM_MODE_ENABLED and m.params[1] == 21
    assert commands.set_mode(9).params[1] == 9
    with pytest.raises(ValueError):
        commands.set_mode("WARP")
    assert COPTER_MODES["BRAKE"] == 17 and COPTER_MODES["LAND"] == 9
    assert commands.takeoff(30).params[6] == 30 and commands.takeoff(30).command == 22
    assert commands.rtl().command == 20 and commands.land().command == 21
    g = commands.gripper(release=True)
    assert g.command == 211 and g.params[1] == 0 and commands.gripper(False).params[1] == 1
    assert commands.reboot().command == 246 and commands.reboot().params[0] == 1
    assert commands.set_message_interval(33, 0.2).params[:2] == (33, 200000)
    assert commands.set_message_interval(33, None).params[1] == -1
    assert commands.request_message(242).command == 512 and commands.request_message(242).params[0] == 242


def test_command_int_and_long_pass_a_real_encoder():
    for cmd in (commands.arm(), commands.takeoff(25),
                commands.Command(M.MAV_CMD_DO_REPOSITION, (-1, 0, 0, math.nan, -35.36, 149.16, 40), as_int=True)):
        m = roundtrip(cmd.message(1, 1, 0))
        assert m.command == cmd.command
        if cmd.as_int:
            assert m.get_type() == "COMMAND_INT" and m.x == -353600000 and m.y == 1491600000


# -- params ----------------------------------------------------------------------------------------

def pv(name, value, ptype=M.MAV_PARAM_TYPE_REAL32, sysid=1):
    return v(M.MAVLink_param_value_message(name.encode(), value, ptype, 900, 3), sysid)


def test_param_set_confirmed_by_echo_with_float32_rounding():
    p = ParamSet(1, 1, {"FENCE_ALT_MAX": 120.1, "FENCE_ENABLE": 1, "WPNAV_SPEED": 1200})
    out = p.poll(0)
    assert sorted(m.param_id for m in out) == sorted(["FENCE_ALT_MAX", "FENCE_ENABLE", "WPNAV_SPEED"])
    p.receive(pv("FENCE_ALT_MAX", 120.0999984741211), 0.1)  # float32
    p.receive(pv("FENCE_ENABLE", 1.0, M.MAV_PARAM_TYPE_INT8, sysid=2), 0.1)  # other vehicle
    p.receive(pv("FENCE_ENABLE", 1.0, M.MAV_PARAM_TYPE_INT8), 0.1)
    assert not p.done
    resent = p.poll(1.1)
    assert [m.param_id for m in resent] == ["WPNAV_SPEED"]
    p.receive(pv("WPNAV_SPEED", 1200.0), 1.2)
    assert p.ok and p.result == {"FENCE_ALT_MAX": pytest.approx(120.1), "FENCE_ENABLE": 1.0, "WPNAV_SPEED": 1200.0}


def test_param_set_stale_value_then_confirmed():
    p = ParamSet(1, 1, {"RTL_ALT": 4000}, types={"RTL_ALT": M.MAV_PARAM_TYPE_INT32})
    (m,) = p.poll(0)
    assert m.param_type == M.MAV_PARAM_TYPE_INT32
    p.receive(pv("RTL_ALT", 1500.0), 0.05)  # streamed before our write landed
    assert not p.done
    p.receive(pv("RTL_ALT", 4000.0), 0.1)
    assert p.ok


def test_param_set_integer_param_rounds():
    p = ParamSet(1, 1, {"FENCE_TYPE": 5.2}, types={"FENCE_TYPE": M.MAV_PARAM_TYPE_INT8})
    p.poll(0)
    p.receive(pv("FENCE_TYPE", 5.0, M.MAV_PARAM_TYPE_INT8), 0.1)
    assert p.ok


def test_param_set_fails_naming_param():
    p = ParamSet(1, 1, {"NO_SUCH_PARAM": 1, "FENCE_ENABLE": 1, "STAT_RUNTIME": 5}, max_tries=3)
    t = 0.0
    while not p.done:
        p.poll(t)
        if t == 0.0:
            p.receive(pv("FENCE_ENABLE", 1.0), 0.1)
        p.receive(pv("STAT_RUNTIME", 99.0), t + 0.1)  # read-only: keeps its value
        t += 0.5
    msg = str(p.error)
    assert isinstance(p.error, TransferError)
    assert "NO_SUCH_PARAM: no PARAM_VALUE after 3 tries" in msg
    assert "STAT_RUNTIME: set 5, vehicle kept 99" in msg and "FENCE_ENABLE" not in msg


def test_param_names_checked():
    with pytest.raises(InputError) as e:
        ParamSet(1, 1, {"A_VERY_LONG_PARAMETER_NAME": 1})
    assert "16" in str(e.value)
    p = ParamSet(1, 1, {"SIXTEEN_CHARS_AB": 1})
    (m,) = p.poll(0)
    back = roundtrip(m)
    assert back.param_id == "SIXTEEN_CHARS_AB"
    p.receive(v(roundtrip(pv("SIXTEEN_CHARS_AB", 1.0), 1, 1), 1, 1), 0.1)
    assert p.ok


def test_param_read_bytes_and_str_names():
    r = ParamRead(1, 1, ["FENCE_ENABLE", "GRIP_ENABLE"])
    out = r.poll(0)
    assert [m.get_type() for m in out] == ["PARAM_REQUEST_READ"] * 2 and out[0].param_index == -1
    r.receive(v(M.MAVLink_param_value_message(b"FENCE_ENABLE\x00\x00\x00\x00", 0.0, 2, 900, 1)), 0.1)
    r.receive(roundtrip(pv("GRIP_ENABLE", 1.0, M.MAV_PARAM_TYPE_INT8), 1, 1), 0.1)
    assert r.ok
    assert r.result["GRIP_ENABLE"].param_type == M.MAV_PARAM_TYPE_INT8 and r.result["FENCE_ENABLE"].value == 0
    r = ParamRead(1, 1, ["NOPE"], max_tries=2)
    t = 0.0
    while not r.done:
        r.poll(t)
        t += 0.5
    assert "no PARAM_VALUE for NOPE after 2 tries" in str(r.error)
