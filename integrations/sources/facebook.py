"""Facebook Page comments on the Graph API (``requests``): what residents write under the city's posts.

Many US cities hear complaints as comments under their own Page's posts. The source lists the
Page's recent posts (``/{page-id}/feed``, ``max_posts`` of them) and reads each post's comments
as one stream (``comments:<post-id>``): ``filter=stream`` (replies included, each with its
``parent``), ``order=reverse_chronological``, paged by ``paging.cursors.after``. Comments the
Page wrote itself (the city's own answers) are skipped.

Credentials (``credentials_env``): ``page_access_token`` (a Page token with
``pages_read_engagement`` and, to see who wrote a comment, ``pages_read_user_content``;
``pages_manage_engagement`` to reply) and optionally ``app_secret``, which adds the
``appsecret_proof`` that apps with "Require App Secret" must send.

Rate limits: the Graph API answers an exhausted budget with an error body (codes 4, 17, 32,
613, 80001...) rather than a 429, and says when to come back in the ``X-Business-Use-Case-Usage``
/ ``X-App-Usage`` headers (``estimated_time_to_regain_access``, minutes); both are honoured.
No place data: a comment has no location.

Deletions: :meth:`FacebookSource.recheck` asks for each comment; error 100 / subcode 33 (the
object does not exist) means the resident or the Page removed it.

Replies, exactly once: the Graph API has no idempotency key. A reply whose answer was lost
(connection dropped, timeout, 5xx) raises :class:`ReplyOutcomeUnknown`; before anything is sent
again the reply ledger reads back the comments under the resident's comment (``GET
/{comment-id}/comments``, newest first) for one written by the Page that holds the request id
(:meth:`FacebookSource.find_reply`).
"""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import datetime
from typing import Any

import requests
from pydantic import Field

from social311.integrations.sources.base import FetchResult
from social311.integrations.sources.polling import (
    Page, PollingConfig, PollingSource, RateLimited, Recheck, ReplyOutcomeUnknown, SourceError, parse_time,
    wait_from_headers,
)
from social311.records import Post, Reject

_RATE_CODES = {4, 17, 32, 613, 80001, 80002, 80004, 80005, 80006, 80008}
_FIELDS = "id,message,created_time,from,parent{id},permalink_url"


class FacebookConfig(PollingConfig):
    """Settings of a Facebook Page comments source."""

    base_url: str = Field("https://graph.facebook.com", description="the Graph API host")
    api_version: str = Field("v19.0", pattern=r"^v\d+\.\d+$")
    page_id: str = Field(min_length=1, description="the city's Page id")
    max_posts: int = Field(25, ge=1, le=100, description="the Page's newest posts whose comments are read")
    page_size: int = Field(100, ge=1, le=100)


