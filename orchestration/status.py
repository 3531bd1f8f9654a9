"""Status sync: what the city did with each filed ticket (``ops.ticket_status``), on a schedule.

Two reads per run keep it cheap on a city's endpoint: an updated-since window (``updated_after``)
catches every ticket the city touched since the last sync, and batched id lookups cover tickets
never synced yet, and every open ticket once a day, or on every run where the server has no
change feed. The merge rules live in :mod:`social311.integrations.ticketing.status`.
"""

from collections.abc import Callable
from datetime import datetime, timedelta, timezone

import dagster as dg
import duckdb

from social311.integrations.ticketing.base import TicketingPlugin
from social311.integrations.ticketing.status import TicketStatus, apply_update
from social311.orchestration.quality import sql_check
from social311.orchestration.resources import CityResource
from social311.records import ServiceRequest
from social311.warehouse import connect, insert_many
from social311.logs import pairs as log_pairs

TICKET_LEDGER = dg.AssetKey(["ops", "ticket_ledger"])
TICKET_STATUS = dg.AssetKey(["ops", "ticket_status"])
#: The window starts this much before the newest update seen: server clocks and commits lag.
WINDOW_OVERLAP = timedelta(minutes=10)
#: Open tickets are looked up by id at least this often, in case the change feed missed one.
FULL_REFRESH = timedelta(hours=24)

_FIELDS = ("service_request_id", "incident_id", "status", "status_notes", "agency_responsible", "requested_at",
           "updated_at", "acknowledged_at", "closed_at")


def _load(con: duckdb.DuckDBPyConnection) -> dict[str, tuple[TicketStatus, datetime]]:
    rows = con.execute(f"select {', '.join(_FIELDS)}, synced_at from ops.ticket_status").fetchall()
    return {r[0]: (TicketStatus(*r[:-1]), r[-1]) for r in rows}


def sync_status(con: duckdb.DuckDBPyConnection, plugin: TicketingPlugin, *,
                clock: Callable[[], datetime] = lambda: datetime.now(timezone.utc)) -> dict[str, int]:
    """One sync pass over every ticket in the ledger that has an id; returns counts for metadata."""
    now = clock()
    filed = {r[0]: (r[1], r[2]) for r in con.execute(
        "select service_request_id, incident_id, filed_at from ops.ticket_ledger "
        "where service_request_id is not null and state in ('submitted', 'linked')").fetchall()}
    known = _load(con)
    newest = max((s.updated_at for s, _ in known.values() if s.updated_at), default=None)
    feed = plugin.updates_since(newest - WINDOW_OVERLAP) if newest is not None else None
    updates: list[ServiceRequest] = [u for u in (feed or []) if u.service_request_id in filed]
    lookup = [i for i in filed if i not in known or (known[i][0].status != "closed"
              and (feed is None or now - known[i][1] >= FULL_REFRESH))]
    updates.extend(plugin.get(lookup) if lookup else [])
    changed: dict[str, TicketStatus] = {}
    notes = []
    for update in updates:
        rid = update.service_request_id
        incident_id, filed_at = filed[rid]
        current = changed.get(rid) or (known[rid][0] if rid in known else None)
        after = apply_update(current, update, incident_id=incident_id, filed_at=filed_at)
        if after != current:
            changed[rid] = after
        if update.updated_datetime is not None:
            notes.append((rid, update.updated_datetime, update.status, update.status_notes,
                          update.agency_responsible, now))
    touched = set(changed) | {u.service_request_id for u in updates}
    con.execute("begin transaction")
    insert_many(con, "insert into ops.ticket_status_notes values (?, ?, ?, ?, ?, ?) on conflict do nothing", notes)
    insert_many(con, """
        insert into ops.ticket_status values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
        on conflict (service_request_id) do update set
            incident_id = excluded.incident_id, status = excluded.status, status_notes = excluded.status_notes,
            agency_responsible = excluded.agency_responsible, requested_at = excluded.requested_at,
            updated_at = excluded.updated_at, acknowledged_at = excluded.acknowledged_at,
            closed_at = excluded.closed_at, time_to_acknowledge_s = excluded.time_to_acknowledge_s,
            time_to_close_s = excluded.time_to_close_s, synced_at = excluded.synced_at""",
        [(*(getattr(s, f) for f in _FIELDS), s.time_to_acknowledge_s, s.time_to_close_s, now) for s in changed.values()])
    # Tickets seen unchanged are still marked synced, so the daily id sweep skips them.
    unchanged = [(now, i) for i in touched - set(changed) if i in known]
    insert_many(con, "update ops.ticket_status set synced_at = ? where service_request_id = ?", unchanged)
    con.execute("commit")
    return {"tickets": len(filed), "looked_up": len(lookup), "feed": -1 if feed is None else len(feed),
            "changed": len(changed)}


@dg.asset(key=TICKET_STATUS, deps=[TICKET_LEDGER], group_name="ticketing", compute_kind="open311")
def ticket_status(context: dg.AssetExecutionContext, city: CityResource) -> dg.MaterializeResult:
    """Status, notes, agency and response times of every filed ticket, synced from the 311 system."""
    cfg = city.load()
    if not cfg.filing_enabled:
        return dg.MaterializeResult(metadata={"skipped": "filing disabled: no ticket to sync"})
    plugin = city.ticketing()
    with connect(cfg.duckdb_path) as con:
        counts = sync_status(con, plugin)
        states = dict(con.execute("select status, count(*) from ops.ticket_status group by 1").fetchall())
    context.log.info(f"ticket status sync: {log_pairs(counts)}")
    return dg.MaterializeResult(metadata={**counts, **{f"status_{k}": v for k, v in states.items()}})


#: Status only: no post is read and nothing is filed, so it may run more often than the pipeline.
status_job = dg.define_asset_job("ticket_status_sync", selection=dg.AssetSelection.assets(TICKET_STATUS),
                                 description="Sync the status of filed tickets from the city's 311 system.")
status_schedule = dg.ScheduleDefinition(job=status_job, cron_schedule="*/30 * * * *",
                                        default_status=dg.DefaultScheduleStatus.STOPPED)


def defs() -> dg.Definitions:
    return dg.Definitions(
        assets=[ticket_status],
        jobs=[status_job],
        schedules=[status_schedule],
        asset_checks=[
            sql_check(asset=TICKET_STATUS, name="closed_tickets_have_a_close_time",
                      description="Every closed ticket has closed_at and a non-negative time to close.",
                      query="select service_request_id from ops.ticket_status where status = 'closed' "
                            "and (closed_at is null or time_to_close_s < 0)"),
            sql_check(asset=TICKET_STATUS, name="status_rows_belong_to_filed_tickets",
                      description="Every synced ticket is one the ledger filed.",
                      query="select s.service_request_id from ops.ticket_status s left join ops.ticket_ledger l "
                            "using (service_request_id) where l.incident_id is null"),
        ],
    )
