"""Issue types: services as centroids, assignment, and stable candidate types from clustering."""

from __future__ import annotations

import numpy as np
import pytest

from social311.models.embeddings import get_embedder
from social311.models.issue_types import (
    assign_types, candidate_id, propose_candidates, service_type_ids, service_types, slug,
)
from social311.models.terms import distinctive_terms
from social311.records import Service

# Shaped like a sandbox Open311 catalog: integer-ish and free-form codes, empty keywords.
SERVICES = [
    Service(service_code="POT-01", service_name="Pothole in Street", description="Report a pothole or damaged road surface"),
    Service(service_code="SL 2", service_name="Street Light Out", description="A street light or alley light is dark or flickering",
            keywords=("streetlight", "lamp")),
    Service(service_code="4fd3b167e750846744000005", service_name="Garbage Cart / Missed Pickup",
            description="Trash was not collected or a garbage cart is damaged"),
    Service(service_code="GRAF", service_name="Graffiti Removal", description="Paint or tags on public property"),
]

POSTS = {
    "svc-pot-01": ["there's a crater in the road on 5th, almost wrecked my car",
                   "huge hole in the pavement by the bus stop"],
    "svc-sl-2": ["the lamp post outside my house has been dark all week", "street lights are out on our whole block"],
    "svc-4fd3b167e750846744000005": ["nobody collected our trash this week, bins overflowing",
                                     "garbage truck skipped the alley again"],
}

SCOOTERS = ["rental scooters dumped across the sidewalk again", "pile of e-scooters blocking the sidewalk ramp",
            "abandoned scooters lying all over the sidewalk by the station", "three scooters knocked over blocking the sidewalk"]


@pytest.fixture(scope="module")
def types():
    return service_types(SERVICES, get_embedder())


def test_service_types_have_stable_ids_and_map_to_codes(types):
    assert [(t.type_id, t.service_code, t.status) for t in types] == [
        ("svc-pot-01", "POT-01", "mapped"), ("svc-sl-2", "SL 2", "mapped"),
        ("svc-4fd3b167e750846744000005", "4fd3b167e750846744000005", "mapped"), ("svc-graf", "GRAF", "mapped"),
    ]
    assert all(t.centroid.shape == (384,) and abs(np.linalg.norm(t.centroid) - 1) < 1e-5 for t in types)
    again = service_types(list(reversed(SERVICES)) + [SERVICES[0]], get_embedder())
    assert {t.type_id for t in again} == {t.type_id for t in types}


@pytest.mark.parametrize("type_id, texts", list(POSTS.items()))
def test_posts_map_to_the_right_service(types, type_id, texts):
    assigned = assign_types(get_embedder().encode(texts), types, min_similarity=0.25)
    assert [a for a, _ in assigned] == [type_id] * len(texts)


def test_below_threshold_gets_no_type(types):
    ((type_id, score),) = assign_types(get_embedder().encode(["pothole in the road"]), types, min_similarity=0.99)
    assert type_id is None and 0 < score < 0.99
    assert assign_types(np.zeros((2, 384), np.float32), [], 0.2) == [(None, 0.0), (None, 0.0)]


@pytest.mark.parametrize(
    "code, expected", [("POT-01", "pot-01"), ("SL 2", "sl-2"), ("  Street/Light  ", "street-light"), ("!!", "x")]
)
def test_slug(code, expected):
    assert slug(code) == expected


def test_colliding_slugs_get_distinct_ids():
    ids = service_type_ids([Service(service_code="a b", service_name="x"), Service(service_code="A-B", service_name="y")])
    assert len(set(ids.values())) == 2 and all(i.startswith("svc-a-b-") for i in ids.values())


def _candidates(texts, ids, existing=()):
    return propose_candidates(get_embedder().encode(texts), texts, ids, list(existing), min_cluster_size=3,
                              distance_threshold=0.5)


def test_candidate_found_labelled_and_stable_across_runs(types):
    noise = ["my favourite band is touring", "what time is brunch"]
    first = _candidates(SCOOTERS[:3] + noise, ["t:05", "t:07", "t:09", "t:10", "t:11"], types)
    assert len(first) == 1
    cand = first[0]
    assert cand.type_id == candidate_id(["t:07", "t:05", "t:09"]) and cand.status == "candidate"
    assert cand.service_code is None and "scooters" in cand.top_terms[:3] and "scooters" in cand.label
    # A later run sees the same posts plus more: same id, and no duplicate once it exists.
    more = SCOOTERS + noise + ["lovely weather today"]
    ids = ["t:05", "t:07", "t:09", "t:12", "t:10", "t:11", "t:13"]
    assert [c.type_id for c in _candidates(more, ids, types)] == [cand.type_id]
    assert _candidates(more, ids, [*types, cand]) == []


