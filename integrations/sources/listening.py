"""The city's listening plan: what the social-platform sources search for.

A city's residents rarely tag the city when they complain, so the plan names the words they do
use: keywords ("pothole", "streetlight out"), hashtags, accounts to follow, subreddits,
languages, and *place terms*: the ward, neighbourhood and street names of the city's own
gazetteer, derived automatically (:func:`derive_place_terms`) so that "huge hole on Wabash by
the L" is found without mentioning the city at all.

The plan lives in the city YAML under ``listening:``; each polling source turns it into its
platform's query syntax (``query_terms``) and may narrow it with its own settings.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from pydantic import BaseModel, ConfigDict, Field, field_validator

# Street-type words that are not place names on their own ("Street", "Ave").
_GENERIC = {
    "street", "st", "avenue", "ave", "road", "rd", "boulevard", "blvd", "drive", "dr", "lane", "ln",
    "place", "pl", "court", "ct", "way", "parkway", "pkwy", "terrace", "highway", "hwy", "north",
    "south", "east", "west", "n", "s", "e", "w", "ward", "park", "the", "of", "and",
}
_HANDLE = re.compile(r"^@?[\w.@-]{1,100}$")


class ListeningPlan(BaseModel):
    """What the city listens for on social platforms (``listening:`` in the city YAML)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    keywords: tuple[str, ...] = Field((), description="words or phrases residents use for problems "
                                      "(e.g. pothole, streetlight out, flooded underpass)")
    hashtags: tuple[str, ...] = Field((), description="hashtags without '#' (e.g. the city's, the 311's)")
    accounts: tuple[str, ...] = Field((), description="accounts whose mentions are read (the city's own handles)")
    subreddits: tuple[str, ...] = Field((), description="Reddit only: the city's subreddits, without 'r/'")
    languages: tuple[str, ...] = Field((), description="ISO 639-1 codes kept (empty = every language)")
    place_terms: tuple[str, ...] = Field((), description="extra place names; the gazetteer's are added "
                                         "when derive_place_terms is on")
    derive_place_terms: bool = Field(True, description="add ward, neighbourhood and street names of the "
                                     "city's gazetteer to place_terms")
    max_place_terms: int = Field(200, ge=0, le=5000, description="cap on derived place terms (platform "
                                 "queries have length limits; the most frequent names are kept)")
    backfill_hours: float = Field(72, gt=0, le=24 * 30, description="first run: how far back each source reads")

    @field_validator("hashtags", mode="after")
    @classmethod
    def _strip_hash(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        tags = tuple(t.strip().lstrip("#") for t in value)
        bad = [t for t in tags if not t or not re.fullmatch(r"\w+", t)]
        if bad:
            raise ValueError(f"hashtags must be one word each, got {bad}")
        return tags

    @field_validator("subreddits", mode="after")
    @classmethod
    def _strip_r(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        subs = tuple(re.sub(r"^/?r/", "", s.strip()) for s in value)
        bad = [s for s in subs if not re.fullmatch(r"\w{2,21}", s)]
        if bad:
            raise ValueError(f"subreddit names are 2-21 letters, digits or _, got {bad}")
        return subs

    @field_validator("accounts", mode="after")
    @classmethod
    def _handles(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        bad = [a for a in value if not _HANDLE.match(a.strip())]
        if bad:
            raise ValueError(f"accounts must be handles, got {bad}")
        return tuple(a.strip() for a in value)

    @field_validator("languages", mode="after")
    @classmethod
    def _iso(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        bad = [code for code in value if not re.fullmatch(r"[a-z]{2,3}", code)]
        if bad:
            raise ValueError(f"languages are ISO 639 codes like 'en', got {bad}")
        return value

    def with_places(self, gazetteer_names: Iterable[str]) -> ListeningPlan:
        """This plan with the gazetteer's place names added (when ``derive_place_terms``)."""
        if not self.derive_place_terms:
            return self
        derived = derive_place_terms(gazetteer_names, limit=self.max_place_terms)
        merged = list(dict.fromkeys([*self.place_terms, *derived]))
        return self.model_copy(update={"place_terms": tuple(merged)})

    def query_terms(self) -> list[str]:
        """Keywords, then ``#hashtags``, then place terms, without duplicates (any case)."""
        seen: dict[str, str] = {}
        for term in [*self.keywords, *(f"#{t}" for t in self.hashtags), *self.place_terms]:
            seen.setdefault(term.lower(), term)
        return list(seen.values())

    def keeps_language(self, lang: str | None) -> bool:
        """True when a post in ``lang`` is wanted (unknown language: always kept)."""
        return not self.languages or lang is None or lang.split("-")[0].lower() in self.languages


def derive_place_terms(names: Iterable[str], *, limit: int = 200) -> list[str]:
    """Distinctive place names from the gazetteer, most frequent first, at most ``limit``.

    "N WABASH AVE" and "S Wabash Ave" both become "Wabash Ave"; bare street types, directions
    and names shorter than four letters ("Oak" is fine, "E" is not) are dropped, because as
    search terms they would match everything.
    """
    counts: dict[str, int] = {}
    display: dict[str, str] = {}
    for raw in names:
        if not raw or not raw.strip():
            continue
        words = [w for w in re.split(r"\s+", raw.strip()) if w]
        while words and words[0].lower().rstrip(".") in {"n", "s", "e", "w", "north", "south", "east", "west"}:
            words = words[1:]
        if not words or all(w.lower().rstrip(".") in _GENERIC or w.isdigit() for w in words):
            continue
        name = " ".join(w if not w.isupper() else w.capitalize() for w in words)
        if len(re.sub(r"\W", "", name)) < 3:
            continue
        key = name.lower()
        counts[key] = counts.get(key, 0) + 1
        display.setdefault(key, name)
    ranked = sorted(counts, key=lambda k: (-counts[k], k))
    return [display[k] for k in ranked[:limit]]
