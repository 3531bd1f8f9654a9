"""Incidents: reported posts about the same problem merged, each with a status for filing.

The checks on ``ops/incidents`` are blocking: they guard the side effect (filing tickets), so a
failure stops ``ops/ticket_ledger`` in the same run.
"""


from datetime import datetime, timezone

import dagster as dg
import numpy as np

from social311.config import CityConfig
from social311.orchestration.quality import Suite, gx_check, sql_check
from social311.orchestration.resources import CityResource
from social311.privacy import mask_personal_data
from social311.warehouse import connect, insert_many

POSTS_IN_WARDS = dg.AssetKey(["int_posts_in_wards"])
INCIDENTS = dg.AssetKey(["ops", "incidents"])
INCIDENT_POSTS = dg.AssetKey(["ops", "incident_posts"])

# Reports, and reposts of reports, with everything merging needs (the embeddings are read
# apart, straight into one numpy array: as Python lists, 50,000 of them took ~1.5 GB).
REPORTS_SQL = """
    select i.post_id, i.created_at, i.type_id, i.service_code, coalesce(i.type_similarity, 0) as type_similarity,
           i.lat, i.lon, i.location_confidence, i.ward_id, i.boundary_version, coalesce(i.relevance, 0) as relevance,
           i.repost_of_post_id, i.post_text, s.embedding,
           row_number() over (order by i.ingested_at, i.post_id) as k
    from int_posts_in_wards i
    join ml.post_signals s using (post_id)
    where (i.is_report and i.type_id is not null)
       or i.repost_of_post_id in (select post_id from int_posts_in_wards where is_report and type_id is not null)
"""


def load_reports(con) -> tuple[list[tuple], np.ndarray]:
    """The rows of ``REPORTS_SQL`` in ingestion order (without the embedding) and their embeddings.

    A post without a stored embedding (skipped by the prefilter: only reposts of reports can be
    among these) gets a zero vector: it joins its original by the repost rule, never by text.
    """
    from social311.models.embeddings import DIMENSIONS

    con.execute(f"create or replace temp table merge_reports as {REPORTS_SQL}")
    try:
        rows = con.execute("select * exclude (embedding, k) from merge_reports order by k").fetchall()
        column = con.execute("select embedding from merge_reports order by k").fetchnumpy()["embedding"]
    finally:
        con.execute("drop table if exists merge_reports")
    embeddings = np.zeros((len(rows), DIMENSIONS), dtype=np.float32)
    for i, vector in enumerate(column):
        if vector is not None and vector is not np.ma.masked:
            embeddings[i] = vector
    return rows, embeddings


def incident_status(*, service_code: str | None, lat: float | None, ward_id: str | None, confidence: float,
                    cfg: CityConfig) -> str:
    """Whether an incident may be filed, and if not, why (pure; table-tested)."""
    if lat is None:
        return "unlocated"
    if ward_id is None:
        return "outside_wards"
    if service_code is None:
        return "untyped"
    if confidence < cfg.thresholds.file_min_confidence:
        return "review"
    return "ready"


def apply_review_labels(con) -> int:
    """Reviewers' labels over the freshly written incidents (accept/reject/relabel); returns how many.

    Incident ids are stable, so a label given once holds on every later run.
    """
    from social311.models.review import apply_label, labels

    applied = 0
    for incident_id, (action, code) in labels(con).items():
        row = con.execute("select status, service_code from ops.incidents where incident_id = ?", [incident_id]).fetchone()
        if row is None:
            continue
        status, service_code = apply_label(row[0], row[1], action, code)
        con.execute("update ops.incidents set status = ?, service_code = ? where incident_id = ?",
                    [status, service_code, incident_id])
        applied += 1
    return applied


