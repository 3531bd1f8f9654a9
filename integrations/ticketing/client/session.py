"""The client's HTTP session: pooled connections, and retries for GET only.

stripe-python retries POSTs because each carries an idempotency key; Open311 has none, so a
retried POST can file a second ticket. Reads are retried on 429/5xx and connection failures
with jittered exponential backoff, honouring ``Retry-After``.
"""

from __future__ import annotations

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

RETRY_STATUSES = (429, 500, 502, 503, 504)


class _GetOnlyRetry(Retry):
    """urllib3 retries a failed *connect* for any method; this refuses every POST retry."""

    def increment(self, method=None, url=None, *args, **kwargs):  # noqa: ANN001 - urllib3's signature
        if method and method.upper() not in (self.allowed_methods or ()):
            # total=0 makes the base class give up with this error instead of retrying.
            return Retry.increment(self.new(total=0), method, url, *args, **kwargs)
        return super().increment(method, url, *args, **kwargs)


def build_session(retries: int = 3, backoff_factor: float = 0.5) -> requests.Session:
    """A session whose adapters retry GETs only.

    Args:
        retries: how many times one GET may be retried in all.
        backoff_factor: base of the exponential backoff between retries, in seconds.
    """
    retry = _GetOnlyRetry(
        total=retries,
        allowed_methods=("GET",),
        status_forcelist=RETRY_STATUSES,
        backoff_factor=backoff_factor,
        backoff_jitter=backoff_factor,
        backoff_max=30,
        respect_retry_after_header=True,
        raise_on_status=False,  # the last answer comes back and becomes a typed error here
    )
    session = requests.Session()
    adapter = HTTPAdapter(max_retries=retry, pool_maxsize=8)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session
