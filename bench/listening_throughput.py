"""Bench: N generated posts (default 100,000) through the listening stages vs raw embedding.

Run: ``.venv/bin/python bench/listening_throughput.py [--posts 100000] [--backend onnx-int8]``.

The posts come from the demo generator (seeded; about half chatter, reposts, several posts per
incident). The listening stages are the functions the ML and incident assets call, in order,
without Dagster or dbt around them: embedding, the seed relevance model, VADER sentiment,
typing against the demo catalog, and incident merging of the reports (all located posts at
geotag confidence). "Raw" is the embedding call alone on the same texts. Reported: posts/s of
both, each stage's seconds, and the process's peak resident memory.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import time

import numpy as np

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--posts", type=int, default=100_000)
    parser.add_argument("--backend", default="onnx-int8")
    args = parser.parse_args()

    from datetime import datetime, timedelta

    from social311.demo.generate import DEFAULT_START, generate_posts
    from social311.models.embeddings import get_embedder
    from social311.models.incidents import PostForMerge, merge_posts
    from social311.models.issue_types import assign_types, service_types
    from social311.models.relevance import RelevanceModel
    from social311.models.sentiment import sentiment
    from social311.config import Thresholds
    from social311.records import Service

    posts, seed = [], 0
    while len(posts) < args.posts:
        # Each seed is one demo week (~260 posts, 40 incidents); the weeks follow each other, as
        # a city's stream would, so merging compares each post with its own week's neighbours.
        # Post ids restart with each batch: prefix them with the week.
        week = generate_posts(seed=seed, n_incidents=40, start=DEFAULT_START + timedelta(days=7 * seed))
        posts += [{**p, "id": f"w{seed}-{p['id']}"} for p in week]
        seed += 1
    posts = posts[: args.posts]
    texts = [p["text"] for p in posts]
    embedder = get_embedder(args.backend)
    embedder.encode(texts[:64])  # model load and warm-up are not counted
    t = Thresholds()
    stages = {}

    start = time.perf_counter()
    raw = embedder.encode(texts)
    raw_s = time.perf_counter() - start

    start = time.perf_counter()
    vectors = embedder.encode(texts)
    stages["embed"] = time.perf_counter() - start
    start = time.perf_counter()
    services = [Service(service_code=c, service_name=n, description="") for c, n in
                [("POT", "Pothole in Street"), ("SL", "Street Light Out"), ("GARB", "Garbage Cart / Missed Pickup"),
                 ("GRAF", "Graffiti Removal"), ("AV", "Abandoned Vehicle"), ("NOISE", "Noise Complaint")]]
    relevance = RelevanceModel.from_seeds(embedder, [s.service_name for s in services]).predict_proba(vectors)
    stages["relevance"] = time.perf_counter() - start
    start = time.perf_counter()
    sentiment(texts)
    stages["sentiment"] = time.perf_counter() - start
    start = time.perf_counter()
    reports = np.flatnonzero(relevance >= t.relevance)
    types = service_types(services, embedder)
    choices = assign_types(vectors[reports], types, t.type_similarity)
    stages["typing"] = time.perf_counter() - start
    start = time.perf_counter()
    merge = []
    for k, (i, (type_id, sim)) in enumerate(zip(reports, choices)):
        geo = posts[i].get("geo") or {}
        merge.append(PostForMerge(post_id=posts[i]["id"], seen_order=k, created_at=datetime.fromisoformat(posts[i]["created_at"].replace("Z", "+00:00")), type_id=type_id,
                                  lat=geo.get("lat"), lon=geo.get("lon"), embedding=vectors[i],
                                  location_confidence=1.0 if geo else 0.0, type_similarity=float(sim),
                                  relevance=float(relevance[i]), text=texts[i]))
    incidents = merge_posts(merge, radius_m=t.merge_radius_m, window_hours=t.merge_window_hours,
                            text_similarity=t.merge_text_similarity,
                            unlocated_text_similarity=t.unlocated_merge_text_similarity)
    stages["merge"] = time.perf_counter() - start
    total = sum(stages.values())
    print(json.dumps({
        "posts": len(texts), "backend": args.backend, "reports": int(len(reports)), "incidents": len(incidents),
        "raw_embedding_posts_per_s": round(len(texts) / raw_s, 1),
        "listening_posts_per_s": round(len(texts) / total, 1),
        # Against the faster of the two embedding passes, so warm-up never flatters the ratio.
        "ratio_to_raw": round((len(texts) / total) / (len(texts) / min(raw_s, stages["embed"])), 3),
        "stage_s": {k: round(v, 2) for k, v in stages.items()},
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "cosine_raw_vs_stage": round(float(np.min(np.sum(raw * vectors, axis=1))), 4),
    }, indent=2))


if __name__ == "__main__":
    main()
