"""The production text model: character and word n-grams plus the sentence embedding, one calibrated linear model.

Out of domain (an unseen crisis event, another country's complaints) TF-IDF n-grams beat a
regression on MiniLM embeddings alone; in domain the embeddings carry meaning across wordings
the n-grams never saw. This model uses both in one logistic regression:

* character n-grams (``char_wb`` 2-5) and word 1-2-grams, **hashed** (``HashingVectorizer``,
  2^18 buckets each), so there is no vocabulary to fit or ship and a model trained elsewhere
  reads any city's words; each block is sublinear-tf weighted (``log1p`` of the count) and
  L2-normalised, the tf-idf-like weighting without an idf table (idf needs the corpus);
* the 384-d unit embedding, scaled by ``embed_scale`` so the dense block weighs against the
  sparse ones;
* optionally the log-odds of a **starting model** (``models/starting/``, learned from public
  labelled data by ``scripts/build_starting_model.py``) as one more column, scaled by
  ``prior_scale``: the city's own labels decide how far to trust it (``fit`` learns its weight
  with everything else), so the public data is a prior the city's labels shift, not a
  replacement, and no public text ships with the package.

Classes are balanced by their total sample weight. Probabilities are calibrated on
out-of-fold scores (``folds`` stratified folds; the final model is refitted on everything):
binary models get Platt scaling (a sigmoid on the decision value), multi-class models
temperature scaling (one temperature for the softmax), so 0.5 is the equal-cost threshold and
a probability reads as a frequency. ``calibration_report`` gives Brier score and expected
calibration error. Saved as ``.npz`` (the non-zero coefficients only, no pickle).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import sparse
from sklearn.feature_extraction.text import HashingVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold
from sklearn.preprocessing import normalize

FORMAT = "social311.combined/1"
N_FEATURES = 2 ** 18
EMBED_SCALE = 2.0
PRIOR_SCALE = 0.5
#: Rows scored at once by ``predict_proba`` (bounds its memory whatever the run's size).
PREDICT_CHUNK = 4096
log = logging.getLogger(__name__)


def _hashers(n_features: int) -> tuple[HashingVectorizer, HashingVectorizer]:
    # alternate_sign=False: counts stay non-negative, so log1p below is a sublinear tf.
    common = dict(n_features=n_features, alternate_sign=False, norm=None, lowercase=True, dtype=np.float32)
    return (HashingVectorizer(analyzer="char_wb", ngram_range=(2, 5), **common),
            HashingVectorizer(analyzer="word", ngram_range=(1, 2), **common))


def text_features(texts: list[str], n_features: int = N_FEATURES) -> sparse.csr_matrix:
    """Hashed char_wb 2-5-grams and word 1-2-grams, each block log1p-weighted and L2-normalised."""
    blocks = []
    for hasher in _hashers(n_features):
        counts = hasher.transform(texts).tocsr()
        counts.data = np.log1p(counts.data)
        blocks.append(normalize(counts))
    return sparse.hstack(blocks, format="csr", dtype=np.float32)


@dataclass
class Calibration:
    """Platt (binary: ``p = sigmoid(a * z + b)``) or temperature (multi-class: ``softmax(z / t)``)."""

    a: float = 1.0
    b: float = 0.0
    temperature: float = 1.0


def _balanced(y: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Weights rescaled so every class weighs the same in total and all rows their original sum."""
    out = weights.astype(np.float64).copy()
    classes = np.unique(y)
    for label in classes:
        mask = y == label
        out[mask] *= weights.sum() / (len(classes) * weights[mask].sum())
    return out


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


