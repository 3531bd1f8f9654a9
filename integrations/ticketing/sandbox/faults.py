"""Fault injection and real-world quirks of the sandbox, switchable while it runs.

Rates are probabilities per request (from a seeded generator, so a run can be replayed);
``next_*`` counters fire on exactly the next N matching requests, which is what tests want.
"""

from __future__ import annotations

import random
import threading
from collections import Counter
from dataclasses import dataclass, field


@dataclass
class Faults:
    """What goes wrong, set from tests at run time (``server.faults.lose_next_post_replies = 1``).

    Attributes:
        fail_rate_5xx: share of requests answered 503 before any work is done.
        fail_next_5xx: the next N requests are answered 503 before any work is done.
        rate_429: share of requests answered 429 with ``Retry-After``.
        next_429: the next N requests are answered 429 with ``Retry-After``.
        retry_after_s: the ``Retry-After`` value in seconds.
        lose_reply_after_commit: share of POSTs whose request is stored but whose connection
            is then dropped without a reply.
        lose_next_post_replies: the next N POSTs are stored, then their reply is lost.
        reset_mid_reply: share of answered requests whose reply is cut after the headers and
            half the body by a TCP reset (the work, a POST's commit included, is done).
        reset_next_replies: the next N answered requests are cut that way.
        slow_s: seconds to wait after the work is done, before every reply.
        slow_rate: share of replies delayed by ``slow_rate_s`` (after the work is done).
        slow_rate_s: the delay of those replies.
        html_errors: answer errors with an HTML page instead of the spec's ``errors`` list.
        html_200_next: the next N requests (any method) get a 200 HTML page (a WAF, maintenance
            or login page in front of the server), well-formed XHTML, before any work is done.
        html_200_rate: share of requests answered that way.
        seed: seed of the random generator behind the rates.
    """

    fail_rate_5xx: float = 0.0
    fail_next_5xx: int = 0
    rate_429: float = 0.0
    next_429: int = 0
    retry_after_s: int = 1
    lose_reply_after_commit: float = 0.0
    lose_next_post_replies: int = 0
    reset_mid_reply: float = 0.0
    reset_next_replies: int = 0
    slow_s: float = 0.0
    slow_rate: float = 0.0
    slow_rate_s: float = 1.0
    slow_next: int = 0
    html_errors: bool = False
    html_200_next: int = 0
    html_200_rate: float = 0.0
    seed: int = 311
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)
    _rng: random.Random | None = field(default=None, repr=False, compare=False)
    #: How often each fault fired, by its counter's name (for tests that need a fault share).
    fired: Counter = field(default_factory=Counter, repr=False, compare=False)

    def fire(self, counter: str, rate: str) -> bool:
        """Whether the fault named by ``counter``/``rate`` hits this request (thread-safe)."""
        with self._lock:
            if getattr(self, counter) > 0:
                setattr(self, counter, getattr(self, counter) - 1)
                self.fired[counter] += 1
                return True
            probability = getattr(self, rate)
            if probability <= 0:
                return False
            if self._rng is None:
                self._rng = random.Random(self.seed)
            hit = self._rng.random() < probability
            if hit:
                self.fired[counter] += 1
            return hit


