"""The run summary names failed checks, tickets to act on and quarantined records; its exit rule."""

import json
from datetime import datetime, timedelta, timezone

import dagster as dg
import pytest

from social311.logs import counts, pairs
from social311.run_summary import RunSummary, summarise
from social311.warehouse import connect


def tiny_run(error_check_passes: bool, warn_check_passes: bool, step_fails: bool = False):
    @dg.asset(name="thing")
    def thing():
        if step_fails:
            raise RuntimeError("the source folder vanished\nsecond line of the traceback")
        return 1

    @dg.asset_check(asset=thing, name="wards_complete", description="every ward loaded")
    def must():
        return dg.AssetCheckResult(passed=error_check_passes, description="13 posts outside every ward")

    @dg.asset_check(asset=thing, name="few_quarantined")
    def nice():
        return dg.AssetCheckResult(passed=warn_check_passes, severity=dg.AssetCheckSeverity.WARN, description="9 quarantined")

    return dg.materialize([thing, must, nice], raise_on_error=False)


def warehouse(tmp_path, started, states=()):
    db = tmp_path / "city.duckdb"
    with connect(db) as con:
        for i, (state, error) in enumerate(states):
            con.execute("insert into ops.ticket_ledger (incident_id, marker, state, service_code, last_error, created_at, updated_at) "
                        "values (?, ?, ?, 'POTHOLE', ?, ?, ?)", [f"inc-{i}", f"m-{i}", state, error, started, started + timedelta(seconds=1)])
        con.execute("insert into quarantine.records values ('ingest', 'feed', 'line 3', 'not valid JSON', '{', ?, 'r1')",
                    [started + timedelta(seconds=1)])
        con.execute("insert into quarantine.records values ('ingest', 'feed', 'line 9', 'not valid JSON', '{', ?, 'r0')",
                    [started - timedelta(days=1)])  # an older run's: not this run's count
    return db


def test_clean_run_exits_0(tmp_path):
    started = datetime.now(timezone.utc)
    summary = summarise(tiny_run(True, True), warehouse(tmp_path, started), started)
    assert summary.exit_code == 0 and not summary.failed_checks and not summary.warned_checks
    assert summary.quarantined == {"ingest: not valid JSON": 1}
    assert "warning: 1 record(s) quarantined this run (1 ingest: not valid JSON)" in summary.text()


@pytest.mark.parametrize("error_ok,warn_ok,states,code,words", [
    (False, True, (), 1, "error: check failed: thing:wards_complete (13 posts outside every ward)"),
    (True, False, (), 0, "warning: check failed (severity WARN): thing:few_quarantined (9 quarantined)"),
    (True, True, [("held", "attribute SIZE: 'HUGE' is not one of S, M, L")], 1,
     "error: ticket not filed: inc-0 held: attribute SIZE: 'HUGE' is not one of S, M, L"),
    (True, True, [("failed", "HTTP 400: service_code unknown")], 1, "error: ticket not filed: inc-0 failed: HTTP 400"),
    (True, True, [("retry_wait", "HTTP 503")], 0, "warning: 1 ticket(s) waiting to retry"),
    (True, True, [("submitted", None)], 0, "Tickets filed this run: 0"),
], ids=["error check", "warn check", "held ticket", "failed ticket", "retry_wait", "submitted earlier"])
def test_exit_rule(tmp_path, error_ok, warn_ok, states, code, words):
    started = datetime.now(timezone.utc)
    summary = summarise(tiny_run(error_ok, warn_ok), warehouse(tmp_path, started, states), started)
    assert summary.exit_code == code
    assert words in summary.text()
    assert json.loads(summary.json())["exit_code"] == code


def test_a_failed_step_is_named_with_its_first_line(tmp_path):
    started = datetime.now(timezone.utc)
    summary = summarise(tiny_run(True, True, step_fails=True), tmp_path / "absent.duckdb", started)
    assert summary.exit_code == 1
    assert any(s.startswith("thing (") and "the source folder vanished" in s and "second line" not in s
               for s in summary.failed_steps), summary.failed_steps


def test_log_lines_carry_no_dict_reprs():
    assert counts({"retry_wait": 1, "submitted": 38}) == "38 submitted, 1 retry_wait"
    assert pairs({"prefilter": "on", "prefilter_skipped": 3}) == "prefilter=on, prefilter_skipped=3"
    assert counts({}) == "none"
    assert "{" not in RunSummary(run_id="r", success=True, quarantined={"ingest: x": 2}).text()
