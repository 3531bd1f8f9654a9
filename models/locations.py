"""Where is the problem? Geotag, a place named in the text (via the city's gazetteer), or neither.

Order of trust: the post's own coordinates (0.95), then a gazetteer match in the text (an
intersection 0.9, an address 0.85, a landmark 0.8, a street alone 0.5), then the centre of the
platform's place box (0.3, usually a whole neighbourhood or city), then nothing (0.0).
A text match that could be two different places is dropped rather than guessed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from itertools import combinations

import numpy as np

from social311.models.geo import haversine_m
from social311.models.streets import (
    CONNECTORS, DIRECTIONS, STREET_TYPES, StreetName, Token, parse_street, split_intersection, tokenize,
)
from social311.models.geocode import AddressRanges
from social311.records import Place, StreetSegment

CONFIDENCE = {"geotag": 0.95, "intersection": 0.9, "address": 0.85, "block": 0.85, "landmark": 0.8, "street": 0.5,
              "place_bbox": 0.3}
# "on A between B and C": a block longer than this is not one block (wrong corners found).
MAX_BLOCK_M = 600.0
# A named street pair whose type or direction contradicts the text is still likely meant.
MISMATCH_CONFIDENCE = 0.7
# Matches closer than this are one place (a Chicago crossing is listed once per direction pair).
SAME_PLACE_M = 150.0

_DIRECTION_WORDS = frozenset(DIRECTIONS.values())
_TYPE_WORDS = frozenset(STREET_TYPES.values())


@dataclass(frozen=True)
class LocationResult:
    """A post's location and how it was found."""

    lat: float | None
    lon: float | None
    method: str  # "geotag" | "text" | "place_bbox" | "none"
    confidence: float
    matched_text: str | None = None
    place_id: str | None = None


@dataclass(frozen=True)
class _Mention:
    street: StreetName
    start: int  # token indices, end exclusive
    end: int


@dataclass(frozen=True)
class _Hit:
    place: Place
    confidence: float
    score: int  # how many given directions/types agree; breaks ties between candidates
    span: tuple[int, int]
    cores: tuple[tuple[str, ...], ...] = ()  # the street cores a corner or block was found by


def _agreement(mention: StreetName, street: StreetName) -> int | None:
    """Agreeing prefix/suffix count, or None when the text contradicts the street name."""
    score = 0
    for said, named in ((mention.direction, street.direction), (mention.street_type, street.street_type)):
        if said is not None and named is not None:
            if said != named:
                return None
            score += 1
    return score


