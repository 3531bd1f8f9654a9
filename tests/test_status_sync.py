"""Status sync: merge rules (table-driven) and a sync pass against the real sandbox on loopback."""

import time
from datetime import datetime, timedelta, timezone

import pytest

from conftest import OPEN311_TEST_KEY

from social311.integrations.ticketing.ledger import TicketLedger, marker_for
from social311.integrations.ticketing.open311 import Open311Config, Open311Ticketing
from social311.integrations.ticketing.status import TicketStatus, apply_update, is_newer
from social311.orchestration.status import sync_status
from social311.records import ServiceRequest, TicketRequest
from social311.warehouse import connect

KEY = OPEN311_TEST_KEY
T0 = datetime(2026, 5, 1, 12, 0, tzinfo=timezone.utc)


def at(minutes):
    return T0 + timedelta(minutes=minutes)


def update(status="open", updated=0, notes=None, agency=None, requested=0):
    return ServiceRequest(service_request_id="240001", status=status, status_notes=notes, agency_responsible=agency,
                          requested_datetime=at(requested) if requested is not None else None,
                          updated_datetime=at(updated) if updated is not None else None)


@pytest.mark.parametrize(("updates", "status", "notes", "ack_min", "close_min"), [
    # fresh ticket: the creation stamp is not an acknowledgement
    ([update()], "open", None, None, None),
    # the city adds a note an hour later: acknowledged then
    ([update(), update(updated=60, notes="crew assigned")], "open", "crew assigned", 60, None),
    # closed two days later: both times recorded
    ([update(), update(updated=60, notes="crew assigned"), update("closed", 2880, "fixed")], "closed", "fixed", 60, 2880),
    # an older update arriving after a newer one never overwrites it, but its earlier ack counts
    ([update("closed", 2880, "fixed"), update(updated=60, notes="crew assigned")], "closed", "fixed", 60, 2880),
    # the same update twice changes nothing
    ([update("closed", 30, "fixed"), update("closed", 30, "fixed")], "closed", "fixed", 30, 30),
    # reopened after a close: no close time any more, the first acknowledgement stays
    ([update(), update("closed", 30, "fixed"), update("open", 90, "came back")], "open", "came back", 30, None),
    # an update without a stamp cannot be ordered: it does not replace a dated one
    ([update(updated=10, notes="seen"), update("closed", None, "?")], "open", "seen", 10, None),
])
def test_updates_merge_newest_wins(updates, status, notes, ack_min, close_min):
    current = None
    for u in updates:
        current = apply_update(current, u, incident_id="inc-1")
    assert (current.status, current.status_notes) == (status, notes)
    assert current.acknowledged_at == (at(ack_min) if ack_min is not None else None)
    assert current.closed_at == (at(close_min) if close_min is not None else None)
    assert current.time_to_acknowledge_s == (ack_min * 60 if ack_min is not None else None)
    assert current.time_to_close_s == (close_min * 60 if close_min is not None else None)


def test_agency_is_kept_when_a_later_update_omits_it():
    first = apply_update(None, update(agency="Streets and Sanitation"), incident_id="inc-1")
    later = apply_update(first, update("closed", 60, "fixed"), incident_id="inc-1")
    assert later.agency_responsible == "Streets and Sanitation"


def test_request_time_falls_back_on_the_filing_time():
    status = apply_update(None, update("closed", 120, requested=None), incident_id="inc-1", filed_at=at(0))
    assert status.time_to_close_s == 7200


@pytest.mark.parametrize(("current_at", "update_at", "newer"), [(None, 5, True), (5, 4, False), (5, 5, True), (5, 6, True)])
def test_is_newer(current_at, update_at, newer):
    current = None if current_at is None else TicketStatus("240001", "inc", "open", None, None, at(0), at(current_at))
    assert is_newer(update(updated=update_at), current) is newer


def file_tickets(con, plugin, n):
    ledger = TicketLedger(con)
    ids = {}
    for i in range(n):
        incident_id = f"inc-{i}"
        request = TicketRequest(service_code="STREETLIGHT", lat=41.88, lon=-87.63,
                                description=f"Light out.\n\n{marker_for(incident_id)}")
        ids[incident_id] = ledger.file(plugin, incident_id, request).service_request_id
    return ids


def rows(con):
    cur = con.execute("select * from ops.ticket_status order by service_request_id")
    names = [d[0] for d in cur.description]
    return {r[0]: dict(zip(names, r)) for r in cur.fetchall()}


def test_sync_looks_up_new_tickets_then_follows_the_change_feed(tmp_path, sandbox, plugin):
    with connect(tmp_path / "w.duckdb") as con:
        ids = file_tickets(con, plugin, 3)
        first = sync_status(con, plugin)
        assert first["looked_up"] == 3 and first["changed"] == 3
        assert {r["status"] for r in rows(con).values()} == {"open"}

        gets = sandbox.hits("GET", "requests")
        later = time.time() + 3600
        sandbox.set_status(ids["inc-0"], "open", "crew assigned", agency="Streets and Sanitation", at=later)
        sandbox.set_status(ids["inc-0"], "closed", "light replaced", at=later + 7200)
        second = sync_status(con, plugin)
        # one window query, no id lookups: every ticket was synced less than a day ago
        assert second["looked_up"] == 0 and sandbox.hits("GET", "requests") == gets + 1
        row = rows(con)[ids["inc-0"]]
        assert (row["status"], row["status_notes"], row["agency_responsible"]) == ("closed", "light replaced", "Streets and Sanitation")
        assert row["incident_id"] == "inc-0"
        assert row["time_to_close_s"] == pytest.approx(later + 7200 - row["requested_at"].timestamp(), abs=1)
        # the intermediate state was never seen: the close is the first touch
        assert row["acknowledged_at"] == row["closed_at"]
        notes = con.execute("select count(*) from ops.ticket_status_notes where service_request_id = ?", [ids["inc-0"]]).fetchone()[0]
        assert notes == 2  # the creation stamp and the close


def test_without_a_change_feed_open_tickets_are_looked_up_by_id(tmp_path, sandbox):
    plugin = Open311Ticketing(Open311Config(endpoint=sandbox.url, updated_after=False), instance_name="city", api_key=KEY)
    with connect(tmp_path / "w.duckdb") as con:
        ids = file_tickets(con, plugin, 60)  # more than one id batch
        sync_status(con, plugin)
        sandbox.set_status(ids["inc-59"], "closed", "done", at=time.time() + 60)
        again = sync_status(con, plugin)
        assert again["feed"] == -1 and again["looked_up"] == 60
        assert rows(con)[ids["inc-59"]]["status"] == "closed"
        third = sync_status(con, plugin)
        assert third["looked_up"] == 59  # closed tickets are not looked up again
