"""Route planner benchmark against extremitypathfinder on the same map, measured in the same run.

    pytest -m bench tests/bench/test_route_bench.py -s        (or GROUNDCTL_BENCH=1 pytest ...)

A generated 20 x 20 km service area near Canberra with one no-fly zone in each cell of an 18 x 18
grid (324 zones: convex, star-shaped, L-shaped, and circles), non-overlapping even after the
lateral margin. 1,000 seeded queries from one hub to random free points. The peer gets exactly the
free space groundctl plans in (RoutePlanner.free: boundary = the service area less the edge margin,
holes = the buffered zones). Both must find paths of equal length (1e-6 relative). Prints a table and
writes the figures to $GROUNDCTL_BENCH_OUT (default /tmp/groundctl_route_bench.json).

test_route_scaling grows the same kind of city (about 100, 300, 1,000 and 3,000 zones) and reports how
preparation and query time grow, with the peer under a time budget (it runs in a child process that
is stopped when the budget is spent), the time to add and lift a restriction, and writes
$GROUNDCTL_BENCH_SCALE_OUT (default /tmp/groundctl_route_scaling.json):

    pytest -m bench tests/bench/test_route_bench.py -k scaling -s

Knobs: GROUNDCTL_BENCH_SCALE (grid sides, "10,17,32,55"), GROUNDCTL_BENCH_SCALE_QUERIES (1000),
GROUNDCTL_BENCH_SCALE_PEER_QUERIES (200), GROUNDCTL_BENCH_PEER_BUDGET_S (300, per map). Query
times are wall clock and, beside them, the thread's CPU time (a loaded machine inflates the first).

Knobs (environment): GROUNDCTL_BENCH_CELLS (grid side, 18), GROUNDCTL_BENCH_QUERIES (1000),
GROUNDCTL_BENCH_PEER_QUERIES (how many of the same queries the peer answers; default all),
GROUNDCTL_BENCH_SEED (7).
"""

from __future__ import annotations

import json
import math
import os
import time

import numpy as np
import pytest
import shapely
from shapely.affinity import rotate, translate
from shapely.geometry import Point, Polygon, box, mapping

from groundctl.core.airspace import parse_airspace
from groundctl.core.geo import LocalFrame
from groundctl.core.routing import RoutePlanner

pytestmark = pytest.mark.bench

LAT0, LON0 = -35.36, 149.16
SIZE_M = 20_000.0
LATERAL_M = 30.0
EDGE_M = 50.0


def _env_int(name: str, default: int) -> int:
    return int(os.environ.get(name, default))


def generate_airspace(seed: int, cells: int = 18, size_m: float = SIZE_M) -> dict:
    """GeoJSON for a service square with one zone per grid cell, each well inside its cell."""
    rng = np.random.default_rng(seed)
    frame = LocalFrame(LAT0, LON0)
    half, cell = size_m / 2, size_m / cells
    feats = [{"type": "Feature", "properties": {"kind": "service_area", "name": "bench"},
              "geometry": mapping(frame.unproject(box(-half, -half, half, half)))}]
    for i in range(cells):
        for j in range(cells):
            cx = -half + (i + 0.5) * cell + rng.uniform(-0.1, 0.1) * cell
            cy = -half + (j + 0.5) * cell + rng.uniform(-0.1, 0.1) * cell
            rmax = 0.3 * cell  # zone within 0.3 cell of its centre: >= 0.2 cell between neighbours
            kind = rng.choice(["convex", "star", "L", "circle"], p=[0.35, 0.35, 0.2, 0.1])
            props = {"kind": "no_fly", "name": f"z{i:02d}-{j:02d}"}
            if kind == "circle":
                lon, lat = frame.to_lonlat(cx, cy)
                props["radius_m"] = float(rng.uniform(0.3, 0.9) * rmax)
                feats.append({"type": "Feature", "properties": props,
                              "geometry": {"type": "Point", "coordinates": [float(lon), float(lat)]}})
                continue
            if kind == "convex":
                pts = rng.normal(size=(int(rng.integers(5, 12)), 2)) * rmax * 0.45 + (cx, cy)
                g = shapely.convex_hull(shapely.multipoints(pts)).intersection(
                    box(cx - rmax, cy - rmax, cx + rmax, cy + rmax)).intersection(Point(cx, cy).buffer(rmax))
            elif kind == "star":
                k = int(rng.integers(6, 14))
                ang = np.sort(rng.uniform(0, 2 * np.pi, k))
                r = rng.uniform(0.3, 1.0, k) * rmax
                g = Polygon(np.column_stack([cx + r * np.cos(ang), cy + r * np.sin(ang)]))
            else:
                w = rng.uniform(0.5, 1.0) * rmax * 1.4
                t = w * rng.uniform(0.25, 0.5)
                g = Polygon([(0, 0), (w, 0), (w, t), (t, t), (t, w), (0, w)])
                g = translate(rotate(g, rng.uniform(0, 360), origin=(w / 2, w / 2)), cx - w / 2, cy - w / 2)
            if g.geom_type != "Polygon" or not g.is_valid or g.area < 2_000:
                g = box(cx - rmax / 2, cy - rmax / 3, cx + rmax / 2, cy + rmax / 3)
            feats.append({"type": "Feature", "properties": props, "geometry": mapping(frame.unproject(g))})
    return json.loads(json.dumps({"type": "FeatureCollection", "features": feats}))


