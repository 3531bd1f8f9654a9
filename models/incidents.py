"""Merge posts about the same problem into incidents, with stable ids.

Rules (each merge keeps its reason):

* ``repost``: a repost always joins its original's incident, whatever its type or place.
* ``duplicate``: the same text (case and spacing aside) at the same point (coordinates equal
  to 5 decimals, about 1 m; locations of usable confidence only), of the same type and within
  the type's window of the previous copy, is one report sent twice (an app retrying, a
  resident re-posting). Real data is full of templated texts ("Street Light Outages") at busy
  points: the same text there months later is a new problem, so this rule never crosses types
  or the window (only ``repost`` does).
* ``near+similar``: two located posts of the same type, within ``radius_m`` (haversine), within
  ``window_hours`` and with embedding cosine >= ``text_similarity``. The cosine is only asked
  of texts residents wrote: when either text is a *template* (equal to its type's name, or
  the same text at ``template_min_points`` or more different points of the batch) it says
  nothing about the problem, so type, place and time decide alone, and the place must then be
  closer: within ``template_radius_m`` (a form's text at two addresses 200 m apart is two
  problems as often as one).
* ``text-only``: when either post has no usable location, the same type, the same window and
  the stricter cosine >= ``unlocated_text_similarity`` between two resident-written texts —
  unless the link would join two groups whose located posts are all farther than ``radius_m``
  apart (an unlocated post never bridges two places).

``rules`` gives a type its own radius and window (a streetlight is one pole, a flood a
neighbourhood). Two caps keep transitive merging from swallowing a busy place: an incident
holds at most ``max_posts`` posts that are not reposts, and its first and last such posts are
at most ``max_span_hours`` apart; a link that would break either is not made (reposts always
join their original).

Posts with no type form their own group (``None`` matches only ``None``); different types
never merge. A location counts for merging only when its confidence is at least
``min_location_confidence``: a platform place-box centre (0.3) would put every post of a city
on one point. Merges are transitive (union-find).

An incident's id is ``"inc-" + sha1(anchor post_id)[:12]``, the anchor being the member with the
smallest ``(seen_order, post_id)``: a post seen later can join without changing the id.

Confidence = mean relevance x (0.5 + 0.5 x location confidence) x (0.5 + 0.5 x type score),
where the type score is the members' mean similarity to their type (0 without a type). Each
factor is in [0, 1]; a missing location or type halves the confidence rather than zeroing it,
so a strong report still shows up for review.
"""

from __future__ import annotations

import hashlib
from collections import Counter, deque
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime

import numpy as np

from social311.models.geo import haversine_m

REPOST, DUPLICATE, NEAR, TEXT_ONLY, ANCHOR = "repost", "duplicate", "near+similar", "text-only", "anchor"


@dataclass(frozen=True)
class MergeRule:
    """A type's own merge radius and time window (``merge_posts(rules=...)``)."""

    radius_m: float
    window_hours: float


def normalise_text(text: str) -> str:
    """Case and spacing aside: the key of the exact-duplicate and template rules."""
    return " ".join(text.casefold().split())


def template_texts(posts: list[PostForMerge], min_points: int, min_location_confidence: float = 0.5) -> set[str]:
    """Normalised texts found at ``min_points`` or more different points: forms, not residents' words."""
    points: dict[str, set[tuple[float, float]]] = {}
    for p in posts:
        if p.text and p.lat is not None and p.lon is not None and p.location_confidence >= min_location_confidence:
            points.setdefault(normalise_text(p.text), set()).add((round(p.lat, 5), round(p.lon, 5)))
    return {text for text, where in points.items() if len(where) >= min_points}


def options_from(thresholds, type_of_code: Mapping[str, str] | None = None,
                 type_names: Mapping[str, str] | None = None) -> dict:
    """The keyword arguments of ``merge_posts`` beyond the four basic thresholds, from a ``Thresholds``.

    Args:
        thresholds: the city's ``thresholds`` (``merge_max_posts``, ``merge_by_type``, ...).
        type_of_code: service_code -> type_id, to key ``merge_by_type`` (configured by code) by type.
        type_names: type_id -> the type's name (a text equal to it is a template).
    """
    type_of_code = type_of_code or {}
    rules = {type_of_code[code]: MergeRule(r.radius_m, r.window_hours)
             for code, r in thresholds.merge_by_type.items() if code in type_of_code}
    return {"rules": rules, "max_posts": thresholds.merge_max_posts, "max_span_hours": thresholds.merge_max_span_hours,
            "template_min_points": thresholds.merge_template_min_points,
            "template_radius_m": thresholds.merge_template_radius_m, "type_names": dict(type_names or {})}


