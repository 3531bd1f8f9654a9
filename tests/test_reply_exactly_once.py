"""Replies through each platform's real client library to its loopback fake: 200 replies, 20%
faults (5xx, dropped requests, answers lost after the platform acted) and a SIGKILL mid-way ->
every reply posted exactly once, on all five platforms. Mastodon repeats its Idempotency-Key;
Bluesky, Reddit, X and Facebook read back what the city's account already posted. And when the
read-back itself cannot see, a reply in doubt stays in doubt: it is never posted blind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from datetime import datetime, timezone

import pytest

from social311.warehouse import connect

SENDER = r"""
import sys
from social311.warehouse import connect
from social311.orchestration.replies import send_replies
db, plugin, url, secret, rounds = sys.argv[1:6]
if plugin == "mastodon":
    from social311.integrations.sources.mastodon import MastodonConfig as C, MastodonSource as S
    config, creds = C(base_url=url, timeout_s=5), {"access_token": "t"}
elif plugin == "bluesky":
    from social311.integrations.sources.bluesky import BlueskyConfig as C, BlueskySource as S
    config, creds = C(base_url=url, timeout_s=5), {"handle": "city311.bsky.social", "app_password": secret}
elif plugin == "reddit":
    from social311.integrations.sources.reddit import RedditConfig as C, RedditSource as S
    config = C(base_url=url, auth_url=url, timeout_s=5)
    creds = {"client_id": "id", "client_secret": "s", "user_agent": "social311 tests", "refresh_token": "r"}
elif plugin == "x":
    from social311.integrations.sources.x import XConfig as C, XSource as S
    config = C(base_url=url, timeout_s=5)
    creds = {"consumer_key": "a", "consumer_secret": "b", "access_token": "c", "access_token_secret": "d"}
else:
    from social311.integrations.sources.facebook import FacebookConfig as C, FacebookSource as S
    config, creds = C(base_url=url, page_id=secret, timeout_s=5), {"page_access_token": "p"}
src = S(config, instance_name="src", credentials=creds)
for _ in range(int(rounds)):  # successive runs in one process (a restart is the SIGKILL's part)
    with connect(db) as con:
        counts = send_replies(con, {"src": src})
        print(counts, flush=True)
        if not con.execute("select count(*) from ops.resident_replies where state <> 'sent'").fetchone()[0]:
            break
"""

PLATFORMS = ["mastodon", "bluesky", "reddit", "x", "facebook"]


def _fake(platform: str, social):
    from social311.integrations.testing import social_fakes as f

    return {"mastodon": lambda: f.MastodonFake(social), "bluesky": lambda: f.BlueskyFake(social),
            "reddit": lambda: f.RedditFake(social), "x": lambda: f.XFake(social),
            "facebook": lambda: f.FacebookFake(social, page_id="19292868552")}[platform]()


def _secret(platform: str, fake) -> str:
    return {"bluesky": getattr(fake, "password", ""), "facebook": getattr(fake, "page_id", "")}.get(platform, "-")


def _owed(db, native_ids: list[str]) -> None:
    now = datetime.now(timezone.utc)
    with connect(db) as con:
        for i, native in enumerate(native_ids):
            con.execute("insert into raw.posts (post_id, source, native_id, text, created_at, ingested_at) "
                        "values (?, 'src', ?, 'pothole', ?, ?)", [f"src:{native}", native, now, now])
            con.execute("insert into ops.incident_posts values (?, ?, 'anchor')", [f"inc-{i}", f"src:{native}"])
            con.execute("insert into ops.ticket_ledger (incident_id, marker, state, service_code, service_request_id, "
                        "created_at, updated_at) values (?, ?, 'submitted', 'POTHOLE', ?, ?, ?)",
                        [f"inc-{i}", f"m-{i}", str(72000 + i), now, now])


def _run(db, platform: str, fake, *, kill_after_replies: int | None = None, rounds: int = 1) -> None:
    proc = subprocess.Popen([sys.executable, "-c", SENDER, str(db), platform, fake.url, _secret(platform, fake), str(rounds)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if kill_after_replies is not None:
        deadline = time.monotonic() + 120
        while fake.reply_count() < kill_after_replies and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        assert proc.poll() is None, f"the sender ended before the kill: {proc.communicate()[1][-2000:]}"
        os.kill(proc.pid, signal.SIGKILL)  # mid-way, wherever it is
        proc.wait()
        return
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err[-2000:]


def _states(db) -> dict[str, int]:
    with connect(db) as con:
        return dict(con.execute("select state, count(*) from ops.resident_replies group by 1").fetchall())


@pytest.mark.parametrize("platform", PLATFORMS)
def test_200_replies_with_faults_and_sigkill_each_once(tmp_path, social, platform):
    db = tmp_path / "w.duckdb"
    with _fake(platform, social) as fake:
        ids = fake.add_posts([f"pothole {i}" for i in range(200)])
        _owed(db, ids)
        fake.fault_rate(0.2, ("503", "drop", "lost"), seed=12)
        _run(db, platform, fake, kill_after_replies=70)
        # A restarted process; its runs retry what failed, was in flight or is in doubt.
        _run(db, platform, fake, rounds=12)
        per_post = Counter(fake.reply_parents())
        assert fake.reply_count() == 200, f"{fake.reply_count()} replies created for 200 posts"
        assert sorted(per_post) == sorted(ids) and set(per_post.values()) == {1}, "a reply was created twice or never"
        assert _states(db) == {"sent": 200}
        with connect(db) as con:
            recorded = {r[0] for r in con.execute("select reply_id from ops.resident_replies").fetchall()}
        assert len(recorded) == 200 and None not in recorded  # every row knows its reply, read back or not


def test_a_reply_in_doubt_stays_in_doubt_while_the_read_back_cannot_see(tmp_path, social):
    from social311.integrations.testing.social_fakes import XFake

    db = tmp_path / "w.duckdb"
    with XFake(social) as fake:
        ids = fake.add_posts([f"pothole {i}" for i in range(40)])
        _owed(db, ids)
        fake.fault_rate(0.3, ("lost",), seed=3)  # the Tweet is created, the answer never arrives
        _run(db, "x", fake)
        doubtful = _states(db).get("in_doubt", 0)
        assert doubtful >= 5 and fake.reply_count() == 40
        fake.fault_rate(0)
        fake.break_path("/2/users/")  # the account's timeline cannot be read
        _run(db, "x", fake)
        assert _states(db).get("in_doubt", 0) == doubtful and fake.reply_count() == 40  # nothing resent blind
        fake.break_path(None)
        _run(db, "x", fake)
        assert _states(db) == {"sent": 40} and fake.reply_count() == 40
        assert set(Counter(fake.reply_parents()).values()) == {1}
