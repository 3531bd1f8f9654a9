"""X (Twitter) source on tweepy: API v2 recent search with a query built from the plan.

Streams: one ``search:<query>`` per query. The plan's keywords, ``#hashtags`` and quoted place
terms are OR-ed into as few queries as fit ``max_query_length`` (512 on the Basic access
level, 1024 on Pro), each with ``-is:retweet`` and, when ``geo_operator`` is set,
``place:``/``point_radius:`` (Pro and above only). Pages follow ``meta.next_token``; the
first page is narrowed with ``since_id`` (later runs) or ``start_time`` (first run: recent
search covers 7 days at most).

Finding: tweepy's ``Client`` has no base-URL setting: the host is a constant in
``BaseClient.request``. The plugin reaches another base URL (a loopback fake, an egress proxy)
through the public ``Client.session`` by mounting a ``requests`` transport adapter that
rewrites ``https://api.twitter.com`` to ``base_url``; tweepy itself runs unchanged.

Credentials (``credentials_env``): ``bearer_token`` (app-only, reading); for replies the
city account's OAuth 1.0a user context: ``consumer_key``, ``consumer_secret``,
``access_token``, ``access_token_secret``.

Rate limits: ``x-rate-limit-limit/remaining/reset`` (reset in epoch seconds), per endpoint and
15-minute window (recent search: 450/app on Basic). Geo: ``geo.coordinates`` (exact point) and
``geo.place_id`` resolved through the ``places`` expansion (full name and bounding box).
Retweets are left out by the query; quotes map to ``repost_of``.

Replies, exactly once: X has no idempotency key. A reply whose answer was lost (connection
dropped, timeout, 5xx) raises :class:`ReplyOutcomeUnknown`; before anything is sent again the
reply ledger reads back the city account's own newest Tweets (``GET /2/users/:id/tweets``,
user context, ``reply_lookback`` pages of 100) for one ``replied_to`` the resident's Tweet that
holds the request id (:meth:`XSource.find_reply`). tweepy itself never retries a request.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import requests
import tweepy
from pydantic import Field
from requests.adapters import HTTPAdapter

from social311.integrations.sources.base import FetchResult
from social311.integrations.sources.polling import (
    Page, PollingConfig, PollingSource, RateLimited, Recheck, ReplyOutcomeUnknown, SourceError, parse_time,
    wait_from_headers,
)
from social311.records import Post, Reject

TWEEPY_HOST = "https://api.twitter.com"
_TWEET_FIELDS = ["created_at", "lang", "geo", "referenced_tweets", "conversation_id", "author_id",
                 "edit_history_tweet_ids", "in_reply_to_user_id"]
_EXPANSIONS = ["author_id", "geo.place_id", "referenced_tweets.id"]


class XConfig(PollingConfig):
    """Settings of an X source."""

    base_url: str = Field(TWEEPY_HOST, description="the API host (tweepy's own by default)")
    page_size: int = Field(100, ge=10, le=100)
    max_query_length: int = Field(512, ge=50, le=4096, description="512 on Basic, 1024 on Pro access")
    geo_operator: str | None = Field(None, description='e.g. "point_radius:[-87.63 41.88 25mi]" or '
                                     '"place:Chicago" (Pro access level and above)')
    stream: bool = Field(False, description="listen on the filtered stream (rules from the plan) instead of "
                         "polling recent search; see integrations/sources/x_stream.py")
    stream_max_seconds: float = Field(60, gt=0, description="longest stream run")
    stream_max_events: int = Field(10_000, ge=1, description="posts read per stream run at most")
    stream_idle_seconds: float = Field(30, gt=0, description="stop after this long without a line "
                                       "(X sends a keep-alive every 20 s)")
    stream_max_reconnects: int = Field(5, ge=0, description="reconnects per run after a dropped stream")


class _Rebase(HTTPAdapter):
    """Sends requests meant for ``TWEEPY_HOST`` to ``base`` instead."""

    def __init__(self, base: str) -> None:
        super().__init__()
        self.base = base.rstrip("/")

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        if request.url and request.url.startswith(TWEEPY_HOST):
            request.url = self.base + request.url[len(TWEEPY_HOST):]
        return super().send(request, **kwargs)


def build_queries(terms: list[str], *, suffix: str, limit: int) -> list[str]:
    """OR-ed groups of ``terms`` (phrases quoted) that, with ``suffix``, fit ``limit`` characters."""
    queries, group = [], []
    for term in terms:
        token = f'"{term}"' if " " in term else term
        candidate = " OR ".join([*group, token])
        if group and len(f"({candidate}) {suffix}") > limit:
            queries.append(f"({' OR '.join(group)}) {suffix}".strip())
            group = [token]
        else:
            group.append(token)
    if group:
        queries.append(f"({' OR '.join(group)}) {suffix}".strip())
    return queries


class XSource(PollingSource):
    """Recent public posts on X matching the city's listening plan."""

    config_model = XConfig
    config: XConfig
    supports_reply = True
    reply_read_back = True

    def __init__(self, config: XConfig, **kwargs: Any) -> None:
        super().__init__(config, **kwargs)
        self.client = tweepy.Client(
            bearer_token=self.secret("bearer_token"), consumer_key=self.secret("consumer_key"),
            consumer_secret=self.secret("consumer_secret"), access_token=self.secret("access_token"),
            access_token_secret=self.secret("access_token_secret"), return_type=dict, wait_on_rate_limit=False)
        self._me: str | None = None  # the city account's user id, asked once for read-backs
        if config.base_url.rstrip("/") != TWEEPY_HOST:
            self.client.session.mount(TWEEPY_HOST, _Rebase(config.base_url))

    def fetch(self, cursor: str | None, *, pseudonym_key: str) -> FetchResult:
        """Recent search (the shared polling sweep), or one bounded filtered-stream run (``stream``)."""
        if self.config.stream:
            from social311.integrations.sources.x_stream import fetch_stream

            return fetch_stream(self, cursor, pseudonym_key=pseudonym_key)
        return super().fetch(cursor, pseudonym_key=pseudonym_key)

    def streams(self) -> list[str]:
        terms = [*self.plan.keywords, *(f"#{t}" for t in self.plan.hashtags), *self.plan.place_terms]
        suffix = " ".join(p for p in ["-is:retweet", self.config.geo_operator or "",
                                      f"lang:{self.plan.languages[0]}" if len(self.plan.languages) == 1 else ""] if p)
        return [f"search:{q}" for q in build_queries(terms, suffix=suffix, limit=self.config.max_query_length)]

    def _call(self, fn: Any) -> Any:
        try:
            return fn()
        except tweepy.TooManyRequests as exc:
            raise RateLimited(wait_from_headers(exc.response.headers, now=self.clock()), "X 429") from exc
        except (tweepy.TweepyException, requests.RequestException) as exc:
            raise SourceError(f"X: {type(exc).__name__}: {str(exc)[:200]}") from exc

    def fetch_page(self, stream: str, token: str | None, *, since: datetime | None, above: str | None) -> Page:
        args: dict[str, Any] = {"query": stream.removeprefix("search:"), "max_results": self.config.page_size,
                                "tweet_fields": _TWEET_FIELDS, "expansions": _EXPANSIONS,
                                "user_fields": ["username"], "place_fields": ["full_name", "geo", "name"]}
        if token:
            args["next_token"] = token
        if above:
            args["since_id"] = above.lstrip("0") or "0"
        elif since is not None:
            week = datetime.fromtimestamp(self.clock(), timezone.utc) - timedelta(days=7) + timedelta(minutes=1)
            args["start_time"] = max(since, week).strftime("%Y-%m-%dT%H:%M:%SZ")
        body = self._call(lambda: self.client.search_recent_tweets(**args))
        return Page(items=_with_includes(body), next_token=(body.get("meta") or {}).get("next_token"))

    def item_key(self, item: Any) -> str:
        return str(item["id"]).zfill(20)

    def item_time(self, item: Any) -> datetime | None:
        return parse_time(item.get("created_at"))

    def to_post(self, item: Any, *, pseudonym_key: str) -> Post | Reject | None:
        refs = {r.get("type"): r.get("id") for r in item.get("referenced_tweets") or []}
        if "retweeted" in refs:
            return None  # the original is what counts; the query leaves retweets out anyway
        geo = item.get("geo") or {}
        point = (geo.get("coordinates") or {}).get("coordinates")
        place = item.get("_place") or {}
        bbox = (place.get("geo") or {}).get("bbox")
        user = item.get("_user") or {}
        return self.make_post(
            native_id=str(item["id"]), text=item.get("text") or "", created_at=self.item_time(item),
            handle=user.get("username") or item.get("author_id"), pseudonym_key=pseudonym_key, ref=f"tweet {item['id']}",
            lang=item.get("lang") if item.get("lang") not in {None, "und", "zxx", "qme", "qht"} else None,
            url=f"https://x.com/i/web/status/{item['id']}", repost_of=refs.get("quoted"), reply_to=refs.get("replied_to"),
            lat=point[1] if point else None, lon=point[0] if point else None,
            place_name=place.get("full_name"), place_bbox=tuple(bbox) if bbox and len(bbox) == 4 else None,
        )

    def recheck(self, native_ids: list[str], *, pseudonym_key: str) -> Recheck:
        """Tweet lookup, 100 ids a call: an id answered by a ``resource-not-found`` error is deleted;
        an edited Tweet (newer id in ``edit_history_tweet_ids``) comes back with its latest text."""
        out = Recheck()
        for start in range(0, len(native_ids), 100):
            batch = native_ids[start:start + 100]
            try:
                body = self._call(lambda b=batch: self.client.get_tweets(
                    b, tweet_fields=_TWEET_FIELDS, expansions=_EXPANSIONS, user_fields=["username"],
                    place_fields=["full_name", "geo", "name"]))
            except (SourceError, RateLimited) as exc:
                out.errors.extend(f"{i}: {exc}" for i in batch)
                continue
            found = {t["id"]: t for t in _with_includes(body)}
            gone = {e.get("resource_id") or e.get("value") for e in body.get("errors") or []
                    if str(e.get("type", "")).endswith("resource-not-found")}
            latest_of: dict[str, str] = {}
            for tid in batch:
                tweet = found.get(tid)
                if tweet is None:
                    (out.deleted if tid in gone else out.errors).append(tid if tid in gone else f"{tid}: not returned")
                    continue
                history = tweet.get("edit_history_tweet_ids") or [tid]
                if history[-1] != tid:
                    latest_of[history[-1]] = tid
                    continue
                post = self.to_post(tweet, pseudonym_key=pseudonym_key)
                if isinstance(post, Post):
                    out.current.append(post)
            if latest_of:
                latest = self._call(lambda: self.client.get_tweets(list(latest_of), tweet_fields=_TWEET_FIELDS,
                                                                   expansions=_EXPANSIONS, user_fields=["username"]))
                for tweet in _with_includes(latest):
                    post = self.to_post({**tweet, "id": latest_of[tweet["id"]]}, pseudonym_key=pseudonym_key)
                    if isinstance(post, Post):
                        out.current.append(post)  # the edit, under the id the warehouse knows
        return out

    def reply(self, post: Post, text: str) -> str | None:
        """A reply Tweet (``reply.in_reply_to_tweet_id``) as the city's account (OAuth 1.0a user context)."""
        try:
            body = self.client.create_tweet(text=text, in_reply_to_tweet_id=post.native_id, user_auth=True)
        except tweepy.TooManyRequests as exc:
            raise RateLimited(wait_from_headers(exc.response.headers, now=self.clock()), "X 429 on reply") from exc
        except tweepy.TwitterServerError as exc:  # 5xx: X may have created it all the same
            raise ReplyOutcomeUnknown(f"X: {type(exc).__name__}: {str(exc)[:200]}") from exc
        except (tweepy.TweepyException, requests.HTTPError) as exc:  # 4xx: refused, nothing created
            raise SourceError(f"X: {type(exc).__name__}: {str(exc)[:200]}") from exc
        except requests.RequestException as exc:  # sent, answer lost (or never sent): unknown
            raise ReplyOutcomeUnknown(f"X: {type(exc).__name__}") from exc
        return str(body["data"]["id"])

    def find_reply(self, post: Post, marker: str) -> str | None:
        """The city account's reply to ``post`` holding ``marker``, from its newest Tweets."""
        if self._me is None:
            self._me = str(self._call(lambda: self.client.get_me(user_auth=True))["data"]["id"])
        token = None
        for _ in range(self.config.reply_lookback):
            args: dict[str, Any] = {"max_results": 100, "tweet_fields": ["referenced_tweets", "conversation_id"],
                                    "user_auth": True, **({"pagination_token": token} if token else {})}
            body = self._call(lambda a=args: self.client.get_users_tweets(self._me, **a))
            for tweet in body.get("data") or []:
                replied = {r.get("id") for r in tweet.get("referenced_tweets") or [] if r.get("type") == "replied_to"}
                if post.native_id in replied and marker in (tweet.get("text") or ""):
                    return str(tweet["id"])
            token = (body.get("meta") or {}).get("next_token")
            if not token:
                return None
        raise SourceError(f"X: no reply found in the account's last {self.config.reply_lookback} pages of Tweets; "
                          "older ones are not checked")


def _with_includes(body: dict) -> list[dict]:
    """Tweets of a response with their author (``_user``) and place (``_place``) attached."""
    includes = body.get("includes") or {}
    users = {u["id"]: u for u in includes.get("users") or []}
    places = {p["id"]: p for p in includes.get("places") or []}
    out = []
    for tweet in body.get("data") or []:
        place_id = (tweet.get("geo") or {}).get("place_id")
        out.append({**tweet, "_user": users.get(tweet.get("author_id")), "_place": places.get(place_id)})
    return out
