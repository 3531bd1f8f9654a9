"""A gazetteer from the city's street centerlines: the intersections computed from them.

Residents place problems by corners ("5th and Main", "corner of Sanford and Bowne") far more
often than by house numbers. Every two differently named streets whose centerlines meet make
an intersection place; one crossing drawn as several segment pairs (dual carriageways, a way
ending on another) is kept once, and a pair of names that meets at places far apart (two
"5th Ave & 10th St" in two boroughs, a curving street) keeps each meeting point separately,
so the geocoder can see the ambiguity and refuse to guess.
"""

from __future__ import annotations

import numpy as np
import shapely
from shapely.strtree import STRtree

from social311.models.geo import haversine_m
from social311.models.streets import parse_street
from social311.records import Place, StreetSegment

# Meeting points of one name pair closer than this are one intersection.
MERGE_M = 60.0


def _key(name: str) -> tuple[str, ...]:
    return parse_street(name).core


def intersections(segments: list[StreetSegment]) -> list[Place]:
    """Intersection places computed from where differently named centerlines meet.

    Args:
        segments: the street layer (EPSG:4326).

    Returns:
        One ``intersection`` place per distinct meeting point, ``streets`` = the two names,
        ``area`` = the segments' area when both agree.
    """
    segments = [s for s in segments if _key(s.name)]
    geoms = shapely.from_wkt(np.array([s.geometry_wkt for s in segments], dtype=object))
    left, right = STRtree(geoms).query(geoms, predicate="intersects")
    keep = left < right
    left, right = left[keep], right[keep]
    keys = [_key(s.name) for s in segments]
    differ = np.array([keys[i] != keys[j] for i, j in zip(left.tolist(), right.tolist())], dtype=bool)
    left, right = left[differ], right[differ]
    meets = shapely.intersection(geoms[left], geoms[right])
    points: dict[tuple, list[tuple[float, float, str | None, str, str]]] = {}
    for i, j, meet in zip(left.tolist(), right.tolist(), meets):
        a, b = sorted((segments[i], segments[j]), key=lambda s: _key(s.name))
        area = a.area if a.area == b.area else None
        for part in getattr(meet, "geoms", [meet]):
            if part.is_empty:
                continue
            c = part if part.geom_type == "Point" else part.centroid  # overlapping segments: their middle
            points.setdefault((area, _key(a.name), _key(b.name)), []).append((c.y, c.x, area, a.name, b.name))
    places = []
    for (area, ka, kb), found in sorted(points.items(), key=lambda kv: (kv[0][0] or "", kv[0][1], kv[0][2])):
        for n, (lat, lon, name_a, name_b) in enumerate(_merge(found)):
            places.append(Place(place_id=f"x:{area or '-'}:{' '.join(ka)}|{' '.join(kb)}:{n}", name=f"{name_a} & {name_b}",
                                kind="intersection", lat=lat, lon=lon, streets=(name_a, name_b), area=area))
    return places


def _merge(found: list[tuple[float, float, str | None, str, str]]) -> list[tuple[float, float, str, str]]:
    """Greedy clusters of meeting points within ``MERGE_M``; each cluster's mean."""
    clusters: list[list[tuple[float, float, str | None, str, str]]] = []
    for pt in sorted(found):
        for cl in clusters:
            if haversine_m(cl[0][0], cl[0][1], pt[0], pt[1]) <= MERGE_M:
                cl.append(pt)
                break
        else:
            clusters.append([pt])
    return [(sum(p[0] for p in cl) / len(cl), sum(p[1] for p in cl) / len(cl), cl[0][3], cl[0][4]) for cl in clusters]


class AddressRanges:
    """Street segments with house-number ranges: "2820 Greenwich St" becomes a point on its block.

    The number is interpolated linearly between the segment's first-vertex and last-vertex
    numbers. Layers without ranges (OpenStreetMap's) simply give no address places.
    """

    def __init__(self, segments: list[StreetSegment]) -> None:
        self._by_core: dict[tuple[str, ...], list] = {}
        for seg in segments:
            if seg.from_address is None or seg.to_address is None:
                continue
            name = parse_street(seg.name)
            self._by_core.setdefault(name.core, []).append((seg, name, shapely.from_wkt(seg.geometry_wkt)))

    def cores(self) -> set[tuple[str, ...]]:
        """The street cores that have ranges (the text search must know them as streets)."""
        return set(self._by_core)

    def locate(self, number: int, core: tuple[str, ...], agrees) -> list[Place]:
        """Address places for ``number`` on every ranged segment of the street that ``agrees`` accepts."""
        out = []
        for seg, name, line in self._by_core.get(core, ()):
            lo, hi = sorted((seg.from_address, seg.to_address))
            if not (lo <= number <= hi) or not agrees(name):
                continue
            frac = 0.5 if hi == lo else (number - seg.from_address) / (seg.to_address - seg.from_address)
            pt = line.interpolate(frac, normalized=True)
            out.append(Place(place_id=f"a:{seg.segment_id}:{number}", name=f"{number} {seg.name}", kind="address",
                             lat=pt.y, lon=pt.x, streets=(seg.name,), area=seg.area))
        return out
