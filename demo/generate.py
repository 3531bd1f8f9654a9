"""Seeded generator of the demo city's posts, as a platform export would deliver them.

Incidents are placed at real named intersections and landmarks of ``places.geojson``; each is
reported by one to five residents, in different words, within hours and about 100 m, some
geotagged, some naming the corner in text, some tagging the city's account. About half of all
posts are unrelated chatter. The same seed always gives byte-identical output.
"""

from __future__ import annotations

import json
import math
import random
from datetime import datetime, timedelta, timezone
from importlib import resources
from pathlib import Path
from typing import Any

from social311.demo import phrases

DEFAULT_START = datetime(2024, 5, 6, 7, 0, tzinfo=timezone.utc)
# The platform's coarse place for posts without coordinates: the whole city.
CITY_PLACE = {"name": "Chicago, IL", "bbox": [-87.94011, 41.64454, -87.52414, 42.02304]}
_ID_BASE = 1_790_000_000_000_000_000
_M_PER_DEG = 111_320.0


def load_places() -> list[dict[str, Any]]:
    """The bundled gazetteer as flat dicts (``place_id``, ``name``, ``kind``, ``lat``, ``lon``, ...)."""
    text = resources.files("social311.demo").joinpath("places.geojson").read_text(encoding="utf-8")
    return [{**f["properties"], "lon": f["geometry"]["coordinates"][0], "lat": f["geometry"]["coordinates"][1]}
            for f in json.loads(text)["features"]]


def jitter(rng: random.Random, lat: float, lon: float, max_m: float) -> tuple[float, float]:
    """A point uniformly within ``max_m`` metres of (lat, lon), rounded to 6 decimals."""
    r, angle = max_m * math.sqrt(rng.random()), rng.uniform(0, 2 * math.pi)
    dlat = r * math.cos(angle) / _M_PER_DEG
    dlon = r * math.sin(angle) / (_M_PER_DEG * math.cos(math.radians(lat)))
    return round(lat + dlat, 6), round(lon + dlon, 6)


def _fill(rng: random.Random, template: str, place: dict[str, Any], landmarks: list[dict[str, Any]]) -> str:
    """Fill ``{a}``/``{b}`` (crossing streets) and ``{L}`` (a landmark) the way residents write them."""
    a, b = ("State", "Lake")  # noise templates may name a corner even when placed at a landmark
    if place["kind"] == "intersection" and place.get("aliases"):
        a, b = place["aliases"][0].split(" & ", 1)
    landmark = rng.choice(landmarks)
    return template.format(a=a, b=b, L=rng.choice([landmark["name"], *landmark.get("aliases", [])]))


def _where(rng: random.Random, place: dict[str, Any], landmarks: list[dict[str, Any]]) -> str:
    if place["kind"] == "landmark":
        return rng.choice(phrases.AT_LANDMARK).format(L=rng.choice([place["name"], *place.get("aliases", [])]))
    return _fill(rng, rng.choice(phrases.AT_INTERSECTION), place, landmarks)


def _sentence(rng: random.Random, body: str) -> str:
    """Wrap a report in an optional opener and closer, punctuated as a resident would."""
    closer = rng.choice(phrases.CLOSERS)
    if closer[1:2].isupper() and body[-1] not in ".!?":
        body += "."
    return rng.choice(phrases.OPENERS) + body + closer


def _users(rng: random.Random, n: int) -> list[dict[str, str]]:
    users, handles = [], set()
    while len(users) < n:
        handle = f"{rng.choice(phrases.HANDLE_WORDS)}{rng.choice(phrases.HANDLE_NOUNS)}{rng.randrange(10, 99)}"
        if handle not in handles:
            handles.add(handle)
            users.append({"handle": handle, "name": f"{rng.choice(phrases.FIRST_NAMES)} {chr(rng.randrange(65, 91))}."})
    return users


def _post(key: str, at: datetime, user: dict[str, str], text: str, geo=None, place=None, repost_of=None) -> dict:
    return {"id": key, "created_at": at, "user": dict(user), "text": text, "geo": geo, "place": place,
            "repost_of": repost_of, "reply_to": None, "lang": "en"}


