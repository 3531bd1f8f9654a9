"""The council marts (SLA, response times, campaigns, spikes) built by real dbt on a seeded DuckDB file,
and the alerts the run queues from them.

The spike rule itself is pinned by the dbt unit test in ``transforms/models/marts/_marts_council.yml``,
which this build runs too.
"""

import json
import os
import subprocess
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from social311.config import CityConfig
from social311.orchestration.alerting import find_alerts
from social311.orchestration.alerts import Channels, deliver_pending, queue
from social311.orchestration.city_rules import rule_rows, term_pattern, write_rules
from social311.orchestration.transforms import PROJECT_DIR, dbt_env, dbt_executable
from social311.warehouse import connect

NOW = datetime.now(timezone.utc)
W1 = "POLYGON((0 0, 1 0, 1 1, 0 1, 0 0))"
W2 = "POLYGON((1 0, 2 0, 2 1, 1 1, 1 0))"


def city(**more) -> CityConfig:
    base = {"city": "Springfield", "sources": [{"plugin": "file_drop"}], "gis": {"plugin": "geojson"},
            "ticketing": {"plugin": "open311"},
            "sla": {"default": {"acknowledge_hours": 24, "close_hours": 72, "answer_hours": 1},
                    "POTHOLE": {"acknowledge_hours": 2}},
            "campaigns": [{"name": "Fix our streets", "terms": ["#FixOurStreets", "pothole season"]}],
            "spikes": {"min_history_days": 0}}
    return CityConfig.model_validate({**base, **more})


def post(con, post_id, text, at, *, lon=0.5, lat=0.5, code="POTHOLE", report=True, author="a", sentiment=-0.5):
    con.execute("insert into raw.posts (post_id, source, native_id, text, created_at, author_hash, lat, lon, ingested_at) "
                "values (?, 'feed', ?, ?, ?, ?, ?, ?, ?)", [post_id, post_id, text, at, author, lat, lon, NOW])
    con.execute("insert into ml.post_signals (post_id, relevance, is_report, sentiment) values (?, ?, ?, ?)",
                [post_id, 0.9 if report else 0.1, report, sentiment])
    if report:
        con.execute("insert into ml.post_types values (?, 't-' || ?, ?, 0.8, ?)", [post_id, code, code, NOW])
    con.execute("insert into ml.post_locations (post_id, lat, lon, method, confidence) values (?, ?, ?, 'geotag', 0.9)",
                [post_id, lat, lon])


