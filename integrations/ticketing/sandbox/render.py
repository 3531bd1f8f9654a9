"""Spec-shaped bodies of the sandbox: JSON by the Spark convention and the matching XML.

JSON drops the root element and keeps every list a list; XML starts with the declaration and
has no namespace. The quirks reproduce what real servers do instead (OPEN311.md §2).
"""

from __future__ import annotations

import html
import json
from datetime import datetime, timedelta, timezone
from typing import Any
from xml.etree import ElementTree as ET

from social311.integrations.ticketing.sandbox.catalog import CatalogService
from social311.integrations.ticketing.sandbox.faults import Quirks

CONTENT_TYPES = {"json": "application/json", "xml": "text/xml", "html": "text/html", "text": "text/plain"}
_ITEM_TAGS = {"attributes": "attribute", "values": "value", "endpoints": "endpoint", "formats": "format"}
_LOCAL = timezone(timedelta(hours=2))  # issue-reporting's Helsinki offset


def content_type(kind: str, quirks: Quirks) -> str:
    """The Content-Type for ``json``/``xml``/``html``/``text``, with charset unless quirked."""
    base = "application/xml" if kind == "xml" and quirks.application_xml else CONTENT_TYPES[kind]
    return base + ("" if quirks.no_charset else "; charset=utf-8")


def w3c(epoch: float | None, quirks: Quirks) -> str | None:
    """A stored epoch as a W3C datetime (``Z``, whole seconds), or issue-reporting's style."""
    if epoch is None:
        return None
    moment = datetime.fromtimestamp(epoch, timezone.utc)
    if quirks.local_offsets:
        return moment.astimezone(_LOCAL).isoformat(timespec="microseconds")
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def service_item(svc: CatalogService) -> dict[str, Any]:
    """One entry of GET services."""
    return {
        "service_code": svc.service_code,
        "service_name": svc.service_name,
        "description": svc.description,
        "metadata": svc.metadata,
        "type": svc.type,
        "keywords": svc.keywords,
        "group": svc.group,
    }


def definition(svc: CatalogService) -> dict[str, Any]:
    """The body of GET services/{code}."""
    attributes = []
    for a in sorted(svc.attributes, key=lambda a: a.order):
        item: dict[str, Any] = {
            "variable": a.variable,
            "code": a.code,
            "datatype": a.datatype,
            "required": a.required,
            "datatype_description": a.datatype_description,
            "order": a.order,
            "description": a.description,
        }
        if a.values:
            item["values"] = [{"key": v.key, "name": v.name} for v in a.values]
        attributes.append(item)
    return {"service_code": svc.service_code, "attributes": attributes}


def request_item(row: dict[str, Any], quirks: Quirks) -> dict[str, Any]:
    """One stored request in the fields of GET requests."""
    item = {
        "service_request_id": row["service_request_id"],
        "status": row["status"],
        "status_notes": row["status_notes"],
        "service_name": row["service_name"],
        "service_code": row["service_code"],
        "description": row["description"],
        "agency_responsible": row["agency_responsible"],
        "service_notice": row["service_notice"],
        "requested_datetime": w3c(row["requested_at"], quirks),
        "updated_datetime": w3c(row["updated_at"], quirks),
        "expected_datetime": w3c(row["expected_at"], quirks),
        "address": row["address"],
        "address_id": row["address_id"],
        "zipcode": row["zipcode"],
        "lat": row["lat"],
        "long": row["long"],
        "media_url": row["media_url"],
    }
    if row["lat"] is None and quirks.unknown_latlong == "omit":
        del item["lat"], item["long"]
    elif row["lat"] is None and quirks.unknown_latlong == "zero":
        item.update(lat=0, long=0)
    return item


def _blank_nulls(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, list):
        return [_blank_nulls(v) for v in value]
    if isinstance(value, dict):
        return {k: _blank_nulls(v) for k, v in value.items()}
    return value


def _reverse_keys(value: Any) -> Any:
    if isinstance(value, list):
        return [_reverse_keys(v) for v in value]
    if isinstance(value, dict):
        return {k: _reverse_keys(value[k]) for k in reversed(list(value))}
    return value


def _stringify(value: Any) -> Any:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return [_stringify(v) for v in value]
    if isinstance(value, dict):
        return {k: _stringify(v) for k, v in value.items()}
    return value


def _fill(parent: ET.Element, value: Any, tag: str) -> None:
    if value is None:
        return
    if isinstance(value, dict):
        for key, inner in value.items():
            _fill(ET.SubElement(parent, key), inner, key)
    elif isinstance(value, list):
        item_tag = _ITEM_TAGS.get(tag, "item")
        for inner in value:
            _fill(ET.SubElement(parent, item_tag), inner, item_tag)
    elif isinstance(value, bool):
        parent.text = "true" if value else "false"
    else:
        parent.text = str(value)


def body(fmt: str, root: str, value: Any, quirks: Quirks, item_tag: str | None = None) -> bytes:
    """Serialise a response.

    Args:
        fmt: ``"json"`` or ``"xml"``.
        root: the XML root tag (dropped in JSON, per the Spark convention).
        value: a list of items (``item_tag`` names them in XML) or one object.
        quirks: active deviations.
        item_tag: the XML tag of each list item.
    """
    if fmt == "json":
        data = _stringify(value) if quirks.string_booleans else value
        data = _blank_nulls(data) if quirks.empty_strings else data
        if quirks.pretty_json:
            return json.dumps(_reverse_keys(data), ensure_ascii=False, indent=2).encode("utf-8")
        return json.dumps(data, ensure_ascii=False).encode("utf-8")
    if root == "service_requests" and quirks.requests_root:
        root = "requests"
    element = ET.Element(root)
    if isinstance(value, list):
        for item in value:
            _fill(ET.SubElement(element, item_tag or "item"), item, item_tag or "item")
    else:
        _fill(element, value, root)
    return b'<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(element, encoding="utf-8", xml_declaration=False)


def errors(fmt: str, status: int, messages: list[str], quirks: Quirks, *, as_html: bool = False) -> tuple[bytes, str]:
    """An error body: the spec's ``errors`` list, or an HTML page like a crashed framework's.

    Returns:
        ``(body, content_type)``.
    """
    if as_html:
        text = html.escape("; ".join(messages))
        page = f"<!DOCTYPE html><html><head><title>{status} {text}</title></head><body><h1>Error {status}</h1><p>{text}</p></body></html>"
        return page.encode("utf-8"), content_type("html", quirks)
    if quirks.dict_errors:  # Django REST framework's shape, as issue-reporting sends it
        detail = "; ".join(messages)
        if fmt == "json":
            return json.dumps({"code": status, "detail": detail}).encode("utf-8"), content_type(fmt, quirks)
        return body(fmt, "requests", {"code": status, "detail": detail}, quirks), content_type(fmt, quirks)
    items = [{"code": status, "description": m} for m in messages]
    return body(fmt, "errors", items, quirks, "error"), content_type(fmt, quirks)
