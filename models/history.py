"""What the city's own 311 history teaches the models.

Past service requests (``ml.service_history``, fetched by ``orchestration/history.py``) are the
city's residents describing problems in their own words, each labelled with the service the
311 desk filed it under. They help in three ways:

* relevance: every request reports a problem, so its description is an extra positive of the
  relevance model (``RelevanceModel.from_seeds(history=...)``, capped and weighted there);
* type centroids: each service's centroid moves towards its requests, as for reviewers'
  labels (``with_history``, same type ids);
* a service classifier: a logistic regression from embedding to service code, trained once a
  service has enough requests (``ServiceClassifier``), whose probability ``assign_types``
  adds to the centroid similarity.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from social311.models.issue_types import IssueType, with_examples

#: How many posts the catalog text counts for against a service's history: a 311 request is
#: a weaker example than a reviewed post of the feed itself (another medium, another register).
HISTORY_PRIOR = 20.0
#: A service's centroid keeps at least this share of its catalog text, however long its history.
MAX_HISTORY_PULL = 0.8


@dataclass(frozen=True)
class History:
    """Embedded 311 requests, newest first: ``codes[i]`` is the service of ``embeddings[i]``."""

    codes: np.ndarray  # (n,) object array of service codes
    embeddings: np.ndarray  # (n, dims) float32
    texts: tuple[str, ...] = ()  # the request descriptions, when loaded (the combined model reads them)

    def __len__(self) -> int:
        return len(self.codes)


def empty_history(dims: int = 384) -> History:
    """A history with no requests (history off, or nothing fetched yet)."""
    return History(np.array([], dtype=object), np.zeros((0, dims), dtype=np.float32))


def load_history(con, limit: int | None = None) -> History:
    """The stored, embedded history, newest first (``limit`` rows at most)."""
    sql = ("select service_code, embedding, description from ml.service_history where embedding is not null "
           "order by requested_datetime desc nulls last, service_request_id")
    columns = con.execute(sql + (" limit ?" if limit is not None else ""), [limit] if limit is not None else []).fetchnumpy()
    if not len(columns["service_code"]):
        return empty_history()
    # fetchnumpy: one array per embedding, ~20x faster than Python lists for 5,000 rows.
    return History(np.asarray(columns["service_code"], dtype=object), np.stack(columns["embedding"]).astype(np.float32),
                   tuple(str(t) for t in columns["description"].tolist()))


def history_examples(history: History) -> dict[str, np.ndarray]:
    """service_code -> ``(n, dims)`` embeddings of its requests."""
    return {code: history.embeddings[history.codes == code] for code in dict.fromkeys(history.codes.tolist())}


def with_history(types: list[IssueType], history: History) -> list[IssueType]:
    """Mapped types whose centroids are pulled towards their service's past requests (same ids).

    A service with ``n`` requests moves by ``n / (n + HISTORY_PRIOR)``, at most
    ``MAX_HISTORY_PULL``; services without history and candidate types are unchanged.
    """
    if not len(history):
        return types
    return with_examples(types, history_examples(history), prior=HISTORY_PRIOR, max_weight=MAX_HISTORY_PULL)


class ServiceClassifier:
    """Logistic regression from a post embedding to the service code of the city's requests.

    Build it with :meth:`train`; ``classes`` are the service codes it knows, in the column
    order of :meth:`predict_proba`.
    """

    def __init__(self, model, classes: tuple[str, ...]) -> None:
        self._model = model
        self.classes = classes

    @classmethod
    def train(cls, history: History, min_per_service: int = 10, services: set[str] | None = None,
              C: float = 1.0) -> ServiceClassifier | None:
        """Fit on the services with at least ``min_per_service`` requests.

        Args:
            history: the embedded requests.
            min_per_service: fewer requests than this and a service is left out (its centroid
                still learns from them).
            services: only these codes (the current catalog); a retired service is left out.
            C: inverse L2 regularisation of the regression.

        Returns:
            The classifier, or None when fewer than two services qualify.
        """
        from sklearn.linear_model import LogisticRegression

        codes, counts = np.unique(history.codes.astype(str), return_counts=True) if len(history) else ([], [])
        kept = [c for c, n in zip(codes, counts) if n >= min_per_service and (services is None or c in services)]
        if len(kept) < 2:
            return None
        mask = np.isin(history.codes.astype(str), kept)
        # Balanced: the 311 desk's busiest service must not win every doubtful post.
        model = LogisticRegression(C=C, class_weight="balanced", max_iter=2000)
        model.fit(history.embeddings[mask].astype(np.float64), history.codes[mask].astype(str))
        return cls(model, tuple(str(c) for c in model.classes_))

    def predict_proba(self, embeddings: np.ndarray) -> np.ndarray:
        """``(n, len(classes))`` probabilities; each row sums to 1."""
        return self._model.predict_proba(np.asarray(embeddings, dtype=np.float64))