def generate_demo(seed: int = 0, n_incidents: int = 40, start: datetime = DEFAULT_START,
                  places: list[dict[str, Any]] | None = None) -> tuple[list[dict[str, Any]], dict[str, dict[str, Any]]]:
    """Posts of the demo city and the ground truth behind them.

    Args:
        seed: the random seed; the same seed gives identical output.
        n_incidents: how many real problems residents report (each by 1-5 posts).
        start: the first moment of the week the posts cover (UTC).
        places: the gazetteer as from :func:`load_places` (default: the bundled one).

    Returns:
        ``(posts, truth)``: posts sorted by time, JSON-serialisable; truth maps an incident key
        (``"inc-007"``) to ``{"kind", "place_id", "lat", "lon", "post_ids", "repost_ids"}``.
        Posts in no incident are noise.
    """
    rng = random.Random(seed)
    places = places if places is not None else load_places()
    corners = [p for p in places if p["kind"] == "intersection"]
    landmarks = [p for p in places if p["kind"] == "landmark"]
    users = _users(rng, 60)
    kinds = list(phrases.REPORTS)
    rng.shuffle(kinds)
    posts: list[dict[str, Any]] = []
    truth: dict[str, dict[str, Any]] = {}
    for i in range(n_incidents):
        kind = kinds[i % len(kinds)]
        place = rng.choice(landmarks) if landmarks and rng.random() < 0.15 else rng.choice(corners)
        lat, lon = jitter(rng, place["lat"], place["lon"], 25)
        t0 = start + timedelta(minutes=rng.randrange(0, 6 * 24 * 60))
        n_posts = rng.choice((1, 2, 2, 3, 3, 4, 5))
        templates = rng.sample(phrases.REPORTS[kind], min(n_posts, len(phrases.REPORTS[kind])))
        inc = truth[f"inc-{i:03d}"] = {"kind": kind, "place_id": place["place_id"], "lat": lat, "lon": lon,
                                      "post_ids": [], "repost_ids": []}
        for j, user in enumerate(rng.sample(users, n_posts)):
            # The first report is always locatable; later ones may lean on it.
            mode = rng.choices(("geo", "text", "both", "none"), (35, 40, 15, 10 if j else 0))[0]
            where = _where(rng, place, landmarks) if mode in ("text", "both") else rng.choice(phrases.AT_NOWHERE)
            text = _sentence(rng, templates[j % len(templates)].format(at=where))
            if rng.random() < 0.3:
                text = f"@{phrases.CITY_HANDLE} {text}" if rng.random() < 0.5 else f"{text} @{phrases.CITY_HANDLE}"
            if rng.random() < 0.15:
                text = text.lower()
            if j == 0 and i < len(phrases.PII_SUFFIXES):
                text += phrases.PII_SUFFIXES[i]
            geo = dict(zip(("lat", "lon"), jitter(rng, lat, lon, 40))) if mode in ("geo", "both") else None
            place_field = dict(CITY_PLACE) if geo is None and rng.random() < 0.5 else None
            at = t0 + timedelta(minutes=rng.randrange(0, 6 * 60) if j else 0, seconds=rng.randrange(60))
            key = f"i{i}p{j}"
            posts.append(_post(key, at, user, text, geo, place_field))
            inc["post_ids"].append(key)
            if rng.random() < 0.2:
                fan = rng.choice(users)
                posts.append(_post(f"i{i}r{j}", at + timedelta(minutes=rng.randrange(5, 180)), fan,
                                   f"RT @{user['handle']}: {text}", repost_of=key))
                inc["repost_ids"].append(f"i{i}r{j}")
    for k in range(len(posts)):
        place = rng.choice(corners)
        text = _fill(rng, rng.choice(phrases.NOISE), place, landmarks)
        geo = dict(zip(("lat", "lon"), jitter(rng, place["lat"], place["lon"], 200))) if rng.random() < 0.2 else None
        at = start + timedelta(minutes=rng.randrange(0, 7 * 24 * 60), seconds=rng.randrange(60))
        posts.append(_post(f"n{k}", at, rng.choice(users), text, geo))
    return _finalise(rng, posts, truth)


