"""Ticketing: the city's Open311 catalog in, one ticket per ready incident out, exactly once."""


from datetime import datetime, timedelta, timezone

import dagster as dg

from social311.config import Thresholds
from social311.integrations.ticketing.base import KeyRefused, TicketingError, TicketingPlugin
from social311.integrations.ticketing.ledger import DRAFTABLE_STATES, TicketLedger, marker_for, open_request_nearby
from social311.orchestration.quality import Suite, gx_check, sql_check
from social311.orchestration.resources import CityResource
from social311.records import ServiceRequest, TicketRequest
from social311.warehouse import connect, insert_many
from social311.logs import counts as log_counts

SERVICE_CATALOG = dg.AssetKey(["ops", "service_catalog"])
INCIDENTS = dg.AssetKey(["ops", "incidents"])
INCIDENT_POSTS = dg.AssetKey(["ops", "incident_posts"])
TICKET_LEDGER = dg.AssetKey(["ops", "ticket_ledger"])


@dg.asset(key=SERVICE_CATALOG, group_name="ticketing", compute_kind="open311")
def service_catalog(context: dg.AssetExecutionContext, city: CityResource) -> dg.MaterializeResult:
    """The city's Open311 service catalog (GET services), refreshed each run."""
    services = city.ticketing().services()
    if not services:
        # issue-reporting answers an unknown jurisdiction_id with an empty list, not a 404: a run
        # that went on would type and file nothing without a word. The stored catalog is kept.
        raise dg.Failure(description=empty_catalog_message(city.load()))
    now = datetime.now(timezone.utc)
    with connect(city.load().duckdb_path) as con:
        con.execute("begin transaction")
        con.execute("delete from ops.service_catalog")
        insert_many(
            con,
            "insert into ops.service_catalog values (?, ?, ?, ?, ?, ?, ?, ?)",
            [(s.service_code, s.service_name, s.description, s.metadata, s.type, list(s.keywords), s.group, now) for s in services],
        )
        con.execute("commit")
    return dg.MaterializeResult(metadata={"services": len(services)})


def empty_catalog_message(cfg) -> str:
    """One line for a server that lists no services: what to check."""
    ref = cfg.ticketing
    jurisdiction = ref.config.get("jurisdiction_id")
    hint = (f"is jurisdiction_id {jurisdiction!r} right? (some servers answer an unknown one with an empty list)"
            if jurisdiction else "check ticketing.config.endpoint")
    return f"the Open311 server lists no services; nothing can be typed or filed: {hint}"


def ticket_request(incident: dict, *, city_name: str, attributes: dict | None = None) -> TicketRequest:
    """The Open311 request for one incident: its place, its words (masked) and its marker."""
    posts = incident["post_count"]
    ward = f" Ward {incident['ward_id']}." if incident["ward_id"] else ""
    header = f"Reported by {posts} resident post{'s' if posts != 1 else ''} on social media (via social311, {city_name}).{ward}"
    marker = marker_for(incident["incident_id"])
    budget = 4000 - len(header) - len(marker) - 4
    text = incident["representative_text"][:budget]
    return TicketRequest(service_code=incident["service_code"], lat=incident["lat"], lon=incident["lon"],
                         description=f"{header}\n\n{text}\n\n{marker}", attributes=attributes or {})


def _open_requests(plugin: TicketingPlugin | None, codes: set[str], thresholds: Thresholds) -> list[ServiceRequest]:
    """Open requests of these services from the last days, to link to instead of filing again.

    One query per run, not per incident; when it fails, filing goes on without linking.
    """
    if plugin is None or thresholds.link_radius_m <= 0 or not codes:
        return []
    start = datetime.now(timezone.utc) - timedelta(days=thresholds.link_window_days)
    try:
        return plugin.find(service_codes=sorted(codes), start=start, status=["open"])
    except TicketingError:
        return []


