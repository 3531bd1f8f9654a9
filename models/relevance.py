"""Is a post a report of a fixable public-service problem? A calibrated classifier on embeddings.

The model is a logistic regression on sentence embeddings trained on the project's own seed
examples (``seeds/relevance.yaml``) plus the city's service catalog names as extra positives.
Class weights are balanced, so neither class dominates however many seeds each side has.

The city's own 311 history (``models/history.py``) adds positives: every request a resident
filed reports a problem. They are capped and down-weighted (``history_weights``) so that
thousands of them refine the positive class without swamping the seeds' negatives.

Calibration is Platt scaling fitted on out-of-fold decision values (five stratified folds),
the ``ensemble=False`` form of scikit-learn's ``CalibratedClassifierCV``: the final regression
is trained on all seeds and a one-dimensional sigmoid, fitted on scores the regression gave to
examples it had not seen, maps its score to a probability. The calibration is weighted like the
training, so ``predict_proba`` reads as P(report) under an even prior and 0.5 is the
equal-cost decision point. The whole model is four arrays, saved as JSON (never pickled).
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, cross_val_predict

_FORMAT = "social311.relevance/1"

#: The 311 history's total training weight, relative to the seed and catalog positives together.
HISTORY_SHARE = 1.0
#: The most history rows trained on (an even sample of the newest): the fit stays under a second.
MAX_HISTORY = 2000


def load_seeds() -> tuple[list[str], list[str]]:
    """The packaged seed examples.

    Returns:
        ``(positive_texts, negative_texts)``.
    """
    text = resources.files("social311.models").joinpath("seeds/relevance.yaml").read_text(encoding="utf-8")
    data = yaml.safe_load(text)
    return list(data["positive"]), list(data["negative"])


def history_weights(n_history: int, n_positive: int, share: float = HISTORY_SHARE,
                    max_rows: int = MAX_HISTORY) -> tuple[np.ndarray, float]:
    """Which 311 history rows the relevance model trains on, and the weight of each.

    History rows are all positives and may outnumber the seeds by a hundred to one. Class
    balancing alone would then leave the negatives' weight intact but make the positive class
    almost entirely 311-form prose, so residents' posts (the seeds' register) would score
    lower. Instead the history together weighs ``share`` times the seed and catalog positives
    (at most 1 a row): with the default 1.0, half the positive class is the city's own words
    however large its history, and the negatives still weigh as much as all positives.

    Args:
        n_history: rows available, newest first.
        n_positive: seed, catalog and reviewed positives they join.
        share: the history's total weight relative to those positives.
        max_rows: at most this many rows, evenly spaced over the history (cost, not quality).

    Returns:
        ``(row indices, weight of each row)``.
    """
    rows = np.unique(np.linspace(0, n_history - 1, num=min(n_history, max_rows)).round().astype(int)) if n_history else np.zeros(0, dtype=int)
    weight = min(1.0, share * n_positive / len(rows)) if len(rows) else 0.0
    return rows, weight


def _balanced(y: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Weights rescaled so both classes weigh the same and all rows together weigh their sum."""
    total = weights.sum()
    out = weights.copy()
    for label in (0, 1):
        mask = y == label
        out[mask] *= total / (2 * weights[mask].sum())
    return out


