"""The city's 311 history: fetched through Open311 GET from the real sandbox on loopback, stored
once in a real DuckDB file, embedded once (ONNX int8 path), and used by relevance and typing."""

import time
from datetime import datetime, timedelta, timezone

import dagster as dg
import numpy as np
import pytest

from conftest import OPEN311_TEST_KEY

from social311.config import CityConfig, HistorySettings
from social311.integrations.ticketing.ledger import TicketLedger, marker_for
from social311.models.embeddings import get_embedder
from social311.models.history import History, ServiceClassifier, load_history, with_history
from social311.models.issue_types import assign_types, service_types
from social311.models.relevance import MAX_HISTORY, RelevanceModel, history_weights
from social311.orchestration.history import fetch_window, service_history, update_history
from social311.orchestration.resources import CityResource
from social311.records import Service, TicketRequest
from social311.warehouse import connect

NOW = datetime.now(timezone.utc)
DAY = 86400

ROUTINE = ["Pothole in the curb lane in front of {n} W Madison St", "Street light out in front of {n} N State St",
           "Graffiti on the side of the building at {n} S Canal St", "Garbage not collected at {n} W Lake St"]
CODES = ["POTHOLE", "STREETLIGHT", "GRAFFITI", "MISSED_PICKUP"]


@pytest.fixture(scope="module")
def embedder():
    return get_embedder("onnx-int8")


class Counting:
    """The real embedder, counting the texts it is asked to embed."""

    def __init__(self, inner):
        self.inner, self.texts = inner, 0

    def encode(self, texts, progress=None):
        self.texts += len(texts)
        return self.inner.encode(texts)


def stage(sandbox, n, *, days=30, start=0):
    """``n`` past requests spread evenly over the last ``days`` days; returns their ids."""
    ids, now = [], time.time()
    for k, i in enumerate(range(start, start + n)):
        code = CODES[i % len(CODES)]
        at = now - 60 - (k + 1) * days * DAY / (n + 1)
        ids.append(sandbox.stage_request(code, ROUTINE[i % len(ROUTINE)].format(n=100 + i), at=at, status="closed",
                                         updated_at=at + 3600))
    return ids


def update(db, plugin, embedder, **settings):
    with connect(db) as con:
        return update_history(con, plugin, HistorySettings(**settings), embedder, datetime.now(timezone.utc))


def test_history_is_paged_past_the_server_cap_and_stored_once(tmp_path, sandbox, plugin, embedder):
    ids = stage(sandbox, 45)
    sandbox.quirks.max_results = 10  # a server that silently cuts each answer at 10 requests
    db = tmp_path / "w.duckdb"
    # Trusting one GET per 90-day window would lose most of the history to the cap:
    naive = update(tmp_path / "naive.duckdb", plugin, embedder, server_limit=1000)
    assert naive["fetched"] == 10
    meta = update(db, plugin, embedder, server_limit=10)
    assert meta["fetched"] == meta["new"] == meta["stored"] == 45 and meta["windows_split"] > 0
    with connect(db) as con:
        stored = con.execute("select service_request_id, service_code from ml.service_history").fetchall()
    assert sorted(r[0] for r in stored) == sorted(ids)
    assert {r[1] for r in stored} == set(CODES)


def test_a_second_run_fetches_and_embeds_only_what_is_new(tmp_path, sandbox, plugin, embedder):
    stage(sandbox, 12)
    db, counting = tmp_path / "w.duckdb", Counting(embedder)
    assert update(db, plugin, counting)["embedded"] == 12 and counting.texts == 12
    again = update(db, plugin, counting)
    assert again["new"] == 0 and counting.texts == 12  # nothing embedded twice
    assert datetime.fromisoformat(again["window_start"]) > NOW - timedelta(days=31)  # from the newest stored, not 90 days
    stage(sandbox, 1, days=0, start=99)
    assert update(db, plugin, counting)["new"] == 1 and counting.texts == 13


