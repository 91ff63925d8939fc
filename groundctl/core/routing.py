"""Shortest paths through free airspace: a reduced visibility graph with A*.

Free space = service area shrunk by an edge margin, minus every relevant no-fly zone grown by the
lateral margin. The shortest path in a polygonal domain bends only at reflex corners of free space
(convex corners of obstacles), and only along lines tangent to the boundary at both ends; so the
graph keeps only those corners and those bitangent edges, which prunes most of the O(n^2) pairs
before the expensive visibility test (one vectorised `covered_by` over all candidate segments).

Buffers are polygons whose vertices lie on a circle of radius margin / cos(pi / 4q): every chord then
stays at least `margin` from the zone, so the clearance promise holds for the polygonal geometry.
The path found is the exact optimum for that buffered geometry.
"""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass, field

import numpy as np
import shapely
from shapely.geometry import LineString, MultiPolygon, Point, Polygon
from shapely.geometry.base import BaseGeometry

from groundctl.core.airspace import Airspace
from groundctl.core.geo import LocalFrame, geodesic_length_m
from groundctl.errors import NoRouteError

QUAD_SEGS = 4  # vertices per quarter circle of a buffer; 16 per full turn


def buffer_out(geom: BaseGeometry, margin_m: float, quad_segs: int = QUAD_SEGS) -> BaseGeometry:
    """Grow geom by at least margin_m everywhere (inflated so polygon chords keep the margin)."""
    if margin_m <= 0:
        return geom
    return geom.buffer(margin_m / math.cos(math.pi / (4 * quad_segs)), quad_segs=quad_segs)


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


