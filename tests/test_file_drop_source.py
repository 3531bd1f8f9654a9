"""The file-drop source: the contract suite, malformed lines, cursors and city mentions."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from social311.demo.generate import generate_malformed, generate_posts, write_drop
from social311.integrations.sources.file_drop import FileDropConfig, FileDropSource, clean_text, mentions_handle
from social311.integrations.testing import SourceContract
from social311.privacy import pseudonymise

KEY = "test-key"


def make(drop: Path, name: str = "feed", handles: tuple[str, ...] = ("DemoCity311",)) -> FileDropSource:
    return FileDropSource(FileDropConfig(drop_dir=str(drop), city_handles=list(handles)), instance_name=name)


def post(native_id: str, text: str = "Pothole at State and Madison", **extra) -> dict:
    return {"id": native_id, "created_at": "2024-05-06T10:00:00Z", "user": {"handle": "resident1"},
            "text": text, **extra}


class TestFileDropContract(SourceContract):
    def make_source(self, tmp_path: Path) -> FileDropSource:
        write_drop(tmp_path / "drop", generate_posts(seed=1, n_incidents=5), "posts-001")
        write_drop(tmp_path / "drop", generate_malformed(seed=1), "posts-002")
        return make(tmp_path / "drop", name="demo_feed")


@pytest.mark.parametrize(
    ("key", "reason"),
    [
        ("broken", "not valid JSON"),
        ("notext", "text: Field required"),
        ("emptytext", "text: empty"),
        ("badtime", "created_at: Input should be a valid datetime"),
        ("notz", "created_at: Value error, datetime must carry a timezone"),
        ("latrange", "lat: Input should be less than or equal to 90"),
        ("latonly", "lat and lon must both be given"),
        ("huge", "text: String should have at most 10000 characters"),
        ("array", "not a JSON object but a list"),
    ],
)
def test_each_malformed_line_is_rejected_with_its_reason(tmp_path: Path, key: str, reason: str) -> None:
    lines = generate_malformed(seed=3)
    order = ["broken", "notext", "emptytext", "badtime", "notz", "latrange", "latonly", "huge", "array"]
    write_drop(tmp_path, [lines[order.index(key)]], "bad")
    result = make(tmp_path).fetch(None, pseudonym_key=KEY)
    assert result.posts == []
    assert len(result.rejects) == 1
    assert reason in result.rejects[0].reason
    assert result.rejects[0].record_ref == "bad.jsonl:1"
    assert len(result.rejects[0].raw_excerpt) <= 200


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
        ('{"id": "1", "created_at": "2024-05-06T10:00:00Z", "text": "x", "geo": {"lat": NaN, "lon": 1}}', "lat:"),
        ('{"id": null, "created_at": "2024-05-06T10:00:00Z", "text": "x"}', "id: Input should be a valid string"),
        ('{"id": "", "created_at": "2024-05-06T10:00:00Z", "text": "x"}', "id: String should have at least 1"),
        ('{"id": "1", "created_at": "2024-05-06T10:00:00Z", "text": "x", "geo": {"lat": 0, "lon": 0}}', "null-island"),
    ],
)
def test_hostile_structures_are_rejected(tmp_path: Path, line: str, reason: str) -> None:
    write_drop(tmp_path, [line], "bad")
    result = make(tmp_path).fetch(None, pseudonym_key=KEY)
    assert result.posts == [] and len(result.rejects) == 1
    assert reason in result.rejects[0].reason


def test_hostile_text_passes_through_as_data(tmp_path: Path) -> None:
    write_drop(tmp_path, [generate_malformed(seed=3)[-1]], "hostile")
    result = make(tmp_path).fetch(None, pseudonym_key=KEY)
    assert result.rejects == []
    (only,) = result.posts
    assert "\x07" not in only.text and "\x1b" not in only.text
    assert "<script>alert('x')</script>" in only.text
    assert "DROP TABLE raw.posts;--" in only.text


def test_fields_are_mapped_and_namespaced(tmp_path: Path) -> None:
    write_drop(tmp_path, [
        post("1", "@democity311 streetlight out at Clark & Lake", geo={"lat": 41.8856, "lon": -87.6313},
             lang="en"),
        post(2, "RT @resident1: streetlight out", repost_of=1, place={"name": "Chicago, IL", "bbox": [-88, 41, -87, 42]}),
    ], "a")
    first, second = make(tmp_path).fetch(None, pseudonym_key=KEY).posts
    assert (first.post_id, first.native_id, first.source) == ("feed:1", "1", "feed")
    assert (first.lat, first.lon, first.mentions_city, first.lang) == (41.8856, -87.6313, True, "en")
    assert first.author_hash == pseudonymise("resident1", KEY)
    assert first.created_at.utcoffset().total_seconds() == 0
    assert (second.native_id, second.repost_of, second.mentions_city) == ("2", "feed:1", False)
    assert second.place_name == "Chicago, IL" and second.place_bbox == (-88, 41, -87, 42)


def test_cursor_resumes_after_appended_lines_and_new_files(tmp_path: Path) -> None:
    source = make(tmp_path)
    path = write_drop(tmp_path, [post("1"), post("2")], "posts-001")
    first = source.fetch(None, pseudonym_key=KEY)
    assert json.loads(first.cursor)["files"]["posts-001.jsonl"]["line"] == 2
    with path.open("a", encoding="utf-8") as handle:
        handle.write(json.dumps(post("3")) + "\n")
    write_drop(tmp_path, [post("4")], "posts-002")
    second = source.fetch(first.cursor, pseudonym_key=KEY)
    assert [p.native_id for p in second.posts] == ["3", "4"]
    assert source.fetch(second.cursor, pseudonym_key=KEY).posts == []


def test_half_written_last_line_waits_for_the_next_fetch(tmp_path: Path) -> None:
    path = tmp_path / "posts.jsonl"
    line = json.dumps(post("2"))
    path.write_text(json.dumps(post("1")) + "\n" + line[:20], encoding="utf-8")
    source = make(tmp_path)
    first = source.fetch(None, pseudonym_key=KEY)
    assert [p.native_id for p in first.posts] == ["1"] and first.rejects == []
    path.write_text(json.dumps(post("1")) + "\n" + line + "\n", encoding="utf-8")
    assert [p.native_id for p in source.fetch(first.cursor, pseudonym_key=KEY).posts] == ["2"]


def test_duplicate_ids_blank_lines_and_bad_bytes(tmp_path: Path) -> None:
    (tmp_path / "x.jsonl").write_bytes(
        json.dumps(post("1")).encode() + b"\n\n" + json.dumps(post("1")).encode() + b"\n"
        + b'{"id": "9", "text": "\xff\xfe"}\n'
    )
    result = make(tmp_path).fetch(None, pseudonym_key=KEY)
    assert [p.native_id for p in result.posts] == ["1"]
    assert [r.record_ref for r in result.rejects] == ["x.jsonl:3", "x.jsonl:4"]
    assert "duplicate id '1', first at x.jsonl:1" in result.rejects[0].reason
    assert result.rejects[1].reason.startswith("not UTF-8")


def test_reject_excerpt_masks_personal_data(tmp_path: Path) -> None:
    write_drop(tmp_path, ['{"id": "5", "text": "call 312-555-0147 or mail jo@example.com"'], "bad")
    (reject,) = make(tmp_path).fetch(None, pseudonym_key=KEY).rejects
    assert "555-0147" not in reject.raw_excerpt and "jo@example.com" not in reject.raw_excerpt
    assert "[phone]" in reject.raw_excerpt and "[email]" in reject.raw_excerpt


def test_missing_drop_dir_is_one_reject(tmp_path: Path) -> None:
    result = make(tmp_path / "nowhere").fetch("c", pseudonym_key=KEY)
    assert result.posts == [] and result.cursor == "c"
    assert len(result.rejects) == 1 and "does not exist" in result.rejects[0].reason


def test_empty_drop_dir_returns_nothing(tmp_path: Path) -> None:
    result = make(tmp_path).fetch(None, pseudonym_key=KEY)
    assert (result.posts, result.rejects, result.cursor) == ([], [], None)


def test_pattern_limits_the_files_read(tmp_path: Path) -> None:
    write_drop(tmp_path, [post("1")], "a")
    (tmp_path / "notes.txt").write_text("not a post\n", encoding="utf-8")
    result = make(tmp_path).fetch(None, pseudonym_key=KEY)
    assert [p.native_id for p in result.posts] == ["1"] and result.rejects == []


@pytest.mark.parametrize(
    ("text", "handles", "expected"),
    [
        ("@DemoCity311 pothole", ["DemoCity311"], True),
        ("pothole @democity311", ["@DemoCity311"], True),
        ("pothole (cc @DEMOCITY311)", ["DemoCity311"], True),
        ("pothole DemoCity311", ["DemoCity311"], False),
        ("pothole @DemoCity3110", ["DemoCity311"], False),
        ("mail me at x@DemoCity311", ["DemoCity311"], False),
        ("@DemoCity311 pothole", [], False),
        ("@other @cdot hello", ["DemoCity311", "cdot"], True),
    ],
)
def test_mentions_handle(text: str, handles: list[str], expected: bool) -> None:
    assert mentions_handle(text, handles) is expected


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("  pothole\x00 here \x1b[0m ", "pothole here [0m"),
        ("line one\nline two\ttab", "line one\nline two\ttab"),
        ("\x85\x9f\x7f", ""),
        ("café 😡", "café 😡"),
    ],
)
def test_clean_text(raw: str, clean: str) -> None:
    assert clean_text(raw) == clean
