"""Exactly-once filing through the ledger, against the real sandbox over loopback with faults."""

import json
from datetime import datetime, timedelta, timezone

import pytest

from conftest import OPEN311_TEST_KEY

from social311.integrations.ticketing.ledger import TicketLedger, marker_for
from social311.records import TicketRequest
from social311.warehouse import connect

KEY = OPEN311_TEST_KEY


class Clock:
    """A clock the test moves by hand, to step through backoff."""

    def __init__(self):
        self.now = datetime.now(timezone.utc)

    def __call__(self):
        return self.now


@pytest.fixture
def ledger(tmp_path):
    clock = Clock()
    with connect(tmp_path / "w.duckdb") as con:
        yield TicketLedger(con, clock=clock), clock


def request_for(incident_id, service_code="STREETLIGHT"):
    return TicketRequest(service_code=service_code, lat=41.88, lon=-87.63,
                         description=f"Street light out at State and Madison.\n\n{marker_for(incident_id)}")


def test_files_once_and_a_second_call_does_not_post_again(sandbox, plugin, ledger):
    led, _ = ledger
    first = led.file(plugin, "inc-a", request_for("inc-a"))
    again = led.file(plugin, "inc-a", request_for("inc-a"))
    assert first.state == "submitted" and first.service_request_id
    assert again.service_request_id == first.service_request_id
    assert sandbox.requests_filed() == 1


def test_a_lost_reply_is_reconciled_by_marker_without_a_second_post(sandbox, plugin, ledger):
    led, _ = ledger
    sandbox.faults.lose_next_post_replies = 1
    outcome = led.file(plugin, "inc-b", request_for("inc-b"))
    assert outcome.state == "submitted", outcome
    assert sandbox.requests_filed(description_contains=marker_for("inc-b")) == 1
    assert led.row("inc-b")["service_request_id"] == outcome.service_request_id


def test_an_ambiguous_failure_that_did_not_commit_is_retried_after_reconciling(sandbox, plugin, ledger):
    led, clock = ledger
    sandbox.faults.fail_next_5xx = 1
    outcome = led.file(plugin, "inc-c", request_for("inc-c"))
    assert outcome.state == "pending" and "503" in outcome.error
    assert sandbox.requests_filed() == 0
    assert led.due(["inc-c"]) == [], "a pending ticket waits its backoff like any retry"
    clock.now += timedelta(minutes=6)
    assert "inc-c" in led.due(["inc-c"])
    retried = led.file(plugin, "inc-c", request_for("inc-c"))
    assert retried.state == "submitted"
    assert sandbox.requests_filed() == 1


def test_a_crash_after_the_post_but_before_recording_the_id_files_nothing_new(sandbox, plugin, ledger):
    led, _ = ledger
    # The process wrote its intent and POSTed, then died before recording the reply.
    led._upsert("inc-d", request_for("inc-d"), state="pending", attempts=1)
    plugin.submit(request_for("inc-d"))
    outcome = led.file(plugin, "inc-d", request_for("inc-d"))
    assert outcome.state == "submitted"
    assert sandbox.requests_filed() == 1


def test_no_second_post_while_the_server_cannot_be_searched(sandbox, plugin, ledger):
    # Found by the 1,000-incident fault drill: a reply lost after commit, then every search
    # for the marker failing, used to end in a second POST and a duplicate ticket.
    led, _ = ledger
    sandbox.faults.lose_next_post_replies = 1
    sandbox.faults.reset_next_replies = 2  # the reconcile right after the POST, and the next one
    assert led.file(plugin, "inc-e", request_for("inc-e")).state == "pending"
    again = led.file(plugin, "inc-e", request_for("inc-e"))
    assert again.state == "pending" and again.error.startswith("reconcile failed")
    assert sandbox.hits("POST", "requests") == 1
    assert led.file(plugin, "inc-e", request_for("inc-e")).state == "submitted"  # the server answers again
    assert sandbox.requests_filed() == 1


