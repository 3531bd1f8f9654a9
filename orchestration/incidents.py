"""Incidents: reported posts about the same problem merged, each with a status for filing.

The checks on ``ops/incidents`` are blocking: they guard the side effect (filing tickets), so a
failure stops ``ops/ticket_ledger`` in the same run.
"""


from collections.abc import Mapping
from datetime import datetime, timezone

import dagster as dg
import numpy as np

from social311.config import CityConfig
from social311.orchestration.quality import Suite, city_check, gx_check, sql_check
from social311.orchestration.resources import CityResource
from social311.privacy import mask_personal_data
from social311.warehouse import connect, insert_many

POSTS_IN_WARDS = dg.AssetKey(["int_posts_in_wards"])
INCIDENTS = dg.AssetKey(["ops", "incidents"])
INCIDENT_POSTS = dg.AssetKey(["ops", "incident_posts"])

# Reports, and reposts of reports, with everything merging needs but the embedding (read apart,
# straight into one numpy array, and only for the posts a run merges).
REPORTS_SQL = """
    select i.post_id, i.created_at, i.type_id, i.service_code, coalesce(i.type_similarity, 0) as type_similarity,
           i.lat, i.lon, i.location_confidence, i.ward_id, i.boundary_version, coalesce(i.relevance, 0) as relevance,
           i.repost_of_post_id, i.post_text, i.ingested_at
    from int_posts_in_wards i
    where (i.is_report and i.type_id is not null)
       or i.repost_of_post_id in (select post_id from int_posts_in_wards where is_report and type_id is not null)
"""

# The earlier reports new ones can merge with: the same type within the time window (near,
# similar or text-only), the same point to 5 decimals whatever the type and time (duplicate),
# and either side of a repost link. A superset: merge_posts applies the exact rules.
NEIGHBOURS_SQL = """
    with span as (
        select type_id, min(created_at) as lo, max(created_at) as hi from merge_new group by type_id
    )
    select r.post_id from merge_reports r
    where r.post_id not in (select post_id from merge_new) and (
           exists (select 1 from span s where s.type_id = r.type_id
                   and r.created_at between s.lo - to_seconds(?::double) and s.hi + to_seconds(?::double))
        or (r.lat is not null and (round(r.lat, 5), round(r.lon, 5)) in
                (select (round(lat, 5), round(lon, 5)) from merge_new where lat is not null))
        or r.post_id in (select repost_of_post_id from merge_new)
        or r.repost_of_post_id in (select post_id from merge_new))
"""


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


def load_reports(con, post_ids: list[str]) -> tuple[list[tuple], np.ndarray]:
    """The rows of the ``merge_reports`` temp table (``REPORTS_SQL``) for ``post_ids``, in
    ingestion order, without the embedding, and their embeddings as one array.

    The embeddings come column-wise, straight into numpy (as Python lists, 50,000 of them took
    ~1.5 GB). A post without a stored embedding (skipped by the prefilter: only reposts of
    reports can be among these) gets a zero vector: it joins its original by the repost rule,
    never by text.
    """
    from social311.models.embeddings import DIMENSIONS

    rows = con.execute("select * exclude (ingested_at) from merge_reports where post_id in (select unnest(?)) "
                       "order by ingested_at, post_id", [post_ids]).fetchall()
    column = con.execute("select s.embedding from merge_reports m left join ml.post_signals s using (post_id) "
                         "where m.post_id in (select unnest(?)) order by m.ingested_at, m.post_id",
                         [post_ids]).fetchnumpy()["embedding"]
    embeddings = np.zeros((len(rows), DIMENSIONS), dtype=np.float32)
    for i, vector in enumerate(column):
        if vector is not None and vector is not np.ma.masked:
            embeddings[i] = vector
    return rows, embeddings


def _posts_for_merge(rows: list[tuple], embeddings: np.ndarray) -> list:
    from social311.models.incidents import PostForMerge

    ids = {r[0] for r in rows}
    return [PostForMerge(post_id=r[0], seen_order=i, created_at=r[1], type_id=r[2], lat=r[5], lon=r[6],
                         embedding=embeddings[i], repost_of=r[11] if r[11] in ids else None, relevance=float(r[10]),
                         location_confidence=float(r[7]), type_similarity=float(r[4]), text=r[12])
            for i, r in enumerate(rows)]


