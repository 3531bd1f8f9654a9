"""Hostile ward files never stop a city: a NaN vertex, JSON nested past the parser, oversize
files and features, and a file missing a ward. Bad features are quarantined with their reason,
the version in force is replaced only when enough of its wards came, and checks say so."""

from __future__ import annotations

import json
from pathlib import Path

import dagster as dg
import pytest
import yaml

from social311.integrations.gis.geojson import GeoJSONConfig, GeoJSONGIS, GISFileError
from social311.orchestration.gis import boundary_loads_replaced, gis_wards, replace_verdict
from social311.orchestration.resources import CityResource
from social311.warehouse import connect

SQUARE = [[-87.7, 41.8], [-87.6, 41.8], [-87.6, 41.9], [-87.7, 41.9], [-87.7, 41.8]]
CHICAGO_BBOX = [-87.95, 41.64, -87.52, 42.03]


def shifted(dx: float) -> list[list[float]]:
    return [[x + dx, y] for x, y in SQUARE]


def feature(ward, ring) -> dict:
    return {"type": "Feature", "properties": {"ward": ward}, "geometry": {"type": "Polygon", "coordinates": [ring]}}


def write(path: Path, features: list[dict]) -> Path:
    path.write_text(json.dumps({"type": "FeatureCollection", "features": features}))
    return path


def plugin(path: Path, **cfg) -> GeoJSONGIS:
    return GeoJSONGIS(GeoJSONConfig(wards_path=str(path), ward_id_property="ward", boundary_version="v", **cfg), instance_name="gis")


NAN_RING = [[-87.7, 41.8], [-87.6, float("nan")], [-87.6, 41.9], [-87.7, 41.9], [-87.7, 41.8]]
INF_RING = [[-87.7, 41.8], [-87.6, float("inf")], [-87.6, 41.9], [-87.7, 41.9], [-87.7, 41.8]]
BOWTIE_NAN = [[-87.7, 41.8], [-87.6, 41.9], [float("nan"), 41.8], [-87.7, 41.9], [-87.7, 41.8]]

HOSTILE_FEATURES = [
    # (case, feature, reason in the quarantine row)
    ("one NaN vertex", feature("2", NAN_RING), "NaN or infinite coordinate"),
    ("an infinite vertex", feature("2", INF_RING), "NaN or infinite coordinate"),
    ("a NaN vertex in a self-intersecting ring", feature("2", BOWTIE_NAN), "NaN or infinite coordinate"),
    ("coordinates as strings", {"type": "Feature", "properties": {"ward": "2"},
                                "geometry": {"type": "Polygon", "coordinates": [[["a", "b"], ["c", "d"], ["e", "f"]]]}},
     "unreadable geometry"),
    ("geometry type unknown", {"type": "Feature", "properties": {"ward": "2"}, "geometry": {"type": "Blob", "coordinates": []}},
     "unreadable geometry"),
    ("geometry not an object", {"type": "Feature", "properties": {"ward": "2"}, "geometry": [1, 2, 3]}, "unreadable geometry"),
    ("properties not an object", {"type": "Feature", "properties": [1], "geometry": {"type": "Polygon", "coordinates": [SQUARE]}},
     "no 'ward' property"),
    ("nested 100 levels deep", {"type": "Feature", "properties": {"ward": "2", "x": json.loads("[" * 100 + "]" * 100)},
                                "geometry": {"type": "Polygon", "coordinates": [shifted(0.1)]}}, "nested deeper than 64"),
    ("huge coordinates", feature("2", [[1e308, 1e308], [-1e308, 1e308], [-1e308, -1e308], [1e308, 1e308]]),
     "coordinates outside EPSG:4326"),
]


@pytest.mark.parametrize(("case", "bad", "reason"), HOSTILE_FEATURES, ids=[c[0] for c in HOSTILE_FEATURES])
def test_a_hostile_feature_is_quarantined_and_the_rest_load(tmp_path: Path, case: str, bad: dict, reason: str) -> None:
    path = tmp_path / "w.geojson"
    # json.dumps writes NaN / Infinity, which Python's (and many GIS tools') JSON readers accept.
    write(path, [feature("1", SQUARE), bad, feature("3", shifted(0.2))])
    ws = plugin(path).wards()
    assert [w.ward_id for w in ws.wards] == ["1", "3"]
    assert len(ws.rejects) == 1 and reason in ws.rejects[0].reason, ws.rejects


def test_json_nested_past_the_parser_is_a_file_error(tmp_path: Path) -> None:
    path = tmp_path / "deep.geojson"
    path.write_text('{"type": "FeatureCollection", "features": ' + "[" * 200_000 + "]" * 200_000 + "}")
    with pytest.raises(GISFileError, match="nested too deeply"):
        plugin(path).wards()


def test_a_file_over_the_size_limit_is_refused_before_reading(tmp_path: Path) -> None:
    path = write(tmp_path / "w.geojson", [feature("1", SQUARE)] * 50)
    with pytest.raises(GISFileError, match="over the 1,000-byte limit"):
        plugin(path, max_file_bytes=1000).wards()


@pytest.mark.parametrize(("raw", "cfg", "expect"), [
    ("Ward 5", {"ward_id_strip_prefix": "(?i)ward\\s*"}, "5"),
    ("05", {"ward_id_strip_zeros": True}, "5"),
    ("WARD 07", {"ward_id_strip_prefix": "(?i)ward\\s*", "ward_id_strip_zeros": True}, "7"),
    ("05", {}, "05"),  # off by default: ids stay as the city writes them
    ("5A", {"ward_id_strip_zeros": True}, "5A"),
])
def test_ward_id_normalisation(tmp_path: Path, raw: str, cfg: dict, expect: str) -> None:
    ws = plugin(write(tmp_path / "w.geojson", [feature(raw, SQUARE)]), **cfg).wards()
    assert [w.ward_id for w in ws.wards] == [expect]


