"""Typed Open311 errors, and the server's own words read from any error body.

Servers answer errors in many shapes: the spec's ``errors`` list (JSON or XML), a DRF dict
(``{"code":400,"detail":...}``), issue-reporting's ``<requests><code/><detail/>`` XML, a Django
HTML debug page or plain text. Every shape becomes one short ``server_message`` plus the
``(code, description)`` pairs when the spec list was used, and the HTTP status is always kept.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Iterable

from social311.integrations.ticketing.base import TicketingError



_MAX_MESSAGE = 500


class Open311Error(TicketingError):
    """A GET (read) call to an Open311 endpoint failed.

    Attributes:
        status: the HTTP status, or None when no response came back.
        server_message: the server's own words, secrets removed.
        errors: ``(code, description)`` pairs of a spec ``errors`` list, if there was one.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        server_message: str | None = None,
        errors: tuple[tuple[str, str], ...] = (),
    ):
        super().__init__(message, status=status, server_message=server_message)
        self.errors = errors


class BadRequest(Open311Error):
    """400: a missing or invalid argument, or the server's general error."""


class Forbidden(Open311Error):
    """403: the api_key is missing or invalid."""


class NotFound(Open311Error):
    """404: the resource, service code, token or jurisdiction does not exist."""


class RateLimited(Open311Error):
    """429: too many requests, still refused after the client's retries."""

    def __init__(self, message: str, *, retry_after_s: float | None = None, **kwargs):
        super().__init__(message, **kwargs)
        self.retry_after_s = retry_after_s


class ServerError(Open311Error):
    """5xx: the server failed, still failing after the client's retries."""


class TransportError(Open311Error):
    """No usable HTTP answer: timeout, refused or reset connection."""


class ResponseParseError(Open311Error):
    """A 2xx answer whose body is not the expected JSON or XML (malformed, truncated)."""


def error_class(status: int) -> type[Open311Error]:
    """The error class for an HTTP status (4xx/5xx)."""
    if status == 403 or status == 401:
        return Forbidden
    if status == 404:
        return NotFound
    if status == 429:
        return RateLimited
    if status >= 500:
        return ServerError
    return BadRequest


#: Query parameters whose values are secrets wherever a URL is printed (``api_key``, ``token``...).
_SECRET_PARAM = re.compile(r"([?&;](?:[^=&;\s\"'<>]*(?:key|token|secret|passw|pwd|signature|sig|auth)[^=&;\s\"'<>]*)=)"
                           r"[^&;\s\"'<>]*", re.I)
#: The password of ``scheme://user:password@host`` (userinfo).
_USERINFO = re.compile(r"(//[^/@:\s\"'<>]*:)[^@/\s\"'<>]*@")


def redact(text: str, secrets: Iterable[str | None] = ()) -> str:
    """``text`` with each non-empty secret, URL passwords and secret query values as ``***``.

    URLs reach messages through requests' and urllib3's exceptions (``Max retries exceeded with
    url: /requests.json?api_key=...``) and through ``response.url``; every message this client
    builds passes here, so a key in a query string or a password in the endpoint never reaches a
    log, the ledger or the Dagster event log.
    """
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    text = _USERINFO.sub(r"\1***@", text)
    return _SECRET_PARAM.sub(r"\1***", text)


def redact_url(url: str) -> str:
    """A URL fit to print: the userinfo password and secret query values replaced by ``***``."""
    return redact(url)


_KEY_WORDS = re.compile(r"api[\s_-]?key|InvalidApp|authenticat|unauthori[sz]ed", re.I)


def is_key_refusal(status: int, message: str | None) -> bool:
    """Whether a POST refusal is about the api_key (lenient servers answer 400, not 403)."""
    return status in (401, 403) or (status == 400 and bool(message) and bool(_KEY_WORDS.search(message or "")))


def _flatten(value: object) -> list[str]:
    # DRF details nest dicts and lists of strings: {"service_code": ["This field is required."]}
    if value is None:
        return []
    if isinstance(value, dict):
        out = []
        for key, inner in value.items():
            texts = _flatten(inner)
            prefix = "" if key in ("non_field_errors", "detail", "description", "message") else f"{key}: "
            out.extend(prefix + t for t in texts)
        return out
    if isinstance(value, list):
        return [t for item in value for t in _flatten(item)]
    return [str(value)]


def _from_json(data: object) -> tuple[str | None, tuple[tuple[str, str], ...]]:
    if isinstance(data, list) and data and all(isinstance(e, dict) for e in data):
        pairs = tuple((str(e.get("code", "")), str(e.get("description", "") or "")) for e in data)
        return "; ".join(d for _, d in pairs if d) or None, pairs
    if isinstance(data, dict):
        for key in ("description", "detail", "message", "error", "errors"):
            if key in data:
                texts = _flatten(data[key])
                return "; ".join(texts) or None, ()
        return "; ".join(_flatten(data)) or None, ()
    return None, ()


def _from_xml(body: str) -> tuple[str | None, tuple[tuple[str, str], ...]]:
    from defusedxml import ElementTree

    root = ElementTree.fromstring(body.encode("utf-8"))
    errors = [el for el in root.iter() if el.tag == "error"]
    if errors:
        pairs = tuple(
            ((e.findtext("code") or "").strip(), (e.findtext("description") or "").strip()) for e in errors
        )
        return "; ".join(d for _, d in pairs if d) or None, pairs
    # issue-reporting: <requests><code>400</code><detail>...</detail></requests>
    detail = root.find("detail")
    node = detail if detail is not None else root
    texts = [t.strip() for t in node.itertext() if t.strip()]
    return "; ".join(texts) or None, ()


_TITLE = re.compile(r"<title[^>]*>(.*?)</title>", re.S | re.I)
_TAG = re.compile(r"<[^>]+>")
_DROP = re.compile(r"<(script|style)[^>]*>.*?</\1>", re.S | re.I)


def _from_html(body: str) -> str | None:
    match = _TITLE.search(body)
    text = match.group(1) if match else _TAG.sub(" ", _DROP.sub(" ", body))
    return " ".join(html.unescape(text).split()) or None


def parse_error_body(body: bytes, content_type: str = "") -> tuple[str | None, tuple[tuple[str, str], ...]]:
    """Read the server's message from an error response body of any shape.

    Args:
        body: the raw response body.
        content_type: the response's Content-Type header (a hint only; often wrong).

    Returns:
        ``(message, pairs)``: a short human-readable message (or None for an empty body) and the
        ``(code, description)`` pairs when the body was a spec ``errors`` list.
    """
    text = body.decode("utf-8", errors="replace").strip()
    if not text:
        return None, ()
    message: str | None
    pairs: tuple[tuple[str, str], ...] = ()
    try:
        if text[0] in "[{":
            message, pairs = _from_json(json.loads(text))
        elif "html" in content_type.lower() or re.match(r"<!doctype html|<html", text, re.I):
            message = _from_html(text)
        elif text.startswith("<"):
            message, pairs = _from_xml(text)
        else:
            message = " ".join(text.split())
    except Exception:  # noqa: BLE001 - an unreadable error body still deserves its raw words
        message = " ".join(_TAG.sub(" ", text).split())
    if message and len(message) > _MAX_MESSAGE:
        message = message[: _MAX_MESSAGE - 1] + "…"
    return message, pairs
