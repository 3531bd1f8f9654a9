"""Text geocoding against a gazetteer built from street centerlines (synthetic grid, then real layers)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from social311.integrations.gis.geojson import GeoJSONConfig, GeoJSONGIS
from social311.models.geo import haversine_m
from social311.models.geocode import intersections
from social311.models.locations import Gazetteer
from social311.models.streets import canonical, ordinal
from social311.records import Place, StreetSegment

# Two "boroughs" 10 km apart, each a small grid: avenues run north-south, streets east-west.
# Both have "5th Avenue" and "10th Street"; only "east" has "Main Street".
STEP = 0.001  # about 100 m


def grid(lon0: float, lat0: float, area: str, avenues: list[str], streets: list[str]) -> list[StreetSegment]:
    segs = []
    for i, name in enumerate(avenues):
        x = lon0 + i * STEP
        segs.append(StreetSegment(segment_id=f"{area}-a{i}", name=name, area=area,
                                  geometry_wkt=f"LINESTRING ({x} {lat0 - STEP}, {x} {lat0 + len(streets) * STEP})"))
    for j, name in enumerate(streets):
        y = lat0 + j * STEP
        segs.append(StreetSegment(segment_id=f"{area}-s{j}", name=name, area=area,
                                  geometry_wkt=f"LINESTRING ({lon0 - STEP} {y}, {lon0 + len(avenues) * STEP} {y})"))
    return segs


WEST = grid(-74.00, 40.70, "west side", ["4th Avenue", "5th Avenue", "6th Avenue"], ["9th Street", "10th Street", "11th Street"])
EAST = grid(-73.88, 40.70, "east side", ["5th Avenue", "Bowne Street"], ["10th Street", "Sanford Avenue", "Main Street"])


@pytest.fixture(scope="module")
def gazetteer() -> Gazetteer:
    return Gazetteer(intersections(WEST + EAST), {"north shore": ["Harbor Road", "Bay Street"]})


def test_intersections_computed_once_per_crossing() -> None:
    places = intersections(WEST)
    assert len(places) == 9 and all(p.kind == "intersection" and p.area == "west side" for p in places)
    assert len({p.place_id for p in places}) == 9


@pytest.mark.parametrize(
    ("text", "expect"),
    [
        ("Huge pothole at 6th Ave & 11th St", ("west side", -73.998, 40.702)),
        ("corner of Sanford and Bowne, light out", ("east side", -73.879, 40.701)),
        ("Sanford Ave / Bowne St flooding", ("east side", -73.879, 40.701)),
        ("hydrant open on 4 Ave and E 9 St", ("west side", -74.0, 40.70)),  # DCP numerals, dropped E/W
        ("on 5th Avenue between 9th and 10th Street", ("west side", -73.999, 40.7005)),  # middle of the block
        ("5th Ave and 10th St in East Side, broken light", ("east side", -73.88, 40.70)),  # area named: decides
        ("5th Ave and 10th St, broken light", None),  # in both areas, nothing else says which: no guess
        ("Main Street is dirty", None),  # a street alone is no place
        ("trash at Harbor Rd and Bay St", None),  # names known only where there is no geometry
        ("pothole at 9th St & Main St", None),  # those two never cross
    ],
)
def test_text_geocoding(gazetteer: Gazetteer, text: str, expect) -> None:
    found = gazetteer.match(text)
    if expect is None:
        assert found is None, found
        return
    area, lon, lat = expect
    assert found is not None and found.method == "text" and found.confidence >= 0.85
    assert haversine_m(found.lat, found.lon, lat, lon) < 15, (found.lat, found.lon)
    assert found.matched_text and found.matched_text in text


def test_a_corner_also_possible_where_geometry_is_missing_is_not_placed() -> None:
    # "5th Ave & Main St" exists only in "east side" geometry, but the unlocated "queens" has both names.
    gaz = Gazetteer(intersections(EAST), {"queens": ["5th Avenue", "Main Street"]})
    assert gaz.match("5th Ave and Main St") is None
    assert gaz.match("5th Ave and Main St, East Side") is not None


@pytest.mark.parametrize(("n", "text"), [(1, "1st"), (2, "2nd"), (3, "3rd"), (11, "11th"), (12, "12th"), (13, "13th"),
                                         (21, "21st"), (102, "102nd"), (111, "111th")])
def test_ordinals(n: int, text: str) -> None:
    assert ordinal(n) == text and canonical(str(n)) == text


def test_house_numbers_stay_numbers() -> None:
    assert canonical("2820") == "2820"


def test_streets_through_the_geojson_plugin(tmp_path: Path) -> None:
    folder = tmp_path / "streets"
    folder.mkdir()
    for area, segs in (("west_side", WEST), ("east_side", EAST)):
        feats = [{"type": "Feature", "properties": {"name": s.name, "highway": "residential"},
                  "geometry": json.loads(__import__("shapely").to_geojson(__import__("shapely").from_wkt(s.geometry_wkt)))}
                 for s in segs]
        feats.append({"type": "Feature", "properties": {"name": "No Line"}, "geometry": {"type": "Point", "coordinates": [0, 0]}})
        (folder / f"streets_{area}.geojson").write_text(json.dumps({"type": "FeatureCollection", "features": feats}))
    (folder / "names_queens.json").write_text(json.dumps(["5th Avenue", "Main Street"]))
    wards = tmp_path / "w.geojson"
    wards.write_text(json.dumps({"type": "FeatureCollection", "features": []}))
    gis = GeoJSONGIS(GeoJSONConfig(wards_path=str(wards), boundary_version="v", streets_dir=str(folder),
                                   streets_pattern="streets_*.geojson", street_names_pattern="names_*.json"),
                     instance_name="city")
    assert {s.area for s in gis.streets()} == {"west side", "east side"} and len(gis.streets()) == len(WEST + EAST)
    assert set(gis.unlocated_streets()) == {"queens"}
    assert len([p for p in gis.gazetteer() if p.kind == "intersection"]) == 9 + 6


# --- real layers

def test_nyc_publicstuff_geocoding_figures(shared_data: Path) -> None:
    from social311.models.geocode_eval import evaluate

    figures = evaluate(shared_data)
    # The figures the README reports (bench/geocode_nyc.py); bounds catch a regression.
    assert figures["intersections_in_gazetteer"] > 15_000
    assert figures["resident_reports"] > 900
    assert figures["share_placed"] >= 0.04
    assert figures["median_error_m"] <= 50
    assert figures["p90_error_m"] <= 400
    assert figures["share_wrong_district"] <= 0.30


def test_chicago_intersections_layer_finds_corners(shared_data: Path) -> None:
    path = shared_data / "chicago" / "chicago_intersections.geojson"
    if not path.exists():
        pytest.skip(f"{path} not found")
    places = [Place(place_id=f"chi-{i}", name=f["properties"]["intersection"], kind="intersection",
                    lon=f["geometry"]["coordinates"][0], lat=f["geometry"]["coordinates"][1],
                    streets=(f["properties"]["street_1"], f["properties"]["street_2"]))
              for i, f in enumerate(json.loads(path.read_text())["features"])]
    gaz = Gazetteer(places)
    found = gaz.match("Street light out at State and Madison")
    assert found is not None and haversine_m(found.lat, found.lon, 41.8821, -87.6278) < 100
    assert gaz.match("pothole at N Clark St & W Division St") is not None


RANGED = [
    StreetSegment(segment_id="g1", name="Greenwich St", area="west side", from_address=2800, to_address=2898,
                  geometry_wkt="LINESTRING (-74.010 40.720, -74.010 40.721)"),
    StreetSegment(segment_id="g2", name="Greenwich St", area="west side", from_address=2900, to_address=2998,
                  geometry_wkt="LINESTRING (-74.010 40.721, -74.010 40.722)"),
    StreetSegment(segment_id="h1", name="N Greenwich Ave", area="west side", from_address=1, to_address=99,
                  geometry_wkt="LINESTRING (-74.020 40.730, -74.021 40.730)"),
]


@pytest.mark.parametrize(
    ("text", "lat", "lon"),
    [
        ("Dead streetlight in front of 2820 Greenwich St", 40.72020, -74.010),
        ("2949 greenwich street: hydrant leaking", 40.72150, -74.010),
        ("50 N Greenwich Ave pothole", 40.730, -74.0205),
        ("3050 Greenwich St", None, None),  # beyond every range
        ("2820 Greenwich Ave", None, None),  # the type contradicts every ranged street
    ],
)
def test_addresses_interpolated_along_ranges(text: str, lat, lon) -> None:
    found = Gazetteer([], segments=RANGED).match(text)
    if lat is None:
        assert found is None
        return
    assert found is not None and found.confidence == 0.85 and found.place_id.startswith("a:")
    assert haversine_m(found.lat, found.lon, lat, lon) < 5


def test_places_asset_caches_intersections_and_centerlines(tmp_path: Path) -> None:
    import dagster as dg
    import shapely
    import yaml

    from social311.orchestration.gis import gis_places
    from social311.orchestration.resources import CityResource
    from social311.warehouse import connect

    (tmp_path / "streets").mkdir()
    feats = [{"type": "Feature", "properties": {"name": s.name},
              "geometry": json.loads(shapely.to_geojson(shapely.from_wkt(s.geometry_wkt)))} for s in WEST]
    (tmp_path / "streets" / "c_west.geojson").write_text(json.dumps({"type": "FeatureCollection", "features": feats}))
    (tmp_path / "w.geojson").write_text(json.dumps({"type": "FeatureCollection", "features": []}))
    (tmp_path / "city.yaml").write_text(yaml.safe_dump({
        "city": "T", "duckdb_path": "w.duckdb", "sources": [{"plugin": "file_drop", "config": {"drop_dir": "drop"}}],
        "gis": {"plugin": "geojson", "config": {"wards_path": "w.geojson", "boundary_version": "v",
                                                 "streets_dir": "streets", "streets_pattern": "c_*.geojson"}},
        "ticketing": {"plugin": "open311", "config": {"endpoint": "http://127.0.0.1:9/open311/v2"}}}))
    result = dg.materialize([gis_places], resources={"city": CityResource(config_path=str(tmp_path / "city.yaml"))})
    assert result.success
    with connect(tmp_path / "w.duckdb") as con:
        assert con.execute("select count(*) from gis.streets").fetchone()[0] == len(WEST)
        assert con.execute("select count(*), min(area), max(area) from gis.places where kind = 'intersection'").fetchone() == (9, "west", "west")