class FacebookSource(PollingSource):
    """Comments under the city's own Facebook Page posts."""

    config_model = FacebookConfig
    config: FacebookConfig
    supports_reply = True
    reply_read_back = True

    def __init__(self, config: FacebookConfig, **kwargs: Any) -> None:
        super().__init__(config, **kwargs)
        self.session = requests.Session()
        self._posts: list[str] | None = None

    # --- HTTP -----------------------------------------------------------------------------
    def _auth(self) -> dict[str, str]:
        token = self.secret("page_access_token") or ""
        params = {"access_token": token}
        if self.secret("app_secret"):
            params["appsecret_proof"] = hmac.new(self.secret("app_secret").encode(), token.encode(), hashlib.sha256).hexdigest()
        return params

    def _request(self, method: str, path: str, params: dict | None = None, data: dict | None = None) -> dict:
        url = f"{self.config.base_url.rstrip('/')}/{self.config.api_version}/{path.lstrip('/')}"
        write = method.upper() != "GET"
        try:
            resp = self.session.request(method, url, params={**(params or {}), **self._auth()}, data=data,
                                        timeout=self.config.timeout_s)
        except requests.ConnectTimeout as exc:  # never connected: nothing was sent
            raise SourceError(f"Facebook: {type(exc).__name__}") from exc
        except requests.RequestException as exc:
            raise (ReplyOutcomeUnknown if write else SourceError)(f"Facebook: {type(exc).__name__}") from exc
        if write and resp.status_code >= 500:
            raise ReplyOutcomeUnknown(f"Facebook {method}: HTTP {resp.status_code}")
        try:
            body = resp.json()
        except ValueError:
            body = None
        error = body.get("error") if isinstance(body, dict) else None
        if resp.status_code == 429 or (error and error.get("code") in _RATE_CODES):
            raise RateLimited(_usage_wait(resp.headers) or wait_from_headers(resp.headers, now=self.clock()),
                              f"Facebook rate limit (code {error.get('code') if error else 429})")
        if error or not resp.ok:
            message = (error or {}).get("message") or f"HTTP {resp.status_code}"
            raise GraphError(resp.status_code, error or {}, f"Facebook: {message[:200]}")
        return body or {}

    # --- polling --------------------------------------------------------------------------
    def fetch(self, cursor: str | None, *, pseudonym_key: str) -> FetchResult:
        try:
            feed = self._feed()
        except (SourceError, RateLimited) as exc:
            reject = self._reject(f"{self.config.page_id}/feed", f"stream stopped, resumes next run: {exc}", "")
            return FetchResult(rejects=[reject], cursor=cursor or "{}")
        self._posts = [p["id"] for p in feed.get("data") or []]
        result = super().fetch(cursor, pseudonym_key=pseudonym_key)
        # Keep the cursor to the posts still listed, so it does not grow for ever.
        state = json.loads(result.cursor or "{}")
        listed = set(self.streams())
        old = json.loads(cursor) if cursor else {}
        kept = {k: v for k, v in {**old, **state}.items() if k in listed}
        return FetchResult(posts=result.posts, rejects=result.rejects, cursor=json.dumps(kept, sort_keys=True))

    def _feed(self) -> dict:
        for attempt in range(self.config.max_retries + 1):
            try:
                return self._request("GET", f"{self.config.page_id}/feed",
                                     {"fields": "id,updated_time", "limit": self.config.max_posts})
            except RateLimited as exc:
                wait = exc.wait_s if exc.wait_s is not None else min(2.0 ** attempt, 60.0)
                if wait > self.config.max_wait_s or attempt == self.config.max_retries:
                    raise
                self.waits.append(wait)
                self.sleep(wait)
        raise AssertionError("unreachable")

    def streams(self) -> list[str]:
        return [f"comments:{pid}" for pid in self._posts or []]

    def fetch_page(self, stream: str, token: str | None, *, since: datetime | None, above: str | None) -> Page:
        params = {"fields": _FIELDS, "filter": "stream", "order": "reverse_chronological", "limit": self.config.page_size}
        if token:
            params["after"] = token
        body = self._request("GET", f"{stream.removeprefix('comments:')}/comments", params)
        paging = body.get("paging") or {}
        nxt = (paging.get("cursors") or {}).get("after") if paging.get("next") else None
        return Page(items=[{**c, "_post": stream.removeprefix("comments:")} for c in body.get("data") or []], next_token=nxt)

    def item_key(self, item: Any) -> str:
        return f"{item.get('created_time', '')}|{item.get('id', '')}"

    def item_time(self, item: Any) -> datetime | None:
        return parse_time(_graph_time(item.get("created_time")))

    def to_post(self, item: Any, *, pseudonym_key: str) -> Post | Reject | None:
        author = item.get("from") or {}
        if author.get("id") == self.config.page_id:
            return None  # the city's own answer under its post
        if not item.get("id"):
            return self._reject(f"comment under {item.get('_post')}", "id: missing", item.get("message") or "")
        parent = (item.get("parent") or {}).get("id") or item.get("_post")
        return self.make_post(
            native_id=item["id"], text=item.get("message") or "", created_at=self.item_time(item),
            handle=author.get("id"), pseudonym_key=pseudonym_key, ref=f"comment {item['id']}",
            url=item.get("permalink_url"), reply_to=parent, mentions_city=True,
        )

    def recheck(self, native_ids: list[str], *, pseudonym_key: str) -> Recheck:
        """One lookup per comment: error 100/33 (does not exist) means removed."""
        out = Recheck()
        for cid in native_ids:
            try:
                item = self._request("GET", cid, {"fields": _FIELDS})
            except GraphError as exc:
                if exc.error.get("code") == 100 and exc.error.get("error_subcode") == 33:
                    out.deleted.append(cid)
                else:
                    out.errors.append(f"{cid}: {exc}")
                continue
            except (SourceError, RateLimited) as exc:
                out.errors.append(f"{cid}: {exc}")
                continue
            post = self.to_post(item, pseudonym_key=pseudonym_key)
            if isinstance(post, Post):
                out.current.append(post)
        return out

    def reply(self, post: Post, text: str) -> str | None:
        """A comment under the resident's comment, written as the Page."""
        body = self._request("POST", f"{post.native_id}/comments", data={"message": text})
        return str(body.get("id"))

    def find_reply(self, post: Post, marker: str) -> str | None:
        """The Page's comment under ``post`` holding ``marker`` (``GET /{comment-id}/comments``)."""
        params: dict[str, Any] = {"fields": "id,message,from", "filter": "stream", "order": "reverse_chronological",
                                  "limit": 100}
        for _ in range(self.config.reply_lookback):
            body = self._request("GET", f"{post.native_id}/comments", params)
            for comment in body.get("data") or []:
                if (comment.get("from") or {}).get("id") == self.config.page_id and marker in (comment.get("message") or ""):
                    return str(comment["id"])
            paging = body.get("paging") or {}
            after = (paging.get("cursors") or {}).get("after") if paging.get("next") else None
            if not after:
                return None
            params["after"] = after
        raise SourceError(f"Facebook: no reply found in {self.config.reply_lookback} pages of comments under "
                          f"{post.native_id}; the rest is not checked")


class GraphError(SourceError):
    """A Graph API error body (``error.code``, ``error_subcode``, ``message``)."""

    def __init__(self, status: int, error: dict, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.error = error


def _graph_time(value: str | None) -> str | None:
    # "2021-06-24T08:43:19+0000" -> "+00:00", which datetime.fromisoformat reads on 3.11.
    if value and len(value) > 5 and value[-5] in "+-" and value[-3] != ":":
        return f"{value[:-2]}:{value[-2:]}"
    return value


def _usage_wait(headers: Any) -> float | None:
    """Seconds from ``estimated_time_to_regain_access`` (minutes) in the Graph usage headers."""
    for name in ("x-business-use-case-usage", "x-app-usage", "x-page-usage"):
        raw = headers.get(name)
        if not raw:
            continue
        try:
            data = json.loads(raw)
        except ValueError:
            continue
        entries = [e for v in data.values() for e in v] if isinstance(data, dict) and all(isinstance(v, list) for v in data.values()) else [data]
        minutes = [e.get("estimated_time_to_regain_access") for e in entries if isinstance(e, dict)]
        minutes = [m for m in minutes if isinstance(m, (int, float))]
        if minutes:
            return max(minutes) * 60.0
    return None
