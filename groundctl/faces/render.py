"""A PNG an operator can glance at: service area, no-fly zones (buffered), route, fence, hub and zone."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: no display on a hub server or in CI
import matplotlib.pyplot as plt
from matplotlib.patches import Circle, Polygon as MplPolygon
from shapely.geometry import Polygon

from groundctl.core import mavcmd as C
from groundctl.core.planfiles import fence_groups


def _polys(geom):
    return [geom] if isinstance(geom, Polygon) else [g for g in getattr(geom, "geoms", []) if isinstance(g, Polygon)]


def render_plan_png(plan, airspace, planner, path: str | Path, *, title: str | None = None) -> Path:
    frame = planner.frame
    fig, ax = plt.subplots(figsize=(9, 9), dpi=110)
    for poly in _polys(planner.service):
        ax.add_patch(MplPolygon(list(poly.exterior.coords), closed=True, fc="#eef6ee", ec="#3a7d44", lw=1.5,
                                label="service area"))
    relevant = set(planner.relevant)
    for i, (z, zxy) in enumerate(zip(airspace.zones, airspace.zones_xy)):
        blocking = i in relevant
        for poly in _polys(zxy):
            ax.add_patch(MplPolygon(list(poly.exterior.coords), closed=True,
                                    fc="#e0524f" if blocking else "#f4c7c3", ec="#a12622", alpha=0.75 if blocking else 0.4,
                                    hatch=None if blocking else "//"))
            for hole in poly.interiors:
                ax.add_patch(MplPolygon(list(hole.coords), closed=True, fc="#eef6ee", ec="#a12622", lw=0.8))
        c = zxy.centroid
        band = "" if blocking else " (above flight band)"
        ax.annotate(z.name + band, (c.x, c.y), fontsize=7, ha="center", color="#5a1010")
    for obs in planner.obstacles:
        for poly in _polys(obs):
            ax.plot(*poly.exterior.xy, color="#a12622", lw=0.6, ls="--")
    for group in fence_groups(plan.fence):
        it = group[0]
        if it.command in (C.NAV_FENCE_POLYGON_VERTEX_INCLUSION, C.NAV_FENCE_POLYGON_VERTEX_EXCLUSION):
            xs, ys = frame.to_xy([v.lon for v in group], [v.lat for v in group])
            xs, ys = list(xs) + [xs[0]], list(ys) + [ys[0]]
            ax.plot(xs, ys, color="#7b3fb5", lw=1.0, ls=":" if it.command == 5002 else "-.")
        elif it.command == C.NAV_FENCE_CIRCLE_EXCLUSION:
            x, y = frame.to_xy(it.lon, it.lat)
            ax.add_patch(Circle((x, y), it.param1, fill=False, ec="#7b3fb5", ls=":"))
    xs, ys = zip(*plan.route_out.points_xy)
    ax.plot(xs, ys, color="#1f5fbf", lw=2.5, marker="o", ms=4, label=f"route {plan.route_out.length_m / 1000:.2f} km each way")
    hx, hy = frame.to_xy(plan.hub.lon, plan.hub.lat)
    zx, zy = frame.to_xy(plan.zone.lon, plan.zone.lat)
    ax.plot([hx], [hy], marker="s", color="black", ms=10, label=f"hub {plan.hub.name}")
    ax.plot([zx], [zy], marker="*", color="#e08a00", ms=16, label=f"zone {plan.zone.name}")
    ax.set_aspect("equal")
    ax.autoscale_view()
    ax.set_xlabel("east (m)")
    ax.set_ylabel("north (m)")
    ax.set_title(title or f"{plan.hub.name} -> {plan.zone.name}: {plan.method}, cruise {plan.cruise_alt_m:g} m")
    ax.legend(loc="lower left", fontsize=8)
    ax.grid(True, lw=0.3)
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)
    return out
