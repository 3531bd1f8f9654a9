"""The review queue: labels recorded in DuckDB change the next run's incidents and relevance model."""

from datetime import datetime, timezone

import numpy as np
import pytest

from social311.cli import main
from social311.models.review import LabelError, apply_label, list_queue, record_label
from social311.orchestration.incidents import apply_review_labels
from social311.warehouse import connect

NOW = datetime(2026, 1, 5, 12, tzinfo=timezone.utc)


@pytest.mark.parametrize("status, code, action, new_code, expected", [
    ("review", "POT", None, None, ("review", "POT")),
    ("review", "POT", "accept", None, ("ready", "POT")),
    ("review", "POT", "reject", None, ("rejected", "POT")),
    ("ready", "POT", "reject", None, ("rejected", "POT")),
    ("review", "POT", "relabel", "LIGHT", ("ready", "LIGHT")),
    ("untyped", None, "relabel", "LIGHT", ("ready", "LIGHT")),
    # No place or no ward: a label cannot make it fileable (the blocking checks would refuse it).
    ("unlocated", "POT", "accept", None, ("unlocated", "POT")),
    ("outside_wards", "POT", "relabel", "LIGHT", ("outside_wards", "LIGHT")),
])
def test_apply_label(status, code, action, new_code, expected):
    assert apply_label(status, code, action, new_code) == expected


def _incident(incident_id, status, code="POT", confidence=0.3):
    return (incident_id, f"svc-{code}", code, "1", "v1", 41.88, -87.63, NOW, NOW, 1, "pothole here", confidence, status, NOW)


def _write_run(con, incidents):
    """What ops/incidents does each run: rewrite the table whole, then apply the labels."""
    con.execute("delete from ops.incident_posts")
    con.execute("delete from ops.incidents")
    con.executemany("insert into ops.incidents values (" + ", ".join(["?"] * 14) + ")", incidents)
    con.executemany("insert into ops.incident_posts values (?, ?, 'anchor')", [(i[0], "p-" + i[0]) for i in incidents])
    apply_review_labels(con)


@pytest.fixture
def warehouse(tmp_path):
    path = tmp_path / "w.duckdb"
    with connect(path) as con:
        con.executemany("insert into ops.service_catalog (service_code, service_name) values (?, ?)",
                        [("POT", "Pothole in Street"), ("LIGHT", "Street Light Out")])
        for n, pid in enumerate(["p-inc-a", "p-inc-b", "p-inc-c", "p-inc-d"]):
            vector = np.zeros(384, dtype=np.float32)
            vector[n] = 1.0
            con.execute("insert into ml.post_signals values (?, 0.4, false, 0, 'en', ?, 'm', ?)", [pid, vector.tolist(), NOW])
        _write_run(con, [_incident("inc-a", "review"), _incident("inc-b", "review"), _incident("inc-c", "review"),
                         _incident("inc-d", "ready", confidence=0.9)])
    return path


def test_labels_round_trip_into_the_next_run(warehouse):
    with connect(warehouse) as con:
        assert [q.incident_id for q in list_queue(con)] == ["inc-a", "inc-b", "inc-c"]
        record_label(con, "inc-a", "accept")
        record_label(con, "inc-b", "reject")
        record_label(con, "inc-c", "relabel", service_code="LIGHT")
        assert list_queue(con) == []
        # The next run recomputes every incident (same stable ids, status review again).
        _write_run(con, [_incident("inc-a", "review"), _incident("inc-b", "review"), _incident("inc-c", "review"),
                         _incident("inc-d", "ready", confidence=0.9), _incident("inc-e", "review")])
        rows = dict(con.execute("select incident_id, status || ':' || service_code from ops.incidents").fetchall())
        # What the ledger files: status ready.
        ready = {r[0] for r in con.execute("select incident_id from ops.incidents where status = 'ready'").fetchall()}
        queue = [q.incident_id for q in list_queue(con)]
    assert rows == {"inc-a": "ready:POT", "inc-b": "rejected:POT", "inc-c": "ready:LIGHT",
                    "inc-d": "ready:POT", "inc-e": "review:POT"}
    assert ready == {"inc-a", "inc-c", "inc-d"}
    assert queue == ["inc-e"]


@pytest.mark.parametrize("incident_id, action, code, message", [
    ("inc-zzz", "accept", None, "no incident"),
    ("inc-a", "relabel", "NOPE", "not a service code"),
    ("inc-a", "promote", None, "unknown action"),
])
def test_bad_labels_are_refused(warehouse, incident_id, action, code, message):
    with connect(warehouse) as con, pytest.raises(LabelError, match=message):
        record_label(con, incident_id, action, service_code=code)


def test_review_cli(warehouse, tmp_path, capsys):
    config = tmp_path / "city.yaml"
    config.write_text(f"city: Test\nduckdb_path: {warehouse}\nsources: [{{plugin: file_drop}}]\n"
                      "gis: {plugin: geojson}\nticketing: {plugin: open311}\n")
    assert main(["review", "--config", str(config)]) == 0
    assert "3 incidents waiting for review" in capsys.readouterr().out
    assert main(["review", "--config", str(config), "--relabel", "inc-a", "LIGHT"]) == 0
    assert main(["review", "--config", str(config), "--reject", "inc-b"]) == 0
    assert main(["review", "--config", str(config), "--accept", "inc-nope"]) == 2
    assert main(["review", "--config", str(config)]) == 0
    assert "1 incidents waiting for review" in capsys.readouterr().out
    with connect(warehouse) as con:
        assert con.execute("select incident_id, action, service_code from ops.review_labels order by 1").fetchall() == [
            ("inc-a", "relabel", "LIGHT"), ("inc-b", "reject", None)]


def test_accepted_and_relabelled_posts_become_typing_examples(warehouse):
    from social311.models.review import typed_examples

    with connect(warehouse) as con:
        record_label(con, "inc-a", "accept")
        record_label(con, "inc-b", "reject")
        record_label(con, "inc-c", "relabel", service_code="LIGHT")
        apply_review_labels(con)
        examples = typed_examples(con)
    assert sorted(examples) == ["LIGHT", "POT"]
    assert examples["POT"].shape == (1, 384) and examples["POT"][0, 0] == 1.0  # p-inc-a
    assert examples["LIGHT"][0, 2] == 1.0  # p-inc-c, under its new code
