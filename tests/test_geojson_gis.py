"""The GeoJSON GIS plugin: the contract suite on the demo and real city files, broken features."""

from __future__ import annotations

import json
from datetime import date
from importlib import resources
from pathlib import Path

import pytest
import shapely

from social311.integrations.gis.geojson import GeoJSONConfig, GeoJSONGIS, GISFileError
from social311.integrations.testing import GISContract

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
CHICAGO = SHARED / "chicago" / "chicago_wards_2015_2023.geojson"
NYC = SHARED / "nyc" / "nyc_council_districts_2013_2023.geojson"
DEMO = resources.files("social311.demo")


def make(wards: Path, places: Path | None = None, **cfg) -> GeoJSONGIS:
    config = GeoJSONConfig(wards_path=str(wards), places_path=str(places) if places else None,
                           boundary_version=cfg.pop("boundary_version", "test-v1"), **cfg)
    return GeoJSONGIS(config, instance_name="city_gis")


def feature(ward_id, geometry, **props) -> dict:
    return {"type": "Feature", "properties": {"ward": ward_id, **props}, "geometry": geometry}


def write(path: Path, features: list) -> Path:
    path.write_text(json.dumps({"type": "FeatureCollection", "features": features}), encoding="utf-8")
    return path


SQUARE = {"type": "Polygon", "coordinates": [[[-87.7, 41.8], [-87.6, 41.8], [-87.6, 41.9], [-87.7, 41.9], [-87.7, 41.8]]]}
BOWTIE = {"type": "Polygon", "coordinates": [[[-87.7, 41.8], [-87.6, 41.9], [-87.6, 41.8], [-87.7, 41.9], [-87.7, 41.8]]]}


class TestDemoCityContract(GISContract):
    def make_gis(self, tmp_path: Path) -> GeoJSONGIS:
        return make(Path(str(DEMO / "wards.geojson")), Path(str(DEMO / "places.geojson")),
                    ward_id_property="ward_id", ward_name_property="name", valid_from=date(2015, 5, 18))


@pytest.mark.skipif(not CHICAGO.exists(), reason=f"real Chicago wards not found at {CHICAGO}")
class TestChicagoContract(GISContract):
    def make_gis(self, tmp_path: Path) -> GeoJSONGIS:
        return make(CHICAGO, ward_id_property="ward", boundary_version="chicago-2015")

    def test_fifty_wards_without_rejects(self, ward_set) -> None:
        assert sorted(int(w.ward_id) for w in ward_set.wards) == list(range(1, 51))
        assert ward_set.rejects == ()
        assert {w.name for w in ward_set.wards} >= {"Ward 42"}


@pytest.mark.skipif(not NYC.exists(), reason=f"real NYC council districts not found at {NYC}")
class TestNYCContract(GISContract):
    def make_gis(self, tmp_path: Path) -> GeoJSONGIS:
        return make(NYC, ward_id_property="coun_dist", boundary_version="nyc-2013")

    def test_fifty_one_districts_with_integer_ids_as_text(self, ward_set) -> None:
        assert sorted(int(w.ward_id) for w in ward_set.wards) == list(range(1, 52))
        assert "1" in {w.ward_id for w in ward_set.wards}


def test_demo_wards_cover_the_demo_places() -> None:
    gis = make(Path(str(DEMO / "wards.geojson")), Path(str(DEMO / "places.geojson")), ward_id_property="ward_id")
    union = shapely.union_all([shapely.from_wkt(w.geometry_wkt) for w in gis.wards().wards])
    places = gis.places()
    assert 150 <= len(places) <= 320
    assert {p.kind for p in places} == {"intersection", "landmark"}
    assert all(union.covers(shapely.Point(p.lon, p.lat)) for p in places)


def test_self_intersecting_bowtie_is_repaired(tmp_path: Path) -> None:
    ws = make(write(tmp_path / "w.geojson", [feature("1", BOWTIE)]), ward_id_property="ward").wards()
    (ward,) = ws.wards
    geom = shapely.from_wkt(ward.geometry_wkt)
    assert not shapely.from_geojson(json.dumps(BOWTIE)).is_valid
    assert geom.is_valid and geom.geom_type == "MultiPolygon" and len(geom.geoms) == 2
    assert geom.area == pytest.approx(0.005)
    assert ws.rejects == ()


