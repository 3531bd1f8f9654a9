"""Strict checks of the sandbox: POST form fields and GET requests filters (OPEN311.md §1.8).

Each check fails with :class:`HttpError` carrying the spec's status and every problem found,
so a client sees all that is wrong at once, as open311-adapter reports it.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from social311.integrations.ticketing.sandbox.catalog import CatalogAttribute, CatalogService

MAX_DESCRIPTION = 4000
MAX_SPAN_S = 90 * 86400
_ATTRIBUTE = re.compile(r"^attribute\[([^\]]+)\](\[\])?$")
_CONTACT = ("email", "device_id", "account_id", "first_name", "last_name", "phone")


class HttpError(Exception):
    """An answer with an ``errors`` body: ``status`` and one message per problem."""

    def __init__(self, status: int, *messages: str, html: bool = False) -> None:
        super().__init__(f"{status}: {'; '.join(messages)}")
        self.status = status
        self.messages = list(messages)
        self.html = html  # answered as a framework's HTML page, as unimplemented routes are


def first(fields: list[tuple[str, str]], name: str) -> str | None:
    """The first non-empty value of a form or query field (empty counts as absent)."""
    return next((v for k, v in fields if k == name and v != ""), None)


def w3c_datetime(value: str, name: str) -> datetime:
    """Parse a W3C datetime whose timezone is mandatory.

    Raises:
        HttpError: 400 when it does not parse or has no timezone.
    """
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise HttpError(400, f"{name} is not a W3C datetime: {value!r}") from None
    if parsed.tzinfo is None:
        raise HttpError(400, f"{name} must carry a timezone (Z or +HH:MM): {value!r}")
    return parsed


def collect_attributes(fields: list[tuple[str, str]]) -> dict[str, list[str]]:
    """``attribute[C]=v`` and ``attribute[C][]=v`` fields as code -> values (both encodings)."""
    out: dict[str, list[str]] = {}
    for key, value in fields:
        match = _ATTRIBUTE.match(key)
        if match and value != "":
            out.setdefault(match.group(1), []).append(value)
    return out


def _check_attribute(attr: CatalogAttribute, values: list[str]) -> str | None:
    if attr.datatype in ("singlevaluelist", "multivaluelist"):
        keys = {v.key for v in attr.values}
        if attr.datatype == "singlevaluelist" and len(values) > 1:
            return f"attribute {attr.code} takes one value"
        bad = [v for v in values if v not in keys]
        return f"attribute {attr.code}: {bad[0]!r} is not one of {sorted(keys)}" if bad else None
    if len(values) > 1:
        return f"attribute {attr.code} takes one value"
    value = values[0]
    if attr.datatype == "number":
        try:
            float(value)
        except ValueError:
            return f"attribute {attr.code} must be a number"
    elif attr.datatype == "datetime":
        try:
            w3c_datetime(value, f"attribute {attr.code}")
        except HttpError as exc:
            return exc.messages[0]
    elif attr.datatype == "string" and ("\n" in value or "\r" in value):
        return f"attribute {attr.code} is one line (string); use no line breaks"
    return None


def _coordinate(value: str | None, name: str, limit: float, problems: list[str]) -> float | None:
    if value is None:
        return None
    try:
        number = float(value)
    except ValueError:
        problems.append(f"{name} must be a number")
        return None
    if not -limit <= number <= limit:
        problems.append(f"{name} out of range")
    return number


def submission(
    fields: list[tuple[str, str]],
    catalog: dict[str, CatalogService],
    *,
    api_keys: set[str],
    jurisdiction_id: str | None,
    required: tuple[str, ...] = (),
) -> dict[str, Any]:
    """Validate a POST requests form and return the columns to store.

    Raises:
        HttpError: 403 bad api_key, 404 unknown service or jurisdiction, 400 anything else
            (``required`` names fields a quirky server insists on, e.g. ``email``).
    """
    if first(fields, "api_key") not in api_keys:
        raise HttpError(403, "api_key missing or invalid")
    jurisdiction = first(fields, "jurisdiction_id")
    if jurisdiction is not None and jurisdiction_id is not None and jurisdiction != jurisdiction_id:
        raise HttpError(404, f"jurisdiction_id {jurisdiction!r} not found")
    code = first(fields, "service_code")
    if code is None:
        raise HttpError(400, "service_code missing")
    svc = catalog.get(code)
    if svc is None:
        raise HttpError(404, f"service_code {code!r} not found")
    problems: list[str] = []
    lat = _coordinate(first(fields, "lat"), "lat", 90, problems)
    lon = _coordinate(first(fields, "long"), "long", 180, problems)
    address, address_id = first(fields, "address_string"), first(fields, "address_id")
    if (lat is None) != (lon is None):
        problems.append("lat and long must be given together")
    elif lat is None and address is None and address_id is None:
        problems.append("a location is required: lat and long, address_string or address_id")
    problems.extend(f"{name} is required" for name in required if first(fields, name) is None)
    description = first(fields, "description")
    if description is not None and len(description) > MAX_DESCRIPTION:
        problems.append(f"description is longer than {MAX_DESCRIPTION} characters")
    given = collect_attributes(fields)
    attributes: dict[str, Any] = {}
    for attr in svc.attributes:
        if not attr.variable:
            continue  # informational text; any value sent for it is ignored
        values = given.get(attr.code)
        if not values:
            if attr.required:
                problems.append(f"attribute {attr.code} is required")
            continue
        problem = _check_attribute(attr, values)
        if problem:
            problems.append(problem)
        attributes[attr.code] = values if attr.datatype == "multivaluelist" else values[0]
    if problems:
        raise HttpError(400, *problems)
    return {
        "jurisdiction_id": jurisdiction,
        "service_code": svc.service_code,
        "service_name": svc.service_name,
        "description": description,
        "agency_responsible": svc.agency_responsible or None,
        "address": address,
        "address_id": address_id,
        "lat": lat,
        "long": lon,
        "media_url": first(fields, "media_url"),
        "attributes": attributes,
        "contact": {k: v for k in _CONTACT if (v := first(fields, k)) is not None},
    }


def _comma(value: str | None) -> list[str]:
    return [p.strip() for p in (value or "").split(",") if p.strip()]


#: The parameters of GET requests in the spec; a strict server refuses any other.
SPEC_QUERY_PARAMS = frozenset({"jurisdiction_id", "service_request_id", "service_code", "start_date", "end_date", "status"})


def query(params: list[tuple[str, str]], now: float, *, pagination: bool, strict: bool = False,
          whole_seconds: bool = False, max_results: int = 1000, page_size: int = 0, page_base: int = 1,
          ignore_dates: bool = False) -> dict[str, Any]:
    """Validate GET requests filters into :meth:`Store.query` arguments (or ``ids``).

    Without dates the most recent 90 days apply; a span over 90 days is refused; at most
    ``max_results`` (the spec's 1000) requests come back, or pages of ``page_size`` when it is
    set (``page`` counted from ``page_base``). ``ignore_dates`` validates the date and status
    filters, then drops them (open311-adapter's Endpoint1).

    Raises:
        HttpError: 400 for bad dates, spans, statuses or page numbers; with ``strict``, for
            any parameter beyond the spec's; with ``whole_seconds``, for fractional seconds.
    """
    unexpected = sorted({k for k, _ in params} - SPEC_QUERY_PARAMS)
    if strict and unexpected:
        raise HttpError(400, f"found unexpected entries: {', '.join(unexpected)}")
    if whole_seconds and any("." in v for k, v in params if k.endswith("_date")):
        raise HttpError(400, "dates with fractional seconds are not supported")
    ids = _comma(first(params, "service_request_id"))
    if ids:
        return {"ids": ids}  # the id list overrides every other filter
    statuses = _comma(first(params, "status"))
    bad = [s for s in statuses if s not in ("open", "closed")]
    if bad:
        raise HttpError(400, f"status must be open or closed, not {bad[0]!r}")
    start_raw, end_raw = first(params, "start_date"), first(params, "end_date")
    start = w3c_datetime(start_raw, "start_date").timestamp() if start_raw else None
    end = w3c_datetime(end_raw, "end_date").timestamp() if end_raw else None
    if start is None and end is None:
        start, end = now - MAX_SPAN_S, None
    elif start is None:
        start = end - MAX_SPAN_S
    elif end is None:
        end = start + MAX_SPAN_S
    if end is not None and end < start:
        raise HttpError(400, "end_date is before start_date")
    if end is not None and end - start > MAX_SPAN_S:
        raise HttpError(400, "start_date to end_date spans more than 90 days")
    out: dict[str, Any] = {
        "service_codes": _comma(first(params, "service_code")) or None,
        "statuses": statuses or None,
        "start": start,
        "end": end,
        "limit": max_results,
        "offset": 0,
    }
    for name in ("updated_after", "updated_before"):
        raw = first(params, name)
        out[name] = w3c_datetime(raw, name).timestamp() if raw else None
    asked = first(params, "page") is not None or first(params, "page_size") is not None
    if page_size > 0 or (pagination and asked):
        try:
            page = int(first(params, "page") or page_base)
            size = int(first(params, "page_size") or page_size or max_results)
        except ValueError:
            raise HttpError(400, "page and page_size must be whole numbers") from None
        if page < page_base or not 1 <= size <= max_results:
            raise HttpError(400, f"page starts at {page_base}; page_size is 1 to {max_results}")
        out.update(limit=size, offset=(page - page_base) * size, page=page)
    if ignore_dates:
        out.update(start=None, end=None, statuses=None)
    return out