def test_a_bad_prefix_regex_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not a regular expression"):
        plugin(write(tmp_path / "w.geojson", [feature("1", SQUARE)]), ward_id_strip_prefix="(ward")


@pytest.mark.parametrize(("before", "read", "share", "replaced"), [
    (set(), ["1"], 1.0, True),  # first load
    ({"1", "2"}, ["1", "2", "3"], 1.0, True),
    ({"1", "2"}, ["1"], 1.0, False),
    ({"1", "2", "3", "4"}, ["1", "2", "3"], 0.75, True),
    ({"1", "2", "3", "4"}, ["1", "2"], 0.75, False),
    ({"1"}, [], 0.0, False),  # nothing read never replaces
])
def test_replace_verdict(before: set, read: list, share: float, replaced: bool) -> None:
    assert (replace_verdict(before, read, share) is None) == replaced


def city(tmp_path: Path, wards_file: str, **gis_cfg) -> CityResource:
    cfg = {"city": "Test", "duckdb_path": "w.duckdb", "bbox": CHICAGO_BBOX,
           "sources": [{"plugin": "file_drop", "config": {"drop_dir": "drop"}}],
           "gis": {"plugin": "geojson", "config": {"wards_path": wards_file, "ward_id_property": "ward",
                                                    "boundary_version": "2023", **gis_cfg}},
           "ticketing": {"plugin": "open311", "config": {"endpoint": "http://127.0.0.1:9/open311/v2"}}}
    path = tmp_path / "city.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return CityResource(config_path=str(path))


def _wards(tmp_path: Path) -> list[str]:
    with connect(tmp_path / "w.duckdb") as con:
        return [r[0] for r in con.execute("select ward_id from gis.wards order by 1").fetchall()]


def test_a_broken_ward_never_deletes_the_ward_in_force(tmp_path: Path) -> None:
    good = [feature("1", SQUARE), feature("2", shifted(0.1)), feature("3", shifted(-0.1))]
    write(tmp_path / "w.geojson", good)
    res = city(tmp_path, "w.geojson")
    first = dg.materialize([gis_wards, boundary_loads_replaced], resources={"city": res})
    assert first.success and _wards(tmp_path) == ["1", "2", "3"]
    assert first.get_asset_check_evaluations()[0].passed

    # The new export has ward 2 with a NaN vertex: it is quarantined, and version 2023 keeps all three.
    write(tmp_path / "w.geojson", [good[0], feature("2", NAN_RING), good[2]])
    second = dg.materialize([gis_wards, boundary_loads_replaced], resources={"city": res})
    assert second.success and _wards(tmp_path) == ["1", "2", "3"]
    (check,) = second.get_asset_check_evaluations()
    assert not check.passed and check.severity == dg.AssetCheckSeverity.WARN
    assert "missing: 2" in check.metadata["why"].value
    with connect(tmp_path / "w.duckdb") as con:
        reasons = [r[0] for r in con.execute("select reason from quarantine.records order by quarantined_at").fetchall()]
        loads = con.execute("select outcome, wards_read, wards_before, missing_ids from gis.boundary_loads order by loaded_at").fetchall()
    assert any("NaN or infinite coordinate" in r for r in reasons)
    assert any("boundary version not replaced, previous wards kept: 2 of 3 wards present" in r for r in reasons)
    assert loads == [("replaced", 3, 0, []), ("kept_previous", 2, 3, ["2"])]

    # A fixed file replaces it again, and the check passes.
    write(tmp_path / "w.geojson", good[:2] + [feature("3", shifted(-0.15))])
    third = dg.materialize([gis_wards, boundary_loads_replaced], resources={"city": res})
    assert third.success and third.get_asset_check_evaluations()[0].passed


def test_a_configured_share_lets_a_redistricting_drop_wards(tmp_path: Path) -> None:
    write(tmp_path / "w.geojson", [feature(str(i), shifted(-0.05 * i)) for i in range(1, 5)])
    res = city(tmp_path, "w.geojson", replace_min_share=0.5)
    assert dg.materialize([gis_wards], resources={"city": res}).success
    write(tmp_path / "w.geojson", [feature(str(i), shifted(-0.05 * i)) for i in range(1, 4)])
    assert dg.materialize([gis_wards], resources={"city": res}).success
    assert _wards(tmp_path) == ["1", "2", "3"]


def test_deep_json_and_a_wrong_crs_never_stop_the_run(tmp_path: Path) -> None:
    (tmp_path / "deep.geojson").write_text('{"type": "FeatureCollection", "features": ' + "[" * 100_000 + "]" * 100_000 + "}")
    assert dg.materialize([gis_wards], resources={"city": city(tmp_path, "deep.geojson")}).success
    # Wards in Illinois state-plane feet declared as a UTM zone land far from Chicago: the city's
    # bbox (no expected_bbox set) quarantines them instead of loading wards in the wrong place.
    feet = [[1160000, 1880000], [1170000, 1880000], [1170000, 1890000], [1160000, 1890000], [1160000, 1880000]]
    write(tmp_path / "feet.geojson", [feature("1", feet)])
    assert dg.materialize([gis_wards], resources={"city": city(tmp_path, "feet.geojson", source_crs="EPSG:32633")}).success
    with connect(tmp_path / "w.duckdb") as con:
        assert con.execute("select count(*) from gis.wards").fetchone()[0] == 0
        reasons = " | ".join(r[0] for r in con.execute("select reason from quarantine.records").fetchall())
    assert "nested too deeply" in reasons and "outside the city's expected_bbox" in reasons
