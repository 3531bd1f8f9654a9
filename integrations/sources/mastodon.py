"""Mastodon source on Mastodon.py: hashtag timelines and the instance's local timeline.

Streams: ``tag:<hashtag>`` for each hashtag of the listening plan (every post carrying it is
kept), and ``local`` when ``local_timeline`` is on (only posts matching a plan term are kept:
a city instance's local timeline is mostly chatter). Pages go newest-first through the
``max_id`` of the server's ``Link: rel="next"`` header, exactly as Mastodon.py parses it; a
poll is one sweep down to the last id consumed (see :mod:`polling`).

Rate limits: Mastodon sends ``X-RateLimit-Limit/Remaining/Reset`` (300 calls per 5 minutes
per token by default); Mastodon.py is run with ``ratelimit_method="throw"`` so that the shared
base, not the library, decides how long to wait (``X-RateLimit-Reset``, which Mastodon.py
parses and corrects for clock skew with the ``Date`` header).

Deletions and edits: :meth:`MastodonSource.recheck` re-fetches statuses (``GET
/api/v1/statuses/:id``): 404 means deleted; ``edited_at`` shows an edit. Replies use
``in_reply_to_id`` with an ``Idempotency-Key`` derived from the post, so a retry within the
hour the server keeps keys is not posted twice; and a reply in doubt is first read back
(:meth:`MastodonSource.find_reply`: the status's context, descendants by the city's account
holding the request id), so one retried later is not posted twice either.

Speed: Mastodon.py casts every response into its typed entities (``Status``, ``Account``, ...,
field by field, datetimes parsed), which took ~95% of a timeline read. It picks the type from
the return annotation of the API method the request came through, looked up on the client
instance; :class:`_PlainTimelines` overrides the public ``timeline`` method (which every
``timeline_*`` call goes through) with a plain ``-> list`` annotation, so timeline pages stay
the server's JSON (dicts) while Mastodon.py still does auth, ``Link`` paging
(``_pagination_next``), rate-limit headers and errors. Timeline reads are ~4x faster.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from mastodon import Mastodon, MastodonNotFoundError, MastodonRatelimitError
from mastodon.errors import MastodonError, MastodonNetworkError, MastodonServerError, MastodonUnauthorizedError
from pydantic import Field

from social311.integrations.sources.polling import (
    Page, PollingConfig, PollingSource, RateLimited, Recheck, ReplyOutcomeUnknown, SourceError, html_to_text,
    parse_time,
)
from social311.records import Post, Reject


class _PlainTimelines(Mastodon):
    """Mastodon.py whose timeline pages are plain JSON (see the module doc, "Speed")."""

    def timeline(self, *args: Any, **kwargs: Any) -> list:
        return super().timeline(*args, **kwargs)


# What Mastodon.py casts a timeline page to: the type itself (this module's annotations are
# strings, and Mastodon.py reads a string as one of its entity names).
_PlainTimelines.timeline.__annotations__["return"] = list


class MastodonConfig(PollingConfig):
    """Settings of a Mastodon source. ``credentials_env: {access_token: ENV_NAME}``."""

    base_url: str = Field(description="the instance, e.g. https://mastodon.social")
    local_timeline: bool = Field(False, description="also read the instance's local timeline, kept "
                                 "when a post matches a plan keyword or place term")


class MastodonSource(PollingSource):
    """Public Mastodon posts matching the city's listening plan."""

    config_model = MastodonConfig
    config: MastodonConfig
    supports_reply = True
    reply_read_back = True

    def __init__(self, config: MastodonConfig, **kwargs: Any) -> None:
        super().__init__(config, **kwargs)
        # Public timelines need no token on most instances; replies and some instances do.
        self.api = _PlainTimelines(api_base_url=config.base_url.rstrip("/"), access_token=self.secret("access_token"),
                            ratelimit_method="throw", request_timeout=config.timeout_s,
                            version_check_mode="none")
        self._me: str | None = None  # the city account's id, asked once for read-backs
        terms = [t.lower() for t in [*self.plan.keywords, *self.plan.place_terms]]
        self._terms = re.compile("|".join(rf"\b{re.escape(t)}\b" for t in terms), re.IGNORECASE) if terms else None

    def streams(self) -> list[str]:
        names = [f"tag:{t}" for t in self.plan.hashtags]
        return names + (["local"] if self.config.local_timeline else [])

    def fetch_page(self, stream: str, token: str | None, *, since: datetime | None, above: str | None) -> Page:
        args = {"max_id": token, "limit": self.config.page_size}
        try:
            if stream.startswith("tag:"):
                items = self.api.timeline_hashtag(stream[4:], **args)
            else:
                items = self.api.timeline_local(**args)
        except MastodonRatelimitError as exc:
            raise RateLimited(self._reset_wait(), "Mastodon 429") from exc
        except (MastodonNetworkError, MastodonUnauthorizedError, MastodonError) as exc:
            raise SourceError(f"{type(exc).__name__}: {str(exc)[:200]}") from exc
        nxt = getattr(items, "_pagination_next", None)
        token = str(nxt["max_id"]) if nxt and nxt.get("max_id") is not None else None
        return Page(items=list(items), next_token=token)

    def _reset_wait(self) -> float | None:
        reset = getattr(self.api, "ratelimit_reset", None)
        return None if reset is None else max(0.0, float(reset) - self.clock())

    def item_key(self, item: Any) -> str:
        return str(item["id"]).zfill(24)

    def item_time(self, item: Any) -> datetime | None:
        return parse_time(item.get("created_at"))

    def to_post(self, item: Any, *, pseudonym_key: str) -> Post | Reject | None:
        status = item
        reblog = item.get("reblog")
        text = html_to_text(status.get("content") or "")
        if reblog and not text.strip():
            text = html_to_text(reblog.get("content") or "")
        if status.get("spoiler_text"):
            text = f"{status['spoiler_text']}\n{text}"
        if self._terms is not None and not str(self._stream_hint(item)).startswith("tag") and not self._matches(item, text):
            return None
        account = status.get("account") or {}
        quote = status.get("quote") or {}
        quoted = (quote.get("quoted_status") or {}).get("id") if isinstance(quote, dict) else None
        mentions = {str(m.get("acct", "")).lower() for m in status.get("mentions") or []}
        city = {h.lstrip("@").lower() for h in self.config.city_handles}
        return self.make_post(
            native_id=str(status["id"]), text=text, created_at=parse_time(status.get("created_at")),
            handle=account.get("acct"), pseudonym_key=pseudonym_key, ref=f"status {status['id']}",
            lang=status.get("language"), url=status.get("url") or status.get("uri"),
            repost_of=str(reblog["id"]) if reblog else (str(quoted) if quoted else None),
            reply_to=str(status["in_reply_to_id"]) if status.get("in_reply_to_id") else None,
            mentions_city=bool(mentions & city) or None,
        )

    def _stream_hint(self, item: Any) -> str:
        # Posts reached through a hashtag carry it; those are kept without a term match.
        tags = {str(t.get("name", "")).lower() for t in item.get("tags") or []}
        return "tag" if tags & {t.lower() for t in self.plan.hashtags} else "local"

    def _matches(self, item: Any, text: str) -> bool:
        return bool(self._terms.search(text))

    def recheck(self, native_ids: list[str], *, pseudonym_key: str) -> Recheck:
        """Re-fetch each status: 404 = deleted; otherwise the status as it reads now."""
        out = Recheck()
        for native_id in native_ids:
            try:
                status = self.api.status(native_id)
            except MastodonNotFoundError:
                out.deleted.append(native_id)
                continue
            except MastodonRatelimitError:
                wait = self._reset_wait() or 1.0
                if wait > self.config.max_wait_s:
                    out.errors.append(f"{native_id}: rate limited")
                    continue
                self.waits.append(wait)
                self.sleep(wait)
                try:
                    status = self.api.status(native_id)
                except MastodonNotFoundError:
                    out.deleted.append(native_id)
                    continue
                except MastodonError as exc:
                    out.errors.append(f"{native_id}: {type(exc).__name__}")
                    continue
            except MastodonError as exc:
                out.errors.append(f"{native_id}: {type(exc).__name__}")
                continue
            post = self.to_post(status, pseudonym_key=pseudonym_key)
            if isinstance(post, Post):
                out.current.append(post)
        return out

    def reply(self, post: Post, text: str) -> str | None:
        """Answer under the resident's status (``in_reply_to_id``), once per post.

        The ``Idempotency-Key`` is the post's id: Mastodon returns the first reply again for a
        repeated key (kept an hour), so a retry after a lost response never posts twice.
        """
        try:
            status = self.api.status_post(text, in_reply_to_id=post.native_id, visibility="public",
                                          idempotency_key=f"social311-reply-{post.post_id}")
        except MastodonRatelimitError as exc:
            raise RateLimited(self._reset_wait(), "Mastodon 429 on reply") from exc
        except (MastodonNetworkError, MastodonServerError) as exc:  # the server may have acted: unknown
            raise ReplyOutcomeUnknown(f"Mastodon: {type(exc).__name__}") from exc
        return str(status["id"])

    def find_reply(self, post: Post, marker: str) -> str | None:
        """The city account's reply under ``post`` holding ``marker``, from the status's context."""
        try:
            if self._me is None:
                self._me = str(self.api.me()["id"])
            context = self.api.status_context(post.native_id)
        except MastodonRatelimitError as exc:
            raise RateLimited(self._reset_wait(), "Mastodon 429 on read-back") from exc
        except MastodonError as exc:
            raise SourceError(f"Mastodon read-back: {type(exc).__name__}: {str(exc)[:200]}") from exc
        for status in context["descendants"]:
            if str(status["account"]["id"]) == self._me and str(status.get("in_reply_to_id")) == post.native_id \
                    and marker in html_to_text(status.get("content") or ""):
                return str(status["id"])
        return None
