"""Exactly-once filing of incidents into any ticketing plugin, through ``ops.ticket_ledger``.

Open311 has no idempotency key: a retried POST can file a duplicate and a lost reply can lose a
ticket. The ledger closes both gaps:

1. the intent is written first (state ``pending``) with a reference *marker* that also goes into
   the ticket's description;
2. the id is recorded after the server answers (``submitted``, or ``awaiting_token``);
3. after an ambiguous failure (timeout, reset, 5xx, an HTML page or an unreadable 2xx) the row
   stays ``pending`` and, before any new attempt, the server is searched for the marker
   (``reconcile``), every page of every window since the intent, narrowed to its service
   (:mod:`.search`); a search that fails or cannot see the whole span ("cannot search") sends
   nothing and waits;
4. one retry policy for every not-yet-filed state: each attempt waits its backoff (5 minutes,
   then 30), and after ``max_attempts`` POSTs the row ends ``failed`` with the server's words,
   whether the refusals were definite (``retry_wait`` in between) or ambiguous (``pending`` in
   between, each settled by a marker search that did not find the ticket);
5. a refused or missing api_key (:class:`KeyRefused`) costs no attempt and stops the pass: every
   other ticket would be refused the same way.

States::

    pending -> submitted | awaiting_token -> submitted (by token, or by marker where the server
                                                        has no token lookup)
    pending -> pending (backoff) ... -> failed       (ambiguous failures, marker never found)
    pending -> retry_wait -> pending ... -> failed   (definite refusals)
    dry_run  (filing disabled: the request is drafted and kept, never sent)
    held     (not sent: the request would be invalid, e.g. a required attribute is unknown)
    linked   (not sent: the city already has an open request of the same service nearby;
              its id is recorded instead, see :func:`open_request_nearby`)
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import duckdb

from social311.integrations.ticketing.base import (
    KeyRefused,
    SubmitAmbiguous,
    SubmitRejected,
    TicketingError,
    TicketingPlugin,
)
from social311.integrations.ticketing.search import walk
from social311.models.geo import haversine_m
from social311.records import ServiceRequest, TicketRequest
from social311.warehouse import registered

#: States that mean "do not file this incident again".
SETTLED_STATES = frozenset({"submitted", "awaiting_token", "failed", "linked"})
#: States a dry-run draft may overwrite: nothing of these was ever sent. ``pending`` and
#: ``retry_wait`` are not among them: a POST may have reached the server, and only a marker search
#: (when filing is on again) may settle them; a draft would hide that and invite a second POST.
DRAFTABLE_STATES = frozenset({"dry_run", "held"})
#: FixMyStreet's schedule: retry after 5 minutes, then every 30.
BACKOFF = (timedelta(minutes=5), timedelta(minutes=30))
#: How far around the intent time the server is searched for a marker.
RECONCILE_MARGIN = timedelta(hours=1)


#: What every social311 marker starts with: tickets carrying one are ours, never linked to.
MARKER_PREFIX = "[social311 ref "


def open_request_nearby(request: TicketRequest, candidates: Iterable[ServiceRequest], radius_m: float) -> ServiceRequest | None:
    """The closest open request of the same service within ``radius_m`` that social311 did not file.

    Residents also call 311: when the city already has the problem on file, a second ticket only
    costs the desk a merge. Our own tickets are left out: incident merging already decided
    that those are other problems.
    """
    if request.lat is None or request.lon is None:
        return None
    best, best_m = None, radius_m
    for candidate in candidates:
        if (candidate.status != "open" or candidate.service_code != request.service_code or candidate.lat is None
                or candidate.lon is None or MARKER_PREFIX in (candidate.description or "")):
            continue
        distance = float(haversine_m(request.lat, request.lon, candidate.lat, candidate.lon))
        if distance <= best_m:
            best, best_m = candidate, distance
    return best


def marker_for(incident_id: str) -> str:
    """The reference written into the ticket text, searched for when reconciling."""
    return f"{MARKER_PREFIX}{incident_id}]"


@dataclass(frozen=True)
class FilingOutcome:
    """What happened to one incident in this pass."""

    incident_id: str
    state: str
    service_request_id: str | None = None
    error: str | None = None


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _backoff(attempts: int, schedule: tuple[timedelta, ...] = BACKOFF) -> timedelta:
    return schedule[min(attempts, len(schedule)) - 1] if attempts > 0 else schedule[0]


class TicketLedger:
    """The filing ledger over an open DuckDB connection (table ``ops.ticket_ledger``)."""

    def __init__(self, con: duckdb.DuckDBPyConnection, *, max_attempts: int = 3, clock: Callable[[], datetime] = _now,
                 server_limit: int = 1000, backoff: tuple[timedelta, ...] = BACKOFF):
        """Args:
            con: an open warehouse connection.
            max_attempts: POSTs before a ticket ends ``failed``.
            clock: the time (tests step it through backoff).
            server_limit: the most requests the server answers for one GET without paging; a
                marker-search window answering that many is split (``history.server_limit``).
            backoff: the wait after the 1st, 2nd... attempt (the last repeats); FixMyStreet's by default.
        """
        self.con = con
        self.max_attempts = max_attempts
        self.clock = clock
        self.server_limit = server_limit
        self.backoff = tuple(backoff) or BACKOFF

    def row(self, incident_id: str) -> dict | None:
        """The ledger row of one incident, or None."""
        cur = self.con.execute("select * from ops.ticket_ledger where incident_id = ?", [incident_id])
        found = cur.fetchone()
        return dict(zip([d[0] for d in cur.description], found)) if found else None

    def due(self, incident_ids: Iterable[str]) -> list[str]:
        """The incidents that may be attempted now: new ones, and pending or waiting ones whose backoff is over."""
        now = self.clock()
        # One query for the whole ledger, not one per incident (14,000 incidents took ~20 s).
        known = {incident_id: (state, next_attempt_at) for incident_id, state, next_attempt_at in self.con.execute(
            "select incident_id, state, next_attempt_at from ops.ticket_ledger").fetchall()}
        due = []
        for incident_id in incident_ids:
            state, next_attempt_at = known.get(incident_id, (None, None))
            if state is None or state in ("dry_run", "held"):
                due.append(incident_id)
            elif state in ("pending", "retry_wait") and (next_attempt_at is None or next_attempt_at <= now):
                due.append(incident_id)
        return due

    def hold(self, incident_id: str, request: TicketRequest, reason: str) -> None:
        """Keep an incident unfiled with the reason (e.g. a required attribute is unknown).

        Held incidents are looked at again every run, so fixing the config releases them.
        """
        self._upsert(incident_id, request, state="held", attempts=0)
        self._set(incident_id, last_error=reason[:1000])

    def link(self, incident_id: str, request: TicketRequest, existing: ServiceRequest) -> FilingOutcome:
        """Record an existing open request as this incident's ticket instead of filing one.

        Only for incidents never sent: a ``pending`` or ``retry_wait`` row may already exist
        on the server, and must be reconciled, not linked.
        """
        row = self.row(incident_id)
        if row is not None and row["state"] not in ("dry_run", "held"):
            raise ValueError(f"{incident_id} is {row['state']}; only unsent incidents can be linked")
        self._upsert(incident_id, request, state="linked", attempts=0)
        self._set(incident_id, service_request_id=existing.service_request_id, last_error=None, filed_at=self.clock())
        return FilingOutcome(incident_id, "linked", existing.service_request_id)

    def requeue(self, incident_id: str) -> bool:
        """Give a ``failed``, ``retry_wait`` or ``pending`` ticket a fresh set of attempts on the next run.

        For after a fix (a service code mapped again, a key set, a server repaired). A ``failed``
        ticket may have ended after ambiguous 5xx answers, so it may exist on the server: the row
        becomes ``pending`` and the next run searches for its marker before any POST.

        Returns:
            True when the ticket was requeued.
        """
        row = self.row(incident_id)
        if row is None or row["state"] not in ("failed", "retry_wait", "pending"):
            return False
        self._set(incident_id, state="pending", attempts=0, next_attempt_at=self.clock())
        return True

    def states(self, incident_ids: Iterable[str]) -> dict[str, str]:
        """The ledger state of each of these incidents that has a row, in one query."""
        return dict(self.con.execute("select incident_id, state from ops.ticket_ledger where incident_id in "
                                     "(select unnest(?))", [list(incident_ids)]).fetchall())

    def draft(self, incident_id: str, request: TicketRequest) -> None:
        """Record a dry-run draft (filing disabled): nothing is sent. See :meth:`draft_many`."""
        self.draft_many([(incident_id, request)])

    def draft_many(self, drafts: Iterable[tuple[str, TicketRequest]]) -> int:
        """Record many dry-run drafts in one statement; the same rows as :meth:`draft` one by one.

        A dry run sends nothing, so there is no intent to write before a POST and batching loses
        no safety; one upsert per incident took ~3 ms (45 s for the 14,000 incidents of
        100,000 posts). Only for incidents that are new or in :data:`DRAFTABLE_STATES`: a row that
        may exist on the server raises ``ValueError``. Returns the number of rows written.
        """
        import pandas as pd

        rows = [(incident_id, marker_for(incident_id), request.service_code,
                 json.dumps(request.model_dump(mode="json"), sort_keys=True)) for incident_id, request in drafts]
        if not rows:
            return 0
        settled = [(i, state) for i, state in self.states(r[0] for r in rows).items() if state not in DRAFTABLE_STATES]
        if settled:
            raise ValueError(f"only unsent incidents can be drafted: {settled[:5]}")
        now = self.clock()
        frame = pd.DataFrame({"incident_id": pd.Series([r[0] for r in rows], dtype="string"),
                              "marker": pd.Series([r[1] for r in rows], dtype="string"),
                              "service_code": pd.Series([r[2] for r in rows], dtype="string"),
                              "request_json": pd.Series([r[3] for r in rows], dtype="string")})
        with registered(self.con, frame, "ledger_drafts") as view:
            self.con.execute(
                f"""
                insert into ops.ticket_ledger
                    (incident_id, marker, state, service_code, attempts, request_json, created_at, updated_at)
                select incident_id, marker, 'dry_run', service_code, 0, request_json, $now, $now from {view}
                on conflict (incident_id) do update set
                    state = excluded.state, attempts = excluded.attempts, service_code = excluded.service_code,
                    request_json = excluded.request_json, updated_at = excluded.updated_at
                """, {"now": now})
        return len(rows)

    def file(self, plugin: TicketingPlugin, incident_id: str, request: TicketRequest) -> FilingOutcome:
        """File one incident exactly once. ``request.description`` must contain its marker.

        Never raises for server trouble: the outcome and the ledger say what happened.

        Raises:
            KeyRefused: the api_key is missing or refused; the row waits in ``retry_wait``
                without losing an attempt, and the caller should stop filing.
        """
        marker = marker_for(incident_id)
        if marker not in request.description:
            raise ValueError(f"ticket description for {incident_id} lacks its marker {marker!r}")
        row = self.row(incident_id)
        if row is not None and row["state"] in SETTLED_STATES:
            return FilingOutcome(incident_id, row["state"], row["service_request_id"])
        if row is not None and row["state"] == "pending":
            # A previous attempt may have reached the server: look before sending again, and
            # send nothing when the server could not be searched (that is how duplicates happen).
            reached, found = self._search(plugin, incident_id)
            if found is not None:
                return found
            if not reached:
                self._set(incident_id, next_attempt_at=self.clock() + _backoff(max(row["attempts"], 1), self.backoff))
                return FilingOutcome(incident_id, "pending", error=self.row(incident_id)["last_error"])
            if row["attempts"] >= self.max_attempts:
                return self._give_up(incident_id)
        attempts = (row["attempts"] if row else 0) + 1
        self._upsert(incident_id, request, state="pending", attempts=attempts)
        try:
            result = plugin.submit(request)
        except KeyRefused as exc:
            # Not this ticket's fault and nothing was filed: no attempt spent, due again at once
            # when the key is fixed. The caller stops the pass (see KeyRefused).
            self._set(incident_id, state="retry_wait", attempts=attempts - 1, last_error=_reason(exc),
                      next_attempt_at=self.clock())
            raise
        except SubmitRejected as exc:
            return self._rejected(incident_id, attempts, exc)
        except SubmitAmbiguous as exc:
            self._set(incident_id, state="pending", last_error=_reason(exc), next_attempt_at=self.clock() + _backoff(attempts, self.backoff))
            reached, found = self._search(plugin, incident_id)
            if found is not None:
                return found
            if reached and attempts >= self.max_attempts:
                return self._give_up(incident_id)
            return FilingOutcome(incident_id, "pending", error=self.row(incident_id)["last_error"])
        if result.service_request_id:
            self._set(incident_id, state="submitted", service_request_id=result.service_request_id, last_error=None, filed_at=self.clock())
            return FilingOutcome(incident_id, "submitted", result.service_request_id)
        if result.token:
            self._set(incident_id, state="awaiting_token", token=result.token, last_error=None, filed_at=self.clock())
            return FilingOutcome(incident_id, "awaiting_token")
        # Blackbox service: accepted, but no id will ever come back.
        self._set(incident_id, state="submitted", last_error=None, filed_at=self.clock())
        return FilingOutcome(incident_id, "submitted")

    def _give_up(self, incident_id: str) -> FilingOutcome:
        """``failed`` after ``max_attempts`` ambiguous POSTs whose ticket the marker search never found."""
        error = _post_error(self.row(incident_id)["last_error"]) or "no answer"
        error = f"{error} (after {self.max_attempts} attempts; the ticket's marker is not on the server)"[:1000]
        self._set(incident_id, state="failed", last_error=error, next_attempt_at=None)
        return FilingOutcome(incident_id, "failed", error=error)

    def reconcile(self, plugin: TicketingPlugin, incident_id: str) -> FilingOutcome | None:
        """Search the server for this incident's marker; record the id if the ticket exists."""
        return self._search(plugin, incident_id)[1]

    def _search(self, plugin: TicketingPlugin, incident_id: str) -> tuple[bool, FilingOutcome | None]:
        """``(whether the whole span was searched, the outcome when the ticket was found)``.

        Every request of the incident's service since its intent (less a margin) is read, page
        by page and window by window; "not found" is only said when nothing was left unseen.
        """
        row = self.row(incident_id)
        if row is None:
            return True, None
        marker = marker_for(incident_id)
        try:
            done = walk(plugin, start=row["created_at"] - RECONCILE_MARGIN, end=self.clock() + RECONCILE_MARGIN,
                        server_limit=self.server_limit, service_codes=[row["service_code"]], newest_first=False,
                        stop=lambda candidate: marker in (candidate.description or ""))
        except TicketingError as exc:
            self._set(incident_id, last_error=_searched(f"reconcile failed: {_reason(exc)}", row["last_error"]))
            return False, None
        if done.match is not None:
            self._set(incident_id, state="submitted", service_request_id=done.match.service_request_id, last_error=None,
                      filed_at=row["filed_at"] or self.clock())
            return True, FilingOutcome(incident_id, "submitted", done.match.service_request_id)
        if not done.complete:
            self._set(incident_id, last_error=_searched(
                f"reconcile failed: {done.truncated} window(s) of the search could not be read whole", row["last_error"]))
            return False, None
        return True, None

    def resolve_tokens(self, plugin: TicketingPlugin) -> int:
        """Turn batch tokens into ids where the server has them ready; returns how many resolved."""
        rows = self.con.execute("select incident_id, token from ops.ticket_ledger where state = 'awaiting_token'").fetchall()
        resolved = 0
        for incident_id, token in rows:
            try:
                service_request_id = plugin.resolve_token(token)
            except TicketingError as exc:
                # Some servers have no token lookup at all (issue-reporting: an HTML 404 for every
                # token); the ticket carries its marker, so it is found the other way. The token
                # stays in the ledger either way, and the next run asks again.
                reached, found = self._search(plugin, incident_id)
                if found is not None:
                    resolved += 1
                elif reached:
                    self._set(incident_id, last_error=f"token lookup failed: {_reason(exc)}; "
                                                      "the marker search has not found the ticket yet")
                continue
            if service_request_id:
                self._set(incident_id, state="submitted", service_request_id=service_request_id)
                resolved += 1
        return resolved

    def _rejected(self, incident_id: str, attempts: int, exc: TicketingError) -> FilingOutcome:
        if exc.status == 429:
            # Rate limited: the server did no work and said when to come back. Not the ticket's
            # fault, so it does not count towards max_attempts.
            wait = timedelta(seconds=getattr(exc, "retry_after_s", None) or 60)
            self._set(incident_id, state="retry_wait", attempts=attempts - 1, last_error=_reason(exc),
                      next_attempt_at=self.clock() + wait)
            return FilingOutcome(incident_id, "retry_wait", error=_reason(exc))
        if attempts >= self.max_attempts:
            self._set(incident_id, state="failed", last_error=_reason(exc), next_attempt_at=None)
            return FilingOutcome(incident_id, "failed", error=_reason(exc))
        self._set(incident_id, state="retry_wait", last_error=_reason(exc), next_attempt_at=self.clock() + _backoff(attempts, self.backoff))
        return FilingOutcome(incident_id, "retry_wait", error=_reason(exc))

    def _upsert(self, incident_id: str, request: TicketRequest, *, state: str, attempts: int) -> None:
        now = self.clock()
        # created_at is the first intent to POST (a draft's or hold's time is not): the marker
        # search starts there.
        self.con.execute(
            """
            insert into ops.ticket_ledger
                (incident_id, marker, state, service_code, attempts, request_json, created_at, updated_at)
            values (?, ?, ?, ?, ?, ?, ?, ?)
            on conflict (incident_id) do update set
                state = excluded.state, attempts = excluded.attempts, service_code = excluded.service_code,
                request_json = excluded.request_json, updated_at = excluded.updated_at,
                created_at = case when ticket_ledger.state in ('dry_run', 'held') and excluded.state = 'pending'
                                  then excluded.created_at else ticket_ledger.created_at end
            """,
            [incident_id, marker_for(incident_id), state, request.service_code, attempts,
             json.dumps(request.model_dump(mode="json"), sort_keys=True), now, now],
        )

    def _set(self, incident_id: str, **fields: object) -> None:
        fields["updated_at"] = self.clock()
        assignments = ", ".join(f"{name} = ?" for name in fields)
        self.con.execute(f"update ops.ticket_ledger set {assignments} where incident_id = ?", [*fields.values(), incident_id])


def _reason(exc: TicketingError) -> str:
    """``Kind: HTTP 500: the server's words``, the status said once."""
    status = getattr(exc, "status", None)
    prefix = f"HTTP {status}: " if status and f"HTTP {status}" not in str(exc) else ""
    return f"{type(exc).__name__}: {prefix}{exc}"[:1000]


_LAST_POST = " | last POST: "


def _post_error(last_error: str | None) -> str | None:
    """The last POST's error kept in a ledger message (search failures keep it after theirs)."""
    if not last_error:
        return None
    if _LAST_POST in last_error:
        return last_error.split(_LAST_POST, 1)[1]
    return None if last_error.startswith("reconcile failed") else last_error


def _searched(message: str, previous: str | None) -> str:
    """A failed search's message, keeping the server's words of the last POST for ``failed``."""
    post = _post_error(previous)
    return (message + (_LAST_POST + post if post else ""))[:1000]
