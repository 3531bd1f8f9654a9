"""Bluesky source on the ``atproto`` SDK: ``app.bsky.feed.searchPosts`` with cursors.

Streams: ``search:<term>`` for each keyword and hashtag of the listening plan (and place
term, when ``search_place_terms`` is on). Search is ``sort=latest``, newest first, paged by the
server's opaque ``cursor``; the first run passes ``since`` (the backfill window), later runs
pass the ``indexedAt`` already consumed, and the shared base stops at it (see :mod:`polling`).

Credentials: a handle and an *app password* (``credentials_env: {handle: ..., app_password:
...}``); ``atproto`` refreshes the access JWT itself before it expires, and an expired session
answered by the server (``ExpiredToken``) makes the plugin log in again once.

Rate limits: ``RateLimit-Limit/Remaining/Reset/Policy`` (3000 per 5 minutes for reads; 10
sessions a day per account, so the plugin keeps one session per instance).

Deletions: :meth:`BlueskySource.recheck` asks ``app.bsky.feed.getPosts`` (25 URIs a call): a URI
missing from the answer is deleted. Replies are records with ``reply.root``/``reply.parent``
strong refs, written with an ``rkey`` derived from the resident's post (:func:`reply_rkey`).
Exactly once: the reply ledger reads a reply in doubt back with ``com.atproto.repo.getRecord``
on that key (:meth:`BlueskySource.find_reply`: found -> sent, ``RecordNotFound`` -> post); and a
second ``createRecord`` under the same key is refused by the PDS, so even a blind retry cannot
post twice.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any

import httpx
from atproto import Client, models
from atproto.exceptions import (
    AtProtocolError, BadRequestError, NetworkError, RateLimitExceededError, RequestException, UnauthorizedError,
)
from pydantic import Field

from social311.integrations.sources.polling import (
    Page, PollingConfig, PollingSource, RateLimited, Recheck, ReplyOutcomeUnknown, SourceError, parse_time,
    wait_from_headers,
)
from social311.records import Post, Reject

_TID_ALPHABET = "234567abcdefghijklmnopqrstuvwxyz"


class BlueskyConfig(PollingConfig):
    """Settings of a Bluesky source."""

    base_url: str = Field("https://bsky.social", description="the PDS / entryway (the session's DID "
                          "document then names the account's own PDS)")
    page_size: int = Field(50, ge=1, le=100)
    search_place_terms: bool = Field(False, description="also search each place term of the plan "
                                     "(one search per term: mind the rate limit)")


def reply_rkey(post_id: str) -> str:
    """A valid TID record key derived from the post, the same on every retry."""
    number = int.from_bytes(hashlib.sha256(post_id.encode()).digest()[:8], "big") & ((1 << 63) - 1)
    chars = []
    for _ in range(13):
        chars.append(_TID_ALPHABET[number & 31])
        number >>= 5
    return "".join(reversed(chars))


class BlueskySource(PollingSource):
    """Public Bluesky posts matching the city's listening plan."""

    config_model = BlueskyConfig
    config: BlueskyConfig
    supports_reply = True
    reply_read_back = True

    def __init__(self, config: BlueskyConfig, **kwargs: Any) -> None:
        super().__init__(config, **kwargs)
        self.client = Client(base_url=config.base_url.rstrip("/"))
        self._logged_in = False

    def _login(self) -> None:
        handle, password = self.secret("handle"), self.secret("app_password")
        if not handle or not password:
            raise SourceError("Bluesky needs credentials_env {handle, app_password} set in the environment")
        try:
            self.client.login(handle, password)
        except (UnauthorizedError, BadRequestError) as exc:
            raise SourceError(f"Bluesky login refused: {exc}") from exc
        self._logged_in = True

    def _call(self, fn: Any) -> Any:
        """Run one XRPC call with a session; one re-login on an expired session; 429 -> RateLimited."""
        for attempt in (0, 1):
            try:
                if not self._logged_in:
                    self._login()
                return fn()
            except RateLimitExceededError as exc:
                headers = exc.response.headers if exc.response is not None else {}
                raise RateLimited(wait_from_headers(headers, now=self.clock()), "Bluesky 429") from exc
            except (BadRequestError, UnauthorizedError) as exc:
                content = exc.response.content if exc.response is not None else None
                expired = getattr(content, "error", None) in {"ExpiredToken", "InvalidToken"}
                if expired and attempt == 0:
                    self._login()
                    continue
                raise SourceError(f"Bluesky: {exc}") from exc
            except (NetworkError, RequestException, httpx.HTTPError) as exc:
                raise SourceError(f"Bluesky: {type(exc).__name__}: {str(exc)[:200]}") from exc
        raise AssertionError("unreachable")

    def streams(self) -> list[str]:
        terms = [*self.plan.keywords, *(f"#{t}" for t in self.plan.hashtags)]
        if self.config.search_place_terms:
            terms += list(self.plan.place_terms)
        return [f"search:{t}" for t in dict.fromkeys(terms)]

    def fetch_page(self, stream: str, token: str | None, *, since: datetime | None, above: str | None) -> Page:
        params: dict[str, Any] = {"q": stream.removeprefix("search:"), "sort": "latest", "limit": self.config.page_size}
        if token:
            params["cursor"] = token
        if since is not None:
            params["since"] = since.strftime("%Y-%m-%dT%H:%M:%S.000Z")
        elif above:
            params["since"] = above.split("|", 1)[0]  # inclusive; the base drops what it already has
        if self.plan.languages and len(self.plan.languages) == 1:
            params["lang"] = self.plan.languages[0]
        resp = self._call(lambda: self.client.app.bsky.feed.search_posts(params))
        return Page(items=list(resp.posts), next_token=resp.cursor)

    def item_key(self, item: Any) -> str:
        return f"{item.indexed_at}|{item.uri}"

    def item_time(self, item: Any) -> datetime | None:
        return parse_time(item.indexed_at)

    def to_post(self, item: Any, *, pseudonym_key: str) -> Post | Reject | None:
        record = item.record
        text = getattr(record, "text", None)
        if text is None:
            return self._reject(f"post {item.uri}", "record has no text (not an app.bsky.feed.post)", "")
        langs = getattr(record, "langs", None) or []
        reply = getattr(record, "reply", None)
        embed = getattr(record, "embed", None)
        quoted = None
        if embed is not None:
            target = getattr(embed, "record", None)
            target = getattr(target, "record", target)  # recordWithMedia nests one level deeper
            quoted = getattr(target, "uri", None)
        rkey = item.uri.rsplit("/", 1)[-1]
        return self.make_post(
            native_id=item.uri, text=text, created_at=parse_time(getattr(record, "created_at", None) or item.indexed_at),
            handle=item.author.handle or item.author.did, pseudonym_key=pseudonym_key, ref=f"post {item.uri}",
            lang=langs[0] if langs else None, url=f"https://bsky.app/profile/{item.author.did}/post/{rkey}",
            repost_of=quoted, reply_to=reply.parent.uri if reply is not None else None,
        )

    def recheck(self, native_ids: list[str], *, pseudonym_key: str) -> Recheck:
        """``getPosts`` in batches of 25: a URI the AppView no longer returns was deleted."""
        out = Recheck()
        for start in range(0, len(native_ids), 25):
            batch = native_ids[start:start + 25]
            try:
                resp = self._call(lambda b=batch: self.client.get_posts(b))
            except (SourceError, RateLimited) as exc:
                out.errors.extend(f"{uri}: {exc}" for uri in batch)
                continue
            present = {p.uri: p for p in resp.posts}
            for uri in batch:
                if uri not in present:
                    out.deleted.append(uri)
                else:
                    post = self.to_post(present[uri], pseudonym_key=pseudonym_key)
                    if isinstance(post, Post):
                        out.current.append(post)
        return out

    def reply(self, post: Post, text: str) -> str | None:
        """Reply under the resident's post; a retry re-uses the same record key (never twice)."""
        found = self._call(lambda: self.client.get_posts([post.native_id]))
        if not found.posts:
            raise SourceError(f"Bluesky post {post.native_id} is gone; no reply")
        parent_view = found.posts[0]
        parent = models.ComAtprotoRepoStrongRef.Main(uri=parent_view.uri, cid=parent_view.cid)
        existing = getattr(parent_view.record, "reply", None)
        root = existing.root if existing is not None else parent
        record = models.AppBskyFeedPost.Record(text=text, created_at=self.client.get_current_time_iso(),
                                               reply=models.AppBskyFeedPost.ReplyRef(root=root, parent=parent))
        rkey = reply_rkey(post.post_id)
        did = self.client.me.did
        try:
            created = self._call(lambda: self.client.com.atproto.repo.create_record(
                models.ComAtprotoRepoCreateRecord.Data(repo=did, collection="app.bsky.feed.post", rkey=rkey, record=record)))
        except SourceError as exc:
            if "already exists" in str(exc).lower():
                return f"at://{did}/app.bsky.feed.post/{rkey}"
            if isinstance(exc.__cause__, (NetworkError, RequestException, httpx.HTTPError)):
                raise ReplyOutcomeUnknown(str(exc)) from exc  # sent, answer lost: read back before any retry
            raise
        return created.uri

    def find_reply(self, post: Post, marker: str) -> str | None:
        """The reply record under its deterministic key (``getRecord``), when it holds ``marker``."""
        rkey = reply_rkey(post.post_id)

        def get() -> Any:
            try:
                return self.client.com.atproto.repo.get_record(models.ComAtprotoRepoGetRecord.Params(
                    repo=self.client.me.did, collection="app.bsky.feed.post", rkey=rkey))
            except BadRequestError as exc:
                content = exc.response.content if exc.response is not None else None
                if getattr(content, "error", None) == "RecordNotFound":
                    return None
                raise

        found = self._call(get)
        if found is None:
            return None
        text = getattr(found.value, "text", None) or (found.value.get("text") if isinstance(found.value, dict) else "")
        if marker not in (text or ""):
            raise SourceError(f"Bluesky: record {found.uri} does not hold the request id; check it by hand")
        return found.uri


__all__ = ["BlueskyConfig", "BlueskySource", "reply_rkey", "AtProtocolError"]
