"""ops/incidents on a warehouse that already holds incidents: only new reports are merged, and
earlier incidents keep their posts and ids whatever moved since (typing, repost links).

Real DuckDB file with the warehouse's own tables (core/warehouse.py); ``int_posts_in_wards``
(a dbt model) is written here as a table with the model's columns, so each run's inputs are
exactly the rows a test sets. The asset's own function (``update_incidents``) does the work.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import numpy as np
import pytest

from social311.config import ScreeningSettings, Thresholds
from social311.models.incidents import incident_id
from social311.orchestration.incidents import update_incidents
from social311.warehouse import connect

T0 = datetime(2026, 5, 4, 8, tzinfo=timezone.utc)
LAT, LON = 41.8895, -87.6313
M_PER_DEG = 111_195.0


class Cfg:
    """The one part of CityConfig that ``update_incidents`` reads."""

    thresholds = Thresholds(file_min_confidence=0.1)
    bbox = None  # the screening before the blocking check reads the bbox and its settings
    screening = ScreeningSettings()


def unit(seed: int, near: np.ndarray | None = None, cos: float = 0.9) -> np.ndarray:
    """A random unit vector; with ``near``, one whose cosine to ``near`` is about ``cos``."""
    rng = np.random.default_rng(seed)
    v = rng.normal(size=384)
    v /= np.linalg.norm(v)
    if near is not None:
        v = v - (v @ near) * near
        v = cos * near + np.sqrt(1 - cos**2) * v / np.linalg.norm(v)
    return v.astype(np.float32)


BASE = unit(0)


def row(pid, order, *, type_id="svc-streetlight", code="LIGHT", north_m=0.0, hours=0.0, repost_of=None,
        is_report=True, vector=BASE, text="Streetlight out at Clark and Kinzie"):
    """One post as int_posts_in_wards and ml.post_signals hold it (ingested in ``order``)."""
    return {"post_id": pid, "created_at": T0 + timedelta(hours=hours), "ingested_at": T0 + timedelta(seconds=order),
            "type_id": type_id, "service_code": code if type_id and type_id.startswith("svc-") else None,
            "type_similarity": 0.7 if type_id else None, "lat": LAT + north_m / M_PER_DEG, "lon": LON,
            "location_confidence": 0.9, "ward_id": "42", "boundary_version": "v1", "relevance": 0.9,
            "is_report": is_report, "repost_of_post_id": repost_of, "post_text": text, "embedding": vector}


def write(con, rows: list[dict]) -> None:
    """The run's inputs: the posts in wards (a table here) and their signals."""
    con.execute("""create or replace table int_posts_in_wards (post_id varchar, created_at timestamptz,
        ingested_at timestamptz, type_id varchar, service_code varchar, type_similarity double, lat double,
        lon double, location_confidence double, ward_id varchar, boundary_version varchar, relevance double,
        is_report boolean, repost_of_post_id varchar, post_text varchar)""")
    con.execute("delete from ml.post_signals")
    for r in rows:
        con.execute("insert into int_posts_in_wards values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [r[k] for k in ("post_id", "created_at", "ingested_at", "type_id", "service_code", "type_similarity",
                                    "lat", "lon", "location_confidence", "ward_id", "boundary_version", "relevance",
                                    "is_report", "repost_of_post_id", "post_text")])
        con.execute("insert into ml.post_signals values (?, ?, ?, 0, 'en', ?, 'test', ?)",
                    [r["post_id"], r["relevance"], r["is_report"], r["embedding"].tolist(), T0])


def incidents(con) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for inc, pid in con.execute("select incident_id, post_id from ops.incident_posts order by post_id").fetchall():
        out.setdefault(inc, []).append(pid)
    return out


@pytest.fixture
def con(tmp_path):
    with connect(tmp_path / "w.duckdb") as c:
        yield c


