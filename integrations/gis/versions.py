"""Boundary versions: which set of wards is in force on a date, and which configurations clash.

The rule, the same in the dbt ward join: a boundary set is in force from ``valid_from``
(inclusive; none = since always) until ``valid_to`` (exclusive; none = still in force). A post
joins the set in force on its date, so its ward is the one of its day, not today's. Two sets
in force on one day would make a post's ward ambiguous: that is a configuration error.
"""

from __future__ import annotations

from datetime import date

from social311.records import WardSet


def in_force(ward_sets: list[WardSet], day: date) -> WardSet | None:
    """The boundary set in force on ``day``, or None when none is."""
    for ws in ward_sets:
        if (ws.valid_from is None or day >= ws.valid_from) and (ws.valid_to is None or day < ws.valid_to):
            return ws
    return None


def version_problems(periods: list[tuple[str, date | None, date | None]]) -> list[str]:
    """Why a list of ``(version, valid_from, valid_to)`` cannot all be loaded; empty when fine."""
    problems = []
    seen: set[str] = set()
    for version, start, end in periods:
        if version in seen:
            problems.append(f"boundary version {version!r} is configured twice")
        seen.add(version)
        if start and end and end <= start:
            problems.append(f"boundary version {version!r} ends ({end}) before it starts ({start})")
    for i, (v1, s1, e1) in enumerate(periods):
        for v2, s2, e2 in periods[i + 1 :]:
            if v1 != v2 and (e2 is None or s1 is None or s1 < e2) and (e1 is None or s2 is None or s2 < e1):
                problems.append(f"boundary versions {v1!r} and {v2!r} are both in force on some dates "
                                f"({s1 or '-inf'}..{e1 or 'now'} and {s2 or '-inf'}..{e2 or 'now'})")
    return problems
