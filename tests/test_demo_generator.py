"""The bundled demo city: its config, its geometry files and the seeded post generator."""

from __future__ import annotations

import importlib.util
import json
import math
from collections import Counter
from datetime import datetime, timedelta
from importlib import resources
from pathlib import Path

import pytest

from social311.config import load_config
from social311.demo import phrases
from social311.demo.generate import generate_demo, generate_malformed, generate_posts, load_places, write_drop
from social311.integrations import registry
from social311.integrations.sources.file_drop import FileDropConfig, FileDropSource
from social311.privacy import mask_personal_data

DEMO = Path(str(resources.files("social311.demo")))
ROOT = Path(__file__).resolve().parents[1]
CHICAGO = ROOT.parent / "shared" / "data" / "chicago"
KEYS = {"id", "created_at", "user", "text", "geo", "place", "repost_of", "reply_to", "lang"}


def metres(a: tuple[float, float], b: tuple[float, float]) -> float:
    dlat = (a[0] - b[0]) * 111_320
    dlon = (a[1] - b[1]) * 111_320 * math.cos(math.radians(a[0]))
    return math.hypot(dlat, dlon)


def when(post: dict) -> datetime:
    return datetime.fromisoformat(post["created_at"].replace("Z", "+00:00"))


@pytest.fixture(scope="module")
def demo() -> tuple[list[dict], dict]:
    return generate_demo(seed=0)


@pytest.fixture(scope="module")
def by_id(demo) -> dict[str, dict]:
    return {p["id"]: p for p in demo[0]}


def test_same_seed_same_output_other_seed_other_output() -> None:
    assert json.dumps(generate_demo(seed=5, n_incidents=12)) == json.dumps(generate_demo(seed=5, n_incidents=12))
    assert generate_posts(seed=5, n_incidents=12) != generate_posts(seed=6, n_incidents=12)
    assert generate_malformed(seed=2) == generate_malformed(seed=2)


def test_records_look_like_a_platform_export(demo) -> None:
    posts, _ = demo
    json.dumps(posts)
    assert all(set(p) == KEYS for p in posts)
    assert len({p["id"] for p in posts}) == len(posts)
    assert all(p["created_at"].endswith("Z") for p in posts)
    assert [when(p) for p in posts] == sorted(when(p) for p in posts)
    assert all(p["user"]["handle"] and p["user"]["name"] for p in posts)
    assert all(p["geo"] is None or set(p["geo"]) == {"lat", "lon"} for p in posts)
    assert all(p["place"] is None or len(p["place"]["bbox"]) == 4 for p in posts)


def test_incidents_cover_every_issue_kind_with_several_posts(demo, by_id) -> None:
    _, truth = demo
    assert len(truth) == 40
    assert set(Counter(i["kind"] for i in truth.values())) == set(phrases.REPORTS)
    sizes = [len(i["post_ids"]) for i in truth.values()]
    assert min(sizes) >= 1 and max(sizes) <= 5
    assert sum(2 <= s <= 5 for s in sizes) >= 20
    assert all(pid in by_id for i in truth.values() for pid in i["post_ids"] + i["repost_ids"])


def test_posts_of_one_incident_are_close_in_time_and_space(demo, by_id) -> None:
    for key, inc in demo[1].items():
        posts = [by_id[pid] for pid in inc["post_ids"]]
        times = [when(p) for p in posts]
        assert max(times) - min(times) <= timedelta(hours=6, minutes=1), key
        for p in posts:
            if p["geo"]:
                assert metres((p["geo"]["lat"], p["geo"]["lon"]), (inc["lat"], inc["lon"])) <= 40.01, key


def test_every_incident_can_be_located(demo, by_id) -> None:
    places = {p["place_id"]: p for p in load_places()}
    for key, inc in demo[1].items():
        place = places[inc["place_id"]]
        assert metres((place["lat"], place["lon"]), (inc["lat"], inc["lon"])) <= 25.01
        names = [n.lower() for n in [place["name"], *place["aliases"]]]
        streets = [s.lower() for s in (place["aliases"][0].split(" & ") if place["kind"] == "intersection" else [])]

        def named(text: str) -> bool:
            text = text.lower()
            return any(n in text for n in names) or (bool(streets) and all(s in text for s in streets))

        assert any(by_id[pid]["geo"] or named(by_id[pid]["text"]) for pid in inc["post_ids"]), key


