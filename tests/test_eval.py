"""``social311 eval`` on tiny labelled CSVs built here (the real-data runs are not tests: see README)."""

import json

import numpy as np
import pandas as pd
import pytest

from social311.cli import main
from social311.models.evaluation import classifiers, merging
from social311.models.evaluation.cache import cache_root

STREETS = ["Main St", "Oak Ave", "5th Street", "Elm Road", "Park Lane", "Hill Street", "Lake Drive", "King Road"]
COMPLAINTS = ["huge pothole on {s} nobody fixed it", "street light out on {s} again", "garbage not collected on {s} for a week",
              "water pipe burst flooding {s}", "broken traffic signal at {s}"]
CHATTER = ["great coffee at the cafe on {s}", "happy birthday to my sister", "watching the match tonight with friends",
           "new album out today, love it", "sunny morning walk near {s}"]


def _tweets(n_per_template=8):
    rows = [(t.format(s=STREETS[i % len(STREETS)]) + f" #{i}", 1) for t in COMPLAINTS for i in range(n_per_template)]
    rows += [(t.format(s=STREETS[i % len(STREETS)]) + f" #{i}", 0) for t in CHATTER for i in range(n_per_template)]
    return pd.DataFrame(rows, columns=["text", "label"])


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SOCIAL311_MODEL_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.mark.parametrize("truth, merged, expected", [
    ([[0, 1, 2]], [[0, 1, 2], [3]], (1.0, 1.0)),
    ([[0, 1, 2]], [[0, 1], [2], [3]], (1.0, 1 / 3)),
    ([[0, 1]], [[0, 1, 2]], (1 / 3, 1.0)),
    ([], [[0], [1]], (1.0, 1.0)),
])
def test_pair_scores(truth, merged, expected):
    s = merging.pair_scores(truth, merged)
    assert (s["pair_precision"], s["pair_recall"]) == pytest.approx(expected, abs=1e-3)


@pytest.mark.parametrize("truth, pred, f1, precision", [
    ([1, 1, 0, 0], [1, 0, 0, 0], 2 / 3, 1.0),
    ([0, 1, 2, 2], [0, 1, 2, 2], 1.0, None),  # multi-class: macro F1, no precision
])
def test_scores(truth, pred, f1, precision):
    s = classifiers.score(np.array(truth), np.array(pred))
    assert s.f1 == pytest.approx(f1) and s.precision == precision


def test_splits_are_fixed_and_stratified():
    labels = np.array([0] * 40 + [1] * 10)
    events = np.array(["a", "b"] * 25)
    assert [len(t) for _, t in classifiers.splits_for("kfold10", labels)[0]] == [5] * 10
    # Leave one event out: each event is tested once, never seen in its own training part.
    assert [set(events[t]) for _, t in classifiers.splits_for("by_group", labels, events)[0]] == [{"a"}, {"b"}]
    assert all(not set(events[tr]) & set(events[te]) for tr, te in classifiers.by_group(events))
    (train, test), = classifiers.holdout(labels)
    assert len(test) == 10 and labels[test].sum() == 2
    assert [t.tolist() for _, t in classifiers.kfold(labels)] == [t.tolist() for _, t in classifiers.kfold(labels)]


def test_eval_any_csv_cross_validated_then_with_a_train_file(tmp_path, cache):
    frame = _tweets()
    data = tmp_path / "labelled.csv"
    frame.to_csv(data, index=False)
    out = tmp_path / "eval.json"
    args = ["eval", "--task", "relevance", "--data", str(data), "--text-column", "text", "--label-column", "label",
            "--backend", "torch", "--out", str(out)]
    assert main(args) == 0
    row = json.loads(out.read_text())["classification"][0]
    assert row["split"].startswith("5-fold") and row["n"] == len(frame)
    assert set(row["models"]) == {"tfidf", "embed", "stack", "zero-shot", "pipeline"}
    assert "review labels" in row["pipeline_trained_on"]
    assert row["models"]["pipeline"]["f1"] > 0.8  # seeds + the training folds as review labels
    assert sum(v["n"] for v in row["by_language"].values()) == len(frame) and "en" in row["by_language"]
    assert row["models"]["stack"]["f1"] > 0.9  # templated texts: every model separates them
    assert len(list((cache_root()).glob("*.npy"))) == 1  # embedded once, cached outside the repo
    assert main(args) == 0  # the second run reads the cache
    assert len(list((cache_root()).glob("*.npy"))) == 1

    train, test = tmp_path / "train.csv", tmp_path / "test.csv"
    frame.iloc[::2].to_csv(train, index=False)
    frame.iloc[1::2].to_csv(test, index=False)
    assert main(args[:4] + [str(test)] + args[5:] + ["--train", str(train)]) == 0
    row = json.loads(out.read_text())["classification"][0]
    assert row["split"] == "train on train.csv" and row["n"] == len(frame) // 2


