"""The listening plan: validation, and place terms derived from a real city's street names."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from social311.integrations.sources.listening import ListeningPlan, derive_place_terms


def test_plan_normalises_and_refuses_bad_entries():
    plan = ListeningPlan(hashtags=["#Chicago311", "pothole"], subreddits=["r/chicago"], languages=["en", "es"])
    assert plan.hashtags == ("Chicago311", "pothole") and plan.subreddits == ("chicago",)
    for bad in ({"hashtags": ["two words"]}, {"subreddits": ["x"]}, {"languages": ["English"]},
                {"accounts": ["not a handle"]}, {"keyword": ["typo"]}):
        with pytest.raises(ValidationError):
            ListeningPlan(**bad)


def test_language_filter_keeps_unknown():
    plan = ListeningPlan(languages=["es"])
    assert plan.keeps_language("es") and plan.keeps_language("es-MX") and plan.keeps_language(None)
    assert not plan.keeps_language("en")


def test_place_terms_from_real_chicago_streets(shared_data):
    path = shared_data / "chicago" / "chicago_intersections.geojson"
    if not path.is_file():
        pytest.skip(f"{path} not found")
    names = []
    for feature in json.loads(path.read_text())["features"]:
        names += [feature["properties"].get("street_1"), feature["properties"].get("street_2")]
    terms = derive_place_terms(names, limit=300)
    assert len(terms) == 300
    lowered = {t.lower() for t in terms}
    # "N HALSTED ST" and "S HALSTED ST" are one street; directions and bare types never a term.
    assert "halsted st" in lowered and "n halsted st" not in lowered
    assert not lowered & {"st", "ave", "n", "s", "street"}
    assert all(len(t) >= 3 for t in terms)
    plan = ListeningPlan(keywords=["pothole"], place_terms=["The Loop"], max_place_terms=50).with_places(names)
    assert plan.place_terms[0] == "The Loop" and len(plan.place_terms) == 51
    assert ListeningPlan(derive_place_terms=False).with_places(names).place_terms == ()