def test_reposts_point_to_earlier_posts_of_the_same_incident(demo, by_id) -> None:
    reposts = [(inc, by_id[rid]) for inc in demo[1].values() for rid in inc["repost_ids"]]
    assert reposts
    for inc, repost in reposts:
        original = by_id[repost["repost_of"]]
        assert original["id"] in inc["post_ids"]
        assert when(repost) > when(original)
        assert repost["text"].startswith(f"RT @{original['user']['handle']}: ")


def test_noise_is_about_half_and_city_is_tagged_sometimes(demo) -> None:
    posts, truth = demo
    incident_ids = {pid for inc in truth.values() for pid in inc["post_ids"] + inc["repost_ids"]}
    noise = [p for p in posts if p["id"] not in incident_ids]
    assert 0.4 <= len(noise) / len(posts) <= 0.6
    reports = [p for p in posts if p["id"] in incident_ids and not p["repost_of"]]
    tagged = sum(f"@{phrases.CITY_HANDLE}".lower() in p["text"].lower() for p in reports)
    assert 0.1 * len(reports) <= tagged <= 0.6 * len(reports)
    assert any(p["geo"] for p in noise)


def test_some_posts_carry_personal_data_that_masking_removes(demo) -> None:
    texts = [p["text"] for p in demo[0]]
    with_pii = [t for t in texts if "555-0147" in t or "@example.com" in t]
    assert any("555-0147" in t for t in with_pii) and any("@example.com" in t for t in with_pii)
    for text in with_pii:
        masked = mask_personal_data(text)
        assert "555-0147" not in masked and "example.com" not in masked


def test_every_generated_post_is_accepted_and_malformed_lines_rejected(tmp_path: Path, demo) -> None:
    write_drop(tmp_path, demo[0], "posts-001")
    write_drop(tmp_path, generate_malformed(seed=0), "posts-002")
    source = FileDropSource(FileDropConfig(drop_dir=str(tmp_path), city_handles=["DemoCity311"]), instance_name="demo")
    result = source.fetch(None, pseudonym_key="k")
    assert len(result.posts) == len(demo[0]) + 1  # + the hostile-but-valid line
    assert len(result.rejects) == len(generate_malformed(seed=0)) - 1
    assert any(p.mentions_city for p in result.posts) and not all(p.mentions_city for p in result.posts)


def test_write_drop_writes_jsonl_atomically(tmp_path: Path) -> None:
    path = write_drop(tmp_path / "drop", [{"id": "1", "text": "é"}, "raw line"], "feed")
    assert path == tmp_path / "drop" / "feed.jsonl"
    assert path.read_text(encoding="utf-8") == '{"id": "1", "text": "é"}\nraw line\n'
    assert sorted(p.name for p in path.parent.iterdir()) == ["feed.jsonl"]


def test_city_yaml_loads_and_names_registered_plugins() -> None:
    cfg = load_config(DEMO / "city.yaml")
    assert cfg.jurisdiction_id == "demo.social311.local" and cfg.filing_enabled
    (source,) = cfg.sources
    assert (source.plugin, source.instance_name) == ("file_drop", "demo_feed")
    assert Path(source.config["drop_dir"]) == DEMO / "drop"
    assert {"file_drop"} <= set(registry.available("sources")) and "geojson" in registry.available("gis")
    ward_set = registry.build("gis", cfg.gis).wards()
    assert len(ward_set.wards) == 8 and ward_set.version == "chicago-2015"
    min_lon, min_lat, max_lon, max_lat = cfg.bbox
    assert all(min_lon <= p["lon"] <= max_lon and min_lat <= p["lat"] <= max_lat for p in load_places())


def test_bundled_files_are_small_and_documented() -> None:
    assert (DEMO / "wards.geojson").stat().st_size < 150_000
    assert (DEMO / "places.geojson").stat().st_size < 150_000
    provenance = (DEMO / "PROVENANCE.md").read_text(encoding="utf-8")
    assert "City of Chicago" in provenance and "build_demo_city.py" in provenance


@pytest.mark.skipif(not CHICAGO.exists(), reason=f"Chicago source data not found at {CHICAGO}")
def test_build_script_reproduces_the_committed_files(tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location("build_demo_city", ROOT / "scripts" / "build_demo_city.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.main(["--data", str(CHICAGO), "--out", str(tmp_path)])
    for name in ("wards.geojson", "places.geojson"):
        assert (tmp_path / name).read_bytes() == (DEMO / name).read_bytes(), name
