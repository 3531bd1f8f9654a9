"""Incident merging scored on PublicStuff NYC: rows repeating a description at one place.

Truth: rows with the same description at the same coordinates are one incident (1,818 rows
repeat an earlier one; 272 of the rows in such groups have an empty description). Each row becomes a ``PostForMerge`` (type = the request type the
resident chose, location = its coordinates at geotag confidence, embedding of its text) and
goes through ``merge_posts`` with the default thresholds. Pair recall is the share of true
duplicate pairs that end in one incident; pair precision the share of merged pairs that are
true duplicates (a lower bound: two different descriptions of one pothole also count as wrong).
"""

from __future__ import annotations

from datetime import datetime, timezone
from itertools import combinations
from pathlib import Path

import numpy as np
import pandas as pd

from social311.config import Thresholds
from social311.models.evaluation.cache import cached_encode


def _pairs(groups: list[list[int]]) -> set[tuple[int, int]]:
    return {pair for g in groups for pair in combinations(sorted(g), 2)}


def pair_scores(truth: list[list[int]], merged: list[list[int]]) -> dict:
    """Pairwise precision/recall of ``merged`` against ``truth`` (both lists of index groups)."""
    true_pairs, merged_pairs = _pairs(truth), _pairs(merged)
    hit = len(true_pairs & merged_pairs)
    return {"pair_precision": round(hit / len(merged_pairs), 4) if merged_pairs else 1.0,
            "pair_recall": round(hit / len(true_pairs), 4) if true_pairs else 1.0,
            "true_pairs": len(true_pairs), "merged_pairs": len(merged_pairs)}


def publicstuff(path: Path, embedder) -> dict | None:
    from social311.models.incidents import PostForMerge, merge_posts

    if not path.exists():
        return None
    frame = pd.read_csv(path)
    frame["Description"] = frame["Description"].fillna("").astype(str)
    frame = frame[frame["Latitude"].notna() & frame["Longitude"].notna()].reset_index(drop=True)
    vectors = cached_encode(embedder, frame["Description"].tolist(), path)
    posts = [PostForMerge(post_id=f"ps-{i}", seen_order=i,
                          created_at=datetime.fromtimestamp(int(r["Date Created"]), timezone.utc),
                          type_id=str(r["Title"]), lat=float(r["Latitude"]), lon=float(r["Longitude"]),
                          embedding=vectors[i], location_confidence=1.0, text=r["Description"])
             for i, r in frame.iterrows()]
    t = Thresholds()
    incidents = merge_posts(posts, radius_m=t.merge_radius_m, window_hours=t.merge_window_hours,
                            text_similarity=t.merge_text_similarity,
                            unlocated_text_similarity=t.unlocated_merge_text_similarity)
    merged = [[int(p[3:]) for p in inc.post_ids] for inc in incidents]
    truth = [list(g) for g in frame.groupby(["Description", "Latitude", "Longitude"]).indices.values() if len(g) > 1]
    repeats = sum(len(g) - 1 for g in truth)
    group_of = {i: k for k, inc in enumerate(merged) for i in inc}
    whole = sum(len({group_of[i] for i in g}) == 1 for g in truth)
    return {"rows": len(frame), "repeating_rows": repeats, "duplicate_groups": len(truth),
            "groups_merged_whole": whole, "incidents": len(incidents), **pair_scores(truth, merged)}
