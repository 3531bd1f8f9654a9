"""The sandbox's HTTP routes: discovery, services, service definitions, requests and tokens.

Each route is answered in ``.json`` or ``.xml``; any other suffix or path is a 404 with the
spec's ``errors`` body. Faults fire in the order a real failure would: rate limiting and
overload before any work; a lost reply, a reply cut by a reset, or a slow one after the request
is committed.
"""

from __future__ import annotations

import socket
import struct
import time
from http.server import BaseHTTPRequestHandler
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit

from social311.integrations.ticketing.sandbox import render, validate
from social311.integrations.ticketing.sandbox.validate import HttpError

if TYPE_CHECKING:
    from social311.integrations.ticketing.sandbox.server import SandboxServer

_EXPECTED_S = 3 * 86400  # a "typical response time" for expected_datetime
#: What a WAF or a maintenance window puts in front of a server: 200, well-formed XHTML (so it
#: parses as XML; only its being HTML tells it apart), no Open311 answer in it.
_HTML_200 = (b'<?xml version="1.0" encoding="utf-8"?>\n<html xmlns="http://www.w3.org/1999/xhtml"><head>'
             b"<title>Scheduled maintenance</title></head><body><p>The 311 service is down for maintenance. "
             b"Please sign in again later.</p></body></html>")
_MAX_BODY = 1 << 20


class _LostReply(Exception):
    """The request is committed; the connection is to be dropped without an answer."""


