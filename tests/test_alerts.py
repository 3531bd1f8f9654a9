"""Alert delivery: once per alert to a real HTTP receiver on loopback and to the outbox file."""

import json

import pytest
from webhook_receiver import SECRET_PATH, Receiver

from social311.orchestration.alerts import MAX_ATTEMPTS, Alert, Channels, deliver_pending, deliveries, queue


@pytest.fixture
def receiver():
    with Receiver() as r:
        yield r


def spike(day="2024-05-09", ward="42"):
    return Alert(alert_id=f"spike:{ward}:GRAFFITI:{day}", kind="spike", title=f"Spike of Graffiti Removal in Ward {ward}",
                 text=f"6 reports on {day} against a baseline of 0.2 a day.", ward_id=ward, service_code="GRAFFITI")


def setup(tmp_path, receiver, env="ALERT_HOOK"):
    channels = Channels(outbox_path=tmp_path / "alerts.jsonl", webhook_env=env, timeout_s=2)
    return tmp_path / "alerts.sqlite", channels, {env: receiver.url}


def test_each_alert_is_delivered_once_to_the_webhook_and_the_outbox(tmp_path, receiver):
    ledger, channels, environ = setup(tmp_path, receiver)
    assert queue(ledger, [spike(), spike(ward="27")], channels) == 2
    assert deliver_pending(ledger, channels, environ=environ) == {"delivered": 4, "retry": 0, "failed": 0}
    # The same spikes found again by the next run, and the next sensor tick: nothing new is sent.
    assert queue(ledger, [spike(), spike(ward="27")], channels) == 0
    assert deliver_pending(ledger, channels, environ=environ) == {"delivered": 0, "retry": 0, "failed": 0}
    assert len(receiver.bodies) == 2
    assert receiver.bodies[0] == {"text": "Spike of Graffiti Removal in Ward 42\n6 reports on 2024-05-09 against a baseline of 0.2 a day."}
    lines = [json.loads(line) for line in (tmp_path / "alerts.jsonl").read_text().splitlines()]
    assert sorted(line["alert_id"] for line in lines) == ["spike:27:GRAFFITI:2024-05-09", "spike:42:GRAFFITI:2024-05-09"]
    assert all(line["delivered_at"] for line in lines)


def test_a_server_error_is_retried_on_the_next_tick_and_the_secret_url_is_never_stored(tmp_path, receiver):
    ledger, channels, environ = setup(tmp_path, receiver)
    queue(ledger, [spike()], channels)
    receiver.status = 503
    assert deliver_pending(ledger, channels, environ=environ) == {"delivered": 1, "retry": 1, "failed": 0}
    webhook = [d for d in deliveries(ledger) if d["channel"] == "webhook"][0]
    assert webhook["state"] == "retry" and webhook["last_error"] == "webhook answered HTTP 503"
    receiver.status = 200
    assert deliver_pending(ledger, channels, environ=environ)["delivered"] == 1
    assert len(receiver.bodies) == 1 and receiver.paths == [SECRET_PATH, SECRET_PATH]
    stored = ledger.read_bytes() + (tmp_path / "alerts.jsonl").read_bytes()
    assert b"s3cr3t" not in stored


def test_an_unreachable_webhook_keeps_the_url_out_of_the_error(tmp_path, receiver):
    ledger, channels, environ = setup(tmp_path, receiver)
    queue(ledger, [spike()], channels)
    environ = {"ALERT_HOOK": "http://127.0.0.1:9/hooks/s3cr3t-token"}  # discard port: connection refused
    deliver_pending(ledger, channels, environ=environ)
    webhook = [d for d in deliveries(ledger) if d["channel"] == "webhook"][0]
    assert webhook["state"] == "retry" and webhook["last_error"] == "webhook unreachable: ConnectionError"


def test_a_refused_alert_is_given_up_at_once_and_a_failing_one_after_max_attempts(tmp_path, receiver):
    ledger, channels, environ = setup(tmp_path, receiver)
    queue(ledger, [spike()], channels)
    receiver.status = 400
    assert deliver_pending(ledger, channels, environ=environ)["failed"] == 1
    assert "HTTP 400" in [d for d in deliveries(ledger) if d["channel"] == "webhook"][0]["last_error"]
    queue(ledger, [spike(ward="27")], channels)
    receiver.status = 500
    for _ in range(MAX_ATTEMPTS):
        deliver_pending(ledger, channels, environ=environ)
    states = {(d["alert_id"], d["channel"]): (d["state"], d["attempts"]) for d in deliveries(ledger)}
    assert states[("spike:27:GRAFFITI:2024-05-09", "webhook")] == ("failed", MAX_ATTEMPTS)
    assert states[("spike:27:GRAFFITI:2024-05-09", "outbox")] == ("delivered", 1)


def test_a_missing_webhook_variable_is_said_not_swallowed(tmp_path, receiver):
    ledger, channels, _ = setup(tmp_path, receiver)
    queue(ledger, [spike()], channels)
    counts = deliver_pending(ledger, channels, environ={})
    assert counts == {"delivered": 1, "retry": 1, "failed": 0}
    webhook = [d for d in deliveries(ledger) if d["channel"] == "webhook"][0]
    assert "ALERT_HOOK" in webhook["last_error"] and "not set" in webhook["last_error"]


def test_the_outbox_is_not_written_twice_after_a_crash_before_the_ledger_update(tmp_path, receiver):
    ledger, channels, environ = setup(tmp_path, receiver, env="UNUSED")
    channels = Channels(outbox_path=channels.outbox_path)  # outbox only
    queue(ledger, [spike()], channels)
    # The line made it to the file, the process died before marking the delivery done.
    channels.outbox_path.write_text(json.dumps({"alert_id": spike().alert_id}) + "\n{torn", encoding="utf-8")
    assert deliver_pending(ledger, channels, environ=environ)["delivered"] == 1
    ids = [line for line in channels.outbox_path.read_text().splitlines() if spike().alert_id in line]
    assert len(ids) == 1


def test_an_unknown_kind_is_refused():
    with pytest.raises(ValueError, match="unknown alert kind"):
        Alert(alert_id="x", kind="panic", title="t", text="t")
