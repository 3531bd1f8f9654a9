"""The X API v2 filtered stream for the ``x`` plugin (``stream: true``), on tweepy's ``StreamingClient``.

Rules: the listening plan becomes the same OR-ed queries as recent search (:func:`build_queries`,
``max_query_length`` per rule), each tagged ``social311:<n>``. Every run first syncs them
(``GET/POST /2/tweets/search/stream/rules``): rules of ours no longer wanted are deleted,
missing ones added, rules with other tags left alone (another app of the account may use them).

A run is *bounded* like Jetstream's: it connects (``GET /2/tweets/search/stream`` with the same
expansions as search), reads newline-delimited messages, and stops after ``stream_max_seconds``,
``stream_max_events`` posts, or ``stream_idle_seconds`` without even a keep-alive (X sends an
empty line every 20 s). tweepy reconnects a dropped stream itself, with X's published backoff
(network errors: +0.25 s steps up to 16 s; HTTP errors: from 5 s, doubling; 429: from 60 s);
``stream_max_reconnects`` bounds it. A 429 or 4xx on connect ends the run with a reject.

Messages: a Tweet becomes a post as in search (``matching_rules`` dropped); a line that is not
JSON (a message cut off when the connection dropped, as recorded) is quarantined with its
reason; an ``errors``-only message (``operational-disconnect``) is recorded as a reject. The
v2 stream delivers no deletions: Tweets ingested from it are re-checked by lookup like any
other (:meth:`XSource.recheck`). The cursor keeps the ids of the last 1,000 Tweets read (the
stream is not strictly ordered), so a Tweet delivered again after a reconnect is not ingested twice. No backfill: ``backfill_minutes``
(recovering a disconnect's gap) needs the Pro/Enterprise access level.
"""

from __future__ import annotations

import json
import threading
import time
from typing import TYPE_CHECKING, Any

import requests
import tweepy

from social311.integrations.sources.base import FetchResult
from social311.records import Post, Reject

if TYPE_CHECKING:
    from social311.integrations.sources.x import XSource

RULE_TAG = "social311"


class _Stream(tweepy.StreamingClient):
    """tweepy's client, handing each raw line and event to the bounded run."""

    def __init__(self, run: StreamRun, bearer_token: str, **kwargs: Any) -> None:
        super().__init__(bearer_token, return_type=dict, **kwargs)
        self.run = run

    def on_data(self, raw_data: bytes) -> None:
        self.run.line(raw_data)
        if self.run.done():
            self.disconnect()

    def on_keep_alive(self) -> None:
        self.run.alive()
        if self.run.done():
            self.disconnect()

    def on_connect(self) -> None:
        self.run.connections += 1
        if self.run.connections > self.run.source.config.stream_max_reconnects + 1:
            self.run.stop("stream stopped, resumes next run: too many reconnects")
            self.disconnect()

    def on_request_error(self, status_code: int) -> None:
        # tweepy would sleep (60 s and more on a 429) and retry: a bounded run stops instead.
        self.run.stop(f"stream stopped, resumes next run: HTTP {status_code} on connect"
                      + (" (rate limited)" if status_code == 429 else ""))
        self.disconnect()

    def on_connection_error(self) -> None:
        self.run.drops += 1
        if self.run.done():
            self.disconnect()

    def on_exception(self, exception: Exception) -> None:
        self.run.stop(f"stream stopped, resumes next run: {type(exception).__name__}: {exception}")


class StreamRun:
    """One bounded read of the filtered stream; thread-safe counters the plugin reads after."""

    def __init__(self, source: XSource, seen: list[str], pseudonym_key: str) -> None:
        self.source = source
        self.seen = list(seen)
        self._seen = set(seen)
        self.key = pseudonym_key
        self.posts: list[Post] = []
        self.rejects: list[Reject] = []
        self.lines = 0
        self.connections = 0
        self.drops = 0
        self.started = time.monotonic()
        self.last_seen = self.started
        self.stopped = False
        self.lock = threading.Lock()

    def alive(self) -> None:
        self.last_seen = time.monotonic()

    def stop(self, reason: str) -> None:
        with self.lock:
            self.stopped = True
            self.rejects.append(self.source._reject(self.source.config.base_url, reason, ""))

    def done(self) -> bool:
        cfg = self.source.config
        now = time.monotonic()
        return (self.stopped or len(self.posts) >= cfg.stream_max_events or now - self.started >= cfg.stream_max_seconds
                or now - self.last_seen >= cfg.stream_idle_seconds)

    def line(self, raw: bytes) -> None:
        from social311.integrations.sources.x import _with_includes

        self.alive()
        with self.lock:
            self.lines += 1
            ref = f"stream line {self.lines}"
            try:
                message = json.loads(raw)
            except ValueError as exc:
                text = raw.decode("utf-8", "replace")
                self.rejects.append(self.source._reject(ref, f"not valid JSON (a message cut off mid-line?): {exc}", text))
                return
            if not isinstance(message, dict) or "data" not in message:
                errors = message.get("errors") if isinstance(message, dict) else None
                title = "; ".join(str(e.get("title") or e.get("detail")) for e in errors or [] if isinstance(e, dict))
                self.rejects.append(self.source._reject(ref, f"stream message without a Tweet: {title or 'unknown shape'}", ""))
                return
            body = {"data": [message["data"]], "includes": message.get("includes") or {}}
            for tweet in _with_includes(body):
                tid = str(tweet.get("id") or "")
                if not tid.isdigit():
                    self.rejects.append(self.source._reject(ref, "id: missing or not a number", tweet.get("text") or ""))
                    continue
                if tid in self._seen:
                    continue  # delivered again after a reconnect
                self._seen.add(tid)
                self.seen.append(tid)
                result = self.source.to_post(tweet, pseudonym_key=self.key)
                if isinstance(result, Post):
                    if self.source.plan.keeps_language(result.lang):
                        self.posts.append(result)
                elif isinstance(result, Reject):
                    self.rejects.append(result)


