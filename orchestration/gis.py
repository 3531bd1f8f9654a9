"""GIS: the city's ward boundaries and gazetteer, loaded through its GIS plugin."""


import math
import os
from datetime import date, datetime, timezone

import pandas as pd

import dagster as dg
import shapely
from shapely.errors import ShapelyError

from social311.config import CityConfig, PluginRef
from social311.integrations import registry
from social311.integrations.gis.arcgis import ArcGISError
from social311.integrations.gis.geojson import GISFileError
from social311.integrations.gis.postgis import PostGISError
from social311.integrations.gis.reproject import CRSError
from social311.integrations.gis.shapefile import ShapefileError
from social311.integrations.gis.topology import KM_PER_DEGREE, measure
from social311.integrations.gis.versions import version_problems
from social311.records import Place, Reject, StreetSegment, Ward, WardSet

from social311.orchestration.ingest import quarantine
from social311.orchestration.quality import Suite, city_check, gx_check, sql_check
from social311.orchestration.resources import CityResource
from social311.warehouse import connect, insert_many, registered

WARDS = dg.AssetKey(["gis", "wards"])
PLACES = dg.AssetKey(["gis", "places"])
POST_LOCATIONS = dg.AssetKey(["ml", "post_locations"])
POST_TEXT_PLACES = dg.AssetKey(["ml", "post_text_places"])
STG_POSTS = dg.AssetKey(["stg_social__posts"])


# Errors a backend raises when a whole boundary set cannot be read; the run goes on without it.
# Geometry errors (GEOS on a NaN vertex) and a parser's RecursionError are per feature in the
# backends; here they are the last net, so one hostile file never stops every run.
LOAD_ERRORS = (GISFileError, ShapefileError, PostGISError, ArcGISError, CRSError, OSError, ValueError,
               ShapelyError, RecursionError, TypeError, KeyError, IndexError, AttributeError)


def secrets_for(ref: PluginRef) -> dict[str, str | None]:
    """The secrets a GIS plugin takes, read at run time from the variables its config names."""
    names = {"password_env": "password", "token_env": "token"}
    return {arg: os.environ.get(ref.config[key]) for key, arg in names.items() if ref.config.get(key)}


def boundary_refs(cfg: CityConfig) -> list[PluginRef]:
    """Every configured boundary set: the ``gis`` plugin's, then the ``boundaries`` list."""
    return [cfg.gis, *cfg.boundaries]


def with_city_bbox(ref: PluginRef, bbox: tuple[float, float, float, float] | None) -> PluginRef:
    """``ref`` with the city's ``bbox`` as its ``expected_bbox`` unless it sets one: a wrong
    ``source_crs`` then quarantines the wards instead of loading them at 60°N."""
    if bbox is None or ref.config.get("expected_bbox") is not None:
        return ref
    return ref.model_copy(update={"config": {**ref.config, "expected_bbox": list(bbox)}})


def load_ward_sets(refs: list[PluginRef], bbox: tuple[float, float, float, float] | None = None
                   ) -> tuple[list[WardSet], list[Reject]]:
    """The boundary sets that could be read, and one reject per set that could not.

    Args:
        refs: the configured boundary plugins.
        bbox: the city's extent, the default ``expected_bbox`` of every set.
    """
    sets, failed = [], []
    for ref in (with_city_bbox(r, bbox) for r in refs):
        try:
            sets.append(registry.build("gis", ref, **secrets_for(ref)).wards())
        except LOAD_ERRORS as exc:
            version = ref.config.get("boundary_version", "?")
            failed.append(Reject(source=ref.instance_name, record_ref=f"boundary version {version}",
                                 reason=f"boundary set not loaded, previous one kept: {str(exc)[:300]}"))
    return sets, failed