def test_a_filed_incident_keeps_its_posts_and_id_when_typing_moves_on_the_next_run(con):
    # The rerun crash of issue 16 and the re-filed ticket of issue 11, as found on the bench's
    # warehouse: p reposts a; a matched no service on the first run (untyped: not a report for
    # merging), so p merged with q by place and words, in an incident anchored on q. On the next
    # run a got a candidate type, so p now rides on a: re-merging everything put {a, p} and {q}
    # apart, both claiming "inc-" + sha1(q) (duplicate key), or q under a new id (filed again).
    a = row("a", 0, type_id=None, north_m=3000, vector=unit(1), text="Seriously? All the lights are out near Clark")
    q = row("q", 1, vector=BASE)
    p = row("p", 2, north_m=60, repost_of="a", vector=unit(2, BASE, 0.95), text="RT: All the lights are out near Clark")
    write(con, [a, q, p])
    first = update_incidents(con, Cfg)
    assert incidents(con) == {incident_id("q"): ["p", "q"]}
    assert first["new_incidents"] == 1
    filed = con.execute("select incident_id, status, service_code from ops.incidents").fetchall()
    assert filed == [(incident_id("q"), "ready", "LIGHT")]

    write(con, [dict(a, type_id="cand-62c9006c03"), q, p])  # typing moved: a is now a typed report
    second = update_incidents(con, Cfg)
    # a joins the incident of its repost; q and p stay where they were; no incident is new.
    assert incidents(con) == {incident_id("q"): ["a", "p", "q"]}
    assert second["new_incidents"] == 0 and second["new_reports"] == 1
    assert con.execute("select incident_id, status, service_code, post_count from ops.incidents").fetchall() == [
        (incident_id("q"), "ready", "LIGHT", 3)]


def test_a_run_with_nothing_new_writes_nothing(con):
    write(con, [row("q", 0), row("r", 1, north_m=40, vector=unit(3, BASE, 0.9)), row("far", 2, north_m=5000)])
    update_incidents(con, Cfg)
    before = con.execute("select * from ops.incidents order by incident_id").fetchall()
    again = update_incidents(con, Cfg)
    assert (again["new_reports"], again["incidents_written"], again["incidents"]) == (0, 0, 2)
    assert con.execute("select * from ops.incidents order by incident_id").fetchall() == before  # updated_at too


def test_new_reports_join_their_neighbourhood_and_leave_other_incidents_untouched(con):
    # Residents' own words at each place: one text at 3+ points would be a form's template, which
    # merges only within merge_template_radius_m (models/incidents.py), not at 80 m.
    old = [row("q", 0), row("far", 1, north_m=5000, type_id="svc-pothole", code="POT", vector=unit(4),
                            text="Huge pothole on Wells")]
    write(con, old)
    update_incidents(con, Cfg)
    stamps = dict(con.execute("select incident_id, updated_at from ops.incidents").fetchall())
    new = [row("n1", 2, north_m=80, hours=5, vector=unit(5, BASE, 0.9),  # same place, words, type: joins q
               text="The streetlight at Clark and Kinzie is still dark"),
           row("n2", 3, north_m=9000, hours=5, vector=unit(6), text="Lamp post dark on Halsted")]  # elsewhere: new
    write(con, old + new)
    figures = update_incidents(con, Cfg)
    assert incidents(con) == {incident_id("q"): ["n1", "q"], incident_id("far"): ["far"], incident_id("n2"): ["n2"]}
    assert figures["new_incidents"] == 1 and figures["incidents_written"] == 2
    after = dict(con.execute("select incident_id, updated_at from ops.incidents").fetchall())
    assert after[incident_id("far")] == stamps[incident_id("far")], "an incident no new post touched is not rewritten"
    assert after[incident_id("q")] > stamps[incident_id("q")]
    reason = con.execute("select merge_reason from ops.incident_posts where post_id = 'n1'").fetchone()[0]
    assert reason == "near+similar"
    counts = con.execute("select post_count, first_seen_at, last_seen_at from ops.incidents where incident_id = ?",
                         [incident_id("q")]).fetchone()
    assert counts == (2, T0, T0 + timedelta(hours=5))


def test_a_new_post_bridging_two_earlier_incidents_joins_one_and_merges_nothing(con):
    # Residents' own words (one text at 3 points would be a template: see the test above).
    old = [row("a", 0), row("c", 1, north_m=400, vector=unit(7, BASE, 0.9), text="Clark St lights dark again")]
    write(con, old)
    update_incidents(con, Cfg)
    assert len(incidents(con)) == 2
    write(con, old + [row("b", 2, north_m=200, vector=unit(8, BASE, 0.95), text="No street lights on Clark tonight")])
    update_incidents(con, Cfg)
    groups = incidents(con)
    assert set(groups) == {incident_id("a"), incident_id("c")}
    assert sorted(map(len, groups.values())) == [1, 2]
