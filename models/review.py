"""The review queue: incidents too uncertain to file wait for a person's label.

An incident whose confidence is below ``file_min_confidence`` gets status ``review``. A
reviewer (``social311 review``) accepts it, rejects it or relabels it with another service
code; the label is kept in ``ops.review_labels`` under the incident id, which is stable across
runs, so it holds however often incidents are recomputed:

* ``accept``  — ``review`` becomes ``ready``: filed on the next run.
* ``reject``  — ``rejected`` whatever its score: never filed.
* ``relabel`` — filed under the new service code (``review``/``untyped`` become ``ready``).

Labels are also training data: the posts of accepted or relabelled incidents become extra
positives of the relevance model, those of rejected ones extra negatives (``labelled_post_texts``),
and the posts of accepted or relabelled incidents pull their service's type centroid towards
them (``typed_examples``, ``issue_types.with_examples``).

Posts too: a post below the relevance threshold in a language the model cannot read waits in
``ml.language_review`` (``models/language.py``). A reviewer accepts it (``record_post_label``;
``ml/post_signals`` re-scores it as a report on the next run, embedded, and it flows on to
typing, location, merging and filing) or rejects it (it stays chatter). The label is kept in
``ops.post_review_labels``; either way the post leaves the queue (``list_post_queue``) and,
once embedded, is a relevance training example (``labelled_post_texts``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone

import numpy as np

ACTIONS = ("accept", "reject", "relabel")
POST_ACTIONS = ("accept", "reject")
# Statuses a label may turn into ``ready``: the others lack a place or a ward, and the
# blocking checks would refuse them anyway.
FILEABLE_WITH_LABEL = {"accept": ("review",), "relabel": ("review", "untyped", "ready")}


class LabelError(ValueError):
    """A label that cannot be recorded (unknown incident, unknown service code)."""


@dataclass(frozen=True)
class QueuedIncident:
    incident_id: str
    service_code: str | None
    ward_id: str | None
    confidence: float
    post_count: int
    text: str


@dataclass(frozen=True)
class QueuedPost:
    """A post routed to language review (``ml.language_review``) and not labelled yet."""

    post_id: str
    lang: str
    relevance: float | None
    reason: str
    text: str


def apply_label(status: str, service_code: str | None, action: str | None,
                new_code: str | None = None) -> tuple[str, str | None]:
    """An incident's (status, service_code) after its label (pure; table-tested)."""
    if action is None:
        return status, service_code
    if action == "reject":
        return "rejected", service_code
    if action == "relabel":
        return ("ready" if status in FILEABLE_WITH_LABEL["relabel"] else status), new_code
    if action == "accept":
        return ("ready" if status in FILEABLE_WITH_LABEL["accept"] else status), service_code
    raise ValueError(f"unknown review action {action!r}")


def record_label(con, incident_id: str, action: str, service_code: str | None = None) -> None:
    """Keep a reviewer's label (the latest label of an incident wins)."""
    if action not in ACTIONS:
        raise LabelError(f"unknown action {action!r}; choose one of {ACTIONS}")
    if not con.execute("select 1 from ops.incidents where incident_id = ?", [incident_id]).fetchone():
        raise LabelError(f"no incident {incident_id}")
    if action == "relabel":
        known = con.execute("select 1 from ops.service_catalog where service_code = ?", [service_code]).fetchone()
        if not known:
            raise LabelError(f"{service_code!r} is not a service code of the catalog")
    con.execute("insert or replace into ops.review_labels values (?, ?, ?, ?)",
                [incident_id, action, service_code if action == "relabel" else None, datetime.now(timezone.utc)])


def list_queue(con) -> list[QueuedIncident]:
    """Incidents waiting for review and not labelled yet, least confident first."""
    rows = con.execute(
        "select incident_id, service_code, ward_id, confidence, post_count, representative_text from ops.incidents "
        "where status = 'review' and incident_id not in (select incident_id from ops.review_labels) "
        "order by confidence, incident_id").fetchall()
    return [QueuedIncident(r[0], r[1], r[2], float(r[3]), int(r[4]), r[5] or "") for r in rows]


def _has_post_labels(con) -> bool:
    # A warehouse opened read-only is not migrated (core/warehouse.py ensure_tables): before its
    # first run with this version it has no ops.post_review_labels, and so no label yet.
    return bool(con.execute("select 1 from duckdb_tables() where schema_name = 'ops' and table_name = 'post_review_labels' "
                            "and database_name = current_database()").fetchone())


def record_post_label(con, post_id: str, action: str) -> None:
    """Keep a reviewer's label of a post in language review (the latest label of a post wins)."""
    if action not in POST_ACTIONS:
        raise LabelError(f"unknown action {action!r}; choose one of {POST_ACTIONS}")
    if not con.execute("select 1 from ml.language_review where post_id = ?", [post_id]).fetchone():
        raise LabelError(f"no post {post_id} in language review")
    if con.execute("select 1 from ml.post_signals where post_id = ? and is_report", [post_id]).fetchone():
        # Accepted earlier and a report since the run after: it may already be in an incident or a ticket.
        raise LabelError(f"post {post_id} is a report already (accepted earlier); review its incident instead")
    con.execute("insert or replace into ops.post_review_labels values (?, ?, ?)",
                [post_id, action, datetime.now(timezone.utc)])


