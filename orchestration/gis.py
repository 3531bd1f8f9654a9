"""GIS: the city's ward boundaries and gazetteer, loaded through its GIS plugin."""


from datetime import datetime, timezone

import dagster as dg

from social311.orchestration.ingest import quarantine
from social311.orchestration.quality import Suite, gx_check, sql_check
from social311.orchestration.resources import CityResource
from social311.warehouse import connect, insert_many

WARDS = dg.AssetKey(["gis", "wards"])
PLACES = dg.AssetKey(["gis", "places"])


@dg.asset(key=WARDS, group_name="gis", compute_kind="python")
def gis_wards(context: dg.AssetExecutionContext, city: CityResource) -> dg.MaterializeResult:
    """Ward polygons of the current boundary version, in EPSG:4326; broken features quarantined."""
    ward_set = city.gis().wards()
    with connect(city.load().duckdb_path) as con:
        # A boundary version is replaced whole, other versions stay for posts of their dates.
        con.execute("delete from gis.wards where boundary_version = ?", [ward_set.version])
        insert_many(
            con,
            "insert into gis.wards select ?, ?, ?, ?, ?, geom, st_area_spheroid(st_flipcoordinates(geom)) / 1e6 "
            "from (select st_geomfromtext(?::varchar) as geom)",
            [(w.ward_id, w.name, ward_set.version, ward_set.valid_from, ward_set.valid_to, w.geometry_wkt) for w in ward_set.wards],
        )
        quarantine(con, list(ward_set.rejects), stage="gis", run_id=context.run_id)
    return dg.MaterializeResult(metadata={"boundary_version": ward_set.version, "wards": len(ward_set.wards),
                                          "quarantined": len(ward_set.rejects)})


@dg.asset(key=PLACES, group_name="gis", compute_kind="python")
def gis_places(context: dg.AssetExecutionContext, city: CityResource) -> dg.MaterializeResult:
    """Gazetteer of named intersections, streets and landmarks for placing posts from their words."""
    places = city.gis().places()
    with connect(city.load().duckdb_path) as con:
        con.execute("delete from gis.places")
        insert_many(
            con,
            "insert into gis.places values (?, ?, ?, ?, ?, ?, ?)",
            [(p.place_id, p.name, p.kind, p.lat, p.lon, list(p.aliases), list(p.streets)) for p in places],
        )
    kinds: dict[str, int] = {}
    for p in places:
        kinds[p.kind] = kinds.get(p.kind, 0) + 1
    return dg.MaterializeResult(metadata={"places": len(places), **{f"kind_{k}": v for k, v in kinds.items()}})


wards_suite = Suite(
    name="wards_expectations",
    expectations=(
        ("ExpectTableRowCountToBeBetween", {"min_value": 1}),
        ("ExpectColumnValuesToBeUnique", {"column": "ward_key"}),
        ("ExpectColumnValuesToBeInSet", {"column": "is_valid", "value_set": [True]}),
        ("ExpectColumnValuesToBeBetween", {"column": "area_km2", "min_value": 0.01, "max_value": 5000}),
    ),
)

places_suite = Suite(
    name="places_expectations",
    expectations=(
        ("ExpectColumnValuesToBeUnique", {"column": "place_id"}),
        ("ExpectColumnValuesToBeBetween", {"column": "lat", "min_value": -90, "max_value": 90}),
        ("ExpectColumnValuesToBeBetween", {"column": "lon", "min_value": -180, "max_value": 180}),
        ("ExpectColumnValuesToBeInSet", {"column": "kind", "value_set": ["intersection", "street", "landmark", "address"]}),
    ),
)


def defs() -> dg.Definitions:
    return dg.Definitions(
        assets=[gis_wards, gis_places],
        asset_checks=[
            gx_check(asset=WARDS, suite=wards_suite, description="Wards exist, ids are unique per version, geometries valid, areas plausible.",
                     query="select boundary_version || '/' || ward_id as ward_key, st_isvalid(geom) as is_valid, area_km2 from gis.wards"),
            sql_check(asset=WARDS, name="wards_do_not_overlap", description="No two wards of one version overlap by more than 1% of the smaller.",
                      query="""select a.ward_id, b.ward_id from gis.wards a join gis.wards b
                               on a.boundary_version = b.boundary_version and a.ward_id < b.ward_id
                               and st_intersects(a.geom, b.geom)
                               where st_area(st_intersection(a.geom, b.geom)) > 0.01 * least(st_area(a.geom), st_area(b.geom))"""),
            gx_check(asset=PLACES, suite=places_suite, description="Gazetteer places are unique, typed and in range.",
                     query="select place_id, lat, lon, kind from gis.places"),
        ],
    )
