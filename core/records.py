"""Record types shared from plugin to warehouse: posts, wards, places, services, tickets.

Every boundary of the system speaks these frozen pydantic models, so a source plugin, the ML
models and the ticketing plugin agree on one shape. Coordinates are WGS84 (EPSG:4326) degrees;
datetimes are timezone-aware UTC.
"""

from __future__ import annotations

import math
import re
import unicodedata
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


class Record(BaseModel):
    """Base of all boundary records: immutable, unknown fields rejected."""

    model_config = ConfigDict(frozen=True, extra="forbid")


def _as_utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError("datetime must carry a timezone")
    try:
        return value.astimezone(timezone.utc)
    except OverflowError:
        # 0001-01-01T00:30+01:00 or 9999-12-31T23:30-01:00: no UTC datetime exists for it.
        raise ValueError(f"date out of range: {value.isoformat()} has no UTC equivalent") from None


# Invisible characters that change how text reads or matches without being seen: zero-width
# space/no-break, word joiner, BOM, Mongolian vowel separator, and every bidi embedding,
# override and isolate (the "Trojan Source" set). ZWJ/ZWNJ (U+200C/U+200D) stay: emoji and
# Indic/Persian words need them. LRM/RLM (U+200E/U+200F) and ALM (U+061C) go: they only steer display.
_INVISIBLE = re.compile("[\u200b\u2060\ufeff\u180e\u200e\u200f\u061c\u202a-\u202e\u2066-\u2069]")
# C0 and C1 control characters except tab and newline: they break terminals and CSV exports.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
# Line/paragraph separators read as line breaks everywhere else; one newline is what they mean.
_SEPARATORS = re.compile("[\u2028\u2029]")


def normalise_text(text: str) -> str:
    """NFC text without control or invisible characters, trimmed (what every stored post holds)."""
    text = unicodedata.normalize("NFC", text)
    text = _SEPARATORS.sub("\n", text)
    return _INVISIBLE.sub("", _CONTROL.sub("", text)).strip()


def finite_numbers(value: object) -> object:
    """``value`` unchanged when it is a list/tuple of finite numbers (each checked by ``finite_number``)."""
    if isinstance(value, (list, tuple)):
        for item in value:
            finite_number(item)
    return value


def finite_number(value: object) -> object:
    """``value`` unchanged unless it is a boolean or a non-finite float (then ValueError)."""
    # JSON `true` is not 1.0, and NaN/Infinity pass every range check by failing none of them.
    if isinstance(value, bool):
        raise ValueError("must be a number, not a boolean")
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError("must be a finite number")
    return value


#: URL schemes a post's link may have; ``javascript:``, ``data:``, ``file:`` and the rest are refused.
URL_SCHEMES = ("http", "https")
_URL_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*):")


class Post(Record):
    """One public post, already pseudonymised by its source plugin.

    ``post_id`` is ``"<source instance>:<native id>"`` and unique across sources. The author's
    handle never travels: ``author_hash`` is a keyed hash that lets reposts by the same person
    be recognised without storing who they are.
    """

    post_id: str = Field(min_length=3, max_length=200)
    source: str = Field(min_length=1, max_length=100)
    native_id: str = Field(min_length=1, max_length=150)
    text: str = Field(min_length=1, max_length=10_000)
    created_at: datetime
    author_hash: str | None = Field(default=None, max_length=128)
    lat: float | None = Field(default=None, ge=-90, le=90)
    lon: float | None = Field(default=None, ge=-180, le=180)
    place_name: str | None = Field(default=None, max_length=300)
    place_bbox: tuple[float, float, float, float] | None = None  # (min_lon, min_lat, max_lon, max_lat)
    repost_of: str | None = Field(default=None, max_length=200)  # post_id of the original (repost / quote)
    reply_to: str | None = Field(default=None, max_length=200)
    mentions_city: bool = False
    lang: str | None = Field(default=None, max_length=35)  # a BCP 47 tag; the longest registered fit in 35
    url: str | None = Field(default=None, max_length=2048)

    _utc = field_validator("created_at")(_as_utc)

    @field_validator("lat", "lon", mode="before")
    @classmethod
    def _coordinate_is_a_number(cls, value: object) -> object:
        return finite_number(value)

    @field_validator("place_bbox", mode="before")
    @classmethod
    def _bbox_numbers(cls, value: object) -> object:
        return finite_numbers(value)

    @field_validator("text", mode="before")
    @classmethod
    def _normalised_text(cls, value: object) -> object:
        if isinstance(value, str):
            value = normalise_text(value)
            if not value:
                raise ValueError("empty after removing whitespace, control and invisible characters")
        return value

    @field_validator("place_name", mode="before")
    @classmethod
    def _normalised_place_name(cls, value: object) -> object:
        return (normalise_text(value) or None) if isinstance(value, str) else value

    @field_validator("lang")
    @classmethod
    def _lang_tag(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"[A-Za-z]{1,8}(?:[-_][A-Za-z0-9]{1,8})*", value):
            raise ValueError("not a language tag (BCP 47, e.g. 'en' or 'pt-BR')")
        return value

    @field_validator("url")
    @classmethod
    def _web_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        value = normalise_text(value)
        match = _URL_SCHEME.match(value)
        if not match or match.group(1).lower() not in URL_SCHEMES:
            raise ValueError(f"scheme refused: only {'/'.join(URL_SCHEMES)} links are kept")
        return value

    @model_validator(mode="after")
    def _coordinates_come_in_pairs(self) -> Post:
        if (self.lat is None) != (self.lon is None):
            raise ValueError("lat and lon must both be given or both be absent")
        if self.lat == 0 and self.lon == 0:
            raise ValueError("(0, 0) is a null-island placeholder, not a location")
        if self.place_bbox is not None:
            min_lon, min_lat, max_lon, max_lat = self.place_bbox
            if not (-180 <= min_lon <= max_lon <= 180 and -90 <= min_lat <= max_lat <= 90):
                raise ValueError("place_bbox must be (min_lon, min_lat, max_lon, max_lat) within WGS84 "
                                 "with min <= max")
        return self


