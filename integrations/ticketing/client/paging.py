"""Paging of list answers (GET requests): next-page links, or page numbers detected once per server.

GeoReport v2 has no paging; servers added their own (OPEN311.md §1.6). issue-reporting answers
100 requests a page and names the next one in ``X-Next-Page-URL``; others send ``Link:
<…>; rel="next"``; Chicago, Boston and Toronto take ``page``/``page_size``, counted from 1, while
Connected Bits counts from 0; strict servers (open311-adapter) refuse both parameters with 400.
A client that reads only the first page misses requests silently: the ledger's marker search then
files a ticket again, and the 311 history stops at 100.

The rules, in order:

1. a next-page link in the answer is followed (same origin only);
2. otherwise a first page of at least ``probe_min`` items may have more: ``page=1`` is asked with
   the first page's size. The same items back means pages count from 1; other items, from 0; a
   400 means the server has no paging. The answer is remembered for the client's life;
3. pages are asked until one comes back short or empty, or holds only items already seen (a server
   that ignores ``page``, or answers the last page again for any page past the end, uReport #31);
4. at most ``max_pages`` pages: a listing cut there is flagged ``truncated`` and logged, so the
   marker search knows it has not seen everything.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

import requests


@dataclass
class PagingState:
    """What the client learnt about one server's page numbers (``None``: not asked yet).

    Attributes:
        base: 0 or 1 once detected.
        unsupported: the server refused ``page``/``page_size`` or ignores them.
        page_size: the server's own page size, once a full page was followed by another.
    """

    base: int | None = None
    unsupported: bool = False
    page_size: int | None = None


def next_link(response: requests.Response, endpoint: str) -> str | None:
    """The next page named by the answer (``X-Next-Page-URL`` or ``Link: rel=next``), if any.

    A relative link is resolved against the answer's URL. A link to another origin than the
    endpoint is not followed (it would send the query, and with it the city's filters, elsewhere).
    """
    raw = response.headers.get("X-Next-Page-URL") or (response.links.get("next") or {}).get("url")
    if not raw or not raw.strip():
        return None
    url = urljoin(response.url, raw.strip())
    want, got = urlsplit(endpoint), urlsplit(url)
    if (want.scheme, want.hostname, want.port) != (got.scheme, got.hostname, got.port):
        return None
    return url


def page_ids(items: list, key: str = "service_request_id") -> list[str]:
    """The ids of decoded items, to compare pages (items without one count by their text)."""
    return [str(i.get(key)) if isinstance(i, dict) and i.get(key) is not None else repr(i) for i in items]


def detect_base(first: list[str], probe: list[str]) -> int:
    """0 or 1: the base of page numbers, from the first page and the answer to ``page=1``.

    A 1-based server answers the first page again, give or take requests filed in between (they
    shift a newest-first list by a few); a 0-based one answers the next page.
    """
    if not probe:
        return 0
    overlap = len(set(first) & set(probe))
    return 1 if overlap * 2 > len(probe) else 0
