"""Ingest: posts from every source plugin into ``raw.posts``; bad records into quarantine."""


from datetime import datetime, timedelta, timezone

import dagster as dg
import pandas as pd

from social311.config import CityConfig
from social311.orchestration.quality import Suite, gx_check
from social311.orchestration.withdrawals import recheck_source
from social311.orchestration.resources import CityResource
from social311.privacy import mask_personal_data
from social311.records import Post, PostLimits, Reject, implausible
from social311.warehouse import connect, insert_many, registered

RAW_POSTS = dg.AssetKey(["raw", "posts"])


def post_row(post: Post, *, ingested_at: datetime, run_id: str) -> tuple:
    """The ``raw.posts`` row of one post (column order of ``TABLES['raw.posts']``)."""
    bbox = post.place_bbox or (None, None, None, None)
    return (post.post_id, post.source, post.native_id, post.text, post.created_at, post.author_hash,
            post.lat, post.lon, post.place_name, *bbox, post.repost_of, post.reply_to,
            post.mentions_city, post.lang, post.url, ingested_at, run_id)


def quarantine(con, rejects: list[Reject], *, stage: str, run_id: str) -> None:
    """Keep rejected records with their reason (personal data masked), never drop them."""
    now = datetime.now(timezone.utc)
    insert_many(
            con,
        "insert into quarantine.records values (?, ?, ?, ?, ?, ?, ?)",
        [(stage, r.source, r.record_ref, r.reason, mask_personal_data(r.raw_excerpt)[:500], now, run_id) for r in rejects],
    )


def post_limits(cfg: CityConfig) -> PostLimits:
    """The plausibility rules of the city config (``ingest`` settings and ``bbox``)."""
    settings = cfg.ingest
    return PostLimits(earliest=datetime.combine(settings.earliest_post, datetime.min.time(), tzinfo=timezone.utc),
                      future_tolerance=timedelta(hours=settings.future_tolerance_hours),
                      city_bbox=cfg.bbox if settings.swapped_axes_check else None)


# Columns an edit rewrites (all but the key, the source and when/which run first stored it).
_EDITABLE = ("text", "created_at", "author_hash", "lat", "lon", "place_name", "place_min_lon", "place_min_lat",
             "place_max_lon", "place_max_lat", "repost_of", "reply_to", "mentions_city", "lang", "url")
# What is derived from a post's text: dropped on an edit so the next assets score it again.
_DERIVED = ("ml.post_signals", "ml.post_types", "ml.post_locations")


def store_posts(con, posts: list[Post], *, limits: PostLimits, now: datetime, run_id: str) -> dict:
    """Store a source's valid posts: new ones inserted, edits (a known id, other text) rewritten.

    Returns:
        ``{"new": n, "edited": n, "unchanged": n, "rejects": [Reject, ...]}``; posts refused
        by ``limits`` come back as rejects (stage ``ingest``), so posts in = new + edited +
        unchanged + rejects.
    """
    rejects, kept, seen = [], [], set()
    for post in posts:
        reason = implausible(post, limits, now=now)
        if reason is None and post.post_id in seen:  # a plugin that does not dedupe its own batch
            reason = f"duplicate id {post.native_id!r} within one fetch"
        if reason:
            rejects.append(Reject(source=post.source, record_ref=post.post_id, reason=reason, raw_excerpt=post.text[:200]))
        else:
            seen.add(post.post_id)
            kept.append(post)
    stored: dict[str, str] = {}
    if kept:
        with registered(con, pd.DataFrame({"post_id": [p.post_id for p in kept]}), "incoming") as view:
            stored = dict(con.execute(f"select p.post_id, p.text from raw.posts p join {view} v using (post_id)").fetchall())
    new = [p for p in kept if p.post_id not in stored]
    edits = [p for p in kept if p.post_id in stored and stored[p.post_id] != p.text]
    rows = [post_row(p, ingested_at=now, run_id=run_id) for p in new]
    if rows:
        insert_many(con, f"insert into raw.posts values ({', '.join(['?'] * len(rows[0]))}) on conflict (post_id) do nothing", rows)
    for post in edits:
        row = post_row(post, ingested_at=now, run_id=run_id)
        values = dict(zip(("post_id", "source", "native_id", *_EDITABLE), row[:3] + row[3:18]))
        # ingested_at moves to now: an edit is new input for every incremental step downstream.
        con.execute(f"update raw.posts set {', '.join(f'{c} = ?' for c in _EDITABLE)}, ingested_at = ?, "
                    "ingest_run_id = ? where post_id = ?",
                    [values[c] for c in _EDITABLE] + [now, run_id, post.post_id])
        for table in _DERIVED:
            con.execute(f"delete from {table} where post_id = ?", [post.post_id])
    return {"new": len(new), "edited": len(edits), "unchanged": len(kept) - len(new) - len(edits), "rejects": rejects}


