"""The Polyanya search of routing_mesh, compiled with numba: the same steps on flat arrays.

A city-wide query expands thousands of search nodes; in Python each costs tens of microseconds, here
well under one. routing_mesh.NavMesh.shortest_path is the readable reference with the same logic
step by step; it runs when numba is not installed, and the tests compare the two.
"""

from __future__ import annotations

import heapq
import math

import numpy as np

try:
    from numba import njit

    HAVE_NUMBA = True
except ImportError:  # pragma: no cover - the pure-Python search runs instead
    HAVE_NUMBA = False

    def njit(*args, **kwargs):
        if args and callable(args[0]):
            return args[0]
        return lambda f: f


@njit(cache=True, inline="always")
def _h(rx, ry, ax, ay, bx, by, gx, gy):
    ex, ey = bx - ax, by - ay
    side_r = ex * (ry - ay) - ey * (rx - ax)
    if side_r == 0:
        return math.hypot(gx - rx, gy - ry)
    side_g = ex * (gy - ay) - ey * (gx - ax)
    tx, ty = gx, gy
    if side_r * side_g > 0:
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


@njit(cache=True, inline="always")
def _cut(rx, ry, dx, dy, px, py, qx, qy):
    ex, ey = qx - px, qy - py
    den = dx * ey - dy * ex
    if den == 0:
        return qx, qy
    s = ((rx - px) * dy - (ry - py) * dx) / -den
    if s < 0:
        s = 0.0
    elif s > 1:
        s = 1.0
    return px + s * ex, py + s * ey


@njit(cache=True)
def _add(heap, nf, ni, count, best, N, NE, gx, gy, ri, g, rx, ry, ax, ay, av, bx, by, bv, tri, m):
    q = N[tri, m]
    if q < 0 or (ax == bx and ay == by):
        return count
    f = g + _h(rx, ry, ax, ay, bx, by, gx, gy)
    if f >= best:
        return count
    nf[count, 0] = g
    nf[count, 1] = ax
    nf[count, 2] = ay
    nf[count, 3] = bx
    nf[count, 4] = by
    ni[count, 0] = ri
    ni[count, 1] = av
    ni[count, 2] = bv
    ni[count, 3] = q
    ni[count, 4] = NE[tri, m]
    heapq.heappush(heap, (f, count))
    return count + 1


@njit(cache=True)
def _new_root(roots, rootv, nroots, root_g, vtx, parent, g, X, Y):
    if g > root_g[vtx] * (1 + 1e-12) + 1e-9:
        return -1, nroots
    if g < root_g[vtx]:
        root_g[vtx] = g
    roots[nroots, 0] = X[vtx]
    roots[nroots, 1] = Y[vtx]
    rootv[nroots, 0] = parent
    rootv[nroots, 1] = vtx
    return nroots, nroots + 1


