"""The city's own 311 history: past service requests pulled through Open311 GET, embedded once.

Each run asks only for requests newer than the newest one stored (less a day's overlap, for
requests that reach the API late), embeds only those it has not stored, and drops requests
older than ``history.days``. A failed GET never fails the run: the models go on with what is
stored, and the error is in the run's metadata.
"""


from datetime import datetime, timedelta, timezone

import dagster as dg
import numpy as np

from social311.config import HistorySettings
from social311.integrations.ticketing.base import TicketingError, TicketingPlugin
from social311.integrations.ticketing.history import harvest, history_rows
from social311.orchestration.quality import Suite, gx_check, sql_check
from social311.orchestration.resources import CityResource
from social311.warehouse import connect, insert_many

SERVICE_CATALOG = dg.AssetKey(["ops", "service_catalog"])
SERVICE_HISTORY = dg.AssetKey(["ml", "service_history"])

#: Requests can appear in GET requests a while after their requested_datetime (batch services,
#: back-office sync), so each fetch starts this long before the newest stored request.
OVERLAP = timedelta(days=1)


def fetch_window(newest: datetime | None, now: datetime, days: int) -> tuple[datetime, datetime]:
    """``(start, end)`` of this run's fetch: from the newest stored request (less ``OVERLAP``),
    or ``days`` back on the first run, never further back than ``days``."""
    earliest = now - timedelta(days=days)
    start = earliest if newest is None else max(earliest, newest - OVERLAP)
    return min(start, now), now  # a server clock ahead of ours must not make an empty, refused span


def update_history(con, plugin: TicketingPlugin, settings: HistorySettings, embedder, now: datetime) -> dict:
    """Fetch, filter, mask, embed and store the new history; prune the old. No Dagster here.

    Args:
        con: a writable warehouse connection.
        plugin: the city's ticketing plugin (only ``find`` is called).
        settings: the city's ``history`` settings.
        embedder: anything with ``encode(list[str])``; called only when there are new requests.
        now: the current time (aware).

    Returns:
        Counts for the run's metadata; ``fetch_error`` when the server could not be read.
    """
    newest = con.execute("select max(requested_datetime) from ml.service_history").fetchone()[0]
    start, end = fetch_window(newest, now, settings.days)
    meta: dict = {"window_start": start.isoformat(), "window_end": end.isoformat()}
    try:
        got = harvest(plugin, start=start, end=end, server_limit=settings.server_limit,
                      max_requests=settings.max_requests, statuses=list(settings.statuses) or None)
    except TicketingError as exc:
        meta["fetch_error"] = f"{type(exc).__name__}: {exc}"[:500]
        got = None
    if got is not None:
        own = {r[0] for r in con.execute("select service_request_id from ops.ticket_ledger "
                                         "where service_request_id is not null").fetchall()}
        rows, skipped = history_rows(got.requests, own_ids=own)
        stored = {r[0] for r in con.execute("select service_request_id from ml.service_history").fetchall()}
        new = [r for r in rows if r.service_request_id not in stored]
        # Only new rows are embedded: a request is never embedded twice.
        vectors = embedder.encode([r.description for r in new]) if new else np.zeros((0, 384), dtype=np.float32)
        insert_many(con, "insert into ml.service_history values (?, ?, ?, ?, ?, ?) on conflict (service_request_id) do nothing",
                    [(r.service_request_id, r.service_code, r.description, r.requested_datetime, v.tolist(), now)
                     for r, v in zip(new, vectors)])
        meta.update(gets=got.calls, windows_split=got.splits, windows_truncated=got.truncated, fetched=len(got.requests),
                    new=len(new), embedded=len(new), **{f"skipped_{k}": v for k, v in skipped.items()})
    # Rolling window: the models follow the city's recent requests, at most max_requests of them.
    con.execute("delete from ml.service_history where requested_datetime < ?", [now - timedelta(days=settings.days)])
    con.execute("delete from ml.service_history where service_request_id in (select service_request_id from "
                "ml.service_history order by requested_datetime desc nulls last, service_request_id offset ?)",
                [settings.max_requests])
    # A ticket filed by social311 whose marker the server dropped is known by its id later on.
    con.execute("delete from ml.service_history where service_request_id in "
                "(select service_request_id from ops.ticket_ledger where service_request_id is not null)")
    meta["stored"], meta["services"] = con.execute(
        "select count(*), count(distinct service_code) from ml.service_history").fetchone()
    return meta


@dg.asset(key=SERVICE_HISTORY, deps=[SERVICE_CATALOG], group_name="ml", compute_kind="open311")
def service_history(context: dg.AssetExecutionContext, city: CityResource) -> dg.MaterializeResult:
    """The city's past 311 requests (Open311 GET), masked and embedded once: training data for relevance and typing."""
    from social311.models.embeddings import get_embedder

    cfg = city.load()
    if not cfg.history.enabled:
        return dg.MaterializeResult(metadata={"history": "off"})
    plugin = city.ticketing()
    try:
        with connect(cfg.duckdb_path) as con:
            meta = update_history(con, plugin, cfg.history, get_embedder(cfg.embedding_backend), datetime.now(timezone.utc))
    finally:
        close = getattr(plugin, "close", None)
        if close is not None:
            close()
    if "fetch_error" in meta:
        context.log.warning(f"311 history not fetched, the models use the {meta['stored']} stored requests: {meta['fetch_error']}")
    else:
        context.log.info(f"311 history: {meta['new']} new requests of {meta['fetched']} fetched; {meta['stored']} stored")
    return dg.MaterializeResult(metadata=meta)


history_suite = Suite(
    name="service_history_expectations",
    expectations=(
        ("ExpectColumnValuesToBeUnique", {"column": "service_request_id"}),
        ("ExpectColumnValuesToNotBeNull", {"column": "service_code"}),
        ("ExpectColumnValuesToNotBeNull", {"column": "description"}),
        # social311's own tickets are never training data (the ledger's marker, ledger.MARKER_PREFIX).
        ("ExpectColumnValuesToNotMatchRegex", {"column": "description", "regex": r"\[social311 ref "}),
        ("ExpectColumnValuesToBeBetween", {"column": "embedding_norm", "min_value": 0.98, "max_value": 1.02}),
    ),
)


def defs() -> dg.Definitions:
    return dg.Definitions(
        assets=[service_history],
        asset_checks=[
            gx_check(asset=SERVICE_HISTORY, suite=history_suite,
                     description="One row per request, coded, described, none of social311's own, unit-length embeddings.",
                     query="select service_request_id, service_code, description, "
                           "sqrt(list_sum(list_transform(embedding, x -> x * x))) as embedding_norm from ml.service_history"),
            sql_check(asset=SERVICE_HISTORY, name="no_filed_tickets_in_history",
                      description="No ticket social311 filed (by ledger id) is training data.",
                      query="select service_request_id from ml.service_history where service_request_id in "
                            "(select service_request_id from ops.ticket_ledger where service_request_id is not null)"),
        ],
    )
