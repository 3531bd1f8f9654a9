"""The production model (models/combined.py): calibrated, better than trivial on real tweets, its
shipped starting point loads (and its absence is said), and a city's own labels move the prior.

Real data (a 600-row stratified slice of the ACL 2019 complaints, read from ../shared/data) and
the real packaged MiniLM; the slice's embeddings go to the eval's disk cache.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from social311.models import combined
from social311.models.combined import CombinedModel, calibration_report, load_starting, starting_path
from social311.models.embeddings import get_embedder
from social311.models.evaluation.cache import cached_encode
from social311.models.evaluation.classifiers import score

REPO = Path(__file__).resolve().parents[1]
ACL = REPO.parent / "shared" / "data" / "tweets" / "complaints_acl2019.csv"


@pytest.fixture(scope="module")
def embedder():
    return get_embedder("onnx-int8")


@pytest.fixture(scope="module")
def acl_slice(embedder):
    if not ACL.exists():
        pytest.skip(f"shared data absent: {ACL}")
    from social311.models.evaluation.datasets import read_csv
    from sklearn.model_selection import train_test_split

    data = read_csv(ACL, "text", "complaint", "acl", "complaint")
    rows, _ = train_test_split(np.arange(len(data.labels)), train_size=600, stratify=data.labels, random_state=0)
    texts = [data.texts[i] for i in rows]
    vectors = cached_encode(embedder, texts, ACL)
    train, test = train_test_split(np.arange(600), test_size=200, stratify=data.labels[rows], random_state=0)
    return texts, vectors, data.labels[rows], train, test


def test_calibrated_and_better_than_trivial_on_real_complaints(acl_slice):
    texts, vectors, labels, train, test = acl_slice
    model = CombinedModel().fit([texts[i] for i in train], vectors[train], labels[train])
    proba = model.predict_proba([texts[i] for i in test], vectors[test])
    truth = labels[test]
    got = score(truth, (proba >= 0.5).astype(int))
    all_positive = score(truth, np.ones_like(truth))  # the trivial "everything is a complaint"
    assert got.f1 > all_positive.f1 + 0.15 and got.macro_f1 > 0.7
    report = calibration_report(truth, proba)
    constant = calibration_report(truth, np.full(len(truth), truth.mean()))
    assert report["brier"] < constant["brier"] - 0.03  # better than knowing only the base rate
    assert report["ece"] < 0.15
    assert model.calibration.a > 0  # a higher score means a likelier complaint
    assert model.trained_on["calibration_folds"] == 5 and "out_of_fold" in model.trained_on


def test_save_load_round_trip_and_multiclass_temperature(acl_slice, tmp_path):
    texts, vectors, labels, train, test = acl_slice
    model = CombinedModel(folds=3).fit([texts[i] for i in train], vectors[train], labels[train])
    model.save(tmp_path / "m.npz")
    again = CombinedModel.load(tmp_path / "m.npz")
    a = model.predict_proba([texts[i] for i in test], vectors[test])
    b = again.predict_proba([texts[i] for i in test], vectors[test])
    assert np.abs(a - b).max() < 0.01  # coefficients stored as float16
    assert list(again.classes) == [0, 1]
    # Three classes: the temperature-scaled softmax is a distribution per row.
    three = np.where(labels[train] == 1, "complaint", np.where(np.arange(len(train)) % 2, "chat", "news"))
    multi = CombinedModel(folds=3).fit([texts[i] for i in train], vectors[train], three)
    p = multi.predict_proba([texts[i] for i in test], vectors[test])
    assert p.shape == (len(test), 3) and np.allclose(p.sum(axis=1), 1) and multi.calibration.temperature > 0
    with pytest.raises(ValueError, match="two classes"):
        CombinedModel().fit(texts[:5], vectors[:5], [1] * 5)
    (tmp_path / "bad.npz").write_bytes(b"not a model")
    with pytest.raises(Exception):
        CombinedModel.load(tmp_path / "bad.npz")


def test_shipped_starting_model_loads_small_with_provenance(embedder):
    path = starting_path("relevance")
    assert path.exists(), "run scripts/build_starting_model.py"
    assert path.stat().st_size < 5_000_000
    provenance = json.loads((path.parent / "provenance.json").read_text())
    assert provenance["file_sha256"] and len(provenance["inputs"]) >= 3
    assert all(len(f["sha256"]) == 64 for f in provenance["inputs"])
    assert sum(r["rows"] for r in provenance["rows"].values()) > 10_000
    model = load_starting("relevance")
    texts = ["Huge pothole on 5th avenue, my tyre burst, please fix it", "Had a lovely brunch with friends today"]
    p = model.predict_proba(texts, embedder.encode(texts))
    assert p[0] > 0.5 > p[1]


def test_missing_starting_file_falls_back_loudly(tmp_path, monkeypatch, embedder):
    said = []
    assert load_starting("relevance", path=tmp_path / "absent.npz", warn=said.append) is None
    assert len(said) == 1 and "absent.npz" in said[0] and "city's own data only" in said[0]
    from social311.models.relevance import city_model

    monkeypatch.setattr(combined, "STARTING_DIR", tmp_path)  # the shipped file is missing
    said.clear()
    model = city_model(embedder, ["Pothole repair"], warn=said.append)
    assert len(said) == 1 and model.prior is None and model.trained_on["starting_model"] is False
    texts = ["Streetlight out on Elm Street for a week now", "Watching the game tonight with my brother"]
    p = model.predict_proba(texts, embedder.encode(texts))
    assert p[0] > p[1]  # still a working model on the seeds alone


def test_city_labels_shift_the_prior(embedder):
    from social311.models.relevance import city_model

    prior = load_starting("relevance")
    # The city reviews posts about its fireworks: noisy, but not a service problem here.
    reviewed = ["The fireworks in the park are so loud tonight", "Fireworks again at the park, so loud",
                "Loud fireworks over the park all evening", "So many fireworks in the park tonight, loud!",
                "Park fireworks tonight were loud and lovely"] * 4
    probe = ["The fireworks at the park are really loud this evening"]
    probe_vector = embedder.encode(probe)
    before = city_model(embedder, starting=prior).predict_proba(probe, probe_vector)[0]
    labelled = (reviewed, embedder.encode(reviewed), np.zeros(len(reviewed), dtype=int))
    after = city_model(embedder, starting=prior, labelled=labelled).predict_proba(probe, probe_vector)[0]
    assert after < before - 0.1 and after < 0.5
    # The prior still counts: with no prior, the same seeds give another probability.
    plain = city_model(embedder, starting=None).predict_proba(probe, probe_vector)[0]
    assert abs(plain - before) > 1e-3


def test_trust_schedule_formula():
    from social311.models import relevance as r

    assert r.trust_C(0) == pytest.approx(r.C_MIN)
    assert r.trust_C(r.N_HALF) == pytest.approx((r.C_MIN + r.C_MAX) / 2)
    values = [r.trust_C(n) for n in (0, 21, 50, 200, 500, 10_000)]
    assert values == sorted(values) and values[-1] < r.C_MAX and values[-1] > 0.95 * r.C_MAX
    # Seeds, catalog texts and history rows count little beside a reviewed post.
    assert r.city_evidence(0, 212) < r.city_evidence(50, 0)
    assert r.city_evidence(10, 100) == pytest.approx(10 + 100 * r.WEAK_COUNT)


def test_trust_schedule_few_labels_stay_near_the_prior(embedder, acl_slice, monkeypatch):
    """Seeds only: the city model's probabilities on real complaints stay near the starting
    model's, nearer than the fixed C=4 / prior x0.5 model they replace."""
    from social311.models import relevance as r

    texts, vectors, labels, train, test = acl_slice
    prior = load_starting("relevance")
    if prior is None:
        pytest.skip("no shipped starting model")
    test_texts = [texts[i] for i in test]
    prior_p = prior.predict_proba(test_texts, vectors[test])
    scheduled = r.city_model(embedder, starting=prior)
    assert scheduled.trained_on["trust"]["t"] < 0.1 and scheduled.C < 0.5
    near = np.abs(scheduled.predict_proba(test_texts, vectors[test]) - prior_p).mean()
    # The model before the schedule: C = C_MAX whatever the labels, prior column x0.5, Platt as fitted.
    monkeypatch.setattr(r, "C_MIN", r.C_MAX)
    monkeypatch.setattr(r, "N_HALF", 1e-9)
    monkeypatch.setattr(r, "PRIOR_SCALE_CITY", 0.5)
    fixed = r.city_model(embedder, starting=prior)
    assert fixed.C == pytest.approx(r.C_MAX)
    far = np.abs(fixed.predict_proba(test_texts, vectors[test]) - prior_p).mean()
    assert near < 0.15 and near < far - 0.03


