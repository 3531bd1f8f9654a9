"""Shared base of the social-platform sources that poll an API (Mastodon, Bluesky, Reddit, ...).

Every platform answers "the newest posts matching X, page by page, going back in time". This
base turns that into a resumable, exactly-once feed:

- **Streams.** A source polls one or more streams (a hashtag, a search query, a subreddit);
  each keeps its own state in the cursor, a JSON object ``{stream: state}``.
- **Sweeps.** A sweep reads pages newest-first until it reaches what the last sweep already
  consumed (``top``) or, on the first run, the start of the backfill window. The cursor is
  written after *every page*: ``{"top": old top, "sweep": {"anchor": newest key of this sweep,
  "token": next page}}``, so a run stopped mid-sweep (rate limit, network error, page budget,
  SIGKILL before the cursor is stored) resumes at the next page, not at the start, with no
  post twice and none missed. When the sweep ends, ``top`` becomes its anchor.
- **Rate limits.** A 429 waits as the platform's own headers say (``retry-after``,
  ``x-ratelimit-reset``, ``x-rate-limit-reset``, ``ratelimit-reset``), then retries; a wait
  longer than ``max_wait_s`` stops the run cleanly (the cursor keeps what was read).
- **Privacy at the edge.** Handles become keyed pseudonyms before a ``Post`` exists; the
  handle itself never leaves the plugin.
- **Deletions and edits.** :meth:`PollingSource.recheck` asks the platform about posts already
  ingested: those gone are reported as deleted, those still there come back as they are now
  (an edited text is re-emitted for re-scoring).

A platform plugin implements :meth:`streams`, :meth:`fetch_page`, :meth:`item_key` and
:meth:`to_post` (and optionally :meth:`recheck` and :meth:`reply`).
"""

from __future__ import annotations

import email.utils
import json
import logging
import time
from abc import abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from html.parser import HTMLParser
from typing import Any

from pydantic import Field, field_validator

from social311.integrations.base import PluginConfig
from social311.integrations.sources.base import FetchResult, SourcePlugin
from social311.integrations.sources.file_drop import clean_text, mentions_handle
from social311.integrations.sources.listening import ListeningPlan
from social311.privacy import mask_personal_data, pseudonymise
from social311.records import Post, Reject

log = logging.getLogger(__name__)

_EXCERPT_CHARS = 200


def _check_template(value: str | None) -> str | None:
    if value is not None and "{request_id}" not in value:
        raise ValueError("reply_template must contain {request_id}: the resident needs the number")
    return value


class PollingConfig(PluginConfig):
    """Settings every polling source shares (plus the platform's own, in its subclass)."""

    base_url: str = Field(description="the API's base URL (the platform's public one by default; a test "
                          "points it at a loopback fake)")
    credentials_env: dict[str, str] = Field(default_factory=dict, description="credential role -> name of "
                                            "the environment variable holding it; values never live in the YAML")
    plan: ListeningPlan | None = Field(None, description="this source's own plan (default: the city's)")
    backfill_hours: float | None = Field(None, gt=0, description="first run reads this far back "
                                         "(default: the plan's backfill_hours)")
    max_pages: int = Field(50, ge=1, description="pages read per run per stream; the rest waits for the next run")
    page_size: int = Field(40, ge=1, le=100)
    max_wait_s: float = Field(300, ge=0, description="the longest rate-limit wait a run sits through")
    max_retries: int = Field(5, ge=0, description="429s in a row on one page before the run stops")
    timeout_s: float = Field(30, gt=0)
    poll_minutes: float = Field(10, gt=0, description="how often `social311 listen` and the source's Dagster "
                                "sensor poll (the sensor is off until turned on)")
    recheck_per_run: int = Field(100, ge=0, description="ingested posts re-checked per run for deletions "
                                 "and edits (each costs API calls: Mastodon one per post, 300 per 5 min)")
    max_replies_per_run: int | None = Field(None, ge=0, description="replies posted per run at most "
                                            "(the rest wait for the next run)")
    max_replies_per_minute: int | None = Field(None, ge=1, description="replies posted in any 60 s at most, "
                                               "counted in the reply ledger across runs and restarts "
                                               "(the rest wait for the next run)")
    reply_lookback: int = Field(5, ge=1, le=50, description="pages of the city account's own recent "
                                "replies read back to find a reply whose outcome is unknown")
    reply_template: str | None = Field(None, description="the reply, with {request_id}; default "
                                       "\"We're on it! Your report number is {request_id}.\"")
    city_handles: list[str] = Field(default_factory=list, description="the city's own handles: posts "
                                    "tagging them are marked mentions_city")

    _template = field_validator("reply_template")(_check_template)