def store_ward_sets(con, ward_sets: list[WardSet], min_share: dict[str, float], run_id: str | None
                    ) -> tuple[dict, list[str]]:
    """Write the boundary sets read into ``gis.wards``: each replaces its version only when
    ``replace_verdict`` allows; rejects and kept versions are quarantined with their reason.

    Returns:
        (metadata per version, the versions whose previous wards were kept).
    """
    now = datetime.now(timezone.utc)
    metadata: dict = {}
    kept: list[str] = []
    for ws in ward_sets:
        quarantine(con, list(ws.rejects), stage="gis", run_id=run_id)
        before = {r[0] for r in con.execute("select ward_id from gis.wards where boundary_version = ?", [ws.version]).fetchall()}
        verdict = replace_verdict(before, [w.ward_id for w in ws.wards], min_share.get(ws.version, 1.0))
        if verdict is not None:
            # One bad feature must not delete a real ward: the version in force stays whole.
            missing = sorted(before - {w.ward_id for w in ws.wards})
            kept.append(ws.version)
            metadata[f"version_{ws.version}"] = f"previous wards kept: {verdict}"
            quarantine(con, [Reject(source="gis", record_ref=f"boundary version {ws.version}",
                                    reason=f"boundary version not replaced, previous wards kept: {verdict}")],
                       stage="gis", run_id=run_id)
            con.execute("insert into gis.boundary_loads values (?, ?, ?, 'kept_previous', ?, ?, ?, ?)",
                        [ws.version, now, run_id, len(ws.wards), len(before), missing[:1000], verdict[:500]])
            continue
        # A boundary version is replaced whole, other versions stay for posts of their dates.
        con.execute("delete from gis.wards where boundary_version = ?", [ws.version])
        con.execute("delete from gis.boundary_repairs where boundary_version = ?", [ws.version])
        insert_many(
            con,
            "insert into gis.wards select ?, ?, ?, ?, ?, geom, st_area_spheroid(st_flipcoordinates(geom)) / 1e6 "
            "from (select st_geomfromtext(?::varchar) as geom)",
            [(w.ward_id, w.name, ws.version, ws.valid_from, ws.valid_to, w.geometry_wkt) for w in ws.wards],
        )
        insert_many(con, "insert into gis.boundary_repairs values (?, ?, ?, ?, ?, ?, ?)",
                    [(ws.version, r.ward_id, r.record_ref, r.what, (ws.source_crs or "")[:200], now, run_id)
                     for r in ws.repairs])
        con.execute("insert into gis.boundary_loads values (?, ?, ?, 'replaced', ?, ?, ?, null)",
                    [ws.version, now, run_id, len(ws.wards), len(before), []])
        metadata[f"version_{ws.version}"] = (f"{len(ws.wards)} wards, {len(ws.repairs)} repaired, "
                                             f"{len(ws.rejects)} quarantined, from {(ws.source_crs or 'EPSG:4326')[:40]}")
    return metadata, kept


@dg.asset(key=WARDS, group_name="gis", compute_kind="python")
def gis_wards(context: dg.AssetExecutionContext, city: CityResource) -> dg.MaterializeResult:
    """Ward polygons of every boundary version, in EPSG:4326; repairs recorded, broken features quarantined."""
    cfg = city.load()
    refs = boundary_refs(cfg)
    problems = version_problems([(str(r.config.get("boundary_version")), _day(r.config.get("valid_from")),
                                  _day(r.config.get("valid_to"))) for r in refs])
    if problems:
        raise dg.Failure("boundary versions clash: " + "; ".join(problems))
    ward_sets, failed = load_ward_sets(refs, cfg.bbox)
    min_share = {str(r.config.get("boundary_version")): float(r.config.get("replace_min_share", 1.0)) for r in refs}
    with connect(cfg.duckdb_path) as con:
        quarantine(con, failed, stage="gis", run_id=context.run_id)
        metadata, kept = store_ward_sets(con, ward_sets, min_share, context.run_id)
    if kept:
        context.log.warning(f"boundary versions not replaced, previous wards kept: {', '.join(kept)} (see quarantine.records)")
    return dg.MaterializeResult(metadata={
        "boundary_versions": [ws.version for ws in ward_sets],
        "wards": sum(len(ws.wards) for ws in ward_sets),
        "repaired": sum(len(ws.repairs) for ws in ward_sets),
        "quarantined": sum(len(ws.rejects) for ws in ward_sets) + len(failed),
        "sets_not_loaded": len(failed),
        "versions_kept_previous": len(kept),
        **metadata,
    })


def replace_verdict(before: set[str], read: list[str], min_share: float) -> str | None:
    """Why a load must not replace its version (None: replace it).

    Args:
        before: the ward ids the version has in the warehouse now (empty on a first load).
        read: the ward ids this load read.
        min_share: the share of ``before`` that must be present (1.0: every id).
    """
    if not read:
        return "no wards read"
    if not before:
        return None
    present = len(before & set(read))
    if present / len(before) >= min_share:
        return None
    missing = sorted(before - set(read))
    return (f"{present} of {len(before)} wards present, under replace_min_share {min_share:g} "
            f"(missing: {', '.join(missing[:10])}{' ...' if len(missing) > 10 else ''})")