def test_trust_schedule_many_labels_win_over_a_wrong_prior(embedder, acl_slice):
    """A deliberately wrong prior (trained on ACL with its labels flipped): 400 reviewed ACL
    posts overrule it."""
    from social311.models.relevance import city_model, trust

    texts, vectors, labels, train, test = acl_slice
    wrong = CombinedModel(folds=3).fit([texts[i] for i in train], vectors[train], 1 - labels[train])
    test_texts = [texts[i] for i in test]
    prior_p = wrong.predict_proba(test_texts, vectors[test])
    assert score(labels[test], (prior_p >= 0.5).astype(int)).f1 < 0.4  # it is wrong
    labelled = ([texts[i] for i in train], vectors[train], labels[train])
    reviewed = city_model(embedder, starting=wrong, labelled=labelled)
    assert reviewed.trained_on["trust"]["t"] > trust(400) - 0.05
    p1 = reviewed.predict_proba(test_texts, vectors[test])
    assert score(labels[test], (p1 >= 0.5).astype(int)).f1 > 0.6  # the city's labels win
    assert np.corrcoef(p1, prior_p)[0, 1] < 0


def test_type_classifier_types_posts_from_catalog_history_and_reviews(embedder):
    from social311.models.issue_types import TypeClassifier, assign_types, service_types
    from social311.records import Service

    services = [Service(service_code="PH", service_name="Pothole", description="Holes in the road surface"),
                Service(service_code="SL", service_name="Street light out", description="Broken street lamps"),
                Service(service_code="GR", service_name="Graffiti removal", description="Paint on walls")]
    history = ["big hole in the asphalt on 5th ave", "lamp post dark all week", "tags sprayed on the school wall"]
    reviewed = (["crater in the road ate my tyre"], ["PH"], embedder.encode(["crater in the road ate my tyre"]))
    classifier = TypeClassifier.train(services, embedder, history_texts=history, history_codes=["PH", "SL", "GR"],
                                      history_embeddings=embedder.encode(history), reviewed=reviewed)
    assert set(classifier.classes) == {"PH", "SL", "GR"}
    posts = ["There is a massive pothole outside my house", "The street light on Elm St is out again",
             "Someone sprayed graffiti all over the bus shelter"]
    vectors = embedder.encode(posts)
    proba = classifier.predict_proba(vectors, texts=posts)
    assert proba.shape == (3, 3) and np.allclose(proba.sum(axis=1), 1)
    assert [classifier.classes[i] for i in proba.argmax(axis=1)] == ["PH", "SL", "GR"]
    types = service_types(services, embedder)
    chosen = assign_types(vectors, types, 0.3, classifier=classifier, texts=posts)
    assert [t for t, _ in chosen] == ["svc-ph", "svc-sl", "svc-gr"]
    with pytest.raises(ValueError, match="texts"):
        classifier.predict_proba(vectors)
    assert TypeClassifier.train(services[:1], embedder) is None  # one service: nothing to choose between