def wanted_rules(source: XSource) -> list[tuple[str, str]]:
    """(value, tag) of the rules the plan asks for, in order."""
    from social311.integrations.sources.x import build_queries

    terms = [*source.plan.keywords, *(f"#{t}" for t in source.plan.hashtags), *source.plan.place_terms]
    suffix = " ".join(p for p in ["-is:retweet", source.config.geo_operator or "",
                                  f"lang:{source.plan.languages[0]}" if len(source.plan.languages) == 1 else ""] if p)
    queries = build_queries(terms, suffix=suffix, limit=source.config.max_query_length) if terms else []
    return [(q, f"{RULE_TAG}:{i}") for i, q in enumerate(queries)]


def sync_rules(client: tweepy.StreamingClient, wanted: list[tuple[str, str]]) -> dict[str, int]:
    """Make the account's ``social311:*`` rules exactly ``wanted``; returns counts added/deleted."""
    current = client.get_rules().get("data") or []
    ours = [r for r in current if str(r.get("tag") or "").startswith(f"{RULE_TAG}:")]
    keep = {(r["value"], r["tag"]) for r in ours} & set(wanted)
    stale = [r["id"] for r in ours if (r["value"], r["tag"]) not in keep]
    if stale:
        client.delete_rules(stale)
    missing = [tweepy.StreamRule(value=v, tag=t) for v, t in wanted if (v, t) not in keep]
    if missing:
        answer = client.add_rules(missing)
        invalid = [e for e in answer.get("errors") or []]
        if invalid:
            raise ValueError(f"X refused {len(invalid)} stream rule(s): "
                             f"{'; '.join(str(e.get('title') or e.get('details')) for e in invalid)[:300]}")
    return {"added": len(missing), "deleted": len(stale)}


def fetch_stream(source: XSource, cursor: str | None, *, pseudonym_key: str) -> FetchResult:
    """One bounded run of the filtered stream (see the module doc)."""
    from social311.integrations.sources.x import _TWEET_FIELDS, _EXPANSIONS, TWEEPY_HOST, _Rebase

    state = json.loads(cursor) if cursor else {}
    run = StreamRun(source, list(state.get("stream", {}).get("seen") or []), pseudonym_key)
    token = source.secret("bearer_token")
    if not token:
        return FetchResult(rejects=[source._reject("stream", "X's filtered stream needs credentials_env "
                                                   "{bearer_token} (app-only)", "")], cursor=cursor)
    client = _Stream(run, token, max_retries=source.config.stream_max_reconnects, daemon=True)
    if source.config.base_url.rstrip("/") != TWEEPY_HOST:
        client.session.mount(TWEEPY_HOST, _Rebase(source.config.base_url))
    try:
        sync_rules(client, wanted_rules(source))
    except (tweepy.TweepyException, requests.RequestException, ValueError) as exc:
        return FetchResult(rejects=[source._reject("stream/rules", f"stream stopped, resumes next run: rules: "
                                                   f"{type(exc).__name__}: {str(exc)[:300]}", "")], cursor=cursor)
    thread = client.filter(threaded=True, tweet_fields=_TWEET_FIELDS, expansions=_EXPANSIONS,
                           user_fields=["username"], place_fields=["full_name", "geo", "name"])
    while thread.is_alive() and not run.done():
        thread.join(0.05)
    client.disconnect()
    # tweepy notices the stop at its next line; X sends a keep-alive every 20 s at the latest.
    thread.join(max(1.0, source.config.stream_idle_seconds) + 1.0)
    with run.lock:
        posts, rejects = list(run.posts), list(run.rejects)
        seen = run.seen[-1000:]
    new_state = {**state, "stream": {"seen": seen}}
    return FetchResult(posts=posts, rejects=rejects, cursor=json.dumps(new_state, sort_keys=True))
