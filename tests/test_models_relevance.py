"""The relevance model: trained on the packaged seeds, ranks unseen reports above chatter."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from social311.models.embeddings import get_embedder
from social311.models.relevance import RelevanceModel, load_seeds

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "tweets" / "mumbai_urban_issues.csv"

# Written for this test, not in the seeds: half report a fixable problem, half do not.
HELD_OUT = [
    ("the crosswalk light on Foster has been stuck on don't walk since monday", 1),
    ("massive hole opened up in the road outside the pharmacy on Devon, two cars already damaged", 1),
    ("our alley hasn't had a garbage pickup in two weeks and the smell is unbearable", 1),
    ("the storm sewer grate on Wilson is clogged and the whole intersection floods when it rains", 1),
    ("pipe burst under the street by the school, water is bubbling up through the asphalt", 1),
    ("somebody left an old fridge and a pile of tires on the sidewalk by the park", 1),
    ("half the street lights along Lawrence are dark, can't see pedestrians at all", 1),
    ("tree came down in last night's wind and is lying across the bike path", 1),
    ("the stop sign at our corner has been bent flat for days, drivers just roll through", 1),
    ("graffiti sprayed all over the new playground equipment overnight", 1),
    ("just got back from vacation, the beach was amazing", 0),
    ("what a game last night, can't believe that final shot", 0),
    ("honestly my week has been one pothole after another", 0),
    ("new coffee shop on the corner has the best croissants", 0),
    ("city council will discuss the budget at tuesday's meeting", 0),
    ("thanks to the crews who repaved our street, it looks great", 0),
    ("anyone know a good place to watch the fireworks?", 0),
    ("sale ends tonight, get 30% off everything in store", 0),
    ("it's raining again, perfect day for soup", 0),
    ("my to-do list is overflowing like a garbage can lol", 0),
]


@pytest.fixture(scope="module")
def model():
    return RelevanceModel.from_seeds(get_embedder(), service_texts=["Pothole in Street", "Street Light Out"])


def test_seeds_have_both_classes_and_no_overlap():
    positive, negative = load_seeds()
    assert len(positive) >= 80 and len(negative) >= 120
    assert not set(positive) & set(negative)
    assert not {t for t, _ in HELD_OUT} & (set(positive) | set(negative))


def test_held_out_reports_rank_above_chatter(model):
    texts, labels = zip(*HELD_OUT)
    proba = model.predict_proba(get_embedder().encode(list(texts)))
    assert ((proba >= 0) & (proba <= 1)).all()
    assert roc_auc_score(labels, proba) >= 0.9
    # Calibrated for an even prior: reports mostly above one half, chatter mostly below.
    assert np.mean((proba >= 0.5) == np.array(labels)) >= 0.8


def test_save_and_load_round_trip_as_json(model, tmp_path):
    path = tmp_path / "relevance.json"
    model.save(path)
    assert json.loads(path.read_text())["format"] == "social311.relevance/1"
    loaded = RelevanceModel.load(path)
    x = get_embedder().encode(["pothole on my street", "good morning"])
    assert loaded.predict_proba(x) == pytest.approx(model.predict_proba(x))


def test_fit_on_separable_toy_data_and_errors(tmp_path):
    rng = np.random.default_rng(0)
    x = np.vstack([rng.normal(1, 0.3, (20, 4)), rng.normal(-1, 0.3, (20, 4))])
    y = np.array([1] * 20 + [0] * 20)
    proba = RelevanceModel().fit(x, y).predict_proba(x)
    assert proba[:20].min() > 0.5 > proba[20:].max()
    with pytest.raises(ValueError):
        RelevanceModel().fit(x, np.ones(40))
    with pytest.raises(RuntimeError):
        RelevanceModel().predict_proba(x)
    (tmp_path / "bad.json").write_text('{"format": "other"}')
    with pytest.raises(ValueError):
        RelevanceModel.load(tmp_path / "bad.json")


@pytest.mark.skipif(not DATA.exists(), reason=f"real labelled tweets not found at {DATA}")
def test_real_urban_complaint_tweets(model):
    pd = pytest.importorskip("pandas")
    frame = pd.read_csv(DATA)
    sample = pd.concat([frame[frame.complaint == c].sample(100, random_state=1) for c in (0, 1)])
    proba = model.predict_proba(get_embedder().encode(sample.tweet.astype(str).tolist()))
    # Out of domain for the seeds (Mumbai, trains and scams included); 0.85 measured on 600 tweets.
    assert roc_auc_score(sample.complaint, proba) >= 0.75