class CombinedModel:
    """Logistic regression on [hashed n-grams | scaled embedding | scaled prior log-odds], calibrated.

    Args:
        C: inverse L2 regularisation of the regression.
        embed_scale: multiplier of the unit embedding block.
        prior: a fitted binary ``CombinedModel`` whose log-odds become one feature, or None.
        prior_scale: multiplier of that feature.
        folds: calibration folds (fewer when a class has fewer rows).
        n_features: hash buckets per n-gram block.
    """

    def __init__(self, C: float = 4.0, embed_scale: float = EMBED_SCALE, prior: CombinedModel | None = None,
                 prior_scale: float = PRIOR_SCALE, folds: int = 5, n_features: int = N_FEATURES) -> None:
        self.C, self.embed_scale, self.prior, self.prior_scale = C, embed_scale, prior, prior_scale
        self.folds, self.n_features = folds, n_features
        self.classes: np.ndarray | None = None
        self.coef: sparse.csr_matrix | None = None  # (rows, features): 1 row when binary
        self.intercept: np.ndarray | None = None
        self.calibration = Calibration()
        self.trained_on: dict = {}

    # -- features -------------------------------------------------------------------------
    def features(self, texts: list[str], embeddings: np.ndarray) -> sparse.csr_matrix:
        """The model's input rows: n-grams, scaled embedding and (with a prior) its scaled log-odds."""
        if len(texts) != len(embeddings):
            raise ValueError(f"{len(texts)} texts but {len(embeddings)} embeddings")
        return self.features_from(text_features(list(texts), self.n_features), embeddings)

    # -- fitting --------------------------------------------------------------------------
    def _regression(self) -> LogisticRegression:
        return LogisticRegression(C=self.C, max_iter=1000, tol=1e-3)

    def fit(self, texts: list[str], embeddings: np.ndarray, labels, sample_weight: np.ndarray | None = None,
            log_fn=None) -> CombinedModel:
        """Fit the regression and its calibration.

        Args:
            texts: the rows' texts.
            embeddings: their ``(n, 384)`` embeddings, in the same order.
            labels: 0/1 (relevance) or class names (typing); at least two classes.
            sample_weight: per-row weight (default 1); classes are balanced by total weight.
            log_fn: progress lines (fold by fold), or None.

        Returns:
            ``self``.
        """
        y = np.asarray(labels)
        classes = np.unique(y)
        if len(classes) < 2:
            raise ValueError("labels must contain at least two classes")
        weights = np.ones(len(y)) if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
        weights = _balanced(y, weights)
        X = self.features(texts, embeddings)
        counts = np.array([(y == c).sum() for c in classes])
        folds = int(min(self.folds, counts.min()))
        scores = None
        if folds >= 2:
            scores = np.zeros((len(y), len(classes)) if len(classes) > 2 else len(y))
            split = StratifiedKFold(n_splits=folds, shuffle=True, random_state=0).split(np.zeros(len(y)), y)
            for number, (train, test) in enumerate(split, 1):
                if log_fn:
                    log_fn(f"  calibration fold {number}/{folds} ({len(train)} rows)")
                part = self._regression().fit(X[train], y[train], sample_weight=weights[train])
                if len(part.classes_) != len(classes):  # a fold without some class: calibrate in-sample
                    scores = None
                    break
                scores[test] = part.decision_function(X[test])
        final = self._regression().fit(X, y, sample_weight=weights)
        if scores is None:
            scores = final.decision_function(X)
        self.classes = final.classes_
        self.coef = sparse.csr_matrix(final.coef_.astype(np.float32))
        self.intercept = final.intercept_.astype(np.float64)
        self.calibration = self._calibrate(scores, y, weights)
        self.trained_on = {"rows": int(len(y)), "classes": [str(c) for c in classes],
                           "calibration_folds": folds if folds >= 2 else 0}
        if len(classes) == 2 and folds >= 2:
            # How well calibrated the out-of-fold probabilities are (rows unweighted).
            oof = 1.0 / (1.0 + np.exp(-np.clip(self.calibration.a * scores + self.calibration.b, -500, 500)))
            self.trained_on["out_of_fold"] = calibration_report(y == classes[1], oof)
        return self

    def _calibrate(self, scores: np.ndarray, y: np.ndarray, weights: np.ndarray) -> Calibration:
        if len(self.classes) == 2:
            platt = LogisticRegression(C=1e6).fit(scores.reshape(-1, 1), (y == self.classes[1]).astype(int),
                                                  sample_weight=weights)
            return Calibration(a=float(platt.coef_[0, 0]), b=float(platt.intercept_[0]))
        from scipy.optimize import minimize_scalar

        index = np.searchsorted(self.classes, y)

        def nll(log_t: float) -> float:
            p = _softmax(scores / np.exp(log_t))[np.arange(len(y)), index]
            return float(-(weights * np.log(np.clip(p, 1e-12, None))).sum() / weights.sum())

        best = minimize_scalar(nll, bounds=(-3, 3), method="bounded")
        return Calibration(temperature=float(np.exp(best.x)))

    # -- prediction -----------------------------------------------------------------------
    def _decision(self, X: sparse.csr_matrix) -> np.ndarray:
        if self.coef is None:
            raise RuntimeError("CombinedModel is not fitted")
        z = np.asarray((X @ self.coef.T).todense()) + self.intercept
        return z[:, 0] if len(self.classes) == 2 else z

    def _logit(self, grams: sparse.csr_matrix, embeddings: np.ndarray) -> np.ndarray:
        """Calibrated log-odds of a binary model from precomputed n-gram features (used as a prior)."""
        X = self.features_from(grams, embeddings)
        return self.calibration.a * self._decision(X) + self.calibration.b

    def features_from(self, grams: sparse.csr_matrix, embeddings: np.ndarray) -> sparse.csr_matrix:
        """``features`` with the n-gram block already computed (a prior shares its caller's)."""
        blocks = [grams, sparse.csr_matrix(np.asarray(embeddings, dtype=np.float32) * self.embed_scale)]
        if self.prior is not None:
            blocks.append(sparse.csr_matrix(self.prior_scale * self.prior._logit(grams, embeddings).reshape(-1, 1)))
        return sparse.hstack(blocks, format="csr", dtype=np.float32)

    def predict_proba(self, texts: list[str], embeddings: np.ndarray) -> np.ndarray:
        """Calibrated probabilities: ``(n,)`` P(class 1) when binary, else ``(n, len(classes))``.

        Rows are scored in chunks of ``PREDICT_CHUNK``: the sparse feature matrix of 100,000
        posts (n-grams + the embedding block + copies made by ``hstack``) would take gigabytes,
        a chunk's takes tens of megabytes, and the result is the same.
        """
        if len(texts) != len(embeddings):
            raise ValueError(f"{len(texts)} texts but {len(embeddings)} embeddings")
        if len(texts) > PREDICT_CHUNK:
            parts = [self.predict_proba(list(texts[i:i + PREDICT_CHUNK]), embeddings[i:i + PREDICT_CHUNK])
                     for i in range(0, len(texts), PREDICT_CHUNK)]
            return np.concatenate(parts, axis=0)
        z = self._decision(self.features(texts, embeddings))
        if len(self.classes) == 2:
            return 1.0 / (1.0 + np.exp(-np.clip(self.calibration.a * z + self.calibration.b, -500, 500)))
        return _softmax(z / self.calibration.temperature)

    def predict(self, texts: list[str], embeddings: np.ndarray, threshold: float = 0.5) -> np.ndarray:
        """Labels: P >= threshold for binary models, the most probable class otherwise."""
        proba = self.predict_proba(texts, embeddings)
        if len(self.classes) == 2:
            return np.where(proba >= threshold, self.classes[1], self.classes[0])
        return self.classes[proba.argmax(axis=1)]

    # -- storage --------------------------------------------------------------------------
    def save(self, path: str | Path, **meta: str) -> None:
        """Write the model (and its prior, if any) as a compressed ``.npz`` without pickles."""
        if self.coef is None:
            raise RuntimeError("CombinedModel is not fitted")
        if self.prior is not None:
            raise ValueError("save the prior separately: a model with a prior is retrained per city, never shipped")
        coef = self.coef.tocsr()
        np.savez_compressed(
            path, format=np.array(FORMAT), classes=np.asarray(self.classes).astype(str),
            is_int=np.array(np.issubdtype(np.asarray(self.classes).dtype, np.integer)),
            data=coef.data.astype(np.float16), indices=coef.indices.astype(np.int32), indptr=coef.indptr.astype(np.int64),
            shape=np.array(coef.shape), intercept=self.intercept,
            calibration=np.array([self.calibration.a, self.calibration.b, self.calibration.temperature]),
            settings=np.array([self.C, self.embed_scale, self.n_features, self.prior_scale]))

    @classmethod
    def load(cls, path: str | Path) -> CombinedModel:
        """Read a model written by ``save``."""
        with np.load(path, allow_pickle=False) as f:
            if str(f["format"]) != FORMAT:
                raise ValueError(f"{path} is not a {FORMAT} model")
            settings = f["settings"].tolist()
            C, embed_scale, n_features = settings[:3]
            # The prior column's scale (a city model with the trust schedule uses another than the
            # default); files written before it was stored have the default.
            prior_scale = float(settings[3]) if len(settings) > 3 else PRIOR_SCALE
            model = cls(C=float(C), embed_scale=float(embed_scale), n_features=int(n_features), prior_scale=prior_scale)
            classes = f["classes"]
            model.classes = classes.astype(int) if bool(f["is_int"]) else classes
            model.coef = sparse.csr_matrix((f["data"].astype(np.float32), f["indices"], f["indptr"]),
                                           shape=tuple(f["shape"]))
            model.intercept = f["intercept"]
            a, b, t = f["calibration"].tolist()
            model.calibration = Calibration(a, b, t)
        return model


