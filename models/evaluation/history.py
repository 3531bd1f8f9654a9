"""How much a city's own 311 history helps the out-of-the-box relevance and typing models.

The history is real: the PublicStuff NYC requests whose description a resident wrote (about
1,410 of 8,739; the rest carry NYC 311's one-line boilerplate or nothing), masked as the
pipeline masks them. Its request types used at least ``MIN_TITLE_USES`` times stand in for the
city's service catalog. Two rows join the seed-only ``zero-shot`` row of each binary task,
scored on the same test rows, and neither is ever trained on the evaluation data:

* ``zero-shot seeds + catalog``: the seeds plus the catalog names as positives;
* ``zero-shot seeds + catalog + 311 history``: the same plus the history as weighted positives
  (``RelevanceModel.from_seeds(history=...)``, the pipeline's own weighting).

Typing is measured on PublicStuff's typed requests themselves (``typing_rows``): the pipeline's
catalog-only typing, then with the training part of the split as the city's history.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from social311.models.evaluation.cache import cached_encode
from social311.models.evaluation.classifiers import Scores, score

#: A description repeated this often is a mirror's boilerplate, not a resident's words.
BOILERPLATE_MIN_COUNT = 100
MIN_TITLE_USES = 5


@dataclass(frozen=True)
class EvalHistory:
    """A real 311 history embedded once: its texts' vectors and the catalog it implies."""

    source: Path
    embeddings: np.ndarray
    catalog: list[str]


def publicstuff_history(data_dir: Path) -> tuple[list[str], list[str], Path] | None:
    """``(masked descriptions, request types, file)`` of PublicStuff NYC's resident-written requests, or None."""
    from social311.privacy import mask_personal_data

    path = data_dir / "nyc" / "publicstuff_nyc_2010_2018.csv"
    if not path.exists():
        return None
    frame = pd.read_csv(path)
    text = frame["Description"].fillna("").astype(str).str.strip()
    counts = text.value_counts()
    keep = text.ne("") & text.map(counts).lt(BOILERPLATE_MIN_COUNT)
    titles = frame.loc[keep, "Title"].fillna("").astype(str).map(lambda t: re.sub(r"\s+in New York$", "", t.strip()))
    return [mask_personal_data(t) for t in text[keep]], titles.tolist(), path


def load(data_dir: Path, embedder) -> EvalHistory | None:
    """The embedded history and its catalog (embeddings cached on disk), or None without the file."""
    found = publicstuff_history(data_dir)
    if found is None:
        return None
    texts, titles, path = found
    uses = pd.Series(titles).value_counts()
    catalog = sorted(t for t, n in uses.items() if t and n >= MIN_TITLE_USES)
    return EvalHistory(path, cached_encode(embedder, texts, path), catalog)


def zero_shot_rows(embedder, embeddings: np.ndarray, labels: np.ndarray, splits, history: EvalHistory,
                   threshold: float = 0.5) -> tuple[dict[str, Scores], dict[str, dict[str, float]]]:
    """The catalog and catalog + history zero-shot models on the test rows of ``splits``.

    Returns:
        ``(scores at threshold, {"auc", "ap"} ranking quality)`` per model name: a history can
        move the decision threshold and the ranking differently, so both are reported.
    """
    from sklearn.metrics import average_precision_score, roc_auc_score

    from social311.models.relevance import RelevanceModel

    test = np.concatenate([t for _, t in splits])
    scores, ranking = {}, {}
    for name, extra in (("zero-shot seeds + catalog", None), ("zero-shot seeds + catalog + 311 history", history.embeddings)):
        model = RelevanceModel.from_seeds(embedder, history.catalog, history=extra)
        proba = model.predict_proba(embeddings[test])
        scores[name] = score(labels[test], (proba >= threshold).astype(int))
        ranking[name] = {"auc": round(float(roc_auc_score(labels[test], proba)), 4),
                         "ap": round(float(average_precision_score(labels[test], proba)), 4)}
    return scores, ranking


#: The test sets the history rows are added to (the binary tasks a 311 history is about).
TEST_SETS = ("mumbai_relevance", "acl_complaints")
#: The typing set: real 311 requests whose training part is the history (``typing_rows``).
TYPING_SET = "publicstuff_service_type"
#: The pipeline's default similarity bar (``thresholds.type_similarity``).
TYPE_SIMILARITY = 0.45
TYPING_MODELS = ("catalog names only (out of the box)", "catalog + 311 history centroids",
                 "catalog + 311 history centroids + classifier",
                 "catalog + 311 history centroids + combined classifier (pipeline)")