@dg.multi_asset(
    specs=[
        dg.AssetSpec(INCIDENTS, deps=[POSTS_IN_WARDS], group_name="incidents",
                     description="Posts about one problem merged (reposts; same type, place, time and similar text)."),
        dg.AssetSpec(INCIDENT_POSTS, deps=[POSTS_IN_WARDS], group_name="incidents",
                     description="Which posts make up each incident, and why they were merged."),
    ],
    compute_kind="python",
)
def incidents(context: dg.AssetExecutionContext, city: CityResource):
    """Merges reported posts into incidents with stable ids."""
    from social311.models.incidents import PostForMerge, merge_posts, options_from

    cfg = city.load()
    t = cfg.thresholds
    with connect(cfg.duckdb_path) as con:
        rows, embeddings = load_reports(con)
        # Earlier assignments hold: a filed incident keeps its posts and its id.
        existing = dict(con.execute("select post_id, incident_id from ops.incident_posts").fetchall())
        catalog = con.execute("select type_id, label, service_code from ml.issue_types").fetchall()
    by_id = {r[0]: r for r in rows}
    posts = [
        PostForMerge(post_id=r[0], seen_order=i, created_at=r[1], type_id=r[2], lat=r[5], lon=r[6],
                     embedding=embeddings[i],
                     repost_of=r[11] if r[11] in by_id else None, relevance=float(r[10]), location_confidence=float(r[7]),
                     type_similarity=float(r[4]), text=r[12])
        for i, r in enumerate(rows)
    ]
    merged = merge_posts(posts, radius_m=t.merge_radius_m, window_hours=t.merge_window_hours,
                         text_similarity=t.merge_text_similarity, unlocated_text_similarity=t.unlocated_merge_text_similarity,
                         existing=existing, **options_from(t, {c: i for i, _, c in catalog if c}, {i: n for i, n, _ in catalog}))
    now = datetime.now(timezone.utc)
    incident_rows, member_rows, statuses = [], [], {}
    for inc in merged:
        members = [by_id[p] for p in inc.post_ids]
        located = [m for m in members if m[5] is not None]
        best = max(located, key=lambda m: m[7]) if located else None
        anchor = by_id[inc.post_ids[0]] if inc.post_ids else members[0]
        typed = next((m for m in members if m[3] is not None), anchor)
        ward_id = best[8] if best else None
        status = incident_status(service_code=typed[3], lat=inc.lat, ward_id=ward_id, confidence=inc.confidence, cfg=cfg)
        statuses[status] = statuses.get(status, 0) + 1
        text = mask_personal_data(by_id[inc.representative_post_id][12])[:500]
        incident_rows.append((inc.incident_id, inc.type_id or typed[2], typed[3], ward_id, best[9] if best else None,
                              inc.lat, inc.lon, inc.first_seen_at, inc.last_seen_at, len(inc.post_ids), text,
                              float(inc.confidence), status, now))
        member_rows.extend((inc.incident_id, pid, inc.merge_reasons.get(pid, "anchor")) for pid in inc.post_ids)
    with connect(cfg.duckdb_path) as con:
        # Rewritten whole each run; ids are stable (earlier assignments are kept, new incidents
        # are anchored on their first-seen post), so the ledger never sees a filed one as new.
        con.execute("begin transaction")
        con.execute("delete from ops.incident_posts")
        con.execute("delete from ops.incidents")
        insert_many(con, "insert into ops.incidents values (" + ", ".join(["?"] * 14) + ")", incident_rows)
        insert_many(con, "insert into ops.incident_posts values (?, ?, ?)", member_rows)
        labelled = apply_review_labels(con)
        con.execute("commit")
    context.log.info(f"{len(rows)} reports merged into {len(merged)} incidents: {statuses}; {labelled} reviewer labels applied")
    yield dg.MaterializeResult(asset_key=INCIDENTS, metadata={"incidents": len(merged), "reports": len(rows),
                                                              "review_labels_applied": labelled,
                                                              **{f"status_{k}": v for k, v in statuses.items()}})
    yield dg.MaterializeResult(asset_key=INCIDENT_POSTS, metadata={"posts": len(member_rows)})