class Gazetteer:
    """Finds the city's named places (intersections, streets, landmarks, addresses) in text.

    Args:
        places: the GIS plugin's gazetteer.
        segments: street centerlines; those with house-number ranges place "2820 Greenwich St".
        unlocated_streets: street names of areas the GIS has names but no geometry for (New
            York's OpenStreetMap layer has none for Queens): a corner whose streets both exist
            there could be there, so it is not placed elsewhere unless the text names the area.
    """

    def __init__(self, places: list[Place], unlocated_streets: dict[str, list[str]] | None = None,
                 segments: list[StreetSegment] | None = None) -> None:
        self._addresses = AddressRanges(segments or [])
        self._unlocated = {area: {parse_street(n).core for n in names} for area, names in (unlocated_streets or {}).items()}
        self._pairs: dict[frozenset, list[tuple[Place, StreetName, StreetName]]] = {}
        self._streets: dict[tuple[str, ...], list[tuple[Place, StreetName]]] = {}
        self._names: dict[tuple[str, ...], list[Place]] = {}
        self._cores: set[tuple[str, ...]] = set()
        # Address points (an address-point layer): (house number, street core) -> places.
        self._points: dict[tuple[int, tuple[str, ...]], list[tuple[Place, StreetName]]] = {}
        for place in places:
            names = list(place.aliases)
            if place.kind == "address" and place.streets and _house_number(place.name) is not None:
                street = parse_street(place.streets[0])
                if street.core:
                    self._points.setdefault((_house_number(place.name), street.core), []).append((place, street))
                    self._cores.add(street.core)
                    continue
            if place.kind == "intersection":
                # A junction layer names 2 to 6 streets at one point: every pair is a corner there.
                streets = place.streets if len(place.streets) >= 2 else split_intersection(place.name)
                for name_a, name_b in combinations(streets or (), 2):
                    a, b = parse_street(name_a), parse_street(name_b)
                    if a.core and b.core and a.core != b.core:
                        self._pairs.setdefault(frozenset((a.core, b.core)), []).append((place, a, b))
                        self._cores.update((a.core, b.core))
            elif place.kind == "street":
                street = parse_street(place.name)
                if street.core:
                    self._streets.setdefault(street.core, []).append((place, street))
                    self._cores.add(street.core)
            else:
                names.append(place.name)
            for name in names:
                key = tuple(t.value for t in tokenize(name))
                if key:
                    self._names.setdefault(key, []).append(place)
        self._cores.update(self._addresses.cores())
        # Area names (boroughs) a post may add as a clue: "5th Ave and 10th St, Brooklyn".
        self._areas = {tuple(t.value for t in tokenize(p.area)): p.area for p in places if p.area}
        self._max_core = max((len(c) for c in self._cores), default=0)
        self._max_name = max((len(n) for n in self._names), default=0)

    def __len__(self) -> int:
        return sum(len(v) for v in self._pairs.values()) + sum(len(v) for v in self._streets.values()) + sum(
            len(v) for v in self._names.values()) + sum(len(v) for v in self._points.values()) + len(self._addresses.cores())

    def _core_at(self, values: list[str], i: int) -> tuple[str, ...] | None:
        """The longest street core at token ``i`` that does not swallow a shorter street's type.

        "Summer St" must not be read as the core of "Summer Street Place": a longer core ending
        in a type word wins only when the text goes on with that longer street's own type.
        """
        for length in range(min(self._max_core, len(values) - i), 0, -1):
            key = tuple(values[i : i + length])
            if key not in self._cores:
                continue
            after = values[i + length] if i + length < len(values) else None
            if length > 1 and key[-1] in _TYPE_WORDS and after not in _TYPE_WORDS and key[:-1] in self._cores:
                return key[:-1]
            return key
        return None

    def _mentions(self, values: list[str]) -> list[_Mention]:
        mentions, i = [], 0
        while i < len(values):
            direction, j = None, i
            # "N State" is a direction prefix, but "North Ave" is a street named North.
            if values[i] in _DIRECTION_WORDS and i + 1 < len(values) and self._core_at(values, i + 1):
                direction, j = values[i], i + 1
            core = self._core_at(values, j)
            if core is None:
                i += 1
                continue
            end = j + len(core)
            street_type = None
            if end < len(values) and values[end] in _TYPE_WORDS:
                street_type, end = values[end], end + 1
            mentions.append(_Mention(StreetName(direction, core, street_type), i, end))
            i = end
        return mentions

    def _could_be_unlocated(self, hit: _Hit, said: set[str]) -> bool:
        """True when the hit's streets all exist in an area without geometry that the text allows."""
        return bool(hit.cores) and any(
            area != hit.place.area and (not said or area in said) and all(c in cores for c in hit.cores)
            for area, cores in self._unlocated.items())

    def _corner(self, m1: _Mention, m2: _Mention, span: tuple[int, int]) -> list[_Hit]:
        """The best-agreeing places where the streets of two mentions cross."""
        found = []
        for place, a, b in self._pairs.get(frozenset((m1.street.core, m2.street.core)), ()):
            first, second = (a, b) if a.core == m1.street.core else (b, a)
            s1, s2 = _agreement(m1.street, first), _agreement(m2.street, second)
            agrees = s1 is not None and s2 is not None
            found.append(_Hit(place, CONFIDENCE["intersection"] if agrees else MISMATCH_CONFIDENCE,
                              (s1 or 0) + (s2 or 0) if agrees else -1, span, (m1.street.core, m2.street.core)))
        best = max((h.confidence for h in found), default=None)
        return [h for h in found if h.confidence == best]

    def _block(self, on: _Mention, m1: _Mention, m2: _Mention) -> list[_Hit]:
        """"on A between B and C": the middle of each block whose two corners are near each other.

        Several blocks far apart (the same names in two boroughs) come back as several hits,
        and ``match`` then refuses to guess between them.
        """
        span = (on.start, m2.end)
        hits = []
        for a in self._corner(on, m1, span):
            for b in self._corner(on, m2, span):
                if haversine_m(a.place.lat, a.place.lon, b.place.lat, b.place.lon) > MAX_BLOCK_M:
                    continue
                mid = Place(place_id=f"{a.place.place_id}~{b.place.place_id}", name=f"{a.place.name} ~ {b.place.name}",
                            kind="intersection", lat=(a.place.lat + b.place.lat) / 2, lon=(a.place.lon + b.place.lon) / 2,
                            area=a.place.area if a.place.area == b.place.area else None)
                hits.append(_Hit(mid, CONFIDENCE["block"], min(a.score, b.score), span,
                                 (on.street.core, m1.street.core, m2.street.core)))
        return hits

    def _street_hits(self, values: list[str]) -> list[_Hit]:
        mentions, hits = self._mentions(values), []
        for k, (m1, m2) in enumerate(zip(mentions, mentions[1:])):
            if not (m2.start == m1.end + 1 and values[m1.end] in CONNECTORS):
                continue
            if m1.start > 0 and values[m1.start - 1] == "between":
                # "between 1st and 2nd Avenue" names a block's two ends, not a corner of them.
                on = mentions[k - 1] if k > 0 and mentions[k - 1].end == m1.start - 1 else None
                hits.extend(self._block(on, m1, m2) if on else [])
                continue
            hits.extend(self._corner(m1, m2, (m1.start, m2.end)))
        for m in mentions:
            # A bare word like "state" is too common to place a post; require "State St".
            if m.street.street_type is None:
                continue
            for place, street in self._streets.get(m.street.core, ()):
                score = _agreement(m.street, street)
                if score is not None:
                    hits.append(_Hit(place, CONFIDENCE["street"], score, (m.start, m.end)))
        return hits

    def _address_hits(self, text: str, tokens: list[Token], values: list[str]) -> list[_Hit]:
        """"2820 Greenwich St": a house number right before a street with address ranges."""
        hits = []
        for m in self._mentions(values):
            if m.start == 0 or m.street.street_type is None:
                continue
            number = text[tokens[m.start - 1].start : tokens[m.start - 1].end]
            if not number.isdigit():
                continue
            points = [place for place, named in self._points.get((int(number), m.street.core), ())
                      if _agreement(m.street, named) is not None]
            if points:
                # An address point is the address itself: better than interpolating a range.
                hits.extend(_Hit(place, CONFIDENCE["address"], 1, (m.start - 1, m.end), (m.street.core,)) for place in points)
                continue
            for place in self._addresses.locate(int(number), m.street.core, lambda named: _agreement(m.street, named) is not None):
                hits.append(_Hit(place, CONFIDENCE["address"], 0, (m.start - 1, m.end), (m.street.core,)))
        return hits

    def _name_hits(self, values: list[str]) -> list[_Hit]:
        hits, i = [], 0
        while i < len(values):
            for length in range(min(self._max_name, len(values) - i), 0, -1):
                places = self._names.get(tuple(values[i : i + length]))
                if places:
                    for place in places:
                        hits.append(_Hit(place, CONFIDENCE.get(place.kind, CONFIDENCE["landmark"]), 0, (i, i + length)))
                    i += length
                    break
            else:
                i += 1
        return hits

    def streets_named(self, text: str) -> list[tuple[str, ...]]:
        """Cores of the streets ``text`` names with a type word ("Fdr Dr", "1382 Dumont Ave"), in order.

        Evidence, not a location: a street alone places nothing, but a point far from every
        street its post names is not where the post says.
        """
        values = [t.value for t in tokenize(text)]
        cores = [m.street.core for m in self._mentions(values) if m.street.street_type is not None]
        # A name that also exists where the GIS has no geometry (New York's Queens) may be there.
        unlocated = set().union(*self._unlocated.values()) if self._unlocated else set()
        return [c for c in dict.fromkeys(cores) if c not in unlocated]

    def match(self, text: str) -> LocationResult | None:
        """The one place named in ``text``.

        Args:
            text: a post's text.

        Returns:
            A ``"text"`` result, or None when nothing matched or the best matches disagree
            (two places more than 150 m apart equally well named).
        """
        tokens = tokenize(text)
        values = [t.value for t in tokens]
        hits = self._street_hits(values) + self._name_hits(values) + self._address_hits(text, tokens, values)
        if not hits:
            return None
        said = {area for key, area in self._areas.items() if _contains(values, key)}
        # The same corner in two boroughs: a borough named in the text decides; else no guess.
        in_said_area = [h for h in hits if h.place.area in said]
        hits = in_said_area or hits
        hits = [h for h in hits if h.place.area in said or not self._could_be_unlocated(h, said)]
        if not hits:
            return None
        top = max(h.confidence for h in hits)
        hits = [h for h in hits if h.confidence == top]
        best_score = max(h.score for h in hits)
        hits = sorted((h for h in hits if h.score == best_score), key=lambda h: h.place.place_id)
        lats = np.array([h.place.lat for h in hits])
        lons = np.array([h.place.lon for h in hits])
        lat, lon = float(lats.mean()), float(lons.mean())
        if float(np.max(haversine_m(lats, lons, lat, lon))) > SAME_PLACE_M:
            return None
        start, end = hits[0].span
        return LocationResult(lat, lon, "text", top, _span_text(text, tokens, start, end), hits[0].place.place_id)