def test_a_definite_rejection_backs_off_then_fails_with_the_servers_words(sandbox, plugin, ledger):
    led, clock = ledger
    bad = request_for("inc-e", service_code="NO_SUCH_SERVICE")
    assert led.file(plugin, "inc-e", bad).state == "retry_wait"
    assert led.due(["inc-e"]) == [], "waits 5 minutes before the next attempt"
    clock.now += timedelta(minutes=6)
    assert led.due(["inc-e"]) == ["inc-e"]
    assert led.file(plugin, "inc-e", bad).state == "retry_wait"
    clock.now += timedelta(minutes=6)
    assert led.due(["inc-e"]) == [], "then every 30 minutes"
    clock.now += timedelta(minutes=30)
    final = led.file(plugin, "inc-e", bad)
    assert final.state == "failed"
    row = led.row("inc-e")
    assert row["attempts"] == 3 and "404" in row["last_error"] and "NO_SUCH_SERVICE" in row["last_error"]
    assert sandbox.requests_filed() == 0


def test_a_failed_ticket_is_requeued_after_its_cause_is_fixed(sandbox, plugin, ledger):
    led, _ = ledger
    fixed = request_for("inc-r")
    led = TicketLedger(led.con, max_attempts=1, clock=led.clock)
    assert led.file(plugin, "inc-r", request_for("inc-r", service_code="OLD_CODE")).state == "failed"
    assert led.due(["inc-r"]) == []
    assert led.requeue("inc-r") and led.due(["inc-r"]) == ["inc-r"]
    assert led.file(plugin, "inc-r", fixed).state == "submitted"
    assert not led.requeue("inc-r"), "a filed ticket is never requeued"


def test_rate_limits_wait_as_told_and_cost_no_attempt(sandbox, plugin, ledger):
    led, clock = ledger
    sandbox.faults.next_429, sandbox.faults.retry_after_s = 1, 120
    outcome = led.file(plugin, "inc-q", request_for("inc-q"))
    assert outcome.state == "retry_wait" and "429" in outcome.error
    row = led.row("inc-q")
    assert row["attempts"] == 0 and row["next_attempt_at"] == clock.now + timedelta(seconds=120)


def test_batch_services_record_the_token_then_the_id(sandbox, plugin, ledger):
    led, _ = ledger
    sandbox.set_service_type("STREETLIGHT", "batch")
    assert led.file(plugin, "inc-f", request_for("inc-f")).state == "awaiting_token"
    resolved = 0
    for _ in range(5):
        resolved += led.resolve_tokens(plugin)
        if resolved:
            break
    assert resolved == 1
    assert led.row("inc-f")["state"] == "submitted" and led.row("inc-f")["service_request_id"]


def test_a_request_without_its_marker_is_refused_before_any_post(sandbox, plugin, ledger):
    led, _ = ledger
    with pytest.raises(ValueError, match="marker"):
        led.file(plugin, "inc-g", TicketRequest(service_code="STREETLIGHT", lat=41.88, lon=-87.63, description="no marker"))
    assert sandbox.requests_filed() == 0


def test_cli_lists_stuck_tickets_and_requeues_a_failed_one(tmp_path, capsys):
    from social311.cli import main

    city = tmp_path / "city.yaml"
    city.write_text("city: T\nduckdb_path: w.duckdb\nsources: [{plugin: file_drop, config: {drop_dir: drop}}]\n"
                    "gis: {plugin: geojson}\nticketing: {plugin: open311}\n")
    with connect(tmp_path / "w.duckdb") as con:
        TicketLedger(con, max_attempts=1).hold("inc-h", request_for("inc-h"), "attributes: SIZE is required")
        con.execute("update ops.ticket_ledger set state = 'failed' where incident_id = 'inc-h'")
    assert main(["tickets", "--config", str(city), "--stuck"]) == 0
    assert "inc-h  failed" in capsys.readouterr().out
    assert main(["tickets", "--config", str(city), "--retry", "inc-h", "--retry", "inc-none"]) == 0
    out = capsys.readouterr().out
    assert "inc-h: requeued" in out and "inc-none: not failed" in out