class RateLimited(Exception):
    """The platform answered 429; ``wait_s`` is what its headers ask (None: they say nothing)."""

    def __init__(self, wait_s: float | None, detail: str = "") -> None:
        super().__init__(f"rate limited ({detail or 'no detail'}); wait {wait_s}")
        self.wait_s = wait_s


class SourceError(Exception):
    """A page could not be read (network, 5xx, expired credentials); the run stops at that page."""


class ReplyOutcomeUnknown(SourceError):
    """A reply request may have reached the platform (connection lost after sending, timeout,
    5xx): whether the reply exists is unknown until it is read back (:meth:`PollingSource.find_reply`)."""


@dataclass
class Page:
    """One page of a stream: raw items newest first, and the token of the next (older) page."""

    items: list[Any]
    next_token: str | None


@dataclass
class Recheck:
    """What the platform says now about posts ingested earlier."""

    deleted: list[str] = field(default_factory=list)  # native ids gone from the platform
    current: list[Post] = field(default_factory=list)  # posts still there, as they read now
    errors: list[str] = field(default_factory=list)  # ids that could not be checked, with why


def wait_from_headers(headers: Mapping[str, str], *, now: float | None = None) -> float | None:
    """Seconds to wait before the next call, from any platform's rate-limit headers.

    Understands ``retry-after`` (seconds or an HTTP date), and ``x-ratelimit-reset`` /
    ``x-rate-limit-reset`` / ``ratelimit-reset`` as epoch seconds (X, Bluesky, GoToSocial),
    an ISO datetime (Mastodon) or seconds from now (the IETF draft, Reddit). Returns None when
    no header says anything usable.
    """
    now = time.time() if now is None else now
    low = {k.lower(): v for k, v in headers.items()}
    retry = low.get("retry-after")
    if retry:
        try:
            return max(0.0, float(retry))
        except ValueError:
            parsed = email.utils.parsedate_to_datetime(retry) if retry else None
            if parsed is not None:
                return max(0.0, parsed.timestamp() - now)
    for name in ("x-ratelimit-reset", "x-rate-limit-reset", "ratelimit-reset"):
        value = low.get(name)
        if not value:
            continue
        try:
            number = float(value)
        except ValueError:
            try:
                when = datetime.fromisoformat(value.replace("Z", "+00:00"))
            except ValueError:
                continue
            return max(0.0, when.timestamp() - now)
        # Epoch seconds are ~1.7e9; a delta is small. Anything past 2001 is an epoch.
        return max(0.0, number - now) if number > 1e9 else max(0.0, number)
    return None


class _Text(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []

    def handle_starttag(self, tag: str, attrs: list) -> None:
        if tag in {"br", "p"} and self.parts:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        self.parts.append(data)


def html_to_text(html: str) -> str:
    """The readable text of a status's HTML (``<p>``, ``<br>``, links), entities decoded."""
    parser = _Text()
    parser.feed(html or "")
    parser.close()
    return "".join(parser.parts)


def parse_time(value: Any) -> datetime | None:
    """An aware UTC datetime from ISO text, a datetime, or epoch seconds; None when unknown."""
    if value is None:
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=timezone.utc)
    if isinstance(value, (int, float)):
        return datetime.fromtimestamp(value, timezone.utc)
    try:
        parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


