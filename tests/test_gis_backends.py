"""Every boundary backend on the real ward layers: same ids, same areas, same ward for every point.

Chicago's 50 wards and New York's 51 council districts are served four ways: the GeoJSON file,
a Shapefile written in the city's state-plane feet (Chicago as a folder, New York as a zip), a
real PostGIS table (Chicago stored in SRID 3435, New York in 4326) in a throwaway cluster on
127.0.0.1, and an ArcGIS FeatureServer on loopback paging 20 features at a time. 100,000
random points are then placed by each backend's wards in DuckDB spatial (the dbt model's rule)
and compared with a shapely STRtree on the source polygons.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import shapely
import sqlalchemy as sa
from shapely.geometry import shape

from social311.integrations.gis.arcgis import ArcGISConfig, ArcGISGIS
from social311.integrations.gis.geojson import GeoJSONConfig, GeoJSONGIS
from social311.integrations.gis.normalise import polygonal
from social311.integrations.gis.postgis import PostGISConfig, PostGISGIS
from social311.integrations.gis.shapefile import ShapefileConfig, ShapefileGIS
from social311.integrations.testing.gis import FeatureServerSandbox
from social311.models.wardjoin import duckdb_assign, shapely_assign
from social311.records import Ward
from social311.warehouse import connect
from conftest import shared_data_dir

# (file, id property, state-plane CRS of the Shapefile, SRID of the PostGIS table, Shapefile as zip)
LAYERS = {
    "chicago": ("chicago/chicago_wards_2015_2023.geojson", "ward", "EPSG:3435", 3435, False, 50),
    "nyc": ("nyc/nyc_council_districts_2013_2023.geojson", "coun_dist", "EPSG:2263", 4326, True, 51),
}
N_POINTS = 100_000



def write_shapefile(src: Path, id_prop: str, crs: str, out: Path, as_zip: bool) -> Path:
    """The GeoJSON layer as a Shapefile in ``crs`` (GDAL in DuckDB writes the .prj)."""
    import zipfile

    out.mkdir(parents=True, exist_ok=True)
    with connect(out / "tmp.duckdb") as con:
        con.execute(f"""copy (select {id_prop}, st_transform(geom, 'EPSG:4326', ?, always_xy := true) as geom
                       from st_read(?)) to '{out}/wards.shp' (format gdal, driver 'ESRI Shapefile', srs '{crs}')""",
                    [crs, str(src)])
    if not as_zip:
        return out
    archive = out.parent / "wards.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for part in out.glob("wards.*"):
            zf.write(part, f"export/{part.name}")
    return archive


def load_postgis(url: str, table: str, src: Path, id_prop: str, srid: int) -> None:
    engine = sa.create_engine(url)
    with engine.begin() as con:
        con.execute(sa.text(f"drop table if exists {table}"))
        con.execute(sa.text(f"create table {table} (district text, label text, shape geometry(MultiPolygon, {srid}))"))
        for feat in json.loads(src.read_text())["features"]:
            con.execute(sa.text(f"insert into {table} values (:id, :label, st_transform(st_multi(st_setsrid("
                                f"st_geomfromgeojson(:g), 4326)), {srid}))"),
                        {"id": str(feat["properties"][id_prop]), "label": f"D{feat['properties'][id_prop]}",
                         "g": json.dumps(feat["geometry"])})
    engine.dispose()


@pytest.fixture(scope="module", params=sorted(LAYERS))
def layer(request, tmp_path_factory, postgis_url):
    rel, id_prop, crs, srid, as_zip, count = LAYERS[request.param]
    src = shared_data_dir() / rel
    if not src.exists():
        pytest.skip(f"real ward layer not found at {src}")
    tmp = tmp_path_factory.mktemp(request.param)
    common = {"boundary_version": "real", "ward_id_property": id_prop}
    shp = write_shapefile(src, id_prop, crs, tmp / "shp", as_zip)
    load_postgis(postgis_url, f"wards_{request.param}", src, id_prop, srid)
    features = json.loads(src.read_text())["features"]
    with FeatureServerSandbox(features, max_record_count=20) as server:
        ward_sets = {
            "geojson": GeoJSONGIS(GeoJSONConfig(wards_path=str(src), **common), instance_name="g").wards(),
            "shapefile": ShapefileGIS(ShapefileConfig(wards_path=str(shp), **common), instance_name="s").wards(),
            "postgis": PostGISGIS(PostGISConfig(url=postgis_url, table=f"wards_{request.param}", id_column="district",
                                                name_column="label", geometry_column="shape", boundary_version="real"),
                                  instance_name="p").wards(),
            "arcgis": ArcGISGIS(ArcGISConfig(layer_url=server.layer_url, **common), instance_name="a").wards(),
        }
        pages = len(server.requests)
    reference = {str(f["properties"][id_prop]): polygonal(shape(f["geometry"])) for f in features}
    return request.param, count, ward_sets, reference, pages


def test_same_ids_and_nothing_rejected(layer) -> None:
    name, count, ward_sets, reference, _ = layer
    for backend, ws in ward_sets.items():
        assert ws.rejects == (), (backend, ws.rejects[:2])
        assert sorted(w.ward_id for w in ws.wards) == sorted(reference), backend
        assert len(ws.wards) == count


def test_arcgis_paged_through_the_layer(layer) -> None:
    _, count, _, _, pages = layer
    assert pages == -(-count // 20)  # 50 -> 3 pages, 51 -> 3 pages of 20


def test_areas_within_a_tenth_of_a_percent(layer) -> None:
    _, _, ward_sets, reference, _ = layer
    for backend, ws in ward_sets.items():
        for ward in ws.wards:
            area = shapely.from_wkt(ward.geometry_wkt).area
            assert area == pytest.approx(reference[ward.ward_id].area, rel=1e-3), (backend, ward.ward_id)


def test_projected_sources_were_reprojected(layer) -> None:
    name, _, ward_sets, _, _ = layer
    assert ward_sets["shapefile"].source_crs in (LAYERS[name][2], None) or "PROJCS" in ward_sets["shapefile"].source_crs
    assert ward_sets["postgis"].source_crs == f"EPSG:{LAYERS[name][3]}"


def test_identical_assignment_of_random_points(layer, tmp_path) -> None:
    name, _, ward_sets, reference, _ = layer
    min_x, min_y, max_x, max_y = shapely.union_all(list(reference.values())).bounds
    rng = np.random.default_rng(20231)
    lons, lats = rng.uniform(min_x, max_x, N_POINTS), rng.uniform(min_y, max_y, N_POINTS)
    truth = shapely_assign([Ward(ward_id=k, name=k, geometry_wkt=g.wkt) for k, g in reference.items()], lons, lats)
    assert sum(t is not None for t in truth) > N_POINTS * 0.3  # most of the box is city
    with connect(tmp_path / "assign.duckdb") as con:
        for backend, ws in ward_sets.items():
            got = duckdb_assign(con, list(ws.wards), lons, lats)
            mismatches = sum(a != b for a, b in zip(got, truth))
            assert mismatches == 0, f"{name}/{backend}: {mismatches} of {N_POINTS} points in another ward"