def list_post_queue(con) -> list[QueuedPost]:
    """Posts waiting in language review and not labelled yet, oldest first, with their (pseudonymised) text."""
    unlabelled = "where l.post_id not in (select post_id from ops.post_review_labels)" if _has_post_labels(con) else ""
    # The texts live in dbt's staging model, absent from a warehouse that dbt has not built yet.
    staged = con.execute("select 1 from information_schema.tables where table_name = 'stg_social__posts' "
                         "and table_catalog = current_database()").fetchone()
    text = "p.post_text" if staged else "null"
    join = "left join stg_social__posts p using (post_id)" if staged else ""
    rows = con.execute(
        f"select l.post_id, l.lang, l.relevance, l.reason, {text} from ml.language_review l "
        f"{join} {unlabelled} order by l.routed_at, l.post_id").fetchall()
    return [QueuedPost(r[0], r[1], None if r[2] is None else float(r[2]), r[3], r[4] or "") for r in rows]


def count_post_queue(con) -> int:
    """How many posts wait in language review without a label (the run summary's warning)."""
    unlabelled = "where post_id not in (select post_id from ops.post_review_labels)" if _has_post_labels(con) else ""
    return con.execute(f"select count(*) from ml.language_review {unlabelled}").fetchone()[0]


def accepted_posts_to_rescore(con) -> list[str]:
    """Posts a reviewer accepted out of language review that are not reports yet (``ml/post_signals`` re-scores them)."""
    return [r[0] for r in con.execute(
        "select l.post_id from ops.post_review_labels l join ml.post_signals s using (post_id) "
        # Only posts still staged: a deleted signal row is written again in the same run.
        "where l.action = 'accept' and not s.is_report and l.post_id in (select post_id from stg_social__posts) "
        "order by l.post_id").fetchall()]


def labels(con) -> dict[str, tuple[str, str | None]]:
    """incident_id -> (action, service_code) of every recorded label."""
    return {r[0]: (r[1], r[2]) for r in con.execute("select incident_id, action, service_code from ops.review_labels").fetchall()}


def labelled_post_texts(con) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Texts, stored embeddings and 0/1 labels of the posts behind labelled incidents (relevance training data).

    Accepted or relabelled incidents' posts are positives, rejected ones' negatives; the stored
    embeddings are used, so no post is embedded again (the combined model reads text and embedding).

    Posts labelled out of language review count too, once embedded (an accepted post is embedded
    on the run after its label; a rejected one only if it was embedded when routed).
    """
    rows = con.execute(
        "select p2.post_text, s.embedding, l.action, p.post_id from ops.review_labels l "
        "join ops.incident_posts p using (incident_id) "
        "join ml.post_signals s using (post_id) join stg_social__posts p2 on p2.post_id = p.post_id "
        "where s.embedding is not null "
        "union all select p2.post_text, s.embedding, l.action, l.post_id from ops.post_review_labels l "
        "join ml.post_signals s using (post_id) join stg_social__posts p2 on p2.post_id = l.post_id "
        "where s.embedding is not null and l.post_id not in (select post_id from ops.incident_posts "
        "where incident_id in (select incident_id from ops.review_labels)) "
        "order by 4").fetchall()
    if not rows:
        return [], np.zeros((0, 384), dtype=np.float32), np.zeros(0, dtype=int)
    return ([r[0] or "" for r in rows], np.array([r[1] for r in rows], dtype=np.float32),
            np.array([0 if r[2] == "reject" else 1 for r in rows], dtype=int))


def typed_examples(con) -> dict[str, np.ndarray]:
    """service_code -> stored embeddings of the posts a reviewer accepted or relabelled under it."""
    rows = con.execute(
        "select coalesce(l.service_code, i.service_code) as code, s.embedding from ops.review_labels l "
        "join ops.incidents i using (incident_id) join ops.incident_posts p using (incident_id) "
        "join ml.post_signals s using (post_id) where l.action in ('accept', 'relabel') and s.embedding is not null "
        "order by p.post_id").fetchall()
    grouped: dict[str, list] = {}
    for code, embedding in rows:
        if code is not None:
            grouped.setdefault(code, []).append(embedding)
    return {code: np.array(vectors, dtype=np.float32) for code, vectors in grouped.items()}


def typed_example_texts(con) -> tuple[list[str], list[str], np.ndarray]:
    """``typed_examples`` as rows with texts: ``(texts, service codes, embeddings)`` (the type classifier's input)."""
    rows = con.execute(
        "select p2.post_text, coalesce(l.service_code, i.service_code) as code, s.embedding from ops.review_labels l "
        "join ops.incidents i using (incident_id) join ops.incident_posts p using (incident_id) "
        "join ml.post_signals s using (post_id) join stg_social__posts p2 on p2.post_id = p.post_id "
        "where l.action in ('accept', 'relabel') and s.embedding is not null "
        "and coalesce(l.service_code, i.service_code) is not null order by p.post_id").fetchall()
    if not rows:
        return [], [], np.zeros((0, 384), dtype=np.float32)
    return [r[0] or "" for r in rows], [r[1] for r in rows], np.array([r[2] for r in rows], dtype=np.float32)
