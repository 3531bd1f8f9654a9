"""Is a post a report of a fixable public-service problem? A calibrated classifier on embeddings.

The model is a logistic regression on sentence embeddings trained on the project's own seed
examples (``seeds/relevance.yaml``) plus the city's service catalog names as extra positives.
Class weights are balanced, so neither class dominates however many seeds each side has.

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


def load_seeds() -> tuple[list[str], list[str]]:
    """The packaged seed examples.

    Returns:
        ``(positive_texts, negative_texts)``.
    """
    text = resources.files("social311.models").joinpath("seeds/relevance.yaml").read_text(encoding="utf-8")
    data = yaml.safe_load(text)
    return list(data["positive"]), list(data["negative"])


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
                   labelled: tuple[np.ndarray, np.ndarray] | None = None) -> RelevanceModel:
        """Train on the packaged seeds plus service catalog texts as extra positives.

        Args:
            embedder: anything with ``encode(list[str]) -> np.ndarray`` (an ``Embedder``).
            service_texts: service names/descriptions of the city's catalog.
            labelled: ``(embeddings, 0/1 labels)`` of posts a reviewer labelled
                (``review.labelled_posts``), added to the seeds; already embedded, so not again.

        Returns:
            A fitted model.
        """
        positive, negative = load_seeds()
        positive = positive + [t for t in service_texts if t and t.strip()]
        embeddings = embedder.encode(positive + negative)
        labels = np.array([1] * len(positive) + [0] * len(negative))
        if labelled is not None and len(labelled[1]):
            embeddings = np.vstack([embeddings, np.asarray(labelled[0], dtype=embeddings.dtype)])
            labels = np.concatenate([labels, np.asarray(labelled[1], dtype=int)])
        model = cls()
        model.fit(embeddings, labels)
        return model

    def fit(self, embeddings: np.ndarray, labels: np.ndarray) -> RelevanceModel:
        """Fit the regression and its calibration.

        Args:
            embeddings: ``(n, dims)`` array.
            labels: ``(n,)`` of 0/1, both classes present.

        Returns:
            ``self``.
        """
        X = np.asarray(embeddings, dtype=np.float64)
        y = np.asarray(labels).astype(int)
        if set(np.unique(y)) != {0, 1}:
            raise ValueError("labels must contain both 0 and 1")
        base = LogisticRegression(C=self.C, class_weight="balanced", max_iter=2000)
        folds = min(5, int(np.bincount(y).min()))
        if folds >= 2:
            cv = StratifiedKFold(n_splits=folds, shuffle=True, random_state=0)
            scores = cross_val_predict(base, X, y, cv=cv, method="decision_function")
        else:  # too few examples to hold any out: calibrate on in-sample scores
            scores = base.fit(X, y).decision_function(X)
        platt = LogisticRegression(C=1e6, class_weight="balanced").fit(scores.reshape(-1, 1), y)
        base.fit(X, y)
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