def plan_merge(merged, existing: Mapping[str, str], taken: set[str]) -> tuple[dict[str, list[str]], list]:
    """What ``merge_posts``'s groups over new posts and their earlier neighbours change.

    Earlier assignments hold whatever ``merge_posts`` now says about them (a filed incident
    keeps its posts and id even when typing, a repost link or a setting moved since): only new
    posts (not in ``existing``) are placed. A group holding an earlier incident's post sends its
    new posts to that incident (``merge_posts`` never lets one group span two earlier incidents;
    should it, the earliest member's incident wins); a group of new posts only is a new incident
    as ``merge_posts`` made it.

    Args:
        merged: ``merge_posts``'s incidents over the new posts and their neighbours.
        existing: post_id -> incident_id of the earlier posts among them.
        taken: every incident id the warehouse holds.

    Returns:
        ``(incident_id -> new post ids, in seen order)`` for earlier incidents that grow, and
        the new incidents.

    Raises:
        RuntimeError: a new incident's id already names an incident (never expected: ids derive
            from an anchor post, and a new incident's posts are in no incident).
    """
    grown: dict[str, list[str]] = {}
    fresh = []
    for inc in merged:
        new = [p for p in inc.post_ids if p not in existing]
        if not new:
            continue
        old = [p for p in inc.post_ids if p in existing]  # post_ids run in seen order
        if old:
            grown.setdefault(existing[old[0]], []).extend(new)
        elif inc.incident_id in taken:
            raise RuntimeError(f"incident id {inc.incident_id} would name two incidents")
        else:
            fresh.append(inc)
    return grown, fresh


def _incident_row(inc, by_id: Mapping[str, tuple], cfg: CityConfig, now: datetime) -> tuple:
    """The ``ops.incidents`` row of a merged incident (its ward, service and status from its posts)."""
    members = [by_id[p] for p in inc.post_ids]
    located = [m for m in members if m[5] is not None]
    best = max(located, key=lambda m: m[7]) if located else None
    typed = next((m for m in members if m[3] is not None), members[0])
    ward_id = best[8] if best else None
    status = incident_status(service_code=typed[3], lat=inc.lat, ward_id=ward_id, confidence=inc.confidence, cfg=cfg)
    text = mask_personal_data(by_id[inc.representative_post_id][12])[:500]
    return (inc.incident_id, inc.type_id or typed[2], typed[3], ward_id, best[9] if best else None,
            inc.lat, inc.lon, inc.first_seen_at, inc.last_seen_at, len(inc.post_ids), text,
            float(inc.confidence), status, now)