def test_social311s_own_tickets_are_not_training_data(tmp_path, sandbox, plugin, embedder):
    stage(sandbox, 4)
    db = tmp_path / "w.duckdb"
    with connect(db) as con:
        request = TicketRequest(service_code="STREETLIGHT", lat=41.88, lon=-87.63,
                                description=f"Reported by 2 resident posts on social media.\n\nlight out\n\n{marker_for('inc-1')}")
        TicketLedger(con).file(plugin, "inc-1", request)
        # One the server kept without its marker is still known by its id in the ledger.
        stripped = sandbox.stage_request("POTHOLE", "hole reported by social311 (marker dropped)", at=time.time() - 60)
        con.execute("insert into ops.ticket_ledger (incident_id, marker, state, service_code, service_request_id, "
                    "created_at, updated_at) values ('inc-2', ?, 'submitted', 'POTHOLE', ?, now(), now())",
                    [marker_for("inc-2"), stripped])
        meta = update_history(con, plugin, HistorySettings(), embedder, datetime.now(timezone.utc))
        texts = [r[0] for r in con.execute("select description from ml.service_history").fetchall()]
    assert meta["skipped_own"] == 2 and meta["stored"] == 4
    assert not any("social311" in t for t in texts)


def test_personal_data_is_masked_before_it_is_stored(tmp_path, sandbox, plugin, embedder):
    sandbox.stage_request("NOISE", "Party at 1200 W Lake every night. Call me at (312) 555-0147 or jo.resident@example.com",
                          at=time.time() - DAY)
    db = tmp_path / "w.duckdb"
    update(db, plugin, embedder)
    with connect(db) as con:
        (text,) = con.execute("select description from ml.service_history").fetchone()
    assert "555-0147" not in text and "example.com" not in text
    assert "[phone]" in text and "[email]" in text and "1200 W Lake" in text


def test_old_requests_and_the_overflow_are_pruned(tmp_path, sandbox, plugin, embedder):
    stage(sandbox, 8, days=20)
    db = tmp_path / "w.duckdb"
    meta = update(db, plugin, embedder, max_requests=5)
    assert meta["stored"] == 5
    with connect(db) as con:
        newest = load_history(con)
        oldest = con.execute("select min(requested_datetime) from ml.service_history").fetchone()[0]
    assert len(newest) == 5 and oldest > NOW - timedelta(days=20)
    # A shorter window later on drops what is now too old (requests are 2.2 days apart).
    assert update(db, plugin, embedder, days=5)["stored"] == 2


@pytest.mark.parametrize("newest, days, start_days_ago", [
    (None, 90, 90),  # first run: the whole window
    (NOW - timedelta(days=3), 90, 4),  # later runs: from the newest stored, less a day
    (NOW - timedelta(days=200), 90, 90),  # never further back than the window
    (NOW + timedelta(days=3), 90, 0),  # a request stamped ahead of our clock
])
def test_fetch_window(newest, days, start_days_ago):
    start, end = fetch_window(newest, NOW, days)
    assert end == NOW and start == NOW - timedelta(days=start_days_ago)


def _config(tmp_path, endpoint) -> CityResource:
    path = tmp_path / "city.yaml"
    path.write_text(f"city: Test\nduckdb_path: {tmp_path / 'w.duckdb'}\nembedding_backend: onnx-int8\n"
                    "sources: [{plugin: file_drop}]\ngis: {plugin: geojson}\n"
                    f"ticketing: {{plugin: open311, config: {{endpoint: '{endpoint}', get_retries: 0}}}}\n")
    return CityResource(config_path=str(path))


def test_a_failing_server_does_not_fail_the_asset(tmp_path, sandbox):
    from social311.orchestration.history import defs

    stage(sandbox, 6)
    city = _config(tmp_path, sandbox.url)
    checks = list(defs().asset_checks)
    first = dg.materialize([service_history, *checks], resources={"city": city})
    assert first.success
    assert first.asset_materializations_for_node("ml__service_history")[0].metadata["stored"].value == 6
    evaluations = first.get_asset_check_evaluations()
    assert len(evaluations) == 2 and all(e.passed for e in evaluations)
    sandbox.faults.fail_rate_5xx = 1.0
    second = dg.materialize([service_history], resources={"city": city})
    assert second.success
    metadata = second.asset_materializations_for_node("ml__service_history")[0].metadata
    assert "503" in metadata["fetch_error"].value and metadata["stored"].value == 6  # goes on with what is stored


