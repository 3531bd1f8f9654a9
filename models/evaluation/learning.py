"""Learning from the city: F1 of the pipeline's relevance model against the number of reviewed labels.

A city starts from the seeds and the starting model (0 labels) and reviews posts. Each step
adds reviewed posts from the training part (the pool) as review labels
(``relevance.city_model(labelled=...)``, as ``ml/post_signals`` does) and scores the test part.
Two ways of choosing what to show:

* ``random``: a seeded random order of the pool;
* ``uncertainty``: the pool posts whose current P(report) is closest to 0.5, in batches of 50
  (the model is retrained between batches, as a review queue would be between runs).

``fully supervised`` is the same model with the whole pool as review labels: the ceiling the
curve is read against (issue 13's target: within 0.03 of it with 200 labels).
``social311 eval --task learning`` runs it on each shared relevance set (``run_shared``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from social311.models.evaluation.classifiers import score

STEPS = (0, 50, 100, 200, 500)
#: The most pool posts ranked for uncertainty per batch (a review queue shows a page, not everything).
POOL_SAMPLE = 3000


def _fit(embedder, texts, embeddings, labels, chosen, starting):
    from social311.models.relevance import city_model

    chosen = np.asarray(chosen, dtype=int)
    labelled = ([texts[i] for i in chosen], embeddings[chosen], labels[chosen]) if len(chosen) else None
    return city_model(embedder, labelled=labelled, starting=starting)


def curve(embedder, embeddings: np.ndarray, labels: np.ndarray, train: np.ndarray, test: np.ndarray,
          steps=STEPS, seed: int = 0, threshold: float = 0.5, texts: list[str] | None = None,
          starting=None, log=None) -> dict:
    """``{"random": {n: F1}, "uncertainty": {n: F1}, "fully supervised": F1}`` on one split.

    Args:
        texts: the rows' texts (the model reads them); default: empty strings (embeddings only).
        starting: the prior (a ``CombinedModel``, ``"shipped"`` or None).
    """
    texts = list(texts) if texts is not None else [""] * len(labels)

    def f1(model) -> float:
        proba = model.predict_proba([texts[i] for i in test], embeddings[test])
        return round(score(labels[test], (proba >= threshold).astype(int)).f1, 4)

    out = {"random": {}, "uncertainty": {}}
    order = np.random.default_rng(seed).permutation(train)
    for n in steps:
        out["random"][n] = f1(_fit(embedder, texts, embeddings, labels, order[:min(n, len(order))], starting))
        if log:
            log(f"  random {n}: F1 {out['random'][n]:.3f}")
    chosen: list[int] = []
    pool = set(train.tolist())
    rng = np.random.default_rng(seed + 1)
    model = _fit(embedder, texts, embeddings, labels, chosen, starting)
    for n in steps:
        while len(chosen) < min(n, len(train)):
            batch = min(n - len(chosen), 50)
            candidates = np.array(sorted(pool))
            if len(candidates) > POOL_SAMPLE:
                candidates = np.sort(rng.choice(candidates, POOL_SAMPLE, replace=False))
            margin = np.abs(model.predict_proba([texts[i] for i in candidates], embeddings[candidates]) - 0.5)
            picked = candidates[np.argsort(margin, kind="stable")[:batch]].tolist()
            chosen += picked
            pool -= set(picked)
            model = _fit(embedder, texts, embeddings, labels, chosen, starting)
        out["uncertainty"][n] = f1(model)
        if log:
            log(f"  uncertainty {n}: F1 {out['uncertainty'][n]:.3f}")
    out["fully supervised"] = f1(_fit(embedder, texts, embeddings, labels, train, starting))
    return out


def run_shared(data_dir: Path, embedder, log=print) -> list[dict]:
    """The curve on each shared relevance set's first split, over a starting model built without that set."""
    from social311.models.evaluation import classifiers, datasets
    from social311.models.evaluation.cache import cached_encode
    from social311.models.evaluation.lodo import starting_without

    rows = []
    for loader in (datasets.mumbai_relevance, datasets.acl_complaints, datasets.crisislex):
        data = loader(data_dir)
        if data is None:
            continue
        vectors = cached_encode(embedder, data.texts, data.source, log=log)
        splits, described = classifiers.splits_for(data.protocol, data.labels, data.groups)
        train, test = splits[0]
        log(f"learning curve: {data.name}, split 1 of {described} ({len(train)} pool, {len(test)} test)")
        prior = starting_without(data_dir, embedder, loader.__name__, log=log)
        rows.append({"dataset": data.name, "split": f"first split of {described}", "pool": int(len(train)),
                     "test": int(len(test)),
                     **curve(embedder, vectors, data.labels, train, test, texts=data.texts, starting=prior, log=log)})
    return rows


def format_table(rows: list[dict]) -> str:
    """Markdown: F1 per number of reviewed labels, random and uncertainty, and fully supervised."""
    head = "| dataset | selection | " + " | ".join(f"{n} labels" for n in STEPS) + " | fully supervised |"
    lines = [head, "|---|---|" + "---|" * (len(STEPS) + 1)]
    for row in rows:
        for mode in ("random", "uncertainty"):
            values = " | ".join(f"{row[mode].get(n, float('nan')):.3f}" for n in STEPS)
            lines.append(f"| {row['dataset']} | {mode} | {values} | {row['fully supervised']:.3f} |")
    return "\n".join(lines)