class RelevanceModel:
    """Logistic regression on embeddings followed by a Platt sigmoid.

    Args:
        C: inverse L2 regularisation strength of the regression.
    """

    def __init__(self, C: float = 1.0) -> None:
        self.C = C
        self.coef: np.ndarray | None = None  # (dims,)
        self.intercept = 0.0
        self.platt_a = 1.0  # p = sigmoid(platt_a * score + platt_b)
        self.platt_b = 0.0

    @classmethod
    def from_seeds(cls, embedder: Any, service_texts: list[str] | tuple[str, ...] = (),
                   labelled: tuple[np.ndarray, np.ndarray] | None = None,
                   history: np.ndarray | None = None) -> RelevanceModel:
        """Train on the packaged seeds plus service catalog texts as extra positives.

        Args:
            embedder: anything with ``encode(list[str]) -> np.ndarray`` (an ``Embedder``).
            service_texts: service names/descriptions of the city's catalog.
            labelled: ``(embeddings, 0/1 labels)`` of posts a reviewer labelled
                (``review.labelled_post_texts`` without the texts), added to the seeds; already embedded, so not again.
            history: ``(n, dims)`` embeddings of the city's past 311 request descriptions
                (``history.load_history``): positives, weighted by :func:`history_weights`.

        Returns:
            A fitted model. Without ``history`` it is exactly the model this method always made.
        """
        positive, negative = load_seeds()
        positive = positive + [t for t in service_texts if t and t.strip()]
        embeddings = embedder.encode(positive + negative)
        labels = np.array([1] * len(positive) + [0] * len(negative))
        if labelled is not None and len(labelled[1]):
            embeddings = np.vstack([embeddings, np.asarray(labelled[0], dtype=embeddings.dtype)])
            labels = np.concatenate([labels, np.asarray(labelled[1], dtype=int)])
        model = cls()
        if history is None or not len(history):
            return model.fit(embeddings, labels)
        rows, weight = history_weights(len(history), int(labels.sum()))
        weights = np.concatenate([np.ones(len(labels)), np.full(len(rows), weight)])
        embeddings = np.vstack([embeddings, np.asarray(history, dtype=embeddings.dtype)[rows]])
        labels = np.concatenate([labels, np.ones(len(rows), dtype=int)])
        return model.fit(embeddings, labels, sample_weight=weights)

    def fit(self, embeddings: np.ndarray, labels: np.ndarray, sample_weight: np.ndarray | None = None) -> RelevanceModel:
        """Fit the regression and its calibration.

        Args:
            embeddings: ``(n, dims)`` array.
            labels: ``(n,)`` of 0/1, both classes present.
            sample_weight: ``(n,)`` weight of each row (default: all 1). The classes are
                balanced by their total weight, not their row count, and the regression and
                the Platt sigmoid see the same weights.

        Returns:
            ``self``.
        """
        X = np.asarray(embeddings, dtype=np.float64)
        y = np.asarray(labels).astype(int)
        if set(np.unique(y)) != {0, 1}:
            raise ValueError("labels must contain both 0 and 1")
        if sample_weight is None:
            # Unweighted: scikit-learn's own balancing (the seed-only model, unchanged).
            base = LogisticRegression(C=self.C, class_weight="balanced", max_iter=2000)
            fit_params: dict[str, Any] = {}
            platt = LogisticRegression(C=1e6, class_weight="balanced")
        else:
            base = LogisticRegression(C=self.C, max_iter=2000)
            fit_params = {"sample_weight": _balanced(y, np.asarray(sample_weight, dtype=np.float64))}
            platt = LogisticRegression(C=1e6)
        folds = min(5, int(np.bincount(y).min()))
        if folds >= 2:
            cv = StratifiedKFold(n_splits=folds, shuffle=True, random_state=0)
            scores = cross_val_predict(base, X, y, cv=cv, method="decision_function", params=fit_params)
        else:  # too few examples to hold any out: calibrate on in-sample scores
            scores = base.fit(X, y, **fit_params).decision_function(X)
        platt.fit(scores.reshape(-1, 1), y, **fit_params)
        base.fit(X, y, **fit_params)
        self.coef = base.coef_[0].astype(np.float64)
        self.intercept = float(base.intercept_[0])
        self.platt_a = float(platt.coef_[0, 0])
        self.platt_b = float(platt.intercept_[0])
        return self

    def decision_function(self, embeddings: np.ndarray) -> np.ndarray:
        """The regression's raw score (log-odds before calibration) per row."""
        if self.coef is None:
            raise RuntimeError("RelevanceModel is not fitted")
        return np.asarray(embeddings, dtype=np.float64) @ self.coef + self.intercept

    def predict_proba(self, embeddings: np.ndarray) -> np.ndarray:
        """Calibrated P(report) per row.

        Args:
            embeddings: ``(n, dims)`` array.

        Returns:
            ``(n,)`` float64 array in [0, 1].
        """
        z = self.platt_a * self.decision_function(embeddings) + self.platt_b
        return 1.0 / (1.0 + np.exp(-np.clip(z, -500, 500)))

    def save(self, path: str | Path) -> None:
        """Write the model as JSON (coefficients, intercept, calibration)."""
        if self.coef is None:
            raise RuntimeError("RelevanceModel is not fitted")
        payload = {
            "format": _FORMAT, "C": self.C, "coef": self.coef.tolist(), "intercept": self.intercept,
            "platt_a": self.platt_a, "platt_b": self.platt_b,
        }
        Path(path).write_text(json.dumps(payload), encoding="utf-8")

    @classmethod
    def load(cls, path: str | Path) -> RelevanceModel:
        """Read a model written by ``save``."""
        payload = json.loads(Path(path).read_text(encoding="utf-8"))
        if payload.get("format") != _FORMAT:
            raise ValueError(f"{path} is not a {_FORMAT} model")
        model = cls(C=float(payload["C"]))
        model.coef = np.asarray(payload["coef"], dtype=np.float64)
        model.intercept = float(payload["intercept"])
        model.platt_a = float(payload["platt_a"])
        model.platt_b = float(payload["platt_b"])
        return model


