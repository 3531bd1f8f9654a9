"""A cheap prefilter that skips obvious chatter before embedding (off unless a city turns it on).

Embedding is the pipeline's one expensive step (all-MiniLM-L6-v2: ~850 posts/s on 2 CPU cores
with the int8 path), and about half of a city's posts are chatter. The prefilter is TF-IDF
(hashed word 1-2-grams, ~30,000 posts/s) with a logistic regression, trained on the
pipeline's **own** decisions: the texts of posts already embedded and scored, labelled by the
embedding relevance model (``is_report``). No hand labels are needed, so it works on day one;
what it learns is to predict what the embedding model would say, and it is retrained every run
on the latest scored posts.

Its threshold keeps ``recall`` (default 99%) of those reports out of fold: only posts scoring
below it, *and* below the relevance threshold in the prefilter's own probability, are skipped.
A skipped post still gets its ``ml.post_signals`` row (relevance from the prefilter, never a
report, no embedding, ``model_name`` ``prefilter/...``), so nothing downstream loses track of
it. The cost is the reports it drops: measured against embedding everything by
``bench/pipeline_100k.py --prefilter both``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MODEL_NAME = "prefilter/hashed-tfidf-lr"


def _features():
    from sklearn.feature_extraction.text import HashingVectorizer, TfidfTransformer
    from sklearn.pipeline import make_pipeline

    # Hashing needs no vocabulary pass; the IDF weights are fitted on the training texts.
    return make_pipeline(
        HashingVectorizer(ngram_range=(1, 2), n_features=2**18, alternate_sign=False, norm=None,
                          lowercase=True, strip_accents="unicode"),
        TfidfTransformer(sublinear_tf=True),
    )


@dataclass
class Prefilter:
    """A fitted prefilter: features, regression and the score below which a post is skipped."""

    features: object
    model: object
    threshold: float
    oof_recall: float
    trained_on: int

    @classmethod
    def train(cls, texts: list[str], is_report: np.ndarray, *, recall: float = 0.99, seed: int = 0) -> Prefilter | None:
        """Fit on scored posts; None when there are too few of either kind to set a threshold.

        Args:
            texts: post texts already scored by the embedding relevance model.
            is_report: that model's decision for each (1 = report).
            recall: share of those reports whose out-of-fold score must stay at or above the threshold.
            seed: fold shuffling seed.
        """
        from sklearn.linear_model import LogisticRegression
        from sklearn.model_selection import StratifiedKFold, cross_val_predict

        y = np.asarray(is_report).astype(int)
        if min(int((y == 1).sum()), int((y == 0).sum())) < 50:
            return None
        features = _features()
        x = features.fit_transform(list(texts))
        # liblinear: the same L2 logistic regression, ~14x faster than lbfgs on these sparse
        # features (0.5 s instead of 7 s for 5 folds + the final fit on 5,000 posts here).
        model = LogisticRegression(C=4.0, class_weight="balanced", solver="liblinear")
        oof = cross_val_predict(model, x, y, cv=StratifiedKFold(5, shuffle=True, random_state=seed),
                                method="decision_function")
        threshold = float(np.quantile(oof[y == 1], 1 - recall, method="lower"))
        model.fit(x, y)
        return cls(features=features, model=model, threshold=threshold,
                   oof_recall=float((oof[y == 1] >= threshold).mean()), trained_on=len(y))

    def skip(self, texts: list[str], relevance_threshold: float) -> tuple[np.ndarray, np.ndarray]:
        """``(skip mask, P(report) per post)``: skipped = below the threshold and below ``relevance_threshold``."""
        if not texts:
            return np.zeros(0, dtype=bool), np.zeros(0)
        x = self.features.transform(list(texts))
        scores = self.model.decision_function(x)
        probability = 1.0 / (1.0 + np.exp(-np.clip(scores, -500, 500)))
        return (scores < self.threshold) & (probability < relevance_threshold), probability
