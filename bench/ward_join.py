"""Bench: the ward join of N points (default 1,000,000) through dbt/DuckDB spatial vs a shapely STRtree.

Run: ``.venv/bin/python bench/ward_join.py [--points 1000000]`` (needs ../shared/data or
SOCIAL311_SHARED_DATA for Chicago's 50 wards). Both sides place the same random points in the
same run: dbt builds ``int_posts_in_wards`` (the real model, boundaries in force on the post's
date, lowest id on edges) in a temporary warehouse; shapely queries an STRtree of the same
polygons. Reported: the model's own execution time (dbt's run_results.json), the whole
``dbt run`` wall time, shapely's time, their ratio, and how many points the two place differently.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np

from social311.integrations.gis.geojson import GeoJSONConfig, GeoJSONGIS
from social311.models.wardjoin import shapely_assign
from social311.orchestration.transforms import PROJECT_DIR, dbt_env, dbt_executable
from social311.warehouse import connect


def shared_data() -> Path:
    return Path(os.environ.get("SOCIAL311_SHARED_DATA") or Path(__file__).resolve().parents[2] / "shared" / "data")


def prepare(db: Path, n: int, seed: int) -> list:
    """Chicago's wards and ``n`` located posts (uniform in the wards' bounding box) in a fresh warehouse."""
    ward_set = GeoJSONGIS(GeoJSONConfig(wards_path=str(shared_data() / "chicago" / "chicago_wards_2015_2023.geojson"),
                                        ward_id_property="ward", boundary_version="2015", valid_from="2015-05-18"),
                          instance_name="chicago").wards()
    with connect(db) as con:
        con.executemany("insert into gis.wards select ?, ?, '2015', '2015-05-18', null, geom, 0 "
                        "from (select st_geomfromtext(?::varchar) as geom)",
                        [(w.ward_id, w.name, w.geometry_wkt) for w in ward_set.wards])
        min_x, min_y, max_x, max_y = con.execute(
            "select min(st_xmin(geom)), min(st_ymin(geom)), max(st_xmax(geom)), max(st_ymax(geom)) from gis.wards").fetchone()
        con.execute(f"select setseed({seed / 2**31})")
        con.execute(f"""insert into raw.posts (post_id, source, native_id, text, created_at, mentions_city, ingested_at)
                        select 'b:' || i, 'bench', i::varchar, 'bench', timestamptz '2024-06-01 12:00:00+00', false, now()
                        from range({n}) t(i)""")
        con.execute(f"""insert into ml.post_locations (post_id, lat, lon, method, confidence)
                        select 'b:' || i, {min_y} + random() * {max_y - min_y}, {min_x} + random() * {max_x - min_x},
                               'geotag', 0.95 from range({n}) t(i)""")
    return list(ward_set.wards)


def run(n: int, seed: int = 7) -> dict:
    """Time both joins on the same ``n`` points; returns the figures."""
    with tempfile.TemporaryDirectory(prefix="social311-bench-") as tmp:
        db = Path(tmp) / "bench.duckdb"
        wards = prepare(db, n, seed)
        started = time.perf_counter()
        proc = subprocess.run(
            [dbt_executable(), "run", "--select", "stg_social__posts", "int_posts_in_wards", "--project-dir", str(PROJECT_DIR),
             "--profiles-dir", str(PROJECT_DIR), "--target-path", f"{tmp}/target", "--log-path", f"{tmp}/logs"],
            env={**os.environ, **dbt_env(db)}, capture_output=True, text=True)
        dbt_wall = time.perf_counter() - started
        if proc.returncode:
            raise SystemExit(proc.stdout[-3000:])
        results = json.loads((Path(tmp) / "target" / "run_results.json").read_text())["results"]
        model_s = next(r["execution_time"] for r in results if r["unique_id"].endswith("int_posts_in_wards"))
        with connect(db, read_only=True) as con:
            rows = con.execute("select l.lon, l.lat, i.ward_id from ml.post_locations l "
                               "join int_posts_in_wards i using (post_id) order by l.post_id").fetchall()
        lons = np.array([r[0] for r in rows])
        lats = np.array([r[1] for r in rows])
        started = time.perf_counter()
        by_shapely = shapely_assign(wards, lons, lats)
        shapely_s = time.perf_counter() - started
        differ = sum(a != r[2] for a, r in zip(by_shapely, rows))
        inside = sum(r[2] is not None for r in rows)
    return {"points": n, "inside_a_ward": inside, "dbt_model_s": round(model_s, 2), "dbt_run_wall_s": round(dbt_wall, 2),
            "shapely_strtree_s": round(shapely_s, 2), "ratio_model_to_shapely": round(model_s / shapely_s, 2),
            "ratio_dbt_wall_to_shapely": round(dbt_wall / shapely_s, 2), "assignments_differing": differ}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    os.environ.setdefault("DO_NOT_TRACK", "1")
    print(json.dumps(run(args.points, args.seed), indent=2))


if __name__ == "__main__":
    main()
