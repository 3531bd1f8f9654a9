"""Build the bundled demo city from real Chicago geometry (deterministic).

Writes ``demo/wards.geojson`` (8 central wards, simplified) and ``demo/places.geojson`` (named
intersections of major streets inside them, plus a few landmarks) from the City of Chicago
exports in the shared data folder. The outputs are committed, so the demo runs on a machine
without that folder; run this only to rebuild them::

    .venv/bin/python scripts/build_demo_city.py [--data /work/shared/data/chicago] [--out demo]
"""

from __future__ import annotations

import argparse
import json
import re
from collections import Counter
from pathlib import Path

import shapely
from shapely.geometry import MultiPolygon, Point, Polygon, mapping, shape
from shapely.ops import unary_union

# A compact, contiguous block around the Loop (the most compact 8-ward set we tried there).
WARDS = ("1", "2", "3", "4", "11", "25", "27", "42")
TOLERANCE_DEG = 0.0002  # about 17 m: keeps ward edges within a street width
N_INTERSECTIONS = 250

# Public coordinates of well-known landmarks, each checked to fall inside the chosen wards.
LANDMARKS: tuple[tuple[str, str, float, float, tuple[str, ...]], ...] = (
    ("millennium-park", "Millennium Park", 41.8826, -87.6226, ("Millenium Park", "the Bean", "Cloud Gate")),
    ("union-station", "Union Station", 41.8787, -87.6403, ("Chicago Union Station",)),
    ("willis-tower", "Willis Tower", 41.8789, -87.6359, ("Sears Tower",)),
    ("art-institute", "Art Institute of Chicago", 41.8796, -87.6237, ("Art Institute", "the Art Institute")),
    ("merchandise-mart", "Merchandise Mart", 41.8885, -87.6354, ("the Mart",)),
    ("navy-pier", "Navy Pier", 41.8917, -87.6050, ()),
    ("daley-plaza", "Daley Plaza", 41.8841, -87.6301, ("Daley Center", "Richard J. Daley Center")),
    ("buckingham-fountain", "Buckingham Fountain", 41.8758, -87.6189, ("Clarence Buckingham Fountain",)),
    ("field-museum", "Field Museum", 41.8663, -87.6170, ("the Field Museum",)),
    ("shedd-aquarium", "Shedd Aquarium", 41.8676, -87.6140, ("the Shedd",)),
    ("soldier-field", "Soldier Field", 41.8623, -87.6167, ()),
    ("united-center", "United Center", 41.8807, -87.6742, ()),
    ("mccormick-place", "McCormick Place", 41.8514, -87.6166, ()),
    ("harold-washington-library", "Harold Washington Library", 41.8764, -87.6282, ("Harold Washington Library Center",)),
)

_DIRECTION = re.compile(r"^(N|S|E|W) ")
_TYPE = re.compile(r" (ST|AVE|BLVD|RD|DR|PKWY|PL|CT|TER|HWY|WAY|LN|PLZ|SQ)$")


def _rounded(geom):
    """Round coordinates to 5 decimals (about 1 m) and repair what rounding may break."""
    geom = shapely.set_precision(geom, 1e-5)
    geom = shapely.make_valid(geom)
    polys = [g for g in getattr(geom, "geoms", [geom]) if isinstance(g, (Polygon, MultiPolygon))]
    return MultiPolygon([p for g in polys for p in getattr(g, "geoms", [g])])


def build_wards(wards_path: Path) -> tuple[list[dict], object]:
    """The chosen wards, simplified, as GeoJSON features; and their union for clipping."""
    data = json.loads(wards_path.read_text(encoding="utf-8"))
    chosen = sorted((f for f in data["features"] if str(f["properties"]["ward"]) in WARDS),
                    key=lambda f: int(f["properties"]["ward"]))
    # Simplifying the wards together keeps shared edges shared: simplifying each ward on its own
    # (shapely's simplify) opens gaps between neighbours where points would fall in no ward.
    geoms = shapely.coverage_simplify([shape(f["geometry"]) for f in chosen], TOLERANCE_DEG)
    geoms = [_rounded(g) for g in geoms]
    features = [{"type": "Feature",
                 "properties": {"ward_id": str(f["properties"]["ward"]), "name": f"Ward {f['properties']['ward']}"},
                 "geometry": mapping(g)} for f, g in zip(chosen, geoms)]
    return features, unary_union(geoms)


