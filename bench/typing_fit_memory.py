"""Bench: peak memory of fitting the type classifier, on the used hash columns vs on all of them.

Run: ``.venv/bin/python bench/typing_fit_memory.py --warehouse W.duckdb [--methods used,full]``

The inputs are what ``ml/issue_types`` trains on for that warehouse: its service catalog, its
311 history (``history.max_requests`` newest, default 5,000) and its reviewed posts. The
catalog is embedded once with the onnx-int8 model, before the fits. Each method fits
``TypeClassifier`` in its own child process, so each peak is its own (``VmHWM``, the process's peak RSS):

- ``used``: the pipeline's fit (``issue_types._TypingModel``: L-BFGS over the hash columns the
  training rows use, read back at full width);
- ``full``: the fit it replaced (``CombinedModel``'s plain ``LogisticRegression`` over all
  2 x 2^18 n-gram columns).

Reported per method: peak RSS, RSS before the fit, seconds, the classes and the columns the
fit used; and the largest difference between the two models' probabilities on the
warehouse's newest 2,000 reports, and how many of them change their most probable service.
The warehouse is opened read-only.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path


def _rss_mb(field: str = "VmRSS") -> float:
    """This process's resident set (``VmRSS``) or its peak (``VmHWM``), in MB.

    The peak is read from ``VmHWM``, not ``getrusage``: ``ru_maxrss`` survives ``exec``, so a
    child would report its parent's peak (the parent loaded the embedding model).
    """
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) / 1024
    return 0.0


def export(warehouse: Path, cache: Path, max_requests: int) -> None:
    """The training inputs and 2,000 reports to score, as .npy + .json under ``cache``."""
    import numpy as np

    from social311.models.embeddings import get_embedder
    from social311.models.history import load_history
    from social311.models.issue_types import catalog_texts
    from social311.models.review import typed_example_texts
    from social311.orchestration.ml import load_services
    from social311.warehouse import connect

    cache.mkdir(parents=True, exist_ok=True)
    with connect(str(warehouse), read_only=True) as con:
        services = load_services(con)
        history = load_history(con, max_requests)
        reviewed = typed_example_texts(con)
        probe = con.execute(
            "select p.post_text, s.embedding from ml.post_signals s join stg_social__posts p using (post_id) "
            "where s.is_report and s.embedding is not null order by p.ingested_at desc, s.post_id limit 2000").fetchnumpy()
    np.save(cache / "catalog.npy", get_embedder("onnx-int8").encode(catalog_texts(services)))
    np.save(cache / "history.npy", np.asarray(history.embeddings, dtype=np.float32))
    np.save(cache / "reviewed.npy", np.asarray(reviewed[2], dtype=np.float32))
    np.save(cache / "probe.npy", np.stack(probe["embedding"]).astype(np.float32))
    (cache / "inputs.json").write_text(json.dumps({
        "services": [[s.service_code, s.service_name, s.description, list(s.keywords)] for s in services],
        "history_texts": list(history.texts), "history_codes": [str(c) for c in history.codes.tolist()],
        "reviewed_texts": reviewed[0], "reviewed_codes": reviewed[1], "probe_texts": probe["post_text"].tolist(),
    }), encoding="utf-8")


def run_one(method: str, cache: Path) -> dict:
    """Fit with ``method`` in this process; probabilities of the probe posts to ``cache/proba-<method>.npy``."""
    import numpy as np

    from social311.models import issue_types
    from social311.models.combined import CombinedModel
    from social311.records import Service

    data = json.loads((cache / "inputs.json").read_text(encoding="utf-8"))
    services = [Service(service_code=c, service_name=n, description=d or "", keywords=tuple(k or ()))
                for c, n, d, k in data["services"]]
    catalog, history = np.load(cache / "catalog.npy"), np.load(cache / "history.npy")
    reviewed = (data["reviewed_texts"], data["reviewed_codes"], np.load(cache / "reviewed.npy"))
    if method == "full":
        issue_types._TypingModel._regression = CombinedModel._regression  # the fit before this change
    before = _rss_mb()
    start = time.perf_counter()
    classifier = issue_types.TypeClassifier.train(
        services, None, history_texts=data["history_texts"] or None, history_codes=data["history_codes"] or None,
        history_embeddings=history, reviewed=reviewed, catalog_embeddings=catalog)
    seconds = time.perf_counter() - start
    peak = _rss_mb("VmHWM")
    np.save(cache / f"proba-{method}.npy", classifier.predict_proba(np.load(cache / "probe.npy"), data["probe_texts"]))
    return {"method": method, "peak_rss_mb": round(peak), "rss_before_mb": round(before), "seconds": round(seconds, 1),
            "classes": len(classifier.classes), "rows": classifier.model.trained_on["rows"],
            "columns_used": int(len(set(classifier.model.coef.indices.tolist())))}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--warehouse", type=Path, required=True)
    parser.add_argument("--methods", default="used,full")
    parser.add_argument("--max-requests", type=int, default=5000)
    parser.add_argument("--cache", type=Path, default=Path(".social311/bench/typing-fit"))
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(run_one(args.child, args.cache)))
        return 0
    if not args.warehouse.is_file():
        print(f"no warehouse at {args.warehouse}", file=sys.stderr)
        return 2
    export(args.warehouse, args.cache, args.max_requests)
    results = []
    for method in args.methods.split(","):
        done = subprocess.run([sys.executable, __file__, "--warehouse", str(args.warehouse), "--cache", str(args.cache),
                               "--child", method], capture_output=True, text=True, check=False)
        if done.returncode != 0:
            print(f"{method} failed: {done.stderr.strip().splitlines()[-1:]}", file=sys.stderr)
            return 1
        results.append(json.loads(done.stdout.strip().splitlines()[-1]))
        print(json.dumps(results[-1]), flush=True)
    if {"used", "full"} <= {r["method"] for r in results}:
        import numpy as np

        used, full = np.load(args.cache / "proba-used.npy"), np.load(args.cache / "proba-full.npy")
        print(json.dumps({"probe_reports": len(used), "max_abs_proba_diff": float(np.abs(used - full).max()),
                          "argmax_changed": int((used.argmax(axis=1) != full.argmax(axis=1)).sum())}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
