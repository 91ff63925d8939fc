"""Shortest paths on a reduced visibility graph with A*: the planner before the navigation mesh.

Free space = service area shrunk by an edge margin, minus every relevant no-fly zone grown by the
lateral margin. The shortest path in a polygonal domain bends only at reflex corners of free space
(convex corners of obstacles), and only along lines tangent to the boundary at both ends; so the
graph keeps only those corners and those bitangent edges, which prunes most of the O(n^2) pairs
before the visibility test. Visibility is exact: a conservative angular "shadow" filter first drops
pairs that certainly pass through a hole, then each remaining segment is tested against the few
blocking polygons an STRtree finds near it (see _visible).

groundctl.core.routing.RoutePlanner replaced it (a triangle mesh, no graph); this one stays as a second,
independent exact planner that tests and the benchmark compare the mesh planner against.
"""

from __future__ import annotations

import heapq
import math

import numpy as np
import shapely
from shapely.geometry import LineString, Point, Polygon

from groundctl.core.airspace import Airspace
from groundctl.core.geo import LocalFrame
from groundctl.core.routing import Route, _drop_collinear, _orient, _polygons, buffer_out, route_between
from groundctl.errors import NoRouteError


class VisibilityGraphPlanner:
    """The former planner: a reduced visibility graph built up front (O(n^2) pair tests), with A*.

    Kept as an independent exact reference for the mesh planner (tests and benchmark), not for service:
    its preparation grows as n^2.5 (224 s at 1,000 zones).
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
        comps = _polygons(self.free)
        self._prepare_visibility(comps)
        nodes, prevs, nexts, comp_of, hole_of = [], [], [], [], []
        hole_no = 0
        for ci, poly in enumerate(comps):
            for ri, ring in enumerate([poly.exterior, *poly.interiors]):
                hid = -1
                if ri > 0:
                    hid, hole_no = hole_no, hole_no + 1
                c = np.asarray(ring.coords)[:-1]
                if len(c) < 3:
                    continue
                p, n = np.roll(c, 1, axis=0), np.roll(c, -1, axis=0)
                cross = (c[:, 0] - p[:, 0]) * (n[:, 1] - c[:, 1]) - (c[:, 1] - p[:, 1]) * (n[:, 0] - c[:, 0])
                reflex = cross < -1e-9  # right turn with free space on the left: a corner to bend round
                k = int(reflex.sum())
                nodes.append(c[reflex]); prevs.append(p[reflex]); nexts.append(n[reflex])
                comp_of.append(np.full(k, ci)); hole_of.append(np.full(k, hid))
        if nodes:
            self.nodes = np.concatenate(nodes)
            self.prev = np.concatenate(prevs)
            self.next = np.concatenate(nexts)
            self._node_comp = np.concatenate(comp_of)
            self._node_hole = np.concatenate(hole_of)
        else:
            self.nodes = self.prev = self.next = np.empty((0, 2))
            self._node_comp = self._node_hole = np.empty(0, dtype=int)
        n = len(self.nodes)
        adj: list[list[tuple[int, float]]] = [[] for _ in range(n)]
        pend_i: list[np.ndarray] = []
        pend_j: list[np.ndarray] = []
        pending = 0

        def flush() -> None:
            nonlocal pending
            if not pend_i:
                return
            ii, jj = np.concatenate(pend_i), np.concatenate(pend_j)
            pend_i.clear(); pend_j.clear()
            pending = 0
            vis = self._visible(self.nodes[ii], self.nodes[jj], self._node_comp[ii], self._node_comp[jj])
            ii, jj = ii[vis], jj[vis]
            d = np.hypot(*(self.nodes[ii] - self.nodes[jj]).T)
            for a, b, w in zip(ii.tolist(), jj.tolist(), d.tolist()):
                adj[a].append((b, w))
                adj[b].append((a, w))

        nodes_ = self.nodes
        ea, eb = self.prev - self.nodes, self.next - self.nodes  # boundary neighbours, relative
        for i in range(n - 1):
            u = nodes_[i]
            j = np.arange(i + 1, n)
            d = nodes_[i + 1:] - u
            dx, dy = d[:, 0], d[:, 1]
            # bitangent at both ends (see _tangent), written out for one row
            (ax, ay), (bx, by) = ea[i], eb[i]
            keep = (dx * ay - dy * ax) * (dx * by - dy * bx) >= -1e-9
            a2, b2 = ea[i + 1:], eb[i + 1:]
            keep &= (dx * a2[:, 1] - dy * a2[:, 0]) * (dx * b2[:, 1] - dy * b2[:, 0]) >= -1e-9
            if self._fast_vis:
                keep &= self._node_comp[i + 1:] == self._node_comp[i]
            j = j[keep]
            if len(j) == 0:
                continue
            if self._fast_vis:
                j = j[~self._shadowed(u, nodes_[j], int(self._node_hole[i]))]
            pend_i.append(np.full(len(j), i)); pend_j.append(j)
            pending += len(j)
            if pending > 200_000:
                flush()
        flush()
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

    # -- visibility -------------------------------------------------------------------------------
    # A segment lies in free space iff it stays inside its component's exterior ring and meets the
    # interior of none of its holes. Instead of asking GEOS whether the whole free polygon covers each
    # segment (a full relate against every ring, as the segment ends touch the boundary), we test the
    # segment against the few blocking polygons an STRtree finds near it: `intersects and not touches`
    # is exactly "meets the interior". Before that, a conservative angular shadow filter drops
    # segments that certainly pass right through a hole (see _shadowed); it never drops a visible one.

    SHADOW_BINS = 4096
    SHADOW_VERTS = 12

    def _prepare_visibility(self, comps: list[Polygon]) -> None:
        self._comps = comps
        self._fast_vis = True
        if len(comps) > 1:
            # components that touch (at a pinch point) are left to GEOS on the whole free polygon
            tree = shapely.STRtree(comps)
            a, b = tree.query(comps, predicate="intersects")
            self._fast_vis = bool(np.all(a == b))
        blockers: list[Polygon] = []
        owner: list[int] = []
        holes: list[Polygon] = []
        for ci, poly in enumerate(comps):
            for ring in poly.interiors:
                holes.append(Polygon(ring))
                blockers.append(holes[-1]); owner.append(ci)
        n_holes = len(holes)
        for ci, poly in enumerate(comps):
            ext = np.asarray(poly.exterior.coords)[:-1]
            p, n = np.roll(ext, 1, axis=0), np.roll(ext, -1, axis=0)
            cross = (ext[:, 0] - p[:, 0]) * (n[:, 1] - ext[:, 1]) - (ext[:, 1] - p[:, 1]) * (n[:, 0] - ext[:, 0])
            if np.all(cross >= -1e-9):
                continue  # convex exterior: a segment between two points of the component stays inside it
            x0, y0, x1, y1 = poly.bounds
            pad = 1.0 + 1e-3 * max(x1 - x0, y1 - y0)
            outside = shapely.box(x0 - pad, y0 - pad, x1 + pad, y1 + pad).difference(Polygon(poly.exterior))
            for part in _polygons(outside):
                blockers.append(part); owner.append(ci)
        self._blockers = np.array(blockers, dtype=object)
        self._blocker_comp = np.array(owner, dtype=int)
        self._blocker_tree = shapely.STRtree(self._blockers) if blockers else None
        # shadow data: convex hulls of holes that enclose no other component
        use = np.ones(n_holes, dtype=bool)
        if len(comps) > 1 and n_holes:
            reps = np.array([c.representative_point() for c in comps], dtype=object)
            for k, h in enumerate(holes):
                if shapely.contains(h, reps).any():
                    use[k] = False
        self._hole_to_shadow = np.full(max(n_holes, 1), -1)
        idx = np.nonzero(use)[0]
        self._hole_to_shadow[idx] = np.arange(len(idx))
        if len(idx):
            hulls = shapely.convex_hull(np.array(holes, dtype=object)[idx])
            rings = shapely.get_exterior_ring(hulls)
            coords, which = shapely.get_coordinates(rings, return_index=True)
            counts = shapely.get_num_coordinates(rings)
            last = np.cumsum(counts) - 1
            keep = np.ones(len(coords), dtype=bool)
            keep[last] = False  # closing vertex
            coords, which = coords[keep], which[keep]
            starts = np.concatenate([[0], np.cumsum(counts - 1)[:-1]])
            centre = np.column_stack([np.add.reduceat(coords[:, 0], starts), np.add.reduceat(coords[:, 1], starts)])
            centre /= (counts - 1)[:, None]
            r = np.hypot(*(coords - centre[which]).T)
            nv = counts - 1
            self._sh_c, self._sh_rad = centre, np.maximum.reduceat(r, starts)
            self._sh_fv, self._sh_fstart, self._sh_fcount = coords, starts, nv
            # a subset of each hull's vertices spans a convex polygon inside the hull: enough for the
            # angular range seen from points outside the hull's circumscribed circle
            pos = np.arange(len(coords)) - starts[which]
            step = np.maximum(1, -(-nv // self.SHADOW_VERTS))
            dec = pos % step[which] == 0
            self._sh_v, self._sh_id = coords[dec], which[dec]
            self._sh_start = np.concatenate([[0], np.cumsum(np.bincount(which[dec], minlength=len(nv)))[:-1]])
        else:
            self._sh_v = None

    def _shadowed(self, p: np.ndarray, q: np.ndarray, skip_hole: int = -1) -> np.ndarray:
        """Segments p->q[i] that certainly cross the interior of some hole (True) -- conservative.

        Seen from p outside the convex hull of a hole, a ray strictly between the hull's two tangent
        directions that runs past the hull (farther than any hull point) passes through the hull's
        interior, and then through the hole's interior: it can only enter a pocket of the hull through
        the pocket's lid and must leave it through the hole. Directions are binned; a bin counts for a
        hole only when it lies wholly inside the hole's open angular range.
        """
        out = np.zeros(len(q), dtype=bool)
        if self._sh_v is None or len(q) == 0:
            return out
        px, py = float(p[0]), float(p[1])
        cx, cy = self._sh_c[:, 0] - px, self._sh_c[:, 1] - py
        dc = np.hypot(cx, cy)
        thc = np.arctan2(cy, cx)
        vx, vy = self._sh_v[:, 0] - px, self._sh_v[:, 1] - py
        ang = np.arctan2(vy, vx) - thc[self._sh_id]
        ang = (ang + math.pi) % (2 * math.pi) - math.pi
        st = self._sh_start
        lo = np.minimum.reduceat(ang, st)
        hi = np.maximum.reduceat(ang, st)
        near = dc <= self._sh_rad * (1 + 1e-9) + 1e-9  # p may be inside or on the hull
        use = ~near & (hi - lo < math.pi - 1e-6)
        skip = self._hole_to_shadow[skip_hole] if skip_hole >= 0 else -1
        for k in np.nonzero(near)[0].tolist():
            if k == skip:
                continue
            f0 = self._sh_fstart[k]
            v = self._sh_fv[f0:f0 + self._sh_fcount[k]] - (px, py)
            if np.min(v[:, 0] * v[:, 0] + v[:, 1] * v[:, 1]) <= 1e-12:
                continue  # p is a hull vertex
            t = (np.arctan2(v[:, 1], v[:, 0]) - thc[k] + math.pi) % (2 * math.pi) - math.pi
            lo[k], hi[k] = t.min(), t.max()
            use[k] = hi[k] - lo[k] < math.pi - 1e-6  # otherwise p is inside or on the hull
        if not use.any():
            return out
        B = self.SHADOW_BINS
        w = 2 * math.pi / B
        a = thc[use] + lo[use] + 1e-9
        b = thc[use] + hi[use] - 1e-9
        far = (dc[use] + self._sh_rad[use]) * (1 + 1e-12) + 1e-9
        s = np.floor((a + math.pi) / w).astype(np.int64) + 1
        e = np.ceil((b + math.pi) / w).astype(np.int64) - 2
        length = e - s + 1
        ok = length > 0
        if not ok.any():
            return out
        s, length, far = s[ok], length[ok], far[ok]
        tot = int(length.sum())
        offs = np.cumsum(length) - length
        bins = (np.arange(tot) - np.repeat(offs - s, length)) % B
        env = np.full(B, np.inf)
        np.minimum.at(env, bins, np.repeat(far, length))
        dx, dy = q[:, 0] - px, q[:, 1] - py
        k = np.floor((np.arctan2(dy, dx) + math.pi) / w).astype(np.int64) % B
        return np.hypot(dx, dy) > env[k]

    def _visible(self, a: np.ndarray, b: np.ndarray, comp_a=None, comp_b=None) -> np.ndarray:
        """Does each segment a[i]-b[i] lie in (closed) free space? Exact."""
        lines = shapely.linestrings(np.stack([a, b], axis=1))
        if not self._fast_vis:
            return shapely.covered_by(lines, self.free)
        m = len(lines)
        ok = np.ones(m, dtype=bool)
        if comp_a is None:
            comp_a = self._component_of(a)
        if comp_b is None:
            comp_b = self._component_of(b)
        comp_a = np.broadcast_to(np.asarray(comp_a), (m,))
        comp_b = np.broadcast_to(np.asarray(comp_b), (m,))
        ok &= (comp_a == comp_b) & (comp_a >= 0)
        if self._blocker_tree is not None and ok.any():
            sel = np.nonzero(ok)[0]
            li, bi = self._blocker_tree.query(lines[sel], predicate="intersects")
            li = sel[li]
            mine = self._blocker_comp[bi] == comp_a[li]
            li, bi = li[mine], bi[mine]
            if len(li):
                inside = ~shapely.touches(lines[li], self._blockers[bi])
                ok[li[inside]] = False
        return ok

    def _component_of(self, pts: np.ndarray) -> np.ndarray:
        pts = np.asarray(pts, dtype=float).reshape(-1, 2)
        out = np.full(len(pts), -1)
        if len(self._comps) == 1:
            out[:] = 0
            return out
        geoms = shapely.points(pts)
        for ci, c in enumerate(self._comps):
            out[(out < 0) & shapely.covers(c, geoms)] = ci
        return out

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
        vs, ds = self._visible_nodes(sg[0])
        vg, dg = self._visible_nodes(sg[1])
        extra = {S: list(zip(vs.tolist(), ds.tolist()))}
        to_goal = dict(zip(vg.tolist(), dg.tolist()))
        path = self._astar(S, G, extra[S], to_goal, sg[1])
        if path is None:
            raise NoRouteError(self._disconnected_reason(s, g), field="route")
        pts = [tuple(sg[0])] + [tuple(self.nodes[i]) for i in path] + [tuple(sg[1])]
        return _drop_collinear([(float(x), float(y)) for x, y in pts])

    VIS_CACHE = 64  # query points whose visible corners are kept (a hub is asked for again and again)

    def _visible_nodes(self, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Corners visible from a free point p (tangent ones only), and their distances."""
        key = (float(p[0]), float(p[1]))
        cache = self.__dict__.setdefault("_vis_cache", {})
        hit = cache.get(key)
        if hit is not None:
            cache[key] = cache.pop(key)  # most recently used last
            return hit
        n = len(self.nodes)
        idx = np.empty(0, dtype=np.int64)
        if n:
            d = p - self.nodes
            a, b = self.prev - self.nodes, self.next - self.nodes
            idx = np.nonzero((d[:, 0] * a[:, 1] - d[:, 1] * a[:, 0]) * (d[:, 0] * b[:, 1] - d[:, 1] * b[:, 0]) >= -1e-9)[0]
        if len(idx) and self._fast_vis:
            comp = int(self._component_of(p)[0])
            idx = idx[self._node_comp[idx] == comp]
            idx = idx[~self._shadowed(p, self.nodes[idx])]
        if len(idx):
            idx = idx[self._visible(np.broadcast_to(p, (len(idx), 2)), self.nodes[idx])]
        out = (idx, np.hypot(*(self.nodes[idx] - p).T) if len(idx) else np.empty(0))
        cache[key] = out
        if len(cache) > self.VIS_CACHE:
            cache.pop(next(iter(cache)))
        return out

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
        return route_between(self, start_ll, goal_ll)

    def skirted(self, pts: list[tuple[float, float]]) -> list[str]:
        """Zones the path passes within twice the margin of: the ones it had to bend round."""
        if self._obstacle_tree is None or len(pts) < 2:
            return []
        line = LineString(pts)
        hits = self._obstacle_tree.query(line, predicate="dwithin", distance=self.lateral_margin_m + 1.0)
        return sorted({self.airspace.zones[self.relevant[int(i)]].name for i in hits})
