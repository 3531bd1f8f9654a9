"""Learning from the city: F1 of the pipeline's relevance model against the number of reviewed labels.

A city starts from the seeds (0 labels) and reviews posts. Each step adds reviewed posts from
the training part (the pool) as review labels (``RelevanceModel.from_seeds(labelled=...)``, as
``ml/post_signals`` does) and scores the test part. Two ways of choosing what to show:

* ``random``: a seeded random order of the pool;
* ``uncertainty``: the pool posts whose current P(report) is closest to 0.5, in batches (the
  model is retrained between batches, as a review queue would be between runs).

``fully supervised`` is the same model with the whole pool as review labels: the ceiling the
curve is read against (issue 13's target: within 0.03 of it with 200 labels).
"""

from __future__ import annotations

import numpy as np

from social311.models.evaluation.classifiers import score

STEPS = (0, 50, 100, 200, 500)


def _fit(embedder, embeddings, labels, chosen):
    from social311.models.relevance import RelevanceModel

    chosen = np.asarray(chosen, dtype=int)
    return RelevanceModel.from_seeds(embedder, labelled=(embeddings[chosen], labels[chosen]) if len(chosen) else None)


def curve(embedder, embeddings: np.ndarray, labels: np.ndarray, train: np.ndarray, test: np.ndarray,
          steps=STEPS, seed: int = 0, threshold: float = 0.5) -> dict:
    """``{"random": {n: F1}, "uncertainty": {n: F1}, "fully supervised": F1}`` on one split."""
    def f1(model) -> float:
        return round(score(labels[test], (model.predict_proba(embeddings[test]) >= threshold).astype(int)).f1, 4)

    out = {"random": {}, "uncertainty": {}}
    order = np.random.default_rng(seed).permutation(train)
    for n in steps:
        out["random"][n] = f1(_fit(embedder, embeddings, labels, order[:min(n, len(order))]))
    chosen: list[int] = []
    pool = set(train.tolist())
    model = _fit(embedder, embeddings, labels, chosen)
    for n in steps:
        while len(chosen) < min(n, len(train)):
            batch = min(n - len(chosen), 50)
            candidates = np.array(sorted(pool))
            margin = np.abs(model.predict_proba(embeddings[candidates]) - 0.5)
            picked = candidates[np.argsort(margin, kind="stable")[:batch]].tolist()
            chosen += picked
            pool -= set(picked)
            model = _fit(embedder, embeddings, labels, chosen)
        out["uncertainty"][n] = f1(model)
    out["fully supervised"] = f1(_fit(embedder, embeddings, labels, train))
    return out
