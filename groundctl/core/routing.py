"""Shortest paths through free airspace: exact any-angle search on a triangle mesh (Polyanya).

Free space = service area shrunk by an edge margin, minus every relevant no-fly zone grown by the
lateral margin. It is triangulated once (no visibility graph; see routing_mesh), and each query
searches intervals of triangle edges seen from the corners a path bends round: the path found is
the exact optimum for the buffered geometry, with a preparation of a few seconds at 3,000 zones.
Obstacles added after building (temporary restrictions) re-triangulate only the triangles they touch.

Buffers are polygons whose vertices lie on a circle of radius at least margin / cos(pi / 4q), grown
where GEOS's arc steps would let a chord dip inside: every chord then stays at least `margin` from the
zone, so the clearance promise holds for the polygonal geometry.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import shapely
from shapely.geometry import LineString, MultiPolygon, Point, Polygon
from shapely.geometry.base import BaseGeometry

from groundctl.core.airspace import Airspace
from groundctl.core.geo import LocalFrame, geodesic_length_m
from groundctl.core.routing_mesh import NavMesh
from groundctl.errors import InputError, NoRouteError

QUAD_SEGS = 4  # vertices per quarter circle of a buffer; 16 per full turn


def buffer_out(geom: BaseGeometry, margin_m: float, quad_segs: int = QUAD_SEGS) -> BaseGeometry:
    """Grow geom by at least margin_m everywhere (inflated so polygon chords keep the margin)."""
    if margin_m <= 0:
        return geom
    r = margin_m / math.cos(math.pi / (4 * quad_segs))
    out = geom.buffer(r, quad_segs=quad_segs)
    # GEOS splits a corner's arc into round(angle / quantum) equal steps, so a step can be up to 1.5
    # quanta wide and its chord then dips below `margin_m`. The chord depth scales with the radius:
    # grow the radius by the shortfall (twice at most; the second pass only mops up rounding).
    for _ in range(2):
        d = shapely.distance(shapely.boundary(out), geom)
        if not d < margin_m:
            break
        r *= margin_m / d * (1 + 1e-9)
        out = geom.buffer(r, quad_segs=quad_segs)
    return out


def _polygons(geom: BaseGeometry) -> list[Polygon]:
    if geom.is_empty:
        return []
    if isinstance(geom, Polygon):
        return [geom]
    return [g for g in getattr(geom, "geoms", []) if isinstance(g, Polygon) and not g.is_empty]


@dataclass
class Route:
    """A path in the local frame and in lon/lat, with its geodesic length."""

    points_xy: list[tuple[float, float]]
    points_ll: list[tuple[float, float]]  # (lon, lat)
    length_m: float
    skirted: list[str] = field(default_factory=list)  # zones the path passes close to

    @property
    def straight(self) -> bool:
        return len(self.points_xy) == 2

    def reversed(self) -> "Route":
        return Route(self.points_xy[::-1], self.points_ll[::-1], self.length_m, list(self.skirted))


def route_between(planner, start_ll: tuple[float, float], goal_ll: tuple[float, float]) -> Route:  # noqa: ANN001
    """A planner's shortest path in its frame, as a Route in lon/lat (both planners answer this way)."""
    sx, sy = planner.frame.to_xy(*start_ll)
    gx, gy = planner.frame.to_xy(*goal_ll)
    pts = planner.shortest_path_xy((sx, sy), (gx, gy))
    xs, ys = zip(*pts)
    lons, lats = planner.frame.to_lonlat(np.array(xs), np.array(ys))
    ll = [(float(a), float(b)) for a, b in zip(lons, lats)]
    ll[0], ll[-1] = tuple(start_ll), tuple(goal_ll)  # exact ends, no round-trip error
    return Route(points_xy=pts, points_ll=ll, length_m=geodesic_length_m(ll), skirted=planner.skirted(pts))


