"""What one pipeline run did, in words an operator acts on, and the exit code it earns.

The rule (documented in the README, "Exit codes"):

* exit 1 when a step failed, an asset check of severity ERROR failed (blocking or not), or a
  ticket this run touched is ``held`` (its attributes or service refused before sending) or
  ``failed`` (the server refused it for good);
* exit 0 with a ``warning:`` line for what needs no action now or is retried by itself: a
  check of severity WARN failed, tickets waiting to retry or pending reconciliation, records
  quarantined with their reasons, posts waiting in language review.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path

#: Ledger states that stop a ticket until someone acts: they make the run exit 1.
ACTION_STATES = ("held", "failed")
#: Ledger states the next runs retry on their own: a warning only.
RETRY_STATES = ("retry_wait", "pending")


@dataclass
class RunSummary:
    """The facts of one run; ``exit_code`` applies the module's rule."""

    run_id: str
    success: bool
    failed_steps: list[str] = field(default_factory=list)
    failed_checks: list[str] = field(default_factory=list)  # severity ERROR
    warned_checks: list[str] = field(default_factory=list)  # severity WARN
    filed: list[tuple] = field(default_factory=list)  # (request id, service, ward, posts)
    tickets_to_act_on: list[str] = field(default_factory=list)  # "INCIDENT state: reason"
    tickets_retrying: int = 0
    quarantined: dict[str, int] = field(default_factory=dict)  # "stage: reason" -> count
    language_review: int = 0  # posts in ml.language_review without a reviewer's label

    @property
    def exit_code(self) -> int:
        return 1 if (not self.success or self.failed_steps or self.failed_checks or self.tickets_to_act_on) else 0

    def text(self) -> str:
        """The console summary: tickets filed, then problems one per line."""
        lines = [f"\nTickets filed this run: {len(self.filed)}"]
        if self.filed:
            lines.append(f"  {'request id':<14} {'service':<34} {'ward':<6} posts merged")
            for request_id, service, ward, posts in self.filed:
                lines.append(f"  {request_id or '(token)':<14} {service[:34]:<34} {ward or '-':<6} {posts}")
        for step in self.failed_steps:
            lines.append(f"error: step failed: {step}")
        for check in self.failed_checks:
            lines.append(f"error: check failed: {check}")
        for ticket in self.tickets_to_act_on:
            lines.append(f"error: ticket not filed: {ticket}")
        for check in self.warned_checks:
            lines.append(f"warning: check failed (severity WARN): {check}")
        if self.tickets_retrying:
            lines.append(f"warning: {self.tickets_retrying} ticket(s) waiting to retry (see `social311 tickets --stuck`)")
        total = sum(self.quarantined.values())
        if total:
            top = ", ".join(f"{n} {reason}" for reason, n in sorted(self.quarantined.items(), key=lambda kv: -kv[1])[:5])
            lines.append(f"warning: {total} record(s) quarantined this run ({top})")
        if self.language_review:
            lines.append(f"warning: {self.language_review} post(s) in a language the model cannot read wait for review "
                         "(see `social311 review`)")
        return "\n".join(lines)

    def json(self) -> str:
        """One JSON object with every field and the exit code (``--log-format json``)."""
        data = asdict(self)
        data["filed"] = [dict(zip(("service_request_id", "service", "ward", "posts"), row)) for row in self.filed]
        data["exit_code"] = self.exit_code
        return json.dumps(data, default=str)


def _first_line(text: str | None) -> str:
    return (text or "").strip().splitlines()[0] if (text or "").strip() else ""


def summarise(result, duckdb_path: Path, started: datetime) -> RunSummary:
    """Read the summary from Dagster's in-process result and the warehouse (read-only)."""
    summary = RunSummary(run_id=result.run_id, success=result.success)
    for event in result.get_step_failure_events():
        error = event.step_failure_data.error if event.step_failure_data else None
        while error is not None and error.cause is not None:  # Dagster's wrapper -> the user's own error
            error = error.cause
        summary.failed_steps.append(f"{event.step_key}" + (f" ({_first_line(error.message)})" if error else ""))
    for evaluation in result.get_asset_check_evaluations():
        if evaluation.passed:
            continue
        name = f"{evaluation.asset_key.to_user_string()}:{evaluation.check_name}"
        detail = _first_line(evaluation.description)
        entry = name + (f" ({detail})" if detail else "")
        severity = getattr(evaluation.severity, "value", str(evaluation.severity))
        (summary.warned_checks if severity == "WARN" else summary.failed_checks).append(entry)
    if Path(duckdb_path).exists():
        _from_warehouse(summary, Path(duckdb_path), started)
    return summary


def _from_warehouse(summary: RunSummary, duckdb_path: Path, started: datetime) -> None:
    from social311.warehouse import connect

    with connect(duckdb_path, read_only=True) as con:
        tables = {r[0] for r in con.execute("select schema_name || '.' || table_name from duckdb_tables()").fetchall()}
        if "ops.ticket_ledger" in tables:
            summary.filed = con.execute(
                """select l.service_request_id, coalesce(c.service_name, l.service_code), i.ward_id, i.post_count
                   from ops.ticket_ledger l join ops.incidents i using (incident_id)
                   left join ops.service_catalog c on c.service_code = l.service_code
                   where l.state in ('submitted', 'awaiting_token') and l.filed_at >= ?
                   order by l.filed_at, l.incident_id""", [started]).fetchall()
            for incident_id, state, error in con.execute(
                    "select incident_id, state, last_error from ops.ticket_ledger where list_contains(?, state) and updated_at >= ? "
                    "order by incident_id", [list(ACTION_STATES), started]).fetchall():
                summary.tickets_to_act_on.append(f"{incident_id} {state}" + (f": {_first_line(error)}" if error else ""))
            summary.tickets_retrying = con.execute(
                "select count(*) from ops.ticket_ledger where list_contains(?, state)", [list(RETRY_STATES)]).fetchone()[0]
        if "quarantine.records" in tables:
            for stage, reason, n in con.execute(
                    "select stage, reason, count(*) from quarantine.records where quarantined_at >= ? group by all",
                    [started]).fetchall():
                summary.quarantined[f"{stage}: {_first_line(reason)[:80]}"] = n
        if "ml.language_review" in tables:
            from social311.models.review import count_post_queue

            summary.language_review = count_post_queue(con)
