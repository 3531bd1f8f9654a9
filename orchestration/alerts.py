"""Alerts (spikes, surges, SLA breaches, failed runs) delivered once each to a webhook and an outbox.

No Dagster here: the pipeline queues alerts (``orchestration/alerting.py``), the sensors deliver
them. The delivery ledger is a small SQLite file beside the warehouse, not a DuckDB table, so
that the sensors, which run in the Dagster daemon, never open the warehouse a run is writing.

Each alert has a stable id (``spike:42:GRAFFITI:2024-05-09``); queuing it twice is a no-op, and
each channel delivers it once:

- **outbox**: one JSON line per alert appended to a file; before appending, the file is searched
  for the id (a crash between the write and the ledger update does not write it twice).
- **webhook**: one POST of ``{"text": ...}``, the body Slack and Microsoft Teams incoming webhooks
  both accept. A 2xx marks it delivered; a 4xx (but 429) is final (``failed``, with the status);
  a timeout, a reset, a 429 or a 5xx is retried on the next tick, up to ``MAX_ATTEMPTS``. A
  webhook cannot be asked whether a message arrived, so an ambiguous failure may show one
  message twice: at least once, never silently lost.

The webhook URL is a secret (it authorises posting): it is read from the environment variable
the city YAML names and never written to the ledger, the outbox or a log; errors keep the
exception type and HTTP status only.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import requests

#: A delivery that failed this often is given up (state ``failed``) and listed by the sensor.
MAX_ATTEMPTS = 5
#: Kinds of alert, in the order a reader cares about them.
KINDS = ("run_failure", "surge", "spike", "sla_acknowledge", "sla_close", "sla_answer")

_SCHEMA = """
create table if not exists alerts (
    alert_id text primary key, kind text not null, payload text not null, queued_at text not null);
create table if not exists deliveries (
    alert_id text not null references alerts(alert_id), channel text not null, state text not null,
    attempts integer not null default 0, last_error text, delivered_at text,
    primary key (alert_id, channel));