@dg.asset(key=TICKET_LEDGER, deps=[INCIDENTS, INCIDENT_POSTS, SERVICE_CATALOG], group_name="ticketing", compute_kind="open311")
def ticket_ledger(context: dg.AssetExecutionContext, city: CityResource) -> dg.MaterializeResult:
    """Files one Open311 ticket per ready incident through the exactly-once ledger (dry run unless enabled)."""
    cfg = city.load()
    # Filing without a key would end every ticket in errors (or, on some servers, in 500s that
    # read as "may exist"): stop before anything is sent, with the variable to set.
    plugin = city.ticketing(require_key=True) if cfg.filing_enabled else None
    with connect(cfg.duckdb_path) as con:
        cur = con.execute("select * from ops.incidents where status = 'ready' order by first_seen_at, incident_id")
        names = [d[0] for d in cur.description]
        ready = {row[0]: dict(zip(names, row)) for row in cur.fetchall()}
        with_definition = {r[0] for r in con.execute("select service_code from ops.service_catalog where metadata").fetchall()}
        ledger = TicketLedger(con, max_attempts=cfg.ticketing.max_attempts, server_limit=cfg.history.server_limit)
        due = ledger.due(ready)
        nearby = _open_requests(plugin, {ready[i]["service_code"] for i in due}, cfg.thresholds) if due else []
        outcomes: dict[str, int] = {}
        drafts: list[tuple[str, object]] = []  # dry run: written in one statement after the loop
        known = ledger.states(due) if plugin is None else {}
        log_every = max(10, len(due) // 20)  # each log line is an event-log write
        for done, incident_id in enumerate(due, start=1):
            code = ready[incident_id]["service_code"]
            attributes, problems = dict(cfg.service_attributes.get(code, {})), []
            if plugin is not None and code in with_definition:
                attributes, problems = plugin.check_attributes(code, attributes)
            request = ticket_request(ready[incident_id], city_name=cfg.city, attributes=attributes)
            if problems:
                ledger.hold(incident_id, request, "attributes: " + "; ".join(problems))
                state = "held"
            elif plugin is None and known.get(incident_id, "dry_run") not in DRAFTABLE_STATES:
                # Filing was turned off after a POST that may have reached the server: the row stays
                # as it is, to be settled by a marker search when filing is on again.
                state = f"kept_{known[incident_id]}"
            elif plugin is None:
                drafts.append((incident_id, request))
                state = "dry_run"
            elif (ledger.row(incident_id) or {}).get("state") in (None, "dry_run", "held") and (
                    existing := open_request_nearby(request, nearby, cfg.thresholds.link_radius_m)):
                state = ledger.link(incident_id, request, existing).state
            else:
                try:
                    state = ledger.file(plugin, incident_id, request).state
                except KeyRefused as exc:
                    # Every other ticket would be refused the same way; this one waits, unspent.
                    raise dg.Failure(description=f"filing stopped: the Open311 server refused the api_key in "
                                     f"${cfg.ticketing.api_key_env}: {exc}") from None
            outcomes[state] = outcomes.get(state, 0) + 1
            if done % log_every == 0 or done == len(due):
                context.log.info(f"tickets filed {done}/{len(due)}: {log_counts(outcomes)}")
        ledger.draft_many(drafts)
        resolved = ledger.resolve_tokens(plugin) if plugin is not None else 0
        states = dict(con.execute("select state, count(*) from ops.ticket_ledger group by state").fetchall())
    return dg.MaterializeResult(metadata={"attempted": len(due), "tokens_resolved": resolved,
                                          **{f"this_run_{k}": v for k, v in outcomes.items()},
                                          **{f"ledger_{k}": v for k, v in states.items()}})


ledger_suite = Suite(
    name="ticket_ledger_expectations",
    expectations=(
        ("ExpectColumnValuesToBeUnique", {"column": "incident_id"}),
        ("ExpectColumnValuesToBeUnique", {"column": "marker"}),
        ("ExpectColumnValuesToBeInSet", {"column": "state", "value_set": [
            "pending", "submitted", "awaiting_token", "retry_wait", "failed", "linked", "dry_run", "held"]}),
        ("ExpectColumnValuesToNotBeNull", {"column": "service_code"}),
    ),
)


def defs() -> dg.Definitions:
    return dg.Definitions(
        assets=[service_catalog, ticket_ledger],
        asset_checks=[
            gx_check(asset=SERVICE_CATALOG, suite=Suite(name="service_catalog_expectations", expectations=(
                ("ExpectTableRowCountToBeBetween", {"min_value": 1}),
                ("ExpectColumnValuesToBeUnique", {"column": "service_code"}),
                ("ExpectColumnValuesToNotBeNull", {"column": "service_name"}),
                ("ExpectColumnValuesToBeInSet", {"column": "type", "value_set": ["realtime", "batch", "blackbox"]}),
            )), blocking=True, description="The catalog is non-empty, codes unique, types known (typing and filing depend on it).",
                query="select service_code, service_name, type from ops.service_catalog"),
            gx_check(asset=TICKET_LEDGER, suite=ledger_suite, description="One ledger row per incident, known states.",
                     query="select incident_id, marker, state, service_code from ops.ticket_ledger"),
            sql_check(asset=TICKET_LEDGER, name="no_duplicate_tickets", description="No filed service request id is recorded for two incidents (linked ones may share).",
                      query="select service_request_id from ops.ticket_ledger where service_request_id is not null "
                            "and state <> 'linked' group by 1 having count(*) > 1"),
            sql_check(asset=TICKET_LEDGER, name="no_failed_tickets", description="No ticket ended failed (see last_error).",
                      query="select incident_id, last_error from ops.ticket_ledger where state = 'failed'"),
        ],
    )
