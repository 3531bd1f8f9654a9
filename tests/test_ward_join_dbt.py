"""The ward join's dbt unit tests and data tests, run by real dbt on a fresh DuckDB file.

The unit tests (transforms/models/intermediate/_intermediate.yml) pin the rules: interior point,
shared edge to the lowest id, outside flagged, the boundaries in force on the post's date, and
default coordinates caught. ``dbt build`` runs them before the model, then the data tests.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from social311.orchestration.transforms import PROJECT_DIR, dbt_env, dbt_executable
from social311.warehouse import connect


def test_ward_join_unit_and_data_tests_pass(tmp_path: Path) -> None:
    db = tmp_path / "w.duckdb"
    with connect(db):
        pass  # the Python-written source tables, empty
    result = subprocess.run(
        [dbt_executable(), "build", "--select", "+int_posts_in_wards", "+int_default_points", "--project-dir", str(PROJECT_DIR),
         "--profiles-dir", str(PROJECT_DIR), "--target-path", str(tmp_path / "target"), "--log-path", str(tmp_path / "logs")],
        env={**os.environ, **dbt_env(db)}, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stdout[-4000:]
    for name in ("ward_join_places_points_and_flags_outside", "ward_join_uses_the_boundaries_in_force_on_the_post_date",
                 "ward_join_catches_default_coordinates", "default_point_posts_have_low_confidence",
                 "default_points_keep_a_busy_real_address_and_flag_city_hall"):
        assert name in result.stdout, name
    assert "ERROR=0" in result.stdout  # dbt counts failed tests as errors


def _build_incidents_mart(tmp_path: Path, states: tuple[str, str]) -> subprocess.CompletedProcess:
    """``dbt build`` of fct_incidents over two incidents whose ledger rows carry one request id."""
    db = tmp_path / f"{'-'.join(states)}.duckdb"
    with connect(db) as con:
        for k, state in enumerate(states):
            con.execute("insert into ops.incidents (incident_id, service_code, post_count, confidence, status) "
                        "values (?, 'POT-01', 1, 0.9, 'ready')", [f"inc-{k}"])
            con.execute("insert into ops.ticket_ledger (incident_id, marker, state, service_code, service_request_id, "
                        "created_at, updated_at) values (?, ?, ?, 'POT-01', '72355', now(), now())",
                        [f"inc-{k}", f"[social311 ref inc-{k}]", state])
    return subprocess.run(
        [dbt_executable(), "build", "--select", "fct_incidents", "--project-dir", str(PROJECT_DIR),
         "--profiles-dir", str(PROJECT_DIR), "--target-path", str(tmp_path / "target"), "--log-path", str(tmp_path / "logs")],
        env={**os.environ, **dbt_env(db)}, capture_output=True, text=True, timeout=300,
    )


def test_incidents_linked_to_one_open_request_may_share_its_id_but_filed_ones_may_not(tmp_path: Path) -> None:
    linked = _build_incidents_mart(tmp_path, ("linked", "linked"))
    assert linked.returncode == 0 and "ERROR=0" in linked.stdout, linked.stdout[-3000:]
    filed = _build_incidents_mart(tmp_path, ("submitted", "linked"))
    assert filed.returncode == 0, "one filed and one linked to the same request: allowed"
    twice = _build_incidents_mart(tmp_path, ("submitted", "submitted"))
    assert twice.returncode != 0 and "unique_fct_incidents_service_request_id" in twice.stdout, twice.stdout[-3000:]


def test_the_production_build_runs_the_data_tests_but_not_the_unit_tests(tmp_path: Path) -> None:
    from social311.orchestration.transforms import PRODUCTION_BUILD

    db = tmp_path / "w.duckdb"
    with connect(db):
        pass
    result = subprocess.run(
        [dbt_executable(), *PRODUCTION_BUILD, "--select", "+int_posts_in_wards", "--project-dir", str(PROJECT_DIR),
         "--profiles-dir", str(PROJECT_DIR), "--target-path", str(tmp_path / "target"), "--log-path", str(tmp_path / "logs")],
        env={**os.environ, **dbt_env(db)}, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stdout[-4000:]
    assert "default_point_posts_have_low_confidence" in result.stdout  # a data test: about this run's rows
    assert "ward_join_catches_default_coordinates" not in result.stdout  # a unit test: make test runs it