def oversized(incidents: list[Incident], max_posts: int) -> list[tuple[str, int]]:
    """``(incident_id, posts that are not reposts)`` of each incident above ``max_posts`` (the cap's check)."""
    out = []
    for inc in incidents:
        n = sum(1 for reason in inc.merge_reasons.values() if reason != REPOST)
        if n > max_posts:
            out.append((inc.incident_id, n))
    return out


@dataclass(frozen=True)
class PostForMerge:
    """What merging needs to know about one post."""

    post_id: str
    seen_order: int  # ingestion order
    created_at: datetime
    type_id: str | None
    lat: float | None
    lon: float | None
    embedding: np.ndarray
    repost_of: str | None = None
    relevance: float = 1.0
    location_confidence: float = 0.0
    type_similarity: float = 0.0  # cosine to its type's centroid (assign_types)
    text: str | None = None  # the post's text, for the exact-duplicate rule (None: rule not applied)


@dataclass(frozen=True)
class Incident:
    """One problem, reported by one or more posts."""

    incident_id: str
    post_ids: tuple[str, ...]
    merge_reasons: dict[str, str]  # post_id -> how it joined ("anchor" for the anchor)
    type_id: str | None
    lat: float | None
    lon: float | None
    first_seen_at: datetime
    last_seen_at: datetime
    representative_post_id: str
    confidence: float


def incident_id(anchor_post_id: str) -> str:
    """The stable incident id derived from its anchor post."""
    return "inc-" + hashlib.sha1(anchor_post_id.encode()).hexdigest()[:12]


class _UnionFind:
    def __init__(self, n: int) -> None:
        self.parent = list(range(n))

    def find(self, i: int) -> int:
        while self.parent[i] != i:
            self.parent[i] = self.parent[self.parent[i]]
            i = self.parent[i]
        return i

    def union(self, i: int, j: int) -> None:
        ri, rj = self.find(i), self.find(j)
        if ri != rj:
            self.parent[max(ri, rj)] = min(ri, rj)


def _unit(vectors: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=-1, keepdims=True)
    return vectors / np.where(norms == 0, 1.0, norms)


def _exact_duplicates(posts: list[PostForMerge], candidates: list[int], located: np.ndarray,
                      window_s: dict[str | None, float]) -> Iterator[tuple[int, int]]:
    """``(previous, later)`` for each post repeating a text at the same point, same type, within the window."""
    last: dict[tuple, int] = {}
    for i in sorted(candidates, key=lambda k: (posts[k].created_at, posts[k].seen_order, posts[k].post_id)):
        p = posts[i]
        if p.text is None or not located[i]:
            continue
        key = (p.type_id, normalise_text(p.text), round(p.lat, 5), round(p.lon, 5))
        previous = last.get(key)
        if previous is not None and (p.created_at - posts[previous].created_at).total_seconds() <= window_s[p.type_id]:
            yield previous, i
        last[key] = i


