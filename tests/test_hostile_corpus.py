"""The hostile corpus: bad input is quarantined with its reason or refused with a clear error.

Table-driven, one row per hostile input, across every stage issue 17 owns: post records (as a
drop-folder line), the ingest plausibility rules and edits (real DuckDB), the drop folder itself
(symlinks, FIFOs, files sorting before the cursor, truncated lines), the city config (YAML
bombs, encodings, shapes, missing secrets), personal-data masking and the screening of ready
incidents before the blocking check (real GX). Counts add up: posts in = stored + quarantined.
"""

from __future__ import annotations

import json
import os
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from social311.config import ConfigError, load_config, missing_secrets, require_secrets, safe_load_yaml
from social311.demo.generate import write_drop
from social311.integrations.sources.file_drop import FileDropConfig, FileDropSource
from social311.orchestration.ingest import post_limits, quarantine, store_posts
from social311.privacy import mask_personal_data
from social311.records import Post, PostLimits, implausible
from social311.warehouse import connect

KEY = "hostile-key"
NOW = datetime(2026, 12, 3, 12, 0, tzinfo=timezone.utc)
CITY_BBOX = (-87.94, 41.64, -87.52, 42.03)  # Chicago, (min_lon, min_lat, max_lon, max_lat)


def source(drop: Path, **extra) -> FileDropSource:
    return FileDropSource(FileDropConfig(drop_dir=str(drop), city_handles=["DemoCity311"], **extra), instance_name="feed")


def line(**fields) -> str:
    record = {"id": "1", "created_at": "2024-05-06T10:00:00Z", "user": {"handle": "resident1"},
              "text": "Pothole at State and Madison"}
    for key, value in fields.items():
        if value is _DROP:
            record.pop(key, None)
        else:
            record[key] = value
    return json.dumps(record, ensure_ascii=False, allow_nan=True)


_DROP = object()

# --- 1. Post records, one drop-folder line each: refused with the reason (substring) --------------

REFUSED_LINES = [
    # dates
    ("date-year-1-plus-1h", line(created_at="0001-01-01T00:30:00+01:00"), "created_at: Value error, date out of range"),
    ("date-year-9999-minus-1h", line(created_at="9999-12-31T23:30:00-01:00"), "created_at: Value error, date out of range"),
    ("date-no-timezone", line(created_at="2024-05-06T10:00:00"), "datetime must carry a timezone"),
    ("date-garbage", line(created_at="yesterday"), "created_at:"),
    ("date-null", line(created_at=None), "created_at:"),
    ("date-missing", line(created_at=_DROP), "created_at: Field required"),
    ("date-bool", line(created_at=True), "created_at:"),
    ("date-array", line(created_at=[2024, 5, 6]), "created_at:"),
    ("date-month-13", line(created_at="2024-13-06T10:00:00Z"), "created_at:"),
    ("date-feb-30", line(created_at="2024-02-30T10:00:00Z"), "created_at:"),
    # coordinates: types, finiteness, ranges, pairs
    ("lat-true", line(geo={"lat": True, "lon": -87.63}), "must be a number, not a boolean"),
    ("lon-false", line(geo={"lat": 41.88, "lon": False}), "must be a number, not a boolean"),
    ("lat-nan", '{"id": "1", "created_at": "2024-05-06T10:00:00Z", "text": "x", "geo": {"lat": NaN, "lon": -87.6}}',
     "must be a finite number"),
    ("lon-infinity", '{"id": "1", "created_at": "2024-05-06T10:00:00Z", "text": "x", "geo": {"lat": 41.8, "lon": Infinity}}',
     "must be a finite number"),
    ("lat-minus-infinity", '{"id": "1", "created_at": "2024-05-06T10:00:00Z", "text": "x", "geo": {"lat": -Infinity, "lon": 1}}',
     "must be a finite number"),
    ("lat-91", line(geo={"lat": 91, "lon": -87.63}), "less than or equal to 90"),
    ("lat-minus-91", line(geo={"lat": -91, "lon": -87.63}), "greater than or equal to -90"),
    ("lon-181", line(geo={"lat": 41.88, "lon": 181}), "less than or equal to 180"),
    ("lon-minus-200", line(geo={"lat": 41.88, "lon": -200}), "greater than or equal to -180"),
    ("lat-huge", line(geo={"lat": 1e308, "lon": 1}), "less than or equal to 90"),
    ("lat-string-word", line(geo={"lat": "north", "lon": -87.63}), "geo.lat:"),
    ("lat-object", line(geo={"lat": {"v": 1}, "lon": -87.63}), "geo.lat:"),
    ("lat-only", line(geo={"lat": 41.88}), "lat and lon must both be given"),
    ("lon-only", line(geo={"lon": -87.63}), "lat and lon must both be given"),
    ("null-island", line(geo={"lat": 0, "lon": 0}), "null-island"),
    ("geo-string", line(geo="41.88,-87.63"), "geo:"),
    # place boxes
    ("bbox-nan", '{"id": "1", "created_at": "2024-05-06T10:00:00Z", "text": "x", '
                 '"place": {"name": "C", "bbox": [NaN, 41, -87, 42]}}', "must be a finite number"),
    ("bbox-inverted-lon", line(place={"name": "C", "bbox": [-87, 41, -88, 42]}), "place_bbox must be"),
    ("bbox-inverted-lat", line(place={"name": "C", "bbox": [-88, 42, -87, 41]}), "place_bbox must be"),
    ("bbox-out-of-range", line(place={"name": "C", "bbox": [-500, 41, -87, 42]}), "place_bbox must be"),
    ("bbox-three-numbers", line(place={"name": "C", "bbox": [-88, 41, -87]}), "place.bbox.3: Field required"),
    ("bbox-bools", line(place={"name": "C", "bbox": [True, 41, -87, 42]}), "must be a number, not a boolean"),
    ("bbox-strings", line(place={"name": "C", "bbox": ["a", "b", "c", "d"]}), "place.bbox"),
    # text: invisible-only, empty, wrong type, too long
    ("text-zwsp-only", line(text="\u200b\u200b\u2060"), "text: empty after removing whitespace, control and invisible"),
    ("text-bidi-only", line(text="\u202e\u2066\u2069\u202c"), "text: empty after removing whitespace, control and invisible"),
    ("text-bom-only", line(text="\ufeff"), "empty after removing"),
    ("text-controls-only", line(text="\x00\x07\x1b"), "text: empty"),
    ("text-whitespace", line(text="   \n\t "), "text: empty"),
    ("text-missing", line(text=_DROP), "text: Field required"),
    ("text-null", line(text=None), "text:"),
    ("text-number", line(text=42), "text: Input should be a valid string"),
    ("text-list", line(text=["a"]), "text: Input should be a valid string"),
    ("text-too-long", line(text="a" * 10_001), "at most 10000 characters"),
    ("text-huge", line(text="pothole " * 100_000), "at most 10000 characters"),
    # field sizes and shapes
    ("lang-100k", line(lang="x" * 100_000), "lang: String should have at most 35 characters"),
    ("lang-not-a-tag", line(lang="en; drop table"), "not a language tag"),
    ("lang-number", line(lang=7), "lang: Input should be a valid string"),
    ("place-name-huge", line(place={"name": "n" * 5000}), "place_name: String should have at most 300"),
    ("repost-of-huge", line(repost_of="9" * 500), "repost_of: String should have at most 200"),
    ("reply-to-huge", line(reply_to="9" * 500), "reply_to: String should have at most 200"),
    ("id-huge", line(id="9" * 1000), "native_id: String should have at most 150"),
    ("id-empty", line(id=""), "id: String should have at least 1"),
    ("id-null", line(id=None), "id: Input should be a valid string"),
    ("id-bool", line(id=True), "id: Input should be a valid string"),
    ("id-float", line(id=1.5), "id: Input should be a valid string"),
    # URL schemes
    ("url-javascript", line(url="javascript:alert(1)"), "url: Value error, scheme refused"),
    ("url-javascript-upper", line(url="JavaScript:alert(document.cookie)"), "scheme refused"),
    ("url-javascript-padded", line(url="\u200b javascript:alert(1)"), "scheme refused"),
    ("url-data", line(url="data:text/html;base64,PHNjcmlwdD4="), "scheme refused"),
    ("url-file", line(url="file:///etc/passwd"), "scheme refused"),
    ("url-vbscript", line(url="vbscript:msgbox"), "scheme refused"),
    ("url-relative", line(url="/relative/path"), "scheme refused"),
    ("url-huge", line(url="https://x.org/" + "a" * 3000), "url: String should have at most 2048"),
    # not a record at all
    ("json-array", "[1, 2, 3]", "not a JSON object but a list"),
    ("json-string", '"just text"', "not a JSON object but a str"),
    ("json-number", "42", "not a JSON object but a int"),
    ("json-null", "null", "not a JSON object but a NoneType"),
    ("json-broken", '{"id": "1", "text": ', "not valid JSON"),
    ("json-deep", "[" * 100_000 + "]" * 100_000, "nested too deeply"),
    ("json-single-quotes", "{'id': '1'}", "not valid JSON"),
    ("json-trailing-garbage", line() + " trailing", "not valid JSON"),
    ("user-not-object", line(user="resident1"), "user:"),
]


