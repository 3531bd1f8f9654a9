"""Dataset embeddings cached on disk, so re-running an evaluation does not re-embed anything.

The key is the source file's content hash, the model name and a hash of the exact texts taken
from it (a subsample is a different key). The cache lives beside the exported ONNX models
(``SOCIAL311_MODEL_CACHE`` or ``~/.cache/social311``), never in the repository.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import numpy as np


def cache_root() -> Path:
    """``<model cache>/eval-embeddings``."""
    root = Path(os.environ.get("SOCIAL311_MODEL_CACHE") or Path.home() / ".cache" / "social311")
    return root / "eval-embeddings"


def file_hash(path: str | Path) -> str:
    """sha1 of a file's bytes (read in blocks: the corpora are tens of MB)."""
    digest = hashlib.sha1()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def cached_encode(embedder: Any, texts: list[str], source: str | Path | None) -> np.ndarray:
    """``embedder.encode(texts)``, read from / written to the cache when ``source`` is a file.

    Args:
        embedder: anything with ``encode`` and ``model_name``.
        texts: the texts, in order.
        source: the file they came from (None: no caching, e.g. generated texts).
    """
    if source is None:
        return embedder.encode(texts)
    text_hash = hashlib.sha1("\x1e".join(texts).encode("utf-8")).hexdigest()[:16]
    model_hash = hashlib.sha1(embedder.model_name.encode()).hexdigest()[:8]
    path = cache_root() / f"{file_hash(source)[:16]}-{model_hash}-{text_hash}.npy"
    if path.exists():
        return np.load(path)
    vectors = np.asarray(embedder.encode(texts), dtype=np.float32)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npy")
    np.save(tmp, vectors)
    tmp.replace(path)  # atomic: an interrupted run never leaves a truncated cache entry
    return vectors