def _finalise(rng: random.Random, posts: list[dict[str, Any]], truth: dict[str, dict[str, Any]]):
    """Give posts time-ordered, platform-style numeric ids and ISO timestamps."""
    posts.sort(key=lambda p: (p["created_at"], p["id"]))
    ids = {p["id"]: str(_ID_BASE + n * 1000 + rng.randrange(1000)) for n, p in enumerate(posts)}
    for p in posts:
        p["id"] = ids[p["id"]]
        p["repost_of"] = ids[p["repost_of"]] if p["repost_of"] else None
        p["created_at"] = p["created_at"].strftime("%Y-%m-%dT%H:%M:%SZ")
    for inc in truth.values():
        inc["post_ids"] = [ids[k] for k in inc["post_ids"]]
        inc["repost_ids"] = [ids[k] for k in inc["repost_ids"]]
    return posts, truth


def generate_posts(seed: int = 0, n_incidents: int = 40, start: datetime = DEFAULT_START,
                   places: list[dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    """The posts of :func:`generate_demo` without the ground truth."""
    return generate_demo(seed, n_incidents, start, places)[0]


def generate_malformed(seed: int = 0) -> list[str]:
    """JSONL lines a real export delivers now and then, one problem each.

    Every line must be rejected with its reason, except the last: hostile-looking but valid
    text (control characters, HTML, SQL) that must pass through as plain data.
    """
    rng = random.Random(seed)
    n = rng.randrange(1000, 9999)
    base = {"created_at": "2024-05-07T12:00:00Z", "user": {"handle": "edgecase"}, "lang": "en"}

    def line(key: str, **fields: Any) -> str:
        return json.dumps({"id": f"bad-{n}-{key}", **base, **fields})

    return [
        line("broken", text="pothole on Clark")[:-7],
        line("notext"),
        line("emptytext", text="  \t "),
        line("badtime", text="Pothole at State and Lake", created_at="yesterday-ish"),
        line("notz", text="Pothole at State and Lake", created_at="2024-05-07T12:00:00"),
        line("latrange", text="Streetlight out at Wells & Adams", geo={"lat": 123.4, "lon": -87.63}),
        line("latonly", text="Streetlight out at Wells & Adams", geo={"lat": 41.879}),
        line("huge", text="pothole " * 2500),
        json.dumps(["not", "an", "object"]),
        json.dumps({"id": f"hostile-{n}", **base,
                    "text": "Pothole at Clark & Lake \x07\x1b[31m <script>alert('x')</script> "
                            "Robert'); DROP TABLE raw.posts;-- ' OR 1=1 {{7*7}} ${jndi:x}"}),
    ]


def write_drop(folder: Path, records: list[dict[str, Any] | str], name: str) -> Path:
    """Write records (dicts, or raw lines as strings) as one JSON Lines file of a drop folder.

    The file appears at once (written aside, then renamed), so a source reading the folder
    never sees half of it.

    Returns:
        The path of the file written.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / (name if name.endswith(".jsonl") else f"{name}.jsonl")
    lines = [r if isinstance(r, str) else json.dumps(r, ensure_ascii=False) for r in records]
    tmp = folder / f".{path.name}.tmp"
    tmp.write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")
    tmp.replace(path)
    return path


#: A week's ids never reach this offset (posts are numbered ``n * 1000 + r`` with ``n`` < 10^6).
_WEEK_ID_STRIDE = 1_000_000_000


def generate_stream(n_posts: int, *, seed: int = 0, n_incidents: int = 40, start: datetime = DEFAULT_START,
                    places: list[dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    """``n_posts`` posts of the demo city as a long stream: seeded demo weeks, one after another.

    Week ``w`` is :func:`generate_demo` with seed ``seed + w`` starting ``w`` weeks after
    ``start`` (about 260 posts and ``n_incidents`` incidents a week, as in the demo), so a city's
    stream at the demo's density; ids are shifted by week so they stay unique, numeric and
    time-ordered, and reposts point at the shifted ids. The stream is cut at ``n_posts``. The
    same arguments always give the same posts (bench/pipeline_100k.py uses 100,000 of them).
    """
    places = places if places is not None else load_places()
    posts: list[dict[str, Any]] = []
    week = 0
    while len(posts) < n_posts:
        batch = generate_posts(seed=seed + week, n_incidents=n_incidents, start=start + timedelta(days=7 * week),
                               places=places)
        shift = week * _WEEK_ID_STRIDE
        for p in batch:
            p["id"] = str(int(p["id"]) + shift)
            if p["repost_of"]:
                p["repost_of"] = str(int(p["repost_of"]) + shift)
        posts.extend(batch)
        week += 1
    # A repost cut off from its original at the end is fine: the original is simply not in the stream.
    return posts[:n_posts]