@pytest.mark.parametrize(("case", "raw", "reason"), REFUSED_LINES, ids=[c[0] for c in REFUSED_LINES])
def test_hostile_line_is_quarantined_with_its_reason(tmp_path: Path, case: str, raw: str, reason: str) -> None:
    write_drop(tmp_path, [raw], "bad")
    result = source(tmp_path).fetch(None, pseudonym_key=KEY)
    assert result.posts == [], f"{case} was accepted"
    (reject,) = result.rejects
    assert reason in reject.reason, reject.reason
    assert reject.record_ref == "bad.jsonl:1"
    assert "\n" not in reject.reason and len(reject.reason) <= 1000
    assert len(reject.raw_excerpt) <= 200


# --- 2. Post records that are fine once normalised: stored, cleaned ------------------------------

ACCEPTED_LINES = [
    ("text-zwsp-inside", line(text="Pot\u200bhole at State"), lambda p: p.text == "Pothole at State"),
    ("text-rlo-override", line(text="\u202eetats ta elohtop"), lambda p: p.text == "etats ta elohtop"),
    ("text-isolates", line(text="a \u2066b\u2069 c"), lambda p: p.text == "a b c"),
    ("text-lrm-rlm", line(text="\u200fstreet\u200e light"), lambda p: p.text == "street light"),
    ("text-bom-prefix", line(text="\ufeffPothole"), lambda p: p.text == "Pothole"),
    ("text-line-separator", line(text="a\u2028b"), lambda p: p.text == "a\nb"),
    ("text-nfd-to-nfc", line(text="cafe\u0301 flooded"), lambda p: p.text == "caf\u00e9 flooded"),
    ("text-zwj-emoji-kept", line(text="fire \U0001f468\u200d\U0001f692 here"), lambda p: "\u200d" in p.text),
    ("text-persian-zwnj-kept", line(text="\u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645"), lambda p: "\u200c" in p.text),
    ("text-exactly-10000", line(text="a" * 10_000), lambda p: len(p.text) == 10_000),
    ("text-html-kept-as-data", line(text="<script>alert(1)</script> pothole"), lambda p: "<script>" in p.text),
    ("text-sql-kept-as-data", line(text="'; DROP TABLE raw.posts;-- pothole"), lambda p: "DROP TABLE" in p.text),
    ("lat-int", line(geo={"lat": 41, "lon": -87}), lambda p: (p.lat, p.lon) == (41.0, -87.0)),
    ("lat-numeric-string", line(geo={"lat": "41.88", "lon": "-87.63"}), lambda p: (p.lat, p.lon) == (41.88, -87.63)),
    ("geo-nulls", line(geo={"lat": None, "lon": None}), lambda p: p.lat is None and p.lon is None),
    ("bbox-point", line(place={"name": "C", "bbox": [-87.6, 41.8, -87.6, 41.8]}), lambda p: p.place_bbox is not None),
    ("lang-bcp47", line(lang="pt-BR"), lambda p: p.lang == "pt-BR"),
    ("lang-zh-hant-tw", line(lang="zh-Hant-TW"), lambda p: p.lang == "zh-Hant-TW"),
    ("url-https", line(url="https://social.example/p/1"), lambda p: p.url == "https://social.example/p/1"),
    ("url-http-upper", line(url="HTTP://x.org/a"), lambda p: p.url == "HTTP://x.org/a"),
    ("id-numeric", line(id=1790000000000000001), lambda p: p.native_id == "1790000000000000001"),
    ("date-offset", line(created_at="2024-05-06T10:00:00-05:00"), lambda p: p.created_at.hour == 15),
    ("unknown-keys-ignored", line(extra={"a": 1}, favourites=3), lambda p: p.native_id == "1"),
    ("place-name-invisible", line(place={"name": "\u200b"}), lambda p: p.place_name is None),
]


