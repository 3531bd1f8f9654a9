"""Log lines in words: mappings of counts or settings written the way an operator reads them.

``f"{counts}"`` printed Python dict reprs (``{'retry_wait': 1}``) into the console and the
Dagster event log; these helpers write ``1 retry_wait`` and ``prefilter=on, skipped=3``.
"""

from __future__ import annotations

from collections.abc import Mapping


def counts(mapping: Mapping[str, object], *, empty: str = "none") -> str:
    """``{"submitted": 3, "held": 1}`` -> ``"3 submitted, 1 held"`` (largest first)."""
    items = sorted(mapping.items(), key=lambda kv: (-kv[1] if isinstance(kv[1], (int, float)) else 0, str(kv[0])))
    return ", ".join(f"{value} {key}" for key, value in items) or empty


def pairs(mapping: Mapping[str, object], *, empty: str = "none") -> str:
    """``{"prefilter": "on", "skipped": 3}`` -> ``"prefilter=on, skipped=3"`` (in order)."""
    return ", ".join(f"{key}={value}" for key, value in mapping.items()) or empty
