"""The bad-geometry corpus: every broken boundary is repaired (and the repair recorded) or
quarantined with a reason, never a crash. Plus the versioning rule and the gis/wards asset."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import dagster as dg
import pytest
import shapely
import yaml

from social311.integrations.gis.geojson import GeoJSONConfig, GeoJSONGIS
from social311.integrations.gis.versions import in_force, version_problems
from social311.orchestration.gis import gis_wards, wards_overlaps_and_gaps
from social311.orchestration.resources import CityResource
from social311.records import WardSet
from social311.warehouse import connect

SQUARE = [[-87.7, 41.8], [-87.6, 41.8], [-87.6, 41.9], [-87.7, 41.9], [-87.7, 41.8]]
CHICAGO_BBOX = (-87.95, 41.64, -87.52, 42.03)


def poly(ring) -> dict:
    return {"type": "Polygon", "coordinates": [ring]}


def collection(*geoms, crs: str | None = None, ids=None) -> dict:
    ids = ids or [str(i + 1) for i in range(len(geoms))]
    data = {"type": "FeatureCollection",
            "features": [{"type": "Feature", "properties": {"ward": i}, "geometry": g} for i, g in zip(ids, geoms)]}
    if crs:
        data["crs"] = {"type": "name", "properties": {"name": crs}}
    return data


def load(tmp_path: Path, data: dict, **cfg) -> WardSet:
    path = tmp_path / "w.geojson"
    path.write_text(json.dumps(data))
    return GeoJSONGIS(GeoJSONConfig(wards_path=str(path), ward_id_property="ward", boundary_version="v", **cfg),
                      instance_name="gis").wards()


# Illinois East state-plane feet (EPSG:3435) of a square around 41.85 N, 87.65 W.
FEET = [[1160000, 1880000], [1170000, 1880000], [1170000, 1890000], [1160000, 1890000], [1160000, 1880000]]

REPAIRED = [
    # (case, collection, config, text of the recorded repair)
    ("self-intersecting bowtie", collection(poly([[-87.7, 41.8], [-87.6, 41.9], [-87.6, 41.8], [-87.7, 41.9], [-87.7, 41.8]])),
     {}, "made valid: Self-intersection"),
    ("unclosed ring", collection(poly(SQUARE[:-1])), {}, "unclosed ring closed"),
    ("wrong axis order (lat, lon)", collection(poly([[y, x] for x, y in SQUARE])), {"expected_bbox": CHICAGO_BBOX},
     "axes swapped"),
    ("wrong axis order, beyond 90", collection(poly([[y, x] for x, y in [[-120, 40], [-110, 40], [-110, 45], [-120, 40]]])),
     {}, "axes swapped"),
]

QUARANTINED = [
    ("empty polygon", collection({"type": "Polygon", "coordinates": []}), {}, "empty geometry"),
    ("no geometry", collection(None), {}, "no geometry"),
    ("degenerate (collinear)", collection(poly([[-87.7, 41.8], [-87.6, 41.8], [-87.65, 41.8], [-87.7, 41.8]])), {},
     "no polygonal part"),
    ("a sliver of no area", collection(poly([[-87.7, 41.8], [-87.6, 41.8], [-87.6, 41.8000000001], [-87.7, 41.8]])), {},
     "degenerate"),
    ("ring of two points", collection(poly([[-87.7, 41.8], [-87.6]])), {}, "unreadable geometry"),
    ("projected, no CRS", collection(poly(FEET)), {}, "no CRS declared"),
    ("projected, CRS says 4326", collection(poly(FEET), crs="urn:ogc:def:crs:OGC:1.3:CRS84"), {}, "coordinates outside EPSG:4326"),
    ("degrees, CRS says state plane", collection(poly(SQUARE), crs="urn:ogc:def:crs:EPSG::3435"), {},
     "is projected but the coordinates look like lon/lat degrees"),
    ("unknown CRS", collection(poly(FEET), crs="EPSG:999999"), {}, "cannot reproject"),
    ("outside the city", collection(poly([[2.3, 48.8], [2.4, 48.8], [2.4, 48.9], [2.3, 48.8]])), {"expected_bbox": CHICAGO_BBOX},
     "outside the city's expected_bbox"),
    ("duplicate id", collection(poly(SQUARE), poly(SQUARE), ids=["4", "4"]), {}, "duplicate ward id '4', first at feature 0"),
]


@pytest.mark.parametrize(("case", "data", "cfg", "repair"), REPAIRED, ids=[c[0] for c in REPAIRED])
def test_repaired_and_recorded(tmp_path: Path, case: str, data: dict, cfg: dict, repair: str) -> None:
    ws = load(tmp_path, data, **cfg)
    (ward,) = ws.wards
    geom = shapely.from_wkt(ward.geometry_wkt)
    assert geom.is_valid and geom.area > 0 and ws.rejects == ()
    assert any(repair in r.what for r in ws.repairs), ws.repairs
    min_x, min_y, max_x, max_y = geom.bounds
    assert -180 <= min_x < max_x <= 180 and -90 <= min_y < max_y <= 90 and min_x < 0  # western hemisphere lon first


@pytest.mark.parametrize(("case", "data", "cfg", "reason"), QUARANTINED, ids=[c[0] for c in QUARANTINED])
def test_quarantined_with_reason(tmp_path: Path, case: str, data: dict, cfg: dict, reason: str) -> None:
    ws = load(tmp_path, data, **cfg)
    assert len(ws.wards) == len(data["features"]) - len(ws.rejects)
    assert ws.rejects and reason in ws.rejects[-1].reason, [r.reason for r in ws.rejects]


def test_state_plane_geojson_is_reprojected(tmp_path: Path) -> None:
    ws = load(tmp_path, collection(poly(FEET), crs="urn:ogc:def:crs:EPSG::3435"))
    (ward,) = ws.wards
    c = shapely.from_wkt(ward.geometry_wkt).centroid
    assert ws.source_crs == "EPSG:3435" and -87.72 < c.x < -87.64 and 41.84 < c.y < 41.88


# --- versions

V2015, V2023 = date(2015, 5, 18), date(2023, 5, 15)


@pytest.mark.parametrize(
    ("periods", "problem"),
    [
        ([("2015", V2015, V2023), ("2023", V2023, None)], None),
        ([("2003", None, V2015), ("2015", V2015, V2023), ("2023", V2023, None)], None),
        ([("2015", V2015, None), ("2023", V2023, None)], "both in force"),
        ([("a", None, None), ("b", None, None)], "both in force"),
        ([("2015", V2015, V2023), ("2015", V2023, None)], "configured twice"),
        ([("x", V2023, V2015)], "ends"),
    ],
)
def test_version_periods(periods, problem) -> None:
    found = version_problems(periods)
    assert (problem is None and not found) or (problem and any(problem in p for p in found)), found


@pytest.mark.parametrize(("day", "version"), [(date(2014, 1, 1), None), (V2015, "2015"), (date(2023, 5, 14), "2015"),
                                              (V2023, "2023"), (date(2030, 1, 1), "2023")])
def test_in_force_on_a_day(day, version) -> None:
    sets = [WardSet(version="2015", valid_from=V2015, valid_to=V2023, wards=()),
            WardSet(version="2023", valid_from=V2023, wards=())]
    found = in_force(sets, day)
    assert (found.version if found else None) == version


# --- the gis/wards asset with several versions, a broken set kept out, overlaps measured

def city_yaml(tmp_path: Path, boundaries: list[dict]) -> Path:
    square2 = [[x + 0.1, y] for x, y in SQUARE]
    (tmp_path / "old.geojson").write_text(json.dumps(collection(poly(SQUARE), poly(square2), ids=["1", "2"])))
    (tmp_path / "new.geojson").write_text(json.dumps(collection(poly(FEET), crs="EPSG:3435", ids=["A"])))
    (tmp_path / "broken.geojson").write_text("{not json")
    cfg = {
        "city": "Test", "duckdb_path": "w.duckdb",
        "sources": [{"plugin": "file_drop", "config": {"drop_dir": "drop"}}],
        "gis": {"plugin": "geojson", "config": {"wards_path": "new.geojson", "ward_id_property": "ward",
                                                 "boundary_version": "2023", "valid_from": "2023-05-15"}},
        "boundaries": boundaries,
        "ticketing": {"plugin": "open311", "config": {"endpoint": "http://127.0.0.1:9/open311/v2"}},
    }
    path = tmp_path / "city.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_wards_asset_loads_every_version_and_keeps_a_broken_one_out(tmp_path: Path) -> None:
    boundaries = [
        {"plugin": "geojson", "name": "wards_2015",
         "config": {"wards_path": "old.geojson", "ward_id_property": "ward", "boundary_version": "2015",
                    "valid_from": "2015-05-18", "valid_to": "2023-05-15"}},
        {"plugin": "geojson", "name": "wards_2003",
         "config": {"wards_path": "broken.geojson", "ward_id_property": "ward", "boundary_version": "2003",
                    "valid_to": "2015-05-18"}},
    ]
    city = CityResource(config_path=str(city_yaml(tmp_path, boundaries)))
    result = dg.materialize([gis_wards, wards_overlaps_and_gaps], resources={"city": city})
    assert result.success
    with connect(tmp_path / "w.duckdb") as con:
        rows = con.execute("select boundary_version, ward_id, valid_from, valid_to from gis.wards order by 1, 2").fetchall()
        quarantined = con.execute("select source, reason from quarantine.records").fetchall()
    assert [(r[0], r[1]) for r in rows] == [("2015", "1"), ("2015", "2"), ("2023", "A")]
    assert quarantined[0][0] == "wards_2003" and "previous one kept" in quarantined[0][1]
    (check,) = result.get_asset_check_evaluations()
    assert check.passed and check.metadata["2015_overlap_km2"].value == 0.0


def test_wards_asset_refuses_versions_in_force_on_the_same_day(tmp_path: Path) -> None:
    boundaries = [{"plugin": "geojson", "config": {"wards_path": "old.geojson", "ward_id_property": "ward",
                                                   "boundary_version": "2015", "valid_from": "2015-05-18"}}]
    city = CityResource(config_path=str(city_yaml(tmp_path, boundaries)))
    result = dg.materialize([gis_wards], resources={"city": city}, raise_on_error=False)
    assert not result.success