@pytest.mark.parametrize(("case", "raw", "holds"), ACCEPTED_LINES, ids=[c[0] for c in ACCEPTED_LINES])
def test_odd_but_valid_line_is_stored_normalised(tmp_path: Path, case: str, raw: str, holds) -> None:
    write_drop(tmp_path, [raw], "ok")
    result = source(tmp_path).fetch(None, pseudonym_key=KEY)
    assert result.rejects == [], result.rejects
    (post,) = result.posts
    assert holds(post), post


# --- 3. Ingest plausibility rules (dates window, swapped axes) ----------------------------------

def make_post(native_id: str = "1", **fields) -> Post:
    values = {"post_id": f"feed:{native_id}", "source": "feed", "native_id": native_id,
              "text": "Pothole at State and Madison", "created_at": datetime(2024, 5, 6, 10, tzinfo=timezone.utc)}
    return Post(**{**values, **fields})


LIMITS = PostLimits(city_bbox=CITY_BBOX)
IMPLAUSIBLE = [
    ("year-1", {"created_at": datetime(1, 1, 2, tzinfo=timezone.utc)}, "is before 2006-01-01"),
    ("year-1970-epoch", {"created_at": datetime(1970, 1, 1, tzinfo=timezone.utc)}, "is before 2006-01-01"),
    ("year-2005", {"created_at": datetime(2005, 12, 31, 23, 59, tzinfo=timezone.utc)}, "is before 2006-01-01"),
    ("year-2099", {"created_at": datetime(2099, 1, 1, tzinfo=timezone.utc)}, "is in the future"),
    ("year-9999", {"created_at": datetime(9999, 12, 31, 22, tzinfo=timezone.utc)}, "is in the future"),
    ("two-days-ahead", {"created_at": NOW + timedelta(days=2)}, "is in the future"),
    ("swapped-axes", {"lat": -87.63, "lon": 41.88}, "lat/lon swapped"),
    ("swapped-axes-edge", {"lat": -87.53, "lon": 41.65}, "lat/lon swapped"),
]


@pytest.mark.parametrize(("case", "fields", "reason"), IMPLAUSIBLE, ids=[c[0] for c in IMPLAUSIBLE])
def test_implausible_post_has_a_reason(case: str, fields: dict, reason: str) -> None:
    found = implausible(make_post(**fields), LIMITS, now=NOW)
    assert found is not None and reason in found


PLAUSIBLE = [
    ("year-2006", {"created_at": datetime(2006, 1, 1, tzinfo=timezone.utc)}),
    ("now", {"created_at": NOW}),
    ("clock-skew-23h", {"created_at": NOW + timedelta(hours=23)}),
    ("in-city", {"lat": 41.88, "lon": -87.63}),
    ("far-away-not-swapped", {"lat": 51.5, "lon": -0.12}),  # London: outside, not a swap; stored, never filed
    ("no-location", {}),
]


@pytest.mark.parametrize(("case", "fields"), PLAUSIBLE, ids=[c[0] for c in PLAUSIBLE])
def test_plausible_post_passes(case: str, fields: dict) -> None:
    assert implausible(make_post(**fields), LIMITS, now=NOW) is None


def test_window_and_swap_rule_follow_the_config(tmp_path: Path) -> None:
    config = tmp_path / "city.yaml"
    config.write_text("city: T\nbbox: [-87.94, 41.64, -87.52, 42.03]\nsources: [{plugin: file_drop}]\n"
                      "gis: {plugin: geojson}\nticketing: {plugin: open311}\n"
                      "ingest: {earliest_post: 2020-01-01, future_tolerance_hours: 1, swapped_axes_check: false}\n",
                      encoding="utf-8")
    limits = post_limits(load_config(config))
    assert "before 2020-01-01" in implausible(make_post(created_at=datetime(2019, 6, 1, tzinfo=timezone.utc)), limits)
    assert implausible(make_post(created_at=datetime.now(timezone.utc) + timedelta(hours=2)), limits)
    assert implausible(make_post(lat=-87.63, lon=41.88), limits) is None  # the swap rule is off


