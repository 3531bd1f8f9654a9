"""Reddit source on PRAW: new submissions and new comments of the city's subreddits.

Streams: ``r/<sub>/new`` and ``r/<sub>/comments`` for each subreddit of the listening plan.
Pages are Reddit Listings, newest first, paged with the ``after`` fullname (PRAW's
``Reddit.get`` returns the Listing with its ``after``); the shared base stops at the newest
fullname already consumed (see :mod:`polling`). Everything in a city's subreddit is kept:
the relevance model, not a keyword list, decides what is a report.

Credentials (``credentials_env``): ``client_id``, ``client_secret`` of a "script" or
"web" app, and ``user_agent``; add ``refresh_token`` to reply as the city's account (scopes
``read`` and ``submit``). Without it PRAW runs read-only (application-only OAuth).

Rate limits: ``X-Ratelimit-Used/Remaining/Reset`` (seconds to the window's end; 100 queries a
minute per OAuth client). PRAW's own limiter already spaces requests by them; a 429 (an HTML
page with ``Retry-After``) reaches the shared base, which waits as it says.

Deletions: :meth:`RedditSource.recheck` looks the fullnames up in ``/api/info`` (100 a call): an
author or body of ``[deleted]``/``[removed]`` means the resident (or a moderator) took it down.
Edits show as a new ``selftext``/``body`` and ``edited`` timestamp.

Replies, exactly once: Reddit has no idempotency key, so a reply whose answer was lost is
found again by reading back the city account's own newest comments (``/user/<me>/comments``,
``reply_lookback`` pages of 100) for one under the same parent holding the request id
(:meth:`RedditSource.find_reply`). prawcore retries a POST itself after a dropped connection
or a 5xx (twice), which could post a reply twice inside one call; the plugin hands PRAW a
``requests`` session (PRAW's public ``requestor_kwargs``) that turns those failures of a
non-GET request into :class:`ReplyOutcomeUnknown`, which prawcore does not retry.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import praw
import prawcore
import requests
from pydantic import Field

from social311.integrations.sources.polling import (
    Page, PollingConfig, PollingSource, RateLimited, Recheck, ReplyOutcomeUnknown, SourceError, wait_from_headers,
)
from social311.records import Post, Reject

_GONE = {"[deleted]", "[removed]"}


def _attr(thing: Any, name: str, default: Any = None) -> Any:
    """An attribute the API sent, without PRAW's lazy fetch of the whole object for a missing one."""
    return vars(thing).get(name, default)


class _NoBlindRetry(requests.Session):
    """A session for PRAW on which a write that may have reached Reddit is never retried.

    prawcore retries a request after a connection error or a 5xx; for a POST (a reply) the
    first try may have been carried out, so the failure becomes :class:`ReplyOutcomeUnknown`
    (not one of prawcore's retried exceptions) and the reply ledger reads back instead.
    """

    def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> requests.Response:
        if method.upper() in {"GET", "HEAD"} or url.endswith("/api/v1/access_token"):
            return super().request(method, url, *args, **kwargs)
        try:
            response = super().request(method, url, *args, **kwargs)
        except (requests.ConnectionError, requests.exceptions.ChunkedEncodingError, requests.Timeout) as exc:
            raise ReplyOutcomeUnknown(f"Reddit {method} {url.rsplit('/', 1)[-1]}: {type(exc).__name__}") from exc
        if response.status_code >= 500:
            raise ReplyOutcomeUnknown(f"Reddit {method}: HTTP {response.status_code}")
        return response


class RedditConfig(PollingConfig):
    """Settings of a Reddit source."""

    base_url: str = Field("https://oauth.reddit.com", description="the OAuth API host")
    auth_url: str = Field("https://www.reddit.com", description="where tokens are issued (/api/v1/access_token)")
    page_size: int = Field(100, ge=1, le=100)
    comments: bool = Field(True, description="also read the subreddits' new comments, not only submissions")


