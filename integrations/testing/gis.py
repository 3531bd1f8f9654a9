"""The contract every GIS plugin keeps: a versioned, valid, uniquely keyed boundary set."""

from __future__ import annotations

from pathlib import Path

import pytest
import shapely

from social311.integrations.gis.base import GISPlugin
from social311.records import Place, Reject, WardSet


class GISContract:
    """Subclass as ``Test...`` and implement :meth:`make_gis`; pytest runs every test."""

    def make_gis(self, tmp_path: Path) -> GISPlugin:
        """A GIS plugin with at least one ward, reading only from ``tmp_path`` or fixed files."""
        raise NotImplementedError

    @pytest.fixture
    def gis(self, tmp_path: Path) -> GISPlugin:
        return self.make_gis(tmp_path)

    @pytest.fixture
    def ward_set(self, gis: GISPlugin) -> WardSet:
        return gis.wards()

    def test_wards_non_empty_with_unique_ids(self, ward_set: WardSet) -> None:
        assert isinstance(ward_set, WardSet)
        ids = [w.ward_id for w in ward_set.wards]
        assert ids, "a boundary set needs at least one ward"
        assert len(ids) == len(set(ids))
        assert all(isinstance(r, Reject) for r in ward_set.rejects)

    def test_versions_set(self, ward_set: WardSet) -> None:
        assert ward_set.version.strip()
        if ward_set.valid_from and ward_set.valid_to:
            assert ward_set.valid_from <= ward_set.valid_to

    def test_geometry_is_valid_polygonal_wgs84(self, ward_set: WardSet) -> None:
        for ward in ward_set.wards:
            geom = shapely.from_wkt(ward.geometry_wkt)
            assert geom.geom_type in ("Polygon", "MultiPolygon"), ward.ward_id
            assert not geom.is_empty and geom.is_valid, ward.ward_id
            min_x, min_y, max_x, max_y = geom.bounds
            assert -180 <= min_x <= max_x <= 180 and -90 <= min_y <= max_y <= 90, ward.ward_id

    def test_places_have_coordinates_in_range(self, gis: GISPlugin) -> None:
        places = gis.places()
        assert all(isinstance(p, Place) for p in places)
        ids = [p.place_id for p in places]
        assert len(ids) == len(set(ids))
        for place in places:
            assert place.name.strip()
            assert -90 <= place.lat <= 90 and -180 <= place.lon <= 180
            assert not (place.lat == 0 and place.lon == 0), place.place_id
