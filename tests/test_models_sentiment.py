"""VADER sentiment of posts."""

from __future__ import annotations

import pytest

from social311.models.sentiment import sentiment


@pytest.mark.parametrize(
    "text, sign",
    [
        ("Thank you so much, the crew fixed it fast, great job!", 1),
        ("This is DISGUSTING, the trash has been rotting for weeks!!! Worst service ever", -1),
        ("The bin is on the corner of Oak St.", 0),
        ("", 0),
    ],
)
def test_sign(text, sign):
    (score,) = sentiment([text])
    assert -1 <= score <= 1
    assert (score > 0.3) if sign > 0 else (score < -0.3) if sign < 0 else abs(score) < 0.3


def test_emphasis_makes_it_stronger_and_order_is_kept():
    mild, loud = sentiment(["the streetlight is broken", "the streetlight is BROKEN AGAIN!!!"])
    assert loud < mild < 0
    assert sentiment([]) == []
