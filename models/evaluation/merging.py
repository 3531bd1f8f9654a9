"""Incident merging scored on PublicStuff NYC, against a duplicate truth written down as a rule.

**Truth (repeats).** A row repeats an earlier row when both have the same description (case and
spacing aside), the same point (5 decimals), the same request type (``Title``), and it comes
at most ``REPEAT_GAP_DAYS`` (3) after the previous copy and ``REPEAT_SPAN_DAYS`` (7) after the
first copy of its group (the default merge window and span cap). Such groups are one incident; every other
row is a *non-duplicate* (its truth group has one row). 6,921 of the 8,739 rows carry NYC 311's
boilerplate ("submitted … without a description") and busy points repeat it for months: a copy
at one place weeks later is counted as a new problem, as the issue asks. The older truth
(same description at the same point, any type, any time) is scored too, as ``any_time``.

**Measures.** ``repeat_recall``: share of repeating rows merged with the row they repeat
(target 1.0). ``false_merge_rate``: share of non-duplicate rows that end in an incident with
any other row (target <= 0.15; a lower bound on precision, since two different descriptions
of one pothole count as wrong too). Pair precision/recall as before.

Each row becomes a ``PostForMerge`` (type = the request type the resident chose, location = its
coordinates at geotag confidence, embedding of its text) and goes through ``merge_posts`` with
the configured defaults (``Thresholds``), templates detected as the pipeline detects them.
"""

from __future__ import annotations

from datetime import datetime, timezone
from itertools import combinations
from pathlib import Path

import numpy as np
import pandas as pd

from social311.config import Thresholds
from social311.models.evaluation.cache import cached_encode

#: A copy repeats the previous one when this close (the default merge window, 72 h) ...
REPEAT_GAP_DAYS = 3
#: ... and its group's first copy when this close (the default span cap, 168 h).
REPEAT_SPAN_DAYS = 7


def _pairs(groups: list[list[int]]) -> set[tuple[int, int]]:
    return {pair for g in groups for pair in combinations(sorted(g), 2)}


def pair_scores(truth: list[list[int]], merged: list[list[int]]) -> dict:
    """Pairwise precision/recall of ``merged`` against ``truth`` (both lists of index groups)."""
    true_pairs, merged_pairs = _pairs(truth), _pairs(merged)
    hit = len(true_pairs & merged_pairs)
    return {"pair_precision": round(hit / len(merged_pairs), 4) if merged_pairs else 1.0,
            "pair_recall": round(hit / len(true_pairs), 4) if true_pairs else 1.0,
            "true_pairs": len(true_pairs), "merged_pairs": len(merged_pairs)}


def repeat_truth(frame: pd.DataFrame, gap_days: float | None = REPEAT_GAP_DAYS, span_days: float | None = REPEAT_SPAN_DAYS,
                 by_type: bool = True) -> list[list[int]]:
    """Truth groups (row positions) of repeats: same text and point (and type), each copy at most
    ``gap_days`` after the previous one and ``span_days`` after the group's first (None: no limit)."""
    text = frame["Description"].fillna("").astype(str).map(lambda t: " ".join(t.casefold().split()))
    keys = [text, frame["Latitude"].round(5), frame["Longitude"].round(5)] + ([frame["Title"]] if by_type else [])
    days = frame["Date Created"].to_numpy() / 86400
    groups = []
    for rows in pd.DataFrame(dict(enumerate(keys))).groupby(list(range(len(keys)))).indices.values():
        rows = sorted(rows, key=lambda r: days[r])
        current = [rows[0]]
        for row in rows[1:]:
            if (gap_days is not None and days[row] - days[current[-1]] > gap_days) or \
                    (span_days is not None and days[row] - days[current[0]] > span_days):
                groups.append(current)
                current = []
            current.append(row)
        groups.append(current)
    return [g for g in groups if len(g) > 1]


def case_scores(truth: list[list[int]], merged: list[list[int]], n: int) -> dict:
    """Repeat recall and false-merge rate (see the module docstring) of ``merged`` against ``truth``."""
    group_of = {i: k for k, inc in enumerate(merged) for i in inc}
    size = {k: len(inc) for k, inc in enumerate(merged)}
    repeats = [(g[k - 1], g[k]) for g in truth for k in range(1, len(g))]
    in_truth = {i for g in truth for i in g}
    singles = [i for i in range(n) if i not in in_truth]
    falsely = sum(size[group_of[i]] > 1 for i in singles)
    whole = sum(len({group_of[i] for i in g}) == 1 for g in truth)
    return {"repeating_rows": len(repeats), "duplicate_groups": len(truth), "groups_merged_whole": whole,
            "repeat_recall": round(sum(group_of[a] == group_of[b] for a, b in repeats) / len(repeats), 4) if repeats else 1.0,
            "non_duplicates": len(singles), "false_merge_rate": round(falsely / len(singles), 4) if singles else 0.0,
            **pair_scores(truth, merged)}


def merge_frame(frame: pd.DataFrame, vectors: np.ndarray, thresholds: Thresholds | None = None, merge=None) -> list[list[int]]:
    """Merge PublicStuff rows as the pipeline would; returns incidents as lists of row positions."""
    from social311.models.incidents import PostForMerge, merge_posts, options_from

    merge = merge or merge_posts
    t = thresholds or Thresholds()
    posts = [PostForMerge(post_id=f"ps-{i}", seen_order=i,
                          created_at=datetime.fromtimestamp(int(r["Date Created"]), timezone.utc),
                          type_id=str(r["Title"]), lat=float(r["Latitude"]), lon=float(r["Longitude"]),
                          embedding=vectors[i], location_confidence=1.0, text=r["Description"])
             for i, r in frame.iterrows()]
    incidents = merge(posts, radius_m=t.merge_radius_m, window_hours=t.merge_window_hours,
                      text_similarity=t.merge_text_similarity,
                      unlocated_text_similarity=t.unlocated_merge_text_similarity,
                      **(options_from(t, type_names={p.type_id: p.type_id for p in posts}) if merge is merge_posts else {}))
    return [[int(p[3:]) for p in inc.post_ids] for inc in incidents]


def load_publicstuff(path: Path) -> pd.DataFrame | None:
    """The located PublicStuff rows (row position = post index), or None when the file is absent."""
    if not path.exists():
        return None
    frame = pd.read_csv(path)
    frame["Description"] = frame["Description"].fillna("").astype(str)
    return frame[frame["Latitude"].notna() & frame["Longitude"].notna()].reset_index(drop=True)


def publicstuff(path: Path, embedder, thresholds: Thresholds | None = None) -> dict | None:
    """Merge PublicStuff NYC with the configured rules; scores against both truths."""
    frame = load_publicstuff(path)
    if frame is None:
        return None
    vectors = cached_encode(embedder, frame["Description"].tolist(), path)
    merged = merge_frame(frame, vectors, thresholds)
    sizes = sorted((len(m) for m in merged), reverse=True)
    return {"rows": len(frame), "incidents": len(merged), "largest_incident": sizes[0] if sizes else 0,
            "repeat_gap_days": REPEAT_GAP_DAYS, "repeat_span_days": REPEAT_SPAN_DAYS,
            **case_scores(repeat_truth(frame), merged, len(frame)),
            "any_time": case_scores(repeat_truth(frame, gap_days=None, span_days=None, by_type=False), merged, len(frame))}