class RoutePlanner:
    """Plans shortest routes in one airspace for one flight band. Build once, query many times."""

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
        self.obstacles = [buffer_out(zones_xy[i], lateral_margin_m) for i in self.relevant]
        blocked = shapely.union_all(self.obstacles) if self.obstacles else Polygon()
        free = self.inner.difference(blocked) if not blocked.is_empty else self.inner
        # orient so the free region is on the left of every ring: reflex corners are then right turns
        self.free = shapely.orient_polygons(free) if hasattr(shapely, "orient_polygons") else _orient(free)
        shapely.prepare(self.free)
        self._obstacle_tree = shapely.STRtree(self.obstacles) if self.obstacles else None
        self._build_graph()

    # -- graph construction -----------------------------------------------------------------------
    def _build_graph(self) -> None:
        nodes, prevs, nexts = [], [], []
        for poly in _polygons(self.free):
            for ring in [poly.exterior, *poly.interiors]:
                c = np.asarray(ring.coords)[:-1]
                if len(c) < 3:
                    continue
                p, n = np.roll(c, 1, axis=0), np.roll(c, -1, axis=0)
                cross = (c[:, 0] - p[:, 0]) * (n[:, 1] - c[:, 1]) - (c[:, 1] - p[:, 1]) * (n[:, 0] - c[:, 0])
                reflex = cross < -1e-9  # right turn with free space on the left: a corner to bend round
                nodes.append(c[reflex]); prevs.append(p[reflex]); nexts.append(n[reflex])
        if nodes:
            self.nodes = np.concatenate(nodes)
            self.prev = np.concatenate(prevs)
            self.next = np.concatenate(nexts)
        else:
            self.nodes = self.prev = self.next = np.empty((0, 2))
        n = len(self.nodes)
        adj: list[list[tuple[int, float]]] = [[] for _ in range(n)]
        if n >= 2:
            chunk = max(1, 2_000_000 // n)
            for start in range(0, n, chunk):
                rows = np.arange(start, min(n, start + chunk))
                ii, jj = np.meshgrid(rows, np.arange(n), indexing="ij")
                mask = jj > ii
                ii, jj = ii[mask], jj[mask]
                keep = self._tangent(ii, self.nodes[jj]) & self._tangent(jj, self.nodes[ii])
                ii, jj = ii[keep], jj[keep]
                if len(ii) == 0:
                    continue
                vis = self._visible(self.nodes[ii], self.nodes[jj])
                ii, jj = ii[vis], jj[vis]
                d = np.hypot(*(self.nodes[ii] - self.nodes[jj]).T)
                for a, b, w in zip(ii.tolist(), jj.tolist(), d.tolist()):
                    adj[a].append((b, w))
                    adj[b].append((a, w))
        self.adj = adj
        self.edge_count = sum(len(a) for a in adj) // 2

    def _tangent(self, idx: np.ndarray, other: np.ndarray) -> np.ndarray:
        """Is the line from node idx towards `other` tangent to the boundary at the node?

        Both boundary neighbours of the node must lie on the same side of the line; otherwise the
        line cuts through the corner and a path would never bend there.
        """
        u = self.nodes[idx]
        d = other - u
        a = self.prev[idx] - u
        b = self.next[idx] - u
        ca = d[:, 0] * a[:, 1] - d[:, 1] * a[:, 0]
        cb = d[:, 0] * b[:, 1] - d[:, 1] * b[:, 0]
        return ca * cb >= -1e-9

    def _visible(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        lines = shapely.linestrings(np.stack([a, b], axis=1))
        return shapely.covered_by(lines, self.free)

    # -- queries ----------------------------------------------------------------------------------
    def _explain_blocked(self, pt: Point, label: str) -> NoRouteError:
        if not self.service.covers(pt):
            return NoRouteError(f"{label} is outside the service area {self.airspace.name!r}", field=label)
        if not self.inner.covers(pt):
            return NoRouteError(f"{label} is too close to the edge of the service area", field=label)
        names = []
        if self._obstacle_tree is not None:
            for i in self._obstacle_tree.query(pt, predicate="intersects"):
                names.append(self.airspace.zones[self.relevant[int(i)]].name)
        return NoRouteError(
            f"{label} is inside no-fly zone {', '.join(map(repr, names))} or within its {self.lateral_margin_m:g} m margin",
            field=label)

    def shortest_path_xy(self, start: tuple[float, float], goal: tuple[float, float]) -> list[tuple[float, float]]:
        s, g = Point(start), Point(goal)
        for pt, label in ((s, "start"), (g, "goal")):
            if not shapely.covered_by(pt, self.free):
                raise self._explain_blocked(pt, label)
        sg = np.array([start, goal], dtype=float)
        if self._visible(sg[:1], sg[1:])[0]:
            return [tuple(start), tuple(goal)]
        n = len(self.nodes)
        S, G = n, n + 1
        extra: dict[int, list[tuple[int, float]]] = {S: [], G: []}
        to_goal: dict[int, float] = {}
        for which, p in ((S, sg[0]), (G, sg[1])):
            if n == 0:
                break
            idx = np.nonzero(self._tangent(np.arange(n), np.broadcast_to(p, (n, 2))))[0]
            if len(idx) == 0:
                continue
            vis = idx[self._visible(np.broadcast_to(p, (len(idx), 2)), self.nodes[idx])]
            dist = np.hypot(*(self.nodes[vis] - p).T)
            if which == S:
                extra[S] = list(zip(vis.tolist(), dist.tolist()))
            else:
                to_goal = dict(zip(vis.tolist(), dist.tolist()))
        path = self._astar(S, G, extra[S], to_goal, sg[1])
        if path is None:
            raise NoRouteError(self._disconnected_reason(s, g), field="route")
        pts = [tuple(sg[0])] + [tuple(self.nodes[i]) for i in path] + [tuple(sg[1])]
        return _drop_collinear([(float(x), float(y)) for x, y in pts])

    def _astar(self, S: int, G: int, from_start, to_goal: dict[int, float], goal: np.ndarray):
        nodes = self.nodes
        gx, gy = float(goal[0]), float(goal[1])
        hx = nodes[:, 0] - gx
        hy = nodes[:, 1] - gy
        h = np.hypot(hx, hy).tolist()
        best: dict[int, float] = {}
        parent: dict[int, int] = {}
        heap: list[tuple[float, float, int]] = []
        for v, w in from_start:
            if w < best.get(v, math.inf):
                best[v] = w
                parent[v] = S
                heapq.heappush(heap, (w + h[v], w, v))
        goal_cost = math.inf
        goal_parent = -1
        adj = self.adj
        while heap:
            f, gcost, u = heapq.heappop(heap)
            if f >= goal_cost:
                break
            if gcost > best.get(u, math.inf):
                continue
            tg = to_goal.get(u)
            if tg is not None and gcost + tg < goal_cost:
                goal_cost = gcost + tg
                goal_parent = u
            for v, w in adj[u]:
                nc = gcost + w
                if nc < best.get(v, math.inf):
                    best[v] = nc
                    parent[v] = u
                    heapq.heappush(heap, (nc + h[v], nc, v))
        if goal_parent < 0:
            return None
        path = [goal_parent]
        while parent[path[-1]] != S:
            path.append(parent[path[-1]])
        return path[::-1]

    def _disconnected_reason(self, s: Point, g: Point) -> str:
        comps = _polygons(self.free)
        comp_g = next((c for c in comps if c.covers(g)), None)
        names = []
        if comp_g is not None and self._obstacle_tree is not None:
            ring = comp_g.exterior
            for i in self._obstacle_tree.query(ring, predicate="intersects"):
                names.append(self.airspace.zones[self.relevant[int(i)]].name)
        why = f"; it is closed off by {', '.join(map(repr, sorted(set(names))))}" if names else ""
        return f"start and goal are in separate parts of the free airspace{why}"

    def route(self, start_ll: tuple[float, float], goal_ll: tuple[float, float]) -> Route:
        """Shortest route between two (lon, lat) points."""
        sx, sy = self.frame.to_xy(*start_ll)
        gx, gy = self.frame.to_xy(*goal_ll)
        pts = self.shortest_path_xy((sx, sy), (gx, gy))
        xs, ys = zip(*pts)
        lons, lats = self.frame.to_lonlat(np.array(xs), np.array(ys))
        ll = [(float(a), float(b)) for a, b in zip(lons, lats)]
        ll[0], ll[-1] = tuple(start_ll), tuple(goal_ll)  # exact ends, no round-trip error
        return Route(points_xy=pts, points_ll=ll, length_m=geodesic_length_m(ll), skirted=self.skirted(pts))

    def skirted(self, pts: list[tuple[float, float]]) -> list[str]:
        """Zones the path passes within twice the margin of: the ones it had to bend round."""
        if self._obstacle_tree is None or len(pts) < 2:
            return []
        line = LineString(pts)
        hits = self._obstacle_tree.query(line, predicate="dwithin", distance=self.lateral_margin_m + 1.0)
        return sorted({self.airspace.zones[self.relevant[int(i)]].name for i in hits})


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