class RoutePlanner:
    """Plans shortest routes in one airspace for one flight band. Build once, query many times.

    Obstacles can be added and lifted after building (add_obstacle / remove_obstacle: a temporary
    restriction): only the mesh triangles around the obstacle are re-triangulated.
    """

    def __init__(self, airspace: Airspace, *, lateral_margin_m: float, edge_margin_m: float = 0.0,
                 top_agl_m: float = 120.0, ground_amsl_m: float = 0.0, frame: LocalFrame | None = None) -> None:
        self.airspace = airspace
        self.frame = frame or airspace.frame
        self.lateral_margin_m = lateral_margin_m
        self.relevant = airspace.blocking(top_agl_m, ground_amsl_m)
        zones_xy = airspace.zones_xy
        if self.frame != airspace.frame:
            zones_xy = [self.frame.project(airspace.frame.unproject(z)) for z in zones_xy]
            service = self.frame.project(airspace.service_area_ll)
        else:
            service = airspace.service_xy
        self.service = service
        self.inner = service.buffer(-edge_margin_m) if edge_margin_m > 0 else service
        self.obstacles = buffer_out_all([zones_xy[i] for i in self.relevant], lateral_margin_m)
        # orient so the free region is on the left of every ring
        self.free = _orient_all(_free_space(self.inner, self.obstacles))
        shapely.prepare(self.free)
        self.restrictions: dict[str, BaseGeometry] = {}  # key -> buffered obstacle added after building
        # how lifts were done (local: only the lifted obstacle's hole recomputed) and how often the mesh
        # had to be re-triangulated whole: what the tests check an incremental update by
        self.lifts_local = 0
        self.lifts_global = 0
        self.mesh_rebuilds = 0
        self._index_obstacles()
        self.mesh = NavMesh.of(self.free)

    # -- obstacles added after building (temporary restrictions) -----------------------------------
    def add_obstacle(self, key: str, polygon_ll: BaseGeometry) -> None:
        """Block `polygon_ll` (lon/lat Polygon or MultiPolygon) grown by the lateral margin, under `key`.

        A key already present is replaced. Takes effect for every later query; local work only.
        """
        self.add_obstacle_xy(key, self.frame.project(polygon_ll))

    def add_obstacle_xy(self, key: str, polygon_xy: BaseGeometry) -> None:
        """As add_obstacle, with the polygon in this planner's local metric frame."""
        if not isinstance(key, str) or not key:
            raise InputError("must be a non-empty string", field="obstacle.key")
        if polygon_xy.is_empty or polygon_xy.geom_type not in ("Polygon", "MultiPolygon") or not polygon_xy.is_valid:
            raise InputError(f"must be a valid, non-empty Polygon or MultiPolygon (obstacle {key!r})",
                             field="obstacle.geometry")
        if key in self.restrictions:
            self.remove_obstacle(key)
        buf = buffer_out(polygon_xy, self.lateral_margin_m)
        self.restrictions[key] = buf
        hit = self.mesh.triangles_hit(buf)
        new_free = _orient_all(_polygonal(self.free.difference(buf)))
        if len(hit):
            cavity = shapely.union_all(shapely.polygons(self.mesh.vertices[self.mesh.triangles[hit]]))
            self.mesh.replace_region(hit, _orient_all(_polygonal(cavity.difference(buf))))
        self._set_free(new_free)

    def remove_obstacle(self, key: str) -> None:
        """Lift the obstacle added under `key` (KeyError if there is none)."""
        buf = self.restrictions.pop(key)
        self._index_obstacles()
        new_free = self._lifted_free(buf)
        if new_free is None:
            # near the service edge, or freeing a pocket a ring of obstacles encloses: free space again from
            # the obstacles themselves (`free | buf` would leave hairline gaps where computed edges differ)
            self.lifts_global += 1
            new_free = _orient_all(_polygonal(_free_space(self.inner, list(self._all_obstacles))))
        else:
            self.lifts_local += 1
        restore = new_free.intersection(buf)
        if restore.is_empty or restore.area == 0:
            self._set_free(new_free)
            return
        hit = self.mesh.triangles_hit(restore)
        parts = [*shapely.polygons(self.mesh.vertices[self.mesh.triangles[hit]]), restore] if len(hit) else [restore]
        cavity = _polygonal(new_free.intersection(shapely.union_all(parts)))
        # the triangles' union still has the points where the lifted outline crossed a zone's edge: now
        # mid-edge, they are no vertices of free space. Keep only free space's own vertices and the seam's
        kept = np.ones(len(self.mesh.triangles), dtype=bool)
        kept[hit] = False
        on_seam = np.zeros(len(self.mesh.vertices), dtype=bool)
        on_seam[self.mesh.triangles[kept].reshape(-1)] = True
        seam = np.unique(self.mesh.triangles[hit].reshape(-1))
        allowed = {*map(tuple, self.mesh.vertices[seam[on_seam[seam]]].tolist())}
        rings = shapely.get_rings(shapely.get_parts(new_free))
        near = rings[shapely.STRtree(rings).query(shapely.box(*cavity.bounds))]
        allowed.update(map(tuple, shapely.get_coordinates(near).tolist()))
        self.mesh.replace_region(hit, _orient_all(_only_vertices(cavity, allowed)))
        self._set_free(new_free)

    def _lifted_free(self, buf: BaseGeometry) -> BaseGeometry | None:
        """Free space with `buf` lifted, recomputed only for the hole(s) of free space that held it.

        Such a hole is the union of a cluster of obstacles; its ring is replaced by the outlines of the
        union of the cluster's remaining obstacles, computed from the obstacles themselves as a fresh
        build does, so no edge is a rounded copy of another. None when that is not the whole change:
        free space in several parts, buf reaching the outer ring, or a freed pocket inside the cluster.
        """
        free = self.free
        if not isinstance(free, Polygon) or shapely.intersects(free.exterior, buf):
            return None
        rings = shapely.get_rings(free)[1:]
        if not len(rings):
            return None
        holes = shapely.polygons(rings)
        touched = np.unique(shapely.STRtree(holes).query(buf, predicate="intersects"))
        if not len(touched):
            return None
        cluster = shapely.union_all(holes[touched])
        # buf lies inside those holes (it is an obstacle and misses the outer ring); the obstacles left in
        # them are the ones found there, told by an inner point (not `intersects`: an obstacle of another
        # hole may touch this one's ring by rounding)
        others = np.empty(0, dtype=object)
        if self._obstacle_tree is not None:
            near = self._all_obstacles[self._obstacle_tree.query(cluster, predicate="intersects")]
            others = near[shapely.intersects(cluster, shapely.point_on_surface(near))]
        keep = np.ones(len(rings), dtype=bool)
        keep[touched] = False
        new_rings = list(rings[keep])
        if len(others):
            parts = [g for g in shapely.get_parts(shapely.union_all(others)) if isinstance(g, Polygon) and not g.is_empty]
            if any(len(g.interiors) for g in parts):
                return None  # a pocket inside a ring of obstacles becomes free space of its own
            new_rings += [g.exterior for g in parts]
        return _orient_all(Polygon(free.exterior, new_rings))

    @property
    def obstacle_keys(self) -> list[str]:
        return list(self.restrictions)

    def _set_free(self, free: BaseGeometry) -> None:
        self.free = free
        shapely.prepare(self.free)
        self._index_obstacles()
        if not self.mesh.matches(self.free):
            # a patch whose seam did not keep its vertices (should not happen): re-triangulate all
            self.mesh_rebuilds += 1
            self.mesh = NavMesh.of(self.free)

    def _index_obstacles(self) -> None:
        self._all_obstacles = np.array([*self.obstacles, *self.restrictions.values()], dtype=object)
        self._all_names = [self.airspace.zones[i].name for i in self.relevant] + list(self.restrictions)
        self._obstacle_tree = shapely.STRtree(self._all_obstacles) if len(self._all_obstacles) else None

    # -- queries ----------------------------------------------------------------------------------
    def _explain_blocked(self, pt: Point, label: str) -> NoRouteError:
        if not self.service.covers(pt):
            return NoRouteError(f"{label} is outside the service area {self.airspace.name!r}", field=label)
        if not self.inner.covers(pt):
            return NoRouteError(f"{label} is too close to the edge of the service area", field=label)
        names = []
        if self._obstacle_tree is not None:
            for i in self._obstacle_tree.query(pt, predicate="intersects"):
                names.append(self._all_names[int(i)])
        return NoRouteError(
            f"{label} is inside no-fly zone {', '.join(map(repr, names))} or within its {self.lateral_margin_m:g} m margin",
            field=label)

    def _locate(self, p: tuple[float, float]) -> list[int]:
        tris = self.mesh.locate(p)
        if not tris:
            # free.covers and the mesh may disagree by rounding on the boundary: take what touches it
            tris = [int(i) for i in self.mesh.triangles_hit(Point(p).buffer(1e-6, quad_segs=1))]
        return tris

    def shortest_path_xy(self, start: tuple[float, float], goal: tuple[float, float]) -> list[tuple[float, float]]:
        s, g = Point(start), Point(goal)
        for pt, label in ((s, "start"), (g, "goal")):
            if not shapely.covered_by(pt, self.free):
                raise self._explain_blocked(pt, label)
        start = (float(start[0]), float(start[1]))
        goal = (float(goal[0]), float(goal[1]))
        ts, tg = self._locate(start), self._locate(goal)
        path = self.mesh.shortest_path(start, goal, ts, tg) if ts and tg else None
        if path is None:
            raise NoRouteError(self._disconnected_reason(s, g), field="route")
        path[0], path[-1] = start, goal
        return _drop_collinear([(float(x), float(y)) for x, y in path])

    def _disconnected_reason(self, s: Point, g: Point) -> str:
        comps = _polygons(self.free)
        comp_g = next((c for c in comps if c.covers(g)), None)
        names = []
        if comp_g is not None and self._obstacle_tree is not None:
            ring = comp_g.exterior
            # dwithin, not intersects: the ring runs along the obstacle's edge up to rounding
            for i in self._obstacle_tree.query(ring, predicate="dwithin", distance=1e-3):
                names.append(self._all_names[int(i)])
        why = f"; it is closed off by {', '.join(map(repr, sorted(set(names))))}" if names else ""
        return f"start and goal are in separate parts of the free airspace{why}"

    def route(self, start_ll: tuple[float, float], goal_ll: tuple[float, float]) -> Route:
        """Shortest route between two (lon, lat) points."""
        return route_between(self, start_ll, goal_ll)

    def skirted(self, pts: list[tuple[float, float]]) -> list[str]:
        """Zones (and restrictions) the path passes within twice the margin of: the ones it bent round."""
        if self._obstacle_tree is None or len(pts) < 2:
            return []
        line = LineString(pts)
        hits = self._obstacle_tree.query(line, predicate="dwithin", distance=self.lateral_margin_m + 1.0)
        return sorted({self._all_names[int(i)] for i in hits})


