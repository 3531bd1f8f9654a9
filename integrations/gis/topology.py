"""Overlaps and gaps between the wards of one boundary set, measured for check metadata.

A redistricting file can leave slivers where two wards overlap (a post there would belong to
both) or holes inside the city that belong to no ward (a post there is flagged outside).
Areas are in km², from degrees with a local equal-area scale (good to well under 1% at city size).
"""

from __future__ import annotations

import math

import shapely
from shapely.strtree import STRtree

from social311.records import Ward

KM_PER_DEGREE = 111.32


def _km2(area_deg2: float, lat: float) -> float:
    return area_deg2 * KM_PER_DEGREE**2 * math.cos(math.radians(lat))


def measure(wards: list[Ward], *, top: int = 5) -> dict:
    """Overlap and gap figures of one boundary set.

    Returns:
        ``overlap_km2`` (sum over ward pairs), ``overlapping_pairs`` (count), ``largest_overlaps``
        (up to ``top`` pairs with km²), ``gap_km2`` and ``gaps`` (holes inside the union of the wards).
    """
    geoms = [shapely.from_wkt(w.geometry_wkt) for w in wards]
    if not geoms:
        return {"overlap_km2": 0.0, "overlapping_pairs": 0, "largest_overlaps": [], "gap_km2": 0.0, "gaps": 0}
    union = shapely.union_all(geoms)
    lat = union.centroid.y
    pairs = []
    left, right = STRtree(geoms).query(geoms, predicate="intersects")
    for i, j in zip(left.tolist(), right.tolist()):
        if i < j:
            area = geoms[i].intersection(geoms[j]).area
            if area > 0:
                pairs.append((_km2(area, lat), wards[i].ward_id, wards[j].ward_id))
    holes = [shapely.Polygon(ring) for poly in getattr(union, "geoms", [union]) for ring in poly.interiors]
    pairs.sort(reverse=True)
    return {
        "overlap_km2": round(sum(p[0] for p in pairs), 6),
        "overlapping_pairs": len(pairs),
        "largest_overlaps": [f"{a}/{b}: {km2:.6f} km2" for km2, a, b in pairs[:top]],
        "gap_km2": round(sum(_km2(h.area, lat) for h in holes), 6),
        "gaps": len(holes),
    }