@njit(cache=True)
def search(X, Y, T, N, NE, C, sx, sy, gx, gy, start_tris, goal_tris):
    """Polyanya from (sx, sy) to (gx, gy). Returns (root chain as an (k, 2) array, expanded nodes);
    an empty chain when the goal cannot be reached. The chain runs from the goal's last root back to the start."""
    cap = 1024
    nf = np.empty((cap, 5))
    ni = np.empty((cap, 5), dtype=np.int64)
    rcap = 256
    roots = np.empty((rcap, 2))
    rootv = np.empty((rcap, 2), dtype=np.int64)
    roots[0, 0] = sx
    roots[0, 1] = sy
    rootv[0, 0] = -1
    rootv[0, 1] = -1
    nroots = 1
    root_g = np.full(len(X), np.inf)
    heap = [(0.0, 0)]
    heap.pop()
    count = 0
    best = np.inf
    best_root = -1
    for t0 in start_tris:
        for m in range(3):
            p = T[t0, m]
            q = T[t0, (m + 1) % 3]
            count = _add(heap, nf, ni, count, best, N, NE, gx, gy, 0, 0.0, sx, sy, X[p], Y[p], p, X[q], Y[q], q, t0, m)
    expanded = 0
    while len(heap) > 0:
        f, k = heapq.heappop(heap)
        if f >= best:
            break
        expanded += 1
        if count + 8 > cap:
            cap *= 2
            nf2 = np.empty((cap, 5))
            ni2 = np.empty((cap, 5), dtype=np.int64)
            nf2[:count] = nf[:count]
            ni2[:count] = ni[:count]
            nf, ni = nf2, ni2
        if nroots + 4 > rcap:
            rcap *= 2
            r2 = np.empty((rcap, 2))
            rv2 = np.empty((rcap, 2), dtype=np.int64)
            r2[:nroots] = roots[:nroots]
            rv2[:nroots] = rootv[:nroots]
            roots, rootv = r2, rv2
        g = nf[k, 0]
        ax, ay, bx, by = nf[k, 1], nf[k, 2], nf[k, 3], nf[k, 4]
        ri, av, bv, P, j = ni[k, 0], ni[k, 1], ni[k, 2], ni[k, 3], ni[k, 4]
        rx, ry = roots[ri, 0], roots[ri, 1]
        rvtx = rootv[ri, 1]
        AL, AR, XV = T[P, j], T[P, (j + 1) % 3], T[P, (j + 2) % 3]
        xx, xy = X[XV], Y[XV]
        mr, ml = (j + 1) % 3, (j + 2) % 3
        alx, aly, arx, ary = X[AL], Y[AL], X[AR], Y[AR]
        in_goal = False
        for tg in goal_tris:
            if tg == P:
                in_goal = True
        ex, ey = alx - arx, aly - ary
        side = ex * (ry - ary) - ey * (rx - arx)
        if rvtx == AR or rvtx == AL or abs(side) <= 1e-12 * (ex * ex + ey * ey + (rx - arx) ** 2 + (ry - ary) ** 2):
            if rvtx != AR and rvtx != AL:
                d = (rx - arx) * ex + (ry - ary) * ey
                if d < -1e-9 or d > (ex * ex + ey * ey) * (1 + 1e-9):
                    continue
            if in_goal:
                c = g + math.hypot(gx - rx, gy - ry)
                if c < best:
                    best, best_root = c, ri
            if rvtx == AR or (rx == arx and ry == ary):
                count = _add(heap, nf, ni, count, best, N, NE, gx, gy, ri, g, rx, ry, xx, xy, XV, alx, aly, AL, P, ml)
                count = _add(heap, nf, ni, count, best, N, NE, gx, gy, ri, g, rx, ry, arx, ary, AR, xx, xy, XV, P, mr)
            else:
                count = _add(heap, nf, ni, count, best, N, NE, gx, gy, ri, g, rx, ry, arx, ary, AR, xx, xy, XV, P, mr)
                count = _add(heap, nf, ni, count, best, N, NE, gx, gy, ri, g, rx, ry, xx, xy, XV, alx, aly, AL, P, ml)
            continue
        dxr, dyr = ax - rx, ay - ry
        dxl, dyl = bx - rx, by - ry
        o_r = dxr * (xy - ry) - dyr * (xx - rx)
        o_l = dxl * (xy - ry) - dyl * (xx - rx)
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
                    kk, nroots = _new_root(roots, rootv, nroots, root_g, AR, ri, gc, X, Y)
                    if kk >= 0:
                        best, best_root = c, kk
            elif o2 > 0 and left_is_vertex:
                gc = g + math.hypot(alx - rx, aly - ry)
                c = gc + math.hypot(gx - alx, gy - aly)
                if c < best:
                    kk, nroots = _new_root(roots, rootv, nroots, root_g, AL, ri, gc, X, Y)
                    if kk >= 0:
                        best, best_root = c, kk
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
        if o_r > 0:
            if o_l < 0:
                count = _add(heap, nf, ni, count, best, N, NE, gx, gy, ri, g, rx, ry, rpx, rpy, rpv, xx, xy, XV, P, mr)
                count = _add(heap, nf, ni, count, best, N, NE, gx, gy, ri, g, rx, ry, xx, xy, XV, lpx, lpy, lpv, P, ml)
            else:
                count = _add(heap, nf, ni, count, best, N, NE, gx, gy, ri, g, rx, ry, rpx, rpy, rpv, lpx, lpy, lpv, P, mr)
        elif o_l < 0:
            count = _add(heap, nf, ni, count, best, N, NE, gx, gy, ri, g, rx, ry, rpx, rpy, rpv, lpx, lpy, lpv, P, ml)
        if right_is_vertex and o_r <= 0:
            gc = g + math.hypot(arx - rx, ary - ry)
            if gc < best:
                kk, nroots = _new_root(roots, rootv, nroots, root_g, AR, ri, gc, X, Y)
                if kk >= 0:
                    if o_r < 0:
                        count = _add(heap, nf, ni, count, best, N, NE, gx, gy, kk, gc, arx, ary, xx, xy, XV, rpx, rpy, rpv, P, ml)
                    count = _add(heap, nf, ni, count, best, N, NE, gx, gy, kk, gc, arx, ary, arx, ary, AR, xx, xy, XV, P, mr)
        if left_is_vertex and o_l >= 0:
            gc = g + math.hypot(alx - rx, aly - ry)
            if gc < best:
                kk, nroots = _new_root(roots, rootv, nroots, root_g, AL, ri, gc, X, Y)
                if kk >= 0:
                    if o_l > 0:
                        count = _add(heap, nf, ni, count, best, N, NE, gx, gy, kk, gc, alx, aly, lpx, lpy, lpv, xx, xy, XV, P, mr)
                    count = _add(heap, nf, ni, count, best, N, NE, gx, gy, kk, gc, alx, aly, xx, xy, XV, alx, aly, AL, P, ml)
    if best_root < 0:
        return np.empty((0, 2)), expanded
    n = 0
    k = best_root
    while k >= 0:
        n += 1
        k = rootv[k, 0]
    out = np.empty((n, 2))
    k = best_root
    i = 0
    while k >= 0:
        out[i, 0] = roots[k, 0]
        out[i, 1] = roots[k, 1]
        i += 1
        k = rootv[k, 0]
    return out, expanded
