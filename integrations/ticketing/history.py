"""A city's past service requests, read through any ticketing plugin's ``find`` (GET requests).

Servers cap one GET requests answer and drop the rest without saying so (the spec: 90 days or
1000 requests, whichever is smaller; issue-reporting pages by 100, Chicago by 50), and paging
extensions differ from server to server or are refused outright (OPEN311.md). The client follows
whatever pages the server offers; the history is then read window by window, newest first, and a
window that still comes back full is split in two and asked again (:mod:`.search`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from social311.integrations.ticketing.base import TicketingPlugin
from social311.integrations.ticketing.ledger import MARKER_PREFIX
from social311.integrations.ticketing.search import MIN_SPAN, walk
from social311.privacy import mask_personal_data
from social311.records import ServiceRequest

__all__ = ["MIN_SPAN", "Harvest", "HistoryRow", "harvest", "history_rows"]


@dataclass
class Harvest:
    """What one harvest read.

    Attributes:
        requests: each id once, newest first.
        calls: GET requests calls made (windows; the client's extra pages are not counted).
        splits: windows that came back full and were asked again in halves.
        truncated: windows still full at ``MIN_SPAN`` or cut by paging (some of their requests
            were not seen).
    """

    requests: list[ServiceRequest] = field(default_factory=list)
    calls: int = 0
    splits: int = 0
    truncated: int = 0


def harvest(plugin: TicketingPlugin, *, start: datetime, end: datetime, server_limit: int = 1000,
            max_requests: int | None = None, statuses: list[str] | None = None) -> Harvest:
    """Every request with ``requested_datetime`` in ``[start, end]``, newest first.

    Args:
        plugin: any ticketing plugin; only ``find`` is used.
        start: earliest request time (aware).
        end: latest request time (aware).
        server_limit: the most requests the server answers per call; a window returning this
            many is split, since the cap hid the rest of it.
        max_requests: stop once this many distinct requests were read (the newest ones).
        statuses: only these statuses (``open``/``closed``); all when None.

    Returns:
        The :class:`Harvest`.

    Raises:
        TicketingError: when a call fails (after the plugin's own retries); the caller keeps
            what it stored before, and the next harvest asks for the same windows again.
    """
    done = walk(plugin, start=start, end=end, server_limit=server_limit, statuses=statuses, newest_first=True,
                max_requests=max_requests)
    newest_first = sorted(done.requests, key=lambda r: (r.requested_datetime is not None, r.requested_datetime),
                          reverse=True)
    return Harvest(requests=newest_first[:max_requests] if max_requests is not None else newest_first,
                   calls=done.calls, splits=done.splits, truncated=done.truncated)


@dataclass(frozen=True)
class HistoryRow:
    """One past request as training data: its service and its resident's words, masked."""

    service_request_id: str
    service_code: str
    description: str
    requested_datetime: datetime | None


def history_rows(requests: list[ServiceRequest], *, own_ids: set[str] = frozenset()) -> tuple[list[HistoryRow], dict[str, int]]:
    """The requests a model may learn from, masked, and how many were left out and why.

    Left out: social311's own tickets (their text carries the ledger's marker, or their id is
    in the ledger: a model must not learn from its own output), and requests without a
    service code or a description (nothing to learn from).

    Returns:
        ``(rows, {"own": n, "no_text": n, "no_code": n})``.
    """
    rows: list[HistoryRow] = []
    skipped = {"own": 0, "no_text": 0, "no_code": 0}
    for r in requests:
        text = (r.description or "").strip()
        if MARKER_PREFIX in text or r.service_request_id in own_ids:
            skipped["own"] += 1
        elif not r.service_code:
            skipped["no_code"] += 1
        elif not text:
            skipped["no_text"] += 1
        else:
            rows.append(HistoryRow(r.service_request_id, r.service_code, mask_personal_data(text),
                                   r.requested_datetime))
    return rows, skipped
