"""Post sentiment with VADER, a lexicon and rule set built for social-media text.

VADER (Hutto & Gilbert, ICWSM 2014) reads the signals residents actually use online: capitals
("BROKEN AGAIN"), repeated punctuation, emoticons, slang and negation. Its compound score runs
from -1 (most negative) to +1 (most positive). Council staff read it as a ward-level trend, so
a transparent lexicon is preferred over a model whose scores cannot be explained.
"""

from __future__ import annotations

import functools
from typing import Any


@functools.lru_cache(maxsize=1)
def _analyzer() -> Any:
    # Loading the lexicon reads a file; do it once per process.
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    return SentimentIntensityAnalyzer()


def sentiment(texts: list[str]) -> list[float]:
    """VADER compound sentiment of each text.

    Args:
        texts: the post texts.

    Returns:
        One score in [-1, 1] per text, in order; 0.0 for empty text.
    """
    analyzer = _analyzer()
    return [float(analyzer.polarity_scores(text)["compound"]) if text else 0.0 for text in texts]
