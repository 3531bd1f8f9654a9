"""The alert sensors, evaluated by Dagster: queued alerts delivered once, a failed run alerted."""

import json

import dagster as dg
import pytest
import yaml
from webhook_receiver import Receiver

from social311.orchestration.alerting import alert_sensor, channels, run_failure_alert_sensor
from social311.orchestration.alerts import Alert, deliveries, ledger_path, queue
from social311.orchestration.resources import CityResource


@pytest.fixture
def receiver():
    with Receiver() as r:
        yield r


@pytest.fixture
def city(tmp_path, receiver, monkeypatch):
    path = tmp_path / "city.yaml"
    path.write_text(yaml.safe_dump({
        "city": "Springfield", "duckdb_path": "w.duckdb", "sources": [{"plugin": "file_drop"}],
        "gis": {"plugin": "geojson"}, "ticketing": {"plugin": "open311"},
        "alerts": {"webhook_url_env": "SPRINGFIELD_ALERT_HOOK", "outbox_path": "out/alerts.jsonl"}}))
    monkeypatch.setenv("SPRINGFIELD_ALERT_HOOK", receiver.url)
    return CityResource(config_path=str(path))


def test_the_alert_sensor_delivers_what_the_run_queued_once(city, receiver, tmp_path):
    cfg = city.load()
    assert channels(cfg).outbox_path == tmp_path / "out" / "alerts.jsonl", "relative to the YAML file"
    surge = Alert("surge:FLOODING:2024-05-11", "surge", "Springfield: surge of Street Flooding reports city-wide",
                  "6 reports on 2024-05-11 against a baseline of 1.2 a day.", service_code="FLOODING")
    queue(ledger_path(cfg.duckdb_path), [surge], channels(cfg))
    # The city resource is a context manager (it holds the run lock during runs): open it as the daemon does.
    with dg.build_sensor_context(resources={"city": city}) as context:
        first = alert_sensor(context)
    assert "alerts delivered: 2" in first.skip_message
    with dg.build_sensor_context(resources={"city": city}) as context:
        second = alert_sensor(context)
    assert "alerts delivered: 0" in second.skip_message
    assert receiver.bodies == [{"text": f"{surge.title}\n{surge.text}"}]
    assert len((tmp_path / "out" / "alerts.jsonl").read_text().splitlines()) == 1


def test_a_failed_run_is_alerted_through_the_same_delivery(city, receiver, tmp_path):
    @dg.op
    def breaks():
        raise RuntimeError("IO Error: Could not set lock on file")

    @dg.job
    def pipeline():
        breaks()

    instance = dg.DagsterInstance.ephemeral()
    result = pipeline.execute_in_process(instance=instance, raise_on_error=False)
    assert not result.success
    with dg.build_run_status_sensor_context(
            sensor_name="run_failure_alert_sensor", dagster_instance=instance, dagster_run=result.dagster_run,
            dagster_event=result.get_run_failure_event(), resources={"city": city}) as status_context:
        context = status_context.for_run_failure()
        run_failure_alert_sensor(context)
        run_failure_alert_sensor(context)  # the daemon may evaluate one failure twice: still one alert
    assert len(receiver.bodies) == 1
    assert receiver.bodies[0]["text"].startswith("Springfield: run of pipeline failed")
    line = json.loads((tmp_path / "out" / "alerts.jsonl").read_text())
    assert line["alert_id"] == f"run_failure:{result.run_id}" and line["kind"] == "run_failure"
    assert {d["state"] for d in deliveries(ledger_path(city.load().duckdb_path))} == {"delivered"}
