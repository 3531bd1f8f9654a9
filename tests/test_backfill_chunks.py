"""A backfill scored in chunks stores what one pass stores (orchestration/ml.py ``post_signals``).

Real DuckDB file, the real all-MiniLM-L6-v2 (onnx-fp32: its vector of a text does not move with
the batch, so rows compare across chunkings) and real Dagster materialisations, as in
tests/test_language_review.py. The posts are the demo city's generated stream (402 posts, 138
repeated texts: reposts and templates) plus two Spanish posts for language review.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import dagster as dg
import numpy as np
import pytest
import yaml

from social311.config import ConfigError, load_config
from social311.orchestration.ml import post_signals
from social311.orchestration.resources import CityResource
from social311.warehouse import connect

SPANISH = ["Hay un bache enorme en la calle Mayor desde hace semanas, nadie lo arregla",
           "Qué buena la cena de anoche con mis amigos, la paella estaba riquísima"]


def _posts() -> list[tuple[str, str, str | None]]:
    from social311.demo.generate import generate_demo

    posts, _ = generate_demo(seed=3, n_incidents=60)
    rows = [(p["id"], p["text"], p.get("lang")) for p in posts]
    return rows[:150] + [("es-1", SPANISH[0], None)] + rows[150:300] + [("es-2", SPANISH[1], None)] + rows[300:]


def _run(folder, *, chunk: int, prefilter: bool):
    """post_signals over the whole stream with ``chunk`` posts a chunk: (rows by post id, review rows, metadata)."""
    folder.mkdir()
    db = folder / "w.duckdb"
    config = {"city": "Test", "duckdb_path": str(db), "embedding_backend": "onnx-fp32",
              "sources": [{"plugin": "file_drop"}], "gis": {"plugin": "geojson"},
              "ticketing": {"plugin": "open311", "config": {"endpoint": "http://127.0.0.1:9/"}},
              "memory": {"scoring_chunk_posts": chunk}}
    if prefilter:
        config["prefilter"] = {"enabled": True, "min_training_posts": 200}
    (folder / "city.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    start = datetime(2026, 5, 4, tzinfo=timezone.utc)
    with connect(db) as con:
        con.execute("create table stg_social__posts (post_id varchar, post_text varchar, lang varchar, ingested_at timestamptz)")
        con.executemany("insert into stg_social__posts values (?, ?, ?, ?)",
                        [(pid, text, lang, start + timedelta(seconds=k)) for k, (pid, text, lang) in enumerate(_posts())])
        con.execute("insert into ops.service_catalog (service_code, service_name, description) values "
                    "('POT', 'Pothole in Street', 'a hole in the road surface'), "
                    "('SL', 'Streetlight Out', 'a street light that does not work')")
    result = dg.materialize([post_signals], resources={"city": CityResource(config_path=str(folder / "city.yaml"))})
    assert result.success
    meta = {k: v.value for k, v in result.asset_materializations_for_node("ml__post_signals")[0].metadata.items()}
    with connect(db, read_only=True) as con:
        rows = {r[0]: r[1:] for r in con.execute(
            "select post_id, relevance, is_report, sentiment, model_name, embedding from ml.post_signals").fetchall()}
        review = con.execute("select post_id, lang from ml.language_review order by post_id").fetchall()
    return rows, review, meta


def _assert_same(one, many):
    assert set(many) == set(one) and len(one) == len(_posts())
    for pid, (relevance, is_report, mood, model, vector) in one.items():
        relevance2, is_report2, mood2, model2, vector2 = many[pid]
        assert (is_report2, model2) == (is_report, model), pid
        assert relevance2 == pytest.approx(relevance, abs=1e-4), pid
        assert (mood2 is None) == (mood is None) and (mood is None or mood2 == pytest.approx(mood)), pid
        assert (vector2 is None) == (vector is None), pid
        if vector is not None:
            a, b = np.asarray(vector), np.asarray(vector2)
            assert float(a @ b / np.linalg.norm(a) / np.linalg.norm(b)) > 0.9999, pid


def test_chunks_store_the_rows_one_pass_stores(tmp_path):
    one, review, meta = _run(tmp_path / "one", chunk=20000, prefilter=False)
    many, review_many, meta_many = _run(tmp_path / "many", chunk=70, prefilter=False)
    assert (meta["chunks"], meta_many["chunks"]) == (1, 6)
    _assert_same(one, many)
    assert review == review_many and ("es-2", "es") in review  # language routing per chunk, same posts
    # A repeated text is embedded once: in one pass within the run, in chunks from an earlier
    # chunk's stored vector; either way the same number of copies.
    assert meta["embeddings_reused"] == meta_many["embeddings_reused"] >= 100
    for key in ("embedded", "reports", "language_review", "mean_relevance"):
        assert meta_many[key] == pytest.approx(meta[key]), key
    assert set(meta_many["seconds"]) >= {"load_and_train", "embedding", "language", "sentiment", "write"}


def test_the_prefilter_trains_on_the_first_posts_across_chunks_and_skips_the_same_posts(tmp_path):
    # The 200 posts it trains on span three chunks of 70; it then skips in the rest of the third and later.
    one, _, meta = _run(tmp_path / "one", chunk=20000, prefilter=True)
    many, _, meta_many = _run(tmp_path / "many", chunk=70, prefilter=True)
    assert meta["prefilter"] == meta_many["prefilter"] == "on"
    assert meta_many["prefilter_trained_on"] == meta["prefilter_trained_on"]
    assert meta_many["prefilter_skipped"] == meta["prefilter_skipped"] > 0
    _assert_same(one, many)
    skipped = [pid for pid, row in many.items() if row[3].startswith("prefilter/")]
    order = [pid for pid, _, _ in _posts()]
    assert min(order.index(pid) for pid in skipped) >= 200, "the first 200 posts are embedded in full"


def test_the_city_sets_duckdbs_memory_limit_for_its_connections_and_dbt(tmp_path):
    from social311.orchestration.transforms import dbt_env

    db = tmp_path / "w.duckdb"
    base = {"city": "Test", "duckdb_path": str(db), "sources": [{"plugin": "file_drop"}], "gis": {"plugin": "geojson"},
            "ticketing": {"plugin": "open311", "config": {"endpoint": "http://127.0.0.1:9/"}}}
    path = tmp_path / "city.yaml"
    path.write_text(yaml.safe_dump({**base, "memory": {"duckdb_memory_limit": "512MiB"}}), encoding="utf-8")
    cfg = load_config(path)
    with connect(cfg.duckdb_path) as con:
        assert con.execute("select current_setting('memory_limit')").fetchone()[0] == "512.0 MiB"
    assert dbt_env(cfg.duckdb_path)["SOCIAL311_DUCKDB_MEMORY_LIMIT"] == "512MiB"
    with connect(tmp_path / "other.duckdb") as con:  # a warehouse no city config named: the default
        assert con.execute("select current_setting('memory_limit')").fetchone()[0] == "1.0 GiB"
    path.write_text(yaml.safe_dump({**base, "memory": {"duckdb_memory_limit": "lots"}}), encoding="utf-8")
    with pytest.raises(ConfigError, match="duckdb_memory_limit"):
        load_config(path)


def test_post_locations_in_chunks_locates_every_post_as_one_pass_does(tmp_path):
    from social311.orchestration.ml import post_locations

    posts = [(f"p{k}", 52.37 + k / 1000 if k % 3 == 0 else None, 4.89 if k % 3 == 0 else None, f"post number {k}",
              *((4.8, 52.3, 4.9, 52.4) if k % 3 == 1 else (None,) * 4)) for k in range(11)]
    located = {}
    for chunk in (20000, 3):
        folder = tmp_path / str(chunk)
        folder.mkdir()
        db = folder / "w.duckdb"
        (folder / "city.yaml").write_text(yaml.safe_dump(
            {"city": "Test", "duckdb_path": str(db), "sources": [{"plugin": "file_drop"}], "gis": {"plugin": "geojson"},
             "ticketing": {"plugin": "open311", "config": {"endpoint": "http://127.0.0.1:9/"}},
             "memory": {"scoring_chunk_posts": chunk}}), encoding="utf-8")
        with connect(db) as con:
            con.execute("create table stg_social__posts (post_id varchar, lat double, lon double, post_text varchar, "
                        "place_min_lon double, place_min_lat double, place_max_lon double, place_max_lat double)")
            con.executemany("insert into stg_social__posts values (?, ?, ?, ?, ?, ?, ?, ?)", posts)
        result = dg.materialize([post_locations], resources={"city": CityResource(config_path=str(folder / "city.yaml"))})
        assert result.success
        assert result.asset_materializations_for_node("ml__post_locations")[0].metadata["located"].value == len(posts)
        with connect(db, read_only=True) as con:
            located[chunk] = con.execute("select post_id, lat, lon, method from ml.post_locations order by post_id").fetchall()
    assert located[3] == located[20000] and len(located[3]) == len(posts)
    assert {m for *_, m in located[3]} >= {"geotag", "place_bbox"}
