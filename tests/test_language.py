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


def test_route_unreadable_sends_low_scoring_foreign_posts_to_review_with_a_reason():
    from social311.models.language import route_unreadable

    texts = ["La farola de mi calle no funciona desde hace una semana, por favor arreglenla",  # es, low: review
             "Watching the game tonight with my brother and his friends",                      # en, low: chatter
             "Le lampadaire de ma rue ne fonctionne plus depuis une semaine, merci",            # fr, high: report
             "ok",                                                                              # und, low: chatter
             "Streetlight broken on my street for a week now please fix it",                    # tagged es by the platform
             "Die Straßenlaterne in meiner Straße ist seit einer Woche kaputt, bitte"]          # tagged en: trusted
    routed = route_unreadable(texts, [0.1, 0.1, 0.9, 0.1, 0.2, 0.1], 0.5, tags=[None, None, None, None, "es", "en-GB"])
    assert [r.index for r in routed] == [0, 4]
    assert routed[0].language.code == "es" and "detected" in routed[0].reason and "relevance 0.10" in routed[0].reason
    assert routed[1].language.code == "es" and "platform tag" in routed[1].reason
    assert route_unreadable(texts, [0.1] * 6, 0.5, languages=("en", "es", "fr", "de")) == []  # a multilingual model


def test_post_signals_routes_an_unreadable_post_to_review_not_chatter(tmp_path):
    """The asset itself, on a real DuckDB with the real model: a Spanish report is kept for a person."""
    import dagster as dg

    from social311.orchestration.ml import post_signals
    from social311.orchestration.resources import CityResource
    from social311.warehouse import connect

    config = tmp_path / "city.yaml"
    config.write_text(f"city: Test\nduckdb_path: {tmp_path / 'w.duckdb'}\nembedding_backend: onnx-int8\n"
                      "sources: [{plugin: file_drop}]\ngis: {plugin: geojson}\n"
                      "ticketing: {plugin: open311, config: {endpoint: 'http://127.0.0.1:9/'}}\n")
    posts = [("p1", "Hay un bache enorme en la calle Mayor desde hace semanas, nadie lo arregla", None),
             ("p2", "Huge pothole on Main Street, two cars got flat tyres this morning", "en"),
             ("p3", "Great brunch with my friends this morning, the pancakes were amazing", None)]
    with connect(tmp_path / "w.duckdb") as con:
        con.execute("create table stg_social__posts (post_id varchar, post_text varchar, lang varchar, ingested_at timestamptz)")
        for pid, text, lang in posts:
            con.execute("insert into stg_social__posts values (?, ?, ?, now())", [pid, text, lang])
    result = dg.materialize([post_signals], resources={"city": CityResource(config_path=str(config))})
    assert result.success
    meta = result.asset_materializations_for_node("ml__post_signals")[0].metadata
    with connect(tmp_path / "w.duckdb", read_only=True) as con:
        signals = dict(con.execute("select post_id, is_report from ml.post_signals").fetchall())
        review = con.execute("select post_id, lang, reason from ml.language_review").fetchall()
    assert signals["p2"] is True and signals["p3"] is False
    # The Spanish report scores low (the model reads English), so it goes to review, not to chatter.
    assert signals["p1"] is False
    assert len(review) == 1 and review[0][:2] == ("p1", "es") and "not read by the relevance model" in review[0][2]
    assert meta["language_review"].value == 1