# --- 4. Ingest into the warehouse: new, edits, unchanged, quarantined; counts add up ------------

def test_edit_under_a_known_id_is_stored_and_rescored(tmp_path: Path) -> None:
    db = tmp_path / "w.duckdb"
    with connect(db) as con:
        first = store_posts(con, [make_post("1"), make_post("2")], limits=LIMITS, now=NOW, run_id="r1")
        con.execute("insert into ml.post_signals (post_id, relevance, is_report) values ('feed:1', 0.9, true), "
                    "('feed:2', 0.9, true)")
        again = store_posts(con, [make_post("1", text="Pothole now 2 ft wide at State and Madison"), make_post("2"),
                                  make_post("3")], limits=LIMITS, now=NOW + timedelta(hours=1), run_id="r2")
        text, run = con.execute("select text, ingest_run_id from raw.posts where post_id = 'feed:1'").fetchone()
        scored = {r[0] for r in con.execute("select post_id from ml.post_signals").fetchall()}
    assert (first["new"], first["edited"], first["unchanged"]) == (2, 0, 0)
    assert (again["new"], again["edited"], again["unchanged"]) == (1, 1, 1)
    assert text.startswith("Pothole now 2 ft wide") and run == "r2"
    assert scored == {"feed:2"}, "the edited post must be scored again"


def test_implausible_posts_go_to_quarantine_and_counts_add_up(tmp_path: Path) -> None:
    posts = [make_post(str(i)) for i in range(5)] + [
        make_post("old", created_at=datetime(1999, 1, 1, tzinfo=timezone.utc)),
        make_post("future", created_at=datetime(2099, 1, 1, tzinfo=timezone.utc)),
        make_post("swapped", lat=-87.63, lon=41.88), make_post("1", text="Pothole twice in one batch")]
    with connect(tmp_path / "w.duckdb") as con:
        out = store_posts(con, posts, limits=LIMITS, now=NOW, run_id="r")
        quarantine(con, out["rejects"], stage="ingest", run_id="r")
        stored = con.execute("select count(*) from raw.posts").fetchone()[0]
        reasons = dict(con.execute("select record_ref, reason from quarantine.records").fetchall())
    assert stored + len(reasons) == len(posts)
    assert set(reasons) == {"feed:old", "feed:future", "feed:swapped", "feed:1"}
    assert "duplicate id '1' within one fetch" in reasons["feed:1"]
    assert "before 2006" in reasons["feed:old"] and "future" in reasons["feed:future"]
    assert "swapped" in reasons["feed:swapped"]


def test_raw_posts_asset_on_a_hostile_drop_folder(tmp_path: Path, monkeypatch) -> None:
    """Real Dagster, real DuckDB: every line of the hostile corpus is stored or quarantined, none lost."""
    import dagster as dg

    from social311.orchestration.ingest import raw_posts
    from social311.orchestration.resources import CityResource

    drop = tmp_path / "drop"
    good = [line(id=f"g{i}", text=f"Pothole number {i} at State and Madison") for i in range(5)]
    hostile = [raw for _, raw, _ in REFUSED_LINES]
    dated = [line(id="y1970", created_at="1970-01-01T00:00:00Z"), line(id="y2099", created_at="2099-01-01T00:00:00Z"),
             line(id="swap", geo={"lat": -87.63, "lon": 41.88})]
    write_drop(drop, good + hostile + dated, "posts-001")
    (drop / "evil.jsonl").symlink_to("/etc/passwd")
    config = tmp_path / "city.yaml"
    config.write_text(f"city: T\nduckdb_path: {tmp_path / 'w.duckdb'}\nbbox: [-87.94, 41.64, -87.52, 42.03]\n"
                      f"sources: [{{plugin: file_drop, name: feed, config: {{drop_dir: {drop}}}}}]\n"
                      "gis: {plugin: geojson}\nticketing: {plugin: open311}\n", encoding="utf-8")
    monkeypatch.setenv("SOCIAL311_PSEUDONYM_KEY", KEY)
    for _ in range(2):  # a second run finds nothing new and quarantines nothing twice
        result = dg.materialize([raw_posts], resources={"city": CityResource(config_path=str(config))})
        assert result.success
    with connect(tmp_path / "w.duckdb") as con:
        stored = con.execute("select count(*) from raw.posts").fetchone()[0]
        refs = [r[0] for r in con.execute("select record_ref from quarantine.records").fetchall()]
    lines_in = len(good) + len(hostile) + len(dated)
    assert stored == len(good)
    assert len(refs) == lines_in - stored + 1  # + the symlink, refused once
    assert "evil.jsonl" in refs and len(set(refs)) == len(refs)


# --- 5. The drop folder: nothing skipped, nothing followed --------------------------------------

def _ids(result) -> list[str]:
    return [p.native_id for p in result.posts]


def test_file_sorting_before_the_cursor_file_is_still_read(tmp_path: Path) -> None:
    src = source(tmp_path)
    write_drop(tmp_path, [line(id="b1")], "posts-b")
    first = src.fetch(None, pseudonym_key=KEY)
    write_drop(tmp_path, [line(id="a1")], "posts-a")  # a late export with an older name
    second = src.fetch(first.cursor, pseudonym_key=KEY)
    assert _ids(first) == ["b1"] and _ids(second) == ["a1"]
    assert src.fetch(second.cursor, pseudonym_key=KEY).posts == []