def typing_rows(embedder, data, vectors: np.ndarray, splits,
                min_similarity: float = TYPE_SIMILARITY) -> tuple[dict[str, Scores], dict[str, float]]:
    """The pipeline's typing on real requests: catalog names alone, then with the training part as history.

    The catalog is the set's ``class_names`` (names only, as in a catalog without descriptions
    or keywords); each test request is typed by ``assign_types`` at the pipeline's similarity
    bar, and an untyped one counts as wrong. The history (the split's training part) refines
    centroids (``with_history``) and trains the classifier (``ServiceClassifier``) with the
    pipeline's settings.

    Returns:
        ``(scores, untyped share)`` per model name (F1 = macro F1 over the true types).
    """
    from sklearn.metrics import accuracy_score, f1_score

    from social311.models.history import History, ServiceClassifier, with_history
    from social311.models.issue_types import TypeClassifier, assign_types, service_types
    from social311.records import Service

    types = service_types([Service(service_code=str(i), service_name=n) for i, n in enumerate(data.class_names)], embedder)
    label_of = {t.type_id: int(t.service_code) for t in types}
    truth, preds = [], {name: [] for name in TYPING_MODELS}
    for train, test in splits:
        history = History(data.labels[train].astype(str).astype(object), vectors[train])
        refined = with_history(types, history)
        services = [Service(service_code=str(i), service_name=n) for i, n in enumerate(data.class_names)]
        combined = TypeClassifier.train(services, embedder, history_texts=[data.texts[i] for i in train],
                                        history_codes=data.labels[train].astype(str).tolist(),
                                        history_embeddings=vectors[train])
        variants = zip(TYPING_MODELS, ((types, None), (refined, None), (refined, ServiceClassifier.train(history)),
                                       (refined, combined)))
        test_texts = [data.texts[i] for i in test]
        for name, (candidates, classifier) in variants:
            chosen = assign_types(vectors[test], candidates, min_similarity, classifier=classifier, texts=test_texts)
            preds[name].append(np.array([label_of[t] if t else -1 for t, _ in chosen]))
        truth.append(data.labels[test])
    y = np.concatenate(truth)
    scores, untyped = {}, {}
    for name, parts in preds.items():
        p = np.concatenate(parts)
        macro = float(f1_score(y, p, labels=np.unique(y), average="macro", zero_division=0))
        scores[name] = Scores(macro, None, None, float(accuracy_score(y, p)), macro)
        untyped[name] = round(float(np.mean(p == -1)), 4)
    return scores, untyped


class HistoryRows:
    """Adds the history rows to the ``TEST_SETS`` rows of ``run_shared``; loads the history once.

    Args:
        data_dir: the shared data folder.
        embedder: the evaluation's embedder (history embeddings are cached like the datasets').
    """

    def __init__(self, data_dir: Path, embedder) -> None:
        self.data_dir, self.embedder = data_dir, embedder
        self._history: EvalHistory | None = None
        self._loaded = False

    def add(self, loader_name: str, data, splits, row: dict, result: dict, log=print) -> None:
        """Put the history models in ``row["models"]`` (or note the skip in ``result``)."""
        if loader_name == TYPING_SET and data.class_names:
            vectors = cached_encode(self.embedder, data.texts, data.source)
            scores, untyped = typing_rows(self.embedder, data, vectors, splits)
            for name, value in scores.items():
                row["models"][name] = value.as_dict()
            result["history_typing"] = {"dataset": data.name, "untyped_share": untyped}
            return
        if loader_name not in TEST_SETS:
            return
        if not self._loaded:
            self._loaded = True
            log("embedding the PublicStuff NYC 311 history (cached after the first run)")
            self._history = load(self.data_dir, self.embedder)
            if self._history is None:
                result["skipped"].append("zero-shot + 311 history rows (nyc/publicstuff_nyc_2010_2018.csv absent)")
            else:
                result["history"] = {"source": str(self._history.source), "requests": len(self._history.embeddings),
                                     "catalog": self._history.catalog}
        if self._history is None:
            return
        vectors = cached_encode(self.embedder, data.texts, data.source)
        scores, ranking = zero_shot_rows(self.embedder, vectors, data.labels, splits, self._history)
        for name, value in scores.items():
            row["models"][name] = value.as_dict()
        result["history"].setdefault("ranking", {})[data.name] = ranking


def describe(info: dict) -> str:
    """Lines under the table naming the history behind the ``+ 311 history`` rows, and its ranking effect."""
    lines = [f"311 history of the zero-shot + catalog rows: {info['requests']} resident-written PublicStuff NYC "
             f"requests (masked); catalog: its {len(info['catalog'])} request types used {MIN_TITLE_USES}+ times"]
    for dataset, models in info.get("ranking", {}).items():
        lines.append(f"  {dataset}: " + "; ".join(f"{name} ROC AUC {m['auc']:.3f}, average precision {m['ap']:.3f}"
                                                  for name, m in models.items()))
    return "\n".join(lines)


def describe_typing(info: dict) -> str:
    """One line under the table: how many requests the typing rows left untyped."""
    shares = "; ".join(f"{name} {share:.1%}" for name, share in info["untyped_share"].items())
    return f"Typing {info['dataset']} at similarity {TYPE_SIMILARITY} (untyped counts as wrong), untyped: {shares}"
