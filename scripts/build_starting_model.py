"""Build the shipped relevance starting model from the shared public labelled data, reproducibly.

    .venv/bin/python scripts/build_starting_model.py [--data-dir ../shared/data] [--out models/starting]

Inputs (``../shared/data/tweets``): Mumbai urban-issue tweets (complaint 0/1, all rows), the ACL
2019 complaints (complaint 0/1, all rows) and CrisisLexT6 (on-topic 1 / off-topic 0, the
seeded 1,000-row sample of each of the five events that ``social311 eval`` uses). Each set
weighs the same in total. The texts are embedded with the packaged MiniLM (onnx-int8, the
eval's embedding cache), a ``models/combined.CombinedModel`` is fitted (3-fold Platt
calibration) and written as ``<out>/relevance.npz`` (non-zero float16 coefficients, no text)
with ``<out>/provenance.json``: each input file's sha256, the rows used, the command, the
library versions and the out-of-fold calibration figures. No row of the data is written.

Typing has no starting model: a city's service codes are its own, and the public categories
(Mumbai's 18, PublicStuff's titles) cannot be mapped onto an unknown catalog without guessing.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--out", type=Path, default=REPO / "models" / "starting")
    parser.add_argument("--backend", default="onnx-int8")
    args = parser.parse_args(argv)
    if not args.data_dir.is_dir():
        print(f"build_starting_model: error: no data folder {args.data_dir}", file=sys.stderr)
        return 2
    import numpy as np
    import scipy
    import sklearn

    from social311.models.combined import train_starting
    from social311.models.embeddings import get_embedder
    from social311.models.evaluation.cache import file_sha256 as sha256
    from social311.models.evaluation.lodo import public_sets

    started = time.perf_counter()
    embedder = get_embedder(args.backend)
    try:
        sets = public_sets(args.data_dir, embedder)
    except FileNotFoundError as exc:
        print(f"build_starting_model: error: {exc}", file=sys.stderr)
        return 2
    model_name = embedder.model_name
    print(f"training on {sum(len(s[3]) for s in sets)} rows of {len(sets)} sets", flush=True)
    model = train_starting([s[:4] for s in sets], log_fn=print)
    args.out.mkdir(parents=True, exist_ok=True)
    target = args.out / "relevance.npz"
    model.save(target)
    files = sorted({f for s in sets for f in s[4]})
    provenance = {
        "model": "social311.models.combined.CombinedModel (relevance starting point)",
        "file": target.name, "file_sha256": sha256(target), "file_bytes": target.stat().st_size,
        "command": " ".join(["python scripts/build_starting_model.py", *(argv if argv is not None else sys.argv[1:])]),
        "inputs": [{"path": str(f.relative_to(args.data_dir)), "sha256": sha256(f)} for f in files],
        "rows": {s[0]: {"rows": int(len(s[3])), "positives": int(np.sum(s[3]))} for s in sets},
        "weighting": "each set weighs the same in total; classes balanced by total weight",
        "embedding_model": model_name,
        "features": "hashed char_wb 2-5-grams + word 1-2-grams (2^18 buckets each, log1p tf, L2) + 2 x MiniLM embedding",
        "calibration": "Platt sigmoid on 3-fold out-of-fold decision values",
        "out_of_fold": model.trained_on.get("out_of_fold"),
        "coefficients_nonzero": int(model.coef.nnz),
        "versions": {"python": platform.python_version(), "numpy": np.__version__, "scipy": scipy.__version__,
                     "scikit-learn": sklearn.__version__},
        "seconds": round(time.perf_counter() - started, 1),
    }
    (args.out / "provenance.json").write_text(json.dumps(provenance, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {target} ({target.stat().st_size / 1e6:.1f} MB) and provenance.json", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
