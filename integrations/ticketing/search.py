"""A walk over GET requests, window by window, that sees every request of a time span.

Servers cap one answer and drop the rest without saying so: the spec's newest 1000, Chicago's
50 a page, issue-reporting's 100 a page (followed by the client's paging, ``client/paging.py``),
and strict servers refuse every paging parameter. A ``start_date``/``end_date`` window is the one
filter every server honours, so a window whose answer is still full (``server_limit`` requests,
or paging stopped at its cap) is split in two and asked again, until every window comes back
whole. A server that ignores date filters (open311-adapter's Endpoint1) cannot be narrowed that
way: its full answers count as truncated.

Used by the 311 history harvest (newest first, up to a number of requests) and by the ledger's
marker search (oldest first from the intent, stopping at the marker), which may only say "not
filed" when the walk saw the whole span.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from social311.integrations.ticketing.base import TicketingPlugin
from social311.integrations.ticketing.client.encode import MAX_WINDOW, windows
from social311.records import ServiceRequest

log = logging.getLogger(__name__)

#: A window this short that still comes back full is taken as it is (a burst the cap hides).
MIN_SPAN = timedelta(minutes=1)


@dataclass
class Walk:
    """What one walk read.

    Attributes:
        requests: each id once, in the order read.
        match: the first request the ``stop`` test accepted, if any.
        calls: ``find`` calls made.
        splits: windows that came back full and were asked again in halves.
        truncated: windows still full at ``MIN_SPAN``, cut by paging, or full from a server that
            ignores dates: some of their requests were not seen.
    """

    requests: list[ServiceRequest] = field(default_factory=list)
    match: ServiceRequest | None = None
    calls: int = 0
    splits: int = 0
    truncated: int = 0

    @property
    def complete(self) -> bool:
        """Every request of the span was seen (or the one looked for was found)."""
        return self.match is not None or self.truncated == 0


def walk(plugin: TicketingPlugin, *, start: datetime, end: datetime, server_limit: int = 1000,
         service_codes: list[str] | None = None, statuses: list[str] | None = None, newest_first: bool = True,
         max_requests: int | None = None, stop: Callable[[ServiceRequest], bool] | None = None) -> Walk:
    """Read every request with ``requested_datetime`` in ``[start, end]``, window by window.

    Args:
        plugin: any ticketing plugin; only ``find`` is used.
        start: earliest request time (aware).
        end: latest request time (aware).
        server_limit: the most requests the server answers for one call without paging; an
            answer this long is taken as cut.
        service_codes: only these services (narrows every call; the marker search's own).
        statuses: only these statuses; all when None.
        newest_first: read the newest window first (history), else the oldest (marker search).
        max_requests: stop once this many distinct requests were read.
        stop: stop at the first request this accepts (recorded as ``match``).

    Raises:
        TicketingError: a call failed (after the plugin's own retries).
    """
    out = Walk()
    seen: dict[str, ServiceRequest] = {}
    spans = list(windows(start, end, MAX_WINDOW)) if end > start else [(start, end)]
    # A stack whose top is the window to read next.
    stack = spans if newest_first else spans[::-1]
    while stack and (max_requests is None or len(seen) < max_requests):
        lo, hi = stack.pop()
        found = plugin.find(service_codes=service_codes, start=lo, end=hi, status=statuses)
        out.calls += 1
        for item in found:  # windows share their boundary instant: a request on it comes twice
            if item.service_request_id not in seen:
                seen[item.service_request_id] = item
                if stop is not None and stop(item):
                    out.match = item
                    out.requests = list(seen.values())
                    return out
        largest = max(getattr(found, "largest_answer", 0), len(found))
        cut = getattr(found, "truncated", False) or largest >= server_limit
        if not cut:
            continue
        if getattr(found, "dates_ignored", False):
            out.truncated += 1
            log.warning("GET requests ignores date filters and answered %d requests for %s..%s: older ones "
                        "are not seen", largest, lo, hi)
        elif hi - lo > MIN_SPAN:
            mid = lo + (hi - lo) / 2
            stack += [(lo, mid), (mid, hi)] if newest_first else [(mid, hi), (lo, mid)]
            out.splits += 1
        else:
            out.truncated += 1
            log.warning("GET requests %s..%s still returns the server's limit (%d); some requests are not seen",
                        lo, hi, server_limit)
    out.requests = list(seen.values())
    return out