class Handler(BaseHTTPRequestHandler):
    """One connection of the sandbox (HTTP/1.1 keep-alive, one thread per connection)."""

    protocol_version = "HTTP/1.1"
    server_version = "social311-sandbox/1"
    timeout = 30  # idle keep-alive connections are closed after this

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in two writes; without NODELAY, Nagle and delayed ACKs add
        # ~40 ms to every keep-alive reply.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    @property
    def sandbox(self) -> SandboxServer:
        return self.server.sandbox  # type: ignore[attr-defined]

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        if self.sandbox.verbose:
            super().log_message(format, *args)

    def do_GET(self) -> None:  # noqa: N802 - stdlib naming
        self._serve("GET")

    def do_POST(self) -> None:  # noqa: N802
        self._serve("POST")

    def _not_allowed(self) -> None:
        self._serve(self.command)

    do_PUT = do_DELETE = do_PATCH = _not_allowed

    def _serve(self, method: str) -> None:
        sandbox = self.sandbox
        parts = urlsplit(self.path)
        fmt = "xml"
        self._headers: dict[str, str] = {}  # paging headers of a list answer
        try:
            body = self._read_body()
            path = unquote(parts.path)
            if not path.startswith(sandbox.base_path):
                raise HttpError(404, f"no resource at {path}")
            resource, _, suffix = path[len(sandbox.base_path):].rpartition(".")
            if suffix not in ("json", "xml") or not resource:
                raise HttpError(404, "resources end in .xml or .json")
            fmt = suffix
            sandbox.count_hit(method, resource.split("/")[0])
            if sandbox.faults.fire("next_429", "rate_429"):
                raise HttpError(429, "too many requests; retry later")
            if sandbox.faults.fire("fail_next_5xx", "fail_rate_5xx"):
                raise HttpError(503, "service temporarily unavailable")
            if sandbox.faults.fire("html_200_next", "html_200_rate"):
                self._reply(200, _HTML_200, "text/html; charset=utf-8")
                return
            params = parse_qsl(parts.query, keep_blank_values=True)
            status, root, item_tag, value = self._route(method, resource, params, body)
            payload = render.body(fmt, root, value, sandbox.quirks, item_tag)
            ctype = render.content_type(fmt, sandbox.quirks)
            if sandbox.faults.fire("reset_next_replies", "reset_mid_reply"):
                self._reset_mid_reply(status, payload, ctype)
            else:
                self._reply(status, payload, ctype, self._headers)
        except _LostReply:
            self.close_connection = True  # committed, then the connection drops: no status line
        except HttpError as exc:
            if sandbox.quirks.lenient_status and exc.status in (403, 404) and not exc.html:
                exc.status = 400
            payload, ctype = render.errors(fmt, exc.status, exc.messages, sandbox.quirks,
                                           as_html=sandbox.faults.html_errors or exc.html)
            headers = {"Retry-After": str(sandbox.faults.retry_after_s)} if exc.status == 429 else {}
            self._reply(exc.status, payload, ctype, headers)
        except Exception as exc:  # noqa: BLE001 - a sandbox bug must still answer, as a 500
            payload, ctype = render.errors(fmt, 500, [f"internal error: {type(exc).__name__}"], sandbox.quirks)
            self._reply(500, payload, ctype)

    def _read_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        if length > _MAX_BODY:
            self.close_connection = True
            raise HttpError(400, "request body too large")
        return self.rfile.read(length) if length else b""

    def _reply(self, status: int, payload: bytes, ctype: str, headers: dict[str, str] | None = None) -> None:
        faults = self.sandbox.faults
        if faults.slow_s > 0:
            time.sleep(faults.slow_s)
        elif faults.fire("slow_next", "slow_rate"):
            time.sleep(faults.slow_rate_s)
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(payload)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(payload)

    def _reset_mid_reply(self, status: int, payload: bytes, ctype: str) -> None:
        """Send the headers and half the body, then reset the connection (RST, not FIN)."""
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload[: len(payload) // 2])
        self.wfile.flush()
        # SO_LINGER with a zero timeout makes close() send RST: the client sees a reset.
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.close_connection = True

    def _route(self, method: str, resource: str, params: list[tuple[str, str]], body: bytes) -> tuple[int, str, str | None, Any]:
        sandbox = self.sandbox
        head, _, tail = resource.partition("/")
        if method not in ("GET", "POST") or (method == "POST" and resource != "requests"):
            raise HttpError(405, f"{method} is not allowed on {resource}")
        fields = parse_qsl(body.decode("utf-8", errors="replace"), keep_blank_values=True) if method == "POST" else params
        jurisdiction = validate.first(fields, "jurisdiction_id")
        if sandbox.jurisdiction_id and jurisdiction not in (None, sandbox.jurisdiction_id) or (
                jurisdiction is not None and sandbox.jurisdiction_id is None and sandbox.quirks.jurisdiction_empty):
            if sandbox.quirks.jurisdiction_empty and method == "GET" and resource in ("services", "requests"):
                return (200, "services", "service", []) if resource == "services" else (200, "service_requests", "request", [])
            raise HttpError(404, f"jurisdiction_id {jurisdiction!r} not found")
        if resource == "discovery":
            return 200, "discovery", None, sandbox.discovery()
        if resource == "services":
            return 200, "services", "service", [render.service_item(s) for s in sandbox.services()]
        if head in ("services", "tokens") and tail and sandbox.quirks.no_definitions:
            raise HttpError(404, f"Page not found: {resource}", html=True)
        if head == "services" and tail:
            svc = sandbox.service(tail)
            if svc is None:
                raise HttpError(404, f"service_code {tail!r} not found")
            return 200, "service_definition", None, render.definition(svc)
        if resource == "requests" and method == "POST":
            return self._submit(fields)
        if resource == "requests":
            return 200, "service_requests", "request", self._query(params)
        if head == "requests" and tail:
            rows = sandbox.store.by_ids([tail])
            if not rows and sandbox.quirks.unknown_id_500:
                raise HttpError(500, f"Can't call method \"service_request_id\" on an undefined value ({tail})")
            if not rows:
                raise HttpError(404, f"service_request_id {tail!r} not found")
            return 200, "service_requests", "request", [render.request_item(rows[0], sandbox.quirks)]
        if head == "tokens" and tail:
            known, request_id = sandbox.store.poll_token(tail, sandbox.quirks.token_polls)
            if not known:
                raise HttpError(404, f"token {tail!r} not found")
            return 200, "service_requests", "request", [{"service_request_id": request_id, "token": tail}]
        raise HttpError(404, f"no resource {resource!r}")

    def _submit(self, fields: list[tuple[str, str]]) -> tuple[int, str, str, Any]:
        sandbox = self.sandbox
        catalog = {s.service_code: s for s in sandbox.services()}
        quirks = sandbox.quirks
        required = ("description",) * quirks.require_description + ("email",) * quirks.require_email
        if quirks.address_only_500 and validate.first(fields, "lat") is None:
            # issue-reporting reads `address`, not `address_string`: its model validation fails uncaught.
            raise HttpError(500, "ValidationError: ['Service request requires coordinates or an address']", html=True)
        columns = validate.submission(
            fields, catalog, api_keys=sandbox.api_keys, jurisdiction_id=sandbox.jurisdiction_id, required=required
        )
        svc = catalog[columns["service_code"]]
        notice = f"{svc.agency_responsible or 'The city'} usually responds within 3 business days."
        columns.update(service_notice=notice, expected_at=time.time() + _EXPECTED_S)
        row = sandbox.store.insert(columns, with_token=svc.type == "batch", random_id=quirks.random_ids)
        if sandbox.faults.fire("lose_next_post_replies", "lose_reply_after_commit"):
            raise _LostReply
        if svc.type == "batch":
            item: dict[str, Any] = {"token": row["token"], "service_notice": notice}
        elif svc.type == "blackbox":
            item = {"service_notice": notice}
        else:
            item = {"service_request_id": row["service_request_id"], "service_notice": notice}
        return 200 if quirks.post_200 else 201, "service_requests", "request", [item]

    def _query(self, params: list[tuple[str, str]]) -> list[dict[str, Any]]:
        sandbox = self.sandbox
        quirks = sandbox.quirks
        filters = validate.query(params, time.time(), pagination=quirks.pagination, strict=quirks.strict_params,
                                 whole_seconds=quirks.no_fractional_dates, max_results=quirks.max_results,
                                 page_size=quirks.page_size, page_base=quirks.page_base,
                                 ignore_dates=quirks.ignore_dates)
        if "ids" in filters:
            rows = sandbox.store.by_ids(filters["ids"])
        else:
            page = filters.pop("page", None)
            rows = sandbox.store.query(**dict(filters, limit=filters["limit"] + 1))
            more, rows = len(rows) > filters["limit"], rows[: filters["limit"]]
            if page is not None and quirks.page_size > 0:
                self._page_headers(params, page, filters["limit"], more)
        return [render.request_item(r, sandbox.quirks) for r in rows]

    def _page_headers(self, params: list[tuple[str, str]], page: int, size: int, more: bool) -> None:
        """Name the next page as the server this quirk copies does (issue-reporting: ``X-*``)."""
        links = self.sandbox.quirks.page_links
        if links == "none":
            return
        host = self.headers.get("Host") or f"{self.sandbox.host}:{self.sandbox.port}"
        path = urlsplit(self.path).path
        kept = [(k, v) for k, v in params if k != "page"]
        following = f"http://{host}{path}?{urlencode([*kept, ('page', str(page + 1))])}" if more else None
        if links == "x_next":
            self._headers["X-Page-Size"] = str(size)
            if following:
                self._headers["X-Next-Page-URL"] = following
            if page > self.sandbox.quirks.page_base:
                self._headers["X-Previous-Page-URL"] = (
                    f"http://{host}{path}?{urlencode([*kept, ('page', str(page - 1))])}")
        elif following:
            self._headers["Link"] = f'<{following}>; rel="next"'
