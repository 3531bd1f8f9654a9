"""Decoded Open311 items into typed records, tolerant of what real servers send.

Real servers send booleans as ``"true"`` strings, ids as numbers, ``""`` for null, ``lat``/
``long`` missing or 0, fractional seconds and non-UTC offsets (OPEN311.md §1.7). Each helper
here normalises one of those; a record that lacks its identity is skipped, not fatal.
"""

from __future__ import annotations

from datetime import datetime, timezone, tzinfo
from typing import Any

from social311.integrations.ticketing.client.models import (
    Attribute,
    AttributeValue,
    Discovery,
    DiscoveryEndpoint,
    ServiceDefinition,
)
from social311.records import Service, ServiceRequest, SubmitResult

_TRUE = {"true", "1", "yes", "t", "y"}
_FALSE = {"false", "0", "no", "f", "n", ""}
_TYPES = {"realtime", "batch", "blackbox"}
_DATATYPES = {"string", "number", "datetime", "text", "singlevaluelist", "multivaluelist"}


def text(value: Any) -> str | None:
    """A string, with ``""``/whitespace/None as None; numbers become their string form."""
    if value is None or isinstance(value, (dict, list)):
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    out = str(value)
    return out if out.strip() else None


def boolean(value: Any, default: bool = False) -> bool:
    """``True``/``"true"``/``1`` -> True, ``"false"``/``""``/None -> the default or False."""
    if isinstance(value, bool):
        return value
    if value is None:
        return default
    lowered = str(value).strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False if lowered else default
    return default


def number(value: Any) -> float | None:
    """A float, or None for empty or non-numeric values."""
    if value is None or isinstance(value, bool):
        return None
    try:
        return float(str(value).strip())
    except ValueError:
        return None


def moment(value: Any, default_tz: tzinfo | None = None) -> datetime | None:
    """A W3C/ISO 8601 datetime string as an aware UTC datetime.

    Args:
        value: e.g. ``2026-11-22T05:03:43.753076+02:00`` or ``2010-01-01T00:00:00Z``.
        default_tz: the zone to assume for a datetime without offset (spec-breaking servers);
            None drops such a value rather than guess a wrong instant.

    Returns:
        The UTC datetime, or None when empty, unparsable or naive without ``default_tz``.
    """
    raw = text(value)
    if raw is None:
        return None
    try:
        parsed = datetime.fromisoformat(raw.strip())
    except ValueError:
        return None
    if parsed.tzinfo is None:
        if default_tz is None:
            return None
        parsed = parsed.replace(tzinfo=default_tz)
    return parsed.astimezone(timezone.utc)


def keywords(value: Any) -> tuple[str, ...]:
    """A comma-separated keyword string (or a list) as a tuple of trimmed keywords."""
    if isinstance(value, list):
        parts = [text(v) or "" for v in value]
    else:
        parts = (text(value) or "").split(",")
    return tuple(p.strip() for p in parts if p.strip())


def service(item: dict[str, Any]) -> Service | None:
    """One ``service`` item, or None when it has no ``service_code``."""
    code = text(item.get("service_code"))
    if code is None:
        return None
    kind = (text(item.get("type")) or "realtime").strip().lower()
    return Service(
        service_code=code,
        service_name=text(item.get("service_name")) or code,
        description=text(item.get("description")) or "",
        metadata=boolean(item.get("metadata")),
        type=kind if kind in _TYPES else "realtime",
        keywords=keywords(item.get("keywords")),
        group=text(item.get("group")) or "",
    )


