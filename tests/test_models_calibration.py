"""Calibration of the relevance model: probabilities in [0, 1] that read as frequencies on held-out data."""

import numpy as np
import pandas as pd
import pytest
from sklearn.model_selection import train_test_split

from social311.models.embeddings import get_embedder
from social311.models.relevance import RelevanceModel


def _reliability(proba: np.ndarray, labels: np.ndarray, bins: int) -> list[float]:
    """Observed share of positives per equal-count bin of predicted probability, low to high."""
    order = np.argsort(proba)
    return [float(labels[chunk].mean()) for chunk in np.array_split(order, bins)]


def test_platt_probabilities_match_frequencies_on_overlapping_classes():
    # Two overlapping Gaussian classes: the true P(1 | x) is known, so calibration can be checked.
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 4000)
    x = rng.normal(0, 1, (4000, 8)) + np.outer(y * 2 - 1, np.r_[0.6, np.zeros(7)])
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.5, random_state=0, stratify=y)
    proba = RelevanceModel().fit(x_train, y_train).predict_proba(x_test)
    assert proba.min() >= 0 and proba.max() <= 1
    observed = _reliability(proba, y_test, 5)
    predicted = [float(proba[c].mean()) for c in np.array_split(np.argsort(proba), 5)]
    assert observed == sorted(observed)  # monotone
    assert np.abs(np.array(observed) - np.array(predicted)).max() < 0.08


def test_reliability_is_monotone_on_held_out_real_complaints(shared_data):
    # All 8,886 Mumbai tweets, half held out. Platt scaling does not care where the scores come
    # from, so 100 TF-IDF/SVD dimensions stand in for embeddings here: seconds, not minutes.
    from sklearn.decomposition import TruncatedSVD
    from sklearn.feature_extraction.text import TfidfVectorizer

    frame = pd.read_csv(shared_data / "tweets" / "mumbai_urban_issues.csv")
    texts = frame["tweet"].fillna("").astype(str).tolist()
    labels = frame["complaint"].to_numpy(dtype=int)
    train, test = train_test_split(np.arange(len(texts)), test_size=0.5, random_state=0, stratify=labels)
    tfidf = TfidfVectorizer(min_df=2, sublinear_tf=True).fit([texts[i] for i in train])
    svd = TruncatedSVD(100, random_state=0).fit(tfidf.transform([texts[i] for i in train]))
    features = svd.transform(tfidf.transform(texts))
    proba = RelevanceModel().fit(features[train], labels[train]).predict_proba(features[test])
    assert proba.min() >= 0 and proba.max() <= 1
    observed = _reliability(proba, labels[test], 5)
    # Reasonably monotone: each bin at least as often a complaint as the one below, within noise.
    assert all(b >= a - 0.03 for a, b in zip(observed, observed[1:])), observed
    assert observed[-1] - observed[0] > 0.4, observed


def test_reviewer_labels_move_the_seed_model():
    embedder = get_embedder()
    text = ["the tram timetable app crashed again"]
    base = RelevanceModel.from_seeds(embedder).predict_proba(embedder.encode(text))[0]
    labelled = (embedder.encode(text * 3 + ["tram app keeps crashing", "timetable app crashed"]), np.ones(5, dtype=int))
    taught = RelevanceModel.from_seeds(embedder, labelled=labelled).predict_proba(embedder.encode(text))[0]
    assert taught > base
    negatives = (labelled[0], np.zeros(5, dtype=int))
    assert RelevanceModel.from_seeds(embedder, labelled=negatives).predict_proba(embedder.encode(text))[0] < base


@pytest.mark.parametrize("bad", [np.array([1, 1, 1]), np.array([0, 0, 0])])
def test_one_class_is_refused(bad):
    with pytest.raises(ValueError):
        RelevanceModel().fit(np.eye(3), bad)
