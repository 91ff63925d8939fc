"""What the plan asks of the autopilot for its drop device, and which airframe it flies, and why.

ArduPilot facts checked in its source: AP_Winch_PWM::healthy() is false without an output assigned
SRV_Channel::k_winch (88), and AP_Winch::pre_arm_check then fails "winch unhealthy"; the gripper
output is k_gripper (28); a DO_WINCH length command pays out at WINCH_RATE_MAX (ModeAuto::do_winch ->
AP_Winch::release_length, position control), whatever rate the item carries.
"""

import pytest

from groundctl.core import mavcmd as C
from groundctl.core.plan import WEIGH_S, Parcel, airframe_choice, build_plan, drop_device_params, make_planner
from groundctl.core.preflight import preflight
from groundctl.core.scenario import load_scenario
from groundctl.errors import InputError
from groundctl.runtime.events import utcnow
from groundctl.runtime.sitl import SITL_FRAMES, SitlUnavailable, delivery_params, sitl_frame
from tests.conftest import MISSIONS


@pytest.fixture(scope="module")
def cmac_planned():
    sc = load_scenario(MISSIONS / "cmac")
    planner = make_planner(sc.airspace, sc.fleet.hub("cmac"), sc.fleet.operations)

    def plan(kg=1.2, method="winch", zone="clinic-east", **kw):
        return build_plan(sc.airspace, sc.fleet, "cmac", sc.zone(zone), Parcel(mass_kg=kg), method=method,
                          planner=planner, **kw)
    return sc, plan


def servo_functions(params):
    return {int(k[5:-9]): int(v) for k, v in params.items() if k.startswith("SERVO") and k.endswith("_FUNCTION")}


def test_winch_plan_has_a_healthy_winch(cmac_planned):
    _, plan = cmac_planned
    p = plan(method="winch")
    a = p.airframe
    funcs = servo_functions(p.params)
    assert p.params["WINCH_TYPE"] == 1 and p.params["GRIP_ENABLE"] == 1 and p.params["GRIP_TYPE"] == 1
    assert funcs[a.gripper_servo] == 28
    (winch_out,) = [n for n, f in funcs.items() if f == 88]
    assert winch_out != a.gripper_servo and winch_out > a.rotor_count  # not a motor, not the gripper
    assert p.params["WINCH_RATE_MAX"] == a.winch_rate_mps
    # the lowering loiter is timed with the rate the winch will really pay out at
    lower = next(it for it in p.mission if it.command == C.DO_WINCH and it.param3 > 0)
    loiter = p.mission[p.mission.index(lower) + 1]
    assert loiter.command == C.NAV_LOITER_TIME and loiter.param1 >= lower.param3 / p.params["WINCH_RATE_MAX"]


def test_muhanga_default_method_is_a_flyable_winch():
    sc = load_scenario(MISSIONS / "muhanga")
    p = build_plan(sc.airspace, sc.fleet, sc.fleet.hubs[0].name, sc.zones[0], Parcel(mass_kg=1.0))
    assert p.method == "winch"
    assert 88 in servo_functions(p.params).values() and p.params["WINCH_TYPE"] == 1


@pytest.mark.parametrize("method", ["payload_place", "gripper"])
def test_no_winch_parameters_without_a_winch(cmac_planned, method):
    _, plan = cmac_planned
    p = plan(method=method)
    assert not any(k.startswith("WINCH_") for k in p.params) and 88 not in servo_functions(p.params).values()
    assert servo_functions(p.params)[p.airframe.gripper_servo] == 28


def test_gripper_on_a_motor_output_is_refused(cmac_planned):
    sc, _ = cmac_planned
    a = sc.fleet.airframe("hexa-heavy").model_copy(update={"gripper_servo": 5})
    with pytest.raises(InputError, match="SERVO5 drives motor 5") as e:
        drop_device_params(a, "winch")
    assert e.value.to_dict().get("field") == "airframe.gripper_servo"


