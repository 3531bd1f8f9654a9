"""Bench: peak memory of typing candidates (``propose_candidates``) against BERTopic on the same posts.

Run: ``.venv/bin/python bench/typing_memory.py --warehouse W.duckdb [--posts 20000] [--bertopic-path DIR]``

The posts are the warehouse's embedded posts (``ml.post_signals``, the stored onnx-int8 vectors,
newest ``--posts``), written once to ``--cache`` as .npy + texts. Each method then runs in its own
child process, so each peak is its own (``getrusage`` max RSS):

- ``leader``: ``models/issue_types.propose_candidates`` as the pipeline calls it now (leader
  clustering, linear memory), on every post given.
- ``agglomerative-4000``: the method it replaced (scikit-learn average-linkage agglomerative
  clustering, cosine, cut at 0.5), which could only take the first 4,000 posts.
- ``bertopic``: BERTopic 0.17 with its defaults (UMAP + HDBSCAN + c-TF-IDF), given the same
  precomputed embeddings, on every post. BERTopic is not a dependency of social311; pass
  ``--bertopic-path`` (a folder that ``pip install --target`` filled) to include it.

Reported per method: the process's peak RSS, its RSS just before the call (imports and data
loaded), the difference (what the method itself took), seconds and clusters; and the ratio of
each peak to BERTopic's. Also: agreement of ``leader`` with ``agglomerative-4000`` on the first
4,000 posts (adjusted Rand index) and how many candidate ids ``leader`` keeps when it runs again
on the same posts plus 10% more (stable ids).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path


def _rss_mb() -> float:
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def export(warehouse: Path, posts: int, cache: Path) -> None:
    """The newest ``posts`` embedded posts of the warehouse as ``embeddings.npy`` + ``posts.json``."""
    import numpy as np

    from social311.warehouse import connect

    cache.mkdir(parents=True, exist_ok=True)
    with connect(str(warehouse), read_only=True) as con:
        got = con.execute(
            "select s.post_id, p.post_text, s.embedding from ml.post_signals s join stg_social__posts p using (post_id) "
            "where s.embedding is not null order by p.ingested_at desc, s.post_id limit ?", [posts]).fetchnumpy()
    ids, texts = got["post_id"].tolist()[::-1], got["post_text"].tolist()[::-1]
    np.save(cache / "embeddings.npy", np.stack(got["embedding"][::-1]).astype(np.float32))
    (cache / "posts.json").write_text(json.dumps({"ids": ids, "texts": texts}), encoding="utf-8")


def run_one(method: str, cache: Path) -> dict:
    """One method in this process; its figures."""
    import numpy as np

    data = json.loads((cache / "posts.json").read_text(encoding="utf-8"))
    vectors = np.load(cache / "embeddings.npy")
    ids, texts = data["ids"], data["texts"]
    if method == "leader":
        from social311.models.issue_types import _leader_clusters, _normalise, propose_candidates
    elif method == "agglomerative-4000":
        from sklearn.cluster import AgglomerativeClustering
        vectors, ids, texts = vectors[:4000], ids[:4000], texts[:4000]
    else:
        from bertopic import BERTopic
    before = _rss_mb()
    start = time.perf_counter()
    if method == "leader":
        clusters = len(propose_candidates(vectors, texts, ids, [], max_posts=len(ids)))
    elif method == "agglomerative-4000":
        labels = AgglomerativeClustering(n_clusters=None, metric="cosine", linkage="average",
                                         distance_threshold=0.5).fit_predict(vectors)
        clusters = int(sum(1 for k in np.unique(labels) if (labels == k).sum() >= 3))
    else:
        topics, _ = BERTopic(calculate_probabilities=False).fit_transform(texts, vectors)
        clusters = len(set(topics) - {-1})
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    out = {"method": method, "posts": len(ids), "peak_rss_mb": round(peak, 1), "rss_before_call_mb": round(before, 1),
           "method_mb": round(peak - before, 1), "seconds": round(seconds, 1), "clusters_ge_3": clusters}
    if method == "leader":
        from sklearn.metrics import adjusted_rand_score
        from sklearn.cluster import AgglomerativeClustering

        first = _normalise(vectors[:4000])
        out["ari_vs_agglomerative_4000"] = round(float(adjusted_rand_score(
            AgglomerativeClustering(n_clusters=None, metric="cosine", linkage="average", distance_threshold=0.5).fit_predict(first),
            _leader_clusters(first, 0.5)[0])), 3)
        cut = int(len(ids) / 1.1)
        before_ids = {c.type_id for c in propose_candidates(vectors[:cut], texts[:cut], ids[:cut], [], max_posts=cut)}
        after_ids = {c.type_id for c in propose_candidates(vectors, texts, ids, [], max_posts=len(ids))}
        out["ids_kept_with_10pct_more_posts"] = f"{len(before_ids & after_ids)} of {len(before_ids)}"
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--warehouse", type=Path)
    parser.add_argument("--posts", type=int, default=20_000)
    parser.add_argument("--cache", type=Path, default=Path(".social311/bench/typing_memory"))
    parser.add_argument("--bertopic-path", type=Path, help="a folder holding BERTopic and its dependencies (pip --target)")
    parser.add_argument("--out", type=Path, default=Path(".social311/bench/typing_memory.json"))
    parser.add_argument("--methods", help="comma-separated subset to run again; the others are kept from --out")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(run_one(args.one, args.cache)))
        return 0
    if args.warehouse:
        export(args.warehouse, args.posts, args.cache)
    elif not (args.cache / "embeddings.npy").exists():
        raise SystemExit(f"typing_memory: error: no posts in {args.cache}; give --warehouse")
    methods = ["leader", "agglomerative-4000"] + (["bertopic"] if args.bertopic_path else [])
    results = {}
    if args.methods:
        results = json.loads(args.out.read_text(encoding="utf-8")) if args.out.exists() else {}
        methods = args.methods.split(",")
    for method in methods:
        env = dict(os.environ)
        if method == "bertopic":
            env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(args.bertopic_path), env.get("PYTHONPATH")]))
        done = subprocess.run([sys.executable, __file__, "--cache", str(args.cache), "--one", method],
                              capture_output=True, text=True, env=env)
        if done.returncode:
            raise SystemExit(f"typing_memory: error: {method} failed: {done.stderr.strip().splitlines()[-1:]}")
        results[method] = json.loads(done.stdout.strip().splitlines()[-1])
    if "bertopic" in results:
        for r in results.values():
            r["peak_vs_bertopic"] = round(r["peak_rss_mb"] / results["bertopic"]["peak_rss_mb"], 3)
            r["method_mb_vs_bertopic"] = round(r["method_mb"] / max(results["bertopic"]["method_mb"], 1e-9), 3)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2), encoding="utf-8")
    print("| method | posts | peak RSS MB | RSS before call | method's own MB | seconds | clusters >= 3 | peak / BERTopic's |")
    print("|---|---|---|---|---|---|---|---|")
    for r in sorted(results.values(), key=lambda r: r["method"]):
        print(f"| {r['method']} | {r['posts']:,} | {r['peak_rss_mb']} | {r['rss_before_call_mb']} | {r['method_mb']} "
              f"| {r['seconds']} | {r['clusters_ge_3']} | {r.get('peak_vs_bertopic', '-')} |")
    leader = results["leader"]
    print(f"leader vs agglomerative on the first 4,000: ARI {leader['ari_vs_agglomerative_4000']}; "
          f"candidate ids kept with 10% more posts: {leader['ids_kept_with_10pct_more_posts']}")
    print(f"JSON: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
