"""A city's own labelled CSVs for ``social311 eval --data … [--train …]``, checked before any embedding.

Everything that can make the table lie is settled here, on the raw files, in seconds:

* columns are matched as the header is written, stripped and case aside (``' tweet'``); a
  column that is not there is a one-line error listing the columns that are;
* labels are aligned **by name** across all files (never numbered per file); a label found only
  in the training files or only in the test file is a warning, not a silent shift;
* a training side with one class, or a class too small for the split asked for, is a one-line
  error before the (slow) embedding starts;
* texts of the test side that also occur in the training side (case and spacing aside) are
  removed from the test side and counted: leakage would score them for free.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.model_selection import StratifiedKFold, train_test_split

from social311.models.evaluation.datasets import LabelledSet

BINARY_TASKS = ("relevance", "complaint")
#: Binary label names a city may use, negative first.
BINARY_NAMES = (("0", "1"), ("false", "true"), ("no", "yes"), ("off-topic", "on-topic"), ("chatter", "complaint"),
                ("irrelevant", "relevant"), ("not_relevant", "relevant"), ("n", "y"))


class EvalInputError(ValueError):
    """A labelled file the evaluation cannot use; the message is one line for the command line."""


def find_column(columns: Sequence[str], wanted: str, path: Path) -> str:
    """The real name of ``wanted`` among ``columns``: exact, then stripped, then stripped and case-folded."""
    if wanted in columns:
        return wanted
    for fold in (str.strip, lambda c: c.strip().casefold()):
        matches = [c for c in columns if fold(str(c)) == fold(wanted)]
        if len(matches) == 1:
            return matches[0]
    shown = ", ".join(repr(str(c)) for c in columns)
    raise EvalInputError(f"{path.name}: no column {wanted.strip()!r}; its columns are: {shown}")


def _label_names(values: pd.Series) -> pd.Series:
    """Labels as stripped strings; whole-number floats (``1.0``, from a column with blanks) as ints."""
    if pd.api.types.is_float_dtype(values) and np.all(np.mod(values.to_numpy(), 1) == 0):
        values = values.astype(int)
    return values.astype(str).str.strip()


@dataclass
class RawFile:
    """One file's kept texts and label names, and how many rows were dropped and why."""

    path: Path
    texts: list[str]
    names: list[str]
    dropped: dict[str, int] = field(default_factory=dict)


def read_raw(path: Path, text_column: str, label_column: str) -> RawFile:
    """Texts and label names of one CSV; rows without a label or with an empty text are dropped and counted."""
    if not path.is_file():
        raise EvalInputError(f"{path}: no such file")
    try:
        frame = pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise EvalInputError(f"{path.name}: not a readable CSV ({str(exc).splitlines()[0]})") from None
    text_col = find_column(list(frame.columns), text_column, path)
    label_col = find_column(list(frame.columns), label_column, path)
    no_label = frame[label_col].isna()
    texts = frame[text_col].fillna("").astype(str)
    empty = ~no_label & (texts.str.strip() == "")
    keep = ~no_label & ~empty
    return RawFile(path, texts[keep].tolist(), _label_names(frame.loc[keep, label_col]).tolist(),
                   {"no label": int(no_label.sum()), "empty text": int(empty.sum())})


def normalise(text: str) -> str:
    """The key two texts are 'the same' by: case and spacing aside."""
    return " ".join(text.casefold().split())


def encode_labels(task: str, names: set[str]) -> dict[str, int]:
    """One label -> id mapping for all files: 0/1 for binary tasks (negative first), sorted names otherwise."""
    if task in BINARY_TASKS:
        folded = {n.casefold() for n in names}
        for negative, positive in BINARY_NAMES:
            if folded <= {negative, positive}:
                return {n: int(n.casefold() == positive) for n in names}
        raise EvalInputError(f"--task {task} needs two labels such as 0/1 or false/true; found: "
                             + ", ".join(sorted(names)[:12]) + (" …" if len(names) > 12 else ""))
    return {n: i for i, n in enumerate(sorted(names))}


@dataclass
class Prepared:
    """What ``run_file`` scores: one labelled set (training rows first), its splits and notes."""

    data: LabelledSet
    splits: list[tuple[np.ndarray, np.ndarray]]
    split_name: str
    parts: list[tuple[Path, list[int]]]  # each file and the positions of its kept rows in ``data``
    notes: list[str]
    dropped_duplicates: int
    class_names: tuple[str, ...]


def _class_counts(labels: np.ndarray, names: tuple[str, ...]) -> str:
    return ", ".join(f"{names[k]!r} {n}" for k, n in enumerate(np.bincount(labels, minlength=len(names))) if n)


