"""Dataset embeddings cached on disk, so re-running an evaluation does not re-embed anything.

The key is the source file's content hash, the model name and a hash of the exact texts taken
from it (a subsample is a different key). The cache lives beside the exported ONNX models
(``SOCIAL311_MODEL_CACHE`` or ``~/.cache/social311``), never in the repository.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np


def file_sha256(path: Path) -> str:
    """Hex SHA-256 of a file's bytes, read in 1 MiB blocks (provenance of data, wheels and models)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


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


#: Texts embedded between two progress lines.
PROGRESS_CHUNK = 1000


def encode_with_progress(embedder: Any, texts: list[str], log: Callable[[str], None] | None = None,
                         what: str = "texts") -> np.ndarray:
    """``embedder.encode(texts)`` in chunks, logging done/total, rate and time left after each.

    Embedding a few thousand tweets takes minutes on two cores: a silent command looks hung.
    """
    if log is None or len(texts) <= PROGRESS_CHUNK:
        return np.asarray(embedder.encode(texts), dtype=np.float32)
    parts, started = [], time.perf_counter()
    for start in range(0, len(texts), PROGRESS_CHUNK):
        parts.append(np.asarray(embedder.encode(texts[start:start + PROGRESS_CHUNK]), dtype=np.float32))
        done = min(start + PROGRESS_CHUNK, len(texts))
        rate = done / max(time.perf_counter() - started, 1e-9)
        log(f"  embedding {what}: {done}/{len(texts)} ({rate:.0f}/s, ~{(len(texts) - done) / rate:.0f} s left)")
    return np.vstack(parts)


def cached_encode(embedder: Any, texts: list[str], source: str | Path | None,
                  log: Callable[[str], None] | None = None) -> np.ndarray:
    """``embedder.encode(texts)``, read from / written to the cache when ``source`` is a file.

    Args:
        embedder: anything with ``encode`` and ``model_name``.
        texts: the texts, in order.
        source: the file they came from (None: no caching, e.g. generated texts).
        log: progress lines while embedding (nothing is logged for a cache hit).
    """
    if source is None:
        return encode_with_progress(embedder, texts, log)
    text_hash = hashlib.sha1("\x1e".join(texts).encode("utf-8")).hexdigest()[:16]
    model_hash = hashlib.sha1(embedder.model_name.encode()).hexdigest()[:8]
    path = cache_root() / f"{file_hash(source)[:16]}-{model_hash}-{text_hash}.npy"
    if path.exists():
        return np.load(path)
    vectors = encode_with_progress(embedder, texts, log, Path(source).name)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npy")
    np.save(tmp, vectors)
    tmp.replace(path)  # atomic: an interrupted run never leaves a truncated cache entry
    return vectors