def test_scoring_in_chunks_equals_scoring_at_once(acl_slice, monkeypatch):
    """A 100,000-post run scores in chunks (bounded memory); the probabilities must not change."""
    texts, vectors, labels, train, test = acl_slice
    binary = CombinedModel(folds=3).fit([texts[i] for i in train], vectors[train], labels[train])
    three = np.where(labels[train] == 1, "complaint", np.where(np.arange(len(train)) % 2, "chat", "news"))
    multi = CombinedModel(folds=3).fit([texts[i] for i in train], vectors[train], three)
    rows = [texts[i] for i in test]
    whole = binary.predict_proba(rows, vectors[test]), multi.predict_proba(rows, vectors[test])
    monkeypatch.setattr(combined, "PREDICT_CHUNK", 7)  # 200 rows: 29 chunks, the last one short
    chunked = binary.predict_proba(rows, vectors[test]), multi.predict_proba(rows, vectors[test])
    assert chunked[0].shape == whole[0].shape and np.allclose(chunked[0], whole[0])
    assert chunked[1].shape == whole[1].shape and np.allclose(chunked[1], whole[1])


def test_eval_starting_models_are_cached_by_input_hash(acl_slice, tmp_path, monkeypatch):
    """``lodo.cached_starting`` builds once per input, reads it back after, and rebuilds when the data change."""
    from social311.models.evaluation import lodo

    monkeypatch.setenv("SOCIAL311_MODEL_CACHE", str(tmp_path))
    texts, vectors, labels, train, test = acl_slice
    half = len(train) // 2
    sets = [("a", [texts[i] for i in train[:half]], vectors[train[:half]], labels[train[:half]]),
            ("b", [texts[i] for i in train[half:]], vectors[train[half:]], labels[train[half:]])]
    built = []
    real = combined.train_starting
    monkeypatch.setattr(combined, "train_starting", lambda s, **kw: built.append(1) or real(s, **kw))
    said = []
    first = lodo.cached_starting(sets, log=said.append)
    again = lodo.cached_starting(sets, log=said.append)
    assert len(built) == 1 and len(list((tmp_path / "starting-models").glob("*.npz"))) == 1
    test_texts = [texts[i] for i in test]
    assert np.array_equal(first.predict_proba(test_texts, vectors[test]), again.predict_proba(test_texts, vectors[test]))
    changed = [sets[0], (sets[1][0], sets[1][1], sets[1][2], 1 - sets[1][3])]
    lodo.cached_starting(changed, log=said.append)
    assert len(built) == 2 and len(list((tmp_path / "starting-models").glob("*.npz"))) == 2
    assert sum("building a starting model" in line for line in said) == 2


def test_city_model_with_prior_round_trips_with_its_prior_scale(embedder, acl_slice, tmp_path):
    """The pipeline's model cache saves a city model without its prior and reattaches it on load:
    the prior column's scale (the trust schedule's, not the default) must come back with it."""
    from social311.models.relevance import PRIOR_SCALE_CITY, city_model

    texts, vectors, labels, train, test = acl_slice
    prior = load_starting("relevance")
    if prior is None:
        pytest.skip("no shipped starting model")
    model = city_model(embedder, starting=prior)
    model.prior = None
    model.save(tmp_path / "city.npz")
    model.prior = prior
    again = CombinedModel.load(tmp_path / "city.npz")
    again.prior = prior
    assert again.prior_scale == PRIOR_SCALE_CITY != combined.PRIOR_SCALE
    test_texts = [texts[i] for i in test]
    assert np.abs(model.predict_proba(test_texts, vectors[test]) - again.predict_proba(test_texts, vectors[test])).max() < 0.01
