"""Bench: text geocoding on New York's PublicStuff reports, against their given coordinates.

Run: ``.venv/bin/python bench/geocode_nyc.py`` (needs ../shared/data or SOCIAL311_SHARED_DATA).
Prints figures only (share placed, median and 90th-percentile error in metres, share placed in
the wrong council district); never a report's text.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from social311.models.geocode_eval import evaluate


def main() -> None:
    shared = Path(os.environ.get("SOCIAL311_SHARED_DATA") or Path(__file__).resolve().parents[2] / "shared" / "data")
    started = time.perf_counter()
    figures = evaluate(shared)
    figures["seconds"] = round(time.perf_counter() - started, 1)
    print(json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in figures.items()}, indent=2))


if __name__ == "__main__":
    main()