def _require_two_classes(labels: np.ndarray, names: tuple[str, ...], where: str) -> None:
    if len(np.unique(labels)) < 2:
        raise EvalInputError(f"{where}: one class only ({_class_counts(labels, names)}); a classifier needs at least two")


def _drop_leaks(splits, keys: np.ndarray) -> tuple[list[tuple[np.ndarray, np.ndarray]], int]:
    """Remove from each test part the rows whose text also occurs in its training part."""
    clean, dropped = [], 0
    for train, test in splits:
        seen = set(keys[train].tolist())
        keep = np.array([k not in seen for k in keys[test]], dtype=bool)
        dropped += int((~keep).sum())
        clean.append((train, test[keep]))
    return clean, dropped


def prepare(task: str, data: Path, text_column: str, label_column: str, train: Sequence[Path] = (),
            split: float | None = None, folds: int = 5, seed: int = 0,
            warn: Callable[[str], None] | None = None) -> Prepared:
    """Read, align, check and split the files; raises ``EvalInputError`` with a one-line reason.

    Args:
        data: the labelled file scored (the test set when ``train`` is given).
        train: training files (their rows are pooled); none: ``data`` is split.
        split: with no ``train``: the test share of one stratified split (e.g. 0.2); None:
            stratified ``folds``-fold cross-validation.
        warn: called with each warning line (labels in one side only, dropped rows).
    """
    warn = warn or (lambda message: None)
    if train and split is not None:
        raise EvalInputError("--split divides --data when there is no --train; with --train, --data is the test set")
    if split is not None and not 0 < split < 1:
        raise EvalInputError(f"--split is the test share, between 0 and 1 (got {split})")
    files = [read_raw(p, text_column, label_column) for p in list(train) + [data]]
    notes = []
    for f in files:
        for reason, n in f.dropped.items():
            if n:
                notes.append(f"{f.path.name}: {n} rows dropped ({reason})")
    train_names = {n for f in files[:-1] for n in f.names}
    test_names = set(files[-1].names)
    mapping = encode_labels(task, train_names | test_names)
    class_names = tuple(sorted(mapping, key=lambda n: (mapping[n], n)))
    if task in BINARY_TASKS:
        class_names = tuple(next((n for n in class_names if mapping[n] == v), str(v)) for v in (0, 1))
    if train:
        only_train, only_test = sorted(train_names - test_names), sorted(test_names - train_names)
        if only_train:
            notes.append(f"labels only in the training files (never tested): {', '.join(only_train)}")
        if only_test:
            notes.append(f"labels only in {data.name} (never trained on, always wrong): {', '.join(only_test)}")
    texts = [t for f in files for t in f.texts]
    labels = np.array([mapping[n] for f in files for n in f.names], dtype=int)
    parts, start = [], 0
    for f in files:
        parts.append((f.path, list(range(start, start + len(f.texts)))))
        start += len(f.texts)
    keys = np.array([normalise(t) for t in texts], dtype=object)
    if train:
        n_train = start - len(files[-1].texts)
        _require_two_classes(labels[:n_train], class_names, "the training files (pooled)")
        splits = [(np.arange(n_train), np.arange(n_train, start))]
        split_name = "train on " + " + ".join(p.name for p in train)
    else:
        _require_two_classes(labels, class_names, data.name)
        counts = np.bincount(labels)
        rarest = int(counts[counts > 0].min())
        if rarest < 2:
            small = [class_names[k] for k, n in enumerate(counts) if n == 1]
            raise EvalInputError(f"{data.name}: {len(small)} class(es) have 1 row ({', '.join(small[:8])}); "
                                 "splitting needs at least 2 rows per class: drop them or label more")
        idx = np.arange(len(labels))
        if split is not None:
            tr, te = train_test_split(idx, test_size=split, stratify=labels, random_state=seed)
            splits, split_name = [(tr, te)], f"{1 - split:.0%}/{split:.0%} stratified seed {seed}"
        else:
            used = max(2, min(folds, rarest))
            if used < folds:
                notes.append(f"{used} folds, not {folds}: the rarest class has {rarest} rows")
            splits = list(StratifiedKFold(n_splits=used, shuffle=True, random_state=seed).split(idx, labels))
            split_name = f"{used}-fold stratified seed {seed}"
    splits, dropped = _drop_leaks(splits, keys)
    if dropped:
        notes.append(f"{dropped} test rows dropped: the same text (case and spacing aside) is in the training part")
    if sum(len(te) for _, te in splits) == 0:
        raise EvalInputError(f"{data.name}: no test rows left after removing texts also in the training files")
    for note in notes:
        warn(note)
    dataset = LabelledSet(data.name, task, texts, labels, None, class_names=class_names if task not in BINARY_TASKS else ())
    return Prepared(dataset, splits, split_name, parts, notes, dropped, class_names)
