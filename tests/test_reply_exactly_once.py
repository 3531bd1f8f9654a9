"""Replies through the real Mastodon client to its loopback fake: 200 replies, 20% faults (5xx,
dropped requests, answers lost after the server acted) and a SIGKILL mid-way -> each posted once.
And on a platform without an idempotency key (X): a reply whose outcome is unknown is never resent."""

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
from social311.integrations.sources.listening import ListeningPlan
db, plugin, url = sys.argv[1], sys.argv[2], sys.argv[3]
if plugin == "mastodon":
    from social311.integrations.sources.mastodon import MastodonConfig, MastodonSource
    src = MastodonSource(MastodonConfig(base_url=url, timeout_s=5), instance_name="src", credentials={"access_token": "t"})
else:
    from social311.integrations.sources.x import XConfig, XSource
    src = XSource(XConfig(base_url=url, timeout_s=5), instance_name="src",
                  credentials={"consumer_key": "a", "consumer_secret": "b", "access_token": "c", "access_token_secret": "d"})
with connect(db) as con:
    print(send_replies(con, {"src": src}), flush=True)
"""


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


def _run(db, plugin: str, url: str, *, kill_after_replies: int | None = None, fake=None) -> None:
    proc = subprocess.Popen([sys.executable, "-c", SENDER, str(db), plugin, url],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if kill_after_replies is not None:
        deadline = time.monotonic() + 300
        while fake.reply_count() < kill_after_replies and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert proc.poll() is None, f"the sender ended before the kill: {proc.communicate()[1][-2000:]}"
        os.kill(proc.pid, signal.SIGKILL)  # mid-way, wherever it is
        proc.wait()
        return
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err[-2000:]


def test_200_mastodon_replies_with_faults_and_sigkill_each_once(tmp_path, social):
    from social311.integrations.testing.social_fakes import MastodonFake

    db = tmp_path / "w.duckdb"
    with MastodonFake(social) as fake:
        ids = fake.add_posts([f"pothole {i}" for i in range(200)])
        _owed(db, ids)
        fake.fault_rate(0.2, ("503", "drop", "lost"), seed=12)
        _run(db, "mastodon", fake.url, kill_after_replies=70, fake=fake)
        for _ in range(12):  # later runs retry what failed or was in flight
            with connect(db) as con:
                left = con.execute("select count(*) from ops.resident_replies where state <> 'sent'").fetchone()[0]
                total = con.execute("select count(*) from ops.resident_replies").fetchone()[0]
            if total == 200 and left == 0:
                break
            _run(db, "mastodon", fake.url)
        per_post = Counter(r["in_reply_to_id"] for r in fake.replies.values())
        assert fake.reply_posts == 200, "a reply was created twice or never"
        assert sorted(per_post) == sorted(ids) and set(per_post.values()) == {1}
        with connect(db) as con:
            states = dict(con.execute("select state, count(*) from ops.resident_replies group by 1").fetchall())
        assert states == {"sent": 200}


def test_x_reply_with_unknown_outcome_is_never_resent(tmp_path, social):
    from social311.integrations.testing.social_fakes import XFake

    db = tmp_path / "w.duckdb"
    with XFake(social) as fake:
        ids = fake.add_posts([f"pothole {i}" for i in range(40)])
        _owed(db, ids)
        fake.fault_rate(0.3, ("lost",), seed=3)  # the Tweet is created, the answer never arrives
        _run(db, "x", fake.url)
        fake.fault_rate(0)
        _run(db, "x", fake.url)
        per_post = Counter(r["reply"]["in_reply_to_tweet_id"] for r in fake.created)
        assert set(per_post.values()) == {1}, "a reply was posted twice"
        with connect(db) as con:
            states = dict(con.execute("select state, count(*) from ops.resident_replies group by 1").fetchall())
        assert states.get("in_doubt", 0) >= 1 and states.get("sent", 0) + states["in_doubt"] == 40
        assert len(fake.created) == 40  # the in-doubt ones were in fact delivered once
