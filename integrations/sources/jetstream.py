"""Bluesky Jetstream source: the firehose as JSON over WebSocket (``websockets``), near real time.

Jetstream (``wss://jetstream2.us-east.bsky.network/subscribe``) streams every repository
commit of the network as JSON; the plugin subscribes with ``wantedCollections=app.bsky.feed.post``
and ``cursor=<time_us>`` (Jetstream replays from that microsecond, about a day back), keeps the
post creates that match the listening plan (any keyword, ``#hashtag`` or place term, any case;
everything when the plan has none), and stops after ``max_seconds``, ``max_events`` or
``idle_seconds`` without a message: a *bounded run*, whose cursor is the last ``time_us`` read.

Deletes on the stream are remembered and answered by :meth:`recheck`, which the ingest step
calls right after the fetch. No credentials; no rate limit besides the connection itself. A
line that is not JSON (a message cut off) is quarantined with its reason.
"""

from __future__ import annotations

import json
import re
import time
from typing import Any
from urllib.parse import urlencode

from pydantic import Field
from websockets.exceptions import WebSocketException
from websockets.sync.client import connect

from social311.integrations.base import PluginConfig
from social311.integrations.sources.base import FetchResult, SourcePlugin
from social311.integrations.sources.listening import ListeningPlan
from social311.integrations.sources.polling import PollingSource, Recheck, parse_time
from social311.records import Post, Reject

POST = "app.bsky.feed.post"


class JetstreamConfig(PluginConfig):
    """Settings of a Jetstream source."""

    url: str = Field("wss://jetstream2.us-east.bsky.network/subscribe")
    plan: ListeningPlan | None = None
    max_seconds: float = Field(60, gt=0, description="longest run")
    max_events: int = Field(100_000, ge=1)
    idle_seconds: float = Field(10, gt=0, description="stop after this long without a message")
    poll_minutes: float = Field(10, gt=0)
    city_handles: list[str] = Field(default_factory=list)


class JetstreamSource(SourcePlugin):
    """Post creates (and deletes) from Bluesky's Jetstream, filtered by the plan."""

    config_model = JetstreamConfig
    config: JetstreamConfig

    def __init__(self, config: JetstreamConfig, *, instance_name: str, plan: ListeningPlan | None = None,
                 credentials: dict | None = None) -> None:
        super().__init__(config, instance_name=instance_name)
        self.plan = config.plan or plan or ListeningPlan()
        terms = [*self.plan.keywords, *(f"#{t}" for t in self.plan.hashtags), *self.plan.place_terms]
        self._terms = re.compile("|".join(rf"(?<!\w){re.escape(t)}(?!\w)" for t in terms), re.IGNORECASE) if terms else None
        self._deleted: set[str] = set()

    # Post building as every other platform does it (pseudonyms, cleaning, rejects): these use
    # only ``instance_name`` and ``config.city_handles``.
    make_post = PollingSource.make_post
    _reject = PollingSource._reject

    def fetch(self, cursor: str | None, *, pseudonym_key: str) -> FetchResult:
        params: dict[str, Any] = {"wantedCollections": POST}
        if cursor:
            params["cursor"] = int(cursor) + 1  # Jetstream's cursor is inclusive
        posts: list[Post] = []
        rejects: list[Reject] = []
        last = cursor
        started = time.monotonic()
        try:
            with connect(f"{self.config.url}?{urlencode(params)}", open_timeout=10, max_size=2 ** 22) as ws:
                for count in range(self.config.max_events):
                    remaining = self.config.max_seconds - (time.monotonic() - started)
                    if remaining <= 0:
                        break
                    try:
                        raw = ws.recv(timeout=min(self.config.idle_seconds, remaining))
                    except TimeoutError:
                        break
                    try:
                        event = json.loads(raw)
                    except ValueError as exc:
                        rejects.append(self._reject(f"jetstream message {count + 1}", f"not valid JSON: {exc}", str(raw)))
                        continue
                    stamp = event.get("time_us")
                    # Events are only roughly ordered (identity/account events interleave): the
                    # cursor is the highest time_us read, so a resume never replays one.
                    if isinstance(stamp, int) and (last is None or stamp > int(last)):
                        last = str(stamp)
                    result = self._event(event, pseudonym_key)
                    if isinstance(result, Post):
                        posts.append(result)
                    elif isinstance(result, Reject):
                        rejects.append(result)
        except (OSError, WebSocketException) as exc:
            rejects.append(self._reject(self.config.url, f"stream stopped, resumes next run: {type(exc).__name__}: {exc}", ""))
        return FetchResult(posts=posts, rejects=rejects, cursor=last)

    def _event(self, event: dict, key: str) -> Post | Reject | None:
        commit = event.get("commit") or {}
        if event.get("kind") != "commit" or commit.get("collection") != POST:
            return None
        uri = f"at://{event.get('did')}/{POST}/{commit.get('rkey')}"
        if commit.get("operation") == "delete":
            self._deleted.add(uri)
            return None
        if commit.get("operation") != "create":
            return None
        record = commit.get("record") or {}
        text = record.get("text") or ""
        if self._terms is not None and not self._terms.search(text):
            return None
        langs = record.get("langs") or []
        if not self.plan.keeps_language(langs[0] if langs else None):
            return None
        reply = (record.get("reply") or {}).get("parent") or {}
        embed = record.get("embed") or {}
        quoted = (embed.get("record") or {}).get("uri") or ((embed.get("record") or {}).get("record") or {}).get("uri")
        return self.make_post(native_id=uri, text=text, created_at=parse_time(record.get("createdAt")),
                           handle=event.get("did"), pseudonym_key=key, ref=f"jetstream {event.get('time_us')}",
                           lang=langs[0] if langs else None, repost_of=quoted, reply_to=reply.get("uri"),
                           url=f"https://bsky.app/profile/{event.get('did')}/post/{commit.get('rkey')}")

    def recheck(self, native_ids: list[str], *, pseudonym_key: str) -> Recheck:
        """The posts among ``native_ids`` whose delete came through the stream (nothing else is known)."""
        return Recheck(deleted=[n for n in native_ids if n in self._deleted])
