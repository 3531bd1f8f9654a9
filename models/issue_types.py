"""Issue types: the city's services as embedding centroids, plus candidate types found by clustering.

Every service of the Open311 catalog becomes a *mapped* type whose id is derived from its
service code, so ids are stable across runs by construction. Posts that match no type are
clustered; a tight enough group becomes a *candidate* type (a new kind of problem a human can
map to a service later). Candidate ids derive from a member post id, and existing types are
never renumbered.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import sparse
from sklearn.linear_model import LogisticRegression

from social311.models.combined import CombinedModel
from social311.models.terms import distinctive_terms
from social311.records import Service

MAPPED = "mapped"
CANDIDATE = "candidate"

# A few phrasings residents use, so a centroid sits nearer to posts than a catalog entry alone.
_TEMPLATES = ("There is a {name} problem on my street", "Please fix the {name} near my house")


@dataclass(frozen=True)
class IssueType:
    """One kind of problem: a city service (mapped) or a cluster awaiting a service (candidate)."""

    type_id: str
    label: str
    service_code: str | None
    status: str  # "mapped" | "candidate"
    centroid: np.ndarray
    top_terms: tuple[str, ...]


def slug(value: str) -> str:
    """Lower-case ``value`` with every run of other characters replaced by one hyphen."""
    return re.sub(r"[^a-z0-9]+", "-", value.lower()).strip("-") or "x"


def _normalise(vectors: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=-1, keepdims=True)
    return vectors / np.where(norms == 0, 1.0, norms)


def _service_texts(service: Service) -> list[str]:
    name = service.service_name.strip()
    main = ". ".join(part for part in (name, service.description.strip(), ", ".join(service.keywords)) if part)
    return [main, *(t.format(name=name.lower()) for t in _TEMPLATES)]


def service_type_ids(services: list[Service]) -> dict[str, str]:
    """``service_code -> type_id``; codes whose slugs collide get a hash of the raw code appended."""
    slugs: dict[str, list[str]] = {}
    for code in dict.fromkeys(s.service_code for s in services):
        slugs.setdefault(slug(code), []).append(code)
    ids = {}
    for base, codes in slugs.items():
        for code in codes:
            suffix = "" if len(codes) == 1 else "-" + hashlib.sha1(code.encode()).hexdigest()[:6]
            ids[code] = f"svc-{base}{suffix}"
    return ids


def _unique(services: list[Service]) -> list[Service]:
    """The catalog with duplicate codes dropped (the first kept), in catalog order."""
    return list({s.service_code: s for s in reversed(services)}.values())[::-1]


def catalog_texts(services: list[Service]) -> list[str]:
    """The texts embedded for the catalog, in the order ``service_types`` and ``TypeClassifier`` read them.

    Each service in turn: its name, description and keywords, then a few templated phrasings.
    """
    return [t for s in _unique(services) for t in _service_texts(s)]


def service_types(services: list[Service], embedder: Any, embeddings: np.ndarray | None = None) -> list[IssueType]:
    """One mapped type per service of the catalog.

    Args:
        services: the city's Open311 service catalog (duplicate codes keep the first).
        embedder: anything with ``encode(list[str]) -> np.ndarray``; unused with ``embeddings``.
        embeddings: the embeddings of ``catalog_texts(services)``, when already computed.

    Returns:
        Types in catalog order; centroid = normalised mean embedding of the service's name,
        description and keywords and a few templated phrasings.
    """
    unique = _unique(services)
    if not unique:
        return []
    ids = service_type_ids(unique)
    texts = [_service_texts(s) for s in unique]
    flat = _catalog_embeddings(texts, embedder, embeddings)
    types, start = [], 0
    for service, group in zip(unique, texts):
        centroid = _normalise(flat[start : start + len(group)].mean(axis=0)).astype(np.float32)
        start += len(group)
        words = re.findall(r"[a-z0-9]+", " ".join([service.service_name, *service.keywords]).lower())
        types.append(IssueType(ids[service.service_code], service.service_name, service.service_code, MAPPED,
                               centroid, tuple(dict.fromkeys(words))))
    return types


def with_examples(types: list[IssueType], examples: dict[str, np.ndarray], prior: float = 3.0,
                  max_weight: float = 1.0) -> list[IssueType]:
    """Mapped types whose centroids are pulled towards posts reviewers filed under their service.

    Args:
        types: from ``service_types``.
        examples: service_code -> ``(n, dims)`` embeddings of reviewed posts (``review.typed_examples``)
            or of the city's past requests (``history.history_examples``).
        prior: how many posts the catalog text counts for: the centroid moves by n / (n + prior).
        max_weight: the most the centroid moves, however many examples there are.

    Returns:
        The same types (same ids, labels, codes) with updated centroids; the rest unchanged.
    """
    out = []
    for t in types:
        rows = examples.get(t.service_code) if t.service_code is not None else None
        if rows is None or not len(rows):
            out.append(t)
            continue
        weight = min(max_weight, len(rows) / (len(rows) + prior))
        mean = _normalise(np.asarray(rows, dtype=np.float64).mean(axis=0))
        centroid = _normalise((1 - weight) * t.centroid + weight * mean).astype(np.float32)
        out.append(IssueType(t.type_id, t.label, t.service_code, t.status, centroid, t.top_terms))
    return out


def _catalog_embeddings(groups: list[list[str]], embedder: Any, embeddings: np.ndarray | None) -> np.ndarray:
    flat = [t for g in groups for t in g]
    if embeddings is None:
        return np.asarray(embedder.encode(flat), dtype=np.float32)
    embeddings = np.asarray(embeddings, dtype=np.float32)
    if len(embeddings) != len(flat):
        raise ValueError(f"{len(embeddings)} catalog embeddings for {len(flat)} catalog texts (see catalog_texts)")
    return embeddings


#: How much a service classifier's probability moves a mapped type's score (see ``assign_types``).
CLASSIFIER_WEIGHT = 0.25
#: The classifier may carry a post over the similarity bar only from this close below it.
CLASSIFIER_MAX_LIFT = 0.1


class _UsedColumnsRegression:
    """``LogisticRegression`` fitted on the feature columns the training rows use, read back at full width.

    The typing model has 2 x 2^18 hashed n-gram columns, of which a catalog + history training
    set touches a small share. L-BFGS keeps its coefficient vector, gradient and ten pairs of
    history vectors over every column x every class, so fitting on all columns made typing the
    run's largest step (1.8 GB). A column that is zero in every training row has zero gradient
    from the loss, so under the L2 penalty its coefficient stays exactly 0 from L-BFGS's zero
    start: fitting on the used columns only gives the same model in a fraction of the memory.
    ``coef_`` is returned sparse at full width, so ``CombinedModel`` stores it unchanged.
    """

    def __init__(self, **params) -> None:
        self.params = params

    def fit(self, X: sparse.csr_matrix, y: np.ndarray, sample_weight: np.ndarray | None = None) -> _UsedColumnsRegression:
        X = sparse.csr_matrix(X)
        self.n_features = X.shape[1]
        self.used = np.flatnonzero(X.getnnz(axis=0))
        inner = LogisticRegression(**self.params).fit(X[:, self.used], y, sample_weight=sample_weight)
        self.classes_, self.intercept_ = inner.classes_, inner.intercept_
        dense = inner.coef_
        rows = np.repeat(np.arange(dense.shape[0]), len(self.used))
        cols = np.tile(self.used, dense.shape[0])
        self.coef_ = sparse.csr_matrix((dense.ravel(), (rows, cols)), shape=(dense.shape[0], self.n_features))
        self._inner = inner
        return self

    def decision_function(self, X: sparse.csr_matrix) -> np.ndarray:
        return self._inner.decision_function(sparse.csr_matrix(X)[:, self.used])


class _TypingModel(CombinedModel):
    """``CombinedModel`` whose regressions fit on the used columns only (same model, less memory)."""

    def _regression(self) -> _UsedColumnsRegression:
        return _UsedColumnsRegression(C=self.C, max_iter=1000, tol=1e-3)


class TypeClassifier:
    """The production model (``models/combined.py``) over the city's services: which service a post is.

    Trained on everything the city has: each service's catalog text and templated phrasings
    (so every service is a class from day one), the 311 history (texts of past requests, the
    history's total weight capped like relevance's), and the posts reviewers accepted or
    relabelled (weight ``REVIEW_WEIGHT``). Temperature-calibrated over all services. It reads
    the text as well as the embedding: pass ``texts`` to ``assign_types``.
    """

    reads_text = True

    def __init__(self, model) -> None:
        self.model = model
        self.classes = tuple(str(c) for c in model.classes)

    @classmethod
    def train(cls, services: list[Service], embedder: Any, history_texts: list[str] | None = None,
              history_codes: list[str] | None = None, history_embeddings: np.ndarray | None = None,
              reviewed: tuple[list[str], list[str], np.ndarray] | None = None, max_history: int = 2000,
              review_weight: float = 2.0, catalog_embeddings: np.ndarray | None = None) -> TypeClassifier | None:
        """Fit on the catalog, the history and the reviewed posts; None with fewer than two services.

        Args:
            services: the catalog (its codes are the classes; history rows of other codes are left out).
            embedder: encodes the catalog texts; unused with ``catalog_embeddings``.
            history_texts / history_codes / history_embeddings: past requests, newest first.
            reviewed: ``(texts, service codes, embeddings)`` of reviewed posts.
            catalog_embeddings: the embeddings of ``catalog_texts(services)`` when already
                computed (``model_cache.catalog_embeddings``): the catalog is not embedded twice.
        """
        unique = _unique(services)
        if len(unique) < 2:
            return None
        groups = [_service_texts(s) for s in unique]
        texts = [t for g in groups for t in g]
        codes = [s.service_code for s, g in zip(unique, groups) for _ in g]
        vectors = [_catalog_embeddings(groups, embedder, catalog_embeddings)]
        weights = [np.ones(len(texts))]
        known = {s.service_code for s in unique}
        if history_texts:
            rows = [i for i in range(min(len(history_texts), len(history_codes))) if history_codes[i] in known][:max_history]
            if rows:
                texts += [history_texts[i] for i in rows]
                codes += [history_codes[i] for i in rows]
                vectors.append(np.asarray(history_embeddings, dtype=np.float32)[rows])
                # The history together weighs at most as much as the catalog texts, at most 1 a row.
                weights.append(np.full(len(rows), min(1.0, len(groups) * len(groups[0]) / len(rows))))
        if reviewed is not None and len(reviewed[0]):
            keep = [i for i, c in enumerate(reviewed[1]) if c in known]
            texts += [reviewed[0][i] for i in keep]
            codes += [reviewed[1][i] for i in keep]
            vectors.append(np.asarray(reviewed[2], dtype=np.float32)[keep])
            weights.append(np.full(len(keep), review_weight))
        model = _TypingModel(folds=3).fit(texts, np.vstack(vectors), np.array(codes, dtype=object).astype(str),
                                           sample_weight=np.concatenate(weights))
        return cls(model)

    def predict_proba(self, embeddings: np.ndarray, texts: list[str] | None = None) -> np.ndarray:
        """``(n, len(classes))`` calibrated probabilities; ``texts`` are required."""
        if texts is None:
            raise ValueError("TypeClassifier reads the posts' texts: pass texts")
        proba = self.model.predict_proba(list(texts), embeddings)
        # A catalog of two services is a binary model, which gives P(second class) alone.
        return np.column_stack([1 - proba, proba]) if proba.ndim == 1 else proba


def assign_types(
    embeddings: np.ndarray, types: list[IssueType], min_similarity: float, classifier: Any = None,
    classifier_weight: float = CLASSIFIER_WEIGHT, texts: list[str] | None = None,
) -> list[tuple[str | None, float]]:
    """The most similar type of each post, optionally helped by a service classifier.

    With a ``classifier`` (``history.ServiceClassifier``, trained on the city's 311 history),
    a mapped type whose service it knows scores ``cosine + weight x (p - 1/K)``: ``p`` its
    probability for the post and ``K`` the services it knows, so an undecided classifier
    changes nothing, a confident one can outvote a small cosine margin, and types it does not
    know (candidates, services without history) keep their plain cosine. The bar applies to
    that score, but a post whose cosine is more than ``CLASSIFIER_MAX_LIFT`` below it stays
    untyped: the classifier splits its probability among known services only, so it is sure
    of something even for a post unlike all of them.

    Args:
        embeddings: ``(n, dims)`` unit-length post embeddings.
        types: mapped and candidate types alike; filing decides later what a candidate may do.
        min_similarity: cosine below which a post gets no type.
        classifier: anything with ``classes`` (service codes) and ``predict_proba(embeddings)``.
        classifier_weight: the ``weight`` above.
        texts: the posts' texts, for a classifier that reads them (``TypeClassifier``).

    Returns:
        ``(type_id or None, cosine)`` per post: the cosine to the best-scoring type, reported
        even when below the bar (0.0 when there are no types). Ties go to the earlier type.
    """
    embeddings = np.asarray(embeddings, dtype=np.float32)
    if not types or len(embeddings) == 0:
        return [(None, 0.0)] * len(embeddings)
    centroids = _normalise(np.vstack([t.centroid for t in types]).astype(np.float32))
    sims = _normalise(embeddings) @ centroids.T
    scores = sims.astype(np.float64)
    floor = min_similarity
    if classifier is not None and len(classifier.classes):
        column = {code: k for k, code in enumerate(classifier.classes)}
        proba = (classifier.predict_proba(embeddings, texts=texts) if getattr(classifier, "reads_text", False)
                 else classifier.predict_proba(embeddings))
        for j, t in enumerate(types):
            if t.status == MAPPED and t.service_code in column:
                scores[:, j] += classifier_weight * (proba[:, column[t.service_code]] - 1 / len(column))
        floor = min_similarity - CLASSIFIER_MAX_LIFT
    best = scores.argmax(axis=1)
    result = []
    for row, col in enumerate(best):
        cosine = float(sims[row, col])
        typed = scores[row, col] >= min_similarity and cosine >= floor
        result.append((types[col].type_id if typed else None, cosine))
    return result


def candidate_id(member_post_ids: list[str]) -> str:
    """``cand-`` + a short hash of the smallest of ``member_post_ids``.

    ``propose_candidates`` passes the cluster's seed post alone, so the id is unchanged when
    later posts join.
    """
    return "cand-" + hashlib.sha1(min(member_post_ids).encode()).hexdigest()[:10]


def _leader_clusters(vectors: np.ndarray, min_similarity: float,
                     block_cells: int = 4_000_000) -> tuple[np.ndarray, np.ndarray]:
    """Cluster labels of unit ``vectors`` in memory linear in their number, and each cluster's seed.

    Leader pass: the posts in the order given; a post joins the cluster whose running centroid
    is most similar to it when that cosine is at least ``min_similarity``, else it starts a new
    cluster. Reassignment pass: every post moves to its most similar final centroid (one
    k-means step), so an early post is not left behind by the centroid it seeded.

    Returns ``(labels, seeds)``: ``seeds[k]`` is the index of the post that started cluster
    ``k``. The leader pass over a prefix of the posts is the same whatever follows it, so a
    cluster seeded there keeps its seed when later posts are appended: candidate ids derive from
    the seed, and stay stable across runs (the reassignment pass may move members, not seeds).

    Memory: the centroids (at most one per post) and a similarity block of at most
    ``block_cells`` floats, never a posts x posts matrix (agglomerative clustering's condensed
    distance matrix is quadratic: 64 MB at 4,000 posts, 1.6 GB at 20,000).
    """
    n, dims = vectors.shape
    sums = np.zeros((min(n, 64), dims), dtype=np.float32)
    centroids = np.zeros_like(sums)
    labels = np.empty(n, dtype=np.int64)
    seeds: list[int] = []
    k = 0
    for i in range(n):
        v = vectors[i]
        if k:
            sims = centroids[:k] @ v
            j = int(sims.argmax())
            if sims[j] >= min_similarity:
                labels[i] = j
                sums[j] += v
                centroids[j] = sums[j] / max(float(np.linalg.norm(sums[j])), 1e-12)
                continue
        if k == len(sums):  # grow by doubling: amortised linear
            grow = np.zeros((min(n, 2 * k) - k, dims), dtype=np.float32)
            sums, centroids = np.vstack([sums, grow]), np.vstack([centroids, grow])
        sums[k] = centroids[k] = v
        labels[i] = k
        seeds.append(i)
        k += 1
    del sums
    centroids = centroids[:k]
    step = max(1, block_cells // max(k, 1))
    for start in range(0, n, step):
        labels[start:start + step] = (vectors[start:start + step] @ centroids.T).argmax(axis=1)
    return labels, np.asarray(seeds, dtype=np.int64)


def propose_candidates(
    embeddings: np.ndarray,
    texts: list[str],
    post_ids: list[str],
    existing: list[IssueType],
    min_cluster_size: int = 3,
    distance_threshold: float = 0.5,
    max_posts: int = 20_000,
) -> list[IssueType]:
    """New candidate types from posts that matched no type.

    Posts are grouped by leader clustering on their normalised embeddings (``_leader_clusters``:
    a post joins the nearest cluster whose centroid is within cosine distance
    ``distance_threshold``, then one reassignment pass), in memory linear in the number of
    posts. A group of at least ``min_cluster_size`` posts becomes a candidate, unless its
    centroid lies within ``distance_threshold`` of an existing type (already covered) or its id
    is already taken (the same group found on an earlier run).

    Args:
        embeddings: ``(n, dims)`` embeddings of the unmatched posts.
        texts: their texts, for labels.
        post_ids: their ids, for stable candidate ids.
        existing: types already known (mapped and candidate); never changed or renumbered.
        min_cluster_size: fewest posts that make a candidate.
        distance_threshold: cosine distance within which a post joins a cluster.
        max_posts: at most this many posts (the first, in the order given) are clustered; time
            grows with posts x clusters.

    Returns:
        The new candidate types only, largest cluster first.
    """
    if not (len(embeddings) == len(texts) == len(post_ids)):
        raise ValueError("embeddings, texts and post_ids must have the same length")
    n = min(len(post_ids), max_posts)
    if n < max(min_cluster_size, 2):
        return []
    vectors = _normalise(np.asarray(embeddings[:n], dtype=np.float32))
    labels, seeds = _leader_clusters(vectors, 1 - distance_threshold)
    order = np.argsort(labels, kind="stable")  # members of each label together, in post order
    groups = np.split(order, np.flatnonzero(np.diff(labels[order])) + 1)
    groups = [g for g in groups if len(g) >= min_cluster_size]
    # Largest first, then by member ids, so the output order is deterministic.
    groups.sort(key=lambda g: (-len(g), min(post_ids[i] for i in g)))
    taken = {t.type_id for t in existing}
    known = _normalise(np.vstack([t.centroid for t in existing]).astype(np.float32)) if existing else None
    # Each cluster is one class for c-TF-IDF; the unclustered posts form the background class.
    in_group = np.zeros(n, dtype=bool)
    docs = []
    for g in groups:
        in_group[g] = True
        docs.append(" ".join(texts[i] for i in g))
    docs.append(" ".join(texts[i] for i in np.flatnonzero(~in_group)))
    terms = distinctive_terms(docs, top_k=8)
    candidates = []
    for g, top in zip(groups, terms):
        type_id = candidate_id([post_ids[seeds[labels[g[0]]]]])  # the seed's id: stable as posts join
        centroid = _normalise(vectors[g].mean(axis=0)).astype(np.float32)
        if type_id in taken or (known is not None and float((known @ centroid).max()) >= 1 - distance_threshold):
            continue
        taken.add(type_id)
        label = " / ".join(top[:3]) if top else type_id
        candidates.append(IssueType(type_id, label, None, CANDIDATE, centroid, tuple(top)))
    return candidates
