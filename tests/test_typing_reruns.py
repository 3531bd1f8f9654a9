"""``ml/issue_types`` on a scheduled rerun: a report is typed once per typing inputs.

Real Dagster (``dg.materialize`` of the asset), a real DuckDB file, the real embedding model
(ONNX int8); the embedder is wrapped to count the texts it embeds and ``TypeClassifier.train``
to count fits. A run with nothing new must neither embed nor train; a new report is typed with
the cached classifier; a report that matched nothing is tried again only when the typing
inputs change (catalog, reviewed labels, types) or the post is scored again.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import dagster as dg
import numpy as np
import pytest

from social311.models import embeddings as embeddings_module
from social311.models import issue_types as typing_
from social311.orchestration.ml import issue_types
from social311.orchestration.resources import CityResource
from social311.warehouse import connect

CATALOG = [("POT-01", "Pothole in Street", "Report a pothole or damaged road surface", []),
           ("SL 2", "Street Light Out", "A street light or alley light is dark or flickering", ["streetlight", "lamp"]),
           ("GRAF", "Graffiti Removal", "Paint or tags on public property", [])]
TYPED = ["there's a crater in the road on 5th, almost wrecked my car", "the lamp post outside my house has been dark all week"]
# Match no service of CATALOG; together they make a candidate type (tests/test_models_issue_types.py).
SCOOTERS = ["rental scooters dumped across the sidewalk again", "pile of e-scooters blocking the sidewalk ramp",
            "abandoned scooters lying all over the sidewalk by the station"]
T0 = datetime(2026, 5, 1, tzinfo=timezone.utc)


class Counting:
    """The real embedder, counting the texts it is asked to embed."""

    def __init__(self, inner):
        self.inner, self.model_name, self.texts = inner, inner.model_name, 0

    def encode(self, texts, progress=None):
        self.texts += len(texts)
        return self.inner.encode(texts)


@pytest.fixture(scope="module")
def real_embedder():
    return embeddings_module.get_embedder("onnx-int8")


@pytest.fixture()
def counts(monkeypatch, real_embedder):
    """``embedded``: texts the asset embedded; ``trained``: ``TypeClassifier.train`` calls."""
    seen = {"embedded": 0, "trained": 0}
    counting = Counting(real_embedder)
    monkeypatch.setattr(embeddings_module, "get_embedder", lambda backend="torch": counting)
    train = typing_.TypeClassifier.train.__func__

    def counted_train(cls, *args, **kwargs):
        seen["trained"] += 1
        return train(cls, *args, **kwargs)

    monkeypatch.setattr(typing_.TypeClassifier, "train", classmethod(counted_train))

    def snapshot():
        return {"embedded": counting.texts, "trained": seen["trained"]}

    return snapshot


@pytest.fixture()
def city(tmp_path):
    path = tmp_path / "city.yaml"
    db = tmp_path / "w.duckdb"
    path.write_text(f"city: Test\nduckdb_path: {db}\nembedding_backend: onnx-int8\n"
                    "sources: [{plugin: file_drop}]\ngis: {plugin: geojson}\n"
                    "ticketing: {plugin: open311, config: {endpoint: 'http://127.0.0.1:9', get_retries: 0}}\n")
    with connect(db) as con:
        con.execute("create table stg_social__posts (post_id varchar primary key, post_text varchar, ingested_at timestamptz)")
        for code, name, description, keywords in CATALOG:
            con.execute("insert into ops.service_catalog (service_code, service_name, description, keywords) values (?, ?, ?, ?)",
                        [code, name, description, keywords])
    return CityResource(config_path=str(path)), db


def add_reports(db, embedder, texts, start):
    """Stage ``texts`` as scored reports ``p<start>``, ``p<start+1>``, ... (ingested in that order)."""
    vectors = embedder.encode(texts)
    with connect(db) as con:
        for k, (text, vector) in enumerate(zip(texts, vectors)):
            pid, at = f"p{start + k:03d}", T0 + timedelta(minutes=start + k)
            con.execute("insert into stg_social__posts values (?, ?, ?)", [pid, text, at])
            con.execute("insert into ml.post_signals values (?, 0.9, true, 0.0, 'en', ?, 'test', ?)", [pid, vector.tolist(), at])


def run(city):
    result = dg.materialize([issue_types], resources={"city": city})
    assert result.success
    types = result.asset_materializations_for_node("issue_types")
    meta = {m.asset_key.path[-1]: {k: v.value for k, v in m.metadata.items()} for m in types}
    return meta["issue_types"], meta["post_types"]


def typed(db):
    with connect(db) as con:
        return dict(con.execute("select post_id, type_id from ml.post_types").fetchall())


def test_a_rerun_with_nothing_new_neither_embeds_nor_trains(city, counts, real_embedder):
    resource, db = city
    add_reports(db, real_embedder, TYPED + SCOOTERS[:1], 0)
    meta, posts = run(resource)
    assert meta["classifier"] == "trained" and posts["tried"] == 3 and posts["typed"] == 2 and posts["untyped"] == 1
    first = counts()
    assert first["trained"] == 1 and first["embedded"] == (1 + len(typing_._TEMPLATES)) * len(CATALOG)  # the catalog, once for both uses
    assert typed(db) == {"p000": "svc-pot-01", "p001": "svc-sl-2"}
    # Nothing new: p002 matched nothing under these same inputs, so it is not tried again.
    meta, posts = run(resource)
    assert meta["classifier"] == "not needed" and posts["tried"] == 0
    assert counts() == first
    # A new report is typed with the cached classifier; p002 is still not retried.
    add_reports(db, real_embedder, ["graffiti tags sprayed all over the library wall"], 3)
    meta, posts = run(resource)
    assert meta["classifier"] == "cached" and posts["tried"] == 1 and typed(db)["p003"] == "svc-graf"
    assert counts() == first


def test_an_unmatched_report_is_retried_when_the_typing_inputs_change(city, counts, real_embedder):
    resource, db = city
    add_reports(db, real_embedder, TYPED + SCOOTERS[:1], 0)
    run(resource)
    before = counts()
    # A new service in the catalog: the classifier is trained again and p002 tried again.
    with connect(db) as con:
        con.execute("insert into ops.service_catalog (service_code, service_name, description) values "
                    "('SCOOT', 'Scooter Parking Complaint', 'Rental e-scooters parked blocking the sidewalk')")
    meta, posts = run(resource)
    assert meta["classifier"] == "trained" and posts["tried"] == 1
    assert counts()["trained"] == before["trained"] + 1
    assert typed(db).get("p002") == "svc-scoot"
    # Scored again (an edit re-scores a post): tried again, with the cached classifier.
    with connect(db) as con:
        con.execute("delete from ml.post_types where post_id = 'p001'")
        con.execute("update ml.post_signals set scored_at = now() + interval 1 second where post_id = 'p001'")
    meta, posts = run(resource)
    assert meta["classifier"] == "cached" and posts["tried"] == 1 and typed(db)["p001"] == "svc-sl-2"


def test_a_reviewed_label_retrains(city, counts, real_embedder):
    resource, db = city
    add_reports(db, real_embedder, TYPED + SCOOTERS[:1], 0)
    run(resource)
    trained = counts()["trained"]
    with connect(db) as con:  # a reviewer relabels p000's incident as graffiti: new training data
        con.execute("insert into ops.incidents (incident_id, service_code, post_count, confidence, status) "
                    "values ('inc-1', 'POT-01', 1, 0.5, 'review')")
        con.execute("insert into ops.incident_posts values ('inc-1', 'p000', 'seed')")
        con.execute("insert into ops.review_labels values ('inc-1', 'relabel', 'GRAF', now())")
    meta, posts = run(resource)
    assert meta["classifier"] == "trained" and counts()["trained"] == trained + 1
    assert posts["tried"] == 1  # p002 again: the inputs changed; typed posts keep their type


def test_unmatched_reports_still_become_a_candidate_type_which_later_types_them(city, counts, real_embedder):
    resource, db = city
    add_reports(db, real_embedder, TYPED + SCOOTERS[:1], 0)
    run(resource)
    # Two more scooter posts: with p002 (not retried, still unmatched) they make a candidate type.
    add_reports(db, real_embedder, SCOOTERS[1:], 3)
    meta, posts = run(resource)
    assert posts["tried"] == 2 and posts["untyped"] == 2 and meta["new_candidates"] == 1
    with connect(db) as con:
        (candidate,) = [r[0] for r in con.execute("select type_id from ml.issue_types where status = 'candidate'").fetchall()]
    assert candidate == typing_.candidate_id(["p002"])
    # The new type is a changed typing input: the scooter posts are tried again and take it.
    meta, posts = run(resource)
    assert meta["classifier"] == "cached" and posts["tried"] == 3
    assert {typed(db).get(p) for p in ("p002", "p003", "p004")} == {candidate}
    assert counts()["trained"] == 1
