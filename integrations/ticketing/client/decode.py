"""Response bodies (JSON or XML) into plain Python lists and dicts, lists kept as lists.

XML-to-dict converters turn one child into a dict and no children into None, which crashed
earlier clients. Here known containers (``services``, ``service_requests``, ``attributes``,
``values`` ...) always become lists, whatever their number of children, and other elements
whose children repeat one tag become lists too. Empty elements become None.
"""

from __future__ import annotations

import json
from typing import Any

from defusedxml import ElementTree
from defusedxml.common import DefusedXmlException

# container tag -> item tag, from the spec's XML examples (plus issue-reporting's <requests>).
LIST_CONTAINERS = {
    "services": "service",
    "service_requests": "request",
    "requests": "request",
    "errors": "error",
    "attributes": "attribute",
    "values": "value",
    "endpoints": "endpoint",
    "formats": "format",
    "media_urls": "media_url",
    "notes": "note",
}
_XSI_NIL = "{http://www.w3.org/2001/XMLSchema-instance}nil"


class DecodeError(ValueError):
    """The body is not well-formed JSON or XML."""


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _element(el: Any) -> Any:
    children = list(el)
    tag = _local(el.tag)
    if not children:
        if el.get(_XSI_NIL) == "true":
            return None
        text = el.text or ""
        return text if text.strip() else None
    item_tag = LIST_CONTAINERS.get(tag)
    child_tags = [_local(c.tag) for c in children]
    if item_tag and all(t == item_tag for t in child_tags):
        return [_element(c) for c in children]
    if len(children) > 1 and len(set(child_tags)) == 1:
        return [_element(c) for c in children]
    out: dict[str, Any] = {}
    for child_tag, child in zip(child_tags, children):
        value = _element(child)
        if child_tag in out:  # repeated tag among other tags, e.g. old definitions' <attribute>s
            previous = out[child_tag]
            out[child_tag] = (previous if isinstance(previous, list) else [previous]) + [value]
        else:
            out[child_tag] = value
    return out


def decode_xml(body: bytes) -> tuple[str, Any]:
    """Parse an XML body safely (defusedxml).

    Args:
        body: the raw bytes; the XML declaration decides the encoding.

    Returns:
        ``(root_tag, value)``; a known container root with no children gives ``[]``.

    Raises:
        DecodeError: malformed, truncated or dangerous XML.
    """
    try:
        root = ElementTree.fromstring(body)
    except (ElementTree.ParseError, DefusedXmlException) as exc:
        raise DecodeError(f"malformed XML ({exc})") from exc
    tag = _local(root.tag)
    if len(root) == 0 and tag in LIST_CONTAINERS:
        return tag, []
    return tag, _element(root)


def decode_json(body: bytes) -> Any:
    """Parse a JSON body.

    Raises:
        DecodeError: not valid JSON (or not UTF-8).
    """
    try:
        return json.loads(body.decode("utf-8-sig"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DecodeError(f"malformed JSON ({exc})") from exc


def as_items(value: Any, *keys: str) -> list[Any]:
    """The list of items of a decoded list response, unwrapping non-spec wrappers.

    Spec JSON drops the root, so a list comes back bare. Some servers wrap it anyway
    (``{"service_requests": [...]}``, Zürich's objects) or send a lone object.

    Args:
        value: the decoded body.
        keys: wrapper keys to look through, e.g. ``"service_requests", "requests"``.
    """
    if value is None:
        return []
    if isinstance(value, list):
        return value
    if isinstance(value, dict):
        for key in keys:
            if key in value:
                return as_items(value[key], *keys)
        lists = [v for v in value.values() if isinstance(v, list)]
        if len(value) == 1 and lists:
            return lists[0]
        return [value]
    raise DecodeError(f"expected a list of items, got {type(value).__name__}")