def _house_number(name: str) -> int | None:
    """The leading house number of an address place's name ("1382 Dumont Ave" -> 1382)."""
    found = re.match(r"\s*(\d+)\b", name)
    return int(found.group(1)) if found else None


def _contains(values: list[str], key: tuple[str, ...]) -> bool:
    n = len(key)
    return any(tuple(values[i : i + n]) == key for i in range(len(values) - n + 1))


def _span_text(text: str, tokens: list[Token], start: int, end: int) -> str:
    return text[tokens[start].start : tokens[end - 1].end]


def locate(
    lat: float | None,
    lon: float | None,
    text: str | None,
    place_bbox: tuple[float, float, float, float] | None,
    gazetteer: Gazetteer | None,
) -> LocationResult:
    """Locate one post by the most trusted evidence it has.

    Args:
        lat: the post's geotag latitude, if any.
        lon: the post's geotag longitude, if any.
        text: the post's text.
        place_bbox: the platform's place box ``(min_lon, min_lat, max_lon, max_lat)``, if any.
        gazetteer: the city's gazetteer, or None when the GIS offers none.

    Returns:
        geotag > text match > place box centre > none.
    """
    if lat is not None and lon is not None:
        return LocationResult(float(lat), float(lon), "geotag", CONFIDENCE["geotag"])
    if gazetteer is not None and text:
        found = gazetteer.match(text)
        if found is not None:
            return found
    if place_bbox is not None:
        min_lon, min_lat, max_lon, max_lat = place_bbox
        return LocationResult((min_lat + max_lat) / 2, (min_lon + max_lon) / 2, "place_bbox", CONFIDENCE["place_bbox"])
    return LocationResult(None, None, "none", 0.0)
