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
