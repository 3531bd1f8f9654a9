"""Bench: fine-tuned MiniLM against the TF-IDF baseline on the shared corpora' fixed splits.

Run: ``.venv/bin/python bench/finetune_eval.py [--data-dir ../shared/data] [--only mumbai,acl]
[--epochs 4] [--lr 5e-5] [--max-length 128] [--device cuda] [--out results.json]``.

The same splits as ``social311 eval`` (stratified, seed 0; ACL 10-fold; CrisisLex leave one
event out). One line of JSON per dataset with the baseline, the fine-tuned model and the two
averaged, plus the seconds the fine-tuning took. On 2 CPU cores the whole set takes hours
(``social311 eval --fine-tune`` runs it too); on one GPU, minutes.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from social311.models.evaluation import classifiers, datasets
from social311.models.finetune import FineTuneSettings

SHORT_NAMES = {"mumbai_relevance": "mumbai", "acl_complaints": "acl", "crisislex": "crisislex",
               "mumbai_service_type": "mumbai_types", "publicstuff_service_type": "publicstuff"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--only", default="", help="comma-separated: " + ",".join(SHORT_NAMES.values()))
    parser.add_argument("--epochs", type=int, default=FineTuneSettings.epochs)
    parser.add_argument("--lr", type=float, default=FineTuneSettings.learning_rate)
    parser.add_argument("--batch-size", type=int, default=FineTuneSettings.batch_size)
    parser.add_argument("--max-length", type=int, default=FineTuneSettings.max_length)
    parser.add_argument("--device", default=None)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    data_dir = args.data_dir or datasets.default_data_dir()
    only = {s for s in args.only.split(",") if s}
    settings = FineTuneSettings(epochs=args.epochs, learning_rate=args.lr, batch_size=args.batch_size,
                                max_length=args.max_length)
    results = []
    for loader in datasets.LOADERS:
        short = SHORT_NAMES[loader.__name__]
        if only and short not in only:
            continue
        data = loader(data_dir)
        if data is None:
            print(json.dumps({"dataset": short, "skipped": "file absent"}), flush=True)
            continue
        splits, described = classifiers.splits_for(data.protocol, data.labels, data.groups)
        baseline = classifiers.evaluate("tfidf", data.texts, np.zeros((len(data.texts), 1)), data.labels, splits)
        started = time.perf_counter()
        tuned = classifiers.evaluate_fine_tuned(data.texts, data.labels, splits, settings, device=args.device)
        row = {"dataset": short, "n": len(data.texts), "split": described, "settings": settings.__dict__,
               "seconds": round(time.perf_counter() - started, 1), "tfidf": baseline.as_dict(),
               **{name: s.as_dict() for name, s in tuned.items()}}
        results.append(row)
        print(json.dumps(row), flush=True)
    if args.out:
        args.out.write_text(json.dumps(results, indent=1), encoding="utf-8")


if __name__ == "__main__":
    main()
