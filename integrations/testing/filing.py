"""A filing drill: many incidents through the ledger, then an audit of the server against the ledger.

Shared by the fault and crash tests and by ``bench/open311_filing.py``; a city can run the
same audit against its own sandbox rehearsal. Incidents are synthetic (``drill-00042``), spread
over realtime and batch services, with no personal data.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import duckdb

from social311.integrations.ticketing.base import TicketingPlugin
from social311.integrations.ticketing.ledger import TicketLedger, marker_for
from social311.records import TicketRequest

#: Services of the sandbox's default catalog without required attributes; one is a batch service.
DRILL_SERVICES = ("STREETLIGHT", "GRAFFITI", "LITTER_BIN", "ABANDONED_VEHICLE")
_MARKER = re.compile(r"\[social311 ref ([^\]]+)\]")


def drill_requests(n: int) -> dict[str, TicketRequest]:
    """``n`` distinct tickets, each with its marker, spread over a small area."""
    out = {}
    for i in range(n):
        incident_id = f"drill-{i:05d}"
        out[incident_id] = TicketRequest(
            service_code=DRILL_SERVICES[i % len(DRILL_SERVICES)],
            lat=41.87 + (i % 100) * 0.0003, lon=-87.64 + (i // 100) * 0.0003,
            description=f"Drill ticket {i}: reported on social media.\n\n{marker_for(incident_id)}",
        )
    return out


def file_pass(ledger: TicketLedger, plugin: TicketingPlugin, requests: dict[str, TicketRequest]) -> Counter:
    """One pass over every due incident, as one run of ``ops/ticket_ledger`` does; returns outcomes."""
    outcomes: Counter = Counter()
    for incident_id in ledger.due(requests):
        outcomes[ledger.file(plugin, incident_id, requests[incident_id]).state] += 1
    ledger.resolve_tokens(plugin)
    return outcomes


def file_until_settled(ledger: TicketLedger, plugin: TicketingPlugin, requests: dict[str, TicketRequest], *,
                       advance: Callable[[timedelta], None] | None = None, max_passes: int = 20) -> int:
    """Run passes until nothing is due or awaiting a token; returns the passes run.

    Args:
        advance: moves the ledger's clock between passes (past the backoff), when it is fake.
    """
    for done in range(1, max_passes + 1):
        file_pass(ledger, plugin, requests)
        open_rows = ledger.con.execute(
            "select count(*) from ops.ticket_ledger where state in ('pending', 'retry_wait', 'awaiting_token')").fetchone()[0]
        if open_rows == 0 and len(ledger.due(requests)) == 0:
            return done
        if advance is not None:
            advance(timedelta(minutes=31))
    return max_passes


@dataclass
class Audit:
    """The server and the ledger compared, incident by incident."""

    filed: int = 0
    failed: int = 0
    duplicates: list[str] = field(default_factory=list)       # incidents with 2+ tickets on the server
    lost: list[str] = field(default_factory=list)             # on the server, but the ledger lacks the id
    unsettled: list[str] = field(default_factory=list)        # neither filed nor failed
    failed_without_reason: list[str] = field(default_factory=list)
    wrong_id: list[str] = field(default_factory=list)         # ledger id differs from the server's

    @property
    def ok(self) -> bool:
        return not (self.duplicates or self.lost or self.unsettled or self.failed_without_reason or self.wrong_id)


def audit(con: duckdb.DuckDBPyConnection, server_tickets: list[tuple[str, str | None]], incident_ids: list[str]) -> Audit:
    """Check the exactly-once guarantee.

    Args:
        con: the warehouse with ``ops.ticket_ledger``.
        server_tickets: ``(service_request_id, description)`` of every ticket the server holds.
        incident_ids: every incident that was to be filed.
    """
    on_server: dict[str, list[str]] = {}
    for request_id, description in server_tickets:
        found = _MARKER.search(description or "")
        if found:
            on_server.setdefault(found.group(1), []).append(request_id)
    ledger = {r[0]: r[1:] for r in con.execute(
        "select incident_id, state, service_request_id, last_error from ops.ticket_ledger").fetchall()}
    result = Audit()
    for incident_id in incident_ids:
        state, request_id, error = ledger.get(incident_id, (None, None, None))
        tickets = on_server.get(incident_id, [])
        if len(tickets) > 1:
            result.duplicates.append(incident_id)
        if state == "submitted":
            result.filed += 1
            if tickets and request_id != tickets[0]:
                result.wrong_id.append(incident_id)
            if not tickets:
                result.lost.append(incident_id)
        elif state == "failed":
            result.failed += 1
            if not error:
                result.failed_without_reason.append(incident_id)
            if tickets:
                result.lost.append(incident_id)
        else:
            result.unsettled.append(incident_id)
    return result


def now_clock(start: datetime) -> tuple[Callable[[], datetime], Callable[[timedelta], None]]:
    """A fake clock for the ledger and the function that moves it."""
    state = {"now": start}
    return (lambda: state["now"]), (lambda step: state.__setitem__("now", state["now"] + step))