@pytest.mark.parametrize("method", ["payload_place", "gripper", "winch"])
def test_every_drop_is_weighed_before_and_after(cmac_planned, method):
    """A hover held over the zone at cruise height before the drop and after it, for the jam check."""
    _, plan = cmac_planned
    p = plan(method=method)
    holds = [i for i, it in enumerate(p.mission) if it.command == C.NAV_WAYPOINT and it.param1 == WEIGH_S
             and it.alt == p.cruise_alt_m and (it.lat, it.lon) == (round(p.zone.lat, 7), round(p.zone.lon, 7))]
    assert len(holds) == 2 and holds[0] < p.drop_seq < holds[1], [(it.label, it.param1) for it in p.mission]
    weighed = [leg for leg in p.legs if leg.kind == "hover" and leg.label.startswith("weigh")]
    assert [leg.payload_kg for leg in weighed] == [p.parcel.mass_kg, 0.0]


def test_a_heavy_parcel_switches_airframe_and_says_why(cmac_planned):
    _, plan = cmac_planned
    light, heavy = plan(kg=1.2, method="payload_place"), plan(kg=2.5, method="payload_place")
    assert light.airframe.name == "quad-x-delivery" and not any("airframe" in w for w in light.warnings)
    assert heavy.airframe.name == "hexa-heavy"
    why = heavy.summary()["airframe_reason"]
    assert "quad-x-delivery cannot carry 2.5 kg" in why and why.startswith("hexa-heavy")
    assert any("hexa-heavy" in w and "quad-x-delivery cannot carry 2.5 kg" in w for w in heavy.warnings)
    v = preflight(heavy, None, now=utcnow())
    said = [c.message for c in v.checks if "hexa-heavy" in c.message and "cannot carry" in c.message]
    assert said, [c.message for c in v.checks]
    assert v.to_dict()["plan"]["airframe_reason"] == why


def test_a_named_airframe_is_not_a_switch(cmac_planned):
    _, plan = cmac_planned
    p = plan(kg=1.2, method="payload_place", airframe_name="hexa-heavy")
    assert p.airframe_reason == "hexa-heavy: named by the operator"
    assert not any("airframe" in w for w in p.warnings)
    # a stored delivery rebuilt with the airframe the choice made is the same plan, reason and warning
    auto = plan(kg=2.5, method="payload_place")
    again = plan(kg=2.5, method="payload_place", airframe_name=auto.airframe.name)
    assert (again.airframe_reason, again.warnings) == (auto.airframe_reason, auto.warnings)


def test_choice_by_method_and_box(cmac_planned):
    sc, _ = cmac_planned
    hub = sc.fleet.hub("cmac")
    # the hexa has no gripper drop: nothing can take 2.5 kg by gripper, and the reason lists both
    name, why = airframe_choice(sc.fleet, hub, Parcel(mass_kg=2.5), "gripper")
    assert name == "quad-x-delivery" and "no airframe" in why and "hexa-heavy cannot drop by gripper" in why
    # a parcel too big for the quad's box goes to the hexa
    name, why = airframe_choice(sc.fleet, hub, Parcel(mass_kg=1.0, length_m=0.45, width_m=0.3, height_m=0.2),
                                "payload_place")
    assert name == "hexa-heavy" and "quad-x-delivery cannot fit the parcel" in why


def test_sitl_frame_follows_the_chosen_airframe(cmac_planned):
    _, plan = cmac_planned
    quad, hexa = plan(kg=1.2, method="winch"), plan(kg=2.5, method="winch")
    assert hexa.airframe.rotor_count == 6
    pq, ph = delivery_params(quad), delivery_params(hexa)
    assert (pq["FRAME_CLASS"], ph["FRAME_CLASS"]) == (1, 2)  # AP_Motors_Class.h: QUAD 1, HEXA 2
    assert sitl_frame(hexa.airframe).model == "hexax" and sitl_frame(quad.airframe).model == "x"
    with pytest.raises(SitlUnavailable, match="5 rotors"):
        sitl_frame(quad.airframe.model_copy(update={"rotor_count": 5}))


def test_sitl_frames_exist_in_ardupilot():
    """The model names are SITL's (SIM_Frame.cpp supported_frames), the defaults files are its own."""
    from pathlib import Path

    root = Path("/opt/ardupilot")
    frames = root / "libraries" / "SITL" / "SIM_Frame.cpp"
    if not frames.is_file():
        pytest.skip("no ArduPilot source at /opt/ardupilot")
    text = frames.read_text()
    for f in SITL_FRAMES.values():
        assert f'Frame("{f.model}",' in text, f.model
        for parm in f.parm_files:
            body = (root / "Tools" / "autotest" / "default_params" / parm).read_text()
            assert "FRAME_" in body, parm
