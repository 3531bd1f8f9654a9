"""The reply to the resident: drafted for every post behind a ticket, sent only where enabled."""

import json
from datetime import datetime, timezone

import pytest

from social311.config import PluginRef
from social311.integrations.sources.file_drop import FileDropConfig, FileDropSource
from social311.orchestration.replies import reply_text, send_replies
from social311.warehouse import connect

T = datetime(2026, 5, 1, 12, tzinfo=timezone.utc)

# incident -> (ledger state, service_request_id, posts as (native_id, repost_of))
LEDGER = {
    "inc-a": ("submitted", "240001", [("1", None), ("2", None), ("3", "1")]),
    "inc-b": ("awaiting_token", None, [("4", None)]),
    "inc-c": ("linked", "72355", [("5", None)]),
    "inc-d": ("failed", None, [("6", None)]),
}


def seed(con, source="feed"):
    for incident_id, (state, request_id, posts) in LEDGER.items():
        con.execute("insert into ops.ticket_ledger (incident_id, marker, state, service_code, service_request_id, created_at, "
                    "updated_at) values (?, ?, ?, 'POTHOLE', ?, ?, ?)", [incident_id, f"[m {incident_id}]", state, request_id, T, T])
        for native_id, repost_of in posts:
            post_id = f"{source}:{native_id}"
            con.execute("insert into raw.posts (post_id, source, native_id, text, created_at, repost_of, ingested_at) "
                        "values (?, ?, ?, 'pothole here', ?, ?, ?)",
                        [post_id, source, native_id, T, f"{source}:{repost_of}" if repost_of else None, T])
            con.execute("insert into ops.incident_posts values (?, ?, 'test')", [incident_id, post_id])


def replies(con):
    return {r[0]: r[1:] for r in con.execute(
        "select post_id, state, reply_text, reply_id from ops.resident_replies order by post_id").fetchall()}


@pytest.fixture
def con(tmp_path):
    with connect(tmp_path / "w.duckdb") as c:
        seed(c)
        yield c


def source(tmp_path):
    return FileDropSource(FileDropConfig(drop_dir=str(tmp_path / "drop")), instance_name="feed")


def outbox(tmp_path):
    return [json.loads(line) for f in sorted((tmp_path / "drop" / "outbox").glob("*.jsonl")) for line in f.read_text().splitlines()]


def test_reply_text_is_the_seed_wording():
    assert reply_text("72355") == "We're on it! Your report number is 72355."


def test_replies_are_drafted_but_not_sent_when_disabled(con, tmp_path):
    counts = send_replies(con, {})
    assert counts == {"drafted": 3, "sent": 0, "failed": 0}
    # posts behind a ticket with an id; not the repost, not the token or failed incidents
    assert set(replies(con)) == {"feed:1", "feed:2", "feed:5"}
    assert replies(con)["feed:5"] == ("drafted", "We're on it! Your report number is 72355.", None)
    assert not (tmp_path / "drop" / "outbox").exists()


def test_enabled_replies_go_to_the_outbox_once(con, tmp_path):
    send_replies(con, {})
    sent = send_replies(con, {"feed": source(tmp_path)})  # replies turned on later: the drafts go out
    assert sent == {"drafted": 0, "sent": 3, "failed": 0}
    lines = outbox(tmp_path)
    assert sorted((line["in_reply_to"], line["text"]) for line in lines) == [
        ("1", "We're on it! Your report number is 240001."), ("2", "We're on it! Your report number is 240001."),
        ("5", "We're on it! Your report number is 72355.")]
    assert {state for state, _, reply_id in replies(con).values()} == {"sent"}
    assert send_replies(con, {"feed": source(tmp_path)}) == {"drafted": 0, "sent": 0, "failed": 0}
    assert len(outbox(tmp_path)) == 3