def test_truncated_last_line_followed_by_another_file_is_retried(tmp_path: Path) -> None:
    src = source(tmp_path)
    full = line(id="2")
    (tmp_path / "a.jsonl").write_text(line(id="1") + "\n" + full[:25], encoding="utf-8")
    write_drop(tmp_path, [line(id="3")], "b")
    first = src.fetch(None, pseudonym_key=KEY)
    assert _ids(first) == ["1", "3"] and first.rejects == []
    with (tmp_path / "a.jsonl").open("a", encoding="utf-8") as handle:
        handle.write(full[25:] + "\n")
    second = src.fetch(first.cursor, pseudonym_key=KEY)
    assert _ids(second) == ["2"] and second.rejects == []


def test_truncated_line_is_quarantined_once_the_file_is_old(tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl"
    path.write_text(line(id="1") + "\n" + line(id="2")[:25], encoding="utf-8")
    old = time.time() - 7200
    os.utime(path, (old, old))
    src = source(tmp_path)
    first = src.fetch(None, pseudonym_key=KEY)
    assert _ids(first) == ["1"]
    (reject,) = first.rejects
    assert reject.record_ref == "a.jsonl:2" and "truncated last line" in reject.reason
    assert src.fetch(first.cursor, pseudonym_key=KEY).rejects == []


@pytest.mark.parametrize("kind", ["symlink-to-system-file", "symlink-to-drop-file", "dangling-symlink",
                                  "folder", "fifo"])
def test_non_regular_entries_are_refused_once(tmp_path: Path, kind: str) -> None:
    write_drop(tmp_path, [line(id="1")], "real")
    target = tmp_path / "odd.jsonl"
    if kind == "symlink-to-system-file":
        target.symlink_to("/etc/passwd")
    elif kind == "symlink-to-drop-file":
        target.symlink_to(tmp_path / "real.jsonl")
    elif kind == "dangling-symlink":
        target.symlink_to(tmp_path / "nowhere.jsonl")
    elif kind == "folder":
        target.mkdir()
    else:
        os.mkfifo(target)  # reading it would block the run forever
    src = source(tmp_path)
    first = src.fetch(None, pseudonym_key=KEY)
    assert _ids(first) == ["1"]
    (reject,) = first.rejects
    assert reject.record_ref == "odd.jsonl" and "refused: only regular files are read" in reject.reason
    expected = {"folder": "folder", "fifo": "FIFO"}.get(kind, "symlink")
    assert reject.reason.startswith(expected)
    again = src.fetch(first.cursor, pseudonym_key=KEY)
    assert again.posts == [] and again.rejects == [] and again.cursor == first.cursor


def test_replaced_file_is_read_again_from_its_start(tmp_path: Path) -> None:
    src = source(tmp_path)
    (tmp_path / "a.jsonl").write_text(line(id="1") + "\n" + line(id="2") + "\n", encoding="utf-8")
    first = src.fetch(None, pseudonym_key=KEY)
    (tmp_path / "a.jsonl").write_text(line(id="9") + "\n", encoding="utf-8")  # shorter: a new export
    assert _ids(src.fetch(first.cursor, pseudonym_key=KEY)) == ["9"]


def test_rewritten_head_same_size_is_read_again(tmp_path: Path) -> None:
    src = source(tmp_path)
    (tmp_path / "a.jsonl").write_text(line(id="1") + "\n", encoding="utf-8")
    first = src.fetch(None, pseudonym_key=KEY)
    (tmp_path / "a.jsonl").write_text(line(id="7") + "\n", encoding="utf-8")  # same length, other content
    assert _ids(src.fetch(first.cursor, pseudonym_key=KEY)) == ["7"]


def test_cursor_of_the_earlier_version_is_migrated(tmp_path: Path) -> None:
    write_drop(tmp_path, [line(id="1"), line(id="2")], "posts-001")
    write_drop(tmp_path, [line(id="3"), line(id="4")], "posts-002")
    old_cursor = json.dumps({"file": "posts-002.jsonl", "line": 1})
    result = source(tmp_path).fetch(old_cursor, pseudonym_key=KEY)
    assert _ids(result) == ["4"]


@pytest.mark.parametrize("cursor", ['{"v": 2, "files": 3}', "not json", '{"file": "a"}', "[1]"])
def test_corrupt_cursor_is_a_clear_error(tmp_path: Path, cursor: str) -> None:
    write_drop(tmp_path, [line()], "a")
    with pytest.raises(ValueError, match="is not a file_drop cursor"):
        source(tmp_path).fetch(cursor, pseudonym_key=KEY)


def test_a_failing_source_is_quarantined_and_the_others_go_on(tmp_path: Path, monkeypatch) -> None:
    import dagster as dg

    from social311.orchestration.ingest import raw_posts
    from social311.orchestration.resources import CityResource

    for name in ("a", "b"):
        write_drop(tmp_path / name, [line(id=f"{name}1")], "posts")
    config = tmp_path / "city.yaml"
    config.write_text(f"city: T\nduckdb_path: {tmp_path / 'w.duckdb'}\nsources:\n"
                      f"  - {{plugin: file_drop, name: a, config: {{drop_dir: {tmp_path / 'a'}}}}}\n"
                      f"  - {{plugin: file_drop, name: b, config: {{drop_dir: {tmp_path / 'b'}}}}}\n"
                      "gis: {plugin: geojson}\nticketing: {plugin: open311}\n", encoding="utf-8")
    monkeypatch.setenv("SOCIAL311_PSEUDONYM_KEY", KEY)
    with connect(tmp_path / "w.duckdb") as con:  # a corrupt cursor makes source a raise
        con.execute("insert into ops.source_cursors values ('a', 'garbage', now())")
    result = dg.materialize([raw_posts], resources={"city": CityResource(config_path=str(config))})
    assert result.success
    with connect(tmp_path / "w.duckdb") as con:
        stored = [r[0] for r in con.execute("select post_id from raw.posts").fetchall()]
        (reason,) = con.execute("select reason from quarantine.records where source = 'a'").fetchone()
    assert stored == ["b:b1"] and reason.startswith("source failed: ValueError")


# --- 6. City config: one-line ConfigError for every hostile file --------------------------------

_BASE = "city: T\nsources: [{plugin: file_drop}]\ngis: {plugin: geojson}\nticketing: {plugin: open311}\n"


def _laughs(levels: int, width: int = 9, where: str = "top") -> str:
    lines = [f'l0: &l0 [{", ".join(["lol"] * width)}]']
    lines += [f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * width)}]" for i in range(1, levels)]
    if where == "top":
        return "\n".join(lines) + "\n" + _BASE
    body = "\n".join("      " + x for x in lines)
    return ("city: T\nsources:\n  - plugin: file_drop\n    config:\n" + body + "\n"
            "gis: {plugin: geojson}\nticketing: {plugin: open311}\n")


