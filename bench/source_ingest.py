"""Bench: posts/s each social-platform plugin ingests from its loopback fake, vs the embedding rate.

Run: ``.venv/bin/python bench/source_ingest.py [--posts 2000] [--backend onnx-int8] [--no-embed]``.

Each plugin (the real client library: Mastodon.py, atproto, PRAW, tweepy, requests) does a
first-run backfill of ``--posts`` posts from its fake over loopback HTTP, with the platform's
largest page size, timed from a fresh source object (client construction and login
included). Each fake runs in a child process of its own, as the platform would be another
machine: serving the recorded JSON is the platform's cost, not ingest's, and in this process
it would compete with the plugin for the GIL. The texts are the demo generator's (seeded). The embedding rate is the model's
``encode`` on the same texts (load and warm-up not counted). Target: every plugin >= 10x the
embedding rate, so ingest is never the bottleneck. Needs ``../shared/data/social``.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
REPO = Path(__file__).resolve().parents[1]


def _serve(make_fake, tagged, start, step, conn) -> None:
    """Child process: run one fake with ``tagged`` posts until the parent says stop; send back its request count."""
    fake = make_fake()
    with fake:
        fake.add_posts(tagged, start=start, step=step)
        conn.send({"url": fake.url, "password": getattr(fake, "password", None)})
        conn.recv()
        conn.send(len(fake.requests))


class _RemoteFake:
    """What a plugin needs of a fake that runs in another process: its URL (and Bluesky's password)."""

    def __init__(self, url: str, password: str | None) -> None:
        self.url = url
        self.password = password


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--posts", type=int, default=2000)
    parser.add_argument("--backend", default="onnx-int8")
    parser.add_argument("--no-embed", action="store_true")
    args = parser.parse_args()

    from social311.demo.generate import DEFAULT_START, generate_posts
    from social311.integrations.sources.bluesky import BlueskyConfig, BlueskySource
    from social311.integrations.sources.facebook import FacebookConfig, FacebookSource
    from social311.integrations.sources.listening import ListeningPlan
    from social311.integrations.sources.mastodon import MastodonConfig, MastodonSource
    from social311.integrations.sources.reddit import RedditConfig, RedditSource
    from social311.integrations.sources.x import XConfig, XSource
    from social311.integrations.testing.social_fakes import (
        BlueskyFake, FacebookFake, MastodonFake, RedditFake, XFake, social_data_dir,
    )

    data = Path(os.environ.get("SOCIAL311_SHARED_DATA") or REPO.parent / "shared" / "data") / "social"
    if not data.is_dir():
        raise SystemExit(f"recorded exchanges not found at {data}")
    pool = [p["text"] for p in generate_posts(seed=7, n_incidents=max(40, args.posts // 4), start=DEFAULT_START)]
    texts = [pool[i % len(pool)] for i in range(args.posts)]
    # Every text must match the plan's search term on the search-based fakes.
    tagged = [f"pothole {t}" for t in texts]
    plan = ListeningPlan(keywords=["pothole"], hashtags=["pothole"], subreddits=["chicago"], backfill_hours=24 * 7)
    step = timedelta(seconds=30)
    start = datetime.now(timezone.utc) - step * (len(tagged) + 1)
    cases = {
        "mastodon": (lambda: MastodonFake(data), lambda f: MastodonSource(MastodonConfig(base_url=f.url, plan=plan, page_size=40, max_pages=10_000), instance_name="m")),
        "bluesky": (lambda: BlueskyFake(data), lambda f: BlueskySource(BlueskyConfig(base_url=f.url, plan=plan, page_size=100, max_pages=10_000), instance_name="b",
                                                               credentials={"handle": "h", "app_password": f.password})),
        "reddit": (lambda: RedditFake(data), lambda f: RedditSource(RedditConfig(base_url=f.url, auth_url=f.url, plan=plan, comments=False, max_pages=10_000), instance_name="r",
                                                            credentials={"client_id": "i", "client_secret": "s"})),
        "x": (lambda: XFake(data), lambda f: XSource(XConfig(base_url=f.url, plan=plan, page_size=100, max_pages=10_000), instance_name="x",
                                             credentials={"bearer_token": "b"})),
        "facebook": (lambda: FacebookFake(data, page_id="1"), lambda f: FacebookSource(FacebookConfig(base_url=f.url, page_id="1", plan=plan, max_pages=10_000), instance_name="f",
                                                                               credentials={"page_access_token": "t"})),
    }
    results: dict[str, dict] = {}
    forked = multiprocessing.get_context("fork")
    for name, (make_fake, make) in cases.items():
        parent, child = forked.Pipe()
        server = forked.Process(target=_serve, args=(make_fake, tagged, start, step, child), daemon=True)
        server.start()
        try:
            fake = _RemoteFake(**parent.recv())
            t0, c0 = time.perf_counter(), time.process_time()
            got = make(fake).fetch(None, pseudonym_key="bench")
            seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
            parent.send("stop")
            requests = parent.recv()
        finally:
            server.join(timeout=10)
            if server.is_alive():
                server.terminate()
        assert len(got.posts) == len(tagged), (name, len(got.posts), [r.reason for r in got.rejects[:3]])
        results[name] = {"posts": len(got.posts), "seconds": round(seconds, 2), "posts_per_s": round(len(got.posts) / seconds),
                         "cpu_seconds": round(cpu, 2), "posts_per_cpu_s": round(len(got.posts) / cpu), "requests": requests}
        print(f"{name:9s} {len(got.posts)} posts in {seconds:6.2f} s = {len(got.posts) / seconds:7.0f} posts/s wall, "
              f"{len(got.posts) / cpu:7.0f} posts per CPU-second ({requests} HTTP requests)", flush=True)
    if not args.no_embed:
        from social311.models.embeddings import get_embedder

        embedder = get_embedder(args.backend)
        embedder.encode(texts[:64])
        t0, c0 = time.perf_counter(), time.process_time()
        embedder.encode(texts)
        rate = len(texts) / (time.perf_counter() - t0)
        cpu_rate = len(texts) / (time.process_time() - c0)
        print(f"embedding ({args.backend}): {rate:.0f} posts/s wall, {cpu_rate:.0f} posts per CPU-second")
        # Two ratios. Wall: the fake's serving time (another process, standing in for the
        # platform's latency) is inside it. CPU: what ingest costs this machine per post, against
        # what embedding costs it; the one that says whether ingest can starve the model.
        for name, r in results.items():
            r["x_embedding"] = round(r["posts_per_s"] / rate, 1)
            r["x_embedding_cpu"] = round(r["posts_per_cpu_s"] / cpu_rate, 1)
            verdict = "OK" if r["x_embedding_cpu"] >= 10 else "BELOW 10x"
            print(f"{name:9s} {r['x_embedding']:5.1f}x the embedding rate (wall), {r['x_embedding_cpu']:5.1f}x per CPU-second {verdict}")
        results["embedding_posts_per_s"] = round(rate)
        results["embedding_posts_per_cpu_s"] = round(cpu_rate)
    print(json.dumps(results))


if __name__ == "__main__":
    main()