def calibration_report(y_true: np.ndarray, proba: np.ndarray, bins: int = 10) -> dict:
    """Brier score and expected calibration error (equal-width bins) of binary probabilities."""
    y = np.asarray(y_true, dtype=float)
    p = np.asarray(proba, dtype=float)
    edges = np.minimum((p * bins).astype(int), bins - 1)
    ece = sum(abs(p[edges == k].mean() - y[edges == k].mean()) * (edges == k).mean()
              for k in range(bins) if (edges == k).any())
    return {"brier": round(float(((p - y) ** 2).mean()), 4), "ece": round(float(ece), 4)}


# -- the shipped starting point ---------------------------------------------------------------
def train_starting(sets: list[tuple[str, list[str], np.ndarray, np.ndarray]], folds: int = 3,
                   log_fn=None) -> CombinedModel:
    """A binary starting model from several public labelled sets, each weighing the same in total.

    Args:
        sets: ``(name, texts, embeddings, 0/1 labels)`` per set; a big set must not drown a small
            one, so each set's rows share one unit of weight (classes are then balanced).
        folds: calibration folds (3: the build is minutes on two cores).
        log_fn: progress lines.
    """
    texts, vectors, labels, weights = [], [], [], []
    for _, t, v, y in sets:
        texts += list(t)
        vectors.append(np.asarray(v, dtype=np.float32))
        labels.append(np.asarray(y, dtype=int))
        weights.append(np.full(len(y), 1.0 / len(y)))
    weights = np.concatenate(weights)
    model = CombinedModel(folds=folds)
    model.fit(texts, np.vstack(vectors), np.concatenate(labels), sample_weight=weights * len(weights), log_fn=log_fn)
    model.trained_on["sets"] = {name: int(len(y)) for name, _, _, y in sets}
    return model


STARTING_DIR = Path(__file__).resolve().parent / "starting"


def starting_path(task: str = "relevance") -> Path:
    """Where the shipped starting model of ``task`` lives (``models/starting/<task>.npz``)."""
    return STARTING_DIR / f"{task}.npz"


def load_starting(task: str = "relevance", path: Path | None = None, warn=None) -> CombinedModel | None:
    """The shipped starting model, or None with one warning line when its file is missing or unreadable.

    The pipeline then trains on the city's own data only (seeds, catalog, history, reviews):
    it still works, but out of the box it is weaker, so the fallback is said, never silent.
    """
    path = path or starting_path(task)
    try:
        return CombinedModel.load(path)
    except (OSError, ValueError, KeyError) as exc:
        message = (f"starting model {path} not loaded ({type(exc).__name__}: {exc}); "
                   f"{task} is trained on the city's own data only (run scripts/build_starting_model.py)")
        (warn or log.warning)(message)
        return None
