"""Posts deleted or edited on their platform, applied to the warehouse.

A resident who deletes a post withdraws it: its text and embedding leave the warehouse on the
next run and it is never filed. If its incident was already filed, the ticket stays (the city
has the report), and ``ops.post_withdrawals`` records which source post was withdrawn from
which ticket, beside the ledger. An edited post gets its new text and loses its scores, so the
next scoring pass scores it again (``ml.post_signals`` holds only posts scored as they read).

Deletions are found by asking each polling source about the posts it gave in the last
``RECHECK_DAYS`` days (:meth:`PollingSource.recheck`), at most ``RECHECK_LIMIT`` a run or the
source's ``recheck_per_run`` (default 100), least recently checked first; sources without
``recheck`` (file drop) are skipped.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

import duckdb

from social311.integrations.sources.base import SourcePlugin
from social311.records import Post

RECHECK_DAYS = 14
RECHECK_LIMIT = 500

DDL = """
create schema if not exists ops;
create table if not exists ops.post_withdrawals (
    post_id VARCHAR NOT NULL, source VARCHAR NOT NULL, native_id VARCHAR NOT NULL,
    kind VARCHAR NOT NULL,              -- 'deleted' or 'edited'
    incident_id VARCHAR, service_request_id VARCHAR, ticket_state VARCHAR,
    seen_at TIMESTAMPTZ NOT NULL, run_id VARCHAR
);
create table if not exists ops.post_rechecks (
    post_id VARCHAR PRIMARY KEY, checked_at TIMESTAMPTZ NOT NULL
);
"""

# Tables holding a post's text or what was derived from it (embedding, scores, place, type).
# Looked up by name so that a table another engineer adds later is easy to list here.
_DERIVED = ("ml.post_signals", "ml.post_types", "ml.post_locations")


@dataclass
class RecheckSummary:
    """What one source's recheck did."""

    checked: int = 0
    deleted: list[str] = field(default_factory=list)  # post ids withdrawn
    edited: list[str] = field(default_factory=list)  # post ids whose text changed
    filed_withdrawn: list[str] = field(default_factory=list)  # of the deleted, those behind a ticket
    errors: list[str] = field(default_factory=list)


def ensure_tables(con: duckdb.DuckDBPyConnection) -> None:
    """Create the withdrawal tables (idempotent)."""
    con.execute(DDL)


def _existing(con: duckdb.DuckDBPyConnection, tables: tuple[str, ...]) -> list[str]:
    rows = con.execute("select table_schema || '.' || table_name from information_schema.tables").fetchall()
    names = {r[0] for r in rows}
    return [t for t in tables if t in names]


