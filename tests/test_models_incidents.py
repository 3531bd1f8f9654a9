"""Merging posts into incidents: every rule, table-driven, with hand-made embeddings."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta, timezone

import numpy as np
import pytest

from social311.models.geo import haversine_m
from social311.models.incidents import PostForMerge, incident_id, merge_posts

T0 = datetime(2024, 5, 1, 12, tzinfo=timezone.utc)
LAT, LON = 41.8820, -87.6278
# One degree of latitude is ~111.2 km, so this many degrees is one metre northwards.
M_PER_DEG = 111_195.0
SETTINGS = dict(radius_m=250, window_hours=72, text_similarity=0.5, unlocated_text_similarity=0.8)


def vec(cos_to_base: float) -> np.ndarray:
    """A unit vector whose cosine with ``vec(1.0)`` is ``cos_to_base``."""
    return np.array([cos_to_base, np.sqrt(max(0.0, 1 - cos_to_base**2)), 0, 0], dtype=np.float32)


def post(pid, order=0, *, hours=0.0, type_id="svc-pothole", north_m=0.0, located=True, cos=1.0,
         repost_of=None, relevance=1.0, loc_conf=0.9, type_sim=0.6):
    return PostForMerge(
        post_id=pid, seen_order=order, created_at=T0 + timedelta(hours=hours), type_id=type_id,
        lat=LAT + north_m / M_PER_DEG if located else None, lon=LON if located else None,
        embedding=vec(cos), repost_of=repost_of, relevance=relevance,
        location_confidence=loc_conf if located else 0.0, type_similarity=type_sim,
    )


def groups(incidents):
    return sorted(sorted(inc.post_ids) for inc in incidents)


@pytest.mark.parametrize(
    "second, merged, reason",
    [
        (post("b", 1, north_m=100), True, "near+similar"),
        (post("b", 1, north_m=240), True, "near+similar"),  # just inside 250 m
        (post("b", 1, north_m=260), False, None),  # just outside
        (post("b", 1, hours=71), True, "near+similar"),
        (post("b", 1, hours=73), False, None),  # outside the 72 h window
        (post("b", 1, hours=-73), False, None),  # window is symmetric
        (post("b", 1, type_id="svc-streetlight"), False, None),  # different types never merge
        (post("b", 1, cos=0.55), True, "near+similar"),
        (post("b", 1, cos=0.45), False, None),  # same place, different words
        (post("b", 1, located=False, cos=0.85), True, "text-only"),
        (post("b", 1, located=False, cos=0.7), False, None),  # stricter bar without a location
        (post("b", 1, north_m=5000, cos=0.95), False, None),  # far apart located posts need the radius
        (post("b", 1, loc_conf=0.3, north_m=0, cos=0.7), False, None),  # a place-box centre is no location
        (post("b", 1, loc_conf=0.3, north_m=0, cos=0.85), True, "text-only"),
        (post("b", 1, type_id="svc-streetlight", repost_of="a", north_m=9000, hours=200, cos=0.0), True, "repost"),
        (post("b", 1, type_id=None), False, None),  # no type is not the same type
    ],
)
def test_pair_rules(second, merged, reason):
    incidents = merge_posts([post("a", 0), second], **SETTINGS)
    assert len(incidents) == (1 if merged else 2)
    if merged:
        assert incidents[0].merge_reasons == {"a": "anchor", "b": reason}


def test_untyped_posts_merge_among_themselves():
    incidents = merge_posts([post("a", 0, type_id=None), post("b", 1, type_id=None)], **SETTINGS)
    assert groups(incidents) == [["a", "b"]] and incidents[0].type_id is None


def test_distance_helper_matches_test_geometry():
    assert haversine_m(LAT, LON, LAT + 240 / M_PER_DEG, LON) == pytest.approx(240, abs=1)


def test_merges_are_transitive_and_reasons_follow_the_walk():
    posts = [post("a", 0), post("b", 1, north_m=200), post("c", 2, north_m=400), post("r", 3, repost_of="c")]
    (inc,) = merge_posts(posts, **SETTINGS)
    assert inc.post_ids == ("a", "b", "c", "r")
    assert inc.merge_reasons == {"a": "anchor", "b": "near+similar", "c": "near+similar", "r": "repost"}


def test_id_is_stable_when_a_later_post_joins():
    first = merge_posts([post("p2", 5), post("p9", 7, north_m=50)], **SETTINGS)
    later = merge_posts([post("p2", 5), post("p9", 7, north_m=50), post("p1", 9, north_m=20)], **SETTINGS)
    assert [i.incident_id for i in first] == [i.incident_id for i in later] == [incident_id("p2")]
    assert later[0].incident_id == "inc-" + __import__("hashlib").sha1(b"p2").hexdigest()[:12]


def test_anchor_tie_on_seen_order_breaks_by_post_id():
    (inc,) = merge_posts([post("zz", 1), post("aa", 1, north_m=10)], **SETTINGS)
    assert inc.incident_id == incident_id("aa") and inc.merge_reasons["aa"] == "anchor"


def test_location_is_the_best_located_member_and_ties_average():
    posts = [post("a", 0, loc_conf=0.9), post("b", 1, north_m=100, loc_conf=0.95), post("c", 2, north_m=200, loc_conf=0.95)]
    (inc,) = merge_posts(posts, **SETTINGS)
    assert inc.lat == pytest.approx(LAT + 150 / M_PER_DEG) and inc.lon == pytest.approx(LON)


def test_unlocated_incident_has_no_point_and_lower_confidence():
    unlocated = merge_posts([post("a", 0, located=False)], **SETTINGS)[0]
    located = merge_posts([post("a", 0)], **SETTINGS)[0]
    assert (unlocated.lat, unlocated.lon) == (None, None)
    assert 0 <= unlocated.confidence < located.confidence <= 1


@pytest.mark.parametrize(
    "relevance, loc_conf, type_sim, expected",
    [(1.0, 0.9, 0.6, 1.0 * 0.95 * 0.8), (0.5, 0.9, 0.6, 0.5 * 0.95 * 0.8), (1.0, 0.9, 1.5, 0.95), (0.0, 0.9, 0.6, 0.0)],
)
def test_confidence_formula(relevance, loc_conf, type_sim, expected):
    (inc,) = merge_posts([post("a", 0, relevance=relevance, loc_conf=loc_conf, type_sim=type_sim)], **SETTINGS)
    assert inc.confidence == pytest.approx(expected)


def test_representative_is_closest_to_centroid_and_times_span_members():
    posts = [post("a", 0, cos=0.6), post("b", 1, hours=5, cos=0.9), post("c", 2, hours=10, cos=0.99)]
    (inc,) = merge_posts(posts, **{**SETTINGS, "text_similarity": 0.5})
    assert inc.representative_post_id == "b"
    assert (inc.first_seen_at, inc.last_seen_at) == (T0, T0 + timedelta(hours=10))


def test_repost_of_unknown_original_stands_alone_and_is_merged_normally():
    incidents = merge_posts([post("a", 0), post("b", 1, repost_of="gone", north_m=30)], **SETTINGS)
    assert groups(incidents) == [["a", "b"]] and incidents[0].merge_reasons["b"] == "near+similar"


def test_empty_input_and_duplicate_ids():
    assert merge_posts([], **SETTINGS) == []
    with pytest.raises(ValueError):
        merge_posts([post("a"), post("a")], **SETTINGS)


def test_existing_incidents_keep_their_posts_and_ids_and_are_never_merged_by_a_bridge():
    # a and c are 400 m apart: two incidents. Then b arrives between them, near both.
    a, c = post("a", 0, north_m=0), post("c", 1, north_m=400)
    first = merge_posts([a, c], **SETTINGS)
    assert groups(first) == [["a"], ["c"]]
    existing = {p: inc.incident_id for inc in first for p in inc.post_ids}
    b = post("b", 2, north_m=200)
    second = merge_posts([a, c, b], existing=existing, **SETTINGS)
    assert groups(merge_posts([a, c, b], **SETTINGS)) == [["a", "b", "c"]], "without history the bridge merges all"
    assert groups(second) == [["a", "b"], ["c"]]
    assert {inc.incident_id for inc in second} == set(existing.values())


def test_an_existing_incident_split_by_new_settings_keeps_its_id_once():
    a, b = post("a", 0), post("b", 1, north_m=200)
    (old,) = merge_posts([a, b], **SETTINGS)
    split = merge_posts([a, b], existing={"a": old.incident_id, "b": old.incident_id}, **dict(SETTINGS, radius_m=100))
    assert len(split) == 2
    assert [inc.incident_id for inc in split].count(old.incident_id) == 1


def test_an_unlocated_post_never_bridges_two_distant_places():
    # u (no location) reads like both a and c, which are 3 km apart: it may join one, not both.
    a, c = post("a", 0, north_m=0), post("c", 2, north_m=3000)
    u = post("u", 1, located=False, cos=0.9)
    incidents = merge_posts([a, u, c], **SETTINGS)
    assert groups(incidents) == [["a", "u"], ["c"]]


def test_an_unlocated_post_joins_a_place_within_the_radius_on_both_sides():
    a, c = post("a", 0, north_m=0), post("c", 2, north_m=200)
    u = post("u", 1, located=False, cos=0.9)
    assert groups(merge_posts([a, u, c], **SETTINGS)) == [["a", "c", "u"]]


def _dup(pid, order, text, *, hours=0.0, type_id="svc-pothole", north_m=0.0, loc_conf=0.9, cos=1.0):
    from dataclasses import replace

    return replace(post(pid, order, hours=hours, type_id=type_id, north_m=north_m, loc_conf=loc_conf, cos=cos), text=text)


@pytest.mark.parametrize("second, merged", [
    # Same text, same point, same type, inside the window: one report sent twice, whatever the cosine.
    (_dup("b", 1, "Deep  POTHOLE by the school", hours=48, cos=0.0), True),
    # Another type, or months later: a repeat of a text at a place is not one report sent twice.
    (_dup("b", 1, "deep pothole by the school", hours=24 * 400, cos=0.0), False),
    (_dup("b", 1, "deep pothole by the school", type_id="svc-light", cos=0.0), False),
    (_dup("b", 1, "deep pothole by the school", type_id=None, cos=0.0), False),
    # Another text, another point, or a point too vague to trust: the ordinary rules decide.
    (_dup("b", 1, "deep pothole by the gym", hours=24 * 400, cos=0.0), False),
    (_dup("b", 1, "deep pothole by the school", north_m=30, hours=24 * 400, cos=0.0), False),
    (_dup("b", 1, "deep pothole by the school", loc_conf=0.3, hours=24 * 400, cos=0.0), False),
])
def test_exact_duplicates_at_one_point_merge(second, merged):
    first = _dup("a", 0, "deep pothole by the school")
    incidents = merge_posts([first, second], **SETTINGS)
    assert (len(incidents) == 1) is merged
    if merged:
        assert incidents[0].merge_reasons == {"a": "anchor", "b": "duplicate"}


def test_a_split_never_hands_out_an_id_twice_and_the_old_anchor_keeps_it():
    # Run 1: q and p (near, similar) are one incident anchored on q; a was untyped then.
    q, p = post("q", 1), post("p", 2, north_m=50)
    (old,) = merge_posts([q, p], **SETTINGS)
    assert old.incident_id == incident_id("q")
    # Run 2: a earlier than q got a type, and p turns out to be a repost of a: p rides on a and
    # no longer meets q. The part {a, p} sorts first, yet q (the old anchor) keeps the id, and
    # the other part gets an id of its own (before: both parts were "inc-" + sha1("q")).
    a = post("a", 0, type_id="cand-7", north_m=9000)
    p2 = post("p", 2, north_m=50, repost_of="a")
    split = merge_posts([a, q, p2], existing={"q": old.incident_id, "p": old.incident_id}, **SETTINGS)
    ids = [inc.incident_id for inc in split]
    assert len(ids) == len(set(ids)) == 2
    assert {inc.incident_id: sorted(inc.post_ids) for inc in split} == {old.incident_id: ["q"], incident_id("a"): ["a", "p"]}


def test_a_derived_id_held_by_another_incident_is_not_reused():
    # b's derived id already names an earlier incident (it was that incident's anchor, then moved).
    a, b = post("a", 0), post("b", 1, north_m=5000)
    split = merge_posts([a, b], existing={"a": incident_id("b")}, **SETTINGS)
    ids = [inc.incident_id for inc in split]
    assert len(set(ids)) == 2 and incident_id("b") in ids


def test_a_repost_stays_merged_whatever_the_gap_type_or_caps():
    a = _dup("a", 0, "deep pothole by the school")
    r = replace(post("r", 1, hours=24 * 400, type_id="svc-light", north_m=9000, cos=0.0, repost_of="a"), text="rt")
    (inc,) = merge_posts([a, r], **SETTINGS, max_posts=1, max_span_hours=1)
    assert inc.merge_reasons == {"a": "anchor", "r": "repost"}


STREETLIGHT = "Street Light Outage"


def _template(pid, order, days, *, north_m=0.0, text=STREETLIGHT, cos=1.0, type_id="svc-light"):
    return replace(post(pid, order, hours=24 * days, north_m=north_m, type_id=type_id, cos=cos), text=text)


@pytest.mark.parametrize("case, days, expected", [
    # The same templated text at one busy point every 2 days for 6 months: each pair is inside
    # the 72 h window, so without a cap the chain is one incident of 90 reports.
    ("no caps: one chain swallows the place", dict(), [90]),
    ("span cap 7 days", dict(max_span_hours=24 * 7), [4] * 22 + [2]),
    ("size cap 10", dict(max_posts=10), [10] * 9),
    ("both caps", dict(max_posts=3, max_span_hours=24 * 7), [3] * 30),
])
def test_templated_texts_at_one_busy_point_over_months(case, days, expected):
    posts = [_template(f"p{k:03d}", k, 2 * k) for k in range(90)]
    incidents = merge_posts(posts, **SETTINGS, **days)
    assert sorted((len(i.post_ids) for i in incidents), reverse=True) == expected, case
    cap = days.get("max_posts")
    if cap:
        from social311.models.incidents import oversized

        assert oversized(incidents, cap) == []
        assert oversized(incidents, cap - 1) != []  # the check fails on a cap the merge did not keep


@pytest.mark.parametrize("first_text, second_text, cos, type_names, min_points, merged", [
    # Two residents' texts: the cosine decides.
    ("pothole ate my tyre on 5th", "the lamp by the bakery is dark", 0.1, None, None, False),
    ("pothole ate my tyre on 5th", "deep hole in the road on 5th", 0.9, None, None, True),
    # A text equal to its type's name says nothing: type, place and time decide.
    ("Street Light Outage", "the lamp by the bakery is dark", 0.1, {"svc-light": "street light outage"}, None, True),
    ("Street Light Outage", "the lamp by the bakery is dark", 0.1, None, None, False),  # not known as a template
    # A text seen at 3 or more points of the batch is a form's template (two more points below).
    ("This request was submitted without a description.", "lamp dark", 0.1, None, 3, True),
    ("This request was submitted without a description.", "lamp dark", 0.1, None, 4, False),
])
def test_text_similarity_is_ignored_for_templates_only(first_text, second_text, cos, type_names, min_points, merged):
    posts = [_template("a", 0, 0, text=first_text), _template("b", 1, 1, text=second_text, cos=cos, north_m=50),
             _template("x", 2, 0, text=first_text, north_m=3000), _template("y", 3, 0, text=first_text, north_m=6000)]
    incidents = merge_posts(posts, **SETTINGS, type_names=type_names, template_min_points=min_points)
    together = any({"a", "b"} <= set(i.post_ids) for i in incidents)
    assert together is merged


def test_an_unlocated_template_never_merges_on_text():
    a = replace(_template("a", 0, 0), lat=None, lon=None, location_confidence=0.0)
    b = replace(_template("b", 1, 1), lat=None, lon=None, location_confidence=0.0)
    names = {"svc-light": STREETLIGHT}
    assert len(merge_posts([a, b], **SETTINGS, type_names=names)) == 2
    assert len(merge_posts([a, b], **SETTINGS)) == 1  # resident text (not a known template): cosine 1.0 merges


@pytest.mark.parametrize("type_id, north_m, hours, merged", [
    ("svc-light", 40, 1, False),     # a streetlight is one pole: 30 m
    ("svc-light", 20, 1, True),
    ("svc-flood", 900, 1, True),     # a flood is a neighbourhood: 1 km
    ("svc-flood", 900, 100, False),  # ... over 48 h
    ("svc-pothole", 240, 71, True),  # other types: the defaults (250 m, 72 h)
    ("svc-pothole", 260, 1, False),
])
def test_per_type_radius_and_window(type_id, north_m, hours, merged):
    from social311.models.incidents import MergeRule

    rules = {"svc-light": MergeRule(radius_m=30, window_hours=72), "svc-flood": MergeRule(radius_m=1000, window_hours=48)}
    posts = [post("a", 0, type_id=type_id), post("b", 1, type_id=type_id, north_m=north_m, hours=hours)]
    assert (len(merge_posts(posts, **SETTINGS, rules=rules)) == 1) is merged


def test_options_from_thresholds_key_per_type_rules_by_service_code():
    from social311.config import Thresholds
    from social311.models.incidents import MergeRule, options_from

    t = Thresholds(merge_by_type={"SL-1": {"radius_m": 30, "window_hours": 24}, "GONE": {"radius_m": 5, "window_hours": 1}})
    options = options_from(t, {"SL-1": "svc-light"}, {"svc-light": "Street light out"})
    assert options["rules"] == {"svc-light": MergeRule(30, 24)}  # a code not in the catalog is ignored
    assert options["max_posts"] == 50 and options["type_names"] == {"svc-light": "Street light out"}
    posts = [post("a", 0, type_id="svc-light"), post("b", 1, type_id="svc-light", north_m=40)]
    assert len(merge_posts(posts, **SETTINGS, **options)) == 2