def _similar_pairs(
    posts: list[PostForMerge], vectors: np.ndarray, located: np.ndarray, *, radius_m: float, window_s: float,
    text_similarity: float, unlocated_text_similarity: float, templated: np.ndarray | None = None,
    rules: Mapping[str | None, MergeRule] | None = None, template_radius_m: float | None = None,
) -> Iterator[tuple[int, int, str]]:
    """Yield ``(i, j, reason)`` for every pair of non-repost posts that the rules merge.

    ``templated[i]``: post i's text is a template (its cosine is no evidence either way).
    ``rules``: per-type radius and window, overriding ``radius_m`` and ``window_s``.
    ``template_radius_m``: the radius when either text is a template (None: the type's radius).
    """
    by_type: dict[str | None, list[int]] = {}
    for i, p in enumerate(posts):
        by_type.setdefault(p.type_id, []).append(i)
    lats = np.array([p.lat if located[i] else np.nan for i, p in enumerate(posts)], dtype=np.float64)
    lons = np.array([p.lon if located[i] else np.nan for i, p in enumerate(posts)], dtype=np.float64)
    if templated is None:
        templated = np.zeros(len(posts), dtype=bool)
    rules = rules or {}
    for type_id, members in by_type.items():
        rule = rules.get(type_id)
        radius = rule.radius_m if rule else radius_m
        tight = radius if template_radius_m is None else min(radius, template_radius_m)
        window = rule.window_hours * 3600 if rule else window_s
        members.sort(key=lambda i: posts[i].created_at)
        idx = np.array(members)
        times = np.array([posts[i].created_at.timestamp() for i in members])
        # Time-ordered contiguous copies: the window is then a slice (a view), not a gather.
        vec, loc, lat, lon, tpl = vectors[idx], located[idx], lats[idx], lons[idx], templated[idx]
        stops = np.searchsorted(times, times + window, side="right")
        for k in range(len(members)):
            # Only later posts inside the window: each pair is looked at once.
            later = slice(k + 1, int(stops[k]))
            if later.start >= later.stop:
                continue
            cos = vec[later] @ vec[k]
            both = loc[later] & loc[k]
            written = ~tpl[later] & ~tpl[k]  # both texts are residents' words: the cosine means something
            near = both.copy()
            if both.any():
                metres = haversine_m(lat[k], lon[k], lat[later], lon[later])
                near &= np.where(written, metres <= radius, metres <= tight)
            others = idx[later]
            for j in others[near & ((cos >= text_similarity) | ~written)]:
                yield int(idx[k]), int(j), NEAR
            for j in others[~both & written & (cos >= unlocated_text_similarity)]:
                yield int(idx[k]), int(j), TEXT_ONLY