@dataclass(frozen=True)
class PostLimits:
    """City-level plausibility rules a valid :class:`Post` must also meet to be stored.

    Attributes:
        earliest: posts dated before this are refused (default: 2006, before any platform we read).
        future_tolerance: how far past now a post may be dated (clock skew between servers).
        city_bbox: (min_lon, min_lat, max_lon, max_lat); a point outside it whose swapped
            axes fall inside is refused as a swapped-axis export, never stored misplaced.
    """

    earliest: datetime = datetime(2006, 1, 1, tzinfo=timezone.utc)
    future_tolerance: timedelta = timedelta(days=1)
    city_bbox: tuple[float, float, float, float] | None = None


def implausible(post: Post, limits: PostLimits, *, now: datetime | None = None) -> str | None:
    """Why ``post`` cannot be stored as it is (a quarantine reason), or None when it can."""
    now = now or datetime.now(timezone.utc)
    if post.created_at < limits.earliest:
        return f"created_at: {post.created_at.isoformat()} is before {limits.earliest.date().isoformat()} (earliest allowed)"
    if post.created_at > now + limits.future_tolerance:
        return (f"created_at: {post.created_at.isoformat()} is in the future "
                f"(more than {limits.future_tolerance} after {now.replace(microsecond=0).isoformat()})")
    if limits.city_bbox and post.lat is not None and post.lon is not None:
        min_lon, min_lat, max_lon, max_lat = limits.city_bbox

        def inside(lat: float, lon: float) -> bool:
            return min_lat <= lat <= max_lat and min_lon <= lon <= max_lon

        if not inside(post.lat, post.lon) and inside(post.lon, post.lat):
            return (f"lat/lon swapped: ({post.lat}, {post.lon}) is outside the city but "
                    f"({post.lon}, {post.lat}) is inside it")
    return None


class Reject(Record):
    """An input record that could not become a domain record, kept with its reason."""

    source: str
    record_ref: str  # where it came from, e.g. "drop/posts-001.jsonl:17"
    reason: str
    raw_excerpt: str = ""  # the first characters of the raw record, personal data masked


class Ward(Record):
    """One ward (council district) polygon in EPSG:4326, as WKT."""

    ward_id: str = Field(min_length=1)
    name: str
    geometry_wkt: str


class Repair(Record):
    """A boundary feature that was loaded after a fix, and what was fixed (kept for the GIS team)."""

    record_ref: str
    ward_id: str
    what: str  # e.g. "made valid: self-intersection", "axes swapped (lat, lon) -> (lon, lat)"


class WardSet(Record):
    """A versioned boundary set: the wards in force from ``valid_from`` until ``valid_to``."""

    version: str
    valid_from: date | None = None
    valid_to: date | None = None
    wards: tuple[Ward, ...]
    rejects: tuple[Reject, ...] = ()
    repairs: tuple[Repair, ...] = ()
    source_crs: str | None = None  # the CRS the source declared (or was configured with), before EPSG:4326


PlaceKind = Literal["intersection", "street", "landmark", "address"]


class Place(Record):
    """A named place of the gazetteer: a point with the names residents use for it."""

    place_id: str
    name: str
    kind: PlaceKind
    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)
    aliases: tuple[str, ...] = ()
    streets: tuple[str, ...] = ()  # for intersections: the crossing street names
    area: str | None = None  # borough / district the place lies in: resolves a name found in two areas


class StreetSegment(Record):
    """One street centerline segment of the city's GIS, in EPSG:4326, with address ranges if known."""

    segment_id: str
    name: str
    geometry_wkt: str  # LineString / MultiLineString
    area: str | None = None
    from_address: int | None = None  # house number at the segment's first vertex
    to_address: int | None = None  # house number at its last vertex


ServiceType = Literal["realtime", "batch", "blackbox"]


class Service(Record):
    """One Open311 service (request type) of the city's catalog."""

    service_code: str
    service_name: str
    description: str = ""
    metadata: bool = False
    type: ServiceType = "realtime"
    keywords: tuple[str, ...] = ()
    group: str = ""


class TicketRequest(Record):
    """What social311 asks the city's 311 system to open for one incident."""

    service_code: str
    description: str = Field(max_length=4000)
    lat: float | None = None
    lon: float | None = None
    address_string: str | None = None
    attributes: dict[str, str | list[str]] = Field(default_factory=dict)
    media_url: str | None = None


class SubmitResult(Record):
    """The server's answer to a submit: an id, a token to poll, or neither (blackbox)."""

    service_request_id: str | None = None
    token: str | None = None
    service_notice: str | None = None


class ServiceRequest(Record):
    """A service request as the 311 system reports it (GET requests)."""

    service_request_id: str
    status: str
    service_code: str | None = None
    service_name: str | None = None
    description: str | None = None
    status_notes: str | None = None
    agency_responsible: str | None = None
    requested_datetime: datetime | None = None
    updated_datetime: datetime | None = None
    lat: float | None = None
    lon: float | None = None
    address: str | None = None
