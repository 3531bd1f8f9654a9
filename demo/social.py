"""The demo city's posts served through a social platform's fake: ``social311 demo --source mastodon``.

The generated demo posts are published as statuses of a loopback Mastodon (the fake built from
the recorded real exchanges of ``../shared/data/social``), and the demo city's source becomes
the real ``mastodon`` plugin (Mastodon.py) reading the ``#demo311`` hashtag timeline, so a
newcomer sees a platform plugin work end to end offline. Times keep their spacing but end now
(the plugin backfills a window); Mastodon carries no coordinates, so the demo's geotags are not
there and places come from the text.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

import yaml

TAG = "demo311"


def social_data_dir() -> Path:
    """``SOCIAL311_SHARED_DATA``/social, or ``../shared/data/social`` beside the repository."""
    base = os.environ.get("SOCIAL311_SHARED_DATA")
    if base:
        return Path(base) / "social"
    return Path(__file__).resolve().parents[1].parent / "shared" / "data" / "social"


@contextlib.contextmanager
def serve_on_mastodon(config_path: Path, *, seed: int = 0) -> Iterator[Path]:
    """Run a Mastodon fake holding the demo posts; rewrite the demo YAML to read it; yield its path."""
    from social311.demo.generate import generate_demo
    from social311.integrations.testing.social_fakes import MastodonFake

    data_dir = social_data_dir()
    if not data_dir.is_dir():
        raise FileNotFoundError(f"the Mastodon fake needs the recorded exchanges at {data_dir} "
                                "(set SOCIAL311_SHARED_DATA)")
    records, _truth = generate_demo(seed=seed)
    times = [datetime.fromisoformat(str(r["created_at"]).replace("Z", "+00:00")) for r in records]
    shift = datetime.now(timezone.utc) - max(times)
    order = sorted(range(len(records)), key=lambda i: times[i])
    with MastodonFake(data_dir, tag=TAG) as fake:
        fake.add_posts([records[i]["text"] for i in order], times=[times[i] + shift for i in order],
                       langs=[records[i].get("lang") for i in order])
        data = yaml.safe_load(config_path.read_text(encoding="utf-8"))
        span_h = (max(times) - min(times)).total_seconds() / 3600 + 1
        data["sources"] = [{"plugin": "mastodon", "name": "demo_mastodon",
                            "config": {"base_url": fake.url, "max_pages": 1000, "city_handles": ["DemoCity311"]}}]
        data["listening"] = {"hashtags": [TAG], "backfill_hours": min(24 * 30, span_h)}
        path = config_path.with_name("city-mastodon.yaml")
        path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
        yield path