def merge_posts(
    posts: list[PostForMerge],
    *,
    radius_m: float,
    window_hours: float,
    text_similarity: float,
    unlocated_text_similarity: float,
    min_location_confidence: float = 0.5,
    existing: Mapping[str, str] | None = None,
    rules: Mapping[str | None, MergeRule] | None = None,
    max_posts: int | None = None,
    max_span_hours: float | None = None,
    type_names: Mapping[str, str] | None = None,
    template_min_points: int | None = None,
    template_radius_m: float | None = None,
) -> list[Incident]:
    """Group posts into incidents.

    Args:
        posts: the posts to merge (all of them, including those already in incidents, so ids
            are re-derived identically).
        radius_m: farthest distance between two located posts of one incident.
        window_hours: longest time between two merged posts.
        text_similarity: min embedding cosine for located posts.
        unlocated_text_similarity: min cosine when either post has no usable location.
        min_location_confidence: below this a post's location is not used to merge.
        existing: post_id -> incident_id from earlier runs. Those posts keep their incident
            (and its id, so a filed ticket stays attached), new posts may join it, and two
            existing incidents are never merged after the fact, even when a new post bridges them.
        rules: type_id -> its own ``MergeRule`` (radius and window); other types use the two above.
        max_posts: most posts that are not reposts in one incident (None: no cap).
        max_span_hours: longest time between an incident's first and last non-repost post (None: no cap).
        type_names: type_id -> the type's name; a text equal to it is a template.
        template_min_points: a text at this many different points is a template (None: only type names).
        template_radius_m: the radius for a pair where either text is a template (None: the type's radius).

    Returns:
        Incidents ordered by their anchor's ``(seen_order, post_id)``.
    """
    if not posts:
        return []
    if len({p.post_id for p in posts}) != len(posts):
        raise ValueError("post ids must be unique")
    index = {p.post_id: i for i, p in enumerate(posts)}
    vectors = _unit(np.vstack([np.asarray(p.embedding, dtype=np.float32) for p in posts]))
    located = np.array([p.lat is not None and p.lon is not None and p.location_confidence >= min_location_confidence
                        for p in posts])
    edges: dict[int, list[tuple[int, str]]] = {i: [] for i in range(len(posts))}
    uf = _UnionFind(len(posts))
    existing = existing or {}
    owner = {i: existing[p.post_id] for i, p in enumerate(posts) if p.post_id in existing}  # root -> incident id
    points = {i: [i] for i in range(len(posts)) if located[i]}  # root -> its located members
    rules = dict(rules or {})
    window_of = {p.type_id: (rules[p.type_id].window_hours if p.type_id in rules else window_hours) * 3600 for p in posts}
    radius_of = {p.type_id: rules[p.type_id].radius_m if p.type_id in rules else radius_m for p in posts}
    follows = {i: index[p.repost_of] for i, p in enumerate(posts) if p.repost_of in index and p.repost_of != p.post_id}
    # root -> (posts that are not reposts, their first and last time): what the caps look at.
    stamps = [p.created_at.timestamp() for p in posts]
    extent = {i: (0, np.inf, -np.inf) if i in follows else (1, stamps[i], stamps[i]) for i in range(len(posts))}
    max_span_s = np.inf if max_span_hours is None else max_span_hours * 3600

    def apart(ri: int, rj: int, radius: float) -> bool:
        """True when no located member of one group is within the radius of one of the other."""
        a, b = points.get(ri), points.get(rj)
        if not a or not b:
            return False
        lat_b = np.array([posts[k].lat for k in b])
        lon_b = np.array([posts[k].lon for k in b])
        return all(haversine_m(posts[k].lat, posts[k].lon, lat_b, lon_b).min() > radius for k in a)

    def too_big(ri: int, rj: int) -> bool:
        (na, a0, a1), (nb, b0, b1) = extent[ri], extent[rj]
        if max_posts is not None and na + nb > max_posts:
            return True
        return bool(na and nb and max(a1, b1) - min(a0, b0) > max_span_s)

    def link(i: int, j: int, reason: str) -> None:
        ri, rj = uf.find(i), uf.find(j)
        if ri != rj:
            oi, oj = owner.get(ri), owner.get(rj)
            if oi and oj and oi != oj:
                return  # both already belong to different incidents: keep them apart
            if reason == TEXT_ONLY and apart(ri, rj, radius_of[posts[i].type_id]):
                return  # an unlocated post must not bridge two places farther apart than the radius
            if reason != REPOST and too_big(ri, rj):
                return  # chained links must not grow one incident over a busy place for months
            uf.union(i, j)
            root = uf.find(i)
            (na, a0, a1), (nb, b0, b1) = extent.pop(ri), extent.pop(rj)
            extent[root] = (na + nb, min(a0, b0), max(a1, b1))
            if oi or oj:
                owner[root] = oi or oj
            merged_points = points.pop(ri, []) + points.pop(rj, [])
            if merged_points:
                points[root] = merged_points
        edges[i].append((j, reason))
        edges[j].append((i, reason))

    for i, j in follows.items():
        link(i, j, REPOST)
    # Reposts ride on their original; comparing them too would only add duplicate edges.
    originals = [i for i in range(len(posts)) if i not in follows]
    for i, j in _exact_duplicates(posts, originals, located, window_of):
        link(i, j, DUPLICATE)
    templates = template_texts(posts, template_min_points, min_location_confidence) if template_min_points else set()
    names = {t: normalise_text(n) for t, n in (type_names or {}).items() if n}
    templated = np.array([p.text is not None and (normalise_text(p.text) in templates
                                                  or normalise_text(p.text) == names.get(p.type_id)) for p in posts])
    sub = [posts[i] for i in originals]
    for a, b, reason in _similar_pairs(sub, vectors[originals], located[originals], radius_m=radius_m,
                                       window_s=window_hours * 3600, text_similarity=text_similarity,
                                       unlocated_text_similarity=unlocated_text_similarity,
                                       templated=templated[originals], rules=rules,
                                       template_radius_m=template_radius_m):
        link(originals[a], originals[b], reason)

    groups: dict[int, list[int]] = {}
    for i in range(len(posts)):
        groups.setdefault(uf.find(i), []).append(i)
    # A config change (or a post's type or repost link appearing later) can split an old
    # incident: only one part keeps its id, the part holding its earliest old member (its old
    # anchor), whatever a part's new anchor is. Every other part gets an id derived from its own
    # anchor that no other incident holds: deriving it naively could give the old anchor's id
    # again when the old anchor sits in a part that sorts later (a duplicate incident id).
    keeper: dict[str, tuple[tuple[int, str], int]] = {}
    for root, members in groups.items():
        keep = owner.get(root)
        if keep:
            oldest = min((posts[i].seen_order, posts[i].post_id) for i in members if existing.get(posts[i].post_id) == keep)
            if keep not in keeper or oldest < keeper[keep][0]:
                keeper[keep] = (oldest, root)
    taken = set(existing.values())
    incidents = []
    for root, members in sorted(groups.items(), key=lambda kv: min((posts[i].seen_order, posts[i].post_id) for i in kv[1])):
        keep = owner.get(root)
        if keep and keeper[keep][1] == root:
            chosen = keep
        else:
            anchor = min((posts[i].seen_order, posts[i].post_id) for i in members)[1]
            chosen, n = incident_id(anchor), 1
            while chosen in taken:
                n += 1
                chosen = incident_id(f"{anchor}#{n}")
        taken.add(chosen)
        incidents.append(_incident(posts, members, vectors, located, edges, incident_id_override=chosen))
    first = {inc.incident_id: min((posts[index[p]].seen_order, p) for p in inc.post_ids) for inc in incidents}
    return sorted(incidents, key=lambda inc: first[inc.incident_id])


