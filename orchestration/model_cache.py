"""Models and centroids cached by the hash of their inputs, beside the warehouse.

A scheduled run every 15 minutes retrained the relevance model and re-embedded the service
catalog even when nothing they learn from had changed. Each is now keyed by a SHA-256 of
everything it is computed from (the embedding model's name, the packaged seeds, the catalog's
texts, reviewers' labels, the 311 history's embeddings, and the source of the code that
computes it), and read back from ``<warehouse>.model-cache/`` when the key matches. A change
to any input is a new key: the model is computed again, never served stale. Only the latest
file of each kind is kept.
"""

from __future__ import annotations

import hashlib
import json
import os
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np


def cache_dir(duckdb_path: str | Path) -> Path:
    """``<stem>.model-cache`` beside the warehouse file (one cache per warehouse)."""
    path = Path(duckdb_path)
    return path.with_name(f"{path.stem}.model-cache")


def inputs_key(*parts: Any) -> str:
    """SHA-256 (hex, 24 chars) of ``parts``: strings, bytes, numpy arrays, numbers, lists/tuples of them."""
    digest = hashlib.sha256()

    def feed(part: Any) -> None:
        if isinstance(part, np.ndarray):
            array = np.ascontiguousarray(part)
            digest.update(f"nd{array.dtype.str}{array.shape}".encode())
            digest.update(array.tobytes())
        elif isinstance(part, (list, tuple)):
            digest.update(f"seq{len(part)}".encode())
            for item in part:
                feed(item)
        elif isinstance(part, bytes):
            digest.update(b"b%d:" % len(part) + part)
        else:
            text = str(part).encode()
            digest.update(b"s%d:" % len(text) + text)

    for part in parts:
        feed(part)
    return digest.hexdigest()[:24]


def _source(module: Any) -> bytes:
    """The bytes of a module's source file: a code change invalidates what it computed."""
    return Path(module.__file__).read_bytes()


