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


def test_lifting_a_restriction_over_a_zone_is_local_and_restores_the_routes():
    """A restriction laid across two zones, lifted: only its hole is recomputed and its triangles patched
    (no whole re-triangulation), and every route is again the one a planner that never saw it finds."""
    shapes = [("poly", box(-400, -300, -100, 300)), ("poly", box(150, -200, 450, 250)),
              ("circle", (-900.0, 500.0), 120.0), ("poly", box(700, 400, 1000, 700))]
    fresh = RoutePlanner(make_airspace(3000.0, 2000.0, shapes), lateral_margin_m=25.0)
    live = RoutePlanner(make_airspace(3000.0, 2000.0, shapes), lateral_margin_m=25.0)
    restriction = box(-250, -100, 300, 120)  # overlaps both rectangles and the gap between them
    live.add_obstacle("event", GEN_FRAME.unproject(restriction))
    pairs = [((-1400.0, y0), (1400.0, y1)) for y0, y1 in ((-900, 900), (0, 0), (500, -800), (-50, 60))]
    pairs += [((-40.0, 600.0), (0.0, -600.0)), ((-600.0, 0.0), (600.0, 0.0)), ((-1200.0, 800.0), (1300.0, -500.0))]
    before = lengths(live, pairs)
    live.remove_obstacle("event")

    assert (live.lifts_local, live.lifts_global, live.mesh_rebuilds) == (1, 0, 0)
    assert live.mesh.matches(live.free)
    assert live.free.symmetric_difference(fresh.free).area <= 1e-6
    after, want = lengths(live, pairs), lengths(fresh, pairs)
    assert same(after, want)
    assert not same(before, want)  # the restriction did bend some routes, so the lift had something to undo
    brute = BruteForce(live.free)
    for (s, g), got in zip(pairs, after):
        assert got == pytest.approx(brute.shortest(s, g), rel=1e-9, abs=TOL)


@settings(SETTINGS, max_examples=40)
@given(scenarios(max_zones=4), st.data())
def test_a_restriction_overlapping_a_zone_lifted_locally_equals_never_added(sc, data):
    w, h, shapes, margin, edge, fracs = sc
    base = RoutePlanner(make_airspace(w, h, shapes), lateral_margin_m=margin, edge_margin_m=edge)
    # centred on a vertex of a zone's buffered outline, so it always overlaps that zone
    ring = shapely.get_coordinates(shapely.get_exterior_ring(base.obstacles[0])) if base.obstacles else None
    if ring is None or not len(ring):
        return
    cx, cy = ring[data.draw(st.integers(0, len(ring) - 1), label="vertex")]
    half = data.draw(st.floats(min_value=20.0, max_value=0.2 * min(w, h)), label="half size")
    live = RoutePlanner(make_airspace(w, h, shapes), lateral_margin_m=margin, edge_margin_m=edge)
    live.add_obstacle("notam", GEN_FRAME.unproject(box(cx - half, cy - half, cx + half, cy + half)))
    live.remove_obstacle("notam")
    assert live.mesh_rebuilds == 0 and live.lifts_local + live.lifts_global == 1
    assert live.mesh.matches(live.free)
    pts = free_points(base, fracs)
    pairs = list(zip(pts[0::2], pts[1::2]))
    assert same(lengths(live, pairs), lengths(base, pairs))