@pytest.mark.parametrize(
    ("features", "reason"),
    [
        ([feature("1", None)], "no geometry"),
        ([feature("1", {"type": "Polygon", "coordinates": []})], "empty geometry"),
        ([feature("1", {"type": "Point", "coordinates": [-87.6, 41.8]})], "no polygonal part in a Point"),
        ([feature(None, SQUARE)], "no 'ward' property"),
        ([feature("  ", SQUARE)], "no 'ward' property"),
        ([feature("1", SQUARE), feature("1", SQUARE)], "duplicate ward id '1', first at feature 0"),
        ([feature("1", {"type": "Polygon", "coordinates": [[[1160000, 1900000], [1170000, 1900000],
                                                            [1170000, 1910000], [1160000, 1900000]]]})],
         "coordinates outside EPSG:4326"),
        ([feature("1", {"type": "Polygon", "coordinates": [[[-87.7, 41.8], [-87.6]]]})], "unreadable geometry"),
    ],
)
def test_broken_wards_are_rejected_with_reason(tmp_path: Path, features: list, reason: str) -> None:
    ws = make(write(tmp_path / "w.geojson", features), ward_id_property="ward").wards()
    assert len(ws.rejects) == 1
    assert reason in ws.rejects[0].reason
    assert ws.rejects[0].source == "city_gis" and ws.rejects[0].record_ref.startswith("w.geojson#")
    assert len(ws.wards) == len(features) - 1


@pytest.mark.parametrize(
    ("raw_id", "name_prop", "expected_id", "expected_name"),
    [
        (7, None, "7", "Ward 7"),
        (7.0, "label", "7", "Seventh"),
        (" 12 ", "missing", "12", "Ward 12"),
        ("A", "label", "A", "Seventh"),
    ],
)
def test_ids_and_names_are_normalised(tmp_path: Path, raw_id, name_prop, expected_id, expected_name) -> None:
    path = write(tmp_path / "w.geojson", [feature(raw_id, SQUARE, label="Seventh")])
    ws = make(path, ward_id_property="ward", ward_name_property=name_prop,
              valid_from=date(2023, 5, 15), valid_to=date(2027, 5, 1)).wards()
    (ward,) = ws.wards
    assert (ward.ward_id, ward.name) == (expected_id, expected_name)
    assert (ws.version, ws.valid_from, ws.valid_to) == ("test-v1", date(2023, 5, 15), date(2027, 5, 1))


@pytest.mark.parametrize("content", ["", "{not json", '{"type": "Feature"}', "[]"])
def test_unreadable_wards_file_raises_a_clear_error(tmp_path: Path, content: str) -> None:
    (tmp_path / "w.geojson").write_text(content, encoding="utf-8")
    with pytest.raises(GISFileError, match="w.geojson"):
        make(tmp_path / "w.geojson").wards()


def test_missing_wards_file_raises_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(GISFileError, match="cannot read"):
        make(tmp_path / "absent.geojson").wards()


def test_places_read_with_rejects(tmp_path: Path) -> None:
    def pt(props, coords=(-87.63, 41.88)):
        return {"type": "Feature", "properties": props, "geometry": {"type": "Point", "coordinates": list(coords)}}

    good = {"place_id": "p1", "name": "State & Lake", "kind": "intersection", "aliases": ["State and Lake"],
            "streets": ["N State St", "E Lake St"]}
    places_path = write(tmp_path / "p.geojson", [
        pt(good),
        pt({**good, "name": "again"}),
        pt({**good, "place_id": "p2", "kind": "volcano"}),
        pt({**good, "place_id": "p3"}, coords=(-87.63, 95.0)),
        {"type": "Feature", "properties": {**good, "place_id": "p4"}, "geometry": None},
        pt({"name": "no id", "kind": "landmark"}),
    ])
    gis = make(write(tmp_path / "w.geojson", [feature("1", SQUARE)]), places_path, ward_id_property="ward")
    places, rejects = gis.read_places()
    assert [p.place_id for p in places] == ["p1"]
    assert places[0].streets == ("N State St", "E Lake St") and places[0].aliases == ("State and Lake",)
    reasons = [r.reason for r in rejects]
    assert "duplicate place_id 'p1'" in reasons[0]
    assert reasons[1].startswith("kind:")
    assert reasons[2].startswith("lat:")
    assert reasons[3] == "geometry is not a Point"
    assert reasons[4] == "no place_id"
    assert gis.places() == places


def test_no_places_file_means_no_places(tmp_path: Path) -> None:
    gis = make(write(tmp_path / "w.geojson", [feature("1", SQUARE)]), ward_id_property="ward")
    assert gis.places() == [] and gis.read_places() == ([], [])
