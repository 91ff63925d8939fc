"""Flat-earth helpers, scalar pure Python.

Each vehicle works in a local north/east frame around its own home, the same
equirectangular approximation ArduPilot's Location class uses
(LOCATION_SCALING_FACTOR), so distances agree with the autopilot to within
millimetres over a delivery-sized area.
"""

from __future__ import annotations

import math
import struct

# metres per 1e-7 degree of latitude, as in ArduPilot's Location.cpp
LOCATION_SCALING_FACTOR = 0.011131884502145034
LOCATION_SCALING_FACTOR_INV = 89.83204953368922


def f32(x: float) -> float:
    """Round a Python float to IEEE single precision, as the autopilot stores it."""
    return struct.unpack("<f", struct.pack("<f", x))[0]


def lon_scale(lat_e7: int) -> float:
    return max(math.cos(math.radians(lat_e7 * 1e-7)), 0.01)


def ne_offset(lat0_e7: int, lon0_e7: int, lat_e7: int, lon_e7: int) -> tuple[float, float]:
    """North/east metres from (lat0, lon0) to (lat, lon)."""
    n = (lat_e7 - lat0_e7) * LOCATION_SCALING_FACTOR
    e = (lon_e7 - lon0_e7) * LOCATION_SCALING_FACTOR * lon_scale(lat0_e7)
    return n, e


def offset_latlon(lat0_e7: int, lon0_e7: int, n: float, e: float) -> tuple[int, int]:
    lat = lat0_e7 + n * LOCATION_SCALING_FACTOR_INV
    lon = lon0_e7 + e * LOCATION_SCALING_FACTOR_INV / lon_scale(lat0_e7)
    return int(round(lat)), int(round(lon))


def dist(n1: float, e1: float, n2: float, e2: float) -> float:
    return math.hypot(n2 - n1, e2 - e1)


def point_in_polygon(n: float, e: float, pts: list[tuple[float, float]]) -> bool:
    """Even-odd ray casting; pts are (n, e) vertices, closed implicitly."""
    inside = False
    j = len(pts) - 1
    for i in range(len(pts)):
        ni, ei = pts[i]
        nj, ej = pts[j]
        if (ei > e) != (ej > e):
            n_cross = ni + (e - ei) * (nj - ni) / (ej - ei)
            if n < n_cross:
                inside = not inside
        j = i
    return inside


def check_lat(lat_e7: int) -> bool:
    return -900000000 <= lat_e7 <= 900000000


def check_lng(lon_e7: int) -> bool:
    return -1800000000 <= lon_e7 <= 1800000000