def test_the_asset_feeds_relevance_and_typing_in_the_pipeline():
    from social311.orchestration.definitions import defs

    graph = defs.resolve_asset_graph()
    for child in (("ml", "post_signals"), ("ml", "issue_types")):
        assert dg.AssetKey(["ml", "service_history"]) in graph.get(dg.AssetKey(list(child))).parent_keys
    assert dg.AssetKey(["ops", "service_catalog"]) in graph.get(dg.AssetKey(["ml", "service_history"])).parent_keys
    job = defs.resolve_job_def("social311_pipeline")
    assert "ml__service_history" in {n.name for n in job.graph.nodes}


def test_history_settings_defaults_and_strictness():
    assert CityConfig.model_fields["history"].default == HistorySettings()
    assert HistorySettings().enabled and HistorySettings().days == 90
    with pytest.raises(ValueError):
        HistorySettings(dayz=3)


# --- the models ---------------------------------------------------------------------------

SERVICES = [
    Service(service_code="POT", service_name="Pothole in Street", description="Report a pothole or damaged road surface"),
    Service(service_code="SL", service_name="Street Light Out", description="A street light is dark or flickering"),
    Service(service_code="GRAF", service_name="Graffiti Removal", description="Paint or tags on public property"),
    # A catalog name residents never use: only the 311 history says what it is about.
    Service(service_code="SGA", service_name="Sanitation Code Violation", description="Sanitation code enforcement request"),
]
HISTORY = {
    "SGA": ["rats running around the garbage carts in the alley", "rodents coming out of the vacant lot next door",
            "saw mice and rats near the restaurant dumpster", "rat burrows along the fence in the alley",
            "rats in the alley every night, need baiting", "rodent problem behind the grocery store",
            "rats chewing through the garbage bags at the curb", "large rat population in the park by the playground",
            "rats nesting under the porch of the abandoned house", "rat holes in the parkway grass"],
    "POT": ["pothole in the curb lane in front of 1200 W Madison", "deep hole in the asphalt by the bus stop",
            "several potholes on the block, cars hitting them", "road surface caved in at the crosswalk",
            "pavement crumbling near the manhole cover", "large pothole in the right lane", "hole in the street damaged my tire",
            "patch came out of the road again", "potholes all along the alley", "sunken pavement by the corner"],
    "SL": ["street light out in front of my house", "light pole dark every night", "alley light not working",
           "three lights out on the block", "street lamp flickering all night", "pole light on during the day",
           "dark street, light has been out for a week", "lamp post light broken", "lights out along the whole street",
           "street light cycling on and off"],
    "GRAF": ["graffiti on the side of the building", "spray painted tags on the viaduct", "graffiti on the mailbox",
             "gang tags on the garage door in the alley", "paint vandalism on the bus shelter", "tags sprayed on the school wall",
             "graffiti on the bridge", "someone painted tags on the fence", "graffiti on the store shutters",
             "spray paint on the light pole"],
}


@pytest.fixture(scope="module")
def history(embedder):
    texts = [t for group in HISTORY.values() for t in group]
    return History(np.array([c for c, group in HISTORY.items() for _ in group], dtype=object), embedder.encode(texts))


def test_history_types_a_post_whose_words_only_the_history_knows(embedder, history):
    types = service_types(SERVICES, embedder)
    post = embedder.encode(["rats everywhere by the dumpsters behind the taco place"])
    ((before, _),) = assign_types(post, types, 0.45)
    assert before != "svc-sga"  # the catalog alone does not know rats are a sanitation violation
    refined = with_history(types, history)
    classifier = ServiceClassifier.train(history, min_per_service=10)
    ((after, similarity),) = assign_types(post, refined, 0.45, classifier=classifier)
    assert after == "svc-sga" and -1 <= similarity <= 1
    # Same ids, labels and codes, in the same order: types are per service code, never renumbered.
    assert [(t.type_id, t.label, t.service_code, t.status) for t in refined] == \
        [(t.type_id, t.label, t.service_code, t.status) for t in types]
    # Posts the catalog already typed keep their type.
    known = embedder.encode(["huge pothole on Halsted, almost lost a tire", "street light out on our block all week"])
    assert [a for a, _ in assign_types(known, refined, 0.45, classifier=classifier)] == ["svc-pot", "svc-sl"]


def test_the_classifier_waits_for_enough_examples(history):
    assert ServiceClassifier.train(history, min_per_service=11) is None  # no service has 11 requests
    two = ServiceClassifier.train(history, min_per_service=10, services={"POT", "SL"})
    assert two.classes == ("POT", "SL")
    assert np.allclose(two.predict_proba(history.embeddings[:3]).sum(axis=1), 1)


