"""The Open311 GeoReport v2 client, on one ``requests.Session``.

GETs are retried on 429/5xx and connection failures with jittered backoff, honouring
``Retry-After``. POSTs are never retried: Open311 has no idempotency key, so a second POST can
file a second ticket. A POST failure is typed instead: :class:`SubmitRejected` when the server
definitely refused (4xx), :class:`SubmitAmbiguous` when it may have committed (timeout, reset,
5xx, an unreadable 2xx), which the ledger reconciles before trying again.

List answers are paged (:mod:`.paging`): next-page links are followed, page numbers detected
once per server, and a listing cut at ``max_pages`` is flagged ``truncated``.

The api_key travels only in POST form bodies; it, the endpoint's password and any secret query
value are redacted from every message this module builds and never logged.
"""

from __future__ import annotations

import logging
import random
import re
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone, tzinfo
from typing import Any, Literal
from urllib.parse import urlsplit

import requests

from social311.integrations.ticketing.base import KeyRefused, SubmitAmbiguous, SubmitRejected
from social311.integrations.ticketing.client import decode, encode, parse
from social311.integrations.ticketing.client.errors import (
    BadRequest,
    NotFound,
    Open311Error,
    RateLimited,
    ResponseParseError,
    TransportError,
    error_class,
    is_key_refusal,
    parse_error_body,
    redact,
)
from social311.integrations.ticketing.client.models import Discovery, Found, ServiceDefinition
from social311.integrations.ticketing.client.paging import PagingState, detect_base, next_link, page_ids
from social311.integrations.ticketing.client.session import build_session
from social311.records import Service, ServiceRequest, SubmitResult, TicketRequest

log = logging.getLogger(__name__)

_FORM = "application/x-www-form-urlencoded; charset=utf-8"
_SLACK = timedelta(seconds=1)  # dates are sent in whole seconds
#: Keys that make a lone JSON object one list item; any other object is not a list answer.
_ITEM_KEYS = frozenset({"service_request_id", "token", "service_code", "service_notice"})
#: What makes a POST answer a receipt: an id, a token, or (blackbox services) a notice.
_RECEIPT_KEYS = frozenset({"service_request_id", "token", "service_notice"})
_LIST_KEYS = ("service_requests", "requests", "services", "request", "service")


_HTML_HEAD = re.compile(rb"^\s*(<\?xml[^>]*\?>\s*)?(<!--.*?-->\s*)*<(!doctype\s+html|html)\b", re.I | re.S)


def _is_html(response: requests.Response) -> bool:
    """A web page, not an Open311 answer: by its body, or labelled HTML and not JSON.

    Servers mislabel Content-Type, so a JSON body labelled ``text/html`` is still read as JSON.
    """
    head = response.content[:2048]
    if _HTML_HEAD.match(head):
        return True
    labelled = "html" in response.headers.get("Content-Type", "").lower()
    return labelled and head.lstrip()[:1] not in (b"[", b"{")