CONFIG_ERRORS = [
    ("billion-laughs", _laughs(9).encode(), "YAML bomb"),
    ("laughs-in-plugin-config", _laughs(9, where="plugin").encode(), "YAML bomb"),
    ("wide-laughs", _laughs(4, width=60).encode(), "more than 100 YAML aliases"),
    ("too-many-aliases", ("a: &a x\nb: [" + ", ".join(["*a"] * 150) + "]\n" + _BASE).encode(), "more than 100 YAML aliases"),
    ("deep-flow", ("x: " + "[" * 200 + "]" * 200 + "\n" + _BASE).encode(), "nested deeper than 50"),
    ("deep-flow-huge", ("x: " + "[" * 400_000 + "]" * 400_000 + "\n").encode(), "nested deeper than 50"),
    ("too-big", (_BASE + "# " + "x" * 1_000_001 + "\n").encode(), "bytes, more than the 1,000,000 allowed"),
    ("latin-1", "city: Bogot\xe1\n".encode("latin-1") + _BASE[8:].encode(), "not UTF-8"),
    ("utf-16", _BASE.encode("utf-16"), "not UTF-8"),
    ("binary", bytes(range(256)), "not UTF-8"),
    ("python-object-tag", b"!!python/object/apply:os.system ['echo pwned']\n", "not valid YAML"),
    ("python-name-tag", b"city: !!python/name:os.system\n", "not valid YAML"),
    ("unknown-tag", b"city: !custom x\n", "not valid YAML"),
    ("two-documents", (_BASE + "---\n" + _BASE).encode(), "not valid YAML"),
    ("tab-indent", b"city: T\nsources:\n\t- plugin: file_drop\n", "not valid YAML"),
    ("unclosed-quote", b'city: "T\n', "not valid YAML"),
    ("top-level-list", b"- city: T\n", "must be a mapping at the top level, not a list"),
    ("top-level-string", b"just a string\n", "must be a mapping at the top level, not a str"),
    ("top-level-number", b"42\n", "must be a mapping at the top level, not a int"),
    ("sources-as-mapping", b"city: T\nsources: {feed: {plugin: file_drop}}\ngis: {plugin: geojson}\n"
                           b"ticketing: {plugin: open311}\n", "sources: Input should be a valid tuple"),
    ("sources-as-string", b"city: T\nsources: file_drop\ngis: {plugin: geojson}\nticketing: {plugin: open311}\n",
     "sources: Input should be a valid tuple"),
    ("sources-empty", b"city: T\nsources: []\ngis: {plugin: geojson}\nticketing: {plugin: open311}\n",
     "sources: Tuple should have at least 1 item"),
    ("sources-list-of-strings", b"city: T\nsources: [file_drop]\ngis: {plugin: geojson}\nticketing: {plugin: open311}\n",
     "sources.0: Input should be a valid dictionary"),
    ("plugin-config-as-list", b"city: T\nsources: [{plugin: file_drop, config: [1]}]\ngis: {plugin: geojson}\n"
                              b"ticketing: {plugin: open311}\n", "sources.0.config: Input should be a valid dictionary"),
    ("gis-as-string", b"city: T\nsources: [{plugin: file_drop}]\ngis: geojson\nticketing: {plugin: open311}\n",
     "gis: Input should be a valid dictionary"),
    ("missing-gis", b"city: T\nsources: [{plugin: file_drop}]\nticketing: {plugin: open311}\n", "gis: Field required"),
    ("unknown-key", (_BASE + "filing_enabeld: true\n").encode(), "filing_enabeld: Extra inputs are not permitted"),
    ("duplicate-source-names", b"city: T\nsources: [{plugin: file_drop}, {plugin: file_drop}]\n"
                               b"gis: {plugin: geojson}\nticketing: {plugin: open311}\n", "source instance names must be unique"),
    ("threshold-out-of-range", (_BASE + "thresholds: {relevance: 7}\n").encode(), "thresholds.relevance"),
    ("bbox-three-numbers", (_BASE + "bbox: [1, 2, 3]\n").encode(), "bbox"),
    ("duckdb-path-list", (_BASE + "duckdb_path: [a, b]\n").encode(), "duckdb_path"),
    ("ingest-bad-date", (_BASE + "ingest: {earliest_post: someday}\n").encode(), "ingest.earliest_post"),
    ("screening-share-2", (_BASE + "screening: {max_held_share: 2}\n").encode(), "screening.max_held_share"),
    ("empty-file", b"", "city: Field required"),
    ("only-comments", b"# nothing here\n", "city: Field required"),
]