class PollingSource(SourcePlugin):
    """A source that sweeps newest-first pages of one or more streams (see the module doc)."""

    config_model = PollingConfig
    config: PollingConfig
    #: True when the platform itself refuses a second reply to the same post (an idempotency
    #: key), so a reply whose outcome is unknown may safely be sent again.
    reply_dedup_on_platform: bool = False

    def __init__(self, config: PollingConfig, *, instance_name: str, credentials: Mapping[str, str | None] | None = None,
                 plan: ListeningPlan | None = None, sleep: Callable[[float], None] = time.sleep,
                 clock: Callable[[], float] = time.time) -> None:
        """Args beyond the plugin's: ``credentials`` (role -> secret, resolved from the
        environment by the orchestration layer), the city's ``plan``, and ``sleep``/``clock``
        (rate-limit waits; tests record them instead of sleeping)."""
        super().__init__(config, instance_name=instance_name)
        self.credentials = dict(credentials or {})
        self.plan = config.plan or plan or ListeningPlan()
        self.sleep = sleep
        self.clock = clock
        self.waits: list[float] = []  # every rate-limit wait of this instance, for the run log

    # --- what a platform implements -------------------------------------------------------

    @abstractmethod
    def streams(self) -> list[str]:
        """The streams polled, from the plan (e.g. ``["tag:pothole", "tag:chicago311"]``)."""

    @abstractmethod
    def fetch_page(self, stream: str, token: str | None, *, since: datetime | None, above: str | None) -> Page:
        """One page of ``stream``, newest first; ``token`` None means the newest page.

        ``since`` (first run) and ``above`` (the ``item_key`` already consumed) let the API
        narrow the page when it can; the base filters again either way. Raises
        :class:`RateLimited` on a 429 and :class:`SourceError` when the page cannot be read.
        """

    @abstractmethod
    def item_key(self, item: Any) -> str:
        """A text that sorts like the platform's order of posts (zero-padded ids, timestamps)."""

    @abstractmethod
    def item_time(self, item: Any) -> datetime | None:
        """When the item was posted (for the backfill window)."""

    @abstractmethod
    def to_post(self, item: Any, *, pseudonym_key: str) -> Post | Reject | None:
        """The post of one raw item, a reject with its reason, or None to skip (not a post)."""

    def recheck(self, native_ids: list[str], *, pseudonym_key: str) -> Recheck:
        """Which of these posts are deleted, and the others as they read now. Default: unsupported."""
        raise NotImplementedError(f"{type(self).__name__} cannot re-check posts")

    #: True when :meth:`find_reply` reads back the city account's replies on this platform.
    reply_read_back: bool = False

    def find_reply(self, post: Post, marker: str) -> str | None:
        """The id of a reply the city's account already posted under ``post`` whose text holds
        ``marker`` (the request id), or None when the platform shows there is none.

        Raises :class:`SourceError` when the platform cannot be read (the reply ledger then
        keeps the reply ``in_doubt`` rather than post it blind). Default: unsupported.
        """
        raise NotImplementedError(f"{type(self).__name__} cannot read its replies back")

    # --- the shared machinery -------------------------------------------------------------

    def fetch(self, cursor: str | None, *, pseudonym_key: str) -> FetchResult:
        """Sweep every stream from its cursor state; see the module doc for the guarantees."""
        state = _decode(cursor, self.instance_name)
        posts: list[Post] = []
        rejects: list[Reject] = []
        seen: set[str] = set()
        for stream in self.streams():
            new_state, got, bad = self._sweep(stream, state.get(stream), pseudonym_key)
            state[stream] = new_state
            for post in got:
                if post.post_id not in seen:  # a post matching two streams counts once
                    seen.add(post.post_id)
                    posts.append(post)
            rejects.extend(bad)
        return FetchResult(posts=posts, rejects=rejects, cursor=json.dumps(state, sort_keys=True))

    def _sweep(self, stream: str, st: dict | None, key: str) -> tuple[dict, list[Post], list[Reject]]:
        st = dict(st or {"top": None, "sweep": None})
        top = st.get("top")
        sweep = st.get("sweep")
        since = None
        if top is None:
            hours = self.config.backfill_hours or self.plan.backfill_hours
            since = datetime.fromtimestamp(self.clock(), timezone.utc) - timedelta(hours=hours)
        posts: list[Post] = []
        rejects: list[Reject] = []
        token = sweep["token"] if sweep else None
        anchor = sweep["anchor"] if sweep else None
        for _ in range(self.config.max_pages):
            try:
                page = self._page_with_retries(stream, token, since=since, above=top)
            except (RateLimited, SourceError) as exc:
                # Stop here; the cursor keeps every page read so far. Recorded, not silent.
                rejects.append(self._reject(f"{stream}@{token or 'newest'}", f"stream stopped, resumes next run: {exc}", ""))
                return {"top": top, "sweep": {"anchor": anchor, "token": token} if anchor else None}, posts, rejects
            finished = page.next_token is None or not page.items
            for item in page.items:
                ikey = self.item_key(item)
                when = self.item_time(item)
                if (top is not None and ikey <= top) or (since is not None and when is not None and when < since):
                    finished = True
                    continue
                if anchor is None or ikey > anchor:
                    anchor = ikey
                result = self.to_post(item, pseudonym_key=key)
                if isinstance(result, Post):
                    if self.plan.keeps_language(result.lang):
                        posts.append(result)
                elif isinstance(result, Reject):
                    rejects.append(result)
            if finished:
                return {"top": anchor if anchor is not None else top, "sweep": None}, posts, rejects
            token = page.next_token
        # Page budget spent: the sweep goes on next run from `token`.
        return {"top": top, "sweep": {"anchor": anchor, "token": token} if anchor else None}, posts, rejects

    def _page_with_retries(self, stream: str, token: str | None, *, since: datetime | None, above: str | None) -> Page:
        for attempt in range(self.config.max_retries + 1):
            try:
                return self.fetch_page(stream, token, since=since, above=above)
            except RateLimited as exc:
                wait = exc.wait_s if exc.wait_s is not None else min(2.0 ** attempt, 60.0)
                if wait > self.config.max_wait_s or attempt == self.config.max_retries:
                    raise
                log.warning("%s: rate limited on %s, waiting %.1f s as the platform asks", self.instance_name, stream, wait)
                self.waits.append(wait)
                self.sleep(wait)
        raise AssertionError("unreachable")

    # --- helpers for platform plugins -----------------------------------------------------

    def secret(self, role: str) -> str | None:
        """The credential for ``role`` (None when not configured or not set)."""
        return self.credentials.get(role)

    def make_post(self, *, native_id: str, text: str, created_at: datetime | None, handle: str | None,
                  pseudonym_key: str, ref: str, lang: str | None = None, url: str | None = None,
                  repost_of: str | None = None, reply_to: str | None = None, lat: float | None = None,
                  lon: float | None = None, place_name: str | None = None,
                  place_bbox: tuple[float, float, float, float] | None = None,
                  mentions_city: bool | None = None) -> Post | Reject:
        """A :class:`Post` with the handle pseudonymised and ids namespaced, or a reject."""
        body = clean_text(text or "")
        if not body:
            return self._reject(ref, "text: empty after removing markup, whitespace and control characters", text or "")
        if created_at is None:
            return self._reject(ref, "created_at: missing or not a date", text or "")
        try:
            return Post(
                post_id=f"{self.instance_name}:{native_id}", source=self.instance_name, native_id=native_id,
                text=body[:10_000], created_at=created_at,
                author_hash=pseudonymise(handle.lstrip("@"), pseudonym_key) if handle else None,
                lat=lat, lon=lon, place_name=place_name, place_bbox=place_bbox,
                repost_of=f"{self.instance_name}:{repost_of}" if repost_of else None,
                reply_to=f"{self.instance_name}:{reply_to}" if reply_to else None,
                mentions_city=mentions_city if mentions_city is not None else mentions_handle(body, self.config.city_handles),
                lang=lang, url=url,
            )
        except ValueError as exc:
            return self._reject(ref, str(exc).splitlines()[0][:500], text or "")

    def _reject(self, ref: str, reason: str, raw: str) -> Reject:
        excerpt = mask_personal_data(clean_text((raw or "")[:_EXCERPT_CHARS]))
        return Reject(source=self.instance_name, record_ref=ref[:300], reason=reason[:1000], raw_excerpt=excerpt)


def _decode(cursor: str | None, name: str) -> dict[str, dict]:
    if not cursor:
        return {}
    try:
        data = json.loads(cursor)
    except ValueError as exc:
        raise ValueError(f"{name} cursor is not JSON: {cursor[:80]!r}") from exc
    if not isinstance(data, dict):
        raise ValueError(f"{name} cursor is not a JSON object of streams: {cursor[:80]!r}")
    return data