@dg.asset(key=RAW_POSTS, group_name="ingest", compute_kind="python")
def raw_posts(context: dg.AssetExecutionContext, city: CityResource) -> dg.MaterializeResult:
    """Posts fetched from every source plugin since its cursor; malformed records quarantined."""
    cfg = city.load()
    key = city.pseudonym_key()
    limits = post_limits(cfg)
    now = datetime.now(timezone.utc)
    counts = {"fetched": 0, "new": 0, "edited": 0, "unchanged": 0, "quarantined": 0, "failed_sources": 0}
    with connect(cfg.duckdb_path) as con:
        for source in city.sources():
            cursor = con.execute("select cursor from ops.source_cursors where source = ?", [source.instance_name]).fetchone()
            try:
                result = source.fetch(cursor[0] if cursor else None, pseudonym_key=key)
            except Exception as exc:  # noqa: BLE001 - one broken source must not stop the others
                reason = f"source failed: {type(exc).__name__}: {' '.join(str(exc).split())[:500]}"
                quarantine(con, [Reject(source=source.instance_name, record_ref="fetch", reason=reason)],
                           stage="ingest", run_id=context.run.run_id)
                context.log.warning(f"source {source.instance_name}: {reason} (cursor kept; other sources go on)")
                counts["failed_sources"] += 1
                continue
            # One transaction per source: posts, quarantine and cursor move together or not at all.
            con.execute("begin transaction")
            stored = store_posts(con, result.posts, limits=limits, now=now, run_id=context.run.run_id)
            rejects = result.rejects + stored["rejects"]
            quarantine(con, rejects, stage="ingest", run_id=context.run.run_id)
            if result.cursor is not None:
                con.execute("insert or replace into ops.source_cursors values (?, ?, ?)", [source.instance_name, result.cursor, now])
            con.execute("commit")
            context.log.info(f"source {source.instance_name}: {len(result.posts)} fetched, {stored['new']} new, "
                             f"{stored['edited']} edited, {stored['unchanged']} unchanged, {len(rejects)} quarantined")
            # Posts deleted or edited on the platform since (orchestration/withdrawals.py).
            rechecked = recheck_source(con, source, pseudonym_key=key, run_id=context.run.run_id)
            if rechecked.checked:
                context.log.info(f"source {source.instance_name}: {rechecked.checked} re-checked, "
                                 f"{len(rechecked.deleted)} deleted ({len(rechecked.filed_withdrawn)} behind a "
                                 f"ticket, kept), {len(rechecked.edited)} edited, {len(rechecked.errors)} not checked")
                counts["withdrawn"] = counts.get("withdrawn", 0) + len(rechecked.deleted)
                counts["edited_on_platform"] = counts.get("edited_on_platform", 0) + len(rechecked.edited)
            counts["fetched"] += len(result.posts)
            for name in ("new", "edited", "unchanged"):
                counts[name] += stored[name]
            counts["quarantined"] += len(rejects)
        total = con.execute("select count(*) from raw.posts").fetchone()[0]
    return dg.MaterializeResult(metadata={**counts, "total_posts": total})


raw_posts_suite = Suite(
    name="raw_posts_expectations",
    expectations=(
        ("ExpectColumnValuesToBeUnique", {"column": "post_id"}),
        ("ExpectColumnValuesToNotBeNull", {"column": "text"}),
        ("ExpectColumnValueLengthsToBeBetween", {"column": "text", "min_value": 1, "max_value": 10_000}),
        ("ExpectColumnValuesToNotBeNull", {"column": "created_at"}),
        ("ExpectColumnValuesToBeBetween", {"column": "lat", "min_value": -90, "max_value": 90}),
        ("ExpectColumnValuesToBeBetween", {"column": "lon", "min_value": -180, "max_value": 180}),
        # Authors are pseudonymised before storage: a raw handle here is a privacy bug.
        ("ExpectColumnValuesToNotMatchRegex", {"column": "author_hash", "regex": "^@"}),
    ),
)


def defs() -> dg.Definitions:
    return dg.Definitions(
        assets=[raw_posts],
        asset_checks=[gx_check(asset=RAW_POSTS, suite=raw_posts_suite, description="Posts are unique, non-empty, dated, in range and pseudonymised.",
                               query="select post_id, text, created_at, lat, lon, author_hash from raw.posts")],
    )
