"""Ingest: posts from every source plugin into ``raw.posts``; bad records into quarantine."""


from datetime import datetime, timezone

import dagster as dg

from social311.orchestration.quality import Suite, gx_check
from social311.orchestration.withdrawals import recheck_source
from social311.orchestration.resources import CityResource
from social311.privacy import mask_personal_data
from social311.records import Post, Reject
from social311.warehouse import connect, insert_many

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


@dg.asset(key=RAW_POSTS, group_name="ingest", compute_kind="python")
def raw_posts(context: dg.AssetExecutionContext, city: CityResource) -> dg.MaterializeResult:
    """Posts fetched from every source plugin since its cursor; malformed records quarantined."""
    cfg = city.load()
    key = city.pseudonym_key()
    now = datetime.now(timezone.utc)
    counts = {"fetched": 0, "new": 0, "quarantined": 0}
    with connect(cfg.duckdb_path) as con:
        for source in city.sources():
            cursor = con.execute("select cursor from ops.source_cursors where source = ?", [source.instance_name]).fetchone()
            result = source.fetch(cursor[0] if cursor else None, pseudonym_key=key)
            before = con.execute("select count(*) from raw.posts").fetchone()[0]
            rows = [post_row(p, ingested_at=now, run_id=context.run_id) for p in result.posts]
            if rows:
                placeholders = ", ".join(["?"] * len(rows[0]))
                insert_many(con, f"insert into raw.posts values ({placeholders}) on conflict (post_id) do nothing", rows)
            new = con.execute("select count(*) from raw.posts").fetchone()[0] - before
            quarantine(con, result.rejects, stage="ingest", run_id=context.run_id)
            if result.cursor is not None:
                con.execute("insert or replace into ops.source_cursors values (?, ?, ?)", [source.instance_name, result.cursor, now])
            context.log.info(f"source {source.instance_name}: {len(result.posts)} fetched, {new} new, "
                             f"{len(result.rejects)} quarantined")
            # Posts deleted or edited on the platform since (orchestration/withdrawals.py).
            rechecked = recheck_source(con, source, pseudonym_key=key, run_id=context.run.run_id)
            if rechecked.checked:
                context.log.info(f"source {source.instance_name}: {rechecked.checked} re-checked, "
                                 f"{len(rechecked.deleted)} deleted ({len(rechecked.filed_withdrawn)} behind a "
                                 f"ticket, kept), {len(rechecked.edited)} edited, {len(rechecked.errors)} not checked")
                counts["withdrawn"] = counts.get("withdrawn", 0) + len(rechecked.deleted)
                counts["edited"] = counts.get("edited", 0) + len(rechecked.edited)
            counts["fetched"] += len(result.posts)
            counts["new"] += new
            counts["quarantined"] += len(result.rejects)
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