@dataclass
class Quirks:
    """Deviations seen on real servers (OPEN311.md §2), off by default: the sandbox is strict.

    Attributes:
        string_booleans: JSON booleans as ``"true"``/``"false"`` (open311-adapter).
        requests_root: XML request lists under ``<requests>`` (issue-reporting).
        no_charset: Content-Type without ``; charset=utf-8``.
        local_offsets: datetimes with microseconds and a ``+02:00`` offset (issue-reporting).
        pagination: honour ``page``/``page_size`` (1-based) on GET requests.
        token_polls: how many GET tokens calls answer "no id yet" before the id appears.
        application_xml: XML as ``application/xml`` instead of ``text/xml`` (issue-reporting).
        empty_strings: ``""`` instead of null in JSON (issue-reporting).
        unknown_latlong: how a request without coordinates shows them: ``"null"`` (spec),
            ``"omit"`` (issue-reporting leaves them out) or ``"zero"`` (open311-adapter's 0).
        lenient_status: 400 where the spec says 403 (api_key) or 404 (unknown service)
            (both servers).
        dict_errors: errors as one JSON object ``{"code", "detail"}`` / XML ``<requests><code>``
            instead of the ``errors`` list (issue-reporting).
        pretty_json: indented JSON with keys in reverse order (open311-adapter).
        post_200: POST answers 200 instead of 201 (open311-adapter).
        strict_params: GET requests refuses any parameter beyond the spec's with 400, e.g.
            ``page_size``, ``extensions``, ``updated_after`` (open311-adapter).
        random_ids: ids as 8 random ``[a-z0-9]`` characters (issue-reporting).
        no_definitions: ``services/{code}`` and ``tokens/{t}`` are not implemented: 404 HTML
            pages (issue-reporting).
        require_description: POST without ``description`` is refused (issue-reporting).
        require_email: POST without ``email`` is refused (Bristol's FixMyStreet).
        no_fractional_dates: date filters with fractional seconds are refused (Toronto).
        max_results: the most requests one GET requests answers (the spec's 1000; Chicago's
            default page is 50): the newest are kept, the rest silently cut.
        page_size: when > 0, GET requests answers pages of this many (issue-reporting: 100),
            ``page_size`` up to ``max_results`` honoured; 0 is the spec (no paging).
        page_links: how the next page is named: ``"x_next"`` (``X-Next-Page-URL`` and the other
            ``X-Page-*`` headers, issue-reporting), ``"link"`` (``Link: <…>; rel="next"``) or
            ``"none"`` (page numbers only, Chicago).
        page_base: the number of the first page: 1 (Chicago, issue-reporting) or 0 (Connected Bits).
        address_only_500: a POST without ``lat``/``long`` is an HTML 500 (issue-reporting reads
            ``address``, not ``address_string``, and its model validation fails uncaught).
        unknown_id_500: ``requests/{id}`` of an unknown id is a 500 (open311-adapter).
        jurisdiction_empty: an unknown ``jurisdiction_id`` gets an empty list on GET services and
            GET requests instead of a 404 (issue-reporting).
        ignore_dates: GET requests applies neither the date nor the status filters
            (open311-adapter's Endpoint1).
    """

    string_booleans: bool = False
    requests_root: bool = False
    no_charset: bool = False
    local_offsets: bool = False
    pagination: bool = True
    token_polls: int = 1
    application_xml: bool = False
    empty_strings: bool = False
    unknown_latlong: str = "null"
    lenient_status: bool = False
    dict_errors: bool = False
    pretty_json: bool = False
    post_200: bool = False
    strict_params: bool = False
    random_ids: bool = False
    no_definitions: bool = False
    require_description: bool = False
    require_email: bool = False
    no_fractional_dates: bool = False
    max_results: int = 1000
    page_size: int = 0
    page_links: str = "none"
    page_base: int = 1
    address_only_500: bool = False
    unknown_id_500: bool = False
    jurisdiction_empty: bool = False
    ignore_dates: bool = False


#: One switch per recorded deviation, for tests that run a suite in every quirk mode.
QUIRK_MODES: dict[str, dict[str, object]] = {
    "string_booleans": {"string_booleans": True},
    "requests_root": {"requests_root": True},
    "no_charset": {"no_charset": True},
    "local_offsets": {"local_offsets": True},
    "no_pagination": {"pagination": False},
    "slow_tokens": {"token_polls": 3},
    "application_xml": {"application_xml": True},
    "empty_strings": {"empty_strings": True},
    "omit_latlong": {"unknown_latlong": "omit"},
    "zero_latlong": {"unknown_latlong": "zero"},
    "lenient_status": {"lenient_status": True},
    "dict_errors": {"dict_errors": True},
    "pretty_json": {"pretty_json": True},
    "post_200": {"post_200": True},
    "strict_params": {"strict_params": True},
    "random_ids": {"random_ids": True},
    "no_definitions": {"no_definitions": True},
    "require_description": {"require_description": True},
    "require_email": {"require_email": True},
    "no_fractional_dates": {"no_fractional_dates": True},
    "pages_x_next": {"page_size": 100, "page_links": "x_next"},
    "pages_link_header": {"page_size": 100, "page_links": "link"},
    "pages_numbered_from_1": {"page_size": 50, "page_links": "none", "page_base": 1},
    "pages_numbered_from_0": {"page_size": 50, "page_links": "none", "page_base": 0},
    "address_only_500": {"address_only_500": True},
    "unknown_id_500": {"unknown_id_500": True},
    "jurisdiction_empty": {"jurisdiction_empty": True},
    "ignore_dates": {"ignore_dates": True},
    # issue-reporting (6aika) and open311-adapter (mySociety) as recorded, all at once
    "issue_reporting": {"requests_root": True, "no_charset": True, "local_offsets": True, "application_xml": True,
                        "empty_strings": True, "unknown_latlong": "omit", "lenient_status": True, "dict_errors": True,
                        "random_ids": True, "no_definitions": True, "require_description": True,
                        "page_size": 100, "page_links": "x_next", "address_only_500": True,
                        "jurisdiction_empty": True},
    "open311_adapter": {"string_booleans": True, "no_charset": True, "pretty_json": True, "post_200": True,
                        "strict_params": True, "lenient_status": True, "unknown_latlong": "zero",
                       "unknown_id_500": True, "ignore_dates": True},
}
