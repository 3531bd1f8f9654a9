"""Great-circle distance in metres between WGS84 points."""

from __future__ import annotations

import numpy as np

EARTH_RADIUS_M = 6_371_008.8  # mean Earth radius (IUGG)


def haversine_m(lat1, lon1, lat2, lon2):
    """Haversine distance in metres; scalars or numpy arrays (broadcast).

    Args:
        lat1: latitude(s) of the first point(s), degrees.
        lon1: longitude(s) of the first point(s), degrees.
        lat2: latitude(s) of the second point(s), degrees.
        lon2: longitude(s) of the second point(s), degrees.

    Returns:
        Distance(s) in metres, float or array.
    """
    p1, p2 = np.radians(lat1), np.radians(lat2)
    dp, dl = p2 - p1, np.radians(np.asarray(lon2) - np.asarray(lon1))
    a = np.sin(dp / 2) ** 2 + np.cos(p1) * np.cos(p2) * np.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_M * np.arcsin(np.sqrt(np.clip(a, 0.0, 1.0)))
