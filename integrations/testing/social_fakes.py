"""Loopback fakes of the social platforms, built from recorded real API exchanges.

Each fake is a real HTTP server on ``127.0.0.1:<free port>`` that the platform's REAL client
library is pointed at through its base-URL setting. Responses are the recorded ones of
``shared/data/social/<platform>/`` (status, headers, body shape, error payloads), and variations
generated from them: many posts made from a recorded post by replacing its id, time, author and
text; more pages; 429s with the platform's rate-limit headers; expired tokens; deletions and
edits. Recorded bodies are personal data: a fake keeps them in memory only, and generated posts
take the recorded *structure* with the caller's texts and invented handles.

Use as a context manager::

    with MastodonFake(data_dir, texts=[...]) as fake:
        source = MastodonSource(MastodonConfig(base_url=fake.url, ...), instance_name="m")
        fake.fail_next(1, "429", retry_after=2)  # the next request is answered 429
"""

from __future__ import annotations

import base64
import copy
import json
import threading
import time
from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

Response = tuple[int, dict[str, str], Any]


def social_data_dir(repo: Path) -> Path:
    """Where the recorded exchanges live: ``<repo>/../shared/data/social``."""
    return repo.parent / "shared" / "data" / "social"


def load_exchange(data_dir: Path, platform: str, name: str) -> dict:
    """One recorded exchange (``request``, ``response``, ``source``, ``notes``)."""
    path = Path(data_dir) / platform / f"{name}.json"
    if not path.is_file():
        raise FileNotFoundError(f"recorded exchange {path} is missing (see shared/data/social/README.md)")
    return json.loads(path.read_text(encoding="utf-8"))


def _iso(when: datetime) -> str:
    return when.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000Z")