class Open311Client:
    """A GeoReport v2 endpoint.

    Args:
        endpoint: the base URL, e.g. ``https://311.city.gov/open311/v2/``.
        jurisdiction_id: sent on every call when set (multi-jurisdiction endpoints).
        api_key: sent in POST bodies only.
        format: ``"json"`` or ``"xml"`` (XML is the one every server must speak).
        timeout: ``(connect, read)`` seconds for every call.
        session: an existing session; by default one with GET-only retries is built.
        multivalue_encoding: ``"brackets"`` (spec) or ``"repeat"`` (mySociety).
        location_policy: ``"latlong"``, ``"address"`` or ``"both"`` (Chicago).
        retries: GET retries (ignored when ``session`` is given).
        backoff_factor: GET backoff base in seconds (ignored when ``session`` is given).
        default_tz: zone assumed for server datetimes without offset; None drops them.
        email: sent as ``email`` on every POST, for servers that refuse tickets without one
            (Bristol): the city team's mailbox, never a resident's.
        paging: ``"auto"`` follows next-page links and detects ``page``/``page_size``;
            ``"links"`` follows links only (never sends a page number); ``"off"`` reads one page.
        max_pages: the most pages one list call reads; a listing cut there is ``truncated``.
        page_probe_min: a first page this long, without a next link, may have more pages.
    """

    def __init__(
        self,
        endpoint: str,
        *,
        jurisdiction_id: str | None = None,
        api_key: str | None = None,
        format: Literal["json", "xml"] = "json",  # noqa: A002 - the spec's own word
        timeout: tuple[float, float] = (3.05, 30),
        session: requests.Session | None = None,
        multivalue_encoding: encode.MultivalueEncoding = "brackets",
        location_policy: encode.LocationPolicy = "latlong",
        retries: int = 3,
        backoff_factor: float = 0.5,
        default_tz: tzinfo | None = None,
        email: str | None = None,
        paging: Literal["auto", "links", "off"] = "auto",
        max_pages: int = 100,
        page_probe_min: int = 20,
    ) -> None:
        if format not in ("json", "xml"):
            raise ValueError(f"format must be 'json' or 'xml', not {format!r}")
        self.endpoint = endpoint.rstrip("/") + "/"
        self.jurisdiction_id = jurisdiction_id
        self._api_key = api_key
        self.format = format
        self.timeout = timeout
        self.session = session or build_session(retries, backoff_factor)
        self.multivalue_encoding = multivalue_encoding
        self.location_policy = location_policy
        self.default_tz = default_tz
        self.email = email
        self.paging = paging
        self.max_pages = max(1, max_pages)
        self.page_probe_min = max(2, page_probe_min)
        self.pages = PagingState()  # learnt from the server's answers, kept for the client's life
        # A password in the endpoint URL (https://user:pass@host/) is a secret like the key.
        self._secrets = [s for s in (api_key, urlsplit(self.endpoint).password) if s]

    def __repr__(self) -> str:
        key = "set" if self._api_key else "none"
        return f"Open311Client({self._redact(self.endpoint)!r}, format={self.format!r}, api_key={key})"

    def close(self) -> None:
        """Close the pooled connections."""
        self.session.close()


    def _url(self, resource: str) -> str:
        return f"{self.endpoint}{resource}.{self.format}"

    def _redact(self, text: str) -> str:
        return redact(text, self._secrets)

    def _params(self, extra: dict[str, Any] | None = None) -> dict[str, str]:
        params = {"jurisdiction_id": self.jurisdiction_id} if self.jurisdiction_id else {}
        # Empty arguments must be treated as absent by servers; not sending them is safer.
        params.update({k: str(v) for k, v in (extra or {}).items() if v not in (None, "")})
        return params

    def _decode(self, response: requests.Response) -> tuple[str | None, Any]:
        where = f"{response.request.method} {self._redact(response.url)}"
        if _is_html(response):
            # A WAF, maintenance or login page answered with 200: never an Open311 answer, even
            # when it is well-formed XHTML that would parse.
            message, _ = parse_error_body(response.content, "text/html")
            raise ResponseParseError(f"an HTML page instead of an Open311 answer from {where}: "
                                     f"{self._redact(message or 'empty page')}", status=response.status_code)
        body = response.content
        head = body.lstrip()[:1]
        # Sniff the body first (servers mislabel Content-Type), then fall back on the format asked.
        as_xml = head == b"<" or (head not in (b"[", b"{") and self.format == "xml")
        try:
            if as_xml:
                return decode.decode_xml(body)
            return None, decode.decode_json(body)
        except decode.DecodeError as exc:
            raise ResponseParseError(
                f"unreadable answer from {where}: {self._redact(str(exc))}",
                status=response.status_code,
            ) from None

    def _error(self, response: requests.Response, what: str) -> Open311Error:
        message, pairs = parse_error_body(response.content, response.headers.get("Content-Type", ""))
        message = self._redact(message) if message else None
        pairs = tuple((code, self._redact(text)) for code, text in pairs)
        cls = error_class(response.status_code)
        text = f"{what} failed: HTTP {response.status_code}" + (f": {message}" if message else "")
        kwargs: dict[str, Any] = {"status": response.status_code, "server_message": message, "errors": pairs}
        if cls is RateLimited:
            kwargs["retry_after_s"] = parse.number(response.headers.get("Retry-After"))
        return cls(text, **kwargs)

    def _fetch(self, resource: str, params: dict[str, Any] | None = None, url: str | None = None,
               ) -> tuple[Any, requests.Response]:
        """One GET: ``(decoded body, response)``. A ``url`` (a next-page link) carries its own query."""
        what = f"GET {resource}"
        try:
            response = self.session.get(url or self._url(resource), params=None if url else self._params(params),
                                        timeout=self.timeout)
        except requests.RequestException as exc:
            raise TransportError(f"{what} failed: {type(exc).__name__}: {self._redact(str(exc))}") from None
        log.debug("GET %s -> %s", self._redact(response.url), response.status_code)
        if response.status_code >= 400:
            raise self._error(response, what)
        return self._decode(response)[1], response

    def _get(self, resource: str, params: dict[str, Any] | None = None, url: str | None = None) -> Any:
        return self._fetch(resource, params, url)[0]

    def _as_list(self, value: Any, resource: str) -> list[Any]:
        """The items of a list answer; an object that is no list and no item is unreadable.

        ``{"status": "maintenance"}`` read as one item without an id would make a marker search
        say "not there" and the ledger POST again.
        """
        try:
            items = decode.as_items(value, *_LIST_KEYS)
        except decode.DecodeError as exc:
            raise ResponseParseError(f"GET {resource}: unexpected answer: {exc}", status=200) from None
        if isinstance(value, dict) and items == [value] and not _ITEM_KEYS & set(value):
            raise ResponseParseError(f"GET {resource}: an object with {sorted(value)[:5]}, not a list", status=200)
        return items

    def _items(self, resource: str, params: dict[str, Any] | None = None) -> list[Any]:
        return self._as_list(self._get(resource, params), resource)

    def _list(self, resource: str, params: dict[str, Any] | None = None, *, numbered: bool = True,
              ) -> tuple[list[Any], bool]:
        """Every page of a list answer: ``(items, truncated)``. See :mod:`.paging`.

        ``numbered=False`` follows next-page links only (the catalog: page numbers are an
        extension of GET requests, not of GET services).
        """
        value, response = self._fetch(resource, params)
        items = self._as_list(value, resource)
        link = next_link(response, self.endpoint) if self.paging != "off" else None
        pages = 1
        while link and pages < self.max_pages:
            value, response = self._fetch(resource, url=link)
            items.extend(self._as_list(value, resource))
            link, pages = next_link(response, self.endpoint), pages + 1
        if link:
            return items, self._truncated(resource, pages)
        if pages > 1 or not numbered or self.paging != "auto" or self.pages.unsupported:
            return items, False
        if len(items) < max(self.page_probe_min, self.pages.page_size or 0):
            return items, False  # shorter than any page this server cuts: complete
        return self._numbered(resource, params or {}, items)

    def _numbered(self, resource: str, params: dict[str, Any], first: list[Any]) -> tuple[list[Any], bool]:
        """Pages after a long first page, by ``page``/``page_size`` (the base detected once)."""
        size, state = len(first), self.pages
        items, seen, pages = list(first), set(page_ids(first)), 1
        detecting = state.base is None
        if detecting:
            try:
                probe = self._as_list(self._get(resource, dict(params, page=1, page_size=size)), resource)
            except BadRequest:
                state.unsupported = True  # strict servers refuse parameters beyond the spec's
                log.info("GET %s: the server takes no page/page_size; one answer per window", resource)
                return items, False
            state.base = detect_base(list(seen), page_ids(probe))
            log.info("GET %s: page numbers count from %d on this server", resource, state.base)
            if state.base == 0:  # the probe was the second page
                fresh = [i for i, k in zip(probe, page_ids(probe)) if k not in seen]
                items.extend(fresh)
                seen.update(page_ids(probe))
                pages += 1
                if len(probe) < size or not fresh:
                    return items, False
        number = state.base + pages
        while True:
            if pages >= self.max_pages:
                return items, self._truncated(resource, pages)
            batch = self._as_list(self._get(resource, dict(params, page=number, page_size=size)), resource)
            ids = page_ids(batch)
            fresh = [i for i, k in zip(batch, ids) if k not in seen]
            if not fresh:
                # Empty, or pages seen already: the end (uReport answers the last page again past
                # it), or a server that ignores `page` and answered the first page again; seen
                # while detecting, the latter is remembered so later listings skip the probe.
                if detecting and state.base == 1 and pages == 1 and set(ids) == seen:
                    state.unsupported = True
                    log.info("GET %s: the server ignores page/page_size; one answer per window", resource)
                return items, False
            items.extend(fresh)
            seen.update(ids)
            pages, number = pages + 1, number + 1
            state.page_size = size  # a full first page had a successor: the server's page size
            if len(batch) < size:
                return items, False

    def _truncated(self, resource: str, pages: int) -> bool:
        log.warning("GET %s: stopped after %d pages (max_pages); later pages of this window were not read",
                    resource, pages)
        return True


    def discovery(self, url: str) -> Discovery:
        """Read a service discovery document (``…/discovery.json`` or ``.xml``)."""
        return parse.discovery(self._get("discovery", url=url))

    def services(self) -> list[Service]:
        """The service catalog (GET services)."""
        items, truncated = self._list("services", numbered=False)
        if truncated:
            log.warning("GET services: the catalog was cut at max_pages=%d", self.max_pages)
        return [s for s in (parse.service(i) for i in items if isinstance(i, dict)) if s is not None]

    def service_definition(self, code: str) -> ServiceDefinition:
        """The attributes of one service (GET services/{code}), sorted by ``order``."""
        return parse.service_definition(self._get(f"services/{code}"), code)

    def submit(self, request: TicketRequest) -> SubmitResult:
        """File one ticket (POST requests), exactly one attempt.

        Raises:
            KeyRefused: no api_key is configured (nothing is sent: some servers answer a keyless
                POST with a 500, which would read as "may exist"), or the server refused the key.
            SubmitRejected: the server refused (4xx) or the ticket has no usable location.
            SubmitAmbiguous: the ticket may exist (timeout, reset, 5xx, an HTML page or any
                other 2xx body that is not a request list holding an id, a token or a notice).
        """
        if not self._api_key:
            raise KeyRefused("POST requests not sent: no api_key is configured")
        try:
            fields = encode.submit_fields(
                request,
                jurisdiction_id=self.jurisdiction_id,
                multivalue_encoding=self.multivalue_encoding,
                location_policy=self.location_policy,
            )
        except encode.EncodeError as exc:
            raise SubmitRejected(f"POST requests not sent: {exc}") from None
        if self.email:
            fields.append(("email", self.email))
        fields.append(("api_key", self._api_key))
        url = self._url("requests")
        try:
            response = self.session.post(url, data=fields, timeout=self.timeout, headers={"Content-Type": _FORM})
        except requests.RequestException as exc:
            # Even a connect timeout is reported as ambiguous: reconciling costs one query.
            raise SubmitAmbiguous(
                f"POST requests: no answer ({type(exc).__name__}); the ticket may exist: {self._redact(str(exc))}"
            ) from None
        log.debug("POST %s -> %s", self._redact(url), response.status_code)
        if response.status_code >= 500:
            error = self._error(response, "POST requests")
            raise SubmitAmbiguous(str(error), status=error.status, server_message=error.server_message)
        if response.status_code >= 400:
            error = self._error(response, "POST requests")
            kind = KeyRefused if is_key_refusal(response.status_code, error.server_message) else SubmitRejected
            rejected = kind(str(error), status=error.status, server_message=error.server_message)
            rejected.errors = error.errors  # type: ignore[attr-defined]
            rejected.retry_after_s = getattr(error, "retry_after_s", None)  # type: ignore[attr-defined]
            raise rejected
        try:
            _, value = self._decode(response)
            items = decode.as_items(value, "service_requests", "requests", "request")
            first = next((i for i in items if isinstance(i, dict)), None)
            if first is None or not _RECEIPT_KEYS & {k for k, v in first.items() if v not in (None, "")}:
                # A blackbox service still answers a request list with its notice; an empty
                # list or an object of other words is no receipt, and the ticket may exist.
                raise ValueError(f"no service_request_id, token or service_notice in {str(value)[:120]!r}")
            return parse.submit_result(items)
        except (ResponseParseError, decode.DecodeError, ValueError) as exc:
            raise SubmitAmbiguous(
                f"POST requests: HTTP {response.status_code} without a readable receipt; the ticket may exist: "
                f"{self._redact(str(exc))}",
                status=response.status_code,
            ) from None

    def token(self, token: str) -> str | None:
        """The service_request_id behind a batch token, or None while the city has not set one."""
        items = self._items(f"tokens/{token}")
        for item in items:
            if isinstance(item, dict) and parse.text(item.get("service_request_id")):
                return parse.text(item.get("service_request_id"))
        return None

    def poll_token(self, token: str, *, deadline_s: float = 120, first_wait_s: float = 2, max_wait_s: float = 30,
                   sleep: Callable[[float], None] = time.sleep, monotonic: Callable[[], float] = time.monotonic) -> str | None:
        """Poll a batch token until its id appears or ``deadline_s`` passes (Chicago's advice).

        Waits double from ``first_wait_s`` up to ``max_wait_s``, with jitter so many clients
        polling one city do not arrive together.

        Returns:
            The service_request_id, or None when the deadline passed first (poll again later:
            the token stays valid).
        """
        stop = monotonic() + deadline_s
        wait = first_wait_s
        while True:
            found = self.token(token)
            if found or monotonic() >= stop:
                return found
            sleep(max(0.0, min(wait * random.uniform(0.5, 1.0), stop - monotonic())))
            wait = min(wait * 2, max_wait_s)

    def requests(
        self,
        service_request_ids: list[str] | None = None,
        service_codes: list[str] | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
        status: list[str] | None = None,
        updated_after: datetime | None = None,
        page: int | None = None,
        page_size: int | None = None,
        updated_before: datetime | None = None,
        extensions: bool = False,
    ) -> Found:
        """Query service requests (GET requests), every page of every window.

        Ranges longer than 90 days are split into windows (the spec's maximum) and the answers
        merged by id. Without ``start`` and ``end`` the server's default applies (the most
        recent 90 days or 1000 requests). Each window is read page by page (see
        :mod:`.paging`) unless ``page`` is given.

        Args:
            service_request_ids: ids to fetch; they override every other filter.
            service_codes: services to include.
            start: earliest ``requested_datetime``.
            end: latest ``requested_datetime``.
            status: ``"open"`` and/or ``"closed"``.
            updated_after: only requests updated since then (a v2.1 extension).
            page: read this one page only, where the server paginates (an extension).
            page_size: page size, where the server paginates (an extension).
            updated_before: only requests updated before then (a v2.1 extension).
            extensions: send ``extensions=true`` (Chicago, Boston, SF); only for servers that
                accept it: strict ones (mySociety) refuse unknown parameters with 400.

        Returns:
            Requests with an id, in server order, each id once; ``truncated`` when a window was
            cut at ``max_pages``.
        """
        if service_request_ids is not None:
            if not service_request_ids:
                return Found()
            return self._requests_once({"service_request_id": ",".join(service_request_ids)}, pages=False)
        base = {
            "service_code": ",".join(service_codes) if service_codes else None,
            "status": ",".join(status) if status else None,
            "updated_after": encode.w3c(updated_after) if updated_after else None,
            "updated_before": encode.w3c(updated_before) if updated_before else None,
            "extensions": "true" if extensions else None,
            "page": page,
            "page_size": page_size,
        }
        if start is None:
            spans: list[tuple[datetime | None, datetime | None]] = [(None, end)]
        else:
            start = start.replace(microsecond=0)
            stop = end or datetime.now(timezone.utc)
            if stop.microsecond:  # round up so the last second is not lost to truncation
                stop = stop.replace(microsecond=0) + timedelta(seconds=1)
            spans = list(encode.windows(start, stop)) if stop - start > encode.MAX_WINDOW else [(start, end and stop)]
        seen: dict[str, ServiceRequest] = {}
        truncated = ignored = False
        largest = 0
        for lo, hi in spans:
            params = dict(base, start_date=encode.w3c(lo) if lo else None, end_date=encode.w3c(hi) if hi else None)
            answer = self._requests_once(params, pages=page is None)
            truncated, largest = truncated or answer.truncated, max(largest, len(answer))
            for item in answer:
                when = item.requested_datetime
                if when is not None and ((lo is not None and when < lo - _SLACK) or (hi is not None and when > hi + _SLACK)):
                    ignored = True  # the server ignored the date filter (open311-adapter's Endpoint1)
                    continue
                seen.setdefault(item.service_request_id, item)
        if ignored:
            log.info("GET requests: the server answered requests outside the asked dates; they were dropped")
        out = Found(seen.values())
        out.truncated, out.dates_ignored, out.largest_answer = truncated, ignored, largest
        return out

    def _requests_once(self, params: dict[str, Any], *, pages: bool = True) -> Found:
        if pages:
            items, truncated = self._list("requests", params)
        else:
            items, truncated = self._items("requests", params), False
        parsed = [parse.service_request(i, self.default_tz) for i in items if isinstance(i, dict)]
        skipped = sum(p is None for p in parsed)
        if skipped:
            log.info("GET requests: %d listed request(s) without a service_request_id ignored", skipped)
        # Pages overlap when requests arrive while paging (a newest-first list shifts): each id once.
        out = Found({p.service_request_id: p for p in parsed if p is not None}.values())
        out.truncated = truncated
        return out

    def request(self, service_request_id: str) -> ServiceRequest | None:
        """One request by id (GET requests/{id}), or None when the server does not know it."""
        try:
            items = self._items(f"requests/{service_request_id}")
        except NotFound:
            return None
        parsed = [parse.service_request(i, self.default_tz) for i in items if isinstance(i, dict)]
        return next((p for p in parsed if p is not None), None)