def summarize_incident(posts: list[PostForMerge], incident_id_: str, merge_reasons: Mapping[str, str],
                       *, min_location_confidence: float = 0.5) -> Incident:
    """The incident made of exactly ``posts`` (already merged), under the given id and reasons.

    For an incident whose membership is decided (an earlier run's incident that new posts
    joined): its place, type, times, representative and confidence are derived as
    :func:`merge_posts` derives them, without re-deciding who belongs. A post missing from
    ``merge_reasons`` is recorded as the anchor when it is the earliest, else as ``"kept"``.
    """
    if not posts:
        raise ValueError("an incident needs at least one post")
    vectors = _unit(np.vstack([np.asarray(p.embedding, dtype=np.float32) for p in posts]))
    located = np.array([p.lat is not None and p.lon is not None and p.location_confidence >= min_location_confidence
                        for p in posts])
    order = sorted(range(len(posts)), key=lambda i: (posts[i].seen_order, posts[i].post_id))
    anchor = order[0]
    # A star from the anchor carrying each member's recorded reason: the walk then reports them.
    edges: dict[int, list[tuple[int, str]]] = {i: [] for i in range(len(posts))}
    for i in order[1:]:
        edges[anchor].append((i, merge_reasons.get(posts[i].post_id, "kept")))
    return _incident(posts, list(range(len(posts))), vectors, located, edges, incident_id_override=incident_id_)


def _incident(posts, members, vectors, located, edges, incident_id_override: str | None = None) -> Incident:
    members = sorted(members, key=lambda i: (posts[i].seen_order, posts[i].post_id))
    anchor = members[0]
    # Each member's reason is the edge by which a breadth-first walk from the anchor reached it.
    reasons, queue = {anchor: ANCHOR}, deque([anchor])
    while queue:
        i = queue.popleft()
        for j, reason in sorted(edges[i], key=lambda e: (posts[e[0]].seen_order, posts[e[0]].post_id)):
            if j not in reasons:
                reasons[j] = reason
                queue.append(j)
    type_counts = Counter(posts[i].type_id for i in members)
    top = max(type_counts.values())
    # Majority type; on a tie, the earliest member's type among the tied ones.
    type_id = next(posts[i].type_id for i in members if type_counts[posts[i].type_id] == top)
    lat, lon, loc_conf = _location(posts, members)
    centroid = _unit(vectors[members].mean(axis=0))
    pool = [i for i in members if posts[i].repost_of is None] or members
    representative = max(pool, key=lambda i: (float(vectors[i] @ centroid), -posts[i].seen_order))
    relevance = float(np.mean([np.clip(posts[i].relevance, 0, 1) for i in members]))
    typed = [posts[i].type_similarity for i in members if posts[i].type_id == type_id]
    type_score = float(np.clip(np.mean(typed), 0, 1)) if type_id is not None and typed else 0.0
    confidence = relevance * (0.5 + 0.5 * loc_conf) * (0.5 + 0.5 * type_score)
    times = [posts[i].created_at for i in members]
    return Incident(
        incident_id=incident_id_override or incident_id(posts[anchor].post_id),
        post_ids=tuple(posts[i].post_id for i in members),
        merge_reasons={posts[i].post_id: reasons[i] for i in members},
        type_id=type_id, lat=lat, lon=lon, first_seen_at=min(times), last_seen_at=max(times),
        representative_post_id=posts[representative].post_id, confidence=float(np.clip(confidence, 0, 1)),
    )


def _location(posts, members) -> tuple[float | None, float | None, float]:
    """The best-located member's point (mean of equally good ones) and its confidence."""
    with_point = [i for i in members if posts[i].lat is not None and posts[i].lon is not None]
    if not with_point:
        return None, None, 0.0
    best = max(posts[i].location_confidence for i in with_point)
    tied = [i for i in with_point if posts[i].location_confidence == best]
    lat = float(np.mean([posts[i].lat for i in tied]))
    lon = float(np.mean([posts[i].lon for i in tied]))
    return lat, lon, float(np.clip(best, 0, 1))