class RedditSource(PollingSource):
    """Submissions and comments of the city's subreddits."""

    config_model = RedditConfig
    config: RedditConfig
    supports_reply = True
    reply_read_back = True

    def __init__(self, config: RedditConfig, **kwargs: Any) -> None:
        super().__init__(config, **kwargs)
        settings = {"client_id": self.secret("client_id") or "", "client_secret": self.secret("client_secret"),
                    "user_agent": self.secret("user_agent") or "social311 (city 311 listening)",
                    "oauth_url": config.base_url.rstrip("/"), "reddit_url": config.auth_url.rstrip("/"),
                    "check_for_updates": False, "timeout": config.timeout_s, "ratelimit_seconds": config.max_wait_s,
                    "requestor_kwargs": {"session": _NoBlindRetry()}}
        if self.secret("refresh_token"):
            settings["refresh_token"] = self.secret("refresh_token")
        self.reddit = praw.Reddit(**settings)
        self._me: Any = None

    def streams(self) -> list[str]:
        kinds = ["new", "comments"] if self.config.comments else ["new"]
        return [f"r/{sub}/{kind}" for sub in self.plan.subreddits for kind in kinds]

    def _get(self, path: str, params: dict) -> Any:
        try:
            return self.reddit.get(path, params=params)
        except prawcore.exceptions.TooManyRequests as exc:
            raise RateLimited(wait_from_headers(exc.response.headers, now=self.clock()), "Reddit 429") from exc
        except prawcore.exceptions.PrawcoreException as exc:
            raise SourceError(f"Reddit: {type(exc).__name__}: {str(exc)[:200]}") from exc

    def fetch_page(self, stream: str, token: str | None, *, since: datetime | None, above: str | None) -> Page:
        params = {"limit": self.config.page_size, "raw_json": 1}
        if token:
            params["after"] = token
        listing = self._get(f"/{stream}", params)
        return Page(items=list(listing.children), next_token=listing.after)

    def item_key(self, item: Any) -> str:
        return str(int(item.id, 36)).zfill(16)

    def item_time(self, item: Any) -> datetime | None:
        return datetime.fromtimestamp(float(item.created_utc), timezone.utc)

    def to_post(self, item: Any, *, pseudonym_key: str) -> Post | Reject | None:
        is_comment = isinstance(item, praw.models.Comment)
        if is_comment:
            text = item.body or ""
        else:
            text = "\n".join(part for part in (item.title, _attr(item, "selftext", "")) if part)
        if text.strip() in _GONE:
            return None  # already deleted when we first saw it: nothing to keep
        author = _attr(item, "author")
        handle = author.name if author is not None else None
        crosspost = _attr(item, "crosspost_parent")
        return self.make_post(
            native_id=item.name, text=text, created_at=self.item_time(item), handle=handle,
            pseudonym_key=pseudonym_key, ref=f"{item.name}",
            lang=None, url=f"https://www.reddit.com{item.permalink}" if _attr(item, "permalink") else None,
            repost_of=crosspost, reply_to=item.parent_id if is_comment else None,
        )

    def recheck(self, native_ids: list[str], *, pseudonym_key: str) -> Recheck:
        """``/api/info`` by fullname: ``[deleted]``/``[removed]`` or absent means gone."""
        out = Recheck()
        for start in range(0, len(native_ids), 100):
            batch = native_ids[start:start + 100]
            try:
                listing = self._get("/api/info", {"id": ",".join(batch), "raw_json": 1})
            except (SourceError, RateLimited) as exc:
                out.errors.extend(f"{name}: {exc}" for name in batch)
                continue
            found = {thing.name: thing for thing in listing.children}
            for name in batch:
                thing = found.get(name)
                body = _attr(thing, "body" if isinstance(thing, praw.models.Comment) else "selftext") if thing else None
                author = _attr(thing, "author") if thing else None
                if thing is None or body in _GONE or (author is None and _attr(thing, "removed_by_category")):
                    out.deleted.append(name)
                    continue
                post = self.to_post(thing, pseudonym_key=pseudonym_key)
                if isinstance(post, Post):
                    out.current.append(post)
                elif post is None:
                    out.deleted.append(name)
        return out

    def reply(self, post: Post, text: str) -> str | None:
        """A comment under the submission or comment (needs a ``refresh_token`` with ``submit``)."""
        thing = self.reddit.comment(post.native_id[3:]) if post.native_id.startswith("t1_") \
            else self.reddit.submission(post.native_id[3:])
        try:
            created = thing.reply(text)
        except prawcore.exceptions.TooManyRequests as exc:
            raise RateLimited(wait_from_headers(exc.response.headers, now=self.clock()), "Reddit 429 on reply") from exc
        except prawcore.exceptions.RequestException as exc:
            if isinstance(exc.original_exception, ReplyOutcomeUnknown):
                raise exc.original_exception from exc
            raise
        return created.name if created is not None else None

    def find_reply(self, post: Post, marker: str) -> str | None:
        """The city account's comment under ``post`` holding ``marker``, from its newest comments."""
        try:
            me = self._me or self.reddit.user.me()
        except (prawcore.exceptions.PrawcoreException, praw.exceptions.PRAWException) as exc:
            raise SourceError(f"Reddit: who am I (replies need the city account's refresh_token): "
                              f"{type(exc).__name__}") from exc
        if me is None:
            raise SourceError("Reddit: replies need the city account's refresh_token (read-only session)")
        self._me = me
        after = None
        for _ in range(self.config.reply_lookback):
            params = {"limit": 100, "sort": "new", "raw_json": 1, **({"after": after} if after else {})}
            listing = self._get(f"/user/{me.name}/comments", params)
            for comment in listing.children:
                if _attr(comment, "parent_id") == post.native_id and marker in (_attr(comment, "body") or ""):
                    return comment.name
            after = listing.after
            if not after:
                return None
        raise SourceError(f"Reddit: no reply found in the account's last {self.config.reply_lookback} pages; "
                          "older ones are not checked")
