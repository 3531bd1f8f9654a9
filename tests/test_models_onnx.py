"""The ONNX int8 embedding path agrees with the torch path and is selectable by config."""

import numpy as np
import pytest

from social311.config import CityConfig
from social311.demo.generate import generate_posts
from social311.models.embeddings import BACKENDS, get_embedder
from social311.models.onnx_embedder import OnnxEmbedder

pytestmark = pytest.mark.slow  # exports the model once (~15 s)


@pytest.fixture(scope="module")
def onnx(tmp_path_factory):
    import os

    cache = tmp_path_factory.mktemp("model-cache")
    saved = os.environ.get("SOCIAL311_MODEL_CACHE")
    os.environ["SOCIAL311_MODEL_CACHE"] = str(cache)
    try:
        embedder = OnnxEmbedder()
        embedder.encode(["warm up"])
        yield embedder, cache
    finally:
        os.environ.pop("SOCIAL311_MODEL_CACHE") if saved is None else os.environ.__setitem__("SOCIAL311_MODEL_CACHE", saved)


def test_int8_embeddings_agree_with_torch(onnx):
    embedder, _ = onnx
    texts = [r["text"] for r in generate_posts(seed=5)][:120] + ["", "a", "x " * 400]
    fast = embedder.encode(texts)
    reference = get_embedder("torch").encode(texts)
    assert fast.shape == reference.shape == (len(texts), 384)
    np.testing.assert_allclose(np.linalg.norm(fast, axis=1), 1.0, atol=1e-4)
    cosine = (fast * reference).sum(axis=1)
    assert cosine.min() >= 0.97, cosine.min()
    assert cosine.mean() >= 0.98


def test_order_is_kept_and_batch_mates_barely_matter(onnx):
    embedder, _ = onnx
    texts = ["pothole on main street", "streetlight out", "a much longer sentence about a flooded underpass " * 3]
    together = embedder.encode(texts)
    alone = np.vstack([embedder.encode([t]) for t in texts])
    # Dynamic int8 quantization scales activations per batch, padding included, so a text's
    # vector moves slightly with its batch-mates; it must stay the same text's vector.
    cosine = (together * alone).sum(axis=1)
    assert cosine.min() >= 0.98, cosine
    assert (together @ alone.T).argmax(axis=1).tolist() == [0, 1, 2]


def test_the_export_is_cached_not_committed(onnx):
    _, cache = onnx
    files = {p.name for p in cache.rglob("*.onnx")}
    assert {"model.onnx", "model.int8.onnx"} <= files


def test_backend_is_a_validated_city_setting():
    assert set(BACKENDS) == {"torch", "onnx-int8", "onnx-fp32"}
    with pytest.raises(ValueError):
        get_embedder("gpu-magic")
    field = CityConfig.model_fields["embedding_backend"]
    assert field.default == "torch"
