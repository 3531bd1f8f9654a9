"""Leave-one-dataset-out: the honest out-of-the-box figure (``social311 eval --task lodo``).

Each shared labelled relevance set (Mumbai complaints, ACL 2019 complaints, each CrisisLexT6
event) is held out once; every model is trained on all the other sets and scored on it:

* ``tfidf``: the TF-IDF LR baseline of ``classifiers`` on the pooled other sets;
* ``embedding-lr``: LR on MiniLM embeddings of the pooled other sets;
* ``starting``: the combined model's starting point built from the other sets only
  (``combined.train_starting``, as ``scripts/build_starting_model.py`` builds the shipped one);
* ``pipeline``: exactly what ``ml/post_signals`` runs (``relevance.city_model``): the seeds on
  top of that starting point, threshold 0.5, no catalog, history or reviews (a new city, so
  the trust schedule keeps it near the prior: C = ``trust_C`` of the seeds alone).

Starting models are kept on disk by a hash of their inputs (``cached_starting``): the same
held-out set in ``--task lodo``, ``--task learning`` and the shared ``pipeline`` rows reuses one.

Typing: Mumbai's categories and PublicStuff's request types share four services (pothole,
sanitation, noise, parking); each is held out once with the other as training data.
Embeddings come from the eval's disk cache (``cache.py``): reruns embed nothing.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from social311.models.evaluation import classifiers, datasets
from social311.models.evaluation.cache import cached_encode

ROWS = ("tfidf", "embedding-lr", "starting", "pipeline")

# Mumbai category id -> the PublicStuff type it is the same service as.
MUMBAI_TO_COMMON = {3: "pothole", 12: "sanitation", 7: "noise", 5: "parking"}


def public_sets(data_dir: Path, embedder, log=print, exclude: set[str] = frozenset(), strict: bool = True):
    """``[(name, texts, embeddings, labels, files)]``: Mumbai, ACL and each CrisisLexT6 event.

    ``exclude``: names to leave out. A missing set raises ``FileNotFoundError`` naming it, or
    with ``strict=False`` is left out.
    """
    out = []
    for loader, name in ((datasets.mumbai_relevance, "mumbai complaint"), (datasets.acl_complaints, "acl2019 complaint")):
        data = loader(data_dir)
        if data is None:
            if strict:
                raise FileNotFoundError(f"{name} not found under {data_dir}")
            continue
        if name in exclude:
            continue
        out.append((name, data.texts, cached_encode(embedder, data.texts, data.source, log=log), data.labels,
                    [data.source]))
    crisis = datasets.crisislex(data_dir)
    if crisis is None:
        if strict:
            raise FileNotFoundError(f"CrisisLexT6 not found under {data_dir}")
        return out
    vectors = cached_encode(embedder, crisis.texts, crisis.source, log=log)
    files = sorted((data_dir / "tweets" / "crisislex_t6").glob("*.csv"))
    for event in sorted(set(crisis.groups.tolist())):
        name = f"crisislex {event}"
        if name in exclude:
            continue
        rows = np.flatnonzero(crisis.groups == event)
        out.append((name, [crisis.texts[i] for i in rows], vectors[rows], crisis.labels[rows],
                    [f for f in files if f.name.startswith(event)]))
    return out


#: Which public sets a shared-data loader's rows come from (all of CrisisLex for its by-event row).
LOADER_SETS = {"mumbai_relevance": ("mumbai complaint",), "acl_complaints": ("acl2019 complaint",),
               "crisislex": ("crisislex ",)}


def starting_without(data_dir: Path, embedder, loader_name: str, log=print):
    """A starting model built like the shipped one from every public set except ``loader_name``'s.

    Sets absent from ``data_dir`` are left out; with none left (or one class only) there is no
    prior (None), and the caller's pipeline row is the seeds and its labels alone.
    """
    prefixes = LOADER_SETS.get(loader_name, ())
    sets = [s for s in public_sets(data_dir, embedder, log=log, strict=False) if not s[0].startswith(prefixes)]
    if not sets or len(np.unique(np.concatenate([s[3] for s in sets]))) < 2:
        log(f"  no other public set under {data_dir}: the pipeline row has no starting model")
        return None
    return cached_starting([s[:4] for s in sets], log=log)


def _starting_key(sets) -> str:
    """Hash of everything a starting model is built from: names, texts, embeddings, labels, settings."""
    import hashlib

    from social311.models import combined

    digest = hashlib.sha256(f"{combined.FORMAT}|{combined.N_FEATURES}|{combined.EMBED_SCALE}|folds=3".encode())
    for name, texts, vectors, labels in sets:
        digest.update(name.encode("utf-8") + b"\x1d")
        digest.update("\x1e".join(texts).encode("utf-8"))
        digest.update(np.ascontiguousarray(vectors, dtype=np.float32).tobytes())
        digest.update(np.asarray(labels, dtype=np.int64).tobytes())
    return digest.hexdigest()[:24]


def cached_starting(sets, log=print):
    """``combined.train_starting(sets)``, kept on disk by a hash of its inputs.

    Building a starting model (17,000 rows, 3 calibration folds) is the eval's largest cost,
    about a minute per held-out set, and ``--task lodo``, ``--task learning`` and the shared
    ``pipeline`` rows need the same ones again. The file is what ``CombinedModel.save`` writes
    (float16 coefficients), and a fresh build is returned as read back from it, so a first
    run and a cached rerun score exactly the same. It lives beside the embedding cache
    (``<model cache>/starting-models``), never in the repository.
    """
    from social311.models.combined import CombinedModel, train_starting
    from social311.models.evaluation.cache import cache_root

    path = cache_root().parent / "starting-models" / f"{_starting_key(sets)}.npz"
    if path.exists():
        try:
            return CombinedModel.load(path)
        except (OSError, ValueError, KeyError) as exc:  # a damaged entry is rebuilt, and said
            log(f"  cached starting model {path.name} unreadable ({exc}): rebuilding")
    log(f"  building a starting model from {len(sets)} sets ({sum(len(s[3]) for s in sets)} rows)")
    model = train_starting(sets)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.stem + ".tmp.npz")
    model.save(tmp)
    tmp.replace(path)  # atomic: an interrupted build never leaves a truncated entry
    return CombinedModel.load(path)


def _pool(sets):
    texts = [t for s in sets for t in s[1]]
    return texts, np.vstack([s[2] for s in sets]), np.concatenate([s[3] for s in sets])


def relevance(data_dir: Path, embedder, log=print) -> list[dict]:
    """One row per held-out relevance set: F1 (positive class) and macro-F1 of each model."""
    from social311.models.relevance import city_model

    sets = public_sets(data_dir, embedder, log=log)
    rows = []
    for k, held in enumerate(sets):
        started = time.perf_counter()
        others = [s for j, s in enumerate(sets) if j != k]
        log(f"lodo {k + 1}/{len(sets)}: held out {held[0]} ({len(held[3])} rows), training on {len(others)} sets")
        texts, vectors, labels = _pool(others)
        test_texts, test_vectors, truth = held[1], held[2], held[3]
        preds = {
            "tfidf": classifiers.predict("tfidf", texts, vectors, labels, test_texts, test_vectors),
            "embedding-lr": classifiers.predict("embed", texts, vectors, labels, test_texts, test_vectors),
        }
        starting = cached_starting([s[:4] for s in others], log=log)
        preds["starting"] = (starting.predict_proba(test_texts, test_vectors) >= 0.5).astype(int)
        pipeline = city_model(embedder, starting=starting)
        proba = pipeline.predict_proba(test_texts, test_vectors)
        preds["pipeline"] = (proba >= 0.5).astype(int)
        from social311.models.combined import calibration_report

        row = {"held_out": held[0], "n": int(len(truth)), "positives": int(truth.sum()),
               "models": {name: classifiers.score(truth, p).as_dict() for name, p in preds.items()},
               "pipeline_calibration": calibration_report(truth, proba),
               "seconds": round(time.perf_counter() - started, 1)}
        log("  " + ", ".join(f"{m} F1 {s['f1']:.3f} / macro {s['macro_f1']:.3f}" for m, s in row["models"].items()))
        rows.append(row)
    return rows


def format_table(rows: list[dict]) -> str:
    """Markdown: one line per held-out set and model."""
    lines = ["| held out | n | model | F1 | macro-F1 | F1 vs TF-IDF | macro-F1 vs TF-IDF |", "|---|---|---|---|---|---|---|"]
    for row in rows:
        base = row["models"]["tfidf"]
        for name, s in row["models"].items():
            delta = "" if name == "tfidf" else f"{s['f1'] - base['f1']:+.3f}"
            delta_macro = "" if name == "tfidf" else f"{s['macro_f1'] - base['macro_f1']:+.3f}"
            label = "**pipeline**" if name == "pipeline" else name
            lines.append(f"| {row['held_out']} | {row['n']} | {label} | {s['f1']:.3f} | {s['macro_f1']:.3f} | {delta} | {delta_macro} |")
    return "\n".join(lines)


COMMON_TYPES = ("noise", "parking", "pothole", "sanitation")
#: How the four shared services read in a catalog (the pipeline's typing needs names).
COMMON_NAMES = {"noise": "Noise complaint", "parking": "Illegal parking", "pothole": "Pothole",
                "sanitation": "Garbage and sanitation"}


def typing_sets(data_dir: Path, embedder, log=print):
    """``[(name, texts, embeddings, labels)]`` of Mumbai and PublicStuff on the four shared services (labels 0-3)."""
    out = []
    mumbai = datasets.mumbai_service_type(data_dir)
    if mumbai is not None:
        vectors = cached_encode(embedder, mumbai.texts, mumbai.source, log=log)
        keep = np.flatnonzero(np.isin(mumbai.labels, list(MUMBAI_TO_COMMON)))
        labels = np.array([COMMON_TYPES.index(MUMBAI_TO_COMMON[int(mumbai.labels[i])]) for i in keep])
        out.append(("mumbai types", [mumbai.texts[i] for i in keep], vectors[keep], labels))
    stuff = datasets.publicstuff_service_type(data_dir)
    if stuff is not None:
        # The loader numbers the kinds it kept in sorted order; with all of them kept that is this list.
        names = sorted(name for name, _ in datasets.PUBLICSTUFF_TYPES)
        if len(stuff.class_names) != len(names):
            raise ValueError(f"PublicStuff kept {len(stuff.class_names)} of {len(names)} types: labels cannot be named")
        vectors = cached_encode(embedder, stuff.texts, stuff.source, log=log)
        keep = np.array([i for i, label in enumerate(stuff.labels) if names[label] in COMMON_TYPES], dtype=int)
        out.append(("publicstuff types", [stuff.texts[i] for i in keep], vectors[keep],
                    np.array([COMMON_TYPES.index(names[stuff.labels[i]]) for i in keep])))
    return out


def typing(data_dir: Path, embedder, log=print, min_similarity: float = 0.45) -> list[dict]:
    """Each typing set held out once, trained on the other (four shared services, macro-F1)."""
    from social311.models.history import History, ServiceClassifier, with_history
    from social311.models.issue_types import TypeClassifier, assign_types, service_types
    from social311.records import Service

    sets = typing_sets(data_dir, embedder, log=log)
    if len(sets) < 2:
        return []
    services = [Service(service_code=str(i), service_name=COMMON_NAMES[n]) for i, n in enumerate(COMMON_TYPES)]
    types = service_types(services, embedder)
    label_of = {t.type_id: int(t.service_code) for t in types}
    rows = []
    for k, held in enumerate(sets):
        other = sets[1 - k]
        log(f"lodo typing: held out {held[0]} ({len(held[3])} rows), trained on {other[0]}")
        preds = {"tfidf": classifiers.predict("tfidf", other[1], other[2], other[3], held[1], held[2]),
                 "embedding-lr": classifiers.predict("embed", other[1], other[2], other[3], held[1], held[2])}
        history = History(other[3].astype(str).astype(object), other[2], tuple(other[1]))
        refined = with_history(types, history)
        combined = TypeClassifier.train(services, embedder, history_texts=list(other[1]),
                                        history_codes=other[3].astype(str).tolist(), history_embeddings=other[2])
        for name, classifier in (("pipeline (embedding classifier, before)", ServiceClassifier.train(history)),
                                 ("pipeline", combined)):
            chosen = assign_types(held[2], refined, min_similarity, classifier=classifier, texts=held[1])
            preds[name] = np.array([label_of[t] if t else -1 for t, _ in chosen])
        rows.append({"held_out": held[0], "n": int(len(held[3])), "classes": list(COMMON_TYPES),
                     "models": {name: classifiers.score(held[3], p).as_dict() for name, p in preds.items()}})
        log("  " + ", ".join(f"{m} macro-F1 {s['macro_f1']:.3f}" for m, s in rows[-1]["models"].items()))
    return rows


def format_typing_table(rows: list[dict]) -> str:
    """Markdown: macro-F1 of each typing model per held-out set (untyped counts as wrong)."""
    lines = ["| held out (trained on the other) | n | model | macro-F1 | accuracy | macro-F1 vs TF-IDF |",
             "|---|---|---|---|---|---|"]
    for row in rows:
        base = row["models"]["tfidf"]["macro_f1"]
        for name, s in row["models"].items():
            delta = "" if name == "tfidf" else f"{s['macro_f1'] - base:+.3f}"
            label = "**pipeline**" if name == "pipeline" else name
            lines.append(f"| {row['held_out']} | {row['n']} | {label} | {s['macro_f1']:.3f} | {s['accuracy']:.3f} | {delta} |")
    return "\n".join(lines)
