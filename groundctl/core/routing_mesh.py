"""Free airspace as a triangle mesh, and exact any-angle shortest paths on it (Polyanya).

No visibility graph: the free region is split into triangles (a constrained triangulation of its
own boundary vertices, no Steiner points, so it covers exactly the buffered geometry), and a query
searches over *intervals* of triangle edges that are seen from a *root* (the start, or a corner the
path bends round). Each search node is (root, interval, triangle beyond the interval), its cost
g(root) + the shortest distance from the root through the interval to the goal, which is a lower
bound; so the first goal popped is the optimum. This is Cui, Harabor and Grastien, "Compromise-free
Pathfinding on a Navigation Mesh", IJCAI 2017, on a triangle mesh, with their root-level pruning
(a corner reached again with a larger g is dropped).

Preparation is one triangulation (Shewchuk's Triangle, O(n log n)), so a city of 3,000 zones is
ready in seconds, and a query touches only the triangles between start and goal. A restriction
added or lifted re-triangulates only the triangles around it (see replace_region).
"""

from __future__ import annotations

import heapq
import math

import numpy as np
import shapely
import triangle as _triangle
from shapely.geometry import Polygon
from shapely.geometry.base import BaseGeometry

from groundctl.core.routing_kernel import HAVE_NUMBA
from groundctl.core.routing_kernel import search as _kernel_search

_INF = math.inf


def _rings_pslg(polys: list[Polygon]):
    """Vertices, segments and hole points of polygons, for Triangle (duplicates merged). Vectorised:
    a city has thousands of rings."""
    if not polys:
        return np.empty((0, 2)), np.empty((0, 2), dtype=np.int32), np.empty((0, 2))
    rings, owner = shapely.get_rings(np.array(polys, dtype=object), return_index=True)
    first = np.ones(len(rings), dtype=bool)
    first[1:] = owner[1:] != owner[:-1]  # each polygon's first ring is its exterior
    n = shapely.get_num_coordinates(rings) - 1  # without the closing vertex
    ok = n >= 3
    rings, first, n = rings[ok], first[ok], n[ok]
    if not len(rings):
        return np.empty((0, 2)), np.empty((0, 2), dtype=np.int32), np.empty((0, 2))
    coords, which = shapely.get_coordinates(rings, return_index=True)
    start = np.concatenate([[0], np.cumsum(n + 1)[:-1]])
    keep = np.ones(len(coords), dtype=bool)
    keep[start + n] = False
    v = coords[keep]
    ring_of = which[keep]
    base = np.concatenate([[0], np.cumsum(n)[:-1]])
    idx = np.arange(len(v))
    nxt = idx + 1
    last = base + n - 1
    nxt[last] = base
    segs = np.column_stack([idx, nxt])
    holes = shapely.get_coordinates(shapely.point_on_surface(shapely.polygons(rings[~first])))
    # pinch points (two rings touching at a vertex) appear twice: Triangle wants each point once
    uv, inv = np.unique(v, axis=0, return_inverse=True)
    inv = inv.reshape(-1)
    del ring_of
    return uv, inv[segs].astype(np.int32), holes.reshape(-1, 2)


def triangulate(region: BaseGeometry) -> tuple[np.ndarray, np.ndarray]:
    """(vertices, triangles) covering exactly `region` (a Polygon or MultiPolygon), no new points."""
    polys = [region] if isinstance(region, Polygon) else [g for g in getattr(region, "geoms", []) if isinstance(g, Polygon)]
    polys = [p for p in polys if not p.is_empty and p.area > 0]
    v, s, h = _rings_pslg(polys)
    if len(v) < 3:
        return np.empty((0, 2)), np.empty((0, 3), dtype=np.int64)
    data = {"vertices": v, "segments": s}
    if len(h):
        data["holes"] = h
    out = _triangle.triangulate(data, "pQ")
    tv = out["vertices"]
    tris = out.get("triangles", np.empty((0, 3), dtype=np.int64)).astype(np.int64)
    if len(polys) > 1 and len(tris):
        # a gap enclosed by several parts (a zone that two pieces of a patch surround) has no hole point:
        # Triangle fills it. Keep only triangles inside a part (a centroid is strictly inside its triangle)
        region = shapely.multipolygons(polys)
        shapely.prepare(region)
        tris = tris[shapely.contains_xy(region, *tv[tris].mean(axis=1).T)]
    # Triangle keeps the input vertices first and in order; anything beyond would be a Steiner point
    # (it adds none with "p" alone on valid input), which the mesh could carry but we never expect
    return tv, tris