def _day(value) -> date | None:
    return date.fromisoformat(str(value)) if value else None


@city_check(asset=WARDS, name="wards_overlaps_and_gaps",
            description="Overlaps and gaps between the wards of each version, measured (km²); fails above 1% of a ward.")
def wards_overlaps_and_gaps(con, cfg) -> tuple[bool, dict]:
    rows = con.execute("select boundary_version, ward_id, name, st_astext(geom) from gis.wards order by 1, 2").fetchall()
    by_version: dict[str, list[Ward]] = {}
    for version, ward_id, name, wkt in rows:
        by_version.setdefault(version, []).append(Ward(ward_id=ward_id, name=name or ward_id, geometry_wkt=wkt))
    figures = {v: measure(wards) for v, wards in by_version.items()}
    largest_ward = {v: max(shapely.from_wkt(w.geometry_wkt).area for w in wards) for v, wards in by_version.items()}
    passed = all(f["overlap_km2"] <= 0.01 * measure_km2(largest_ward[v], by_version[v]) for v, f in figures.items())
    return passed, {
        **{f"{v}_overlap_km2": f["overlap_km2"] for v, f in figures.items()},
        **{f"{v}_overlapping_pairs": f["overlapping_pairs"] for v, f in figures.items()},
        **{f"{v}_largest_overlaps": ", ".join(f["largest_overlaps"]) or "none" for v, f in figures.items()},
        **{f"{v}_gap_km2": f["gap_km2"] for v, f in figures.items()},
        **{f"{v}_gaps": f["gaps"] for v, f in figures.items()},
    }


POSTS_IN_WARDS = dg.AssetKey(["int_posts_in_wards"])


@city_check(asset=POSTS_IN_WARDS, name="default_coordinates_not_assigned",
            description="Points shared by many geotagged posts (a geocoder's default) have low confidence and no ward.")
def default_coordinates_not_assigned(con, cfg) -> tuple[bool, dict]:
    points = con.execute("""select round(lat, 6), round(lon, 6), count(*) as posts,
                                   count(ward_id) as with_ward, max(location_confidence) as max_confidence
                            from int_posts_in_wards where is_default_point group by 1, 2 order by posts desc""").fetchall()
    wrong = [p for p in points if p[3] > 0 or p[4] > 0.1]
    return not wrong, {
        "default_points": len(points), "posts_at_default_points": sum(p[2] for p in points),
        "largest": ", ".join(f"({p[0]}, {p[1]}): {p[2]} posts" for p in points[:5]) or "none",
        "assigned_anyway": len(wrong)}


DEFAULT_POINTS = dg.AssetKey(["int_default_points"])


@city_check(asset=DEFAULT_POINTS, name="default_points_catches_and_false_flags",
            description="Default points caught, by reason; fails when a flagged point's texts name places at "
                        "the point and none elsewhere (a busy real address stripped of its ward).")
def default_points_catches_and_false_flags(con, cfg) -> tuple[bool, dict]:
    rows = con.execute("""select round(lat, 6), round(lon, 6), posts, reason, is_default, is_suspected_false_flag,
                                 text_agree, text_disagree
                          from int_default_points order by posts desc""").fetchall()
    flagged = [r for r in rows if r[4]]
    suspects = [r for r in flagged if r[5]]
    reasons: dict[str, int] = {}
    for r in flagged:
        key = r[3].split(":")[0]
        reasons[key] = reasons.get(key, 0) + r[2]
    return not suspects, {
        "candidate_points": len(rows), "default_points": len(flagged),
        "posts_at_default_points": sum(r[2] for r in flagged),
        "candidates_kept": len(rows) - len(flagged),
        "posts_at_candidates_kept": sum(r[2] for r in rows if not r[4]),
        **{f"posts_by_reason_{k.replace(' ', '_')}": v for k, v in reasons.items()},
        "suspected_false_flags": len(suspects),
        "suspects": ", ".join(f"({r[0]}, {r[1]}): {r[2]} posts, {r[6]} texts agree, {r[3]}" for r in suspects[:5]) or "none",
        "largest": ", ".join(f"({r[0]}, {r[1]}): {r[2]} posts, {r[3]}" for r in flagged[:5]) or "none"}


