"""Speed rows of the table: the embedding paths, and a prefilter that skips obvious chatter.

The prefilter is the TF-IDF regression trained on the training split, with its threshold set
low enough to keep 98% of the training reports (out-of-fold scores): whatever falls below it is
never embedded. Its cost is the reports it drops (recall on the test split); its gain is the
embedding time saved net of its own time, with both measured here on this machine.
"""

from __future__ import annotations

import time

import numpy as np
from sklearn.model_selection import cross_val_predict

from social311.models.evaluation.classifiers import _lr, holdout, kfold, tfidf_features

PREFILTER_RECALL = 0.98


def posts_per_second(embedder, texts: list[str]) -> tuple[float, np.ndarray]:
    """Embed ``texts`` once after a warm-up batch (model loading is not counted)."""
    embedder.encode(texts[:8])
    start = time.perf_counter()
    vectors = embedder.encode(texts)
    return len(texts) / (time.perf_counter() - start), vectors


def embedding_paths(texts: list[str], backends=("torch", "onnx-int8")) -> list[dict]:
    """posts/s of each path and its cosine agreement with the first (torch)."""
    from social311.models.embeddings import get_embedder

    rows, reference = [], None
    for backend in backends:
        rate, vectors = posts_per_second(get_embedder(backend), texts)
        row = {"backend": backend, "posts_per_s": round(rate, 1), "n": len(texts)}
        if reference is None:
            reference = vectors
        else:
            cos = np.sum(reference * vectors, axis=1)  # rows are unit length
            row.update(cosine_mean=round(float(cos.mean()), 4), cosine_min=round(float(cos.min()), 4))
        rows.append(row)
    return rows


def prefilter(texts: list[str], labels: np.ndarray, embed_rate: float) -> dict:
    """Train the prefilter on the 80% split, measure what it skips and drops on the 20%."""
    (train, test), = holdout(labels)
    arr = np.array(texts, dtype=object)
    features = tfidf_features()
    x_train = features.fit_transform(arr[train].tolist())
    y_train = labels[train]
    oof = cross_val_predict(_lr(4.0), x_train, y_train, cv=kfold(y_train), method="decision_function")
    threshold = float(np.quantile(oof[y_train == 1], 1 - PREFILTER_RECALL))
    model = _lr(4.0).fit(x_train, y_train)
    start = time.perf_counter()
    keep = model.decision_function(features.transform(arr[test].tolist())) >= threshold
    prefilter_s = time.perf_counter() - start
    n, kept = len(test), int(keep.sum())
    positives = labels[test] == 1
    full_s = n / embed_rate
    return {"n": n, "skipped_share": round(1 - kept / n, 4),
            "recall_kept": round(float(keep[positives].mean()), 4),
            "prefilter_posts_per_s": round(n / prefilter_s, 1),
            "speedup": round(full_s / (prefilter_s + kept / embed_rate), 2)}
