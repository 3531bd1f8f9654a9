"""The embedding step's text cache: a text already embedded (by the same model) is not embedded again.

Real DuckDB file with the warehouse's tables; ``stg_social__posts`` (a dbt view over raw posts)
is a table here with the two columns the lookup reads.
"""

from __future__ import annotations

from datetime import datetime, timezone

import numpy as np

from social311.orchestration.ml import stored_embeddings
from social311.warehouse import connect

NOW = datetime(2026, 5, 4, tzinfo=timezone.utc)


def _vector(seed: int) -> np.ndarray:
    v = np.random.default_rng(seed).normal(size=384).astype(np.float32)
    return v / np.linalg.norm(v)


def test_stored_vectors_come_back_by_exact_text_and_model_only(tmp_path):
    with connect(tmp_path / "w.duckdb") as con:
        con.execute("create table stg_social__posts (post_id varchar, post_text varchar)")
        rows = [("p1", "Pothole on Main St", _vector(1), "model-a"),
                ("p2", "Pothole on Main St", _vector(1), "model-a"),  # a repost: the same text twice
                ("p3", "Streetlight out", _vector(3), "model-b"),  # another model's vector: not reusable
                ("p4", "Tree down", None, "prefilter")]  # skipped by the prefilter: no vector
        for pid, text, vector, model in rows:
            con.execute("insert into stg_social__posts values (?, ?)", [pid, text])
            con.execute("insert into ml.post_signals values (?, 0.5, false, 0, 'en', ?, ?, ?)",
                        [pid, None if vector is None else vector.tolist(), model, NOW])
        got = stored_embeddings(con, ["Pothole on Main St", "pothole on main st", "Streetlight out", "Tree down",
                                      "Pothole on Main St"], "model-a")
    assert set(got) == {"Pothole on Main St"}  # exact text, same model, with a vector
    np.testing.assert_allclose(got["Pothole on Main St"], _vector(1), rtol=1e-6)


def test_no_texts_no_query(tmp_path):
    with connect(tmp_path / "w.duckdb") as con:
        assert stored_embeddings(con, [], "model-a") == {}  # no stg view needed for nothing
