"""Local metric frames and geodesic distances.

Geometry is computed in an azimuthal-equidistant frame centred near the operation, where distances
from the centre are exact and distortion over a delivery area (tens of km) is well under 0.1 %.
Reported distances are geodesic (WGS84 ellipsoid) along the vertices of a path.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import shapely
from pyproj import CRS, Geod, Transformer
from shapely.geometry.base import BaseGeometry

GEOD = Geod(ellps="WGS84")


@dataclass(frozen=True)
class LatLon:
    lat: float
    lon: float


@lru_cache(maxsize=64)
def _transformers(lat0: float, lon0: float) -> tuple[Transformer, Transformer]:
    # Transformer construction costs milliseconds; frames are reused across calls, so cache them.
    crs = CRS.from_proj4(f"+proj=aeqd +lat_0={lat0} +lon_0={lon0} +datum=WGS84 +units=m +no_defs")
    fwd = Transformer.from_crs("EPSG:4326", crs, always_xy=True)
    inv = Transformer.from_crs(crs, "EPSG:4326", always_xy=True)
    return fwd, inv


@dataclass(frozen=True)
class LocalFrame:
    """An azimuthal equidistant frame (x east, y north, metres) around (lat0, lon0)."""

    lat0: float
    lon0: float

    def to_xy(self, lon, lat):
        fwd, _ = _transformers(self.lat0, self.lon0)
        return fwd.transform(lon, lat)

    def to_lonlat(self, x, y):
        _, inv = _transformers(self.lat0, self.lon0)
        return inv.transform(x, y)

    def project(self, geom: BaseGeometry) -> BaseGeometry:
        """WGS84 lon/lat geometry -> local metric geometry (vectorised over all coordinates)."""
        fwd, _ = _transformers(self.lat0, self.lon0)
        return shapely.transform(geom, lambda c: _apply(fwd, c))

    def unproject(self, geom: BaseGeometry) -> BaseGeometry:
        _, inv = _transformers(self.lat0, self.lon0)
        return shapely.transform(geom, lambda c: _apply(inv, c))


def _apply(tr: Transformer, c: np.ndarray) -> np.ndarray:
    # pyproj takes a one-element array for a scalar and converts it with float(array), which NumPy
    # deprecates; a single point goes through as plain floats
    if len(c) == 1:
        x, y = tr.transform(float(c[0, 0]), float(c[0, 1]))
        return np.array([[x, y]])
    return np.column_stack(tr.transform(c[:, 0], c[:, 1]))


def geodesic_length_m(lonlats: list[tuple[float, float]] | np.ndarray) -> float:
    """Geodesic length of a polyline given as (lon, lat) pairs."""
    arr = np.asarray(lonlats, dtype=float)
    if len(arr) < 2:
        return 0.0
    return float(GEOD.line_length(arr[:, 0], arr[:, 1]))


def geodesic_distance_m(lon1: float, lat1: float, lon2: float, lat2: float) -> float:
    _, _, d = GEOD.inv(lon1, lat1, lon2, lat2)
    return float(d)


def bearing_deg(lon1: float, lat1: float, lon2: float, lat2: float) -> float:
    """Initial true bearing from point 1 to point 2, 0..360."""
    az, _, _ = GEOD.inv(lon1, lat1, lon2, lat2)
    return float(az % 360.0)
