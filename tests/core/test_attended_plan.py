"""Attended drop in the plan: the hold's mission items, its energy in the prediction and the verdict."""

from datetime import datetime, timezone

import pytest

from groundctl.core import mavcmd as C
from groundctl.core.energy import hover_power_w, plan_energy
from groundctl.core.mission import MissionItem, compare
from groundctl.core.plan import HOLD_LABEL, Parcel, build_plan
from groundctl.core.preflight import preflight
from groundctl.core.scenario import load_scenario
from groundctl.errors import InputError
from tests.conftest import MISSIONS

SIGNED = Parcel(mass_kg=1.0, handling=("signature",), attended=True)


@pytest.fixture(scope="module")
def cmac():
    return load_scenario(MISSIONS / "cmac")


def plan(cmac, parcel=SIGNED, method="payload_place", **kw):
    return build_plan(cmac.airspace, cmac.fleet, "cmac", cmac.zone("lab-south"), parcel, method=method, **kw)


@pytest.mark.parametrize("method", ["payload_place", "gripper", "winch"])
def test_hold_then_jump_past_the_drop(cmac, method):
    p = plan(cmac, method=method, hold_s=95.2)
    h = p.hold
    m = p.mission
    hold, jump = m[h.hold_seq], m[h.jump_seq]
    assert hold.command == C.NAV_LOITER_TIME and hold.param1 == 96  # whole seconds, rounded up (AP: uint16 p1)
    # over the zone at cruise height, right after the weigh waypoint
    assert (hold.lat, hold.lon, hold.alt) == (m[h.hold_seq - 1].lat, m[h.hold_seq - 1].lon, p.cruise_alt_m)
    assert jump.command == C.DO_JUMP and jump.param2 == -1 and jump.param1 == h.absent_seq
    # the jump skips every drop item and lands on the climb-back over the zone, at cruise height
    assert h.clear_seq <= p.drop_seq < h.absent_seq
    back = m[h.absent_seq]
    assert back.command == C.NAV_WAYPOINT and back.alt == p.cruise_alt_m and (back.lat, back.lon) == (hold.lat, hold.lon)
    assert not any(it.command in (C.DO_GRIPPER, C.DO_WINCH, C.NAV_PAYLOAD_PLACE) for it in m[h.absent_seq:])
    # the clearance starts the drop proper: payload place, or the descent to drop/winch height
    assert m[h.clear_seq].is_nav and m[h.clear_seq].command != C.NAV_LOITER_TIME
    assert p.summary()["attended_hold_s"] == 96


def test_unattended_plan_is_unchanged(cmac):
    a = plan(cmac, Parcel(mass_kg=1.0))
    b = plan(cmac, Parcel(mass_kg=1.0, attended=True), hold_s=30)
    assert a.hold is None and b.hold is not None
    assert len(b.mission) == len(a.mission) + 2 and b.drop_seq == a.drop_seq + 2


def test_the_read_back_of_a_hold_compares_equal(cmac):
    """AP_Mission keeps DO_JUMP's target and repeat count (mission_cmd_to_mavlink_int) and reads DO items back
    with frame 0 and no position; NAV_LOITER_TIME's param3 comes back as +1."""
    p = plan(cmac, hold_s=60)
    got = [it.with_(frame=C.FRAME_MISSION, lat=0, lon=0, alt=0) if not it.is_nav else
           (it.with_(param3=1.0, frame=C.FRAME_GLOBAL_RELATIVE_ALT) if it.command == C.NAV_LOITER_TIME else it)
           for it in p.mission]
    assert compare(p.mission, got, C.MISSION_TYPE_MISSION) == []
    wrong = list(got)
    wrong[p.hold.jump_seq] = MissionItem(C.DO_JUMP, C.FRAME_MISSION, param1=p.hold.absent_seq, param2=1)
    assert compare(p.mission, wrong, C.MISSION_TYPE_MISSION)


def test_hold_time_is_energy_in_the_prediction(cmac):
    short, long_ = plan(cmac, hold_s=10), plan(cmac, hold_s=610)
    es, el = plan_energy(short, None, limits=False), plan_energy(long_, None, limits=False)
    extra = el.model_wh - es.model_wh
    a = short.airframe
    # 600 s more hovering with the parcel aboard, at the airframe's hover power for that mass
    hover_wh = hover_power_w(a, a.empty_mass_kg + 1.0, es.rho) * 600 / 3600
    assert extra == pytest.approx(hover_wh, rel=0.05), (extra, hover_wh)
    hold_legs = [le for le in el.legs if le.leg.label == HOLD_LABEL]
    assert len(hold_legs) == 1 and hold_legs[0].leg.payload_kg == 1.0 and hold_legs[0].leg.hover_s == 610


def test_a_hold_the_battery_cannot_cover_is_refused_by_the_verdict(cmac):
    now = datetime.now(timezone.utc)
    ok = preflight(plan(cmac, hold_s=60), None, now=now)
    assert ok.check("energy").status != "fail" and ok.check("handling").status == "pass"
    assert "attended" in ok.check("handling").message
    long_ = preflight(plan(cmac, hold_s=1800), None, now=now)
    assert long_.check("energy").status == "fail", long_.check("energy").message


def test_handling_flags_and_hold_bounds(cmac):
    now = datetime.now(timezone.utc)
    unattended = preflight(plan(cmac, Parcel(mass_kg=1.0, handling=("age_check",))), None, now=now)
    assert unattended.check("handling").status == "fail"
    hazardous = preflight(plan(cmac, Parcel(mass_kg=1.0, handling=("hazardous",), attended=True)), None, now=now)
    assert hazardous.check("handling").status == "fail" and "not even an attended" in hazardous.check("handling").message
    for bad in (5, 4000, float("nan")):
        with pytest.raises(InputError, match="hold time") as e:
            plan(cmac, hold_s=bad)
        assert e.value.field == "hold_s"