def test_a_failed_reply_is_recorded_and_retried(con, tmp_path):
    class Broken(FileDropSource):
        def reply(self, post, text):
            raise OSError("platform down")

    broken = Broken(FileDropConfig(drop_dir=str(tmp_path / "drop")), instance_name="feed")
    assert send_replies(con, {"feed": broken})["failed"] == 3
    assert con.execute("select distinct last_error from ops.resident_replies").fetchall() == [("OSError: platform down",)]
    assert send_replies(con, {"feed": source(tmp_path)})["sent"] == 3


def test_replies_are_off_by_default_in_the_city_config():
    assert PluginRef(plugin="file_drop").replies_enabled is False


def test_per_minute_cap_is_a_sliding_window_kept_across_restarts(tmp_path, social):
    """max_replies_per_minute counts the platform calls of the last 60 s in the ledger, so a
    restarted run (new connection, new plugin) still respects it; what it holds back waits."""
    from datetime import timedelta

    from social311.integrations.sources.mastodon import MastodonConfig, MastodonSource
    from social311.integrations.testing.social_fakes import MastodonFake

    db = tmp_path / "w.duckdb"
    with MastodonFake(social) as fake:
        ids = fake.add_posts([f"pothole {i}" for i in range(12)])
        with connect(db) as c:
            for i, native in enumerate(ids):
                c.execute("insert into raw.posts (post_id, source, native_id, text, created_at, ingested_at) "
                          "values (?, 'm', ?, 'pothole', ?, ?)", [f"m:{native}", native, T, T])
                c.execute("insert into ops.incident_posts values (?, ?, 'anchor')", [f"inc-{i}", f"m:{native}"])
                c.execute("insert into ops.ticket_ledger (incident_id, marker, state, service_code, service_request_id, "
                          "created_at, updated_at) values (?, ?, 'submitted', 'POTHOLE', ?, ?, ?)",
                          [f"inc-{i}", f"m-{i}", str(72000 + i), T, T])

        def run(at_s: float) -> dict:
            source = MastodonSource(MastodonConfig(base_url=fake.url, max_replies_per_minute=5), instance_name="m",
                                    credentials={"access_token": "t"})
            with connect(db) as c:  # a fresh connection and plugin each time: a restart
                return send_replies(c, {"m": source}, clock=lambda: T + timedelta(seconds=at_s))

        first = run(0)
        assert (first["sent"], first["deferred"], fake.reply_count()) == (5, 7, 5)
        assert run(30)["sent"] == 0 and fake.reply_count() == 5  # the window still holds the first five
        assert run(61)["sent"] == 5  # the first five slid out of the window
        assert run(90)["sent"] == 0
        last = run(122)
        assert last["sent"] == 2 and "deferred" not in last and fake.reply_count() == 12
        with connect(db) as c:
            assert c.execute("select count(*) from ops.resident_replies where state = 'sent'").fetchone()[0] == 12
            deferred = c.execute("select count(*) from ops.resident_replies where last_error like 'deferred%'").fetchone()[0]
        assert deferred == 0


def test_replies_disabled_do_not_forget_a_reply_in_doubt(con):
    """A run without the source's sender learns nothing: a reply in doubt keeps that state."""
    con.execute("insert into ops.resident_replies values ('feed:1', 'feed', 'inc-a', '240001', 'x', 'in_doubt', "
                "null, 'lost answer', ?, null)", [T])
    send_replies(con, {})
    assert replies(con)["feed:1"][0] == "in_doubt"


def test_per_minute_cap_is_a_source_setting_of_the_city_yaml():
    """``max_replies_per_minute`` sits in a source's ``config:``; a nonsense value is refused."""
    from pydantic import ValidationError

    from social311.integrations.sources.listening import ListeningPlan
    from social311.orchestration.listening import build_source

    ref = PluginRef(plugin="x", name="x_city", replies_enabled=True,
                    config={"max_replies_per_minute": 5, "max_replies_per_run": 100})
    source = build_source(ref, None, plan=ListeningPlan())
    assert (source.config.max_replies_per_minute, source.config.max_replies_per_run) == (5, 100)
    with pytest.raises(ValidationError, match="max_replies_per_minute"):
        build_source(PluginRef(plugin="x", config={"max_replies_per_minute": 0}), None, plan=ListeningPlan())