@city_check(asset=POSTS_IN_WARDS, name="located_posts_inside_wards", severity=dg.AssetCheckSeverity.WARN,
            description="Warns when more than locations.max_outside_share of located posts fall outside every "
                        "ward or before every boundary version (wrong CRS, wrong valid_from).")
def located_posts_inside_wards(con, cfg) -> tuple[bool, dict]:
    located, outside, before = con.execute("""
        select count(*), count(*) filter (where is_outside_wards),
               count(*) filter (where cast(created_at as date) < (select min(coalesce(valid_from, date '0001-01-01'))
                                                                  from gis.wards))
        from int_posts_in_wards where lat is not null and not is_default_point""").fetchone()
    share = outside / located if located else 0.0
    limit = cfg.locations.max_outside_share
    return share <= limit, {
        "located_posts": located, "outside_every_ward": outside, "before_every_boundary_version": before or 0,
        "share_outside": round(share, 4), "max_outside_share": limit}


@city_check(asset=WARDS, name="boundary_loads_replaced", severity=dg.AssetCheckSeverity.WARN,
            description="Warns when the latest load of a boundary version did not replace it (too few ward ids "
                        "read): the previous wards are still in force.")
def boundary_loads_replaced(con, cfg) -> tuple[bool, dict]:
    rows = con.execute("""select boundary_version, outcome, reason from (
                              select *, row_number() over (partition by boundary_version order by loaded_at desc) as n
                              from gis.boundary_loads) where n = 1 order by 1""").fetchall()
    kept = [r for r in rows if r[1] == "kept_previous"]
    return not kept, {
        "versions": len(rows), "kept_previous": len(kept),
        "why": "; ".join(f"{r[0]}: {r[2]}" for r in kept)[:1000] or "none"}


def measure_km2(area_deg2: float, wards: list[Ward]) -> float:
    """Degrees² of the biggest ward in km², at the set's latitude (the 1% overlap bar)."""
    lat = shapely.from_wkt(wards[0].geometry_wkt).centroid.y
    return area_deg2 * KM_PER_DEGREE**2 * math.cos(math.radians(lat))


@dg.asset(key=PLACES, group_name="gis", compute_kind="python")
def gis_places(context: dg.AssetExecutionContext, city: CityResource) -> dg.MaterializeResult:
    """Gazetteer of named intersections, streets and landmarks for placing posts from their words."""
    ref = city.load().gis
    plugin = registry.build("gis", ref, **secrets_for(ref))
    # Named places plus the intersections computed from the street centerlines, cached here;
    # the centerlines too, for address ranges.
    with connect(city.load().duckdb_path) as con:
        places, streets, unlocated = store_gazetteer(con, plugin)
    kinds: dict[str, int] = {}
    for p in places:
        kinds[p.kind] = kinds.get(p.kind, 0) + 1
    return dg.MaterializeResult(metadata={"places": len(places), "street_segments": len(streets),
                                          "unlocated_street_names": sum(len(n) for n in unlocated.values()),
                                          **{f"kind_{k}": v for k, v in kinds.items()}})


def store_gazetteer(con, plugin) -> tuple[list[Place], list[StreetSegment], dict[str, list[str]]]:
    """Replace the cached gazetteer (``gis.places``, ``gis.streets``, ``gis.unlocated_street_names``)
    with the GIS plugin's; returns what was stored."""
    streets = plugin.streets()
    # gazetteer() and unlocated_streets() call streets() again: read the layer files once.
    plugin.streets = lambda: streets
    places = plugin.gazetteer()
    unlocated = plugin.unlocated_streets()
    store_streets(con, streets)
    con.execute("delete from gis.places")
    insert_many(
        con,
        "insert into gis.places (place_id, name, kind, lat, lon, aliases, streets, area) values (?, ?, ?, ?, ?, ?, ?, ?)",
        [(p.place_id, p.name, p.kind, p.lat, p.lon, list(p.aliases), list(p.streets), p.area) for p in places],
    )
    con.execute("delete from gis.unlocated_street_names")
    insert_many(con, "insert into gis.unlocated_street_names values (?, ?)",
                [(area, name) for area, names in unlocated.items() for name in names])
    return places, streets, unlocated


