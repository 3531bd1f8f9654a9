"""What the client sends: POST form fields, W3C datetimes and 90-day query windows.

Pure functions, so the encoding rules that broke real clients (multivalue attributes, Chicago's
location rule, Toronto's millisecond-intolerant dates) are tested without a server.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Literal

from social311.records import TicketRequest

MAX_DESCRIPTION = 4000
MAX_WINDOW = timedelta(days=90)

MultivalueEncoding = Literal["brackets", "repeat"]
LocationPolicy = Literal["latlong", "address", "both"]


class EncodeError(ValueError):
    """The request cannot be encoded for this endpoint (no usable location)."""


def w3c(moment: datetime) -> str:
    """``YYYY-MM-DDTHH:MM:SSZ`` in UTC, without fractional seconds (Toronto, uReport #285).

    Raises:
        ValueError: for a naive datetime, whose instant is unknown.
    """
    if moment.tzinfo is None:
        raise ValueError("datetime must carry a timezone")
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def truncate(text: str, limit: int = MAX_DESCRIPTION) -> str:
    """Cut ``text`` to at most ``limit`` characters, at a word boundary when one is near.

    The head of the description is kept: the ledger's marker and the resident's words come
    first, and an ellipsis shows the 311 desk that text was cut.
    """
    if len(text) <= limit:
        return text
    head = text[: limit - 1]
    space = head.rfind(" ")
    if space >= limit - 200:
        head = head[:space]
    return head.rstrip() + "…"


def _location(req: TicketRequest, policy: LocationPolicy) -> list[tuple[str, str]]:
    coords = (
        [("lat", repr(float(req.lat))), ("long", repr(float(req.lon)))]
        if req.lat is not None and req.lon is not None
        else []
    )
    address = [("address_string", req.address_string)] if req.address_string else []
    if policy == "both":
        chosen = coords + address
    elif policy == "address":
        chosen = address or coords
    else:
        chosen = coords or address
    if not chosen:
        raise EncodeError("no location: a ticket needs lat and long, or an address_string")
    return chosen


def attribute_fields(attributes: dict[str, str | list[str]], encoding: MultivalueEncoding) -> list[tuple[str, str]]:
    """Encode ``attribute[CODE]`` fields.

    Args:
        attributes: code -> value, or a list of values for a multivaluelist.
        encoding: ``"brackets"`` sends ``attribute[C][]=v`` per value (the spec);
            ``"repeat"`` sends ``attribute[C]=v`` per value (mySociety's open311-adapter).

    Returns:
        Ordered form fields, one per value.
    """
    fields: list[tuple[str, str]] = []
    for code, value in attributes.items():
        if isinstance(value, (list, tuple)):
            name = f"attribute[{code}][]" if encoding == "brackets" else f"attribute[{code}]"
            fields.extend((name, str(v)) for v in value)
        else:
            fields.append((f"attribute[{code}]", str(value)))
    return fields


def submit_fields(
    req: TicketRequest,
    *,
    jurisdiction_id: str | None = None,
    multivalue_encoding: MultivalueEncoding = "brackets",
    location_policy: LocationPolicy = "latlong",
) -> list[tuple[str, str]]:
    """The form fields of ``POST requests`` for one ticket, without the api_key.

    The api_key is added by the client at the last moment so that these fields can be logged
    and compared in tests without ever holding the secret.

    Raises:
        EncodeError: when the policy finds no location to send.
    """
    fields = [("service_code", req.service_code)]
    if jurisdiction_id:
        fields.append(("jurisdiction_id", jurisdiction_id))
    fields.extend(_location(req, location_policy))
    if req.description:
        fields.append(("description", truncate(req.description)))
    if req.media_url:
        fields.append(("media_url", req.media_url))
    fields.extend(attribute_fields(req.attributes, multivalue_encoding))
    return fields


def windows(start: datetime, end: datetime, span: timedelta = MAX_WINDOW) -> list[tuple[datetime, datetime]]:
    """Split ``[start, end]`` into consecutive windows no longer than ``span``.

    Windows share their boundary instant; callers de-duplicate by id, which is cheaper than
    risking a one-second gap that a request could fall into.
    """
    if end < start:
        raise ValueError("end is before start")
    out = []
    cursor = start
    while True:
        stop = min(cursor + span, end)
        out.append((cursor, stop))
        if stop >= end:
            return out
        cursor = stop
