"""Obstacles added to and lifted from a built planner (temporary restrictions) act exactly as if built in.

The planner with an obstacle added must agree with a planner built from scratch with that obstacle
as one more zone (same free space, same route lengths, same NoRouteError cases, against the brute
force as well), and after lifting it, with the planner built without it.
"""

from __future__ import annotations

import math

import pytest
import shapely
from hypothesis import given, settings
from hypothesis import strategies as st
from shapely.geometry import LineString, Point, box

from groundctl.core.routing import RoutePlanner
from groundctl.errors import InputError, NoRouteError
from tests.core.test_routing_properties import (GEN_FRAME, SETTINGS, TOL, BruteForce, free_points, make_airspace,
                                                 path_length, scenarios, zone_shapes)


def lengths(planner: RoutePlanner, pairs) -> list[float | None]:
    out = []
    for s, g in pairs:
        try:
            out.append(path_length(planner.shortest_path_xy(s, g)))
        except NoRouteError:
            out.append(None)
    return out


def same(a: list[float | None], b: list[float | None]) -> bool:
    return all((x is None) == (y is None) and (x is None or math.isclose(x, y, rel_tol=1e-9, abs_tol=TOL))
               for x, y in zip(a, b))


@settings(SETTINGS, max_examples=40)
@given(scenarios(max_zones=5), st.data())
def test_added_obstacle_acts_as_a_built_in_zone_and_lifting_it_restores_the_routes(sc, data):
    w, h, shapes, margin, edge, fracs = sc
    extra = data.draw(zone_shapes(w, h), label="restriction")
    base = RoutePlanner(make_airspace(w, h, shapes), lateral_margin_m=margin, edge_margin_m=edge)
    built = RoutePlanner(make_airspace(w, h, shapes + [extra]), lateral_margin_m=margin, edge_margin_m=edge)
    live = RoutePlanner(make_airspace(w, h, shapes), lateral_margin_m=margin, edge_margin_m=edge)
    geom = Point(extra[1]).buffer(extra[2], 64) if extra[0] == "circle" else extra[1]
    live.add_obstacle("notam-1", GEN_FRAME.unproject(geom))

    assert live.obstacle_keys == ["notam-1"]
    assert live.free.symmetric_difference(built.free).area <= 1e-3 * max(built.free.area, 1.0) + 1.0
    assert live.mesh.matches(live.free)
    pts = [p for p in free_points(base, fracs) if live.free.covers(Point(p)) and built.free.covers(Point(p))]
    pairs = list(zip(pts[0::2], pts[1::2]))
    brute = BruteForce(live.free)
    for (s, g), got in zip(pairs, lengths(live, pairs)):
        best = brute.shortest(s, g)
        assert (got is None) == (best is None)
        if got is not None:
            assert got == pytest.approx(best, rel=1e-9, abs=TOL)
            path = live.shortest_path_xy(s, g)
            assert live.restrictions["notam-1"].buffer(-TOL).disjoint(LineString(path)) or len(path) < 2

    live.remove_obstacle("notam-1")
    assert live.obstacle_keys == []
    assert live.mesh.matches(live.free)
    all_pts = free_points(base, fracs)
    pairs = list(zip(all_pts[0::2], all_pts[1::2]))
    assert same(lengths(live, pairs), lengths(base, pairs))


def test_a_restriction_across_the_only_way_closes_it_and_names_itself():
    w = h = 2000.0
    planner = RoutePlanner(make_airspace(w, h, []), lateral_margin_m=20.0)
    s, g = (-800.0, 0.0), (800.0, 0.0)
    assert planner.shortest_path_xy(s, g) == [s, g]
    planner.add_obstacle("storm", GEN_FRAME.unproject(box(-50, -h, 50, h)))
    with pytest.raises(NoRouteError, match="storm"):
        planner.shortest_path_xy(s, g)
    planner.add_obstacle("storm", GEN_FRAME.unproject(box(-50, -h, 50, 300)))  # same key: replaced, not added
    path = planner.shortest_path_xy(s, g)
    assert len(path) > 2 and "storm" in planner.skirted(path)
    with pytest.raises(NoRouteError, match="storm"):
        planner.shortest_path_xy(s, (0.0, 0.0))
    planner.remove_obstacle("storm")
    assert planner.shortest_path_xy(s, g) == [s, g]
    with pytest.raises(KeyError):
        planner.remove_obstacle("storm")


def test_a_bad_restriction_is_refused_naming_the_field():
    planner = RoutePlanner(make_airspace(1000.0, 1000.0, []), lateral_margin_m=20.0)
    with pytest.raises(InputError, match="obstacle.key"):
        planner.add_obstacle("", GEN_FRAME.unproject(box(0, 0, 10, 10)))
    with pytest.raises(InputError, match="obstacle.geometry"):
        planner.add_obstacle("x", shapely.Point(149.16, -35.36))


def test_many_restrictions_come_and_go_and_the_routes_follow():
    """Twenty adds and lifts in a row (the mesh is patched each time) end where a fresh planner starts."""
    shapes = [("poly", box(-700 + 350 * i, -300, -600 + 350 * i, 300)) for i in range(5)]
    fresh = RoutePlanner(make_airspace(3000.0, 2000.0, shapes), lateral_margin_m=25.0)
    live = RoutePlanner(make_airspace(3000.0, 2000.0, shapes), lateral_margin_m=25.0)
    pairs = [((-1400.0, y0), (1400.0, y1)) for y0, y1 in ((-900, 900), (0, 0), (500, -800), (-50, 60))]
    for k in range(10):
        live.add_obstacle(f"r{k}", GEN_FRAME.unproject(Point(-800 + 170 * k, 150 * (k % 3) - 150).buffer(60)))
    assert live.mesh.matches(live.free)
    brute = BruteForce(live.free)
    for (s, g), got in zip(pairs, lengths(live, pairs)):
        best = brute.shortest(s, g)
        assert (got is None) == (best is None) and (got is None or got == pytest.approx(best, rel=1e-9, abs=TOL))
    for k in range(10):
        live.remove_obstacle(f"r{k}")
    assert live.mesh.matches(live.free)
    assert same(lengths(live, pairs), lengths(fresh, pairs))