def test_drafting_many_writes_one_dry_run_row_per_incident(tmp_path):
    clock = Clock()
    with connect(tmp_path / "w.duckdb") as con:
        led = TicketLedger(con, clock=clock)
        ids = [f"inc-{k}" for k in range(30)]
        led.hold("inc-3", request_for("inc-3"), "attributes: x")
        assert led.draft_many([(i, request_for(i, "POTHOLE")) for i in ids]) == 30
        rows = con.execute("select incident_id, marker, state, service_code, attempts, request_json, "
                           "service_request_id, token from ops.ticket_ledger order by incident_id").fetchall()
        assert [r[0] for r in rows] == sorted(ids)
        for incident_id, marker, state, code, attempts, request_json, request_id, token in rows:
            assert (marker, state, code, attempts, request_id, token) == (
                marker_for(incident_id), "dry_run", "POTHOLE", 0, None, None)
            assert json.loads(request_json) == request_for(incident_id, "POTHOLE").model_dump(mode="json")
        assert led.row("inc-3")["state"] == "dry_run", "a held incident becomes a draft once it is valid"
        assert led.due(ids) == ids, "drafts are looked at again when filing is turned on"
        led.draft("inc-0", request_for("inc-0", "GRAFFITI"))
        assert led.row("inc-0")["service_code"] == "GRAFFITI", "a later draft replaces an earlier one"


def test_drafting_never_overwrites_a_ticket_that_may_be_on_the_server(sandbox, plugin, ledger):
    led, _ = ledger
    led.file(plugin, "inc-sent", request_for("inc-sent"))
    with pytest.raises(ValueError, match="only unsent"):
        led.draft_many([("inc-new", request_for("inc-new")), ("inc-sent", request_for("inc-sent"))])
    assert led.row("inc-sent")["state"] == "submitted" and led.row("inc-new") is None
    assert led.draft_many([]) == 0


def test_turning_filing_off_keeps_a_ticket_that_may_be_on_the_server_for_its_marker_search(tmp_path, sandbox, plugin):
    """Filing on, an ambiguous POST (pending); filing off for a run; on again: found by marker, no second POST."""
    import dagster as dg

    from social311.orchestration.resources import CityResource
    from social311.orchestration.ticketing import ticket_ledger

    db = tmp_path / "w.duckdb"
    with connect(db) as con:
        sandbox.faults.reset_next_replies = 2  # the POST's reply and the reconcile right after it
        assert TicketLedger(con).file(plugin, "inc-sent", request_for("inc-sent")).state == "pending"
        now = datetime.now(timezone.utc)
        # Its backoff is over: the dry run below meets it as a due ticket.
        con.execute("update ops.ticket_ledger set next_attempt_at = ?", [now - timedelta(seconds=1)])
        con.executemany(
            "insert into ops.incidents (incident_id, service_code, ward_id, lat, lon, first_seen_at, last_seen_at, "
            "post_count, representative_text, confidence, status) values (?, 'STREETLIGHT', '1', 41.88, -87.63, ?, ?, 1, "
            "'Street light out at State and Madison.', 0.9, 'ready')",
            [["inc-sent", now, now], ["inc-new", now, now]])
    config = tmp_path / "city.yaml"
    config.write_text(f"city: Test\nduckdb_path: {db}\nsources: [{{plugin: file_drop}}]\ngis: {{plugin: geojson}}\n"
                      f"ticketing: {{plugin: open311, config: {{endpoint: '{sandbox.url}'}}}}\n")  # filing_enabled: false
    result = dg.materialize([ticket_ledger], resources={"city": CityResource(config_path=str(config))})
    assert result.success
    metadata = result.asset_materializations_for_node("ops__ticket_ledger")[0].metadata
    assert metadata["this_run_dry_run"].value == 1 and metadata["this_run_kept_pending"].value == 1
    with connect(db) as con:
        led = TicketLedger(con)
        assert led.states(["inc-sent", "inc-new"]) == {"inc-sent": "pending", "inc-new": "dry_run"}
        outcome = led.file(plugin, "inc-sent", request_for("inc-sent"))
    assert outcome.state == "submitted" and outcome.service_request_id
    assert sandbox.hits("POST", "requests") == 1 and sandbox.requests_filed() == 1