@pytest.mark.parametrize(("case", "raw", "message"), CONFIG_ERRORS, ids=[c[0] for c in CONFIG_ERRORS])
def test_hostile_config_is_a_one_line_config_error(tmp_path: Path, case: str, raw: bytes, message: str) -> None:
    path = tmp_path / "city.yaml"
    path.write_bytes(raw)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert message in str(caught.value)
    assert "\n" not in str(caught.value), "a ConfigError is one line"
    assert str(path) in str(caught.value)


@pytest.mark.parametrize("target", ["missing.yaml", "folder"])
def test_unreadable_config_is_a_config_error(tmp_path: Path, target: str) -> None:
    (tmp_path / "folder").mkdir()
    with pytest.raises(ConfigError, match="cannot read city config"):
        load_config(tmp_path / target)


def test_legitimate_anchors_still_load() -> None:
    data = safe_load_yaml(b"base: &b {relevance: 0.6}\nthresholds: *b\nother: *b\n", "t")
    assert data["thresholds"] == {"relevance": 0.6} and data["other"] is data["thresholds"]


SECRETS = [
    ("filing-on-key-unset", True, {}, ["ticketing open311: api_key_env names SOCIAL311_OPEN311_API_KEY"]),
    ("filing-on-key-empty", True, {"SOCIAL311_OPEN311_API_KEY": ""}, ["api_key_env names SOCIAL311_OPEN311_API_KEY"]),
    ("filing-on-key-set", True, {"SOCIAL311_OPEN311_API_KEY": "k"}, []),
    ("dry-run-needs-no-key", False, {}, []),
]


@pytest.mark.parametrize(("case", "filing", "environ", "missing"), SECRETS, ids=[c[0] for c in SECRETS])
def test_missing_secret_is_found_before_any_run(tmp_path: Path, case: str, filing: bool, environ: dict,
                                                missing: list[str]) -> None:
    path = tmp_path / "city.yaml"
    path.write_text(_BASE.replace("{plugin: open311}", "{plugin: open311, config: {endpoint: 'http://127.0.0.1:9/'}}")
                    + f"filing_enabled: {str(filing).lower()}\n", encoding="utf-8")
    cfg = load_config(path)
    found = missing_secrets(cfg, environ)
    assert len(found) == len(missing) and all(m in f for m, f in zip(missing, found))
    if missing:
        with pytest.raises(ConfigError, match="missing secret"):
            require_secrets(cfg, environ)
    else:
        require_secrets(cfg, environ)


# --- 7. Personal data: phones in every form, handles through invisible tricks, any host --------

PRIVACY = [
    # phone numbers (phonenumbers, US region by default)
    ("312 5550199", "[phone]"),
    ("call 312 5550199 please", "call [phone] please"),
    ("1-800-555-0199", "[phone]"),
    ("1 (312) 555-0199", "[phone]"),
    ("312/555/0199", "[phone]"),
    ("312–555–0199", "[phone]"),  # en dashes
    ("tel:+13125550199", "tel:[phone]"),
    ("+1-312-555-0199", "[phone]"),
    ("+33 1 42 68 53 00", "[phone]"),
    ("+49 30 901820", "[phone]"),
    ("+91 98200 12345", "[phone]"),
    ("312 555 0199 ext 5", "[phone]"),
    ("(312)5550199", "[phone]"),
    ("312.555.0199", "[phone]"),
    ("555-0147", "[phone]"),
    # handles through invisible characters and look-alike @
    ("@\u200bresident1 saw it", "@user saw it"),
    ("@\u200d\u200cresident1", "@user"),
    ("@\u2060resident1", "@user"),
    ("@\ufeffresident1", "@user"),
    ("@res\u200bident1", "@user"),
    ("\u202e@resident1", "@user"),
    ("\uff20resident1 look", "@user look"),
    ("\ufe6bresident1", "@user"),
    ("@\u00adresident1", "@user"),
    # e-mail addresses on any host
    ("bob@localhost", "[email]"),
    ("mail bob@localhost now", "mail [email] now"),
    ("root@intranet-01", "[email]"),
    ("jo@example.museum", "[email]"),
    ("bob\u200b@localhost", "[email]"),
    ("bob@\u200blocalhost", "[email]"),
    ("bob\uff20localhost", "[email]"),
    # not personal data: survives
    ("request 72355 is open", "request 72355 is open"),
    ("the 1200-1300 block", "the 1200-1300 block"),
    ("at 41.88123 -87.63123", "at 41.88123 -87.63123"),
    ("ZIP 60602-1234", "ZIP 60602-1234"),
    ("call 311 or 911", "call 311 or 911"),
    ("on 2024-05-06 at 10:30", "on 2024-05-06 at 10:30"),
    ("meet @ 5pm", "meet @ 5pm"),
    ("fire \U0001f468\u200d\U0001f692", "fire \U0001f468\u200d\U0001f692"),  # ZWJ between emoji stays
]


@pytest.mark.parametrize(("text", "masked"), PRIVACY, ids=[f"privacy-{i}" for i in range(len(PRIVACY))])
def test_personal_data_is_masked(text: str, masked: str) -> None:
    assert mask_personal_data(text) == masked


def test_phone_region_is_configurable() -> None:
    assert mask_personal_data("ring 020 7946 0958", region="GB") == "ring [phone]"
    assert mask_personal_data("ring 01 42 68 53 00", region="FR") == "ring [phone]"


# --- 8. Screening: one bad incident is held with its reason, the rest of the city files ---------

