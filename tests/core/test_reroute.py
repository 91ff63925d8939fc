"""core.reroute: the rest of a flight's mission rebuilt from where the vehicle is, around a restriction,
keeping the mission's shape (so the monitor's item rules still hold) and the attended hold's jump target."""

import pytest
from shapely.geometry import LineString

from groundctl.core import mavcmd as C
from groundctl.core.geo import LocalFrame
from groundctl.core.plan import Parcel, build_plan, make_planner
from groundctl.core.reroute import crosses, reroute, zone_span
from groundctl.errors import NoRouteError
from groundctl.runtime.services.airspace import OverlayPlanner
from tests.e2e.reroute_helpers import restriction_across


@pytest.fixture(scope="module")
def scenario():
    from groundctl.core.scenario import load_scenario
    from tests.conftest import MISSIONS

    return load_scenario(MISSIONS / "cmac")


@pytest.fixture(scope="module")
def planner(scenario):
    return make_planner(scenario.airspace, scenario.fleet.hub("cmac"), scenario.fleet.operations)


def plan_for(scenario, planner, attended=False):
    parcel = Parcel(mass_kg=1.0, handling=("signature",), attended=True) if attended else Parcel(mass_kg=1.0)
    return build_plan(scenario.airspace, scenario.fleet, "cmac", scenario.zone("lab-south"), parcel,
                      method="gripper" if attended else "payload_place", planner=planner, hold_s=60 if attended else None)


def view_with(scenario, plan, r):
    return OverlayPlanner(make_planner(scenario.airspace, plan.hub, scenario.fleet.operations)).view({r.key: r})


def along(plan, f):
    frame = LocalFrame(plan.hub.lat, plan.hub.lon)
    line = LineString([frame.to_xy(*p) for p in plan.route_out.points_ll])
    p = line.interpolate(f, normalized=True)
    return tuple(float(v) for v in frame.to_lonlat(p.x, p.y)), frame


@pytest.mark.parametrize("attended", [False, True])
def test_out_leg_goes_round_the_restriction_and_keeps_the_zone_items(scenario, planner, attended):
    plan = plan_for(scenario, planner, attended)
    _, r = restriction_across(plan)
    here, frame = along(plan, 0.25)
    first, last = zone_span(plan.mission)
    assert crosses(plan.mission, first, here, r.zone.geometry_ll)
    rr = reroute(plan, scenario.airspace, view_with(scenario, plan, r), here, first, released=False)
    m = rr.plan.mission
    assert rr.leg == "out" and rr.resume_seq == 2 and m[2].command == C.DO_CHANGE_SPEED
    assert not crosses(m, rr.resume_seq, here, r.zone.geometry_ll)
    # the path still to fly keeps the lateral margin from the restriction
    poly = frame.project(r.zone.geometry_ll)
    pts = [frame.to_xy(*here)] + [frame.to_xy(it.lon, it.lat) for it in m[2:] if it.is_nav and (it.lat or it.lon)]
    assert LineString(pts).distance(poly) >= plan.ops.lateral_margin_m - 0.5
    assert rr.extra_m > 0 and rr.remaining_after_m > rr.remaining_before_m
    # the zone's items are the same items, in the same order, after the new legs
    nf, nl = zone_span(m)
    old = [(it.command, it.label) for it in plan.mission[first:last + 1]]
    assert [(it.command, it.label) for it in m[nf:nl + 1]] == old
    assert rr.plan.drop_seq - nf == plan.drop_seq - first
    if attended:
        h0, h1 = plan.hold, rr.plan.hold
        assert h1 is not None and h1.absent_seq - h1.hold_seq == h0.absent_seq - h0.hold_seq
        assert m[h1.absent_seq].label == plan.mission[h0.absent_seq].label
    # the fence excludes the restriction and the vehicle is inside the inclusion where it is
    assert any(z == f"restriction {r.zone.name}" for z in rr.plan.fence_zones)
    assert m[-1].command == C.NAV_LAND and (m[-1].lat, m[-1].lon) == (plan.mission[-1].lat, plan.mission[-1].lon)


def test_back_leg_replaces_only_the_way_home(scenario, planner):
    plan = plan_for(scenario, planner)
    # a restriction across the way back, hit on the way home after the drop
    _, r = restriction_across(plan, at=0.5)
    here, _ = along(plan, 0.9)
    first, last = zone_span(plan.mission)
    rr = reroute(plan, scenario.airspace, view_with(scenario, plan, r), here, last + 1, released=True)
    assert rr.leg == "back" and rr.resume_seq == last + 1
    assert rr.plan.mission[:last + 1] == plan.mission[:last + 1]
    assert not crosses(rr.plan.mission, rr.resume_seq, here, r.zone.geometry_ll)


def test_no_route_to_the_zone_raises_and_home_with_the_parcel_skips_the_zone(scenario, planner):
    plan = plan_for(scenario, planner)
    _, r = restriction_across(plan, covers_zone=True)
    here, _ = along(plan, 0.3)
    first, last = zone_span(plan.mission)
    view = view_with(scenario, plan, r)
    with pytest.raises(NoRouteError):
        reroute(plan, scenario.airspace, view, here, first, released=False)
    home = reroute(plan, scenario.airspace, view, here, first, released=False, home=True)
    assert home.leg == "back" and home.resume_seq == last + 1  # the vehicle is sent past the drop
    assert all(it.command != C.NAV_PAYLOAD_PLACE for it in home.plan.mission[home.resume_seq:])


def test_at_the_zone_there_is_nothing_to_reroute(scenario, planner):
    plan = plan_for(scenario, planner)
    _, r = restriction_across(plan)
    first, _ = zone_span(plan.mission)
    with pytest.raises(NoRouteError, match="at the zone"):
        reroute(plan, scenario.airspace, view_with(scenario, plan, r), (plan.zone.lon, plan.zone.lat), first + 1,
                released=False)


def test_at_zone_is_the_zone_items_with_the_parcel_aboard(scenario, planner):
    from groundctl.core.reroute import at_zone

    plan = plan_for(scenario, planner)
    first, last = zone_span(plan.mission)
    zone = (plan.zone.lon, plan.zone.lat)
    far, _ = along(plan, 0.5)
    assert not at_zone(plan, far, first, released=False)  # flying to the first item over the zone
    assert at_zone(plan, zone, first, released=False) and at_zone(plan, zone, plan.drop_seq, released=False)
    assert not at_zone(plan, zone, plan.drop_seq, released=True)
    assert not at_zone(plan, zone, last + 1, released=False)
