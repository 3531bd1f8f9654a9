"""Shapefile, PostGIS and ArcGIS plugins: the GIS contract, and each backend's own failure modes."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

import pytest
import sqlalchemy as sa

from social311.integrations.gis.arcgis import ArcGISConfig, ArcGISError, ArcGISGIS
from social311.integrations.gis.postgis import PostGISConfig, PostGISError, PostGISGIS
from social311.integrations.gis.shapefile import ShapefileConfig, ShapefileError, ShapefileGIS
from social311.integrations.testing import GISContract
from social311.integrations.testing.gis import FeatureServerSandbox
from social311.warehouse import connect

DEMO_WARDS = Path(str(resources.files("social311.demo") / "wards.geojson"))


def demo_features() -> list[dict]:
    return json.loads(DEMO_WARDS.read_text())["features"]


def write_demo_shapefile(folder: Path, srs: str = "EPSG:3435", prj: bool = True) -> Path:
    """The demo wards as a Shapefile in Illinois East state-plane feet."""
    folder.mkdir(parents=True, exist_ok=True)
    with connect(folder / "tmp.duckdb") as con:
        con.execute(f"""copy (select ward_id, name, st_transform(geom, 'EPSG:4326', '{srs}', always_xy := true) as geom
                       from st_read(?)) to '{folder}/wards.shp' (format gdal, driver 'ESRI Shapefile', srs '{srs}')""",
                    [str(DEMO_WARDS)])
    (folder / "tmp.duckdb").unlink()
    if not prj:
        (folder / "wards.prj").unlink()
    return folder



def shapefile_gis(path: Path, **cfg) -> ShapefileGIS:
    return ShapefileGIS(ShapefileConfig(wards_path=str(path), ward_id_property="ward_id", ward_name_property="name",
                                        boundary_version=cfg.pop("boundary_version", "demo"), **cfg), instance_name="shp")


class TestShapefileContract(GISContract):
    def make_gis(self, tmp_path: Path) -> ShapefileGIS:
        return shapefile_gis(write_demo_shapefile(tmp_path / "shp"))


class TestArcGISContract(GISContract):
    @pytest.fixture
    def gis(self, tmp_path: Path):
        with FeatureServerSandbox(demo_features(), max_record_count=3) as server:
            yield ArcGISGIS(ArcGISConfig(layer_url=server.layer_url, ward_id_property="ward_id",
                                         ward_name_property="name", boundary_version="demo"), instance_name="esri")


class TestPostGISContract(GISContract):
    @pytest.fixture
    def gis(self, postgis_url):
        engine = sa.create_engine(postgis_url)
        with engine.begin() as con:
            con.execute(sa.text("create schema if not exists city"))
            con.execute(sa.text("drop table if exists city.council_wards"))
            con.execute(sa.text("create table city.council_wards (ward_no int, ward_name text, the_geom geometry(MultiPolygon, 3435))"))
            for f in demo_features():
                con.execute(sa.text("insert into city.council_wards values (:id, :name, st_transform(st_multi(st_setsrid("
                                    "st_geomfromgeojson(:g), 4326)), 3435))"),
                            {"id": int(f["properties"]["ward_id"]), "name": f["properties"]["name"], "g": json.dumps(f["geometry"])})
        engine.dispose()
        return PostGISGIS(PostGISConfig(url=postgis_url, table_schema="city", table="council_wards", id_column="ward_no",
                                        name_column="ward_name", geometry_column="the_geom", boundary_version="demo"),
                          instance_name="pg")

    def test_ids_are_text_and_crs_recorded(self, ward_set) -> None:
        assert all(w.ward_id.isdigit() for w in ward_set.wards)
        assert ward_set.source_crs == "EPSG:3435"


# --- Shapefile specifics

def test_shapefile_as_zip_folder_or_shp_reads_the_same(tmp_path: Path) -> None:
    import zipfile

    folder = write_demo_shapefile(tmp_path / "shp")
    archive = tmp_path / "wards.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for part in folder.glob("wards.*"):
            zf.write(part, f"export/{part.name}")
    sets = [shapefile_gis(p).wards() for p in (folder, folder / "wards.shp", archive)]
    assert len({tuple(w.ward_id for w in ws.wards) for ws in sets}) == 1
    assert all(len(ws.wards) == len(demo_features()) and not ws.rejects for ws in sets)
    assert sets[0].source_crs == "EPSG:3435" and "PROJCS" in sets[2].source_crs  # the zip's .prj WKT


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("missing_prj_projected", "no CRS declared (set source_crs)"),
        ("truncated", "unreadable Shapefile (truncated?)"),
        ("wrong_prj_degrees", "is projected but the coordinates look like lon/lat degrees"),
    ],
)
def test_broken_shapefiles_are_quarantined_with_a_reason(tmp_path: Path, case: str, expected: str) -> None:
    if case == "missing_prj_projected":
        folder = write_demo_shapefile(tmp_path / "shp", prj=False)
    elif case == "truncated":
        folder = write_demo_shapefile(tmp_path / "shp")
        shp = folder / "wards.shp"
        shp.write_bytes(shp.read_bytes()[: shp.stat().st_size // 2])
    else:  # a .prj claiming state-plane feet on a file written in degrees
        folder = write_demo_shapefile(tmp_path / "shp", srs="EPSG:4326")
        (folder / "wards.prj").write_text(write_demo_shapefile(tmp_path / "other").joinpath("wards.prj").read_text())
    ws = shapefile_gis(folder).wards()
    assert ws.wards == ()
    assert ws.rejects and all(expected in r.reason for r in ws.rejects), [r.reason for r in ws.rejects]


def test_missing_prj_is_fixed_by_declaring_source_crs(tmp_path: Path) -> None:
    ws = shapefile_gis(write_demo_shapefile(tmp_path / "shp", prj=False), source_crs="EPSG:3435").wards()
    assert len(ws.wards) == len(demo_features()) and not ws.rejects and ws.source_crs == "EPSG:3435"


def test_no_shapefile_raises_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    for path in (tmp_path / "empty", tmp_path / "absent.shp", tmp_path / "bad.zip"):
        if path.suffix == ".zip":
            path.write_bytes(b"not a zip")
        with pytest.raises(ShapefileError):
            shapefile_gis(path).wards()


# --- ArcGIS specifics

def test_arcgis_pages_with_result_offset_until_no_more(tmp_path: Path) -> None:
    features = demo_features()
    with FeatureServerSandbox(features, max_record_count=3) as server:
        ws = ArcGISGIS(ArcGISConfig(layer_url=server.layer_url, ward_id_property="ward_id", boundary_version="v"),
                       instance_name="esri").wards()
        offsets = [int(q["resultOffset"]) for q in server.requests]
    assert len(ws.wards) == len(features)
    assert offsets == list(range(0, len(features), 3))
    assert all(q["f"] == "geojson" and q["where"] == "1=1" and q["outFields"] == "*" for q in server.requests)


@pytest.mark.parametrize(("given", "code"), [(None, 499), ("wrong", 498), ("s3cret", None)])
def test_arcgis_token(given: str | None, code: int | None) -> None:
    with FeatureServerSandbox(demo_features(), token="s3cret") as server:
        gis = ArcGISGIS(ArcGISConfig(layer_url=server.layer_url, ward_id_property="ward_id", boundary_version="v"),
                        instance_name="esri", token=given)
        if code is None:
            assert gis.wards().wards
        else:
            with pytest.raises(ArcGISError) as err:
                gis.wards()
            assert err.value.code == code and "s3cret" not in str(err.value)


def test_arcgis_unreachable_or_wrong_path_raises() -> None:
    with FeatureServerSandbox(demo_features()) as server:
        wrong = server.layer_url.replace("Wards", "Nope")
        with pytest.raises(ArcGISError):
            ArcGISGIS(ArcGISConfig(layer_url=wrong, boundary_version="v"), instance_name="e").wards()


# --- PostGIS specifics

def test_postgis_srid_zero_needs_declaring(postgis_url) -> None:
    engine = sa.create_engine(postgis_url)
    with engine.begin() as con:
        con.execute(sa.text("drop table if exists nosrid"))
        con.execute(sa.text("create table nosrid (ward_id text, geom geometry)"))
        for f in demo_features()[:3]:
            con.execute(sa.text("insert into nosrid values (:id, st_transform(st_setsrid(st_geomfromgeojson(:g), 4326), 3435))"),
                        {"id": f["properties"]["ward_id"], "g": json.dumps(f["geometry"])})
        con.execute(sa.text("update nosrid set geom = st_setsrid(geom, 0)"))
    engine.dispose()
    cfg = {"url": postgis_url, "table": "nosrid", "boundary_version": "v"}
    undeclared = PostGISGIS(PostGISConfig(**cfg), instance_name="pg").wards()
    assert not undeclared.wards and all("no CRS declared" in r.reason for r in undeclared.rejects)
    declared = PostGISGIS(PostGISConfig(**cfg, srid=3435), instance_name="pg").wards()
    assert len(declared.wards) == 3 and not declared.rejects


def test_postgis_missing_table_raises_without_password(postgis_url) -> None:
    gis = PostGISGIS(PostGISConfig(url=postgis_url, table="absent", boundary_version="v"), instance_name="pg",
                     password="hunter2")
    with pytest.raises(PostGISError) as err:
        gis.wards()
    assert "absent" in str(err.value) and "hunter2" not in str(err.value)
