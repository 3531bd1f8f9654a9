"""The incremental ward join (int_posts_in_wards) gives the same table as a full rebuild, with real dbt.

A real DuckDB file with the warehouse's own tables (core/warehouse.py), real ``dbt build``
(the production command), and each change a later run meets: new posts, a type that arrives
for an earlier post, a point that becomes a default point, a post withdrawn from raw, and new
ward boundaries. After each, the incremental build's table must equal a ``--full-refresh``
build of the same inputs, row for row.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from social311.orchestration.transforms import PRODUCTION_BUILD, PROJECT_DIR, dbt_env, dbt_executable
from social311.warehouse import connect

T0 = datetime(2026, 1, 1, 9, tzinfo=timezone.utc)
BUSY = (0.5, 0.5)  # five geotagged posts share it: a default point once the city lists it


def _dbt(db: Path, tmp: Path, *extra: str, known_points=()) -> None:
    variables = {"default_point_known_points": [list(p) for p in known_points]}
    result = subprocess.run(
        [dbt_executable(), *PRODUCTION_BUILD, "--select", "+int_posts_in_wards", "--vars", json.dumps(variables), *extra,
         "--project-dir", str(PROJECT_DIR), "--profiles-dir", str(PROJECT_DIR),
         "--target-path", str(tmp / "target"), "--log-path", str(tmp / "logs")],
        env={**os.environ, **dbt_env(db)}, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-4000:]


def _add_posts(con, first: int, count: int, *, point=None, typed=True) -> None:
    for k in range(first, first + count):
        pid = f"p{k:03d}"
        lat, lon = point or (0.2 + 0.01 * (k % 50), 0.3 + 0.03 * (k % 50))  # some in ward 1, some in ward 2
        at = T0 + timedelta(hours=k)
        con.execute("insert into raw.posts (post_id, source, native_id, text, created_at, lat, lon, ingested_at) "
                    "values (?, 'drop', ?, ?, ?, ?, ?, ?)", [pid, pid, f"pothole number {k} on my street", at, lat, lon, at])
        con.execute("insert into ml.post_signals (post_id, relevance, is_report, sentiment) values (?, 0.9, true, -0.2)", [pid])
        con.execute("insert into ml.post_locations (post_id, lat, lon, method, confidence) values (?, ?, ?, 'geotag', 0.95)",
                    [pid, lat, lon])
        if typed:
            con.execute("insert into ml.post_types (post_id, type_id, service_code, similarity) values (?, 'svc-pot', 'POT', 0.7)",
                        [pid])


def _wards(con, version: str, split_at: float, valid_from=None) -> None:
    if valid_from is not None:
        con.execute("update gis.wards set valid_to = ? where valid_to is null", [valid_from])
    con.execute(f"""insert into gis.wards (ward_id, boundary_version, valid_from, geom) values
        ('1', ?, ?, st_geomfromtext('POLYGON((0 0, {split_at} 0, {split_at} 1, 0 1, 0 0))')),
        ('2', ?, ?, st_geomfromtext('POLYGON(({split_at} 0, 2 0, 2 1, {split_at} 1, {split_at} 0))'))""",
                [version, valid_from, version, valid_from])


def _table(db: Path) -> list[tuple]:
    with connect(db, read_only=True) as con:
        return con.execute("select * exclude (wards_fingerprint) from int_posts_in_wards order by post_id").fetchall()


def _ran_incrementally(tmp: Path) -> bool:
    """Whether the last build compiled the model's incremental branch (the join to the built table)."""
    compiled = next((tmp / "target" / "compiled").rglob("int_posts_in_wards.sql")).read_text(encoding="utf-8")
    return "as built" in compiled


def _same_as_full_rebuild(db: Path, tmp: Path, known_points=(), incremental_run=True) -> list[tuple]:
    """Build incrementally, then a full rebuild on a copy of the same file; the two tables."""
    _dbt(db, tmp, known_points=known_points)
    assert _ran_incrementally(tmp) == incremental_run
    incremental = _table(db)
    full_db = tmp / "full.duckdb"
    shutil.copyfile(db, full_db)
    _dbt(full_db, tmp, "--full-refresh", known_points=known_points)
    assert not _ran_incrementally(tmp)
    assert incremental == _table(full_db)
    return incremental


@pytest.mark.slow
def test_incremental_ward_join_equals_a_full_rebuild(tmp_path: Path) -> None:
    db = tmp_path / "w.duckdb"
    with connect(db) as con:
        _wards(con, "v1", 1.0)
        _add_posts(con, 0, 30)
        _add_posts(con, 30, 5, point=BUSY)
        _add_posts(con, 35, 2, typed=False)  # reports waiting for a type
    first = _same_as_full_rebuild(db, tmp_path, incremental_run=False)  # no table yet: a full build
    columns = _columns(db)
    assert len(first) == 37 and {r[0] for r in first if r[columns.index("type_id")] is None} == {"p035", "p036"}

    # A later run: new posts, a type arrives for p035, p003 is withdrawn, the busy point is now a default.
    with connect(db) as con:
        _add_posts(con, 37, 10)
        con.execute("insert into ml.post_types values ('p035', 'svc-graf', 'GRAF', 0.6, now())")
        for table in ("raw.posts", "ml.post_signals", "ml.post_locations", "ml.post_types"):
            con.execute(f"delete from {table} where post_id = 'p003'")
    rows = {r[0]: r for r in _same_as_full_rebuild(db, tmp_path, known_points=[BUSY])}
    assert len(rows) == 46 and "p003" not in rows and rows["p035"][columns.index("type_id")] == "svc-graf"
    assert all(rows[f"p{k:03d}"][columns.index("is_default_point")] for k in range(30, 35))
    assert rows["p030"][columns.index("ward_id")] is None

    # Nothing changed: the incremental build keeps the table as it is.
    _dbt(db, tmp_path, known_points=[BUSY])
    assert {r[0]: r for r in _table(db)} == rows

    # A warehouse whose table was built before the model was incremental (no hash columns).
    with connect(db) as con:
        con.execute("alter table int_posts_in_wards drop column inputs_hash")
        con.execute("alter table int_posts_in_wards drop column wards_fingerprint")
    _dbt(db, tmp_path, known_points=[BUSY])
    assert not _ran_incrementally(tmp_path) and {r[0]: r for r in _table(db)} == rows

    # Redistricting: the new boundaries apply from a date, and every post is placed again.
    with connect(db) as con:
        _wards(con, "v2", 0.5, valid_from=(T0 + timedelta(hours=40)).date())
    moved = {r[0]: r for r in _same_as_full_rebuild(db, tmp_path, known_points=[BUSY])}
    assert any(moved[p][columns.index("boundary_version")] == "v2" for p in moved)
    assert moved != rows


def _columns(db: Path) -> list[str]:
    with connect(db, read_only=True) as con:
        return [d[0] for d in con.execute("select * exclude (wards_fingerprint) from int_posts_in_wards limit 0").description]