def service_request(item: dict[str, Any], default_tz: tzinfo | None = None) -> ServiceRequest | None:
    """One ``request`` item, or None when it has no ``service_request_id`` yet (batch cities)."""
    request_id = text(item.get("service_request_id"))
    if request_id is None:
        return None
    lat, lon = number(item.get("lat")), number(item.get("long", item.get("lon")))
    if lat is None or lon is None or (lat == 0 and lon == 0):
        lat = lon = None  # 0,0 is how servers say "unknown"; a half pair is useless
    return ServiceRequest(
        service_request_id=request_id.strip(),
        status=(text(item.get("status")) or "unknown").strip().lower(),
        service_code=text(item.get("service_code")),
        service_name=text(item.get("service_name")),
        description=text(item.get("description")),
        status_notes=text(item.get("status_notes")),
        agency_responsible=text(item.get("agency_responsible")),
        requested_datetime=moment(item.get("requested_datetime"), default_tz),
        updated_datetime=moment(item.get("updated_datetime"), default_tz),
        lat=lat if lat is not None and -90 <= lat <= 90 else None,
        lon=lon if lon is not None and -180 <= lon <= 180 else None,
        address=text(item.get("address", item.get("address_string"))),
    )


def submit_result(items: list[Any]) -> SubmitResult:
    """The first item of a POST answer; blackbox services may return neither id nor token."""
    first = next((i for i in items if isinstance(i, dict)), {})
    return SubmitResult(
        service_request_id=text(first.get("service_request_id")),
        token=text(first.get("token")),
        service_notice=text(first.get("service_notice")),
    )


def _attribute(item: dict[str, Any]) -> Attribute:
    values = item.get("values") or []
    if isinstance(values, dict):  # a lone <value> under an unlisted parent
        values = [values]
    datatype = (text(item.get("datatype")) or "string").strip().lower()
    order = number(item.get("order"))
    return Attribute(
        code=text(item.get("code")) or "",
        datatype=datatype if datatype in _DATATYPES else "string",
        variable=boolean(item.get("variable"), default=True),
        required=boolean(item.get("required")),
        order=int(order) if order is not None else None,
        description=text(item.get("description")) or "",
        datatype_description=text(item.get("datatype_description")),
        values=tuple(
            AttributeValue(key=text(v.get("key")) or "", name=text(v.get("name")) or "")
            for v in values
            if isinstance(v, dict) and text(v.get("key")) is not None
        ),
    )


def service_definition(value: Any, code: str) -> ServiceDefinition:
    """A ``service_definition``; accepts old servers that put ``attribute`` under the root."""
    if isinstance(value, list):  # JSON servers that wrap the definition in a list
        value = next((v for v in value if isinstance(v, dict)), {})
    value = value or {}
    raw = value.get("attributes")
    if raw is None:
        raw = value.get("attribute")
    if isinstance(raw, dict):
        raw = [raw]
    attributes = [_attribute(a) for a in raw or [] if isinstance(a, dict)]
    # Order is not trusted to be unique (the wiki's own example reuses 1): stable sort.
    attributes.sort(key=lambda a: a.order if a.order is not None else 1 << 30)
    return ServiceDefinition(service_code=text(value.get("service_code")) or code, attributes=tuple(attributes))


def discovery(value: Any) -> Discovery:
    """A service discovery document."""
    if isinstance(value, list):
        value = next((v for v in value if isinstance(v, dict)), {})
    value = value or {}
    endpoints = value.get("endpoints") or []
    if isinstance(endpoints, dict):
        endpoints = endpoints.get("endpoint", [endpoints])
        endpoints = endpoints if isinstance(endpoints, list) else [endpoints]
    parsed = []
    for e in endpoints:
        if not isinstance(e, dict) or text(e.get("url")) is None:
            continue
        formats = e.get("formats") or []
        formats = [formats] if isinstance(formats, str) else formats
        parsed.append(
            DiscoveryEndpoint(
                specification=text(e.get("specification")) or "",
                url=text(e.get("url")) or "",
                changeset=text(e.get("changeset")),
                type=text(e.get("type")) or "production",
                formats=tuple(t for t in (text(f) for f in formats) if t),
            )
        )
    return Discovery(
        changeset=text(value.get("changeset")),
        contact=text(value.get("contact")),
        key_service=text(value.get("key_service")),
        endpoints=tuple(parsed),
    )
