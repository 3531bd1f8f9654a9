"""Street-name normalisation shared by the gazetteer and the text it searches.

Residents write "State St", "state", "N. State Street"; a city's street file says
"N STATE ST". Both sides go through the same canonical tokens (``st`` and ``street`` become
``street``, ``n`` and ``north`` become ``north``, ``&`` becomes ``and``), and a street name is
split into its direction prefix, its core ("state") and its type suffix ("street"), so a
mention can match on the core and use the prefix and suffix, when given, to disambiguate.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

DIRECTIONS = {"n": "north", "north": "north", "s": "south", "south": "south",
              "e": "east", "east": "east", "w": "west", "west": "west"}
STREET_TYPES = {
    "st": "street", "street": "street", "str": "street", "ave": "avenue", "av": "avenue",
    "avenue": "avenue", "blvd": "boulevard", "boulevard": "boulevard", "rd": "road", "road": "road",
    "dr": "drive", "drive": "drive", "pkwy": "parkway", "parkway": "parkway", "pl": "place",
    "place": "place", "ct": "court", "court": "court", "ln": "lane", "lane": "lane",
    "hwy": "highway", "highway": "highway", "ter": "terrace", "terrace": "terrace",
    "sq": "square", "square": "square", "expy": "expressway", "expressway": "expressway",
    "way": "way", "cir": "circle", "circle": "circle", "plz": "plaza", "plaza": "plaza",
}
# Tokens that join two street names into an intersection ("&" and "/" are read as "and").
CONNECTORS = frozenset({"and", "at", "x"})

# URLs and @handles are skipped; words keep their character span in the original text.
_TOKEN = re.compile(r"(?P<skip>https?://\S+|@\w+)|(?P<word>[A-Za-z0-9]+(?:'[A-Za-z]+)?)|(?P<sym>[&/@+])")


@dataclass(frozen=True)
class Token:
    """One canonical token and its character span in the original text."""

    value: str
    start: int
    end: int


def ordinal(number: int) -> str:
    """``3`` -> ``"3rd"``, ``12`` -> ``"12th"``, ``21`` -> ``"21st"``."""
    suffix = "th" if 10 <= number % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(number % 10, "th")
    return f"{number}{suffix}"


ORDINAL_WORDS = {w: ordinal(n) for n, w in enumerate(
    ("first second third fourth fifth sixth seventh eighth ninth tenth eleventh twelfth thirteenth fourteenth "
     "fifteenth sixteenth seventeenth eighteenth nineteenth twentieth").split(), start=1)}
# "6", "06", "6th", "06TH", "006th": one numbered street, whatever the padding or suffix.
_NUMBERED = re.compile(r"0*([1-9][0-9]{0,2})(st|nd|rd|th)?")


def canonical(word: str) -> str:
    """The canonical form of one lower-cased word (abbreviations expanded, numbers as ordinals).

    New York writes "3 Ave" and "E 12 St" where its street layer says "3rd Avenue" and
    "12th Street": bare numbers become ordinals so both meet. Layers that zero-pad ("06TH AVE")
    and texts that spell the number ("Sixth Ave") meet there too.
    """
    word = word.replace("'", "")
    numbered = _NUMBERED.fullmatch(word)
    if numbered and (numbered.group(2) or word.isdigit()) and (word.isdigit() <= (len(word) <= 3)):
        return ordinal(int(numbered.group(1)))
    return ORDINAL_WORDS.get(word) or DIRECTIONS.get(word) or STREET_TYPES.get(word) or word


def tokenize(text: str) -> list[Token]:
    """Canonical tokens of free text, with spans into ``text``."""
    tokens = []
    for m in _TOKEN.finditer(text):
        if m.group("skip"):
            continue
        if m.group("sym"):
            value = "at" if m.group("sym") == "@" else "and"
        else:
            value = canonical(m.group("word").lower())
        tokens.append(Token(value, m.start(), m.end()))
    return tokens


@dataclass(frozen=True)
class StreetName:
    """A street name split into direction prefix, core words and type suffix."""

    direction: str | None
    core: tuple[str, ...]
    street_type: str | None


@lru_cache(maxsize=262144)
def parse_street(name: str) -> StreetName:
    """Split a street name such as ``"N STATE ST"`` into ``(north, ("state",), street)``.

    Cached: a street layer repeats each name on every one of its segments.
    """
    words = [t.value for t in tokenize(name)]
    direction = street_type = None
    if len(words) > 1 and words[0] in DIRECTIONS.values():
        direction, words = words[0], words[1:]
    if len(words) > 1 and words[-1] in STREET_TYPES.values():
        street_type, words = words[-1], words[:-1]
    return StreetName(direction, tuple(words), street_type)


def split_intersection(name: str) -> tuple[str, ...] | None:
    """The street names of an intersection name like ``"N STATE ST & W MADISON ST"``.

    Junction layers name 3 to 6 streets at one point ("A / B / C"): all come back.
    """
    parts = re.split(r"\s*(?:&|/|;|\band\b|\bat\b)\s*", name, flags=re.IGNORECASE)
    parts = [p for p in parts if p.strip()]
    return tuple(parts) if len(parts) >= 2 else None