def buffer_out_all(geoms: list[BaseGeometry], margin_m: float, quad_segs: int = QUAD_SEGS) -> list[BaseGeometry]:
    """buffer_out for many geometries at once, with GEOS's vectorised buffer and distance (same result)."""
    if margin_m <= 0 or not geoms:
        return list(geoms)
    arr = np.array(geoms, dtype=object)
    r = np.full(len(arr), margin_m / math.cos(math.pi / (4 * quad_segs)))
    out = shapely.buffer(arr, r, quad_segs=quad_segs)
    for _ in range(2):  # as buffer_out: grow the radius where a chord dips below the margin
        d = shapely.distance(shapely.boundary(out), arr)
        short = d < margin_m
        if not short.any():
            break
        r[short] *= margin_m / d[short] * (1 + 1e-9)
        out[short] = shapely.buffer(arr[short], r[short], quad_segs=quad_segs)
    return list(out)


def _free_space(inner: BaseGeometry, obstacles: list[BaseGeometry]) -> BaseGeometry:
    """inner minus the union of obstacles; the usual case (apart, well inside) without a big overlay.

    An obstacle that meets no other and lies strictly inside `inner` is simply a hole: only the rest
    goes through GEOS's union and difference, which at thousands of zones is most of the work.
    """
    if not obstacles:
        return inner
    arr = np.array(obstacles, dtype=object)
    tree = shapely.STRtree(arr)
    a, b = tree.query(arr, predicate="intersects")
    clustered = np.zeros(len(arr), dtype=bool)
    clustered[a[a != b]] = True
    shapely.prepare(inner)
    # a hole-free Polygon only: a ring-shaped zone's hole is free space (an island) and must stay
    simple = (~clustered & (shapely.get_type_id(arr) == 3) & (shapely.get_num_interior_rings(arr) == 0)
              & shapely.contains_properly(inner, arr))
    rest = arr[~simple]
    free = inner.difference(shapely.union_all(rest)) if len(rest) else inner
    holes = arr[simple]
    if not len(holes):
        return free
    comps = _polygons(free)
    if len(comps) == 1:
        owner = np.zeros(len(holes), dtype=int)
    else:
        ctree = shapely.STRtree(comps)
        hi, ci = ctree.query(shapely.point_on_surface(holes), predicate="within")
        owner = np.full(len(holes), -1)
        owner[hi] = ci
    out = []
    for k, c in enumerate(comps):
        mine = [shapely.get_exterior_ring(h) for h in holes[owner == k]]
        out.append(Polygon(c.exterior, [*c.interiors, *mine]) if mine else c)
    return out[0] if len(out) == 1 else MultiPolygon(out)