def test_eval_on_a_shared_data_folder(tmp_path, cache, capsys):
    data = tmp_path / "data"
    (data / "tweets").mkdir(parents=True)
    (data / "nyc").mkdir()
    tweets = _tweets()
    tweets = tweets.rename(columns={"text": "tweet", "label": "complaint"})
    tweets["category"] = np.where(tweets["complaint"] == 1, 3 + tweets.index % 2, 0)
    tweets.to_csv(data / "tweets" / "mumbai_urban_issues.csv", index=False)
    pd.DataFrame({"Title": ["Pothole", "Pothole", "Pothole", "Streetlight"],
                  "Description": ["deep pothole by the school", "deep pothole by the school", "deep pothole by the school",
                                  "light out over the crossing"],
                  "Latitude": [40.70, 40.70, 40.70, 40.75], "Longitude": [-73.99, -73.99, -73.99, -73.95],
                  "Date Created": [1500000000, 1500003600, 1500007200, 1500000000]}).to_csv(
        data / "nyc" / "publicstuff_nyc_2010_2018.csv", index=False)
    out = tmp_path / "eval.json"
    assert main(["eval", "--data-dir", str(data), "--backend", "torch", "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    assert [r["task"] for r in result["classification"]] == ["relevance", "service_type"]
    assert all(0 <= s["macro_f1"] <= 1 for r in result["classification"] for s in r["models"].values())
    assert set(result["skipped"]) == {"acl_complaints", "crisislex", "publicstuff_service_type (too few labelled rows)"}
    assert result["incidents"]["repeating_rows"] == 2 and result["incidents"]["pair_recall"] == 1.0
    assert 0 <= result["prefilter"]["recall_kept"] <= 1 and result["embedding_paths"][0]["backend"] == "torch"
    printed = capsys.readouterr().out
    assert "TF-IDF LR (baseline)" in printed and "Skipped (data absent or too small): " in printed


def test_eval_without_shared_data_says_so(tmp_path, capsys):
    assert main(["eval", "--data-dir", str(tmp_path / "absent"), "--out", str(tmp_path / "e.json")]) == 0
    assert "nothing to evaluate" in capsys.readouterr().out


def _ps(rows):
    """PublicStuff-like rows: (description, lat, title, day)."""
    return pd.DataFrame({"Description": [r[0] for r in rows], "Latitude": [r[1] for r in rows],
                         "Longitude": [-73.99] * len(rows), "Title": [r[2] for r in rows],
                         "Date Created": [1_500_000_000 + int(r[3] * 86400) for r in rows]})


def test_repeat_truth_cuts_by_type_gap_and_span():
    frame = _ps([("Light out", 40.7, "Streetlight", 0), ("light  OUT", 40.7, "Streetlight", 2),  # a repeat
                 ("Light out", 40.7, "Streetlight", 4), ("Light out", 40.7, "Streetlight", 8),   # 8 > 7 days from the first
                 ("Light out", 40.7, "Pothole", 1),                                              # another type
                 ("Light out", 40.7, "Streetlight", 60)])                                        # months later
    assert merging.repeat_truth(frame) == [[0, 1, 2]]
    assert merging.repeat_truth(frame, gap_days=None, span_days=None, by_type=False) == [[0, 4, 1, 2, 3, 5]]


def test_case_scores_count_repeats_and_false_merges():
    truth = [[0, 1], [2, 3]]
    s = merging.case_scores(truth, [[0, 1, 4], [2], [3], [5], [6]], 7)
    # One of two repeats merged; of the 3 non-duplicates (4, 5, 6) one was merged into another incident.
    assert (s["repeat_recall"], s["false_merge_rate"], s["non_duplicates"]) == (0.5, pytest.approx(1 / 3, abs=1e-3), 3)


def test_by_language_routes_unreadable_low_scores_to_review():
    texts = ["the street light on our road has been broken for a whole week now"] * 20 + \
            ["la farola de nuestra calle lleva una semana entera rota, arreglenla"] * 20
    labels = np.array([1] * 10 + [0] * 10 + [1] * 20)
    proba = np.array([0.9] * 10 + [0.1] * 10 + [0.2] * 20)  # the English model misses every Spanish report
    out = classifiers.by_language(texts, labels, np.arange(40), proba)
    assert out["en"] == {"n": 20, "positives": 10, "f1": 1.0, "to_review": 0, "reports_to_review": 0}
    assert out["es"]["f1"] == 0.0 and out["es"]["reports_to_review"] == 20  # not lost as chatter: a person sees them


def test_learning_curve_counts_labels_and_ends_near_full_supervision(cache):
    from social311.models.embeddings import get_embedder
    from social311.models.evaluation import learning

    frame = _tweets(n_per_template=6)
    embedder = get_embedder("torch")
    vectors = embedder.encode(frame["text"].tolist())
    labels = frame["label"].to_numpy()
    (train, test), = classifiers.holdout(labels, test_size=0.3)
    out = learning.curve(embedder, vectors, labels, train, test, steps=(0, 10, 20))
    assert set(out["random"]) == set(out["uncertainty"]) == {0, 10, 20}
    assert all(0 <= v <= 1 for mode in ("random", "uncertainty") for v in out[mode].values())
    # 20 labels of templated texts suffice here: within 0.1 of the whole training part.
    assert out["uncertainty"][20] >= out["fully supervised"] - 0.1