@pytest.mark.parametrize("n_history, n_positive, rows, weight", [
    (0, 100, 0, 0.0),
    (50, 100, 50, 1.0),  # a small history counts in full
    (400, 100, 400, 0.25),  # a large one weighs as much as the seeds' positives together
    (10_000, 100, MAX_HISTORY, 100 / MAX_HISTORY),  # and is sampled evenly beyond MAX_HISTORY rows
])
def test_history_weights(n_history, n_positive, rows, weight):
    picked, w = history_weights(n_history, n_positive)
    assert len(picked) == rows and w == pytest.approx(weight)
    assert len(set(picked.tolist())) == rows and (rows == 0 or picked[-1] == n_history - 1)


def test_relevance_with_a_large_history_stays_a_calibrated_probability(embedder, history):
    big = np.repeat(history.embeddings, 60, axis=0)  # 2,400 requests: far more than the seeds
    model = RelevanceModel.from_seeds(embedder, [s.service_name for s in SERVICES], history=big)
    posts = embedder.encode(["there are rats all over the alley behind our building",
                             "the street light on our corner has been dark for a week",
                             "great game last night, what a finish", "coffee and a croissant to start the day"])
    p = model.predict_proba(posts)
    assert np.all((p >= 0) & (p <= 1))
    assert p[0] > 0.5 and p[1] > 0.5 and p[2] < 0.5 and p[3] < 0.5  # chatter is not swamped into reports


# --- social311 eval: the "+ 311 history" rows ---------------------------------------------

def test_eval_history_is_the_residents_words_masked(tmp_path):
    import pandas as pd

    from social311.models.evaluation.history import BOILERPLATE_MIN_COUNT, publicstuff_history

    boiler = "This request was submitted to NYC 311 without a description."
    rows = [("Pothole in New York", boiler)] * BOILERPLATE_MIN_COUNT + [
        ("Pothole", "MAJOR pothole in front of the bus stop, call 212-555-0199"), ("Noise Complaint", ""),
        ("Noise Complaint in New York", "loud music every night from the bar")]
    (tmp_path / "nyc").mkdir()
    pd.DataFrame(rows, columns=["Title", "Description"]).to_csv(tmp_path / "nyc" / "publicstuff_nyc_2010_2018.csv", index=False)
    texts, titles, _ = publicstuff_history(tmp_path)
    assert texts == ["MAJOR pothole in front of the bus stop, call [phone]", "loud music every night from the bar"]
    assert titles == ["Pothole", "Noise Complaint"]
    assert publicstuff_history(tmp_path / "absent") is None


def test_eval_rows_with_history_score_the_same_test_rows(embedder, history):
    from social311.models.evaluation.datasets import LabelledSet
    from social311.models.evaluation.history import TYPING_MODELS, EvalHistory, typing_rows, zero_shot_rows

    posts = ["rats everywhere in the alley behind the restaurant", "the street light on my corner is out",
             "what a great game last night", "lovely sunny morning at the lake"] * 3
    vectors, labels = embedder.encode(posts), np.array([1, 1, 0, 0] * 3)
    splits = [(np.arange(0), np.arange(len(posts)))]
    scores, ranking = zero_shot_rows(embedder, vectors, labels, splits, EvalHistory(None, history.embeddings, ["Pothole"]))
    assert set(scores) == set(ranking) == {"zero-shot seeds + catalog", "zero-shot seeds + catalog + 311 history"}
    assert all(0 <= r["auc"] <= 1 for r in ranking.values())
    codes = sorted(HISTORY)
    data = LabelledSet("toy", "service_type", [t for c in codes for t in HISTORY[c]],
                       np.array([k for k, c in enumerate(codes) for _ in HISTORY[c]]), None,
                       class_names=tuple(s.service_name for c in codes for s in SERVICES if s.service_code == c))
    order = np.arange(len(data.texts))
    split = [(order[order % 2 == 0], order[order % 2 == 1])]  # half of each service is the history
    typed, untyped = typing_rows(embedder, data, embedder.encode(data.texts), split)
    assert list(typed) == list(TYPING_MODELS)
    assert typed[TYPING_MODELS[2]].macro_f1 > typed[TYPING_MODELS[0]].macro_f1  # history helps typing
    assert untyped[TYPING_MODELS[2]] <= untyped[TYPING_MODELS[0]]