def update_incidents(con, cfg: CityConfig, *, run_id: str | None = None) -> dict:
    """Merge this run's new reports into incidents, touching only the incidents they change.

    Reports not yet in any incident are merged with each other and with their neighbourhood of
    earlier reports (``NEIGHBOURS_SQL``); earlier posts never move and earlier incidents are
    never split or merged together (``plan_merge``), so ids and filed tickets stay put. Only the
    incidents that gained posts (re-derived with ``summarize_incident``) and the new ones are
    written. Reviewers' labels are applied afterwards, every run. Returns figures for the run's
    metadata.
    """
    from social311.models.incidents import merge_posts, options_from, summarize_incident

    t = cfg.thresholds
    now = datetime.now(timezone.utc)
    con.execute(f"create or replace temp table merge_reports as {REPORTS_SQL}")
    con.execute("create or replace temp table merge_new as select * from merge_reports "
                "where post_id not in (select post_id from ops.incident_posts)")
    try:
        new_ids = [r[0] for r in con.execute("select post_id from merge_new").fetchall()]
        grown, fresh, by_id, members, neighbours = {}, [], {}, {}, []
        if new_ids:
            window_s = t.merge_window_hours * 3600
            neighbours = [r[0] for r in con.execute(NEIGHBOURS_SQL, [window_s, window_s]).fetchall()]
            existing = dict(con.execute("select post_id, incident_id from ops.incident_posts "
                                        "where post_id in (select unnest(?))", [neighbours]).fetchall()) if neighbours else {}
            taken = {r[0] for r in con.execute("select incident_id from ops.incidents union "
                                               "select incident_id from ops.incident_posts").fetchall()}
            rows, embeddings = load_reports(con, new_ids + neighbours)
            # Per-type rules, template texts and caps (models/incidents.py) need the type names.
            catalog = con.execute("select type_id, label, service_code from ml.issue_types").fetchall()
            merged = merge_posts(_posts_for_merge(rows, embeddings), radius_m=t.merge_radius_m,
                                 window_hours=t.merge_window_hours, text_similarity=t.merge_text_similarity,
                                 unlocated_text_similarity=t.unlocated_merge_text_similarity, existing=existing,
                                 **options_from(t, {c: i for i, _, c in catalog if c}, {i: n for i, n, _ in catalog}))
            by_id = {r[0]: r for r in rows}
            del rows, embeddings
            grown, fresh = plan_merge(merged, existing, taken)
            if grown:
                # Each growing incident is re-derived from all its posts, earlier ones included.
                for inc, pid, why in con.execute("select incident_id, post_id, merge_reason from ops.incident_posts "
                                                 "where incident_id in (select unnest(?))", [list(grown)]).fetchall():
                    members.setdefault(inc, {})[pid] = why
                reasons = {p: why for inc in merged for p, why in inc.merge_reasons.items()}
                for inc, new in grown.items():
                    for pid in new:
                        members.setdefault(inc, {})[pid] = reasons.get(pid, "anchor")
                wanted = sorted({pid for m in members.values() for pid in m})
                member_rows, member_embeddings = load_reports(con, wanted)
                by_id.update({r[0]: r for r in member_rows})
                member_posts = {p.post_id: p for p in _posts_for_merge(member_rows, member_embeddings)}
    finally:
        con.execute("drop table if exists merge_new")
        con.execute("drop table if exists merge_reports")
    incident_rows, new_members = [], []
    for inc in fresh:
        incident_rows.append(_incident_row(inc, by_id, cfg, now))
        new_members.extend((inc.incident_id, p, inc.merge_reasons.get(p, "anchor")) for p in inc.post_ids)
    for inc_id, why in members.items():
        present = [member_posts[p] for p in why if p in member_posts]  # a post may no longer be a report
        if present:
            incident_rows.append(_incident_row(summarize_incident(present, inc_id, why), by_id, cfg, now))
        new_members.extend((inc_id, p, why[p]) for p in grown[inc_id])
    statuses: dict[str, int] = {}
    for r in incident_rows:
        statuses[r[12]] = statuses.get(r[12], 0) + 1
    con.execute("begin transaction")
    try:
        if members:
            con.execute("delete from ops.incidents where incident_id in (select unnest(?))", [list(members)])
        insert_many(con, "insert into ops.incidents values (" + ", ".join(["?"] * 14) + ")", incident_rows)
        insert_many(con, "insert into ops.incident_posts values (?, ?, ?)", new_members)
        labelled = apply_review_labels(con)
        # One bad incident is held (with its reason), not the whole city: see orchestration/screening.py.
        from social311.orchestration.screening import screen_ready_incidents
        screened = screen_ready_incidents(con, cfg, ready_incidents_suite(cfg.bbox), run_id=run_id)
        con.execute("commit")
    except BaseException:
        con.execute("rollback")
        raise
    total = con.execute("select count(*) from ops.incidents").fetchone()[0]
    return {"new_reports": len(new_ids), "neighbours": len(neighbours), "incidents": total,
            "incidents_written": len(incident_rows), "new_incidents": len(fresh), "incidents_grown": len(grown),
            "review_labels_applied": labelled, "screening": screened,
            **{f"written_status_{k}": v for k, v in statuses.items()}}


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
    """Merges this run's new reports into incidents with stable ids (only touched incidents are rewritten)."""
    cfg = city.load()
    with connect(cfg.duckdb_path) as con:
        figures = update_incidents(con, cfg, run_id=context.run_id)
    screened = figures.pop("screening")
    if screened["held"] or screened["systemic"]:
        context.log.warning(f"screening: {screened['failing']} of {screened['ready']} ready incidents fail the blocking "
                            "suite; " + (screened.get("error") or "too many to be one bad input: none held, the blocking check decides"
                                         if screened["systemic"] else f"held (quarantine stage 'screening'): {screened['held']}"))
    figures["held_by_screening"] = len(screened["held"])
    context.log.info(f"{figures['new_reports']} new reports (with {figures['neighbours']} earlier ones nearby) merged: "
                     f"{figures['new_incidents']} new incidents, {figures['incidents_written']} written, "
                     f"{figures['incidents']} in all; {figures['review_labels_applied']} reviewer labels applied")
    yield dg.MaterializeResult(asset_key=INCIDENTS, metadata={**figures, "reports": figures["new_reports"]})
    yield dg.MaterializeResult(asset_key=INCIDENT_POSTS, metadata={"new_posts": figures["new_reports"]})


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


@city_check(asset=INCIDENTS, name="ready_incidents_expectations", blocking=True,
            description="Incidents ready to file have a service, a ward, a location in the city and no personal data.")
def ready_incidents_check(con, cfg) -> tuple[bool, dict]:
    from social311.orchestration.quality import validate

    frame = con.execute("select * from ops.incidents where status = 'ready'").df()
    return validate(frame, ready_incidents_suite(cfg.bbox))


@city_check(asset=INCIDENTS, name="incident_size_within_cap",
            description="No incident holds more posts (reposts aside) than thresholds.merge_max_posts.")
def incident_size_check(con, cfg) -> tuple[bool, dict]:
    cap = cfg.thresholds.merge_max_posts
    rows = con.execute("""select incident_id, count(*) as posts from ops.incident_posts where merge_reason <> 'repost'
                          group by incident_id order by posts desc limit 5""").fetchall()
    largest = rows[0][1] if rows else 0
    over = [r for r in rows if cap is not None and r[1] > cap]
    return not over, {"cap": cap if cap is not None else "none", "largest": largest, "over_cap": str(over)[:500]}


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
