"""Base class of GIS plugins (group ``social311.gis``): wards, and an optional gazetteer."""

from __future__ import annotations

from abc import ABC, abstractmethod

from social311.integrations.base import Plugin
from social311.records import Place, WardSet


class GISPlugin(Plugin, ABC):
    """The city's own GIS: versioned ward boundaries and named places for text geocoding."""

    @abstractmethod
    def wards(self) -> WardSet:
        """The boundary set, in EPSG:4326, with broken features in ``rejects`` (never raised)."""

    def places(self) -> list[Place]:
        """Named places (intersections, streets, landmarks) for geocoding text. Default: none."""
        return []