def ready_incidents_suite(cfg_bbox: tuple[float, float, float, float] | None) -> Suite:
    """Expectations every incident about to be filed must meet."""
    expectations: list = [
        ("ExpectColumnValuesToBeUnique", {"column": "incident_id"}),
        ("ExpectColumnValuesToNotBeNull", {"column": "service_code"}),
        ("ExpectColumnValuesToNotBeNull", {"column": "ward_id"}),
        ("ExpectColumnValuesToNotBeNull", {"column": "lat"}),
        ("ExpectColumnValuesToBeBetween", {"column": "post_count", "min_value": 1}),
        ("ExpectColumnValuesToBeBetween", {"column": "confidence", "min_value": 0, "max_value": 1}),
        ("ExpectColumnValueLengthsToBeBetween", {"column": "representative_text", "min_value": 1, "max_value": 4000}),
        # Personal data never leaves in a ticket: no handle, no e-mail address.
        ("ExpectColumnValuesToNotMatchRegex", {"column": "representative_text", "regex": r"@(?!user\b)\w"}),
    ]
    if cfg_bbox:
        min_lon, min_lat, max_lon, max_lat = cfg_bbox
        expectations += [("ExpectColumnValuesToBeBetween", {"column": "lat", "min_value": min_lat, "max_value": max_lat}),
                         ("ExpectColumnValuesToBeBetween", {"column": "lon", "min_value": min_lon, "max_value": max_lon})]
    return Suite(name="ready_incidents_expectations", expectations=tuple(expectations))


@dg.asset_check(asset=INCIDENTS, name="ready_incidents_expectations", blocking=True,
                description="Incidents ready to file have a service, a ward, a location in the city and no personal data.")
def ready_incidents_check(context: dg.AssetCheckExecutionContext, city: CityResource) -> dg.AssetCheckResult:
    from social311.orchestration.quality import validate

    cfg = city.load()
    with connect(cfg.duckdb_path) as con:
        frame = con.execute("select * from ops.incidents where status = 'ready'").df()
    success, metadata = validate(frame, ready_incidents_suite(cfg.bbox))
    return dg.AssetCheckResult(passed=success, metadata=metadata)


@dg.asset_check(asset=INCIDENTS, name="incident_size_within_cap",
                description="No incident holds more posts (reposts aside) than thresholds.merge_max_posts.")
def incident_size_check(context: dg.AssetCheckExecutionContext, city: CityResource) -> dg.AssetCheckResult:
    cap = city.load().thresholds.merge_max_posts
    with connect(city.load().duckdb_path) as con:
        rows = con.execute("""select incident_id, count(*) as posts from ops.incident_posts where merge_reason <> 'repost'
                              group by incident_id order by posts desc limit 5""").fetchall()
    largest = rows[0][1] if rows else 0
    over = [r for r in rows if cap is not None and r[1] > cap]
    return dg.AssetCheckResult(passed=not over, metadata={"cap": cap if cap is not None else "none", "largest": largest,
                                                          "over_cap": str(over)[:500]})


def defs() -> dg.Definitions:
    return dg.Definitions(
        assets=[incidents],
        asset_checks=[
            ready_incidents_check,
            incident_size_check,
            sql_check(asset=INCIDENTS, name="no_report_lost", blocking=True,
                      description="Every typed report belongs to exactly one incident.",
                      query="""select post_id from int_posts_in_wards where is_report and type_id is not null
                               and post_id not in (select post_id from ops.incident_posts)"""),
            gx_check(asset=INCIDENT_POSTS, suite=Suite(name="incident_posts_expectations", expectations=(
                ("ExpectColumnValuesToBeUnique", {"column": "post_id"}),
                ("ExpectColumnValuesToNotBeNull", {"column": "incident_id"}),
            )), description="Each post is in at most one incident.", query="select incident_id, post_id from ops.incident_posts"),
        ],
    )