def test_cluster_close_to_an_existing_type_is_not_a_candidate(types):
    texts = ["pothole on my street", "big pothole in the road", "another pothole on the avenue"]
    assert _candidates(texts, ["a", "b", "c"], types) == []
    assert len(_candidates(texts, ["a", "b", "c"], [])) == 1


def test_too_few_posts_and_length_mismatch():
    assert _candidates(SCOOTERS[:2], ["a", "b"]) == []
    with pytest.raises(ValueError):
        propose_candidates(np.zeros((2, 384)), ["a"], ["a", "b"], [])


def test_distinctive_terms_prefer_group_words_over_shared_ones():
    terms = distinctive_terms(["scooter sidewalk city city", "weather sunny city city", "https://x.co @someone the and"])
    assert terms[0][:2] == ["scooter", "sidewalk"] and terms[1][:2] == ["sunny", "weather"] and terms[2] == []


def test_type_ids_survive_a_catalog_that_grows(types):
    # A later run: the city added a service (listed first) — no earlier type is renumbered.
    added = Service(service_code="TREE", service_name="Tree Trimming", description="overgrown branches")
    later = service_types([added, *SERVICES], get_embedder())
    ids = {t.service_code: t.type_id for t in later}
    assert {t.service_code: t.type_id for t in types}.items() <= ids.items()
    assert ids["TREE"] == "svc-tree"


def test_reviewed_examples_pull_a_centroid_without_renaming_it(types):
    from social311.models.issue_types import with_examples

    post = get_embedder().encode(["the lamp post outside number 12 keeps blinking on and off"])
    light = next(t for t in types if t.service_code == "SL 2")
    moved = with_examples(types, {"SL 2": np.repeat(post, 3, axis=0)})
    after = next(t for t in moved if t.service_code == "SL 2")
    assert [t.type_id for t in moved] == [t.type_id for t in types]
    assert float(after.centroid @ post[0]) > float(light.centroid @ post[0])
    assert abs(np.linalg.norm(after.centroid) - 1) < 1e-5
    assert all(a is b for a, b in zip(moved, types) if a.service_code != "SL 2")  # others untouched
    assert with_examples(types, {}) == types


def _blobs(n: int, centres: int = 40, seed: int = 0) -> np.ndarray:
    """``n`` unit vectors around ``centres`` random directions (384 dims), in a shuffled order."""
    rng = np.random.default_rng(seed)
    middle = rng.normal(size=(centres, 384))
    vectors = middle[rng.integers(0, centres, n)] + 0.4 * rng.normal(size=(n, 384))  # cosine ~0.93 to its centre
    return (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)


def test_candidate_clustering_memory_is_linear_in_the_posts():
    import tracemalloc

    vectors = _blobs(20_000)
    ids = [f"p{k:05d}" for k in range(len(vectors))]
    tracemalloc.start()
    try:
        found = propose_candidates(vectors, ["scooter sidewalk"] * len(ids), ids, [], max_posts=len(ids))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(found) == 40  # one candidate per blob
    # A pairwise distance matrix of 20,000 posts is 1.6 GB (condensed, float64); the vectors are 31 MB.
    assert peak < 150 * 2**20, f"peak {peak / 2**20:.0f} MB"


def test_candidate_ids_stay_when_later_posts_are_appended():
    vectors = _blobs(3_000, centres=25, seed=1)
    ids = [f"p{k:05d}" for k in range(len(vectors))]
    texts = ["pile of scooters on the sidewalk"] * len(ids)
    before = {c.type_id for c in propose_candidates(vectors[:2_500], texts[:2_500], ids[:2_500], [], max_posts=3_000)}
    after = {c.type_id for c in propose_candidates(vectors, texts, ids, [], max_posts=3_000)}
    assert len(before) == 25 and before == after


def test_typing_model_fits_on_used_columns_only_and_is_the_same_model():
    """The typing regression skips the hash columns no training row uses: same model, less memory."""
    from social311.models.combined import CombinedModel
    from social311.models.issue_types import _TypingModel

    rng = np.random.default_rng(0)
    words = "pothole street light broken water leak graffiti trash bin noise tree fallen sign".split()
    labels = rng.integers(0, 4, 120).astype(str)
    texts = [" ".join(rng.choice(words, 5)) + f" code{c}" for c in labels]
    vectors = rng.normal(size=(120, 384)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    # 2^14 buckets a block: most columns unused by 120 short texts, and the full fit stays quick here.
    full = CombinedModel(folds=3, n_features=2 ** 14).fit(texts, vectors, labels)
    used = _TypingModel(folds=3, n_features=2 ** 14).fit(texts, vectors, labels)
    assert used.coef.shape == full.coef.shape and used.coef.nnz < used.coef.shape[0] * used.coef.shape[1] / 4
    assert np.isclose(used.calibration.temperature, full.calibration.temperature, rtol=1e-4)
    assert np.allclose(used.predict_proba(texts, vectors), full.predict_proba(texts, vectors), atol=1e-6)
