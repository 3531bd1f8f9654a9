"""Base class of GIS plugins (group ``social311.gis``): wards, and an optional gazetteer."""

from __future__ import annotations

from abc import ABC, abstractmethod

from social311.integrations.base import Plugin
from social311.records import Place, StreetSegment, WardSet


class GISPlugin(Plugin, ABC):
    """The city's own GIS: versioned ward boundaries and named places for text geocoding."""

    @abstractmethod
    def wards(self) -> WardSet:
        """The boundary set, in EPSG:4326, with broken features in ``rejects`` (never raised)."""

    def places(self) -> list[Place]:
        """Named places (intersections, streets, landmarks) for geocoding text. Default: none."""
        return []

    def streets(self) -> list[StreetSegment]:
        """Street centerlines (names, address ranges where known) for intersections and addresses. Default: none."""
        return []

    def gazetteer(self) -> list[Place]:
        """Everything text geocoding matches: ``places()`` plus intersections computed from ``streets()``."""
        from social311.models.geocode import intersections

        places = self.places()
        streets = self.streets()
        return places + (intersections(streets) if streets else [])

    def street_names(self) -> dict[str, list[str]]:
        """Street names by area, also for areas whose geometry is missing. Default: from ``streets()``."""
        names: dict[str, set[str]] = {}
        for seg in self.streets():
            names.setdefault(seg.area or "", set()).add(seg.name)
        return {area: sorted(n) for area, n in names.items()}

    def unlocated_streets(self) -> dict[str, list[str]]:
        """Names of the areas in ``street_names()`` that have no street geometry at all."""
        located = {seg.area or "" for seg in self.streets()}
        return {area: names for area, names in self.street_names().items() if area not in located}
