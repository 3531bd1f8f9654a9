"""Fault injection and real-world quirks of the sandbox, switchable while it runs.

Rates are probabilities per request (from a seeded generator, so a run can be replayed);
``next_*`` counters fire on exactly the next N matching requests, which is what tests want.
"""

from __future__ import annotations

import random
import threading
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
        slow_s: seconds to wait after the work is done, before replying.
        html_errors: answer errors with an HTML page instead of the spec's ``errors`` list.
        seed: seed of the random generator behind the rates.
    """

    fail_rate_5xx: float = 0.0
    fail_next_5xx: int = 0
    rate_429: float = 0.0
    next_429: int = 0
    retry_after_s: int = 1
    lose_reply_after_commit: float = 0.0
    lose_next_post_replies: int = 0
    slow_s: float = 0.0
    html_errors: bool = False
    seed: int = 311
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)
    _rng: random.Random | None = field(default=None, repr=False, compare=False)

    def fire(self, counter: str, rate: str) -> bool:
        """Whether the fault named by ``counter``/``rate`` hits this request (thread-safe)."""
        with self._lock:
            if getattr(self, counter) > 0:
                setattr(self, counter, getattr(self, counter) - 1)
                return True
            probability = getattr(self, rate)
            if probability <= 0:
                return False
            if self._rng is None:
                self._rng = random.Random(self.seed)
            return self._rng.random() < probability


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
    """

    string_booleans: bool = False
    requests_root: bool = False
    no_charset: bool = False
    local_offsets: bool = False
    pagination: bool = True
    token_polls: int = 1
