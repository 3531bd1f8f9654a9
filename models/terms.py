"""Distinctive words of groups of texts, by class-based TF-IDF (c-TF-IDF, as in BERTopic).

Each group's texts are joined into one document; a word scores high when it is frequent in
that group and rare across all groups: ``tf(t, c) * log(1 + A / f(t))`` with ``tf`` the word's
share of the group's words, ``A`` the mean number of words per group and ``f(t)`` the word's
count over all groups.
"""

from __future__ import annotations

import math
import re
from collections import Counter

from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

# Social-media filler that says nothing about the problem.
_EXTRA_STOP = frozenset({"amp", "rt", "lol", "pls", "plz", "just", "like", "im", "dont", "got", "get", "user", "link"})
_URL_OR_HANDLE = re.compile(r"https?://\S+|@\w+")
_WORD = re.compile(r"[a-z][a-z']+")


def words(text: str) -> list[str]:
    """Lower-case content words of ``text``: no URLs, handles, numbers or stop words."""
    text = _URL_OR_HANDLE.sub(" ", text.lower())
    found = (w.replace("'", "") for w in _WORD.findall(text))
    return [w for w in found if len(w) > 2 and w not in ENGLISH_STOP_WORDS and w not in _EXTRA_STOP]


def distinctive_terms(documents: list[str], top_k: int = 8) -> list[list[str]]:
    """The ``top_k`` most distinctive words of each document against all the others.

    Args:
        documents: one joined text per group (class).
        top_k: words returned per group.

    Returns:
        One list per document, best first; ties broken alphabetically so output is stable.
    """
    counts = [Counter(words(doc)) for doc in documents]
    totals: Counter[str] = Counter()
    for c in counts:
        totals.update(c)
    mean_words = sum(sum(c.values()) for c in counts) / max(len(counts), 1)
    result = []
    for c in counts:
        size = sum(c.values()) or 1
        scores = {t: (n / size) * math.log(1 + mean_words / totals[t]) for t, n in c.items()}
        result.append([t for t, _ in sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))[:top_k]])
    return result