def _polygonal(geom: BaseGeometry) -> BaseGeometry:
    """Only the areas of an overlay's result (GEOS may add a hairline LineString or Point)."""
    if geom.geom_type in ("Polygon", "MultiPolygon"):
        return geom
    parts = shapely.get_parts(shapely.get_parts(geom))  # a collection may hold a MultiPolygon
    polys = [g for g in parts if isinstance(g, Polygon) and not g.is_empty]
    if not polys:
        return Polygon()
    return polys[0] if len(polys) == 1 else MultiPolygon(polys)


def _only_vertices(geom: BaseGeometry, allowed: set) -> BaseGeometry:
    """geom's polygons with every ring vertex not in `allowed` dropped (points an overlay left mid-edge)."""
    def ring(r):
        pts = [p for p in r.coords[:-1] if p in allowed]
        return pts if len(pts) >= 3 else None

    out = []
    for p in _polygons(geom):
        shell = ring(p.exterior)
        if shell is None:
            continue
        holes = [h for h in map(ring, p.interiors) if h is not None]
        out.append(Polygon(shell, holes))
    if not out:
        return Polygon()
    return out[0] if len(out) == 1 else MultiPolygon(out)


def _orient_all(geom: BaseGeometry) -> BaseGeometry:
    return shapely.orient_polygons(geom) if hasattr(shapely, "orient_polygons") else _orient(geom)


def _drop_collinear(pts: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """Remove corners the path passes straight through: they are not waypoints an autopilot needs."""
    out = [pts[0]]
    for i in range(1, len(pts) - 1):
        ax, ay = out[-1]
        bx, by = pts[i]
        cx, cy = pts[i + 1]
        cross = (bx - ax) * (cy - by) - (by - ay) * (cx - bx)
        if abs(cross) > 1e-9 * math.hypot(bx - ax, by - ay) * math.hypot(cx - bx, cy - by) + 1e-9:
            out.append(pts[i])
    out.append(pts[-1])
    return out


def _orient(geom: BaseGeometry) -> BaseGeometry:
    from shapely.geometry.polygon import orient

    polys = [orient(p, 1.0) for p in _polygons(geom)]
    return polys[0] if len(polys) == 1 else MultiPolygon(polys)
