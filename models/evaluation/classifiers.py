"""The models compared in ``social311 eval``, all trained and scored on the same split.

* ``tfidf`` — the baseline every row is measured against: logistic regression on TF-IDF word
  1-2-grams and char_wb 2-5-grams (balanced class weights).
* ``embed`` — logistic regression on all-MiniLM-L6-v2 embeddings.
* ``stack`` — the two feature sets hstacked, C=4 (the best of the three on Mumbai 80/20).
* ``zero-shot`` — ``RelevanceModel.from_seeds``: the pipeline's own model, never trained on
  the data (binary relevance/complaint tasks only).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import sparse
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, f1_score, precision_score, recall_score
from sklearn.model_selection import StratifiedKFold, train_test_split
from sklearn.pipeline import FeatureUnion

SEED = 0


def tfidf_features() -> FeatureUnion:
    """Word 1-2-grams plus character 2-5-grams within word boundaries."""
    return FeatureUnion([
        ("word", TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True)),
        ("char", TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), min_df=2, sublinear_tf=True)),
    ])


def _lr(C: float) -> LogisticRegression:
    return LogisticRegression(C=C, class_weight="balanced", max_iter=3000)


def predict(model: str, train_texts, train_emb, y_train, test_texts, test_emb) -> np.ndarray:
    """Fit ``model`` (tfidf | embed | stack) on the training part and label the test part."""
    if model == "embed":
        return _lr(1.0).fit(train_emb, y_train).predict(test_emb)
    features = tfidf_features()
    x_train = features.fit_transform(train_texts)
    x_test = features.transform(test_texts)
    if model == "tfidf":
        return _lr(4.0).fit(x_train, y_train).predict(x_test)
    if model == "stack":
        x_train = sparse.hstack([x_train, sparse.csr_matrix(train_emb)]).tocsr()
        x_test = sparse.hstack([x_test, sparse.csr_matrix(test_emb)]).tocsr()
        return _lr(4.0).fit(x_train, y_train).predict(x_test)
    raise ValueError(f"unknown model {model!r}")


MODELS = ("tfidf", "embed", "stack")


@dataclass(frozen=True)
class Scores:
    """Binary: F1/precision/recall of the positive class. Multi-class: F1 is macro F1.

    ``macro_f1`` (the mean of every class's F1) is kept for both: CrisisLex is scored by it.
    """

    f1: float
    precision: float | None
    recall: float | None
    accuracy: float
    macro_f1: float

    def as_dict(self) -> dict:
        return {k: (round(v, 4) if v is not None else None) for k, v in self.__dict__.items()}


def score(y_true: np.ndarray, y_pred: np.ndarray) -> Scores:
    """Scores of predictions against the truth (binary when the labels are 0/1).

    Macro-F1 averages over the classes of the truth only: a class the model predicts but the
    test set never holds (one seen only in training) must not pull the mean down.
    """
    macro = f1_score(y_true, y_pred, labels=np.unique(y_true), average="macro", zero_division=0)
    if set(np.unique(y_true)) | set(np.unique(y_pred)) <= {0, 1}:
        return Scores(f1_score(y_true, y_pred, zero_division=0), precision_score(y_true, y_pred, zero_division=0),
                      recall_score(y_true, y_pred, zero_division=0), accuracy_score(y_true, y_pred), macro)
    return Scores(macro, None, None, accuracy_score(y_true, y_pred), macro)


def holdout(labels: np.ndarray, test_size: float = 0.2) -> list[tuple[np.ndarray, np.ndarray]]:
    """One fixed stratified 80/20 split (seed 0), as a one-element list of (train, test) indices."""
    idx = np.arange(len(labels))
    train, test = train_test_split(idx, test_size=test_size, stratify=labels, random_state=SEED)
    return [(train, test)]


def kfold(labels: np.ndarray, folds: int = 5) -> list[tuple[np.ndarray, np.ndarray]]:
    """Stratified k-fold (seed 0), fewer folds when the rarest class is smaller than ``folds``."""
    folds = max(2, min(folds, int(np.bincount(labels).min())))
    return list(StratifiedKFold(n_splits=folds, shuffle=True, random_state=SEED).split(np.zeros(len(labels)), labels))


def by_group(groups: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """Leave one group out: each group (e.g. a crisis event) is the test set once, unseen in training."""
    idx = np.arange(len(groups))
    return [(idx[groups != g], idx[groups == g]) for g in sorted(set(groups.tolist()))]


def splits_for(protocol: str, labels: np.ndarray, groups: np.ndarray | None = None):
    """``(splits, description)`` of a protocol (seed 0 everywhere)."""
    if protocol == "holdout":
        return holdout(labels), "80/20 stratified seed 0"
    if protocol in ("kfold10", "kfold5"):
        splits = kfold(labels, int(protocol[5:]))
        return splits, f"{len(splits)}-fold stratified seed 0"  # the folds used, fewer when a class is small
    if protocol == "by_group":
        return by_group(groups), "leave one event out"
    raise ValueError(f"unknown protocol {protocol!r}")


def evaluate(model: str, texts: list[str], embeddings: np.ndarray, labels: np.ndarray, splits) -> Scores:
    """Pool the test predictions of every split (one for a holdout) and score them once."""
    truth, preds = [], []
    arr = np.array(texts, dtype=object)
    for train, test in splits:
        preds.append(predict(model, arr[train].tolist(), embeddings[train], labels[train], arr[test].tolist(), embeddings[test]))
        truth.append(labels[test])
    return score(np.concatenate(truth), np.concatenate(preds))


def zero_shot(embedder, embeddings: np.ndarray, labels: np.ndarray, splits, threshold: float = 0.5) -> Scores:
    """The pipeline's seed-trained relevance model on the same test rows, no training on the data."""
    from social311.models.relevance import RelevanceModel

    model = RelevanceModel.from_seeds(embedder)
    test = np.concatenate([t for _, t in splits])
    return score(labels[test], (model.predict_proba(embeddings[test]) >= threshold).astype(int))


def pipeline_relevance(embedder, embeddings: np.ndarray, labels: np.ndarray, splits, texts: list[str],
                       threshold: float = 0.5, starting="shipped") -> Scores:
    """The pipeline's relevance model as a city gets it after reviewing: the seeds plus each
    training part as review labels (``relevance.city_model``), at the pipeline's default
    threshold, on the same test rows as every other row."""
    test, proba = pipeline_probabilities(embedder, embeddings, labels, splits, texts, starting=starting)
    return score(labels[test], (proba >= threshold).astype(int))


def pipeline_probabilities(embedder, embeddings: np.ndarray, labels: np.ndarray, splits, texts: list[str],
                           starting="shipped") -> tuple[np.ndarray, np.ndarray]:
    """``(test row indices, P(report))`` of ``pipeline_relevance``'s model, pooled over the splits.

    ``starting``: the prior (``"shipped"``, a ``CombinedModel`` or None). An evaluation on a set
    the shipped starting model was built from passes one built without it (``lodo.starting_without``).
    """
    from social311.models.combined import load_starting
    from social311.models.relevance import city_model

    prior = load_starting("relevance") if isinstance(starting, str) else starting
    rows, proba = [], []
    for train, test in splits:
        model = city_model(embedder, labelled=([texts[i] for i in train], embeddings[train], labels[train]),
                           starting=prior)
        proba.append(model.predict_proba([texts[i] for i in test], embeddings[test]))
        rows.append(test)
    return np.concatenate(rows), np.concatenate(proba)


def by_language(texts: list[str], labels: np.ndarray, test: np.ndarray, proba: np.ndarray, threshold: float = 0.5,
                min_rows: int = 20) -> dict[str, dict]:
    """The pipeline row per detected language of the test rows, and how many posts it routes to review.

    ``to_review``: posts below the threshold in a language the encoder cannot read
    (``models/language.route``); ``reports_to_review``: how many of those were labelled reports
    (they reach a person instead of being lost as chatter). Languages with fewer than
    ``min_rows`` test rows are pooled as ``other``.
    """
    from social311.models.language import REVIEW, detect, route

    languages = detect([texts[i] for i in test])
    codes = np.array([lang.code for lang in languages], dtype=object)
    counts = {c: int((codes == c).sum()) for c in set(codes.tolist())}
    codes = np.array([c if counts[c] >= min_rows else "other" for c in codes], dtype=object)
    routes = np.array([route(float(p), lang, threshold) for p, lang in zip(proba, languages)], dtype=object)
    y, pred = labels[test], (proba >= threshold).astype(int)
    out = {}
    for code in sorted(set(codes.tolist()), key=lambda c: -int((codes == c).sum())):
        mask = codes == code
        out[code] = {"n": int(mask.sum()), "positives": int(y[mask].sum()),
                     "f1": round(float(f1_score(y[mask], pred[mask], zero_division=0)), 4),
                     "to_review": int((routes[mask] == REVIEW).sum()),
                     "reports_to_review": int(((routes[mask] == REVIEW) & (y[mask] == 1)).sum())}
    return out


FINE_TUNED_MODELS = ("fine-tuned", "fine-tuned + TF-IDF")


def evaluate_fine_tuned(texts: list[str], labels: np.ndarray, splits, settings=None, device: str | None = None,
                        log=None) -> dict[str, Scores]:
    """The encoder fine-tuned on each training part (``models/finetune.py``), alone and averaged
    with the TF-IDF baseline's probabilities; one fine-tuning per split serves both rows.
    """
    from social311.models.finetune import FineTunedClassifier

    arr = np.array(texts, dtype=object)
    truth, alone, blended = [], [], []
    for number, (train, test) in enumerate(splits, 1):
        if log:
            log(f"  fine-tuning split {number}/{len(splits)} ({len(train)} texts)")
        model = FineTunedClassifier(settings, device=device).fit(arr[train].tolist(), labels[train])
        proba = model.predict_proba(arr[test].tolist())
        features = tfidf_features()
        x_train = features.fit_transform(arr[train].tolist())
        baseline = _lr(4.0).fit(x_train, labels[train])
        # Both models order their columns by the sorted class labels of the same training part.
        tfidf_proba = baseline.predict_proba(features.transform(arr[test].tolist()))
        alone.append(model.classes_[proba.argmax(axis=1)])
        blended.append(model.classes_[((proba + tfidf_proba) / 2).argmax(axis=1)])
        truth.append(labels[test])
    y = np.concatenate(truth)
    return {"fine-tuned": score(y, np.concatenate(alone)), "fine-tuned + TF-IDF": score(y, np.concatenate(blended))}
