"""Language detection and routing: a post the model cannot read is never silently chatter."""

import pytest

from social311.models.language import CHATTER, REPORT, REVIEW, UNDETERMINED, Language, detect, detect_one, route


@pytest.mark.parametrize("text, code", [
    ("The street light on Main Street has been out for a week, please fix it", "en"),
    ("La farola de mi calle no funciona desde hace una semana, por favor arreglenla", "es"),
    ("Le lampadaire de ma rue ne fonctionne plus depuis une semaine, merci de le réparer", "fr"),
    ("Die Straßenlaterne in meiner Straße ist seit einer Woche kaputt, bitte reparieren", "de"),
    ("सड़क पर बहुत बड़ा गड्ढा है कृपया इसे ठीक करें", "hi"),
    ("lol", UNDETERMINED),                                # too short to tell
    ("@cityhall #pothole https://t.co/x 12345 ok", UNDETERMINED),  # only handles, tags, links and numbers
])
def test_detect(text, code):
    assert detect_one(text).code == code


def test_detect_keeps_order_and_reports_confidence():
    found = detect(["the bins were not collected on our street again today", "el contenedor de basura está lleno otra vez"])
    assert [f.code for f in found] == ["en", "es"] and all(0.9 <= f.confidence <= 1 for f in found)


@pytest.mark.parametrize("relevance, language, expected", [
    (0.9, Language("es", 0.99), REPORT),       # scored as a report: filed like any other
    (0.2, Language("es", 0.99), REVIEW),       # the model cannot read it: a person looks, not chatter
    (0.2, Language("en", 0.99), CHATTER),
    (0.2, Language(UNDETERMINED, 0.4), CHATTER),  # unsure: treated as readable
    (0.5, Language("hi", 0.95), REPORT),       # the threshold itself is a report
])
def test_route(relevance, language, expected):
    assert route(relevance, language, threshold=0.5) == expected


def test_route_with_a_multilingual_model_reads_more_languages():
    assert route(0.2, Language("es", 0.99), 0.5, languages=("en", "es")) == CHATTER
