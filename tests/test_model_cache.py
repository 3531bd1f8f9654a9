"""Models and centroids cached by the hash of their inputs (orchestration/model_cache.py), real model."""

from __future__ import annotations

import numpy as np
import pytest

from social311.models.embeddings import get_embedder
from social311.models.issue_types import service_types as embed_service_types
from social311.models.relevance import city_model
from social311.orchestration import model_cache
from social311.records import Service

SERVICES = [
    Service(service_code="POT-01", service_name="Pothole in Street", description="Report a pothole or damaged road surface"),
    Service(service_code="SL 2", service_name="Street Light Out", description="A street light is dark", keywords=("lamp",)),
]


class CountingEmbedder:
    """The real embedder, counting how many texts it was asked to embed."""

    def __init__(self) -> None:
        self.inner = get_embedder()
        self.model_name = self.inner.model_name
        self.texts = 0

    def encode(self, texts, **kwargs):
        self.texts += len(texts)
        return self.inner.encode(texts, **kwargs)


@pytest.fixture()
def embedder():
    return CountingEmbedder()


def _no_labels():
    return np.zeros((0, 384), dtype=np.float32), np.zeros(0, dtype=int)


def test_relevance_model_reused_until_an_input_changes(tmp_path, embedder):
    db = tmp_path / "city.duckdb"
    texts = ["Pothole in Street. Report a pothole"]
    h_texts = ["pothole reported at 5th and main", "street light out on elm"]
    history = (h_texts, embedder.inner.encode(h_texts))
    first, hit = model_cache.city_relevance_model(db, embedder, texts, history=history)
    assert not hit and embedder.texts > 0
    assert first.trained_on["starting_model"]  # the shipped prior is re-attached on the read
    embedded = embedder.texts
    again, hit = model_cache.city_relevance_model(db, embedder, texts, history=history)
    assert hit and embedder.texts == embedded  # nothing embedded, nothing trained
    probe_texts = ["huge pothole on my street", "lovely brunch today"]
    probe = embedder.inner.encode(probe_texts)
    assert np.allclose(again.predict_proba(probe_texts, probe), first.predict_proba(probe_texts, probe))
    # A reviewer's label is a new input: a new model, close to one trained from scratch
    # (the stored coefficients are float16).
    reviewed = ["the bins were not collected"]
    labelled = (reviewed, embedder.inner.encode(reviewed), np.array([1]))
    changed, hit = model_cache.city_relevance_model(db, embedder, texts, labelled=labelled, history=history)
    assert not hit
    fresh = city_model(embedder.inner, texts, labelled=labelled, history=history)
    assert np.allclose(changed.predict_proba(probe_texts, probe), fresh.predict_proba(probe_texts, probe), atol=0.01)
    assert len(list(model_cache.cache_dir(db).glob("cityrelevance-*.npz"))) == 1  # only the latest is kept


def test_damaged_cache_file_is_recomputed(tmp_path, embedder):
    db = tmp_path / "city.duckdb"
    model_cache.city_relevance_model(db, embedder, [])
    (path,) = model_cache.cache_dir(db).glob("cityrelevance-*.npz")
    for damage in (b"{not a model", path.read_bytes()[:200]):  # not a zip; a zip cut short
        path.write_bytes(damage)
        model, hit = model_cache.city_relevance_model(db, embedder, [])
        assert not hit and model.coef is not None and path.exists()


def test_catalog_centroids_cached_by_catalog(tmp_path, embedder):
    db = tmp_path / "city.duckdb"
    first, hit = model_cache.service_types(db, SERVICES, embedder)
    assert not hit
    embedded = embedder.texts
    again, hit = model_cache.service_types(db, SERVICES, embedder)
    assert hit and embedder.texts == embedded
    assert [t.type_id for t in again] == [t.type_id for t in first]
    assert all(np.allclose(a.centroid, b.centroid) and a.top_terms == b.top_terms for a, b in zip(again, first))
    grown = [*SERVICES, Service(service_code="GRAF", service_name="Graffiti Removal", description="Paint on walls")]
    more, hit = model_cache.service_types(db, grown, embedder)
    assert not hit and [t.type_id for t in more] == [t.type_id for t in embed_service_types(grown, embedder.inner)]


def test_type_classifier_cached_by_its_inputs_and_the_catalog_embedded_once(tmp_path, embedder):
    from social311.models.issue_types import TypeClassifier, assign_types

    db = tmp_path / "city.duckdb"
    h_texts = ["pothole reported at 5th and main", "street light out on elm", "deep pothole by the school"]
    h_codes = ["POT-01", "SL 2", "POT-01"]
    inputs = model_cache.TypingInputs(SERVICES, history_texts=h_texts, history_codes=h_codes,
                                      history_embeddings=embedder.inner.encode(h_texts))
    types, _ = model_cache.service_types(db, SERVICES, embedder)
    first, hit = model_cache.type_classifier(db, inputs, embedder)
    assert not hit and first is not None
    catalog = 3 * len(SERVICES)  # name + description and two templated phrasings a service
    assert embedder.texts == catalog, "the centroids and the classifier share one embedding of the catalog"
    again, hit = model_cache.type_classifier(db, inputs, embedder)
    assert hit and embedder.texts == catalog
    # The cached classifier types posts as one trained from scratch does.
    probe_texts = ["huge pothole on my street", "the lamp outside is dark", "lovely brunch today"]
    probe = embedder.inner.encode(probe_texts)
    fresh = TypeClassifier.train(SERVICES, embedder.inner, history_texts=h_texts, history_codes=h_codes,
                                 history_embeddings=inputs.history_embeddings)
    assert again.classes == fresh.classes
    assert np.allclose(again.predict_proba(probe, probe_texts), fresh.predict_proba(probe, probe_texts), atol=0.01)
    assert (assign_types(probe, types, 0.45, classifier=again, texts=probe_texts)
            == assign_types(probe, types, 0.45, classifier=fresh, texts=probe_texts))
    # A reviewer's label is a new input: trained again (the catalog is not embedded again).
    reviewed = (["paint sprayed on the lamp post"], ["SL 2"], embedder.inner.encode(["paint sprayed on the lamp post"]))
    relabelled = model_cache.TypingInputs(SERVICES, history_texts=h_texts, history_codes=h_codes,
                                          history_embeddings=inputs.history_embeddings, reviewed=reviewed)
    assert relabelled.key(embedder.model_name) != inputs.key(embedder.model_name)
    _, hit = model_cache.type_classifier(db, relabelled, embedder)
    assert not hit and embedder.texts == catalog
    assert len(list(model_cache.cache_dir(db).glob("typeclassifier-*.npz"))) == 1  # only the latest is kept
    # A damaged file is trained again, never trusted.
    (path,) = model_cache.cache_dir(db).glob("typeclassifier-*.npz")
    path.write_bytes(b"{not a model")
    model, hit = model_cache.type_classifier(db, relabelled, embedder)
    assert not hit and model is not None
