"""Location extraction: gazetteer text matching and the order of trust, table-driven."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from social311.models.locations import Gazetteer, LocationResult, locate
from social311.models.streets import parse_street, StreetName
from social311.records import Place

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "chicago" / "chicago_intersections.geojson"

PLACES = [
    Place(place_id="i-state-madison", name="N STATE ST & W MADISON ST", kind="intersection",
          lat=41.88204, lon=-87.62781, streets=("N STATE ST", "W MADISON ST")),
    # The same crossing listed again with the other direction pair, a few metres away.
    Place(place_id="i-state-madison-s", name="S STATE ST & E MADISON ST", kind="intersection",
          lat=41.88200, lon=-87.62779, streets=("S STATE ST", "E MADISON ST")),
    Place(place_id="i-clark-lake", name="N CLARK ST & W LAKE ST", kind="intersection",
          lat=41.88574, lon=-87.63098, streets=("N CLARK ST", "W LAKE ST")),
    # Two far-apart crossings of the same street names (as Ashland crosses two "Grand"s).
    Place(place_id="i-oak-main-1", name="OAK AVE & MAIN ST", kind="intersection", lat=41.90, lon=-87.70,
          streets=("OAK AVE", "MAIN ST")),
    Place(place_id="i-oak-main-2", name="OAK AVE & MAIN ST", kind="intersection", lat=41.95, lon=-87.70,
          streets=("OAK AVE", "MAIN ST")),
    Place(place_id="i-grand-state", name="GRAND AVE and STATE ST", kind="intersection", lat=41.89167, lon=-87.62807),
    Place(place_id="i-n-western", name="N WESTERN AVE & W NORTH AVE", kind="intersection", lat=41.91032,
          lon=-87.68722, streets=("N WESTERN AVE", "W NORTH AVE")),
    Place(place_id="l-bean", name="Cloud Gate", kind="landmark", lat=41.88266, lon=-87.62331,
          aliases=("the bean",)),
    Place(place_id="s-halsted", name="S HALSTED ST", kind="street", lat=41.86, lon=-87.6469),
]


@pytest.fixture(scope="module")
def gazetteer():
    return Gazetteer(PLACES)


@pytest.mark.parametrize(
    "name, expected",
    [
        ("N STATE ST", StreetName("north", ("state",), "street")),
        ("W North Ave", StreetName("west", ("north",), "avenue")),
        ("S ST LOUIS AVE", StreetName("south", ("street", "louis"), "avenue")),
        ("E 35TH ST", StreetName("east", ("35th",), "street")),
        ("W FULTON MARKET", StreetName("west", ("fulton", "market"), None)),
        ("state", StreetName(None, ("state",), None)),
    ],
)
def test_parse_street(name, expected):
    assert parse_street(name) == expected


@pytest.mark.parametrize(
    "text, place_id, confidence, matched",
    [
        ("huge pothole at State and Madison", "i-state-madison", 0.9, "State and Madison"),
        ("corner of Clark & Lake is flooded", "i-clark-lake", 0.9, "Clark & Lake"),
        ("light out N STATE ST & W MADISON ST tonight", "i-state-madison", 0.9, "N STATE ST & W MADISON ST"),
        ("drain clogged at S. State St. and E. Madison", "i-state-madison-s", 0.9, "S. State St. and E. Madison"),
        ("signal dark @ state/madison", "i-state-madison", 0.9, "state/madison"),
        ("Lake St at Clark St pothole", "i-clark-lake", 0.9, "Lake St at Clark St"),
        ("grand and state bins overflowing", "i-grand-state", 0.9, "grand and state"),  # streets split from the name
        ("Western & North light out", "i-n-western", 0.9, "Western & North"),
        ("graffiti all over the bean again", "l-bean", 0.8, "the bean"),
        ("someone tagged Cloud Gate", "l-bean", 0.8, "Cloud Gate"),
        ("Madison Ave and State", "i-state-madison", 0.7, "Madison Ave and State"),  # wrong type, still meant
        ("pothole on Halsted St again", "s-halsted", 0.5, "Halsted St"),
        ("pothole at Clark and Lake near the bean", "i-clark-lake", 0.9, "Clark and Lake"),  # best tier wins
    ],
)
def test_match(gazetteer, text, place_id, confidence, matched):
    result = gazetteer.match(text)
    assert result is not None
    assert (result.place_id, result.confidence, result.matched_text, result.method) == (place_id, confidence, matched, "text")


@pytest.mark.parametrize(
    "text",
    [
        "pothole at Oak and Main",  # two different intersections equally good: never guess
        "lights out at State and Madison and at Clark and Lake",  # two places named
        "i love the lake and the park in the state",  # street words, no intersection
        "state of the art coffee on madison",  # no connector between them
        "pothole on Halsted",  # a bare street word is too common to place a post
        "nothing to see here",
        "",
    ],
)
def test_no_match(gazetteer, text):
    assert gazetteer.match(text) is None


def test_same_crossing_listed_twice_is_one_place(gazetteer):
    result = gazetteer.match("State and Madison")
    assert result.lat == pytest.approx((41.88204 + 41.88200) / 2)


@pytest.mark.parametrize(
    "lat, lon, text, bbox, expected",
    [
        (41.9, -87.7, "State and Madison", (-88, 41, -87, 42), LocationResult(41.9, -87.7, "geotag", 0.95)),
        (None, None, "pothole at State and Madison", (-88, 41, -87, 42),
         LocationResult(41.88202, -87.6278, "text", 0.9, "State and Madison", "i-state-madison")),
        (None, None, "pothole somewhere", (-88.0, 41.0, -87.0, 42.0), LocationResult(41.5, -87.5, "place_bbox", 0.3)),
        (None, None, "pothole somewhere", None, LocationResult(None, None, "none", 0.0)),
        (None, None, None, None, LocationResult(None, None, "none", 0.0)),
    ],
)
def test_locate_order_of_trust(gazetteer, lat, lon, text, bbox, expected):
    result = locate(lat, lon, text, bbox, gazetteer)
    assert (result.method, result.confidence, result.matched_text, result.place_id) == (
        expected.method, expected.confidence, expected.matched_text, expected.place_id)
    if expected.lat is None:
        assert (result.lat, result.lon) == (None, None)
    else:
        assert (result.lat, result.lon) == pytest.approx((expected.lat, expected.lon), abs=1e-4)


def test_locate_without_gazetteer_falls_back_to_bbox():
    assert locate(None, None, "State and Madison", (-88, 41, -87, 42), None).method == "place_bbox"


@pytest.mark.skipif(not DATA.exists(), reason=f"real Chicago intersections not found at {DATA}")
@pytest.mark.parametrize(
    "text, lat, lon",
    [
        ("pothole at State and Madison", 41.88204, -87.62781),
        ("corner of Clark & Lake flooded", 41.88574, -87.63098),
        ("signal stuck at Ashland/Division", 41.90335, -87.6675),
        ("light out at Cicero and Irving Park", 41.95342, -87.7473),
    ],
)
def test_real_chicago_intersections(text, lat, lon):
    result = _chicago().match(text)
    assert result is not None and result.confidence == 0.9
    assert (result.lat, result.lon) == pytest.approx((lat, lon), abs=1e-3)


_CACHE: dict[str, Gazetteer] = {}


def _chicago() -> Gazetteer:
    if "g" not in _CACHE:
        features = json.loads(DATA.read_text())["features"]
        _CACHE["g"] = Gazetteer([
            Place(place_id=f"chi-{n}", name=f["properties"]["intersection"], kind="intersection",
                  lat=f["geometry"]["coordinates"][1], lon=f["geometry"]["coordinates"][0],
                  streets=(f["properties"]["street_1"], f["properties"]["street_2"]))
            for n, f in enumerate(features)
        ])
    return _CACHE["g"]