class FakeServer:
    """A threaded loopback HTTP server; subclasses implement :meth:`route`.

    Faults: :meth:`fail_next` answers the next ``n`` requests with a 429 (the platform's own
    rate-limit headers), a 503, a 401 (expired token) or drops the connection.
    """

    platform = ""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = Path(data_dir)
        self.lock = threading.RLock()
        self.requests: list[tuple[str, str]] = []  # (method, path?query) of every request
        self._faults: list[tuple[str, dict]] = []
        self._random_faults: tuple[float, tuple[str, ...], Any] | None = None
        self._broken: str | None = None
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle --------------------------------------------------------------------------
    def __enter__(self) -> FakeServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> FakeServer:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:  # bodies are personal data: no logging
                pass

            def _serve(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length) if length else b""
                fake._handle(self, body)

            do_GET = do_POST = do_PUT = do_DELETE = _serve

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name=f"{self.platform}-fake", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    @property
    def url(self) -> str:
        assert self._server is not None, "start the fake first"
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def _next_start(self, step: timedelta, n: int) -> datetime:
        # The first batch ends just before `now`; later batches follow it, so new is newer.
        last = getattr(self, "_last_time", None)
        start = last + step if last is not None else self.now - step * n
        self._last_time = start + step * (n - 1)
        return start

    # -- faults -----------------------------------------------------------------------------
    def fail_next(self, n: int, kind: str, *, after: int = 0, **options: Any) -> None:
        """Answer ``n`` requests, after ``after`` served normally, with ``kind``: "429" (the
        platform's rate-limit headers asking ``retry_after`` seconds), "503", "401" (expired
        token) or "drop" (the connection is closed without an answer)."""
        with self.lock:
            self._faults.extend([("pass", {})] * after + [(kind, options)] * n)

    def fault_rate(self, rate: float, kinds: Sequence[str] = ("503", "drop", "lost"), *, seed: int = 0) -> None:
        """Fault each request with probability ``rate`` (seeded), picking one of ``kinds``.
        "lost" means the request IS processed and then the connection drops before the answer."""
        import random

        with self.lock:
            self._random_faults = (rate, tuple(kinds), random.Random(seed)) if rate > 0 else None

    def break_path(self, prefix: str | None) -> None:
        """Answer every request whose path starts with ``prefix`` with a 503 (None: mend it)."""
        with self.lock:
            self._broken = prefix

    def reply_parents(self) -> list[str]:
        """The native id each reply actually created answers, one entry per created reply."""
        raise NotImplementedError

    def fault_exempt(self, path: str) -> bool:
        """Requests that injected faults skip (Bluesky: the session calls), so that a fault
        lands on the data request a test aims at."""
        return False

    def reply_count(self) -> int:
        """Replies actually created on the platform (a deduplicated retry creates none)."""
        raise NotImplementedError

    def _handle_fault_429(self, wait_s: float) -> Response:
        """The platform's "slow down" answer asking for ``wait_s`` seconds (a 429 by default)."""
        return 429, self.rate_limit_headers(wait_s), {"error": "Too many requests"}

    def rate_limit_headers(self, wait_s: float) -> dict[str, str]:
        """The platform's headers on a 429 asking for ``wait_s`` seconds."""
        return {"retry-after": str(int(wait_s))}

    def unauthorized(self) -> Response:
        return 401, {"content-type": "application/json"}, {"error": "unauthorized"}

    # -- dispatch ---------------------------------------------------------------------------
    def _handle(self, handler: BaseHTTPRequestHandler, body: bytes) -> None:
        parts = urlsplit(handler.path)
        query = {k: v if len(v) > 1 else v[0] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        with self.lock:
            self.requests.append((handler.command, handler.path))
            fault = self._faults.pop(0) if self._faults and not self.fault_exempt(parts.path) else None
            if self._broken and parts.path.startswith(self._broken):
                fault = ("503", {})
            if fault is None and self._random_faults and not self.fault_exempt(parts.path):
                rate, kinds, rng = self._random_faults
                if rng.random() < rate:
                    fault = (rng.choice(kinds), {})
        if fault is not None and fault[0] != "pass":
            kind, opts = fault
            if kind == "lost":
                try:
                    self.route(handler.command, parts.path, query, body, handler.headers)
                finally:
                    handler.close_connection = True
                    handler.connection.shutdown(2)
                return
            if kind == "drop":
                handler.close_connection = True
                handler.wfile.flush()
                handler.connection.shutdown(2)
                return
            if kind == "429":
                status, headers, payload = self._handle_fault_429(opts.get("retry_after", 1))
            elif kind == "401":
                status, headers, payload = self.unauthorized()
            else:
                status, headers, payload = 503, {}, None
        else:
            try:
                status, headers, payload = self.route(handler.command, parts.path, query, body, handler.headers)
            except Exception as exc:  # a fake bug must show as a 500, not hang the client
                status, headers, payload = 500, {}, {"error": f"fake error: {type(exc).__name__}: {exc}"}
        if isinstance(payload, StreamBody):
            self._stream(handler, status, headers, payload)
            return
        if isinstance(payload, (dict, list)):
            data = json.dumps(payload).encode()
            headers = {"content-type": "application/json; charset=utf-8", **headers}
        elif isinstance(payload, str):
            data = payload.encode()
        else:
            data = b""
        handler.send_response(status)  # sends its own Date header
        for key, value in headers.items():
            if key.lower() != "date":  # a recorded Date beside it would make two (clients join them)
                handler.send_header(key, value)
        handler.send_header("content-length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)

    def route(self, method: str, path: str, query: dict, body: bytes, headers: Any) -> Response:
        raise NotImplementedError

    def _stream(self, handler: BaseHTTPRequestHandler, status: int, headers: dict, body: StreamBody) -> None:
        """A chunked, newline-delimited answer; ``None`` from the body drops the connection."""
        handler.send_response(status)
        for key, value in {"content-type": "application/json; charset=utf-8", **headers}.items():
            handler.send_header(key, value)
        handler.send_header("transfer-encoding", "chunked")
        handler.end_headers()
        try:
            for chunk in body.chunks:
                if chunk is None:  # the connection drops mid-stream
                    handler.wfile.flush()
                    handler.close_connection = True
                    handler.connection.shutdown(2)
                    return
                handler.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                handler.wfile.flush()
            handler.wfile.write(b"0\r\n\r\n")
        except OSError:
            pass  # the client went away: the end of a bounded run
        handler.close_connection = True


class StreamBody:
    """A streamed response: an iterable of byte chunks (``None`` = drop the connection)."""

    def __init__(self, chunks: Any) -> None:
        self.chunks = chunks


# ======================================================================================
# Mastodon
# ======================================================================================


class MastodonFake(FakeServer):
    """Mastodon 4.x REST API: hashtag and local timelines with ``max_id``/``since_id``/``min_id``
    and Link headers, status lookup (404 when deleted), replies with ``Idempotency-Key``.

    Posts are made from the recorded status of ``hashtag_timeline.json``; the recorded pages
    (``hashtag_timeline_page1/2``) can also be served as recorded with :meth:`serve_recorded_pages`.
    """

    platform = "mastodon"

    def __init__(self, data_dir: Path, *, tag: str = "pothole", now: datetime | None = None) -> None:
        super().__init__(data_dir)
        self.tag = tag
        self.now = now or datetime.now(timezone.utc)
        rec = load_exchange(data_dir, "mastodon", "hashtag_timeline")
        self._template = rec["response"]["body"][0]
        self._headers = {k: v for k, v in rec["response"]["headers"].items() if k.startswith("x-ratelimit")}
        self._not_found = load_exchange(data_dir, "mastodon", "error_404_status_missing")["response"]
        self._unauth = load_exchange(data_dir, "mastodon", "error_401_invalid_token")["response"]
        self._reply_template = load_exchange(data_dir, "mastodon", "status_post_reply")["response"]["body"]
        self._instance = load_exchange(data_dir, "mastodon", "instance_v2_production")["response"]
        self.statuses: dict[int, dict] = {}  # id -> status (newest has the largest id)
        self.deleted: set[int] = set()
        self.replies: dict[str, dict] = {}  # idempotency key -> created reply
        self.reply_posts = 0  # replies actually created (a repeated key creates none)
        self.reply_statuses: list[dict] = []  # every reply created, oldest first
        self._next_id = 117_020_600_000_000_000
        self._recorded: dict[str, dict] | None = None

    def add_posts(self, texts: Sequence[str], *, tag: str | None = None, start: datetime | None = None,
                  step: timedelta = timedelta(minutes=3), lang: str = "en", times: Sequence[datetime] | None = None,
                  langs: Sequence[str | None] | None = None) -> list[str]:
        """Publish one status per text (oldest first), tagged; returns their ids. ``times`` and
        ``langs`` give each status its own time and language instead of ``start + i * step``."""
        ids = []
        with self.lock:
            when = start or self._next_start(step, len(texts))
            for i, text in enumerate(texts):
                self._next_id += 1000
                sid = self._next_id
                status = copy.deepcopy(self._template)
                n = sid % 997
                status.update({
                    "id": str(sid), "created_at": _iso(times[i] if times else when + step * i), "edited_at": None,
                    "content": f"<p>{_escape(text)}</p>" if text else "",
                    "language": langs[i] if langs else lang, "spoiler_text": "",
                    "uri": f"{self.url}/users/resident{n}/statuses/{sid}", "url": f"{self.url}/@resident{n}/{sid}",
                    "tags": [{"name": tag or self.tag, "url": f"{self.url}/tags/{tag or self.tag}"}],
                    "in_reply_to_id": None, "reblog": None, "mentions": [],
                })
                status["account"] = {**status["account"], "id": str(n), "username": f"resident{n}",
                                     "acct": f"resident{n}", "display_name": f"Resident {n}",
                                     "url": f"{self.url}/@resident{n}", "note": ""}
                self.statuses[sid] = status
                ids.append(str(sid))
        return ids

    def reply_count(self) -> int:
        return self.reply_posts

    def reply_parents(self) -> list[str]:
        """The post each reply actually created answers (one entry per created reply)."""
        with self.lock:
            return [str(r["in_reply_to_id"]) for r in self.reply_statuses]

    def delete(self, status_id: str) -> None:
        with self.lock:
            self.deleted.add(int(status_id))

    def edit(self, status_id: str, text: str) -> None:
        with self.lock:
            status = self.statuses[int(status_id)]
            status["content"] = f"<p>{_escape(text)}</p>"
            status["edited_at"] = _iso(datetime.now(timezone.utc))

    def serve_recorded_pages(self) -> None:
        """Answer the recorded tag's timeline with the recorded pages, bodies and Link headers."""
        page1 = load_exchange(self.data_dir, "mastodon", "hashtag_timeline_page1")
        page2 = load_exchange(self.data_dir, "mastodon", "hashtag_timeline_page2_max_id")
        empty = load_exchange(self.data_dir, "mastodon", "hashtag_timeline_poll_min_id_empty")
        self._recorded = {"page1": page1, "page2": page2, "empty": empty,
                          "tag": urlsplit(page1["request"]["url"]).path.rsplit("/", 1)[1],
                          "page2_max_id": parse_qs(urlsplit(page2["request"]["url"]).query)["max_id"][0]}

    def rate_limit_headers(self, wait_s: float) -> dict[str, str]:
        reset = datetime.now(timezone.utc) + timedelta(seconds=wait_s)
        # Mastodon's real 429 carries X-RateLimit-* with an ISO reset time (no Retry-After).
        return {"x-ratelimit-limit": "300", "x-ratelimit-remaining": "0",
                "x-ratelimit-reset": reset.strftime("%Y-%m-%dT%H:%M:%S.%fZ")}

    def unauthorized(self) -> Response:
        return self._unauth["status"], dict(self._unauth["headers"]), self._unauth["body"]

    def fault_exempt(self, path: str) -> bool:
        # Mastodon.py asks for the instance (API versions) once, before its first real call.
        return path.rstrip("/") == "/api/v2/instance"

    def route(self, method: str, path: str, query: dict, body: bytes, headers: Any) -> Response:
        if method == "GET" and path.rstrip("/") == "/api/v2/instance":
            return self._instance["status"], dict(self._instance["headers"]), self._instance["body"]
        if method == "GET" and path.startswith("/api/v1/timelines/tag/"):
            tag = path.rsplit("/", 1)[1]
            if self._recorded and tag == self._recorded["tag"]:
                return self._recorded_page(query)
            return self._timeline(path, query, lambda s: any(t["name"].lower() == tag.lower() for t in s["tags"]))
        if method == "GET" and path == "/api/v1/timelines/public":
            return self._timeline(path, query, lambda s: True)
        if method == "GET" and path == "/api/v1/accounts/verify_credentials":
            return 200, self._rl(), self._reply_template["account"]  # the recorded replying account
        if method == "GET" and path.startswith("/api/v1/statuses/") and path.endswith("/context"):
            # The published Context shape; descendants are the replies under the status.
            sid = path.split("/")[-2]
            with self.lock:
                if int(sid) not in self.statuses or int(sid) in self.deleted:
                    return self._not_found["status"], dict(self._not_found["headers"]), self._not_found["body"]
                under = [r for r in self.reply_statuses if str(r.get("in_reply_to_id")) == sid]
            return 200, self._rl(), {"ancestors": [], "descendants": under}
        if path.startswith("/api/v1/statuses/") and method == "GET":
            sid = int(path.rsplit("/", 1)[1])
            with self.lock:
                if sid not in self.statuses or sid in self.deleted:
                    return self._not_found["status"], dict(self._not_found["headers"]), self._not_found["body"]
                return 200, self._rl(), self.statuses[sid]
        if path == "/api/v1/statuses" and method == "POST":
            return self._post_status(body, headers)
        return 404, {}, {"error": "Not Found"}

    def _rl(self) -> dict[str, str]:
        reset = (datetime.now(timezone.utc) + timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        return {**self._headers, "x-ratelimit-reset": reset}

    def _timeline(self, path: str, query: dict, keep: Any) -> Response:
        limit = min(int(query.get("limit", 20)), 40)
        max_id = int(query["max_id"]) if query.get("max_id") else None
        since_id = int(query["since_id"]) if query.get("since_id") else None
        min_id = int(query["min_id"]) if query.get("min_id") else None
        with self.lock:
            ids = sorted((i for i, s in self.statuses.items() if i not in self.deleted and keep(s)), reverse=True)
            ids = [i for i in ids if (max_id is None or i < max_id) and (since_id is None or i > since_id)
                   and (min_id is None or i > min_id)]
            page = ids[-limit:] if min_id is not None else ids[:limit]  # min_id pages up from the floor
            items = [self.statuses[i] for i in page]
        headers = self._rl()
        if items:
            base = f"{self.url}{path}"
            extra = "&local=true" if path.endswith("/public") else ""
            headers["link"] = (f'<{base}?limit={limit}{extra}&max_id={page[-1]}>; rel="next", '
                               f'<{base}?limit={limit}{extra}&min_id={page[0]}>; rel="prev"')
        return 200, headers, items

    def _recorded_page(self, query: dict) -> Response:
        rec = self._recorded
        assert rec is not None
        if query.get("max_id") == rec["page2_max_id"]:
            ex = rec["page2"]
        elif query.get("max_id") or query.get("min_id") or query.get("since_id"):
            ex = rec["empty"]  # past the recorded pages, or polling above the newest: []
        else:
            ex = rec["page1"]
        headers = dict(ex["response"]["headers"])
        if "link" in headers:
            headers["link"] = headers["link"].replace("https://mastodon.example", self.url)
        return ex["response"]["status"], headers, ex["response"]["body"]

    def _post_status(self, body: bytes, headers: Any) -> Response:
        form = {k: v[0] for k, v in parse_qs(body.decode()).items()} if body else {}
        if not form and body:
            form = json.loads(body)
        key = headers.get("Idempotency-Key")
        with self.lock:
            if key and key in self.replies:
                return 200, self._rl(), self.replies[key]
            self._next_id += 1
            reply = copy.deepcopy(self._reply_template)
            reply.update({"id": str(self._next_id), "content": f"<p>{_escape(form.get('status', ''))}</p>",
                          "in_reply_to_id": form.get("in_reply_to_id"), "created_at": _iso(datetime.now(timezone.utc))})
            self.reply_posts += 1
            self.reply_statuses.append(reply)
            if key:
                self.replies[key] = reply
        return 200, self._rl(), reply


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


# ======================================================================================
# Bluesky (XRPC)
# ======================================================================================


def fake_jwt(subject: str, *, expires_in_s: float, scope: str = "com.atproto.access") -> str:
    """An unsigned JWT shaped like a PDS's (the recordings' tokens are REDACTED)."""
    def b64(data: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")
    now = int(time.time())
    return f"{b64({'typ': 'at+jwt', 'alg': 'ES256K'})}.{b64({'scope': scope, 'sub': subject, 'iat': now, 'exp': int(now + expires_in_s)})}.c2ln"


class BlueskyFake(FakeServer):
    """Bluesky PDS/AppView over XRPC: createSession/refreshSession, searchPosts (``sort=latest``,
    ``since``, offset ``cursor`` like the recorded ``"25"``), getPosts (a deleted post is absent),
    createRecord (replies), with the recorded ``RateLimit-*`` headers.
    """

    platform = "bluesky"

    def __init__(self, data_dir: Path, *, now: datetime | None = None, access_ttl_s: float = 7200) -> None:
        super().__init__(data_dir)
        self.now = now or datetime.now(timezone.utc)
        search = load_exchange(data_dir, "bluesky", "search_posts")
        self._template = search["response"]["body"]["posts"][0]
        self._headers = {k: v for k, v in search["response"]["headers"].items() if k.startswith("ratelimit")}
        self._session = load_exchange(data_dir, "bluesky", "create_session")["response"]
        self._session_401 = load_exchange(data_dir, "bluesky", "create_session_401")["response"]
        self._created = load_exchange(data_dir, "bluesky", "create_record_reply")["response"]
        self.access_ttl_s = access_ttl_s
        self.posts: list[dict] = []  # oldest first
        self.deleted: set[str] = set()
        self.records: list[dict] = []  # records created through createRecord
        self.valid_tokens: set[str] = set()
        self.refreshes = 0
        self.password = "app-password"
        self._n = 0

    def add_posts(self, texts: Sequence[str], *, start: datetime | None = None,
                  step: timedelta = timedelta(minutes=3), lang: str = "en") -> list[str]:
        uris = []
        with self.lock:
            when = start or self._next_start(step, len(texts))
            for i, text in enumerate(texts):
                self._n += 1
                n = self._n
                did = f"did:plc:resident{n % 97:04d}"
                uri = f"at://{did}/app.bsky.feed.post/3lfake{n:07d}"
                post = copy.deepcopy(self._template)
                stamp = _iso(when + step * i)
                post.update({"uri": uri, "cid": f"bafyreifake{n:010d}", "indexedAt": stamp})
                post["author"] = {**post["author"], "did": did, "handle": f"resident{n % 97}.bsky.social",
                                  "displayName": f"Resident {n % 97}", "avatar": None}
                post["author"] = {k: v for k, v in post["author"].items() if v is not None}
                post["record"] = {"$type": "app.bsky.feed.post", "createdAt": stamp, "text": text, "langs": [lang]}
                post.pop("embed", None)
                self.posts.append(post)
                uris.append(uri)
        return uris

    def reply_count(self) -> int:
        return len(self.records)

    def reply_parents(self) -> list[str]:
        with self.lock:
            return [r["record"]["reply"]["parent"]["uri"] for r in self.records]

    def fault_exempt(self, path: str) -> bool:
        return path.split("/")[-1] in {"com.atproto.server.createSession", "com.atproto.server.refreshSession",
                                       "app.bsky.actor.getProfile"}

    def delete(self, uri: str) -> None:
        with self.lock:
            self.deleted.add(uri)

    def edit(self, uri: str, text: str) -> None:
        with self.lock:
            for post in self.posts:
                if post["uri"] == uri:
                    post["record"] = {**post["record"], "text": text}

    def expire_tokens(self) -> None:
        """Every access token issued so far is now expired (the next call gets 400 ExpiredToken)."""
        with self.lock:
            self.valid_tokens.clear()

    def rate_limit_headers(self, wait_s: float) -> dict[str, str]:
        return {"ratelimit-limit": "3000", "ratelimit-remaining": "0", "ratelimit-policy": "3000;w=300",
                "ratelimit-reset": str(int(time.time() + wait_s))}

    def unauthorized(self) -> Response:
        return 400, {"content-type": "application/json"}, {"error": "ExpiredToken", "message": "Token has expired"}

    def _session_body(self) -> dict:
        body = copy.deepcopy(self._session["body"])
        access = fake_jwt(body["did"], expires_in_s=self.access_ttl_s)
        refresh = fake_jwt(body["did"], expires_in_s=90 * 86400, scope="com.atproto.refresh")
        body.update({"accessJwt": access, "refreshJwt": refresh})
        for service in body.get("didDoc", {}).get("service", []):
            service["serviceEndpoint"] = self.url  # the PDS says where it lives: here
        self.valid_tokens.add(access)
        self.valid_tokens.add(refresh)
        return body

    def route(self, method: str, path: str, query: dict, body: bytes, headers: Any) -> Response:
        name = path.removeprefix("/xrpc/")
        with self.lock:
            if name == "com.atproto.server.createSession":
                data = json.loads(body or b"{}")
                if data.get("password") != self.password:
                    r = self._session_401
                    return r["status"], dict(r["headers"]), r["body"]
                return 200, dict(self._session["headers"]), self._session_body()
            token = (headers.get("Authorization") or "").removeprefix("Bearer ").strip()
            if name == "com.atproto.server.refreshSession":
                if token not in self.valid_tokens:
                    return 400, {}, {"error": "ExpiredToken", "message": "Token has expired"}
                self.refreshes += 1
                body_out = self._session_body()
                return 200, dict(self._session["headers"]), {k: body_out[k] for k in ("did", "handle", "accessJwt", "refreshJwt", "didDoc", "active")}
            if token not in self.valid_tokens:
                return self.unauthorized()
            if name == "app.bsky.actor.getProfile":
                return 200, self._rl(), {"did": self._session["body"]["did"], "handle": self._session["body"]["handle"]}
            if name == "app.bsky.feed.searchPosts":
                return self._search(query)
            if name == "app.bsky.feed.getPosts":
                uris = query.get("uris") or []
                uris = [uris] if isinstance(uris, str) else uris
                found = {p["uri"]: p for p in self.posts if p["uri"] not in self.deleted}
                return 200, self._rl(), {"posts": [found[u] for u in uris if u in found]}
            if name == "com.atproto.repo.getRecord":
                uri = f"at://{query.get('repo')}/{query.get('collection')}/{query.get('rkey')}"
                record = next((r for r in self.records if r["uri"] == uri), None)
                if record is None:
                    return 400, self._rl(), {"error": "RecordNotFound", "message": f"Could not locate record: {uri}"}
                # The recorded getRecord shape: uri, cid, value (the record as written).
                return 200, self._rl(), {"uri": uri, "cid": self._created["body"]["cid"], "value": record["record"]}
            if name == "com.atproto.repo.createRecord":
                data = json.loads(body)
                rkey = data.get("rkey") or f"3lreply{len(self.records):07d}"
                uri = f"at://{data['repo']}/{data['collection']}/{rkey}"
                if any(r["uri"] == uri for r in self.records):
                    # Not recorded upstream: a PDS refuses a second record under one key.
                    return 400, self._rl(), {"error": "InvalidRequest", "message": "Record already exists"}
                self.records.append({"uri": uri, **data})
                out = copy.deepcopy(self._created["body"])
                out["uri"] = uri
                return 200, self._rl(), out
        return 404, {}, {"error": "MethodNotImplemented", "message": f"{name} is not served by this fake"}

    def _rl(self) -> dict[str, str]:
        return {**self._headers, "ratelimit-reset": str(int(time.time()) + 300)}

    def _search(self, query: dict) -> Response:
        q = str(query.get("q", "")).lower()
        limit = min(int(query.get("limit", 25)), 100)
        offset = int(query.get("cursor") or 0)
        since = query.get("since")
        words = [w for w in q.split() if w]
        hits = [p for p in reversed(self.posts) if p["uri"] not in self.deleted
                and all(w in p["record"]["text"].lower() for w in words)  # "#tag" finds the tag only
                and (not since or p["indexedAt"] >= since)]
        page = hits[offset:offset + limit]
        out: dict[str, Any] = {"posts": page}
        if offset + limit < len(hits):
            out["cursor"] = str(offset + limit)
        return 200, self._rl(), out


# ======================================================================================
# Reddit
# ======================================================================================


def _b36(number: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while number:
        number, rem = divmod(number, 36)
        out = digits[rem] + out
    return out or "0"


class RedditFake(FakeServer):
    """Reddit's OAuth API: token endpoint, ``/r/<sub>/new`` and ``/r/<sub>/comments`` Listings
    paged by ``after``, ``/api/info`` (deleted things read ``[deleted]``), ``/api/comment``.
    Things are made from the recorded Listings' first child; 429s are the recorded HTML page
    with ``retry-after``.
    """

    platform = "reddit"

    def __init__(self, data_dir: Path, *, subreddit: str = "chicago", now: datetime | None = None) -> None:
        super().__init__(data_dir)
        self.subreddit = subreddit
        self.now = now or datetime.now(timezone.utc)
        self._t3 = load_exchange(data_dir, "reddit", "subreddit_new_listing")["response"]["body"]["data"]["children"][0]
        comments = load_exchange(data_dir, "reddit", "subreddit_comments_listing")["response"]
        self._t1 = comments["body"]["data"]["children"][0]
        self._headers = {k: v for k, v in load_exchange(data_dir, "reddit", "comment_info_after_delete")["response"]["headers"].items()
                         if k.startswith("x-ratelimit")}
        self._token = load_exchange(data_dir, "reddit", "oauth_token_refresh")["response"]
        self._429 = load_exchange(data_dir, "reddit", "error_429_with_retry_headers")["response"]
        self._401 = load_exchange(data_dir, "reddit", "error_401_invalid_token")["response"]
        self._reply = load_exchange(data_dir, "reddit", "comment_reply")["response"]
        self.things: dict[str, dict] = {}  # fullname -> thing (kind + data)
        self.order: list[str] = []  # oldest first
        self.deleted: set[str] = set()
        self.replies: list[dict] = []
        self.own_comments: list[dict] = []  # the city account's comments (the replies), oldest first
        self.account = "city311_account"
        self.tokens: set[str] = set()
        self._n = 36 ** 5

    def reply_count(self) -> int:
        return len(self.replies)

    def reply_parents(self) -> list[str]:
        with self.lock:
            return [r["thing_id"] for r in self.replies]

    def add_posts(self, texts: Sequence[str], *, kind: str = "t3", start: datetime | None = None,
                  step: timedelta = timedelta(minutes=3), lang: str = "en") -> list[str]:
        names = []
        with self.lock:
            when = start or self._next_start(step, len(texts))
            for i, text in enumerate(texts):
                self._n += 1
                tid = _b36(self._n)
                thing = copy.deepcopy(self._t3 if kind == "t3" else self._t1)
                data = thing["data"]
                stamp = (when + step * i).timestamp()
                author = f"resident_{self._n % 89}"
                data.update({"id": tid, "name": f"{kind}_{tid}", "created_utc": stamp, "created": stamp,
                             "author": author, "subreddit": self.subreddit, "edited": False})
                if kind == "t3":
                    data.update({"title": text, "selftext": "", "selftext_html": None, "is_self": True,
                                 "permalink": f"/r/{self.subreddit}/comments/{tid}/x/", "url": f"/r/{self.subreddit}/comments/{tid}/x/"})
                    data.pop("crosspost_parent", None)
                else:
                    data.update({"body": text, "body_html": None, "parent_id": "t3_parent", "link_id": "t3_parent",
                                 "replies": "", "permalink": f"/r/{self.subreddit}/comments/parent/x/{tid}/"})
                self.things[data["name"]] = thing
                self.order.append(data["name"])
                names.append(data["name"])
        return names

    def delete(self, name: str) -> None:
        with self.lock:
            data = self.things[name]["data"]
            data["author"] = "[deleted]"
            data["body" if name.startswith("t1_") else "selftext"] = "[deleted]"
            self.deleted.add(name)

    def edit(self, name: str, text: str) -> None:
        with self.lock:
            data = self.things[name]["data"]
            if name.startswith("t1_"):
                data["body"] = text
            else:
                data["title"] = text
            data["edited"] = time.time()

    def rate_limit_headers(self, wait_s: float) -> dict[str, str]:
        return {"content-type": self._429["headers"]["content-type"], "retry-after": str(int(wait_s))}

    def _handle_fault_429(self, wait_s: float) -> Response:
        return 429, self.rate_limit_headers(wait_s), self._429["body"]  # the recorded HTML page

    def unauthorized(self) -> Response:
        return self._401["status"], dict(self._401["headers"]), self._401["body"]

    def fault_exempt(self, path: str) -> bool:
        return path == "/api/v1/access_token"

    def _listing(self, names: list[str], after: str | None) -> dict:
        return {"kind": "Listing", "data": {"after": after, "before": None, "modhash": None, "dist": len(names),
                                            "children": [self.things[n] for n in names]}}

    def route(self, method: str, path: str, query: dict, body: bytes, headers: Any) -> Response:
        path = path.rstrip("/")
        with self.lock:
            if path == "/api/v1/access_token":
                token = dict(self._token["body"])
                token["access_token"] = f"fake-token-{len(self.tokens)}"
                self.tokens.add(token["access_token"])
                return 200, dict(self._token["headers"]), token
            auth = (headers.get("Authorization") or "").removeprefix("bearer ").removeprefix("Bearer ")
            if auth not in self.tokens:
                return self.unauthorized()
            if path.startswith("/r/") and path.split("/")[-1] in {"new", "comments"}:
                kind = "t3" if path.endswith("/new") else "t1"
                sub = path.split("/")[2]
                names = [n for n in reversed(self.order) if n.startswith(kind) and n not in self.deleted
                         and self.things[n]["data"]["subreddit"].lower() == sub.lower()]
                after = query.get("after")
                if after:
                    names = names[names.index(after) + 1:] if after in names else []
                limit = int(query.get("limit", 25))
                page = names[:limit]
                return 200, self._rl(), self._listing(page, page[-1] if len(names) > limit else None)
            if path == "/api/info":
                ids = str(query.get("id", "")).split(",")
                return 200, self._rl(), self._listing([i for i in ids if i in self.things], None)
            if path == "/api/comment" and method == "POST":
                form = {k: v[0] for k, v in parse_qs(body.decode()).items()}
                out = copy.deepcopy(self._reply["body"])
                thing = out["json"]["data"]["things"][0]
                tid = _b36(36 ** 6 + len(self.replies))
                thing["data"].update({"body": form.get("text", ""), "parent_id": form.get("thing_id"),
                                      "id": tid, "name": f"t1_{tid}", "author": self.account,
                                      "created_utc": time.time()})
                self.replies.append(form)
                self.own_comments.append(copy.deepcopy(thing))
                return 200, self._rl(), out
            if path == "/api/v1/me":
                # The published shape (trimmed): the account's name is what a client needs.
                return 200, self._rl(), {"name": self.account, "id": "cityacct", "created_utc": 1.5e9,
                                         "comment_karma": 0, "link_karma": 0, "is_employee": False}
            if path == f"/user/{self.account}/comments":
                newest = list(reversed(self.own_comments))
                after = query.get("after")
                names = [c["data"]["name"] for c in newest]
                start = names.index(after) + 1 if after in names else 0
                limit = int(query.get("limit", 25))
                page = newest[start:start + limit]
                more = start + limit < len(newest)
                return 200, self._rl(), {"kind": "Listing", "data": {
                    "after": page[-1]["data"]["name"] if more and page else None, "before": None, "modhash": None,
                    "dist": len(page), "children": page}}
        return 404, {}, {"message": "Not Found", "error": 404}

    def _rl(self) -> dict[str, str]:
        return dict(self._headers)


# ======================================================================================
# X (API v2)
# ======================================================================================


class XFake(FakeServer):
    """X API v2: recent search (``since_id``, ``start_time``, ``next_token``, expansions for
    users and places), Tweet lookup (a deleted id answers ``resource-not-found`` in
    ``errors[]``, the shape of the published API; none was recorded), create Tweet (201 as
    recorded). Tweets are made from the recorded fully-expanded search result, with the
    recorded ``x-rate-limit-*`` headers.
    """

    platform = "x"

    def __init__(self, data_dir: Path, *, now: datetime | None = None) -> None:
        super().__init__(data_dir)
        self.now = now or datetime.now(timezone.utc)
        full = load_exchange(data_dir, "x", "search_recent_hashtag_full_expansions")["response"]["body"]
        self._tweet = {k: v for k, v in full["data"][0].items() if k not in {"entities", "context_annotations", "referenced_tweets"}}
        self._user = full["includes"]["users"][0]
        self._place = full["includes"]["places"][0]
        headed = load_exchange(data_dir, "x", "search_recent_rate_limit_headers")["response"]
        self._headers = {k: v for k, v in headed["headers"].items() if k.startswith("x-") or k == "api-version"}
        self._created = load_exchange(data_dir, "x", "create_tweet")["response"]
        self.tweets: list[dict] = []  # oldest first
        self.places: dict[str, dict] = {}
        self.users: dict[str, dict] = {}
        self.deleted: set[str] = set()
        self.created: list[dict] = []  # bodies of every create Tweet request served
        self.own_tweets: list[dict] = []  # the city account's Tweets (the replies), oldest first
        self.me = {**self._user, "id": "9990001", "username": "city311", "name": "City 311"}
        self.stream_rules: dict[str, dict] = {}  # rule id -> {id, value, tag}
        self.stream_connections = 0
        self.stream_delivered: list[str] = []  # Tweet ids sent on the stream, in order
        self.stream_hold_s = 30.0  # how long a connection stays open after its backlog
        self.keep_alive_s = 0.2  # X: every 20 s; shorter here so runs end promptly
        self._recorded_stream: tuple[list[bytes], bytes] | None = None
        self._rule_id = 1_500_000_000_000_000_000
        self._id = 1_800_000_000_000_000_000

    def reply_count(self) -> int:
        return len(self.created)

    def reply_parents(self) -> list[str]:
        with self.lock:
            return [r["reply"]["in_reply_to_tweet_id"] for r in self.created]

    def add_posts(self, texts: Sequence[str], *, start: datetime | None = None, step: timedelta = timedelta(minutes=3),
                  lang: str = "en", point: tuple[float, float] | None = None, place: tuple[str, list[float]] | None = None) -> list[str]:
        """Publish Tweets; ``point`` = (lat, lon) exact geo, ``place`` = (full name, bbox)."""
        ids = []
        with self.lock:
            when = start or self._next_start(step, len(texts))
            for i, text in enumerate(texts):
                self._id += 1 << 22
                tid = str(self._id)
                uid = str(1000 + self._id % 71)
                self.users[uid] = {**self._user, "id": uid, "username": f"resident{uid}", "name": f"Resident {uid}"}
                tweet = {**copy.deepcopy(self._tweet), "id": tid, "text": text, "author_id": uid, "lang": lang,
                         "conversation_id": tid, "created_at": _iso(when + step * i), "edit_history_tweet_ids": [tid]}
                tweet.pop("geo", None)
                if point or place:
                    tweet["geo"] = {}
                    if point:
                        tweet["geo"]["coordinates"] = {"type": "Point", "coordinates": [point[1], point[0]]}
                    if place:
                        pid = f"{abs(hash(place[0])) % 10**16:016x}"
                        self.places[pid] = {**self._place, "id": pid, "full_name": place[0], "name": place[0].split(",")[0],
                                            "geo": {**self._place["geo"], "bbox": place[1]}}
                        tweet["geo"]["place_id"] = pid
                self.tweets.append(tweet)
                ids.append(tid)
        return ids

    def delete(self, tweet_id: str) -> None:
        with self.lock:
            self.deleted.add(tweet_id)

    def edit(self, tweet_id: str, text: str) -> None:
        """An edit makes a new Tweet id; both versions list the whole history (as recorded)."""
        with self.lock:
            old = next(t for t in self.tweets if t["id"] == tweet_id)
            self._id += 1 << 22
            new = {**copy.deepcopy(old), "id": str(self._id), "text": text}
            history = [*old["edit_history_tweet_ids"], new["id"]]
            old["edit_history_tweet_ids"] = new["edit_history_tweet_ids"] = history
            new["_edit_of"] = tweet_id
            self.tweets.append(new)

    def rate_limit_headers(self, wait_s: float) -> dict[str, str]:
        return {**self._headers, "x-rate-limit-remaining": "0", "x-rate-limit-reset": str(int(time.time() + wait_s))}

    def unauthorized(self) -> Response:
        return 401, {"content-type": "application/problem+json"}, {
            "title": "Unauthorized", "type": "about:blank", "status": 401, "detail": "Unauthorized"}

    def _public(self, tweet: dict) -> dict:
        return {k: v for k, v in tweet.items() if not k.startswith("_")}

    def _body(self, tweets: list[dict]) -> dict:
        users = {t["author_id"] for t in tweets}
        places = {(t.get("geo") or {}).get("place_id") for t in tweets} - {None}
        out: dict[str, Any] = {"data": [self._public(t) for t in tweets]} if tweets else {}
        includes = {}
        if users:
            includes["users"] = [self.users[u] for u in users]
        if places:
            includes["places"] = [self.places[p] for p in places]
        if includes:
            out["includes"] = includes
        return out

    def route(self, method: str, path: str, query: dict, body: bytes, headers: Any) -> Response:
        with self.lock:
            if path == "/2/tweets/search/recent":
                since_id = int(query.get("since_id") or 0)
                start = query.get("start_time")
                # Search returns the latest version of an edited Tweet only (older ids are superseded).
                hits = [t for t in reversed(self.tweets) if t["id"] not in self.deleted and int(t["id"]) > since_id
                        and (not start or t["created_at"] >= start.replace("Z", ".000Z"))
                        and t["edit_history_tweet_ids"][-1] == t["id"] and "_edit_of" not in t]
                offset = int(query.get("next_token") or 0)
                limit = int(query.get("max_results", 10))
                page = hits[offset:offset + limit]
                out = self._body(page)
                meta: dict[str, Any] = {"result_count": len(page)}
                if page:
                    meta.update({"newest_id": page[0]["id"], "oldest_id": page[-1]["id"]})
                if offset + limit < len(hits):
                    meta["next_token"] = str(offset + limit)
                out["meta"] = meta
                return 200, self._rl(), out
            if path == "/2/tweets" and method == "GET":
                ids = str(query.get("ids", "")).split(",")
                by_id = {t["id"]: t for t in self.tweets if t["id"] not in self.deleted}
                out = self._body([by_id[i] for i in ids if i in by_id])
                missing = [i for i in ids if i not in by_id]
                if missing:
                    out["errors"] = [{"value": i, "detail": f"Could not find tweet with ids: [{i}].", "title": "Not Found Error",
                                      "resource_type": "tweet", "parameter": "ids", "resource_id": i,
                                      "type": "https://api.twitter.com/2/problems/resource-not-found"} for i in missing]
                return 200, self._rl(), out
            if path == "/2/tweets" and method == "POST":
                data = json.loads(body)
                self._id += 1 << 22
                self.created.append(data)
                out = copy.deepcopy(self._created["body"])
                out["data"].update({"id": str(self._id), "text": data.get("text", "")})
                own = {"id": str(self._id), "text": data.get("text", ""), "edit_history_tweet_ids": [str(self._id)],
                       "conversation_id": str(self._id)}
                replied = (data.get("reply") or {}).get("in_reply_to_tweet_id")
                if replied:
                    own["referenced_tweets"] = [{"type": "replied_to", "id": replied}]
                    own["conversation_id"] = replied
                self.own_tweets.append(own)
                hdrs = {k: v for k, v in self._created["headers"].items() if k != "location"}
                return self._created["status"], hdrs, out
            if path == "/2/tweets/search/stream/rules":
                return self._rules(method, body)
            if path == "/2/tweets/search/stream" and method == "GET":
                self.stream_connections += 1
                return 200, {}, StreamBody(self._stream_lines(self.stream_connections))
            if path == "/2/users/me":
                return 200, self._rl(), {"data": self.me}
            if path == f"/2/users/{self.me['id']}/tweets" and method == "GET":
                # Newest first, paged by pagination_token (the published shape of the user
                # Tweet timeline; meta as in the recorded mentions timeline).
                limit = int(query.get("max_results", 10))
                offset = int(query.get("pagination_token") or 0)
                newest = list(reversed(self.own_tweets))
                page = newest[offset:offset + limit]
                meta: dict[str, Any] = {"result_count": len(page)}
                if page:
                    meta.update({"newest_id": page[0]["id"], "oldest_id": page[-1]["id"]})
                if offset + limit < len(newest):
                    meta["next_token"] = str(offset + limit)
                return 200, self._rl(), {**({"data": page} if page else {}), "meta": meta}
        return 404, {}, {"title": "Not Found Error", "detail": path}

    def _rl(self) -> dict[str, str]:
        return {**self._headers, "x-rate-limit-reset": str(int(time.time()) + 900)}

    # -- filtered stream (the published v2 shapes; the recording has messages, not rules) ---
    def serve_recorded_stream(self) -> None:
        """The first connection also replays the 7 recorded stream messages and then the
        recorded truncated line, after which the connection drops (as recorded)."""
        rec = load_exchange(self.data_dir, "x", "filtered_stream_messages")["response"]
        self._recorded_stream = ([json.dumps(m).encode() for m in rec["body"]],
                                 str(rec["body_truncated_tail"]).encode())

    def _rules(self, method: str, body: bytes) -> Response:
        sent = _iso(datetime.now(timezone.utc))
        if method == "GET":
            data = list(self.stream_rules.values())
            return 200, self._rl(), {**({"data": data} if data else {}), "meta": {"sent": sent, "result_count": len(data)}}
        request = json.loads(body or b"{}")
        if "delete" in request:
            ids = [str(i) for i in request["delete"].get("ids") or []]
            gone = [i for i in ids if self.stream_rules.pop(i, None) is not None]
            return 200, self._rl(), {"meta": {"sent": sent, "summary": {"deleted": len(gone), "not_deleted": len(ids) - len(gone)}}}
        created, errors = [], []
        for rule in request.get("add") or []:
            if len(rule.get("value", "")) > 512:
                errors.append({"value": rule["value"], "title": "InvalidRule",
                               "details": ["Rule length exceeds 512 characters"],
                               "type": "https://api.twitter.com/2/problems/invalid-rules"})
                continue
            self._rule_id += 1
            entry = {"id": str(self._rule_id), "value": rule["value"], **({"tag": rule["tag"]} if rule.get("tag") else {})}
            self.stream_rules[entry["id"]] = entry
            created.append(entry)
        summary = {"created": len(created), "not_created": len(errors), "valid": len(created), "invalid": len(errors)}
        out: dict[str, Any] = {"meta": {"sent": sent, "summary": summary}}
        if created:
            out["data"] = created
        if errors:
            out["errors"] = errors
        return 201, self._rl(), out

    def _matching(self, tweet: dict) -> list[dict]:
        text = tweet["text"].lower()
        hits = []
        for rule in self.stream_rules.values():
            group = rule["value"].split(")")[0].lstrip("(")
            terms = [t.strip().strip('"').lower() for t in group.split(" OR ")]
            if any(t and t in text for t in terms):
                hits.append({"id": rule["id"], **({"tag": rule["tag"]} if "tag" in rule else {})})
        return hits

    def _stream_lines(self, connection: int) -> Any:
        """One connection: (on a reconnect, the last Tweet again: X may redeliver), every Tweet
        matching a rule not yet delivered, keep-alive lines; the first connection of a recorded
        stream ends with the recorded cut-off line and a dropped connection."""
        with self.lock:
            recorded = self._recorded_stream if connection == 1 else None
            pending = [t for t in self.tweets if t["id"] not in self.stream_delivered and t["id"] not in self.deleted]
            if connection > 1 and self.stream_delivered:
                pending = [t for t in self.tweets if t["id"] == self.stream_delivered[-1]] + pending
        yield b"\r\n"
        for line in (recorded[0] if recorded else []):
            yield line + b"\r\n"
        for tweet in pending:
            rules = self._matching(tweet)
            if not rules:
                continue
            with self.lock:
                if tweet["id"] not in self.stream_delivered:
                    self.stream_delivered.append(tweet["id"])
            yield json.dumps({**self._body([tweet]), "data": self._public(tweet), "matching_rules": rules}).encode() + b"\r\n"
            yield b"\r\n"  # keep-alive lines come between messages too
        if recorded:
            yield recorded[1] + b"\r\n"  # the line as recorded: cut off mid-message...
            yield None  # ...and the connection drops
            return
        deadline = time.monotonic() + self.stream_hold_s
        while time.monotonic() < deadline and self._server is not None:
            time.sleep(self.keep_alive_s)
            yield b"\r\n"


# ======================================================================================
# Facebook Graph API (Page feed and comments)
# ======================================================================================


class FacebookFake(FakeServer):
    """Graph API: ``/{page}/feed``, ``/{post}/comments`` (``filter=stream``,
    ``order=reverse_chronological``, ``after`` cursors), ``/{comment}`` (error 100/33 once
    removed), ``POST /{comment}/comments``. Comments are made from the recorded comments page;
    errors take the recorded ``OAuthException`` shape. Rate limiting follows the published
    Graph API behaviour (none was recorded): error code 17 with ``X-Business-Use-Case-Usage``.
    """

    platform = "facebook"

    def __init__(self, data_dir: Path, *, page_id: str = "19292868552", now: datetime | None = None) -> None:
        super().__init__(data_dir)
        self.page_id = page_id
        self.now = now or datetime.now(timezone.utc)
        self._comment = load_exchange(data_dir, "facebook", "post_comments_page1")["response"]["body"]["data"][0]
        self._feed_item = load_exchange(data_dir, "facebook", "page_feed_page1")["response"]["body"]["data"][0]
        self._error = load_exchange(data_dir, "facebook", "error_100_missing_permission")["response"]["body"]["error"]
        self._created = load_exchange(data_dir, "facebook", "comment_create_or_update_response")["response"]["body"]
        self.page_posts: list[str] = []
        self.comments: dict[str, dict] = {}
        self.order: list[str] = []  # oldest first
        self.deleted: set[str] = set()
        self.created: list[dict] = []
        self._n = 10_158_400_000_000_000

    def reply_count(self) -> int:
        return len(self.created)

    def reply_parents(self) -> list[str]:
        with self.lock:
            return [c["_post"] for c in self.comments.values() if c["from"]["id"] == self.page_id]

    def add_page_post(self) -> str:
        with self.lock:
            self._n += 1
            pid = f"{self.page_id}_{self._n}"
            self.page_posts.append(pid)
            return pid

    def add_posts(self, texts: Sequence[str], *, post_id: str | None = None, author: str | None = None,
                  start: datetime | None = None, step: timedelta = timedelta(minutes=3), lang: str = "en") -> list[str]:
        """Comments under ``post_id`` (default: the newest page post, created if none)."""
        with self.lock:
            target = post_id or (self.page_posts[-1] if self.page_posts else self.add_page_post())
            when = start or self._next_start(step, len(texts))
            ids = []
            for i, text in enumerate(texts):
                self._n += 1
                cid = f"{target.split('_')[-1]}_{self._n}"
                who = author or str(5_000_000 + self._n % 83)
                comment = {**copy.deepcopy(self._comment), "id": cid, "message": text, "_post": target,
                           "created_time": (when + step * i).strftime("%Y-%m-%dT%H:%M:%S+0000"),
                           "from": {"id": who, "name": f"Resident {who}"},
                           "permalink_url": f"https://www.facebook.com/{target}?comment_id={cid}"}
                self.comments[cid] = comment
                self.order.append(cid)
                ids.append(cid)
            return ids

    def delete(self, comment_id: str) -> None:
        with self.lock:
            self.deleted.add(comment_id)

    def edit(self, comment_id: str, text: str) -> None:
        with self.lock:
            self.comments[comment_id]["message"] = text

    def _graph_error(self, status: int, code: int, subcode: int | None, message: str, headers: dict | None = None) -> Response:
        error = {**self._error, "code": code, "message": message, "type": "OAuthException" if code != 100 else "GraphMethodException"}
        error.pop("error_subcode", None)
        if subcode is not None:
            error["error_subcode"] = subcode
        return status, headers or {}, {"error": error}

    def _handle_fault_429(self, wait_s: float) -> Response:
        usage = {self.page_id: [{"type": "pages", "call_count": 100, "total_cputime": 20, "total_time": 30,
                                 "estimated_time_to_regain_access": int(-(-wait_s // 60))}]}
        return self._graph_error(400, 17, 2446079, "User request limit reached",
                                 {"x-business-use-case-usage": json.dumps(usage)})

    def unauthorized(self) -> Response:
        return self._graph_error(400, 190, 463, "Error validating access token: Session has expired")

    def fault_exempt(self, path: str) -> bool:
        # The Page's post list opens every fetch (like a session); faults aim at comment pages.
        return path.endswith(f"/{self.page_id}/feed")

    def route(self, method: str, path: str, query: dict, body: bytes, headers: Any) -> Response:
        parts = [p for p in path.split("/") if p]
        if not parts or not parts[0].startswith("v"):
            return self._graph_error(400, 2500, None, "Unknown path components")
        parts = parts[1:]
        with self.lock:
            if parts == [self.page_id, "feed"]:
                items = [{"id": pid, "updated_time": self.now.strftime("%Y-%m-%dT%H:%M:%S+0000")}
                         for pid in reversed(self.page_posts)][: int(query.get("limit", 25))]
                return 200, {}, {"data": items, "paging": {"cursors": {"before": "b", "after": "a"}}}
            if len(parts) == 2 and parts[1] == "comments" and method == "GET":
                ids = [c for c in reversed(self.order) if self.comments[c]["_post"] == parts[0] and c not in self.deleted]
                offset = int(base64.urlsafe_b64decode(query["after"]).decode()) if query.get("after") else 0
                limit = int(query.get("limit", 25))
                page = ids[offset:offset + limit]
                paging: dict[str, Any] = {"cursors": {"before": base64.urlsafe_b64encode(str(offset).encode()).decode(),
                                                      "after": base64.urlsafe_b64encode(str(offset + len(page)).encode()).decode()}}
                if offset + limit < len(ids):
                    paging["next"] = f"{self.url}{path}?after={paging['cursors']['after']}"
                data = [{k: v for k, v in self.comments[c].items() if not k.startswith("_")} for c in page]
                return 200, {}, {"data": data, "paging": paging}
            if len(parts) == 2 and parts[1] == "comments" and method == "POST":
                form = {k: v[0] for k, v in parse_qs(body.decode()).items()}
                self._n += 1
                out = {**self._created, "id": f"{parts[0].split('_')[-1]}_{self._n}", "message": form.get("message", "")}
                self.created.append(form)
                # The reply is a comment under the comment, written as the Page (read back by GET).
                self.comments[out["id"]] = {**copy.deepcopy(self._comment), "id": out["id"], "message": out["message"],
                                            "_post": parts[0], "created_time": out.get("created_time") or
                                            datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S+0000"),
                                            "from": {"id": self.page_id, "name": "City"}, "parent": {"id": parts[0]}}
                self.order.append(out["id"])
                return 200, {}, out
            if len(parts) == 1 and method == "GET":
                cid = parts[0]
                if cid not in self.comments or cid in self.deleted:
                    return self._graph_error(400, 100, 33, f"Unsupported get request. Object with ID '{cid}' does not "
                                             "exist, cannot be loaded due to missing permissions, or does not support this operation.")
                return 200, {}, {k: v for k, v in self.comments[cid].items() if not k.startswith("_")}
        return self._graph_error(400, 2500, None, "Unknown path components")


# ======================================================================================
# Bluesky Jetstream (JSON over WebSocket)
# ======================================================================================


class JetstreamFake:
    """A Jetstream ``/subscribe`` endpoint on ``ws://127.0.0.1:<port>`` replaying the recorded
    production window (``jetstream_firehose_window.json``: 152 events, 17 post creates, 1 post
    delete), honouring ``wantedCollections`` and ``cursor`` (inclusive ``time_us``), then staying
    open and silent like a quiet firehose. ``truncated`` adds one message cut off mid-JSON
    (the X recording's failure mode, applied here)."""

    def __init__(self, data_dir: Path, *, truncated: bool = True) -> None:
        rec = load_exchange(data_dir, "bluesky", "jetstream_firehose_window")
        self.events: list[dict] = list(rec["response"]["body"])
        self.truncated = truncated
        self.connections: list[str] = []
        self._server: Any = None
        self._thread: threading.Thread | None = None

    def __enter__(self) -> JetstreamFake:
        from websockets.sync.server import serve

        def handler(ws: Any) -> None:
            path = ws.request.path
            self.connections.append(path)
            query = parse_qs(urlsplit(path).query)
            wanted = set(query.get("wantedCollections", []))
            cursor = int(query["cursor"][0]) if query.get("cursor") else None
            events = [e for e in self.events if (cursor is None or e["time_us"] >= cursor)
                      and (not wanted or e.get("kind") != "commit" or e["commit"]["collection"] in wanted)]
            for i, event in enumerate(events):
                ws.send(json.dumps(event))
                if self.truncated and cursor is None and i == len(events) // 2:
                    ws.send(json.dumps(event)[:57])  # a message cut off mid-JSON
            try:
                ws.recv(timeout=30)  # stay open until the client leaves
            except Exception:
                pass

        self._server = serve(handler, "127.0.0.1", 0)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()

    @property
    def url(self) -> str:
        host, port = self._server.socket.getsockname()[:2]
        return f"ws://{host}:{port}/subscribe"

    def post_creates(self) -> list[dict]:
        return [e for e in self.events if e.get("kind") == "commit" and e["commit"]["collection"] == "app.bsky.feed.post"
                and e["commit"]["operation"] == "create"]

    def post_deletes(self) -> list[str]:
        return [f"at://{e['did']}/app.bsky.feed.post/{e['commit']['rkey']}" for e in self.events
                if e.get("kind") == "commit" and e["commit"]["collection"] == "app.bsky.feed.post"
                and e["commit"]["operation"] == "delete"]