class NavMesh:
    """Triangles of the free region with their neighbours and the corners a path may bend round."""

    def __init__(self, vertices: np.ndarray, triangles: np.ndarray) -> None:
        v = np.asarray(vertices, dtype=float).reshape(-1, 2)
        self._set(v, _clean(v, triangles))

    @classmethod
    def of(cls, free: BaseGeometry) -> "NavMesh":
        return cls(*triangulate(free))

    # -- structure --------------------------------------------------------------------------------
    def _set(self, v: np.ndarray, t: np.ndarray, layers=None) -> None:
        self.vertices = v
        self.triangles = t
        n = len(t)
        # neighbour across edge k = (t[k], t[k+1]); the same edge appears reversed in the neighbour
        e0 = t.reshape(-1)
        e1 = t[:, [1, 2, 0]].reshape(-1)
        nv = max(len(v), 1)
        key = e0 * nv + e1
        rkey = e1 * nv + e0
        order = np.argsort(key)
        pos = np.searchsorted(key[order], rkey)
        pos = np.minimum(pos, max(len(order) - 1, 0))
        found = (key[order][pos] == rkey) if len(order) else np.zeros(0, dtype=bool)
        other = np.where(found, order[pos], -1) if len(order) else np.zeros(0, dtype=np.int64)
        nbr = np.where(other >= 0, other // 3, -1).reshape(n, 3)
        nbr_edge = np.where(other >= 0, other % 3, -1).reshape(n, 3)
        # corners: boundary vertices where the free region's angle exceeds a half turn (reflex)
        ang = np.zeros(len(v))
        if n:
            for k in range(3):
                p, q, r = v[t[:, k]], v[t[:, (k + 1) % 3]], v[t[:, (k + 2) % 3]]
                u, w = q - p, r - p
                np.add.at(ang, t[:, k], np.arctan2(u[:, 0] * w[:, 1] - u[:, 1] * w[:, 0], (u * w).sum(axis=1)))
        boundary = np.zeros(len(v), dtype=bool)
        boundary[e0[other < 0]] = True
        self.corner = boundary & (ang > math.pi + 1e-9)
        self.nbr = nbr
        self.nbr_edge = nbr_edge
        # point location: STRtrees of triangles with their current ids; a patch adds a small layer
        # instead of rebuilding the tree of every triangle (see replace_region)
        if layers is None:
            layers = [(shapely.STRtree(shapely.polygons(v[t])), np.arange(n))] if n else []
        self._layers = layers
        self._arrays = (np.ascontiguousarray(v[:, 0]), np.ascontiguousarray(v[:, 1]), np.ascontiguousarray(t),
                        np.ascontiguousarray(nbr), np.ascontiguousarray(nbr_edge), np.ascontiguousarray(self.corner))
        self.__dict__.pop("_lists", None)

    @property
    def _lists(self):
        """Plain lists for the pure-Python search, which reads one element at a time (built on first use)."""
        if "_lists" not in self.__dict__:
            self.__dict__["_lists"] = (self.vertices[:, 0].tolist(), self.vertices[:, 1].tolist(),
                                       self.triangles.tolist(), self.nbr.tolist(), self.nbr_edge.tolist(),
                                       self.corner.tolist())
        return self.__dict__["_lists"]

    def triangles_hit(self, geom: BaseGeometry) -> np.ndarray:
        """Ids of the triangles that meet geom (touching counts)."""
        out = []
        for tree, ids in self._layers:
            hit = ids[tree.query(geom, predicate="intersects")]
            out.append(hit[hit >= 0])
        return np.concatenate(out) if out else np.empty(0, dtype=np.int64)

    def locate(self, p: tuple[float, float]) -> list[int]:
        """Triangles whose closed area holds p (several on a shared edge or vertex)."""
        return [int(i) for i in self.triangles_hit(shapely.points(p))]

    def replace_region(self, drop: np.ndarray, region: BaseGeometry) -> None:
        """Drop triangles `drop` and triangulate `region` in their place.

        `region` must meet the kept triangles only along the dropped ones' outer edges, so the seam
        keeps its vertices and the patch fits without a global re-triangulation. Work beyond the
        patch is a few vectorised passes (neighbours, corners), no GEOS call over the whole mesh.
        """
        drop = np.unique(np.asarray(drop, dtype=np.int64))
        keep = np.ones(len(self.triangles), dtype=bool)
        keep[drop] = False
        kept = self.triangles[keep]
        pv, pt = triangulate(region)
        v = self.vertices
        # seam vertices of the patch are copies of the dropped triangles' vertices: reuse their ids
        seam = np.unique(self.triangles[drop].reshape(-1))
        known = {(float(x), float(y)): int(i) for (x, y), i in zip(v[seam].tolist(), seam.tolist())}
        ids = np.empty(len(pv), dtype=np.int64)
        fresh = []
        for k, (x, y) in enumerate(pv.tolist()):
            i = known.get((x, y))
            if i is None:
                i = len(v) + len(fresh)
                fresh.append((x, y))
            ids[k] = i
        if fresh:
            v = np.vstack([v, np.array(fresh, dtype=float)])
        patch = _clean(v, ids[pt]) if len(pt) else np.empty((0, 3), dtype=np.int64)
        old_to_new = np.where(keep, np.cumsum(keep) - 1, -1)
        layers = [(tree, np.where(m >= 0, old_to_new[np.maximum(m, 0)], -1)) for tree, m in self._layers]
        if len(patch):
            layers.append((shapely.STRtree(shapely.polygons(v[patch])), np.arange(len(kept), len(kept) + len(patch))))
        tris = np.vstack([kept, patch])
        if len(layers) > 16:
            layers = None  # many patches: one fresh tree again
        self._set(v, tris, layers)

    def matches(self, free: BaseGeometry) -> bool:
        """Do the triangles tile exactly `free` (same area, one boundary edge per ring edge)?"""
        v, t = self.vertices, self.triangles
        a, b, c = v[t[:, 0]], v[t[:, 1]], v[t[:, 2]]
        area = 0.5 * float(np.sum((b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (b[:, 1] - a[:, 1]) * (c[:, 0] - a[:, 0])))
        polys = [free] if isinstance(free, Polygon) else [g for g in getattr(free, "geoms", []) if isinstance(g, Polygon)]
        rings = sum(1 + len(p.interiors) for p in polys if not p.is_empty)
        edges = sum(int(shapely.get_num_coordinates(p)) for p in polys) - rings
        return int((self.nbr < 0).sum()) == edges and abs(area - free.area) <= 1e-9 * max(free.area, 1.0)

    # -- search -----------------------------------------------------------------------------------
    def shortest_path(self, start: tuple[float, float], goal: tuple[float, float],
                      start_tris: list[int], goal_tris: list[int], *, compiled: bool = True
                      ) -> list[tuple[float, float]] | None:
        """Exact shortest path start -> goal in the mesh (both located), or None when none exists.

        The compiled search (routing_kernel) when numba is there; otherwise this Python one.
        """
        if set(goal_tris).intersection(start_tris):
            return [(float(start[0]), float(start[1])), (float(goal[0]), float(goal[1]))]  # one convex triangle
        if compiled and HAVE_NUMBA:
            chain, self.last_expanded = _kernel_search(
                *self._arrays, float(start[0]), float(start[1]), float(goal[0]), float(goal[1]),
                np.asarray(start_tris, dtype=np.int64), np.asarray(goal_tris, dtype=np.int64))
            if len(chain) == 0:
                return None
            return [(float(x), float(y)) for x, y in chain[::-1].tolist()] + [(float(goal[0]), float(goal[1]))]
        X, Y, T, N, NE, C = self._lists
        sx, sy = float(start[0]), float(start[1])
        gx, gy = float(goal[0]), float(goal[1])
        goal_set = set(goal_tris)
        if goal_set.intersection(start_tris):
            return [(sx, sy), (gx, gy)]  # one convex triangle holds both
        # roots: (x, y, parent root, vertex or -1)
        roots: list[tuple[float, float, int, int]] = [(sx, sy, -1, -1)]
        root_g: dict[int, float] = {}
        heap: list = []
        push = heapq.heappush
        pop = heapq.heappop
        count = 0
        best = _INF
        best_root = -1

        def h(rx, ry, ax, ay, bx, by):
            """Shortest distance from r through segment a-b (right a, left b) to the goal."""
            ex, ey = bx - ax, by - ay
            side_r = ex * (ry - ay) - ey * (rx - ax)
            if side_r == 0:
                return math.hypot(gx - rx, gy - ry)  # root on the edge (a fan round a corner): all ahead
            side_g = ex * (gy - ay) - ey * (gx - ax)
            tx, ty = gx, gy
            if side_r * side_g > 0:  # same side as the root: mirror the goal across the interval's line
                ll = ex * ex + ey * ey
                if ll > 0:
                    k = 2 * side_g / ll
                    tx, ty = gx + k * ey, gy - k * ex
            o1 = (ax - rx) * (ty - ry) - (ay - ry) * (tx - rx)
            o2 = (bx - rx) * (ty - ry) - (by - ry) * (tx - rx)
            if o1 >= 0 and o2 <= 0:
                return math.hypot(tx - rx, ty - ry)
            if o1 < 0:
                return math.hypot(ax - rx, ay - ry) + math.hypot(tx - ax, ty - ay)
            return math.hypot(bx - rx, by - ry) + math.hypot(tx - bx, ty - by)

        def add(ri, g, rx, ry, ax, ay, av, bx, by, bv, tri, m):
            """Queue the interval a (right) .. b (left) on edge m of triangle tri, seen from root ri."""
            nonlocal count
            q = N[tri][m]
            if q < 0:
                return  # an obstacle edge: nothing beyond it
            if ax == bx and ay == by:
                return
            f = g + h(rx, ry, ax, ay, bx, by)
            if f >= best:
                return
            count += 1
            push(heap, (f, count, g, ri, ax, ay, av, bx, by, bv, q, NE[tri][m]))

        def new_root(vtx, parent, g):
            if g > root_g.get(vtx, _INF) * (1 + 1e-12) + 1e-9:
                return -1  # this corner is already reached by a shorter path
            if g < root_g.get(vtx, _INF):
                root_g[vtx] = g
            roots.append((X[vtx], Y[vtx], parent, vtx))
            return len(roots) - 1

        for t0 in start_tris:
            a, b, c = T[t0]
            for m, (p, q) in enumerate(((a, b), (b, c), (c, a))):
                # seen from inside the triangle, its counter-clockwise edge p->q runs right to left
                add(0, 0.0, sx, sy, X[p], Y[p], p, X[q], Y[q], q, t0, m)

        while heap:
            f, _, g, ri, ax, ay, av, bx, by, bv, P, j = pop(heap)
            if f >= best:
                break
            rx, ry, _parent, rvtx = roots[ri]
            tp = T[P]
            AL, AR, XV = tp[j], tp[(j + 1) % 3], tp[(j + 2) % 3]
            xx, xy = X[XV], Y[XV]
            mr, ml = (j + 1) % 3, (j + 2) % 3  # right edge AR->X, left edge X->AL
            alx, aly, arx, ary = X[AL], Y[AL], X[AR], Y[AR]
            in_goal = P in goal_set
            ex, ey = alx - arx, aly - ary
            side = ex * (ry - ary) - ey * (rx - arx)
            if rvtx == AR or rvtx == AL or abs(side) <= 1e-12 * (ex * ex + ey * ey + (rx - arx) ** 2 + (ry - ary) ** 2):
                if rvtx != AR and rvtx != AL and not (
                        -1e-9 <= (rx - arx) * ex + (ry - ary) * ey <= (ex * ex + ey * ey) * (1 + 1e-9)):
                    continue  # on the edge's line but beyond it: the edge is seen edge-on, nothing through it
                # the root is on this edge (a corner of the triangle, or the start): all of P is in view
                if in_goal:
                    c = g + math.hypot(gx - rx, gy - ry)
                    if c < best:
                        best, best_root = c, ri
                if rvtx == AR or (rx == arx and ry == ary):
                    add(ri, g, rx, ry, xx, xy, XV, alx, aly, AL, P, ml)
                    add(ri, g, rx, ry, arx, ary, AR, xx, xy, XV, P, mr)  # on round the corner
                elif rvtx == AL or (rx == alx and ry == aly):
                    add(ri, g, rx, ry, arx, ary, AR, xx, xy, XV, P, mr)
                    add(ri, g, rx, ry, xx, xy, XV, alx, aly, AL, P, ml)
                else:
                    add(ri, g, rx, ry, arx, ary, AR, xx, xy, XV, P, mr)
                    add(ri, g, rx, ry, xx, xy, XV, alx, aly, AL, P, ml)
                continue
            # rays from the root through the interval's ends, and where they leave P
            dxr, dyr = ax - rx, ay - ry
            dxl, dyl = bx - rx, by - ry
            o_r = dxr * (xy - ry) - dyr * (xx - rx)  # > 0: X left of the right ray
            o_l = dxl * (xy - ry) - dyl * (xx - rx)  # < 0: X right of the left ray
            right_is_vertex = av == AR and C[AR]
            left_is_vertex = bv == AL and C[AL]
            if in_goal:
                o1 = dxr * (gy - ry) - dyr * (gx - rx)
                o2 = dxl * (gy - ry) - dyl * (gx - rx)
                if o1 >= 0 and o2 <= 0:
                    c = g + math.hypot(gx - rx, gy - ry)
                    if c < best:
                        best, best_root = c, ri
                elif o1 < 0 and right_is_vertex:
                    gc = g + math.hypot(arx - rx, ary - ry)
                    c = gc + math.hypot(gx - arx, gy - ary)
                    if c < best:
                        k = new_root(AR, ri, gc)
                        if k >= 0:
                            best, best_root = c, k
                elif o2 > 0 and left_is_vertex:
                    gc = g + math.hypot(alx - rx, aly - ry)
                    c = gc + math.hypot(gx - alx, gy - aly)
                    if c < best:
                        k = new_root(AL, ri, gc)
                        if k >= 0:
                            best, best_root = c, k
            # right ray's exit point
            if o_r > 0:
                if av == AR:
                    rpx, rpy, rpv = arx, ary, AR
                else:
                    rpx, rpy = _cut(rx, ry, dxr, dyr, arx, ary, xx, xy)
                    rpv = -1
            elif o_r == 0:
                rpx, rpy, rpv = xx, xy, XV
            else:
                rpx, rpy = _cut(rx, ry, dxr, dyr, xx, xy, alx, aly)
                rpv = -1
            # left ray's exit point
            if o_l < 0:
                if bv == AL:
                    lpx, lpy, lpv = alx, aly, AL
                else:
                    lpx, lpy = _cut(rx, ry, dxl, dyl, xx, xy, alx, aly)
                    lpv = -1
            elif o_l == 0:
                lpx, lpy, lpv = xx, xy, XV
            else:
                lpx, lpy = _cut(rx, ry, dxl, dyl, arx, ary, xx, xy)
                lpv = -1
            # observable: the far boundary between the two exits, seen from the same root
            if o_r > 0:
                if o_l < 0:
                    add(ri, g, rx, ry, rpx, rpy, rpv, xx, xy, XV, P, mr)
                    add(ri, g, rx, ry, xx, xy, XV, lpx, lpy, lpv, P, ml)
                else:
                    add(ri, g, rx, ry, rpx, rpy, rpv, lpx, lpy, lpv, P, mr)
            elif o_l < 0:
                add(ri, g, rx, ry, rpx, rpy, rpv, lpx, lpy, lpv, P, ml)
            # not observable: round a corner at an end of the interval
            # only where the ray past the corner enters P (or grazes X) does its shadow start; while P
            # lies wholly left of it, the observable successor carries the corner on to the next triangle
            if right_is_vertex and o_r <= 0:
                gc = g + math.hypot(arx - rx, ary - ry)
                if gc < best:
                    k = new_root(AR, ri, gc)
                    if k >= 0:
                        if o_r < 0:
                            add(k, gc, arx, ary, xx, xy, XV, rpx, rpy, rpv, P, ml)
                        add(k, gc, arx, ary, arx, ary, AR, xx, xy, XV, P, mr)
            if left_is_vertex and o_l >= 0:
                gc = g + math.hypot(alx - rx, aly - ry)
                if gc < best:
                    k = new_root(AL, ri, gc)
                    if k >= 0:
                        if o_l > 0:
                            add(k, gc, alx, aly, lpx, lpy, lpv, xx, xy, XV, P, mr)
                        add(k, gc, alx, aly, xx, xy, XV, alx, aly, AL, P, ml)
        self.last_expanded = count
        if best_root < 0:
            return None
        path = [(gx, gy)]
        k = best_root
        while k >= 0:
            x, y, k, _ = roots[k]
            path.append((x, y))
        return path[::-1]


def _clean(v: np.ndarray, triangles) -> np.ndarray:
    """Triangles counter-clockwise (the search's left and right depend on it), zero-area slivers out."""
    t = np.asarray(triangles, dtype=np.int64).reshape(-1, 3).copy()
    if not len(t):
        return t
    a, b, c = v[t[:, 0]], v[t[:, 1]], v[t[:, 2]]
    area2 = (b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (b[:, 1] - a[:, 1]) * (c[:, 0] - a[:, 0])
    t = t[area2 != 0]  # a zero-area sliver bounds nothing; its neighbours meet across it anyway
    cw = area2[area2 != 0] < 0
    t[cw] = t[cw][:, ::-1]
    return t


def _cut(rx, ry, dx, dy, px, py, qx, qy):
    """Where the ray r + t*d meets segment p-q (clamped to the segment)."""
    ex, ey = qx - px, qy - py
    den = dx * ey - dy * ex
    if den == 0:
        return qx, qy
    s = ((rx - px) * dy - (ry - py) * dx) / -den
    s = 0.0 if s < 0 else 1.0 if s > 1 else s
    return px + s * ex, py + s * ey
