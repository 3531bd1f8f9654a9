"""The shared labelled corpora as ``(texts, labels)``, and any labelled CSV the same way.

Every loader returns None when its file is absent, so ``social311 eval`` skips that row
instead of failing. Labels are ints (0/1 for binary tasks, category ids for service types).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

# CrisisLex is 50,000 tweets; an even per-event sample keeps one run to a few minutes of CPU.
CRISISLEX_PER_EVENT = 1000


@dataclass(frozen=True)
class LabelledSet:
    """Texts with labels, the file they came from (the embedding cache key) and the protocol.

    ``protocol``: ``holdout`` (80/20), ``kfold10`` (10 folds) or ``by_group`` (leave one
    group out, ``groups`` naming each row's group, e.g. the crisis event).
    """

    name: str
    task: str  # relevance | complaint | service_type
    texts: list[str]
    labels: np.ndarray
    source: Path | None
    protocol: str = "holdout"
    groups: np.ndarray | None = None
    class_names: tuple[str, ...] = ()  # service_type sets: what each label is called in the catalog


def default_data_dir() -> Path:
    """SOCIAL311_SHARED_DATA, else ``../shared/data`` beside the working directory's repo."""
    env = os.environ.get("SOCIAL311_SHARED_DATA")
    if env:
        return Path(env)
    for base in (Path.cwd(), Path(__file__).resolve().parents[2]):
        candidate = base.parent / "shared" / "data"
        if candidate.is_dir():
            return candidate
    return Path.cwd().parent / "shared" / "data"


def read_csv(path: Path, text_column: str, label_column: str, name: str, task: str) -> LabelledSet:
    """Any CSV with a text and a label column; empty texts and missing labels are dropped."""
    frame = pd.read_csv(path)
    frame.columns = [c.strip() for c in frame.columns]
    frame = frame[frame[label_column].notna()].copy()
    frame[text_column] = frame[text_column].fillna("").astype(str)  # pandas 3 keeps NaN in str columns
    frame = frame[frame[text_column].str.strip() != ""]
    labels = frame[label_column]
    if labels.dtype == object or str(labels.dtype).startswith("str"):
        values = labels.astype(str).str.strip()
        classes = sorted(values.unique())
        if set(classes) <= {"0", "1"}:
            labels = values.astype(int)
        else:
            labels = values.map({c: i for i, c in enumerate(classes)})
    return LabelledSet(name, task, frame[text_column].tolist(), labels.to_numpy(dtype=int), path)


def mumbai_relevance(data: Path) -> LabelledSet | None:
    path = data / "tweets" / "mumbai_urban_issues.csv"
    return read_csv(path, "tweet", "complaint", "mumbai: complaint vs chatter", "relevance") if path.exists() else None


def mumbai_service_type(data: Path) -> LabelledSet | None:
    """Mumbai complaints only, typed into the 18 urban-issue categories (0 = none is dropped)."""
    path = data / "tweets" / "mumbai_urban_issues.csv"
    if not path.exists():
        return None
    full = read_csv(path, "tweet", "category", "mumbai: issue category", "service_type")
    keep = full.labels != 0
    counts = np.bincount(full.labels[keep])
    # A class needs a few examples on each side of the split to be scored at all.
    keep &= np.isin(full.labels, np.flatnonzero(counts >= 10))
    return LabelledSet(full.name, full.task, [t for t, k in zip(full.texts, keep) if k], full.labels[keep], path)


def acl_complaints(data: Path) -> LabelledSet | None:
    path = data / "tweets" / "complaints_acl2019.csv"
    if not path.exists():
        return None
    data = read_csv(path, "text", "complaint", "acl2019: complaint", "complaint")
    return LabelledSet(data.name, data.task, data.texts, data.labels, path, protocol="kfold10")


def crisislex(data: Path) -> LabelledSet | None:
    """CrisisLexT6 on-topic vs off-topic, an even seeded sample of each event."""
    folder = data / "tweets" / "crisislex_t6"
    files = sorted(folder.glob("*.csv")) if folder.is_dir() else []
    if not files:
        return None
    texts, labels, groups = [], [], []
    for path in files:
        frame = pd.read_csv(path)
        frame.columns = [c.strip() for c in frame.columns]  # the header has leading spaces
        frame = frame.sample(n=min(CRISISLEX_PER_EVENT, len(frame)), random_state=0)
        texts += frame["tweet"].fillna("").astype(str).tolist()
        labels += (frame["label"].astype(str).str.strip() == "on-topic").astype(int).tolist()
        groups += [path.name.split("-")[0]] * len(frame)
    # The cache key is the first file plus the text hash: the sample is fixed by the seed.
    return LabelledSet("crisislex t6: on-topic (1k/event)", "relevance", texts, np.array(labels), files[0],
                       protocol="by_group", groups=np.array(groups))


# PublicStuff's 422 free-text request titles, mapped to a common set of service types by the
# first matching pattern (checked in order; titles matching none are left out).
PUBLICSTUFF_TYPES: tuple[tuple[str, str], ...] = (
    ("pothole", r"pothole|hummock|outcrop"),
    ("street_light", r"street\s*light|streetlight|traffic light|lamp"),
    ("noise", r"noise|loud"),
    ("parking", r"parking|hydrant|driveway"),
    ("abandoned_vehicle", r"abandoned|derelict"),
    ("graffiti", r"graffiti"),
    ("sidewalk", r"sidewalk"),
    ("tree", r"\btree"),
    ("sanitation", r"litter|garbage|trash|rats?\b|sanitation|dumping"),
    ("health_hazard", r"health hazard"),
    ("dangerous_condition", r"dangerous condition|manhole"),
    ("parks", r"\bparks?\b"),
)


def publicstuff_service_type(data: Path) -> LabelledSet | None:
    """PublicStuff NYC reports with resident-written text, typed by their mapped request title.

    Boilerplate descriptions (the NYC 311 mirrors: any text seen 5 times or more) and repeats
    are dropped, so a split never sees one text on both sides; types with fewer than 10 reports
    are left out.
    """
    path = data / "nyc" / "publicstuff_nyc_2010_2018.csv"
    if not path.exists():
        return None
    frame = pd.read_csv(path)
    frame["Description"] = frame["Description"].fillna("").astype(str).str.strip()
    counts = frame["Description"].value_counts()
    frame = frame[frame["Description"].map(counts).lt(5) & frame["Description"].str.len().gt(15)]
    frame = frame.drop_duplicates("Description")
    title = frame["Title"].fillna("").astype(str).str.lower()
    kind = pd.Series(pd.NA, index=frame.index, dtype=object)
    for name, pattern in reversed(PUBLICSTUFF_TYPES):  # reversed: the first pattern in the list wins
        kind[title.str.contains(pattern, regex=True)] = name
    frame = frame.assign(kind=kind)[kind.notna()]
    frame = frame[frame["kind"].map(frame["kind"].value_counts()).ge(10)]
    names = sorted(frame["kind"].unique())
    labels = frame["kind"].map({n: i for i, n in enumerate(names)}).to_numpy(dtype=int)
    # Each type's most used request title is its name in the city's catalog ("Broken Streetlight").
    titles = frame.assign(title=frame["Title"].fillna("").astype(str).str.strip()).groupby("kind")["title"]
    catalog = tuple(titles.get_group(n).value_counts().index[0] for n in names)
    return LabelledSet(f"publicstuff nyc: {len(names)} service types", "service_type",
                       frame["Description"].tolist(), labels, path, class_names=catalog)


LOADERS = (mumbai_relevance, acl_complaints, crisislex, mumbai_service_type, publicstuff_service_type)