def _free_point_near(free, x: float, y: float) -> tuple[float, float]:
    for r in np.arange(0, 2_000, 10.0):
        for a in np.linspace(0, 2 * np.pi, 16, endpoint=False):
            p = (x + r * math.cos(a), y + r * math.sin(a))
            if free.covers(Point(p)):
                return p
    raise AssertionError("no free point near the centre")


def _length(pts) -> float:
    a = np.asarray(pts, dtype=float)
    return float(np.hypot(*np.diff(a, axis=0).T).sum())


def _stats(times_s: list[float]) -> dict:
    t = np.asarray(times_s) * 1e3
    return {"median_ms": float(np.median(t)), "p99_ms": float(np.percentile(t, 99)),
            "mean_ms": float(t.mean()), "n": int(len(t))}


@pytest.mark.timeout(0)
def test_route_planner_vs_extremitypathfinder():
    from extremitypathfinder import PolygonEnvironment
    from extremitypathfinder import utils_numba

    seed = _env_int("GROUNDCTL_BENCH_SEED", 7)
    cells = _env_int("GROUNDCTL_BENCH_CELLS", 18)
    n_q = _env_int("GROUNDCTL_BENCH_QUERIES", 1000)
    n_peer = min(n_q, _env_int("GROUNDCTL_BENCH_PEER_QUERIES", n_q))
    asp = parse_airspace(generate_airspace(seed, cells, SIZE_M * cells / 18))

    t0 = time.perf_counter()
    planner = RoutePlanner(asp, lateral_margin_m=LATERAL_M, edge_margin_m=EDGE_M)
    prep_ours = time.perf_counter() - t0
    free = planner.free
    assert free.geom_type == "Polygon" and len(free.interiors) == len(asp.zones), "zones must stay apart"
    n_vertices = int(shapely.get_num_coordinates(free)) - 1 - len(free.interiors)

    rng = np.random.default_rng(seed + 1)
    hub = _free_point_near(free, 0.0, 0.0)
    x0, y0, x1, y1 = free.bounds
    goals: list[tuple[float, float]] = []
    while len(goals) < n_q:
        cand = np.column_stack([rng.uniform(x0, x1, 4 * n_q), rng.uniform(y0, y1, 4 * n_q)])
        ok = shapely.covers(free, shapely.points(cand))
        goals.extend(map(tuple, cand[ok][: n_q - len(goals)].tolist()))

    ours_t, ours_len = [], []
    for g in goals:
        t0 = time.perf_counter()
        path = planner.shortest_path_xy(hub, g)
        ours_t.append(time.perf_counter() - t0)
        ours_len.append(_length(path))

    o = _stats(ours_t)
    print(f"\ngroundctl: prep {prep_ours:.2f} s, median {o['median_ms']:.3f} ms, p99 {o['p99_ms']:.3f} ms "
          f"({n_vertices} free-space vertices); now the peer ...", flush=True)

    # the peer: same free space; boundary counter-clockwise, holes clockwise, no repeated first point
    boundary = np.asarray(shapely.orient_polygons(free).exterior.coords)[:-1]
    holes = [np.asarray(r.coords)[:-1] for r in shapely.orient_polygons(free).interiors]
    env = PolygonEnvironment()
    t0 = time.perf_counter()
    env.store(boundary, holes, validate=False)
    prep_peer = time.perf_counter() - t0
    print(f"extremitypathfinder: prep {prep_peer:.1f} s; {n_peer} queries ...", flush=True)
    peer_t, peer_len = [], []
    for g in goals[:n_peer]:
        t0 = time.perf_counter()
        _path, d = env.find_shortest_path(hub, g)
        peer_t.append(time.perf_counter() - t0)
        peer_len.append(math.nan if d is None else float(d))

    a, b = np.asarray(ours_len[:n_peer]), np.asarray(peer_len)
    rel = np.abs(a - b) / np.maximum(b, 1.0)
    agree = int(np.sum(rel <= 1e-6))
    ours, peer = _stats(ours_t), _stats(peer_t)
    ours_same = _stats(ours_t[:n_peer])
    result = {
        "map": {"zones": len(asp.zones), "free_vertices": n_vertices, "mesh_triangles": len(planner.mesh.triangles),
                "size_km": SIZE_M * cells / 18 / 1000, "seed": seed,
                "lateral_margin_m": LATERAL_M, "edge_margin_m": EDGE_M},
        "queries": n_q, "peer_queries": n_peer,
        "groundctl": {"prep_s": prep_ours, **ours},
        "extremitypathfinder": {"prep_s": prep_peer, **peer, "numba": getattr(utils_numba, "using_numba", True)},
        "ratio_peer_over_groundctl": {
            "prep": prep_peer / prep_ours,
            "median": peer["median_ms"] / ours_same["median_ms"],
            "p99": peer["p99_ms"] / ours_same["p99_ms"]},
        "path_length_agreement": {"equal_1e-6": agree, "compared": n_peer, "max_rel_diff": float(np.nanmax(rel))},
    }
    out = os.environ.get("GROUNDCTL_BENCH_OUT", "/tmp/groundctl_route_bench.json")
    with open(out, "w") as f:
        json.dump(result, f, indent=2)
    m = result["map"]
    print(f"\nroute benchmark: {m['zones']} zones, {m['free_vertices']} free-space vertices, "
          f"{m['mesh_triangles']} mesh triangles, {m['size_km']:.0f} km square, "
          f"{n_q} hub->zone queries (peer: {n_peer}; numba: {result['extremitypathfinder']['numba']})")
    print(f"{'':22}{'prep s':>10}{'median ms':>12}{'p99 ms':>10}")
    print(f"{'groundctl':22}{prep_ours:10.2f}{ours['median_ms']:12.3f}{ours['p99_ms']:10.3f}")
    print(f"{'extremitypathfinder':22}{prep_peer:10.2f}{peer['median_ms']:12.3f}{peer['p99_ms']:10.3f}")
    r = result["ratio_peer_over_groundctl"]
    print(f"{'ratio peer/groundctl':22}{r['prep']:10.1f}{r['median']:12.1f}{r['p99']:10.1f}")
    print(f"path lengths equal within 1e-6: {agree}/{n_peer} (max relative difference {np.nanmax(rel):.2e}); "
          f"figures in {out}")
    assert agree == n_peer, f"path lengths differ: {n_peer - agree} of {n_peer}"