def _store(path: Path, write: Any) -> None:
    """``write(tmp_path)``, then move it into place atomically and drop older files of the same kind."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    write(tmp)
    os.replace(tmp, path)
    kind = path.name.split("-", 1)[0]
    for old in path.parent.glob(f"{kind}-*{path.suffix}"):
        if old != path:
            old.unlink(missing_ok=True)


def city_relevance_model(duckdb_path: str | Path, embedder: Any, service_texts: list[str],
                         labelled: tuple[list[str], np.ndarray, np.ndarray] | None = None,
                         history: tuple[list[str], np.ndarray] | None = None, warn: Any = None) -> tuple[Any, bool]:
    """``relevance.city_model`` (the combined production model) with these inputs, cached by their hash.

    The key covers the seeds, the catalog texts, reviewers' texts and labels, the 311 history's
    texts and embeddings, the shipped starting model's bytes and the source of the code that
    trains it. The model is stored without its prior (the starting model, re-attached from its
    own file on a read). A freshly trained model is read back from its file before use, so the
    first run scores with exactly the (float16-coefficient) model later runs read.

    Returns:
        ``(model, hit)``: ``hit`` is True when the model came from the cache.
    """
    from social311.models import combined, relevance
    from social311.models.combined import CombinedModel, load_starting, starting_path

    start = starting_path("relevance")
    start_bytes = start.read_bytes() if start.is_file() else b""
    texts, vectors, labels = labelled if labelled is not None else ([], np.zeros((0, 0)), np.zeros(0))
    h_texts, h_vectors = history if history is not None else ([], np.zeros((0, 0)))
    key = inputs_key("city-relevance", embedder.model_name, _source(relevance), _source(combined), start_bytes,
                     relevance.load_seeds(), list(service_texts), list(texts), np.asarray(vectors, dtype=np.float32),
                     np.asarray(labels, dtype=np.int64), list(h_texts), np.asarray(h_vectors, dtype=np.float32))
    path = cache_dir(duckdb_path) / f"cityrelevance-{key}.npz"

    def read(prior: Any = None) -> Any:
        model = CombinedModel.load(path)
        if prior is None and start_bytes:
            prior = load_starting("relevance", warn=warn)
        model.prior = prior
        model.trained_on["starting_model"] = model.prior is not None
        return model

    if path.exists():
        try:
            return read(), True
        except (ValueError, KeyError, OSError, EOFError, zipfile.BadZipFile):
            path.unlink(missing_ok=True)  # a damaged file is recomputed, never trusted
    model = relevance.city_model(embedder, service_texts, labelled=labelled, history=history, warn=warn)

    def write(tmp: Path) -> None:
        prior, model.prior = model.prior, None  # the prior has its own file; save() refuses it inside
        try:
            with open(tmp, "wb") as handle:
                model.save(handle)
        finally:
            model.prior = prior

    _store(path, write)
    return read(model.prior), False  # the prior city_model loaded: not read from disk twice


def _catalog_rows(services: list) -> list:
    return [(s.service_code, s.service_name, s.description, list(s.keywords)) for s in services]


def catalog_embeddings(duckdb_path: str | Path, services: list, embedder: Any) -> tuple[np.ndarray, bool]:
    """Embeddings of ``issue_types.catalog_texts(services)``, cached by those texts and the embedding model.

    Both the catalog's centroids (``service_types``) and the type classifier
    (``type_classifier``) are computed from them: the catalog is embedded once, not once each.

    Returns:
        ``(embeddings, hit)``; on a hit the embedding model is not used (not even loaded).
    """
    from social311.models import issue_types as typing_

    texts = typing_.catalog_texts(services)
    key = inputs_key("catalog_embeddings", embedder.model_name, texts)
    path = cache_dir(duckdb_path) / f"catalogembeddings-{key}.npy"
    if path.exists():
        try:
            vectors = np.load(path, allow_pickle=False)
            if vectors.shape[0] == len(texts):
                return vectors, True
        except (ValueError, OSError, EOFError):
            pass
        path.unlink(missing_ok=True)  # damaged or wrong-sized: recomputed, never trusted
    vectors = np.asarray(embedder.encode(texts), dtype=np.float32) if texts else np.zeros((0, 384), dtype=np.float32)

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as handle:
            np.save(handle, vectors, allow_pickle=False)

    _store(path, write)
    return vectors, False


def service_types(duckdb_path: str | Path, services: list, embedder: Any) -> tuple[list, bool]:
    """``issue_types.service_types`` (the catalog's embedded centroids), cached by catalog and model.

    Returns:
        ``(types, hit)``; on a hit the embedding model is not used (not even loaded).
    """
    from social311.models import issue_types as typing_

    key = inputs_key("service_types", embedder.model_name, _source(typing_), _catalog_rows(services))
    path = cache_dir(duckdb_path) / f"servicetypes-{key}.json"
    if path.exists():
        try:
            rows = json.loads(path.read_text(encoding="utf-8"))["types"]
            return [typing_.IssueType(r["type_id"], r["label"], r["service_code"], r["status"],
                                      np.asarray(r["centroid"], dtype=np.float32), tuple(r["top_terms"])) for r in rows], True
        except (ValueError, KeyError, OSError):
            path.unlink(missing_ok=True)
    vectors, _ = catalog_embeddings(duckdb_path, services, embedder)
    types = typing_.service_types(services, embedder, embeddings=vectors)
    payload = {"types": [{"type_id": t.type_id, "label": t.label, "service_code": t.service_code, "status": t.status,
                          "centroid": t.centroid.tolist(), "top_terms": list(t.top_terms)} for t in types]}
    _store(path, lambda tmp: tmp.write_text(json.dumps(payload), encoding="utf-8"))
    return types, False


@dataclass(frozen=True)
class TypingInputs:
    """Everything ``issue_types.TypeClassifier.train`` learns from (see ``type_classifier``)."""

    services: list
    history_texts: list[str] = field(default_factory=list)
    history_codes: list[str] = field(default_factory=list)
    history_embeddings: np.ndarray | None = None
    reviewed: tuple[list[str], list[str], np.ndarray] | None = None

    def key(self, model_name: str) -> str:
        """The classifier's cache key: catalog, history, reviewed posts, embedding model, code source."""
        from social311.models import combined, issue_types as typing_

        h_vectors = self.history_embeddings if self.history_embeddings is not None else np.zeros((0, 0))
        r_texts, r_codes, r_vectors = self.reviewed if self.reviewed is not None else ([], [], np.zeros((0, 0)))
        return inputs_key("type-classifier", model_name, _source(typing_), _source(combined),
                          _catalog_rows(self.services), list(self.history_texts), list(self.history_codes),
                          np.asarray(h_vectors, dtype=np.float32), list(r_texts), list(r_codes),
                          np.asarray(r_vectors, dtype=np.float32))


def type_classifier(duckdb_path: str | Path, inputs: TypingInputs, embedder: Any) -> tuple[Any, bool]:
    """``issue_types.TypeClassifier.train`` on ``inputs``, cached by ``inputs.key``.

    Trained from the cached catalog embeddings (``catalog_embeddings``), so the catalog is not
    embedded again; a freshly trained model is read back from its file before use, so the run
    that trains it types with exactly the (float16-coefficient) model later runs read.

    Returns:
        ``(classifier or None, hit)``: None with fewer than two services; on a hit the
        embedding model is not used and nothing is trained.
    """
    from social311.models import issue_types as typing_
    from social311.models.combined import CombinedModel

    path = cache_dir(duckdb_path) / f"typeclassifier-{inputs.key(embedder.model_name)}.npz"
    if path.exists():
        try:
            return typing_.TypeClassifier(CombinedModel.load(path)), True
        except (ValueError, KeyError, OSError, EOFError, zipfile.BadZipFile):
            path.unlink(missing_ok=True)  # a damaged file is recomputed, never trusted
    vectors, _ = catalog_embeddings(duckdb_path, inputs.services, embedder)
    classifier = typing_.TypeClassifier.train(
        inputs.services, embedder, history_texts=list(inputs.history_texts) or None,
        history_codes=list(inputs.history_codes) or None, history_embeddings=inputs.history_embeddings,
        reviewed=inputs.reviewed, catalog_embeddings=vectors)
    if classifier is None:
        return None, False

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as handle:
            classifier.model.save(handle)

    _store(path, write)
    return typing_.TypeClassifier(CombinedModel.load(path)), False