def store_streets(con, streets: list[StreetSegment]) -> None:
    """Replace ``gis.streets`` with ``streets`` in one bulk insert from a DataFrame.

    Row by row (``executemany`` with ``st_geomfromtext``) took 75 s for one city's layer.
    """
    con.execute("delete from gis.streets")
    if not streets:
        return
    frame = pd.DataFrame({
        "segment_id": [s.segment_id for s in streets], "name": [s.name for s in streets],
        "area": [s.area for s in streets], "wkt": [s.geometry_wkt for s in streets],
        "from_address": pd.array([s.from_address for s in streets], dtype="Int64"),
        "to_address": pd.array([s.to_address for s in streets], dtype="Int64"),
    })
    with registered(con, frame, "streets") as view:
        # Repeated segment ids keep the first, as the row-by-row insert's primary key did.
        con.execute(f"""insert into gis.streets
                        select segment_id, name, area, st_geomfromtext(wkt), from_address::integer, to_address::integer
                        from (select *, row_number() over (partition by segment_id) as n from {view}) where n = 1""")


def load_gazetteer(con):
    """The city's gazetteer as the pipeline uses it: places, ranged centerlines and the street
    names of areas without geometry (so a corner that could be there is not placed elsewhere)."""
    from social311.models.locations import Gazetteer

    places = [Place(place_id=r[0], name=r[1], kind=r[2], lat=r[3], lon=r[4], aliases=tuple(r[5] or ()),
                    streets=tuple(r[6] or ()), area=r[7])
              for r in con.execute("select place_id, name, kind, lat, lon, aliases, streets, area from gis.places").fetchall()]
    # Only centerlines with house-number ranges add anything (address interpolation).
    segments = [StreetSegment(segment_id=r[0], name=r[1], area=r[2], geometry_wkt=r[3], from_address=r[4], to_address=r[5])
                for r in con.execute("select segment_id, name, area, st_astext(geom), from_address, to_address "
                                     "from gis.streets where from_address is not null and to_address is not null").fetchall()]
    unlocated: dict[str, list[str]] = {}
    for area, name in con.execute("select area, name from gis.unlocated_street_names").fetchall():
        unlocated.setdefault(area, []).append(name)
    return Gazetteer(places, unlocated_streets=unlocated, segments=segments)


def dbt_vars(cfg: CityConfig) -> dict:
    """The per-city settings the ward join's dbt models read (``locations`` in the city YAML)."""
    d = cfg.locations.default_points
    centre = [(cfg.bbox[1] + cfg.bbox[3]) / 2, (cfg.bbox[0] + cfg.bbox[2]) / 2] if cfg.bbox else None
    return {
        "default_point_min_posts": d.min_posts,
        "default_point_known_points": [list(p) for p in d.known_points],
        "default_point_known_centroids": [list(p) for p in d.known_centroids],
        "default_point_city_centre": centre,
        "default_point_tolerance_m": d.centroid_tolerance_m,
        "default_point_agree_m": d.agree_m,
        "default_point_disagree_m": d.disagree_m,
        "default_point_min_disagreeing_posts": d.min_disagreeing_posts,
        "default_point_min_disagreeing_places": d.min_disagreeing_places,
        "default_point_disagree_share": d.disagree_share,
        "default_point_max_share": d.max_share,
        "default_point_share_min_posts": d.share_min_posts,
    }


def text_places_for(con, gazetteer, min_posts: int) -> list[tuple]:
    """Text evidence for the posts at candidate default points not examined yet.

    Only posts on a point shared by ``min_posts`` geotagged / place-box posts are examined (the
    rule needs no more), each once. The evidence is the place the text names (a corner, a
    landmark, an address), else the point nearest to the post's point on a street the text
    names ("Fdr Dr", "1382 Dumont Ave" without address data): a City-Hall default is far from
    the streets its posts name, a busy real address lies on them. A post whose text names
    nothing is stored with no point.
    """
    todo = con.execute("""
        with located as (
            select l.post_id, l.lat, l.lon from ml.post_locations l
            where l.lat is not null and l.method in ('geotag', 'place_bbox')
        ), candidates as (
            select lat, lon from located group by lat, lon having count(*) >= ?
        )
        select located.post_id, located.lat, located.lon, p.post_text
        from located join candidates using (lat, lon) join stg_social__posts p using (post_id)
        where located.post_id not in (select post_id from ml.post_text_places)
    """, [min_posts]).fetchall()
    if not todo:
        return []
    streets = _street_lines(con)
    rows = []
    for post_id, lat, lon, text in todo:
        found = gazetteer.match(text) if text and len(gazetteer) else None
        if found is not None:
            rows.append((post_id, found.lat, found.lon, found.place_id, (found.matched_text or "")[:200]))
            continue
        near = _nearest_named_street(gazetteer.streets_named(text), streets, lat, lon) if text else None
        rows.append((post_id, *near) if near else (post_id, None, None, None, None))
    return rows