def _peer_run(boundary, holes, hub, goals, out) -> None:
    """Child process: extremitypathfinder's preparation and queries, reported through a queue."""
    from extremitypathfinder import PolygonEnvironment

    env = PolygonEnvironment()
    t0 = time.perf_counter()
    env.store(boundary, holes, validate=False)
    out.put(("prep", time.perf_counter() - t0))
    times, lengths = [], []
    for g in goals:
        t0 = time.perf_counter()
        _path, d = env.find_shortest_path(hub, g)
        times.append(time.perf_counter() - t0)
        lengths.append(math.nan if d is None else float(d))
    out.put(("queries", times, lengths))


def _peer(free, hub, goals, budget_s: float) -> dict:
    import multiprocessing as mp

    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    boundary = np.asarray(free.exterior.coords)[:-1]
    holes = [np.asarray(r.coords)[:-1] for r in free.interiors]
    proc = ctx.Process(target=_peer_run, args=(boundary, holes, hub, goals, q), daemon=True)
    t0 = time.perf_counter()
    proc.start()
    res: dict = {}
    while time.perf_counter() - t0 < budget_s and "queries" not in res:
        try:
            msg = q.get(timeout=1.0)
        except Exception:
            if not proc.is_alive():
                break
            continue
        if msg[0] == "prep":
            res["prep_s"] = msg[1]
        else:
            res.update(_stats(msg[1]))
            res["queries"] = len(msg[1])
            res["lengths"] = msg[2]
    if proc.is_alive():
        proc.terminate()
        proc.join(5)
    if "queries" not in res and proc.exitcode not in (None, 0, -15):
        res["unfinished"] = f"failed (exit code {proc.exitcode}; see its traceback above)"
    elif "queries" not in res:
        res["unfinished"] = f"not done within the {budget_s:g} s budget" + (
            f" (preparation {res['prep_s']:.0f} s)" if "prep_s" in res else " (still preparing)")
    return res