#: Weight of one reviewed post against one seed: a reviewer's label is the city's own truth.
REVIEW_WEIGHT = 2.0

# -- trust schedule: how far the city's own labels may move the model away from the prior -------
#: C of the regression with no city labels (only seeds and catalog texts): the n-gram and
#: embedding columns are shrunk hard, so ~200 seeds of the pipeline's own wording cannot
#: override a starting model learned from ~17,000 public labels.
C_MIN = 0.02
#: C once the city has many labels (the combined model's default, as for the starting model).
C_MAX = 4.0
#: City labels at which C is half way between C_MIN and C_MAX.
N_HALF = 200.0
#: What one seed, catalog text or 311 history row counts as city evidence (a reviewed post: 1).
#: Seeds are the project's, not the city's; history rows are the city's but positives only.
WEAK_COUNT = 0.05
#: Scale of the prior's log-odds column with the schedule: a weight of 1/PRIOR_SCALE_CITY
#: reproduces the prior, and costs 1/32 in the L2 penalty, so the prior stays nearly
#: unregularised while the other columns are shrunk.
PRIOR_SCALE_CITY = 4.0


def city_evidence(n_reviewed: int, n_weak: int = 0) -> float:
    """How many labels of the city's own the model has: ``n = reviewed + WEAK_COUNT * (seeds + catalog + history)``."""
    return float(n_reviewed) + WEAK_COUNT * float(n_weak)


def trust(n: float) -> float:
    """The share of the way from the prior to the city's own fit: ``t(n) = n / (n + N_HALF)``, in [0, 1)."""
    return n / (n + N_HALF)


def trust_C(n: float) -> float:
    """The regression's C for ``n`` city labels: ``C(n) = C_MIN + (C_MAX - C_MIN) * t(n)``.

    About 0.22 with only the ~212 seeds (n = 10.6), 2.1 at 200 reviewed posts, 2.9 at 500,
    C_MAX in the limit: the more labels the city has, the further its n-gram and embedding
    columns may pull away from the prior.
    """
    return C_MIN + (C_MAX - C_MIN) * trust(n)