def withdraw_posts(con: duckdb.DuckDBPyConnection, post_ids: list[str], *, run_id: str | None) -> list[str]:
    """Delete these posts' text, embedding and derived rows; record any that were behind a ticket.

    Returns the post ids that belonged to an already filed incident (their ticket stays).
    """
    ensure_tables(con)
    if not post_ids:
        return []
    now = datetime.now(timezone.utc)
    con.execute("create or replace temp table _withdraw (post_id VARCHAR)")
    con.executemany("insert into _withdraw values (?)", [(p,) for p in post_ids])
    tables = _existing(con, ("ops.incident_posts", "ops.ticket_ledger", "ops.resident_replies"))
    filed: list[tuple] = []
    if {"ops.incident_posts", "ops.ticket_ledger"} <= set(tables):
        filed = con.execute("""
            select w.post_id, ip.incident_id, l.service_request_id, l.state
            from _withdraw w join ops.incident_posts ip using (post_id)
            join ops.ticket_ledger l using (incident_id)
        """).fetchall()
    known = dict(con.execute("select post_id, source || '|' || native_id from raw.posts where post_id in "
                             "(select post_id from _withdraw)").fetchall())
    con.execute("begin transaction")
    try:
        by_post = {f[0]: f for f in filed}
        rows = []
        for post_id in post_ids:
            source, _, native = (known.get(post_id) or post_id.replace(":", "|", 1)).partition("|")
            f = by_post.get(post_id)
            rows.append((post_id, source, native, "deleted", f[1] if f else None, f[2] if f else None,
                         f[3] if f else None, now, run_id))
        con.executemany("insert into ops.post_withdrawals values (?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
        for table in _existing(con, _DERIVED):
            con.execute(f"delete from {table} where post_id in (select post_id from _withdraw)")
        if "ops.incident_posts" in tables:
            # Unfiled incidents lose the post now (it is never filed); filed ones are rebuilt
            # without it too, while their ledger row, and so the ticket, stays.
            con.execute("delete from ops.incident_posts where post_id in (select post_id from _withdraw)")
        if "ops.resident_replies" in tables:
            con.execute("delete from ops.resident_replies where state <> 'sent' and post_id in (select post_id from _withdraw)")
        con.execute("delete from raw.posts where post_id in (select post_id from _withdraw)")
        con.execute("commit")
    except Exception:
        con.execute("rollback")
        raise
    return [f[0] for f in filed]


def apply_edits(con: duckdb.DuckDBPyConnection, posts: list[Post], *, run_id: str | None) -> list[str]:
    """Store the new text of edited posts and drop their scores so they are scored again.

    Returns the ids whose text had changed (an unchanged post is left alone).
    """
    ensure_tables(con)
    changed = []
    now = datetime.now(timezone.utc)
    for post in posts:
        row = con.execute("select text from raw.posts where post_id = ?", [post.post_id]).fetchone()
        if row is None or row[0] == post.text:
            continue
        changed.append(post.post_id)
        con.execute("update raw.posts set text = ?, lang = coalesce(?, lang) where post_id = ?",
                    [post.text, post.lang, post.post_id])
        for table in _existing(con, _DERIVED):
            con.execute(f"delete from {table} where post_id = ?", [post.post_id])
        con.execute("insert into ops.post_withdrawals values (?, ?, ?, 'edited', null, null, null, ?, ?)",
                    [post.post_id, post.source, post.native_id, now, run_id])
    return changed


def recheck_source(con: duckdb.DuckDBPyConnection, source: SourcePlugin, *, pseudonym_key: str,
                   run_id: str | None, days: float = RECHECK_DAYS, limit: int = RECHECK_LIMIT) -> RecheckSummary:
    """Ask ``source`` about its recent posts; withdraw the deleted, re-score the edited."""
    summary = RecheckSummary()
    recheck = getattr(source, "recheck", None)
    if recheck is None:
        return summary
    ensure_tables(con)
    # The source's own budget when it has one: re-checks cost API calls under its rate limit.
    limit = min(limit, getattr(getattr(source, "config", None), "recheck_per_run", limit))
    if limit <= 0:
        return summary
    since = datetime.now(timezone.utc) - timedelta(days=days)
    rows = con.execute("""
        select p.post_id, p.native_id from raw.posts p left join ops.post_rechecks c using (post_id)
        where p.source = ? and p.created_at >= ?
        order by c.checked_at nulls first, p.created_at desc limit ?
    """, [source.instance_name, since, limit]).fetchall()
    if not rows:
        return summary
    by_native = {native: post_id for post_id, native in rows}
    try:
        result = recheck(list(by_native), pseudonym_key=pseudonym_key)
    except NotImplementedError:
        return summary
    summary.checked = len(rows)
    summary.errors = list(result.errors)
    deleted = [by_native[n] for n in result.deleted if n in by_native]
    summary.filed_withdrawn = withdraw_posts(con, deleted, run_id=run_id)
    summary.deleted = deleted
    summary.edited = apply_edits(con, result.current, run_id=run_id)
    now = datetime.now(timezone.utc)
    con.executemany("insert or replace into ops.post_rechecks values (?, ?)",
                    [(by_native[n], now) for n in by_native if by_native[n] not in deleted])
    return summary
