"""The gazetteer on real street-layer habits: names that contain other names, zero-padded
numbered streets, address-point layers and junction layers naming several streets."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from social311.integrations.gis.geojson import GeoJSONConfig, GeoJSONGIS
from social311.models.geo import haversine_m
from social311.models.geocode import intersections
from social311.models.locations import Gazetteer
from social311.models.streets import canonical, split_intersection
from social311.orchestration.gis import load_gazetteer, store_streets
from social311.records import Place, StreetSegment
from social311.warehouse import connect

STEP = 0.001  # about 100 m


def line(sid: str, name: str, x0: float, y0: float, x1: float, y1: float, area: str | None = None) -> StreetSegment:
    return StreetSegment(segment_id=sid, name=name, area=area, geometry_wkt=f"LINESTRING ({x0} {y0}, {x1} {y1})")


# Boston's downtown: "Summer Street Place" is a short way elsewhere; "Summer St" crosses "Chauncy St".
BOSTON = [
    line("summer", "Summer St", -71.060, 42.354, -71.055, 42.354),
    line("chauncy", "Chauncy St", -71.058, 42.352, -71.058, 42.356),
    line("ssp", "Summer Street Place", -71.050, 42.360, -71.050, 42.362),
    line("ssp-x", "Otis St", -71.051, 42.361, -71.049, 42.361),
]


def test_a_longer_name_does_not_swallow_a_shorter_street() -> None:
    gaz = Gazetteer(intersections(BOSTON))
    found = gaz.match("Trash everywhere at Chauncy St & Summer St")
    assert found is not None and abs(found.lat - 42.354) < 1e-6 and abs(found.lon - -71.058) < 1e-6
    # The long name written out in full is still that street.
    long = gaz.match("light out at Summer Street Place and Otis St")
    assert long is not None and abs(long.lat - 42.361) < 1e-6


@pytest.mark.parametrize(("word", "canon"), [("06th", "6th"), ("06", "6th"), ("6TH".lower(), "6th"), ("sixth", "6th"),
                                             ("001st", "1st"), ("first", "1st"), ("2820", "2820"), ("0", "0")])
def test_numbered_streets_are_canonical(word: str, canon: str) -> None:
    assert canonical(word) == canon


def test_zero_padded_layer_meets_plain_text() -> None:
    layer = [line("a6", "06TH AVE", -74.000, 40.700, -74.000, 40.710), line("s3", "W 03RD ST", -74.005, 40.705, -73.995, 40.705)]
    gaz = Gazetteer(intersections(layer))
    for text in ("pothole at 6th Ave and 3rd St", "Sixth Avenue & W 3 Street, hydrant"):
        found = gaz.match(text)
        assert found is not None and abs(found.lat - 40.705) < 1e-6 and abs(found.lon - -74.0) < 1e-6, text


def test_junction_layer_with_four_streets_places_every_pair() -> None:
    assert split_intersection("A ST / B AVE / C RD / D PL") == ("A ST", "B AVE", "C RD", "D PL")
    junction = Place(place_id="j1", name="Five Points", kind="intersection", lat=42.0, lon=-87.0,
                     streets=("Milwaukee Ave", "Damen Ave", "North Ave", "Wicker Park Ave"))
    gaz = Gazetteer([junction])
    for text in ("Milwaukee Ave & Damen Ave", "North Ave and Wicker Park Ave", "Damen Ave / North Ave"):
        found = gaz.match(text)
        assert found is not None and found.place_id == "j1", text
    assert gaz.match("Milwaukee Ave and Ashland Ave") is None


def _points_file(tmp_path: Path) -> Path:
    feats = [
        {"type": "Feature", "properties": {"ADDR": "1382 Dumont Ave"}, "geometry": {"type": "Point", "coordinates": [-73.8666, 40.6701]}},
        {"type": "Feature", "properties": {"ADDR": "1384 Dumont Ave"}, "geometry": {"type": "Point", "coordinates": [-73.8664, 40.6702]}},
        {"type": "Feature", "properties": {"ADDR": "3065 Nostrand Ave"}, "geometry": {"type": "Point", "coordinates": [-73.9436, 40.6097]}},
        {"type": "Feature", "properties": {"ADDR": ""}, "geometry": {"type": "Point", "coordinates": [-73.9, 40.6]}},  # no address: left out
        {"type": "Feature", "properties": {"ADDR": "12 Nowhere St"}, "geometry": None},  # no point: left out
    ]
    path = tmp_path / "address_points.geojson"
    path.write_text(json.dumps({"type": "FeatureCollection", "features": feats}))
    return path


def _wards(tmp_path: Path) -> Path:
    path = tmp_path / "w.geojson"
    ring = [[-74.1, 40.5], [-73.7, 40.5], [-73.7, 40.9], [-74.1, 40.9], [-74.1, 40.5]]
    path.write_text(json.dumps({"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {"d": "1"}, "geometry": {"type": "Polygon", "coordinates": [ring]}}]}))
    return path


def test_address_point_layer_places_house_numbers(tmp_path: Path) -> None:
    gis = GeoJSONGIS(GeoJSONConfig(wards_path=str(_wards(tmp_path)), ward_id_property="d", boundary_version="v",
                                   address_points_path=str(_points_file(tmp_path)), address_property="ADDR"),
                     instance_name="gis")
    places = gis.gazetteer()
    assert sorted(p.name for p in places if p.kind == "address") == ["1382 Dumont Ave", "1384 Dumont Ave", "3065 Nostrand Ave"]
    gaz = Gazetteer(places)
    found = gaz.match("Illegal parking in front of 1382 Dumont Avenue for months")
    assert found is not None and haversine_m(found.lat, found.lon, 40.6701, -73.8666) < 1
    assert gaz.match("1390 Dumont Ave") is None  # no such point and no ranges: not guessed
    assert gaz.match("3065 Dumont Ave") is None  # the number exists, on another street


def test_places_asset_tables_feed_the_pipeline_gazetteer(tmp_path: Path) -> None:
    """Bulk-stored centerlines and unlocated street names come back into the pipeline's gazetteer."""
    segs = [line("a", "Harbor Rd", -74.0, 40.6, -74.0, 40.61, "west"), line("b", "Bay St", -74.005, 40.605, -73.995, 40.605, "west")]
    ranged = StreetSegment(segment_id="r", name="Greenwich St", area="west", geometry_wkt="LINESTRING (-74.01 40.70, -74.01 40.71)",
                           from_address=2800, to_address=2900)
    with connect(tmp_path / "w.duckdb") as con:
        store_streets(con, [*segs, ranged, segs[0]])  # a repeated id keeps the first
        con.executemany("insert into gis.places (place_id, name, kind, lat, lon, aliases, streets, area) values (?, ?, ?, ?, ?, ?, ?, ?)",
                        [(p.place_id, p.name, p.kind, p.lat, p.lon, [], list(p.streets), p.area) for p in intersections(segs)])
        con.execute("insert into gis.unlocated_street_names values ('north shore', 'Harbor Road'), ('north shore', 'Bay Street')")
        assert con.execute("select count(*), count(from_address) from gis.streets").fetchone() == (3, 1)
        gaz = load_gazetteer(con)
    # The corner exists in an area with no geometry too: not placed unless the area is named.
    assert gaz.match("Harbor Rd and Bay St flooding") is None
    assert gaz.match("Harbor Rd and Bay St, West, flooding") is not None
    assert gaz.match("2850 Greenwich St") is not None


def test_street_layer_of_20000_segments_loads_in_bulk(tmp_path: Path) -> None:
    """Stored exactly (ids, names, geometry, ranges); its time is measured in bench/gis_places.py."""
    segs = [StreetSegment(segment_id=f"s{i}", name=f"{i % 300} St", area=None,
                          geometry_wkt=f"LINESTRING (-87.{i % 1000:03d} 41.{i // 1000:03d}, -87.{i % 1000:03d}1 41.{i // 1000:03d}1)",
                          from_address=i if i % 2 else None, to_address=i + 98 if i % 2 else None) for i in range(20000)]
    with connect(tmp_path / "w.duckdb") as con:
        store_streets(con, segs)
        n, ranged, max_to = con.execute("select count(*), count(from_address), max(to_address) from gis.streets").fetchone()
        wkt = con.execute("select st_astext(geom) from gis.streets where segment_id = 's12345'").fetchone()[0]
    assert (n, ranged, max_to) == (20000, 10000, 19999 + 98)
    assert wkt.startswith("LINESTRING (-87.345 41.012")
