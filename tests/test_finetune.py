"""Fine-tuning the packaged encoder (models/finetune.py) on CPU: it learns, and its outputs are probabilities.

Tiny data and few steps keep this to seconds; the measured figures live in bench/finetune_eval.py.
"""

from __future__ import annotations

import numpy as np
import pytest

from social311.models.evaluation import classifiers
from social311.models.finetune import FineTunedClassifier, FineTuneSettings

REPORTS = [
    "huge pothole on main street again, my tyre burst", "street light dark outside number 12 for a week",
    "the bins on elm road have not been collected, rubbish everywhere", "water flooding the underpass after rain",
    "broken streetlight by the school crossing", "pothole the size of a bathtub on 5th avenue",
    "overflowing trash can at the bus stop", "storm drain blocked, road flooded",
    "graffiti all over the park wall", "sidewalk cracked and lifting, someone will trip",
]
CHATTER = [
    "happy birthday to my best friend", "what a match last night, unbelievable goal",
    "just made the best pancakes of my life", "new album drops friday, so hyped",
    "coffee first, then everything else", "watching the sunset with my dog",
    "anyone seen the new episode yet", "going to the beach this weekend",
    "love this song so much", "finally finished my book club novel",
]

FAST = FineTuneSettings(epochs=6, batch_size=8, learning_rate=1e-4, max_length=24)


@pytest.fixture(scope="module")
def tuned() -> FineTunedClassifier:
    labels = [1] * len(REPORTS) + [0] * len(CHATTER)
    return FineTunedClassifier(FAST, device="cpu").fit(REPORTS + CHATTER, labels)


def test_fine_tuned_outputs_are_probabilities(tuned):
    proba = tuned.predict_proba(["pothole on oak street", "lovely sunny day", ""])
    assert proba.shape == (3, 2)
    assert np.all(proba >= 0) and np.allclose(proba.sum(axis=1), 1.0)
    assert list(tuned.classes_) == [0, 1]


def test_fine_tuning_learns_the_task_on_unseen_texts(tuned):
    unseen_reports = ["the street lamp on pine road is out", "deep pothole near the library entrance"]
    unseen_chatter = ["my cat is sleeping on the keyboard", "cannot wait for the holidays"]
    proba = tuned.predict_proba(unseen_reports + unseen_chatter)[:, 1]
    assert proba[:2].min() > proba[2:].max()
    assert list(tuned.predict(unseen_reports + unseen_chatter)) == [1, 1, 0, 0]


def test_fine_tuning_is_reproducible_with_its_seed():
    texts, labels = REPORTS[:4] + CHATTER[:4], [1] * 4 + [0] * 4
    settings = FineTuneSettings(epochs=1, batch_size=4, max_length=16)
    a = FineTunedClassifier(settings, device="cpu").fit(texts, labels).predict_proba(["pothole", "pancakes"])
    b = FineTunedClassifier(settings, device="cpu").fit(texts, labels).predict_proba(["pothole", "pancakes"])
    np.testing.assert_allclose(a, b, atol=1e-5)


def test_unfitted_and_single_class_are_refused():
    with pytest.raises(RuntimeError):
        FineTunedClassifier(FAST, device="cpu").predict_proba(["x"])
    with pytest.raises(ValueError, match="two classes"):
        FineTunedClassifier(FAST, device="cpu").fit(["a", "b"], [1, 1])


def test_eval_scores_fine_tuned_and_blended_rows_on_a_split():
    texts = REPORTS + CHATTER
    labels = np.array([1] * len(REPORTS) + [0] * len(CHATTER))
    splits = classifiers.kfold(labels, 2)
    scores = classifiers.evaluate_fine_tuned(texts, labels, splits, FineTuneSettings(epochs=3, batch_size=8,
                                             learning_rate=1e-4, max_length=24), device="cpu")
    assert set(scores) == set(classifiers.FINE_TUNED_MODELS)
    # Every text is scored once across the two folds, so the accuracy is a multiple of 1/20.
    for s in scores.values():
        assert 0.0 <= s.f1 <= 1.0 and round(s.accuracy * 20, 6).is_integer()
    assert scores["fine-tuned"].accuracy >= 0.75