def _incident(k: int, **over) -> tuple:
    row = {"incident_id": f"inc-{k:03d}", "type_id": "t1", "service_code": "POT", "ward_id": "W1", "boundary_version": "v1",
           "lat": 41.88, "lon": -87.63, "first_seen_at": NOW, "last_seen_at": NOW, "post_count": 1,
           "representative_text": f"Pothole number {k} at State and Madison", "confidence": 0.9, "status": "ready",
           "updated_at": NOW}
    row.update(over)
    return tuple(row.values())


def _city(tmp_path: Path, extra: str = "") -> object:
    path = tmp_path / "city.yaml"
    path.write_text(_BASE + "bbox: [-87.94, 41.64, -87.52, 42.03]\n" + extra, encoding="utf-8")
    return load_config(path)


BAD_INCIDENTS = [
    ("email-localhost", {"representative_text": "Pothole, mail bob@localhost"}, "representative_text"),
    ("raw-handle", {"representative_text": "@resident1 pothole here"}, "representative_text"),
    ("no-service", {"service_code": None}, "expect_column_values_to_not_be_null(service_code)"),
    ("no-ward", {"ward_id": None}, "expect_column_values_to_not_be_null(ward_id)"),
    ("no-lat", {"lat": None}, "expect_column_values_to_not_be_null(lat)"),
    ("outside-bbox", {"lat": 40.7, "lon": -74.0}, "expect_column_values_to_be_between(lat"),
    ("confidence-above-1", {"confidence": 1.5}, "expect_column_values_to_be_between(confidence"),
    ("empty-text", {"representative_text": ""}, "expect_column_value_lengths_to_be_between(representative_text"),
    ("zero-posts", {"post_count": 0}, "expect_column_values_to_be_between(post_count"),
]


@pytest.mark.parametrize(("case", "override", "reason"), BAD_INCIDENTS, ids=[c[0] for c in BAD_INCIDENTS])
def test_one_bad_incident_is_held_and_the_rest_pass_the_blocking_check(tmp_path: Path, case: str, override: dict,
                                                                         reason: str) -> None:
    from social311.orchestration.incidents import ready_incidents_suite
    from social311.orchestration.quality import validate
    from social311.orchestration.screening import HELD, screen_ready_incidents

    cfg = _city(tmp_path)
    suite = ready_incidents_suite(cfg.bbox)
    with connect(tmp_path / "w.duckdb") as con:
        rows = [_incident(k) for k in range(9)] + [_incident(9, **override)]
        con.executemany("insert into ops.incidents values (" + ", ".join(["?"] * 14) + ")", rows)
        assert validate(con.execute("select * from ops.incidents where status = 'ready'").df(), suite)[0] is False
        outcome = screen_ready_incidents(con, cfg, suite, run_id="r1")
        statuses = dict(con.execute("select incident_id, status from ops.incidents").fetchall())
        passed, _ = validate(con.execute("select * from ops.incidents where status = 'ready'").df(), suite)
        (quarantined,) = con.execute("select record_ref, reason, raw_excerpt from quarantine.records "
                                     "where stage = 'screening'").fetchall()
        screen_ready_incidents(con, cfg, suite, run_id="r2")  # the next run: the same row, not another
        rows_after = con.execute("select count(*) from quarantine.records").fetchone()[0]
    assert outcome["held"] == ["inc-009"] and not outcome["systemic"]
    assert statuses["inc-009"] == HELD and sum(s == "ready" for s in statuses.values()) == 9
    assert passed, "with the bad incident held, the blocking check passes and the city files"
    assert quarantined[0] == "inc-009" and reason in quarantined[1]
    assert "@localhost" not in quarantined[2] and "@resident1" not in quarantined[2]
    assert rows_after == 1


def test_many_failures_are_systemic_and_nothing_is_held(tmp_path: Path) -> None:
    from social311.orchestration.incidents import ready_incidents_suite
    from social311.orchestration.screening import screen_ready_incidents

    cfg = _city(tmp_path)
    with connect(tmp_path / "w.duckdb") as con:
        rows = [_incident(k, representative_text=f"@user{k} pothole") for k in range(8)] + [_incident(k) for k in range(8, 20)]
        con.executemany("insert into ops.incidents values (" + ", ".join(["?"] * 14) + ")", rows)
        outcome = screen_ready_incidents(con, cfg, ready_incidents_suite(cfg.bbox))
        ready = con.execute("select count(*) from ops.incidents where status = 'ready'").fetchone()[0]
    assert outcome["systemic"] and outcome["failing"] == 8 and outcome["held"] == []
    assert ready == 20, "a regression upstream is left for the blocking check to stop"


@pytest.mark.parametrize(("ready", "failing", "extra", "held"), [
    (1, 1, "", 1),  # a small city: up to always_hold_up_to are always held
    (2, 2, "", 2),
    (4, 3, "", 3),
    (4, 4, "", 0),
    (10, 2, "", 2),
    (10, 3, "screening: {always_hold_up_to: 0, max_held_share: 0.2}\n", 0),
    (10, 5, "screening: {max_held_share: 0.5}\n", 5),
])
def test_hold_limits_follow_the_config(tmp_path: Path, ready: int, failing: int, extra: str, held: int) -> None:
    from social311.orchestration.incidents import ready_incidents_suite
    from social311.orchestration.screening import screen_ready_incidents

    cfg = _city(tmp_path, extra)
    with connect(tmp_path / "w.duckdb") as con:
        rows = [_incident(k, service_code=None) if k < failing else _incident(k) for k in range(ready)]
        con.executemany("insert into ops.incidents values (" + ", ".join(["?"] * 14) + ")", rows)
        outcome = screen_ready_incidents(con, cfg, ready_incidents_suite(cfg.bbox))
    assert len(outcome["held"]) == held and outcome["systemic"] == (held == 0)
