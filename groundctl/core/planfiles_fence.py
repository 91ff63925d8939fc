"""Fence items grouped into shapes, as the .plan format and the map draw them."""

from __future__ import annotations

from groundctl.core import mavcmd as C
from groundctl.core.mission import MissionItem

_POLYGONS = (C.NAV_FENCE_POLYGON_VERTEX_INCLUSION, C.NAV_FENCE_POLYGON_VERTEX_EXCLUSION)
_ORDER = (C.NAV_FENCE_POLYGON_VERTEX_INCLUSION, C.NAV_FENCE_POLYGON_VERTEX_EXCLUSION,
          C.NAV_FENCE_CIRCLE_INCLUSION, C.NAV_FENCE_CIRCLE_EXCLUSION, C.NAV_FENCE_RETURN_POINT)


def canonical_fence(items: list[MissionItem]) -> list[MissionItem]:
    """Order fence items as the .plan format stores them; polygons keep their vertex order."""
    groups: dict[int, list[list[MissionItem]]] = {k: [] for k in _ORDER}
    i = 0
    while i < len(items):
        it = items[i]
        if it.command in _POLYGONS:
            n = max(1, int(it.param1))
            groups[it.command].append(items[i:i + n])
            i += n
        else:
            groups.setdefault(it.command, []).append([it])
            i += 1
    return [it for k in groups for grp in groups[k] for it in grp]


def fence_groups(items: list[MissionItem]) -> list[list[MissionItem]]:
    """Fence items grouped into shapes, in canonical order: each polygon's vertices together, then
    each circle and the return point alone."""
    items = canonical_fence(items)
    groups, i = [], 0
    while i < len(items):
        n = max(1, int(items[i].param1)) if items[i].command in _POLYGONS else 1
        groups.append(items[i:i + n])
        i += n
    return groups