"""


@dataclass(frozen=True)
class Alert:
    """One thing a person should look at now. ``alert_id`` is stable: the same spike, the same id."""

    alert_id: str
    kind: str
    title: str
    text: str
    ward_id: str | None = None
    service_code: str | None = None
    details: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown alert kind {self.kind!r} (known: {', '.join(KINDS)})")

    def webhook_body(self) -> dict:
        """The JSON body both Slack and Teams incoming webhooks accept: one ``text`` field."""
        return {"text": f"{self.title}\n{self.text}"}


@dataclass(frozen=True)
class Channels:
    """Where alerts go. ``webhook_env`` names the variable with the URL; None = no webhook."""

    outbox_path: Path
    webhook_env: str | None = None
    timeout_s: float = 10.0

    @property
    def names(self) -> tuple[str, ...]:
        return ("outbox", "webhook") if self.webhook_env else ("outbox",)


def ledger_path(duckdb_path: str | Path) -> Path:
    """The delivery ledger of a warehouse: ``<warehouse>.alerts.sqlite`` beside it."""
    path = Path(duckdb_path)
    return path.with_name(f"{path.stem}.alerts.sqlite")


def _open(path: Path) -> sqlite3.Connection:
    path.parent.mkdir(parents=True, exist_ok=True)
    con = sqlite3.connect(str(path), timeout=30, isolation_level=None)
    con.executescript(_SCHEMA)
    return con


def _now(clock: Callable[[], datetime] | None) -> str:
    return (clock or (lambda: datetime.now(timezone.utc)))().isoformat()


def queue(ledger: Path, alerts: Iterable[Alert], channels: Channels, *,
          clock: Callable[[], datetime] | None = None) -> int:
    """Record ``alerts`` for delivery on every channel; ids already queued are left alone.

    Returns:
        How many alerts were new.
    """
    con = _open(ledger)
    try:
        new = 0
        con.execute("begin immediate")
        for alert in alerts:
            cur = con.execute("insert or ignore into alerts values (?, ?, ?, ?)",
                              (alert.alert_id, alert.kind, json.dumps(asdict(alert), default=str), _now(clock)))
            new += cur.rowcount
            for channel in channels.names:
                con.execute("insert or ignore into deliveries (alert_id, channel, state) values (?, ?, 'pending')",
                            (alert.alert_id, channel))
        con.execute("commit")
        return new
    finally:
        con.close()


def _in_outbox(path: Path, alert_id: str) -> bool:
    if not path.exists():
        return False
    with path.open(encoding="utf-8") as lines:
        for line in lines:
            try:
                if json.loads(line).get("alert_id") == alert_id:
                    return True
            except (json.JSONDecodeError, AttributeError):
                continue  # a torn last line from a crash is not this alert
    return False


def _write_outbox(path: Path, alert: dict, delivered_at: str) -> None:
    if _in_outbox(path, alert["alert_id"]):
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as out:
        out.write(json.dumps({**alert, "delivered_at": delivered_at}, ensure_ascii=False, default=str) + "\n")
        out.flush()
        os.fsync(out.fileno())


class _Retry(Exception):
    """A delivery to try again on the next tick."""


class _Final(Exception):
    """A delivery the receiver refused: trying again would not help."""


def _post_webhook(session: requests.Session, url: str | None, env: str, body: dict, timeout_s: float) -> None:
    if not url:
        raise _Retry(f"environment variable {env} (the alert webhook URL) is not set")
    try:
        response = session.post(url, json=body, timeout=(5, timeout_s))
    except requests.RequestException as exc:
        # The exception text would carry the URL (a secret): keep its type only.
        raise _Retry(f"webhook unreachable: {type(exc).__name__}") from None
    if response.status_code == 429 or response.status_code >= 500:
        raise _Retry(f"webhook answered HTTP {response.status_code}")
    if response.status_code >= 400:
        raise _Final(f"webhook refused the alert: HTTP {response.status_code} {response.text[:200]!r}")


def deliver_pending(ledger: Path, channels: Channels, *, limit: int = 50, session: requests.Session | None = None,
                    environ: dict[str, str] | None = None, clock: Callable[[], datetime] | None = None) -> dict[str, int]:
    """Deliver up to ``limit`` pending deliveries, oldest first; returns counts by outcome.

    Outcomes: ``delivered``, ``retry`` (tried again next time), ``failed`` (given up: refused by
    the receiver, or ``MAX_ATTEMPTS`` reached).
    """
    environ = os.environ if environ is None else environ
    url = environ.get(channels.webhook_env) if channels.webhook_env else None
    session = session or requests.Session()
    con = _open(ledger)
    counts = {"delivered": 0, "retry": 0, "failed": 0}
    try:
        rows = con.execute(
            """select d.alert_id, d.channel, d.attempts, a.payload from deliveries d join alerts a using (alert_id)
               where d.state in ('pending', 'retry') order by a.queued_at, d.alert_id, d.channel limit ?""",
            (limit,)).fetchall()
        for alert_id, channel, attempts, payload in rows:
            alert = json.loads(payload)
            now = _now(clock)
            try:
                if channel == "outbox":
                    _write_outbox(channels.outbox_path, alert, now)
                elif channel == "webhook":
                    _post_webhook(session, url, channels.webhook_env or "", Alert(**alert).webhook_body(),
                                  channels.timeout_s)
                else:
                    raise _Final(f"unknown channel {channel!r}")
            except (_Retry, _Final, OSError) as exc:
                final = isinstance(exc, _Final) or attempts + 1 >= MAX_ATTEMPTS
                state = "failed" if final else "retry"
                con.execute("update deliveries set state = ?, attempts = attempts + 1, last_error = ? "
                            "where alert_id = ? and channel = ?", (state, str(exc)[:500], alert_id, channel))
                counts[state] += 1
                continue
            con.execute("update deliveries set state = 'delivered', attempts = attempts + 1, last_error = null, "
                        "delivered_at = ? where alert_id = ? and channel = ?", (now, alert_id, channel))
            counts["delivered"] += 1
        return counts
    finally:
        con.close()


def deliveries(ledger: Path) -> list[dict]:
    """Every delivery with its state, for the report, the CLI and tests."""
    con = _open(ledger)
    try:
        cur = con.execute("select d.*, a.kind from deliveries d join alerts a using (alert_id) order by alert_id, channel")
        names = [c[0] for c in cur.description]
        return [dict(zip(names, row)) for row in cur.fetchall()]
    finally:
        con.close()
