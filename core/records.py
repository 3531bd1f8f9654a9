"""Record types shared from plugin to warehouse: posts, wards, places, services, tickets.

Every boundary of the system speaks these frozen pydantic models, so a source plugin, the ML
models and the ticketing plugin agree on one shape. Coordinates are WGS84 (EPSG:4326) degrees;
datetimes are timezone-aware UTC.
"""

from __future__ import annotations

from datetime import date, datetime, timezone
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


class Record(BaseModel):
    """Base of all boundary records: immutable, unknown fields rejected."""

    model_config = ConfigDict(frozen=True, extra="forbid")


def _as_utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError("datetime must carry a timezone")
    return value.astimezone(timezone.utc)


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
    author_hash: str | None = None
    lat: float | None = Field(default=None, ge=-90, le=90)
    lon: float | None = Field(default=None, ge=-180, le=180)
    place_name: str | None = None
    place_bbox: tuple[float, float, float, float] | None = None  # (min_lon, min_lat, max_lon, max_lat)
    repost_of: str | None = None  # post_id of the original when this is a repost / retweet / quote
    reply_to: str | None = None
    mentions_city: bool = False
    lang: str | None = None
    url: str | None = None

    _utc = field_validator("created_at")(_as_utc)

    @model_validator(mode="after")
    def _coordinates_come_in_pairs(self) -> Post:
        if (self.lat is None) != (self.lon is None):
            raise ValueError("lat and lon must both be given or both be absent")
        if self.lat == 0 and self.lon == 0:
            raise ValueError("(0, 0) is a null-island placeholder, not a location")
        return self


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
