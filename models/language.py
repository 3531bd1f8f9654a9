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


@dataclass(frozen=True)
class Routed:
    """A post below the relevance threshold that goes to review instead of chatter, and why."""

    index: int
    language: Language
    reason: str


def platform_language(tag: str | None) -> Language | None:
    """The platform's own language tag (``en``, ``en-GB``, ``es``) as a sure ``Language``; None when absent."""
    if not tag or not str(tag).strip() or str(tag).strip().lower() in ("und", "zxx", "unknown"):
        return None
    return Language(str(tag).strip().lower().split("-")[0].split("_")[0], 1.0)


def route_unreadable(texts: Sequence[str], relevance: Sequence[float], threshold: float,
                     tags: Sequence[str | None] | None = None,
                     languages: Sequence[str] = READABLE_LANGUAGES) -> list[Routed]:
    """The posts below ``threshold`` that the model cannot read: each goes to review, with its reason.

    Only posts below the threshold are looked at (a report is a report in any language), and a
    platform's language tag is trusted when present, so detection (a few ms a post) runs only on
    untagged low-scoring posts.
    """
    out = []
    for i, (text, score) in enumerate(zip(texts, relevance)):
        if score >= threshold:
            continue
        language = (platform_language(tags[i]) if tags is not None else None) or detect_one(text)
        if route(float(score), language, threshold, languages) == REVIEW:
            how = "platform tag" if tags is not None and platform_language(tags[i]) else f"detected, p={language.confidence:.2f}"
            out.append(Routed(i, language, f"language {language.code} ({how}) is not read by the relevance model "
                                           f"(reads {', '.join(languages)}); relevance {score:.2f} not trusted"))
    return out
