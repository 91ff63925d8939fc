"""Property tests for the route planner against an independent brute force.

Random airspaces (a service rectangle near Canberra with convex, non-convex and circular no-fly
zones, built from GeoJSON through parse_airspace) and random start/goal points in free space. The
planner's route must keep the lateral margin from every zone, stay in the service area, be exactly
as long as the optimum found by a plain full visibility graph over every free-space boundary vertex
(no corner or bitangent pruning, visibility straight from GEOS, Dijkstra), be the straight line when
nothing is in the way, and fail with NoRouteError exactly when the brute force finds no path.
"""

from __future__ import annotations

import heapq
import json
import math

import numpy as np
import pytest
import shapely
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from shapely.geometry import LineString, Point, Polygon, box, mapping

from groundctl.core.airspace import parse_airspace
from groundctl.core.geo import LocalFrame
from groundctl.core.routing import RoutePlanner
from groundctl.core.routing_visgraph import VisibilityGraphPlanner
from groundctl.errors import NoRouteError

LAT0, LON0 = -35.36, 149.16
GEN_FRAME = LocalFrame(LAT0, LON0)
TOL = 1e-6  # metres

SETTINGS = settings(max_examples=40, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])

coord = st.floats(min_value=0.0, max_value=1.0, allow_nan=False)


@st.composite
def zone_shapes(draw, w: float, h: float):
    """One zone in the generation frame: ('poly', Polygon) or ('circle', (x, y), radius)."""
    kind = draw(st.sampled_from(["convex", "star", "star", "rect", "circle", "wall"]))
    cx = (draw(coord) - 0.5) * w
    cy = (draw(coord) - 0.5) * h
    size = draw(st.floats(min_value=60.0, max_value=0.45 * min(w, h)))
    if kind == "wall":  # right across the service area: splits it, so some pairs have no route
        t = draw(st.floats(min_value=20.0, max_value=200.0))
        g = box(-w, cy - t / 2, w, cy + t / 2)
        return ("poly", shapely.affinity.rotate(g, draw(st.floats(-30, 30)), origin=(0, cy)))
    if kind == "circle":
        return ("circle", (cx, cy), size / 2)
    if kind == "rect":
        g = box(cx - size / 2, cy - size / 4, cx + size / 2, cy + size / 4)
        g = shapely.affinity.rotate(g, draw(st.floats(0, 180)), origin=(cx, cy))
        return ("poly", g)
    k = draw(st.integers(min_value=3, max_value=9))
    rs = draw(st.lists(st.floats(min_value=0.25, max_value=1.0), min_size=k, max_size=k))
    angs = sorted(set(round(a, 3) for a in draw(st.lists(st.floats(0, 2 * math.pi - 1e-3), min_size=k, max_size=k))))
    if len(angs) < 3:
        angs = [0.0, 2.1, 4.2]
    pts = [(cx + size * r * math.cos(a), cy + size * r * math.sin(a)) for r, a in zip(rs * 2, angs)]
    g = Polygon(pts)
    if kind == "convex" or not g.is_valid or g.area < 100:
        g = g.convex_hull
    if g.geom_type != "Polygon" or g.area < 100:
        g = box(cx - size / 2, cy - size / 2, cx + size / 2, cy + size / 2)
    return ("poly", g)


def make_airspace(w: float, h: float, shapes, floors=None):
    feats = [{"type": "Feature", "properties": {"kind": "service_area", "name": "prop"},
              "geometry": mapping(GEN_FRAME.unproject(box(-w / 2, -h / 2, w / 2, h / 2)))}]
    for k, s in enumerate(shapes):
        props = {"kind": "no_fly", "name": f"z{k}"}
        if floors is not None:
            props["floor_m"] = floors[k]
        if s[0] == "circle":
            lon, lat = GEN_FRAME.to_lonlat(*s[1])
            props["radius_m"] = s[2]
            geom = {"type": "Point", "coordinates": [lon, lat]}
        else:
            geom = mapping(GEN_FRAME.unproject(s[1]))
        feats.append({"type": "Feature", "properties": props, "geometry": geom})
    # through JSON, as a file or the API would hand it over (tuples become lists)
    return parse_airspace(json.loads(json.dumps({"type": "FeatureCollection", "features": feats})))


@st.composite
def scenarios(draw, max_zones: int = 6):
    w = draw(st.floats(min_value=1500.0, max_value=5000.0))
    h = draw(st.floats(min_value=1500.0, max_value=5000.0))
    shapes = draw(st.lists(zone_shapes(w, h), min_size=1, max_size=max_zones))
    margin = draw(st.sampled_from([0.0, 10.0, 35.0, 80.0]))
    edge = draw(st.sampled_from([0.0, 20.0]))
    pts = draw(st.lists(st.tuples(coord, coord), min_size=12, max_size=12))
    return w, h, shapes, margin, edge, pts