def city_model(embedder, service_texts: list[str] | tuple[str, ...] = (),
               labelled: tuple[list[str], np.ndarray, np.ndarray] | None = None,
               history: tuple[list[str], np.ndarray] | None = None,
               starting: Any = "shipped", warn=None, seeds: tuple[list[str], list[str]] | None = None):
    """The production relevance model (``models/combined.py``) on everything the city has.

    Seeds and catalog texts (positives) weigh 1 a row, reviewed posts ``REVIEW_WEIGHT``, the
    311 history as :func:`history_weights` says; the shipped starting model (learned from public
    labelled data) is a prior whose weight the fit learns, so the city's labels shift it.

    **Trust schedule** (with a prior). With ``n = city_evidence(reviewed, seeds + catalog +
    history rows)`` (a reviewed post counts 1, the rest ``WEAK_COUNT``), the regression's
    ``C = trust_C(n) = C_MIN + (C_MAX - C_MIN) * n / (n + N_HALF)``, the prior's column is
    scaled by ``PRIOR_SCALE_CITY`` (so its own weight is nearly free) and the Platt
    calibration fitted on the city's rows is shrunk towards the identity by the same
    ``t = n / (n + N_HALF)``: ``a = 1 + t * (a_fit - 1)``, ``b = t * b_fit``. With few labels
    the model stays near the prior's own calibrated log-odds; with many, the city's labels
    win. Without a prior the plain combined model (C = C_MAX) is fitted on what there is.

    Args:
        embedder: encodes the seed and catalog texts.
        service_texts: the catalog's service texts.
        labelled: ``(texts, embeddings, 0/1 labels)`` of reviewed posts.
        history: ``(texts, embeddings)`` of past 311 requests, newest first.
        starting: ``"shipped"`` (``models/starting/relevance.npz``; a missing file is warned
            about and skipped), a ``CombinedModel``, or None (no prior).
        warn: where the missing-file line goes (default: the module logger).
        seeds: ``(positive, negative)`` texts instead of the packaged seeds.

    Returns:
        A fitted ``CombinedModel``; ``predict_proba(texts, embeddings)`` is P(report).
    """
    from social311.models.combined import Calibration, CombinedModel, load_starting

    prior = load_starting("relevance", warn=warn) if isinstance(starting, str) else starting
    positive, negative = seeds or load_seeds()
    positive = positive + [t for t in service_texts if t and t.strip()]
    texts = positive + negative
    embeddings = np.asarray(embedder.encode(texts), dtype=np.float32)
    labels = np.array([1] * len(positive) + [0] * len(negative))
    weights = np.ones(len(labels))
    if labelled is not None and len(labelled[2]):
        texts = texts + list(labelled[0])
        embeddings = np.vstack([embeddings, np.asarray(labelled[1], dtype=np.float32)])
        labels = np.concatenate([labels, np.asarray(labelled[2], dtype=int)])
        weights = np.concatenate([weights, np.full(len(labelled[2]), REVIEW_WEIGHT)])
    if history is not None and len(history[0]):
        rows, weight = history_weights(len(history[0]), int(labels.sum()))
        texts = texts + [history[0][i] for i in rows]
        embeddings = np.vstack([embeddings, np.asarray(history[1], dtype=np.float32)[rows]])
        labels = np.concatenate([labels, np.ones(len(rows), dtype=int)])
        weights = np.concatenate([weights, np.full(len(rows), weight)])
    n_reviewed = 0 if labelled is None else len(labelled[2])
    n = city_evidence(n_reviewed, len(labels) - n_reviewed)
    if prior is None:
        model = CombinedModel(C=C_MAX)
    else:
        model = CombinedModel(C=trust_C(n), prior=prior, prior_scale=PRIOR_SCALE_CITY)
    model.fit(texts, embeddings, labels, sample_weight=weights)
    if prior is not None:
        # Platt fitted on seeds transfers badly to another task's posts (ECE 0.15-0.48 out of
        # domain): with few city labels, keep closer to the prior's own calibration.
        fitted, t = model.calibration, trust(n)
        model.calibration = Calibration(a=1.0 + t * (fitted.a - 1.0), b=t * fitted.b,
                                        temperature=fitted.temperature)
        model.trained_on["trust"] = {"city_labels": round(n, 1), "C": round(model.C, 3), "t": round(t, 3),
                                     "platt_fitted": [round(fitted.a, 4), round(fitted.b, 4)]}
    model.trained_on.update({"starting_model": prior is not None, "reviewed": 0 if labelled is None else len(labelled[2]),
                             "history": 0 if history is None else min(len(history[0]), MAX_HISTORY)})
    return model