def _base(street: str) -> str:
    """``"S STATE ST"`` -> ``"STATE ST"``: directions split one street into two names."""
    return _DIRECTION.sub("", street)


def _short(street: str) -> str:
    """``"S STATE ST"`` -> ``"State"``: how residents name a street."""
    return _title(_TYPE.sub("", _base(street))).replace("La Salle", "LaSalle")


def _title(name: str) -> str:
    """Title case that leaves ``18TH`` as ``18th`` (``str.title`` gives ``18Th``)."""
    return " ".join(word.capitalize() for word in name.split())


def build_places(intersections_path: Path, area) -> list[dict]:
    """Named intersections of the most-crossed streets inside ``area``, then the landmarks."""
    data = json.loads(intersections_path.read_text(encoding="utf-8"))
    inside = [f for f in data["features"]
              if area.contains(Point(f["geometry"]["coordinates"]))
              and not f["properties"]["street_1"].endswith(("ER", "XR"))
              and not f["properties"]["street_2"].endswith(("ER", "XR"))]
    crossings = Counter(_base(f["properties"][k]) for f in inside for k in ("street_1", "street_2"))
    best: dict[tuple[str, str], dict] = {}
    for feat in sorted(inside, key=lambda f: f["properties"]["intersection"]):
        props = feat["properties"]
        pair = tuple(sorted((_base(props["street_1"]), _base(props["street_2"]))))
        if pair[0] != pair[1]:
            best.setdefault(pair, feat)  # one point per pair of streets: the first by name
    ranked = sorted(best.items(), key=lambda kv: (-min(crossings[s] for s in kv[0]), kv[0]))
    places = []
    for (_pair, feat) in ranked[:N_INTERSECTIONS]:
        props = feat["properties"]
        s1, s2 = _title(props["street_1"]), _title(props["street_2"])
        a, b = _short(props["street_1"]), _short(props["street_2"])
        slug = re.sub(r"[^a-z0-9]+", "-", f"{a} {b}".lower()).strip("-")
        places.append(_point(f"int-{slug}", f"{s1} & {s2}", "intersection",
                             feat["geometry"]["coordinates"],
                             aliases=[f"{a} & {b}", f"{a} and {b}"], streets=[s1, s2]))
    for slug, name, lat, lon, aliases in LANDMARKS:
        if not area.contains(Point(lon, lat)):
            raise SystemExit(f"landmark {name} is outside the demo wards")
        places.append(_point(f"lm-{slug}", name, "landmark", [lon, lat], aliases=list(aliases), streets=[]))
    return places


def _point(place_id, name, kind, coords, *, aliases, streets) -> dict:
    return {"type": "Feature",
            "properties": {"place_id": place_id, "name": name, "kind": kind,
                           "aliases": aliases, "streets": streets},
            "geometry": {"type": "Point", "coordinates": [round(coords[0], 5), round(coords[1], 5)]}}


def _write(path: Path, features: list[dict]) -> None:
    # One feature a line: small diffs when the demo is rebuilt.
    lines = ",\n".join(json.dumps(f, separators=(",", ":")) for f in features)
    path.write_text('{"type":"FeatureCollection","features":[\n' + lines + "\n]}\n", encoding="utf-8")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("/work/shared/data/chicago"))
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent.parent / "demo")
    args = parser.parse_args(argv)
    wards, area = build_wards(args.data / "chicago_wards_2015_2023.geojson")
    places = build_places(args.data / "chicago_intersections.geojson", area)
    _write(args.out / "wards.geojson", wards)
    _write(args.out / "places.geojson", places)
    print(f"wrote {len(wards)} wards and {len(places)} places to {args.out}")


if __name__ == "__main__":
    main()