def free_points(planner: RoutePlanner, fracs) -> list[tuple[float, float]]:
    x0, y0, x1, y1 = planner.inner.bounds
    cand = [(x0 + u * (x1 - x0), y0 + v * (y1 - y0)) for u, v in fracs]
    return [p for p in cand if planner.free.covers(Point(p))]


# -- the independent brute force --------------------------------------------------------------------
class BruteForce:
    """Shortest paths in `free` by a full visibility graph over all its boundary vertices."""

    def __init__(self, free) -> None:
        self.free = free
        verts = []
        for poly in getattr(free, "geoms", [free]):
            if poly.is_empty:
                continue
            for ring in [poly.exterior, *poly.interiors]:
                verts.extend(tuple(c) for c in np.asarray(ring.coords)[:-1])
        self.pts = np.array(verts, dtype=float).reshape(-1, 2)
        n = len(self.pts)
        ii, jj = np.triu_indices(n, k=1)
        vis = shapely.covered_by(shapely.linestrings(np.stack([self.pts[ii], self.pts[jj]], axis=1)), free)
        self.adj: list[list[tuple[int, float]]] = [[] for _ in range(n + 2)]
        self._link(ii[vis], jj[vis])

    def _link(self, ii, jj) -> None:
        pts = np.vstack([self.pts, self._ends]) if hasattr(self, "_ends") else self.pts
        w = np.hypot(*(pts[ii] - pts[jj]).T)
        for a, b, d in zip(np.atleast_1d(ii).tolist(), np.atleast_1d(jj).tolist(), np.atleast_1d(w).tolist()):
            self.adj[a].append((b, d))
            self.adj[b].append((a, d))

    def shortest(self, start, goal) -> float | None:
        n = len(self.pts)
        S, G = n, n + 1
        base = [list(a) for a in self.adj]
        try:
            self._ends = np.array([start, goal], dtype=float)
            allp = np.vstack([self.pts, self._ends])
            src = np.array([S] * (n + 1) + [G] * n)
            dst = np.concatenate([np.arange(n), [G], np.arange(n)])
            vis = shapely.covered_by(shapely.linestrings(np.stack([allp[src], allp[dst]], axis=1)), self.free)
            self._link(src[vis], dst[vis])
            return self._dijkstra(S, G)
        finally:
            self.adj = base
            del self._ends

    def _dijkstra(self, S: int, G: int) -> float | None:
        dist = {S: 0.0}
        heap = [(0.0, S)]
        while heap:
            d, u = heapq.heappop(heap)
            if d > dist[u]:
                continue
            if u == G:
                return d
            for v, wv in self.adj[u]:
                if d + wv < dist.get(v, math.inf):
                    dist[v] = d + wv
                    heapq.heappush(heap, (d + wv, v))
        return None


def path_length(pts) -> float:
    a = np.asarray(pts, dtype=float)
    return float(np.hypot(*np.diff(a, axis=0).T).sum())


# -- properties --------------------------------------------------------------------------------------
@settings(SETTINGS, max_examples=150)
@given(scenarios())
def test_route_is_clear_inside_and_optimal(sc):
    w, h, shapes, margin, edge, fracs = sc
    asp = make_airspace(w, h, shapes)
    planner = RoutePlanner(asp, lateral_margin_m=margin, edge_margin_m=edge)
    pts = free_points(planner, fracs)
    zones = [asp.zones_xy[i] for i in planner.relevant]
    brute = BruteForce(planner.free)
    for start, goal in zip(pts[0::2], pts[1::2]):
        best = brute.shortest(start, goal)
        if best is None:
            event("no route")
            with pytest.raises(NoRouteError):
                planner.shortest_path_xy(start, goal)
            continue
        path = planner.shortest_path_xy(start, goal)
        assert path[0] == pytest.approx(start) and path[-1] == pytest.approx(goal)
        line = LineString(path) if len(path) > 1 and path[0] != path[-1] else Point(path[0])
        for z in zones:
            assert line.distance(z) >= margin - TOL, "route cuts into a zone's margin"
        assert asp.service_xy.buffer(TOL).covers(line), "route leaves the service area"
        assert planner.inner.buffer(TOL).covers(line), "route comes closer to the edge than the edge margin"
        event("straight" if len(path) == 2 else "bends")
        length = path_length(path)
        # the pure-Python search (used without numba) must find the same optimum as the compiled one
        ref = planner.mesh.shortest_path(start, goal, planner._locate(start), planner._locate(goal), compiled=False)
        assert path_length(ref) == pytest.approx(length, rel=1e-9, abs=TOL)
        assert length <= best + TOL + 1e-9 * best, f"route {length} m longer than the optimum {best} m"
        assert length >= best - TOL - 1e-9 * best, f"route {length} m shorter than the brute force {best} m"
        if planner.free.covers(LineString([start, goal])):
            assert len(path) == 2, "nothing in the way, yet the route bends"


