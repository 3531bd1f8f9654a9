"""Scale: 100,000 posts through the whole pipeline under a memory cap; the pieces that make it fit.

The memory test runs the real job (every asset and check, dbt, DuckDB file, the packaged
all-MiniLM-L6-v2 on its onnx-int8 path, sandbox on loopback, dry-run filing) on 100,000
generated posts in a child process, as ``bench/pipeline_100k.py`` runs it, and caps its peak
resident memory (about four minutes on 2 cores). It asserts no timing: speed is the bench's.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import datetime, timezone

import duckdb
import numpy as np
import pytest

from conftest import REPO
from social311.warehouse import _bulk_insert, connect, insert_many

#: Peak RSS allowed for 100,000 posts (this process, and separately dbt's child process).
#: Measured 2026-11-22: ~2,300 MB for the process, ~460 MB for dbt (README, "Scale: 100,000
#: posts"). An n x n float matrix of the ~47,000 reports alone would need 8.8 GB.
MEMORY_CAP_MB = 3072

# The child process: the bench's run_pipeline, its report as one JSON line.
DRIVER = r"""
import json, runpy, sys
bench = runpy.run_path(sys.argv[1])
report = bench["run_pipeline"](bench["Path"](sys.argv[2]), posts=int(sys.argv[3]), seed=0, filing=False, prefilter=False)
print("REPORT " + json.dumps(report, default=str))
"""


@pytest.mark.slow
def test_100k_posts_through_the_whole_pipeline_stay_under_the_memory_cap(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, "-c", DRIVER, str(REPO / "bench" / "pipeline_100k.py"), str(tmp_path / "run"),
                           "100000"], capture_output=True, text=True, env=env, timeout=1500, check=False)
    lines = [line for line in done.stdout.splitlines() if line.startswith("REPORT ")]
    assert done.returncode == 0 and lines, done.stderr[-3000:]
    report = json.loads(lines[-1].removeprefix("REPORT "))
    assert report["success"], report["failed_steps"]
    counts = report["counts"]
    assert counts["posts"] == 100_001  # 100,000 generated + the hostile-but-valid line
    assert counts["embedded"] == counts["posts"]
    assert counts["reports"] > 20_000 and counts["incidents"] > 5_000, counts  # a real workload downstream
    peak = report["peak_rss_mb"]
    assert peak["process"] < MEMORY_CAP_MB, peak
    assert peak["children_sampled"] < MEMORY_CAP_MB, peak


# --- bulk inserts (core/warehouse.py insert_many) ---------------------------------------------


@pytest.mark.parametrize("sql, bulk", [
    ("insert into raw.posts values (?, ?, ?) on conflict (post_id) do nothing", True),
    ("INSERT INTO gis.places (place_id, name) VALUES (?,?)", True),
    ("insert into ops.ticket_status_notes values (?, ?) on conflict do nothing", True),
    ("insert into gis.streets select ?, st_geomfromtext(?::varchar)", False),
    ("insert into t values (?, ?) on conflict (a) do update set b = excluded.b", False),
    ("insert or replace into t values (?, ?)", False),
    ("update t set a = ? where b = ?", False),
    ("insert into t values (?, lower(?))", False),
])
def test_only_plain_inserts_are_bulk_loaded(sql, bulk):
    assert (_bulk_insert(sql) is not None) is bulk


def _signal_rows(n: int) -> list[tuple]:
    now = datetime(2024, 5, 6, 7, 0, tzinfo=timezone.utc)
    rng = np.random.default_rng(0)
    rows = []
    for i in range(n):
        vector = rng.normal(size=384).astype(np.float32)
        # The first 1,500 rows have NULL sentiment and language: a sampled type guess would get them wrong.
        rows.append((f"p{i:05d}", float(i % 7) / 7, i % 2 == 0, None if i < 1500 else -0.5, None if i < 1500 else "en",
                     vector / np.linalg.norm(vector), "m", now))
    return rows


def test_bulk_insert_stores_what_row_by_row_inserts_store(tmp_path):
    rows = _signal_rows(2000)
    sql = "insert into ml.post_signals values (?, ?, ?, ?, ?, ?, ?, ?) on conflict (post_id) do nothing"
    with connect(tmp_path / "bulk.duckdb") as bulk, connect(tmp_path / "rows.duckdb") as by_row:
        assert insert_many(bulk, sql, rows) == len(rows)
        by_row.executemany(sql, [(*r[:5], r[5].tolist(), *r[6:]) for r in rows[:300] + rows[1500:1800]])
        query = "select * from ml.post_signals order by post_id"
        got = {r[0]: r for r in bulk.execute(query).fetchall()}
        expected = by_row.execute(query).fetchall()
    for row in expected:
        assert got[row[0]][:5] == row[:5] and got[row[0]][6:] == row[6:]
        assert np.allclose(got[row[0]][5], row[5])
    assert got["p01600"][3] == -0.5 and got["p01600"][4] == "en"
    assert got["p00003"][3] is None and got["p00003"][4] is None


def test_bulk_insert_keeps_the_first_row_of_a_key_and_skips_existing_keys(tmp_path):
    with connect(tmp_path / "w.duckdb") as con:
        sql = "insert into ops.incident_posts values (?, ?, ?) on conflict (post_id) do nothing"
        insert_many(con, sql, [("inc-a", "p1", "anchor")])
        insert_many(con, sql, [("inc-b", "p1", "late"), ("inc-c", "p2", "first"), ("inc-d", "p2", "second")])
        assert con.execute("select * from ops.incident_posts order by post_id").fetchall() == [
            ("inc-a", "p1", "anchor"), ("inc-c", "p2", "first")]


def test_bulk_insert_keeps_large_ids_lists_and_named_columns(tmp_path):
    con = duckdb.connect(str(tmp_path / "t.duckdb"))
    con.execute("create table t (big BIGINT, words VARCHAR[], day DATE, flag BOOLEAN, note VARCHAR)")
    big = 1_790_000_000_000_000_123  # above 2**53: a float64 column would round it
    rows = [(None, [], None, None, None)] * 1200 + [(big, ["a", "b"], datetime(2024, 5, 6).date(), True, "x")]
    insert_many(con, "insert into t (big, words, day, flag, note) values (?, ?, ?, ?, ?)", rows)
    assert con.execute("select count(*), max(big), max(words), max(day), bool_or(flag), max(note) from t").fetchone() == (
        1201, big, ["a", "b"], datetime(2024, 5, 6).date(), True, "x")


def test_updates_and_upserts_still_run_row_by_row(tmp_path):
    con = duckdb.connect(str(tmp_path / "t.duckdb"))
    con.execute("create table t (k VARCHAR PRIMARY KEY, v INTEGER)")
    insert_many(con, "insert into t values (?, ?) on conflict (k) do update set v = excluded.v", [("a", 1), ("a", 2)])
    insert_many(con, "update t set v = ? where k = ?", [(5, "a")])
    assert insert_many(con, "insert into t values (?, ?)", []) == 0
    assert con.execute("select * from t").fetchall() == [("a", 5)]


# --- the generated stream (demo/generate.py generate_stream) ------------------------------------


def test_the_stream_is_seeded_unique_and_reposts_point_back():
    from social311.demo.generate import generate_stream

    posts = generate_stream(3000, seed=4)
    assert posts == generate_stream(3000, seed=4)
    assert len(posts) == 3000 and len({p["id"] for p in posts}) == 3000
    seen = set()
    for p in posts:
        assert p["repost_of"] is None or p["repost_of"] in seen
        seen.add(p["id"])
    weeks = {p["created_at"][:10] for p in posts}
    assert len(weeks) > 40, "posts spread over many days, one demo week after another"


# --- the prefilter (models/prefilter.py) -------------------------------------------------------


def _labelled_demo_posts():
    from social311.demo.generate import generate_demo

    posts, truth = generate_demo(seed=3, n_incidents=400)
    reports = {pid for inc in truth.values() for pid in inc["post_ids"] + inc["repost_ids"]}
    return [p["text"] for p in posts], np.array([p["id"] in reports for p in posts])


def test_prefilter_keeps_the_recall_it_was_set_to_and_only_skips_low_scores():
    from social311.models.prefilter import Prefilter

    texts, labels = _labelled_demo_posts()
    half = len(texts) // 2
    prefilter = Prefilter.train(texts[:half], labels[:half], recall=0.99)
    assert prefilter is not None and prefilter.oof_recall >= 0.99
    skip, probability = prefilter.skip(texts[half:], relevance_threshold=0.5)
    held_out = labels[half:]
    assert skip.mean() > 0.3, "it skips a real share of the chatter"
    assert (~skip[held_out]).mean() >= 0.97, "it keeps nearly every report it never saw"
    assert (probability[skip] < 0.5).all()


def test_prefilter_is_not_trained_on_too_few_examples():
    from social311.models.prefilter import Prefilter

    assert Prefilter.train(["pothole on main"] * 40 + ["nice day"] * 200, np.array([1] * 40 + [0] * 200)) is None


@pytest.mark.slow
def test_the_demo_pipeline_with_the_prefilter_on(tmp_path):
    """Skipped posts keep a signals row without an embedding; everything downstream still runs."""
    import yaml

    from social311.cli import run_pipeline
    from social311.config import load_config
    from social311.demo.runner import prepare_demo

    with prepare_demo(tmp_path) as config_path:
        data = yaml.safe_load(config_path.read_text(encoding="utf-8"))
        data["prefilter"] = {"enabled": True, "min_training_posts": 200}
        data["embedding_backend"] = "onnx-int8"
        config_path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
        result, _ = run_pipeline(config_path, dagster_home=tmp_path / "dagster_home")
        cfg = load_config(config_path)
    assert result.success
    checks = [e for e in result.all_events if e.event_type_value == "ASSET_CHECK_EVALUATION"]
    assert checks and all(e.event_specific_data.passed for e in checks)
    with connect(cfg.duckdb_path, read_only=True) as con:
        posts = con.execute("select count(*) from stg_social__posts").fetchone()[0]
        rows = con.execute("select embedding is null, is_report, model_name, relevance, sentiment from ml.post_signals").fetchall()
        incidents = con.execute("select count(*) from ops.incidents where status = 'ready'").fetchone()[0]
    assert len(rows) == posts, "every post has its signals row"
    skipped = [r for r in rows if r[0]]
    assert skipped, "posts after the first 200 were prefiltered"
    assert all(not r[1] and r[2].startswith("prefilter/") and r[3] < 0.5 and r[4] is None for r in skipped)
    assert incidents >= 10
