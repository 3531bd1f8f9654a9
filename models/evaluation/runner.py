"""``social311 eval``: every evaluation in one table, printed and written as JSON.

Classification rows carry the TF-IDF baseline measured in the same run on the same split, so
each model is read against it, never against a number from another day.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from social311.models.evaluation import classifiers, datasets, files, history, merging, speed
from social311.models.evaluation.cache import cached_encode

BINARY_TASKS = ("relevance", "complaint")
#: What the ``pipeline`` row is trained on, said under the table.
PIPELINE_RELEVANCE = ("the pipeline's relevance model (models/combined.py: hashed n-grams + embedding, Platt-calibrated, "
                      "threshold 0.5) trained on its seeds plus the training part as review labels, over a starting "
                      "model as a prior (for a shared set one rebuilt without it, else the shipped one; "
                      "no catalog, no 311 history)")
PIPELINE_TYPING = ("the pipeline's typing (catalog = the label names; the training part as the city's 311 history: "
                   "centroids + combined classifier on n-grams and embeddings; untyped counts as wrong)")


def classification_row(data: datasets.LabelledSet, embedder, splits, split_name: str,
                       fine_tune: bool = False, log=None, vectors: np.ndarray | None = None,
                       starting="shipped") -> dict:
    """The baseline, our models and (binary tasks) the zero-shot seed model on one split.

    With ``fine_tune`` the encoder is also fine-tuned on every training part (slow on CPU:
    ``models/finetune.py``) and scored alone and averaged with the baseline. ``vectors`` are
    the texts' embeddings when the caller has them (default: embedded, cached by ``data.source``).
    ``starting``: the pipeline row's prior (see ``classifiers.pipeline_probabilities``).
    """
    if vectors is None:
        vectors = cached_encode(embedder, data.texts, data.source, log=log)
    row = {"dataset": data.name, "task": data.task, "n": len(data.texts), "split": split_name,
           "classes": int(len(np.unique(data.labels))), "models": {}}
    for model in classifiers.MODELS:
        row["models"][model] = classifiers.evaluate(model, data.texts, vectors, data.labels, splits).as_dict()
    if data.task in BINARY_TASKS:
        row["models"]["zero-shot"] = classifiers.zero_shot(embedder, vectors, data.labels, splits).as_dict()
        test, proba = classifiers.pipeline_probabilities(embedder, vectors, data.labels, splits, data.texts,
                                                         starting=starting)
        row["models"]["pipeline"] = classifiers.score(data.labels[test], (proba >= 0.5).astype(int)).as_dict()
        row["by_language"] = classifiers.by_language(data.texts, data.labels, test, proba)
        row["pipeline_trained_on"] = PIPELINE_RELEVANCE
    elif data.class_names:
        scores, _ = history.typing_rows(embedder, data, vectors, splits)
        row["models"]["pipeline"] = scores[history.TYPING_MODELS[3]].as_dict()
        row["pipeline_trained_on"] = PIPELINE_TYPING
    if fine_tune:
        started = time.perf_counter()
        for name, scores in classifiers.evaluate_fine_tuned(data.texts, data.labels, splits, log=log).items():
            row["models"][name] = scores.as_dict()
        row["fine_tune_seconds"] = round(time.perf_counter() - started, 1)
    return row


def _embedder(backend: str, model_dir: str | None):
    from social311.models.embeddings import LocalModelEmbedder, get_embedder

    return LocalModelEmbedder(model_dir) if model_dir else get_embedder(backend)


def run_shared(data_dir: Path, backend: str = "onnx-int8", log=print, fine_tune: bool = False,
               only: set[str] | None = None, model_dir: str | None = None) -> dict:
    """All evaluations on the shared corpora; absent files are listed under ``skipped``.

    Args:
        fine_tune: also fine-tune the encoder per split (hours on 2 CPU cores for all sets).
        only: loader names to run (``datasets.LOADERS``); default all, plus speed and merging.
        model_dir: a local sentence-transformers folder to evaluate instead of the packaged model.
    """
    embedder = _embedder(backend, model_dir)
    result = {"data_dir": str(data_dir), "backend": backend, "model": embedder.model_name,
              "classification": [], "skipped": []}
    mumbai = None
    history_rows = history.HistoryRows(data_dir, embedder)  # "+ 311 history" rows next to zero-shot
    for loader in datasets.LOADERS:
        if only and loader.__name__ not in only:
            continue
        data = loader(data_dir)
        if data is None:
            result["skipped"].append(loader.__name__)
            continue
        if len(data.labels) < 20 or len(np.unique(data.labels)) < 2:
            result["skipped"].append(f"{loader.__name__} (too few labelled rows)")
            continue
        log(f"evaluating {data.name} ({len(data.texts)} texts)")
        splits, described = classifiers.splits_for(data.protocol, data.labels, data.groups)
        starting = "shipped"
        if data.task in BINARY_TASKS:
            # The shipped starting model was built from this very set: the pipeline row uses one
            # built from the other public sets, as a city whose posts were never in it gets.
            from social311.models.evaluation.lodo import starting_without

            log(f"  building the starting model without {data.name}")
            starting = starting_without(data_dir, embedder, loader.__name__, log=log)
        row = classification_row(data, embedder, splits, described, fine_tune, log, starting=starting)
        history_rows.add(loader.__name__, data, splits, row, result, log)
        result["classification"].append(row)
        if loader is datasets.mumbai_relevance:
            mumbai = data
    if only:
        return result
    if mumbai is not None:
        log("timing the embedding paths and the prefilter")
        sample = mumbai.texts[:512]
        result["embedding_paths"] = speed.embedding_paths(sample, ("torch", backend) if backend != "torch" else ("torch",))
        rate = next(r["posts_per_s"] for r in result["embedding_paths"] if r["backend"] == backend)
        result["prefilter"] = {"dataset": mumbai.name, "embed_backend": backend,
                               **speed.prefilter(mumbai.texts, mumbai.labels, rate)}
    else:
        result["skipped"] += ["embedding_paths", "prefilter"]
    log("merging PublicStuff NYC duplicates")
    merged = merging.publicstuff(data_dir / "nyc" / "publicstuff_nyc_2010_2018.csv", embedder)
    if merged is None:
        result["skipped"].append("incidents")
    else:
        result["incidents"] = merged
    return result


def run_file(task: str, data: Path, text_column: str, label_column: str, train: Path | list[Path] | None = None,
             backend: str = "onnx-int8", fine_tune: bool = False, split: float | None = None, folds: int = 5,
             seed: int = 0, log=print, model_dir: str | None = None) -> dict:
    """A city's labelled CSV: cross-validated, split once (``split``), or tested after training on ``train``.

    The files are read, their labels aligned by name and checked (``files.prepare``) before the
    embedding starts, so a file that cannot be scored fails in seconds with a one-line
    ``EvalInputError``. Warnings (labels in one side only, rows dropped) go to ``log`` and
    into the row's ``notes``.
    """
    trains = [train] if isinstance(train, Path) else list(train or [])
    prepared = files.prepare(task, data, text_column, label_column, trains, split=split, folds=folds, seed=seed,
                             warn=lambda m: log(f"warning: {m}"))
    embedder = _embedder(backend, model_dir)
    log(f"embedding {len(prepared.data.texts)} texts from {len(prepared.parts)} file(s) (cached by file)")
    vectors = np.vstack([cached_encode(embedder, [prepared.data.texts[i] for i in rows], path, log=log)
                         for path, rows in prepared.parts])
    row = classification_row(prepared.data, embedder, prepared.splits, prepared.split_name, fine_tune, log,
                             vectors=vectors)
    row["n"] = int(sum(len(test) for _, test in prepared.splits))  # the rows scored, not the rows trained on
    row["classes"] = int(len(np.unique(np.concatenate([prepared.data.labels[t] for _, t in prepared.splits]))))
    row["label_names"] = list(prepared.class_names)
    row["dropped_duplicates"] = prepared.dropped_duplicates
    row["notes"] = prepared.notes
    if trains:
        row["macro_f1_over"] = "the test file's classes only"
    return {"backend": backend, "model": embedder.model_name, "classification": [row], "skipped": []}


def _fmt(value) -> str:
    return "-" if value is None else f"{value:.3f}"


def format_table(result: dict) -> str:
    """The evaluation as a Markdown table (F1 = positive-class F1, or macro F1 for types)."""
    lines = ["| dataset | task | n | split | model | F1 | precision | recall | accuracy | macro-F1 | F1 vs TF-IDF |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for row in result.get("classification", []):
        base = row["models"]["tfidf"]["f1"]
        for name, s in row["models"].items():
            label = "TF-IDF LR (baseline)" if name == "tfidf" else {"embed": "LR on embeddings",
                    "stack": "LR on TF-IDF + embeddings", "zero-shot": "zero-shot seeds",
                    "fine-tuned": "fine-tuned MiniLM", "pipeline": "**pipeline** (what social311 runs)", "fine-tuned + TF-IDF": "fine-tuned MiniLM + TF-IDF (mean prob.)"}.get(name, name)
            delta = "" if name == "tfidf" else f"{s['f1'] - base:+.3f}"
            lines.append(f"| {row['dataset']} | {row['task']} | {row['n']} | {row['split']} | {label} | {_fmt(s['f1'])} | "
                         f"{_fmt(s['precision'])} | {_fmt(s['recall'])} | {_fmt(s['accuracy'])} | {_fmt(s['macro_f1'])} | {delta} |")
    out = ["\n".join(lines)]
    if result.get("embedding_paths"):
        out.append("| embedding path | posts/s | cosine to torch (mean / min) |\n|---|---|---|")
        out[-1] += "".join(f"\n| {r['backend']} | {r['posts_per_s']} | "
                           f"{r.get('cosine_mean', 1.0)} / {r.get('cosine_min', 1.0)} |" for r in result["embedding_paths"])
    if result.get("prefilter"):
        p = result["prefilter"]
        out.append(f"Prefilter (TF-IDF LR, threshold at {speed.PREFILTER_RECALL:.0%} train recall) on {p['dataset']}, "
                   f"{p['n']} test posts: skips {p['skipped_share']:.1%}, keeps {p['recall_kept']:.1%} of reports, "
                   f"{p['prefilter_posts_per_s']} posts/s, embedding stage speed-up x{p['speedup']} ({p['embed_backend']})")
    if result.get("incidents"):
        m = result["incidents"]
        out.append(f"Incident merging, PublicStuff NYC ({m['rows']} rows; truth: {m['repeating_rows']} rows repeat a "
                   f"description at one point, same type, <= {m['repeat_gap_days']} days after the previous copy and "
                   f"<= {m['repeat_span_days']} days after the first, in {m['duplicate_groups']} groups; "
                   f"{m['non_duplicates']} rows repeat nothing): repeats merged {m['repeat_recall']:.3f}, "
                   f"false-merge rate {m['false_merge_rate']:.3f} of non-duplicates (target <= 0.15), "
                   f"pair precision {m['pair_precision']:.3f} / recall {m['pair_recall']:.3f}; {m['incidents']} incidents, "
                   f"largest {m['largest_incident']}. Against any-time repeats: recall {m['any_time']['repeat_recall']:.3f}, "
                   f"false-merge rate {m['any_time']['false_merge_rate']:.3f}")
    if result.get("history"):
        out.append(history.describe(result["history"]))
    if result.get("history_typing"):
        out.append(history.describe_typing(result["history_typing"]))
    for row in result.get("classification", []):
        if row.get("by_language"):
            out.append(f"pipeline row of {row['dataset']} by detected language (py3langid; und = too short or unsure): "
                       + "; ".join(f"{code} n={v['n']} F1 {v['f1']:.3f}, {v['to_review']} to review "
                                   f"({v['reports_to_review']} of them reports)" for code, v in row["by_language"].items()))
    trained = {row["pipeline_trained_on"] for row in result.get("classification", []) if row.get("pipeline_trained_on")}
    for what in sorted(trained):
        out.append(f"pipeline row: {what}.")
    for row in result.get("classification", []):
        for note in row.get("notes", []):
            out.append(f"Note ({row['dataset']}): {note}")
        if row.get("macro_f1_over"):
            out.append(f"Macro-F1 ({row['dataset']}) is averaged over {row['macro_f1_over']}.")
    if result.get("skipped"):
        out.append("Skipped (data absent or too small): " + ", ".join(result["skipped"]))
    return "\n\n".join(out)


def write(result: dict, out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2), encoding="utf-8")