@SETTINGS
@given(scenarios(max_zones=4), st.data())
def test_high_floor_zones_never_bend_the_route(sc, data):
    """Zones whose floor is above the flight band are flown under: the route is as if they were absent."""
    w, h, shapes, margin, edge, fracs = sc
    if data.draw(st.booleans(), label="only high zones"):
        shapes = []
    high = data.draw(st.lists(zone_shapes(w, h), min_size=1, max_size=4))
    top = 120.0
    floors = [0.0] * len(shapes) + [data.draw(st.floats(min_value=top + 1, max_value=2000.0)) for _ in high]
    with_high = make_airspace(w, h, shapes + high, floors)
    without = make_airspace(w, h, shapes)
    p1 = RoutePlanner(with_high, lateral_margin_m=margin, edge_margin_m=edge, top_agl_m=top)
    p0 = RoutePlanner(without, lateral_margin_m=margin, edge_margin_m=edge, top_agl_m=top)
    assert len(p1.relevant) == len(shapes)
    for start, goal in zip(*[iter(free_points(p0, fracs))] * 2):
        try:
            a = p0.shortest_path_xy(start, goal)
        except NoRouteError:
            with pytest.raises(NoRouteError):
                p1.shortest_path_xy(start, goal)
            continue
        b = p1.shortest_path_xy(start, goal)
        assert path_length(b) == pytest.approx(path_length(a), rel=1e-9, abs=TOL)
        if not shapes:
            assert len(b) == 2, "a zone above the flight band bent the route"


@SETTINGS
@given(st.floats(min_value=1500.0, max_value=5000.0), st.lists(st.tuples(coord, coord), min_size=8, max_size=8))
def test_empty_airspace_routes_straight(w, fracs):
    planner = RoutePlanner(make_airspace(w, w, []), lateral_margin_m=30.0)
    pts = free_points(planner, fracs)
    for start, goal in zip(pts[0::2], pts[1::2]):
        assert planner.shortest_path_xy(start, goal) == [start, goal]


@st.composite
def dense_maps(draw):
    """A 3 x 3 grid of star, L and convex zones packed close together: many corners hidden behind others."""
    cell = 400.0
    shapes = []
    for i in range(3):
        for j in range(3):
            cx, cy = (i - 1) * cell + draw(st.floats(-30, 30)), (j - 1) * cell + draw(st.floats(-30, 30))
            k = draw(st.integers(5, 10))
            rs = draw(st.lists(st.floats(0.35, 1.0), min_size=k, max_size=k))
            angs = np.linspace(0, 2 * math.pi, k, endpoint=False) + draw(st.floats(0, 1))
            shapes.append(("poly", Polygon([(cx + 150 * r * math.cos(a), cy + 150 * r * math.sin(a))
                                            for r, a in zip(rs, angs)])))
    return shapes


@settings(SETTINGS, max_examples=25)
@given(dense_maps())
def test_visibility_graph_is_every_visible_bitangent_pair(shapes):
    """The reference planner's graph holds exactly the corner pairs that see each other along a bitangent line.

    Reference: reflex corners of the free region and their boundary neighbours, every pair tested with
    GEOS's covered_by against the whole free polygon -- no shadow filter, no index.
    """
    asp = make_airspace(1400.0, 1400.0, shapes)
    planner = VisibilityGraphPlanner(asp, lateral_margin_m=15.0)
    free = shapely.orient_polygons(planner.free)
    corners, prevs, nexts = [], [], []
    for poly in getattr(free, "geoms", [free]):
        for ring in [poly.exterior, *poly.interiors]:
            c = np.asarray(ring.coords)[:-1]
            p, n = np.roll(c, 1, axis=0), np.roll(c, -1, axis=0)
            turn = np.cross(c - p, n - c)
            corners.append(c[turn < -1e-9]); prevs.append(p[turn < -1e-9]); nexts.append(n[turn < -1e-9])
    c, p, n = np.concatenate(corners), np.concatenate(prevs), np.concatenate(nexts)
    assert {tuple(x) for x in c.tolist()} == {tuple(x) for x in planner.nodes.tolist()}
    ii, jj = np.triu_indices(len(c), k=1)
    d = c[jj] - c[ii]

    def same_side(k, d):
        return np.cross(d, p[k] - c[k]) * np.cross(d, n[k] - c[k]) >= -1e-9

    bitangent = same_side(ii, d) & same_side(jj, -d)
    ii, jj = ii[bitangent], jj[bitangent]
    seen = shapely.covered_by(shapely.linestrings(np.stack([c[ii], c[jj]], axis=1)), free)
    expected = {frozenset([tuple(c[a]), tuple(c[b])]) for a, b in zip(ii[seen].tolist(), jj[seen].tolist())}
    got = {frozenset([tuple(planner.nodes[a]), tuple(planner.nodes[b])])
           for a in range(len(planner.adj)) for b, _ in planner.adj[a]}
    event(f"{len(expected) // 100 * 100}+ edges")
    assert got == expected, f"missing {len(expected - got)}, extra {len(got - expected)}"
