"""When a dbt layer is skipped: exactly when its inputs are those of its last clean build, within a day."""

from __future__ import annotations

import json

from social311.orchestration import dbt_layers
from social311.orchestration.transforms import PROJECT_DIR, ensure_manifest
from social311.warehouse import connect


def test_each_layer_reads_the_relations_its_models_and_tests_name():
    manifest = json.loads(ensure_manifest().read_text())
    assert dbt_layers.layer_inputs(manifest, "staging") == [("raw", "posts")]
    intermediate = dbt_layers.layer_inputs(manifest, "intermediate")
    assert {("ml", "post_signals"), ("ml", "post_types"), ("ml", "post_locations"), ("gis", "wards"),
            ("main", "stg_social__posts")} <= set(intermediate)
    assert not any(name.startswith("int_") for _, name in intermediate), "the layer's own tables are not inputs"


def test_the_key_changes_with_any_row_var_or_project_file_and_not_with_embeddings(tmp_path, monkeypatch):
    monkeypatch.delenv("SOCIAL311_FULL_CHECKS", raising=False)
    monkeypatch.delenv("SOCIAL311_DBT_FULL_REFRESH", raising=False)
    manifest = json.loads(ensure_manifest().read_text())
    with connect(tmp_path / "w.duckdb") as con:
        con.execute("insert into raw.posts (post_id, source, native_id, text, created_at, ingested_at) "
                    "values ('p1', 'drop', 'n1', 'pothole', now(), now())")
        key = lambda **v: dbt_layers.inputs_key(con, manifest, "staging", PROJECT_DIR, v)  # noqa: E731
        first = key()
        assert key() == first
        assert key(default_point_min_posts=9) != first, "a changed dbt var is a new key"
        con.execute("update raw.posts set text = 'pothole!' where post_id = 'p1'")
        edited = key()
        assert edited != first, "an edited post is a new key"
        assert dbt_layers.unchanged_since(con, "staging", edited) is None, "never built"
        dbt_layers.record_clean_build(con, "staging", edited)
        assert dbt_layers.unchanged_since(con, "staging", edited) is not None
        assert dbt_layers.unchanged_since(con, "staging", first) is None, "other inputs: build"
        assert dbt_layers.unchanged_since(con, "marts", edited) is None, "the marts read the clock: always built"
        con.execute("update ops.passed_validations set passed_at = now() - interval 25 hours")
        assert dbt_layers.unchanged_since(con, "staging", edited) is None, "built again once a day"
        dbt_layers.record_clean_build(con, "staging", edited)
        monkeypatch.setenv("SOCIAL311_FULL_CHECKS", "1")
        assert dbt_layers.unchanged_since(con, "staging", edited) is None, "an operator can force a build"
        monkeypatch.delenv("SOCIAL311_FULL_CHECKS")
        dbt_layers.forget_build(con, "staging")
        assert dbt_layers.unchanged_since(con, "staging", edited) is None, "a failed build is forgotten"
        # An embedding never changes alone, and hashing a million 384-float vectors would cost more than it saves.
        con.execute("insert into ml.post_signals (post_id, relevance, is_report, sentiment, embedding) "
                    "values ('p1', 0.9, true, 0.0, [0.5 for x in range(384)]::FLOAT[384])")
        before = dbt_layers.relation_fingerprint(con, "ml", "post_signals")
        con.execute("update ml.post_signals set embedding = [0.1 for x in range(384)]::FLOAT[384]")
        assert dbt_layers.relation_fingerprint(con, "ml", "post_signals") == before
        con.execute("update ml.post_signals set is_report = false")
        assert dbt_layers.relation_fingerprint(con, "ml", "post_signals") != before


def test_a_project_file_change_is_a_new_key(tmp_path):
    project = tmp_path / "project"
    (project / "models").mkdir(parents=True)
    (project / "models" / "m.sql").write_text("select 1")
    first = dbt_layers.project_digest(project)
    (project / "models" / "m.sql").write_text("select 2")
    second = dbt_layers.project_digest(project)
    assert second != first
    (project / "target").mkdir()
    (project / "target" / "run.sql").write_text("select 3")  # dbt's own output is not the project
    assert dbt_layers.project_digest(project) == second