def _street_lines(con) -> dict[tuple[str, ...], object]:
    """Every street of ``gis.streets`` as one geometry per name core."""
    from social311.models.streets import parse_street

    by_core: dict[tuple[str, ...], list] = {}
    for name, wkt in con.execute("select name, st_astext(geom) from gis.streets").fetchall():
        core = parse_street(name).core
        if core:
            by_core.setdefault(core, []).append(wkt)
    return {core: shapely.union_all(shapely.from_wkt(wkts)) for core, wkts in by_core.items()}


def _nearest_named_street(cores: list[tuple[str, ...]], streets: dict, lat: float, lon: float) -> tuple | None:
    """(lat, lon, place id, street) of the nearest point, to (lat, lon), on any street named."""
    from shapely.ops import nearest_points

    point = shapely.Point(lon, lat)
    best = None
    for core in cores:
        line = streets.get(core)
        if line is None:
            continue
        near = nearest_points(line, point)[0]
        # Planar degrees are enough to pick the nearest of a few candidates.
        gap = near.distance(point)
        if best is None or gap < best[0]:
            best = (gap, near, core)
    if best is None:
        return None
    return best[1].y, best[1].x, "street:" + " ".join(best[2]), " ".join(best[2])[:200]


@dg.asset(key=POST_TEXT_PLACES, deps=[POST_LOCATIONS, PLACES, STG_POSTS], group_name="gis", compute_kind="python")
def post_text_places(city: CityResource) -> dg.MaterializeResult:
    """Where the texts of posts on a shared point name a place: evidence for the default-point rule."""
    cfg = city.load()
    with connect(cfg.duckdb_path) as con:
        rows = text_places_for(con, load_gazetteer(con), cfg.locations.default_points.min_posts)
        insert_many(con, "insert into ml.post_text_places values (?, ?, ?, ?, ?) on conflict (post_id) do nothing", rows)
    return dg.MaterializeResult(metadata={"examined": len(rows), "named_a_place": sum(r[1] is not None for r in rows)})


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
        assets=[gis_wards, gis_places, post_text_places],
        asset_checks=[
            wards_overlaps_and_gaps,
            default_coordinates_not_assigned,
            default_points_catches_and_false_flags,
            located_posts_inside_wards,
            boundary_loads_replaced,
            sql_check(asset=WARDS, name="boundary_versions_do_not_clash",
                      description="No two boundary versions are in force on the same day (a post's ward must be one).",
                      query="""select distinct a.boundary_version, b.boundary_version
                               from gis.wards a join gis.wards b on a.boundary_version < b.boundary_version
                               where (b.valid_to is null or a.valid_from is null or a.valid_from < b.valid_to)
                               and (a.valid_to is null or b.valid_from is null or b.valid_from < a.valid_to)"""),
            gx_check(asset=WARDS, suite=wards_suite, description="Wards exist, ids are unique per version, geometries valid, areas plausible.",
                     query="select boundary_version || '/' || ward_id as ward_key, st_isvalid(geom) as is_valid, area_km2 from gis.wards"),
            sql_check(asset=WARDS, name="wards_do_not_overlap", description="No two wards of one version overlap by more than 1% of the smaller.",
                      query="""select a.ward_id, b.ward_id from gis.wards a join gis.wards b
                               on a.boundary_version = b.boundary_version and a.ward_id < b.ward_id
                               and st_intersects(a.geom, b.geom)
                               where st_area(st_intersection(a.geom, b.geom)) > 0.01 * least(st_area(a.geom), st_area(b.geom))"""),
            sql_check(asset=POST_TEXT_PLACES, name="text_places_are_located_posts",
                      description="Text evidence only for located posts, with both coordinates or none, in range.",
                      query="""select post_id from ml.post_text_places t
                               where post_id not in (select post_id from ml.post_locations where lat is not null)
                               or (text_lat is null) <> (text_lon is null)
                               or text_lat not between -90 and 90 or text_lon not between -180 and 180"""),
            gx_check(asset=PLACES, suite=places_suite, description="Gazetteer places are unique, typed and in range.",
                     query="select place_id, lat, lon, kind from gis.places"),
        ],
    )