@pytest.mark.timeout(0)
def test_route_scaling():
    """Cost growth from about 100 to 3,000 zones: ours on every map, the peer where it finishes in budget."""
    seed = _env_int("GROUNDCTL_BENCH_SEED", 7)
    sides = [int(x) for x in os.environ.get("GROUNDCTL_BENCH_SCALE", "10,17,32,55").split(",") if x.strip()]
    n_q = _env_int("GROUNDCTL_BENCH_SCALE_QUERIES", 1000)
    n_peer = min(n_q, _env_int("GROUNDCTL_BENCH_SCALE_PEER_QUERIES", 200))
    budget = float(os.environ.get("GROUNDCTL_BENCH_PEER_BUDGET_S", 300))
    from groundctl.core.routing_kernel import HAVE_NUMBA

    if HAVE_NUMBA:  # compile (or load the cached kernel) once, outside every timing
        warm = RoutePlanner(parse_airspace(generate_airspace(seed, 3, 3_000.0)), lateral_margin_m=LATERAL_M,
                            edge_margin_m=EDGE_M)
        x0, y0, x1, y1 = warm.free.bounds
        warm.shortest_path_xy(_free_point_near(warm.free, x0 + 60, y0 + 60), _free_point_near(warm.free, x1 - 60, y1 - 60))
    rows = []
    for cells in sides:
        asp = parse_airspace(generate_airspace(seed, cells, SIZE_M * cells / 18))
        asp.zones_xy  # the projection belongs to loading the airspace, not to the planner
        t0 = time.perf_counter()
        planner = RoutePlanner(asp, lateral_margin_m=LATERAL_M, edge_margin_m=EDGE_M)
        prep = time.perf_counter() - t0
        free = planner.free
        n_vertices = int(shapely.get_num_coordinates(free)) - 1 - len(free.interiors)
        rng = np.random.default_rng(seed + 1)
        hub = _free_point_near(free, 0.0, 0.0)
        x0, y0, x1, y1 = free.bounds
        goals: list[tuple[float, float]] = []
        while len(goals) < n_q:
            cand = np.column_stack([rng.uniform(x0, x1, 4 * n_q), rng.uniform(y0, y1, 4 * n_q)])
            ok = shapely.covers(free, shapely.points(cand))
            goals.extend(map(tuple, cand[ok][: n_q - len(goals)].tolist()))
        times, cpu, lengths, paths = [], [], [], []
        for g in goals:
            c0 = time.thread_time()
            t0 = time.perf_counter()
            path = planner.shortest_path_xy(hub, g)
            times.append(time.perf_counter() - t0)
            cpu.append(time.thread_time() - c0)
            lengths.append(_length(path))
            paths.append(path)
        clear = shapely.covered_by(np.array([shapely.LineString(p) for p in paths[:200]], dtype=object),
                                   free.buffer(1e-6))
        assert clear.all(), "a route leaves the free space"
        ours = _stats(times)
        # on a shared machine wall-clock p99 is mostly time spent descheduled: CPU time shows the cost itself
        ours_cpu = _stats(cpu)
        # a temporary restriction across the way to the farthest goal, added and lifted
        far = int(np.argmax(lengths))
        mid = shapely.LineString(paths[far]).interpolate(0.5, normalized=True)
        restriction = mid.buffer(min(400.0, lengths[far] / 4))
        t0 = time.perf_counter()
        planner.add_obstacle_xy("bench-restriction", restriction)
        add_s = time.perf_counter() - t0
        detour = planner.shortest_path_xy(hub, goals[far])
        assert shapely.LineString(detour).distance(restriction) >= LATERAL_M - 1e-6
        t0 = time.perf_counter()
        planner.remove_obstacle("bench-restriction")
        remove_s = time.perf_counter() - t0
        assert _length(planner.shortest_path_xy(hub, goals[far])) == pytest.approx(lengths[far], rel=1e-9)
        # and one laid across a no-fly zone for certain (centred on a corner of the zone nearest the middle):
        # its lift must stay local too, not re-triangulate the whole free space
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
        zone = planner.obstacles[int(np.argmin(shapely.distance(np.array(planner.obstacles, dtype=object),
                                                                shapely.Point(cx, cy))))]
        corner = shapely.get_coordinates(shapely.get_exterior_ring(zone))[0]
        over = shapely.box(*(corner - 150.0), *(corner + 150.0))
        before = (planner.lifts_local, planner.mesh_rebuilds)
        t0 = time.perf_counter()
        planner.add_obstacle_xy("bench-over-zone", over)
        add_zone_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        planner.remove_obstacle("bench-over-zone")
        lift_zone_s = time.perf_counter() - t0
        assert (planner.lifts_local, planner.mesh_rebuilds) == (before[0] + 1, before[1]), "lift not local"
        assert _length(planner.shortest_path_xy(hub, goals[far])) == pytest.approx(lengths[far], rel=1e-9)
        print(f"\n{len(asp.zones)} zones, {n_vertices} free-space vertices: prep {prep:.2f} s, median "
              f"{ours['median_ms']:.2f} ms, p99 {ours['p99_ms']:.2f} ms; restriction add {add_s * 1e3:.0f} ms, "
              f"lift {remove_s * 1e3:.0f} ms; across a zone: add {add_zone_s * 1e3:.0f} ms, lift "
              f"{lift_zone_s * 1e3:.0f} ms (local lifts {planner.lifts_local}, whole re-triangulations "
              f"{planner.mesh_rebuilds}); the peer ...", flush=True)
        peer = _peer(free, hub, goals[:n_peer], budget)
        row = {"zones": len(asp.zones), "free_vertices": n_vertices, "mesh_triangles": len(planner.mesh.triangles),
               "size_km": SIZE_M * cells / 18 / 1000, "prep_s": prep, **ours,
               "cpu_median_ms": ours_cpu["median_ms"], "cpu_p99_ms": ours_cpu["p99_ms"],
               "restriction_add_s": add_s, "restriction_lift_s": remove_s,
               "restriction_over_zone_add_s": add_zone_s, "restriction_over_zone_lift_s": lift_zone_s,
               "mesh_rebuilds": planner.mesh_rebuilds,
               "peer": {k: v for k, v in peer.items() if k != "lengths"}}
        if "lengths" in peer:
            a, b = np.asarray(lengths[:n_peer]), np.asarray(peer["lengths"])
            rel = np.abs(a - b) / np.maximum(b, 1.0)
            row["peer"]["equal_1e-6"] = int(np.sum(rel <= 1e-6))
            assert row["peer"]["equal_1e-6"] == n_peer, f"path lengths differ from the peer's: {n_peer - row['peer']['equal_1e-6']}"
        rows.append(row)
    out = os.environ.get("GROUNDCTL_BENCH_SCALE_OUT", "/tmp/groundctl_route_scaling.json")
    with open(out, "w") as f:
        json.dump({"seed": seed, "queries": n_q, "peer_queries": n_peer, "peer_budget_s": budget,
                   "numba": HAVE_NUMBA, "rows": rows}, f, indent=2)
    print(f"\nroute scaling ({n_q} hub->random queries per map; peer: extremitypathfinder, {n_peer} of the same "
          f"queries, {budget:g} s budget per map)")
    print("| zones | free-space vertices | preparation | median query | p99 query | p99 query, CPU time "
          "| restriction add / lift | across a zone: add / lift | peer preparation | peer median | peer p99 |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        p = r["peer"]
        peer_cols = (f"{p['prep_s']:.1f} s | {p['median_ms']:.1f} ms | {p['p99_ms']:.1f} ms" if "median_ms" in p
                     else f"{p['unfinished']} | - | -")
        print(f"| {r['zones']:,} | {r['free_vertices']:,} | {r['prep_s']:.2f} s | {r['median_ms']:.2f} ms "
              f"| {r['p99_ms']:.2f} ms | {r['cpu_p99_ms']:.2f} ms | {r['restriction_add_s'] * 1e3:.0f} / {r['restriction_lift_s'] * 1e3:.0f} ms "
              f"| {r['restriction_over_zone_add_s'] * 1e3:.0f} / {r['restriction_over_zone_lift_s'] * 1e3:.0f} ms "
              f"| {peer_cols} |")
    print(f"figures in {out}")
