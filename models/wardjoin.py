"""Point-in-ward assignment outside dbt, for cross-checks and the benchmark.

The rule is the dbt model's (``int_posts_in_wards``): the ward whose polygon contains the point;
on a shared edge, the lowest ward id (text order) of the wards it touches; outside all, None.
``duckdb_assign`` runs it in DuckDB spatial as the model does; ``shapely_assign`` runs it with
a shapely STRtree, so the two can be compared point for point.
"""

from __future__ import annotations

import duckdb
import numpy as np
import pandas as pd
import shapely
from shapely.strtree import STRtree

from social311.records import Ward
from social311.warehouse import registered


def shapely_assign(wards: list[Ward], lons: np.ndarray, lats: np.ndarray) -> list[str | None]:
    """Ward id per point (None outside), with a shapely STRtree query."""
    ids = [w.ward_id for w in wards]
    tree = STRtree([shapely.from_wkt(w.geometry_wkt) for w in wards])
    point_idx, ward_idx = tree.query(shapely.points(lons, lats), predicate="intersects")
    # Lowest ward id (text order) per point, vectorised: rank the ids, keep each point's minimum.
    order = sorted(range(len(ids)), key=ids.__getitem__)
    rank = np.empty(len(ids), dtype=np.int64)
    rank[order] = np.arange(len(ids))
    best = np.full(len(lons), len(ids), dtype=np.int64)
    np.minimum.at(best, point_idx, rank[ward_idx])
    by_rank = [ids[i] for i in order] + [None]
    return [by_rank[b] for b in best.tolist()]


def duckdb_assign(con: duckdb.DuckDBPyConnection, wards: list[Ward], lons: np.ndarray, lats: np.ndarray) -> list[str | None]:
    """Ward id per point (None outside), with DuckDB spatial's join as the dbt model does it."""
    con.execute("create or replace temp table _wards as select * from (select unnest(?) as ward_id, "
                "st_geomfromtext(unnest(?)) as geom)", [[w.ward_id for w in wards], [w.geometry_wkt for w in wards]])
    points = pd.DataFrame({"i": np.arange(len(lons)), "lon": lons, "lat": lats})
    with registered(con, points, "points") as view:
        rows = con.execute(f"""
            with pts as (select i, st_point(lon, lat) as geom from {view})
            select pts.i, min(_wards.ward_id) from pts join _wards on st_intersects(pts.geom, _wards.geom) group by pts.i
        """).fetchall()
    out: list[str | None] = [None] * len(lons)
    for i, ward_id in rows:
        out[i] = ward_id
    return out