def ticket(con, rid, code, ward, filed_hours_ago, posts, *, acknowledged_after_h=None):
    filed = NOW - timedelta(hours=filed_hours_ago)
    incident = f"inc-{rid}"
    con.execute("insert into ops.incidents (incident_id, service_code, ward_id, post_count, confidence, status) "
                "values (?, ?, ?, ?, 0.9, 'ready')", [incident, code, ward, len(posts)])
    for p in posts:
        con.execute("insert into ops.incident_posts values (?, ?, 'same')", [incident, p])
    con.execute("insert into ops.ticket_ledger (incident_id, marker, state, service_code, service_request_id, created_at, "
                "updated_at, filed_at) values (?, ?, 'submitted', ?, ?, ?, ?, ?)", [incident, f"m-{rid}", code, rid, filed, filed, filed])
    acked = filed + timedelta(hours=acknowledged_after_h) if acknowledged_after_h is not None else None
    con.execute("insert into ops.ticket_status (service_request_id, incident_id, status, requested_at, acknowledged_at, "
                "time_to_acknowledge_s, synced_at) values (?, ?, 'open', ?, ?, ?, ?)",
                [rid, incident, filed, acked, acknowledged_after_h * 3600 if acked else None, NOW])


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("council")
    db = tmp / "w.duckdb"
    with connect(db) as con:
        con.execute("insert into gis.wards (ward_id, name, boundary_version, geom) values "
                    f"('W1', 'Westside', 'v1', st_geomfromtext('{W1}')), ('W2', 'Eastside', 'v1', st_geomfromtext('{W2}'))")
        con.execute("insert into ops.service_catalog (service_code, service_name) values "
                    "('POTHOLE', 'Pothole in Street'), ('LIGHT', 'Street Light Out')")
        post(con, "p1", "Huge pothole on Main #FixOurStreets", NOW - timedelta(hours=5), author="a")
        post(con, "p2", "Same pothole, still there #fixourstreets", NOW - timedelta(hours=5), author="b")
        post(con, "p3", "It is pothole season again", NOW - timedelta(hours=100), author="c", lon=1.5)
        post(con, "p4", "Light out on 5th #FixOurStreetsNow", NOW - timedelta(hours=5), code="LIGHT", lon=1.5, author="d")
        post(con, "p5", "lovely day #FixOurStreets", NOW - timedelta(hours=2), report=False, author="e", sentiment=0.8)
        ticket(con, "101", "POTHOLE", "W1", 5, ["p1", "p2"])  # 2 h target: overdue
        ticket(con, "102", "LIGHT", "W2", 5, ["p4"])  # 24 h default: not yet
        ticket(con, "103", "POTHOLE", "W2", 100, ["p3"], acknowledged_after_h=30)  # acknowledged late, open past 72 h
        con.execute("insert into ops.resident_replies values ('p1', 'feed', 'inc-101', '101', 'on it', 'sent', 'r1', null, ?, ?)",
                    [NOW, NOW - timedelta(hours=4.5)])  # 30 minutes after the post
        con.execute("insert into ops.resident_replies values ('p4', 'feed', 'inc-102', '102', 'on it', 'drafted', null, null, ?, null)",
                    [NOW])
        write_rules(con, city())
    result = subprocess.run(
        [dbt_executable(), "build", "--select", "+fct_ticket_sla", "+fct_response_times", "+fct_campaign_daily",
         "+fct_ward_service_spikes", "+fct_service_surges", "--project-dir", str(PROJECT_DIR), "--profiles-dir", str(PROJECT_DIR),
         "--target-path", str(tmp / "target"), "--log-path", str(tmp / "logs")],
        env={**os.environ, **dbt_env(db)}, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0 and "ERROR=0" in result.stdout, result.stdout[-4000:]
    assert "spike_rule_judges_against_rolling_and_weekday_baselines" in result.stdout
    return db


def rows(db, sql):
    with connect(db, read_only=True) as con:
        cur = con.execute(sql)
        names = [d[0] for d in cur.description]
        return [dict(zip(names, r)) for r in cur.fetchall()]


def test_sla_flags_overdue_and_late_tickets_and_unanswered_residents(warehouse):
    sla = {r["service_request_id"]: r for r in rows(warehouse, "select * from fct_ticket_sla")}
    assert sla["101"]["acknowledge_target_s"] == 2 * 3600, "the service's own target wins over the default"
    assert sla["101"]["is_acknowledge_overdue"] and not sla["101"]["is_close_overdue"]
    assert (sla["101"]["resident_posts"], sla["101"]["residents_answered"], sla["101"]["residents_unanswered_overdue"]) == (2, 1, 1)
    assert not sla["102"]["is_acknowledge_overdue"] and sla["102"]["has_unanswered_residents"], "a drafted reply is no answer"
    assert sla["103"]["is_acknowledge_late"] and not sla["103"]["is_acknowledge_overdue"]
    assert sla["103"]["is_close_overdue"]


def test_response_times_per_ward_and_city_wide(warehouse):
    city_rows = {r["service_code"]: r for r in rows(warehouse, "select * from fct_response_times where is_city_total")}
    assert city_rows["POTHOLE"]["ticket_count"] == 2 and city_rows["POTHOLE"]["acknowledged_count"] == 1
    assert city_rows["POTHOLE"]["acknowledge_median_h"] == 30.0
    ward = rows(warehouse, "select * from fct_response_times where ward_id = 'W1'")
    assert [(r["service_code"], r["overdue_count"]) for r in ward] == [("POTHOLE", 1)]


def test_campaigns_match_whole_hashtags_and_phrases_case_insensitively(warehouse):
    daily = rows(warehouse, "select * from fct_campaign_daily order by activity_date")
    assert sum(r["post_count"] for r in daily) == 4, "p1, p2, p3 (phrase) and p5 (not a report); not #FixOurStreetsNow"
    assert sorted({w for r in daily for w in r["ward_ids"]}) == ["W1", "W2"]
    today = [r for r in daily if r["post_count"] == 3][0]
    assert today["author_count"] == 3 and today["mean_sentiment"] == pytest.approx((-0.5 - 0.5 + 0.8) / 3, abs=1e-3)


def test_the_run_queues_one_alert_per_breach_and_spike_and_delivers_it_once(warehouse, tmp_path):
    with connect(warehouse, read_only=True) as con:
        alerts = find_alerts(con, "Springfield")
    ids = {a.alert_id for a in alerts}
    assert {"sla_acknowledge:101", "sla_answer:101", "sla_answer:102", "sla_close:103"} <= ids
    assert "sla_acknowledge:102" not in ids and "sla_acknowledge:103" not in ids
    assert all(a.title.startswith("Springfield: ") for a in alerts)
    channels = Channels(outbox_path=tmp_path / "alerts.jsonl")
    assert queue(tmp_path / "l.sqlite", alerts, channels) == len(alerts)
    deliver_pending(tmp_path / "l.sqlite", channels)
    assert queue(tmp_path / "l.sqlite", alerts, channels) == 0
    deliver_pending(tmp_path / "l.sqlite", channels)
    lines = [json.loads(line) for line in channels.outbox_path.read_text().splitlines()]
    assert sorted(line["alert_id"] for line in lines) == sorted(ids)


def test_rule_rows_from_the_yaml():
    rules = rule_rows(city())
    assert rules["ops.sla_targets"] == [("POTHOLE", 7200, None, None), ("default", 86400, 259200, 3600)]
    assert rules["ops.spike_rule"] == [(28, 0, 3, 5, 3.0)]
    assert [r[:2] for r in rules["ops.campaign_terms"]] == [("Fix our streets", "#FixOurStreets"), ("Fix our streets", "pothole season")]
    assert term_pattern("a.b") == r"(?i)(^|[^\w#@])a\.b($|[^\w])"


def test_the_rules_asset_writes_the_yaml_and_its_check_catches_a_misspelt_service(tmp_path):
    import dagster as dg
    import yaml

    from social311.orchestration import city_rules
    from social311.orchestration.resources import CityResource

    path = tmp_path / "city.yaml"
    path.write_text(yaml.safe_dump({
        "city": "Springfield", "duckdb_path": "w.duckdb", "sources": [{"plugin": "file_drop"}], "gis": {"plugin": "geojson"},
        "ticketing": {"plugin": "open311"}, "sla": {"POTHOLES": {"acknowledge_hours": 2}, "default": {"close_hours": 72}}}))
    with connect(tmp_path / "w.duckdb") as con:
        con.execute("insert into ops.service_catalog (service_code, service_name) values ('POTHOLE', 'Pothole in Street')")
    definitions = city_rules.defs()
    result = dg.materialize([city_rules.city_rules, *definitions.asset_checks],
                            resources={"city": CityResource(config_path=str(path))}, raise_on_error=False)
    checks = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
    assert checks == {"targets_name_catalog_services": False, "targets_are_positive": True, "one_rule": True,
                      "terms_are_not_blank": True}
    assert rows(tmp_path / "w.duckdb", "select service_code from ops.sla_targets order by 1") == [
        {"service_code": "POTHOLES"}, {"service_code": "default"}]
