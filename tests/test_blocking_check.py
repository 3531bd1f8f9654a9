"""A failing blocking check on incidents stops ticket filing in the same run."""

import pytest

import social311.orchestration.incidents as incidents_module
from social311.cli import run_pipeline
from social311.config import load_config
from social311.demo.runner import prepare_demo
from social311.integrations import registry
from social311.integrations.ticketing.ledger import MARKER_PREFIX
from social311.warehouse import connect

pytestmark = pytest.mark.slow


def test_a_privacy_bug_upstream_blocks_filing(tmp_path, monkeypatch):
    # Simulate a regression: representative texts are no longer masked, so handles would leak
    # into tickets. The blocking GX suite on ops/incidents must catch it before any POST.
    monkeypatch.setattr(incidents_module, "mask_personal_data", lambda text: text)
    with prepare_demo(tmp_path) as config_path:
        cfg = load_config(config_path)
        result, _ = run_pipeline(config_path, dagster_home=tmp_path / "dagster_home")
        # The demo sandbox also holds the city's 311 history: only tickets with social311's marker count.
        on_server = [r for r in registry.build("ticketing", cfg.ticketing, api_key=None).find()
                     if MARKER_PREFIX in (r.description or "")]
    with connect(cfg.duckdb_path) as con:
        leaking = con.execute("select count(*) from ops.incidents where status = 'ready' and representative_text like '%@%'").fetchone()[0]
        ledger_rows = con.execute("select count(*) from ops.ticket_ledger").fetchone()[0]
    assert leaking > 0, "precondition: the simulated bug leaves handles in ready incidents"
    evaluations = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
    assert evaluations["ready_incidents_expectations"] is False
    assert ledger_rows == 0
    assert on_server == []
    materialized = {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}
    assert "ops/incidents" in materialized and "ops/ticket_ledger" not in materialized
