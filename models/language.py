"""Which language a post is written in, and what the listening models do with one they cannot read.

The packaged encoder (all-MiniLM-L6-v2) was trained on English: a Spanish or Hindi report
gets an embedding, but its relevance score means little, and a low score would silently file it
as chatter. So each post's language is detected offline (``py3langid``, langid.py's model,
pinned in the lock file) and a post in a language the model cannot read that scores below the
relevance threshold goes to **review** instead of chatter (``route``). Short or unsure texts
(``und``) are treated as readable: a 3-word post is no evidence of another language.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

#: Languages the packaged encoder reads.
READABLE_LANGUAGES: tuple[str, ...] = ("en",)
#: Below this normalised probability, or with fewer letters than ``MIN_LETTERS``, the language is ``und``.
MIN_CONFIDENCE = 0.9
MIN_LETTERS = 15
UNDETERMINED = "und"
REPORT, CHATTER, REVIEW = "report", "chatter", "review"

# Links, handles, hashtags and numbers say nothing about the language and push langid towards English.
_NOISE = re.compile(r"https?://\S+|www\.\S+|[@#]\w+|\d+")


@dataclass(frozen=True)
class Language:
    """A detected language (ISO 639-1, or ``und``) and its normalised probability."""

    code: str
    confidence: float


@functools.lru_cache(maxsize=1)
def _identifier():
    # Imported here: the model loads in about a second, and only commands that detect need it.
    from py3langid.langid import MODEL_FILE, LanguageIdentifier

    return LanguageIdentifier.from_pickled_model(MODEL_FILE, norm_probs=True)


def detect_one(text: str) -> Language:
    """The language of one text (``und`` when too short or unsure)."""
    cleaned = _NOISE.sub(" ", text or "")
    if sum(ch.isalpha() for ch in cleaned) < MIN_LETTERS:
        return Language(UNDETERMINED, 0.0)
    code, probability = _identifier().classify(cleaned)
    probability = float(probability)
    return Language(code if probability >= MIN_CONFIDENCE else UNDETERMINED, round(probability, 4))


def detect(texts: Iterable[str]) -> list[Language]:
    """``detect_one`` for each text, in order."""
    return [detect_one(t) for t in texts]


def readable(language: Language, languages: Sequence[str] = READABLE_LANGUAGES) -> bool:
    """True when the model reads it: one of ``languages``, or undetermined."""
    return language.code == UNDETERMINED or language.code in languages


def route(relevance: float, language: Language, threshold: float,
          languages: Sequence[str] = READABLE_LANGUAGES) -> str:
    """``report`` at or above the threshold; below it ``chatter`` if the model can read the post, else ``review``."""
    if relevance >= threshold:
        return REPORT
    return CHATTER if readable(language, languages) else REVIEW
