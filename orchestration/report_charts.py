"""The report's charts: Vega-Altair specifications rendered to static SVG by vl-convert.

Vega-Lite gives the map, trends and sentiment their legends, axes, date ticks and shared
scales; vl-convert renders them in-process (an embedded JavaScript engine, no browser, no
network) to SVG that is written into the page, so the report stays one self-contained file
with no script at all. Rendering costs ~0.1 s a chart.
"""

from __future__ import annotations

import hashlib
import json
from contextlib import contextmanager
from datetime import date
from pathlib import Path

import altair as alt
import shapely
import vl_convert as vlc
from shapely import wkt as shapely_wkt
from shapely.geometry import mapping
from shapely.geometry.polygon import orient

FONT = "DejaVu Sans, sans-serif"
INCIDENT_COLOR = "#1a4d8f"


#: Validate each spec against the Vega-Lite JSON schema. Off in production: Altair's jsonschema
#: walk cost more than the rendering itself (~40% of ``ward_report`` on the bench warehouse) for
#: specs this module builds the same way every run; ``tests/test_report_html.py`` turns it on.
VALIDATE_SPECS = False


class SvgCache:
    """Rendered charts kept on disk by the SHA-256 of their Vega-Lite spec.

    A scheduled run re-renders the report every 15 minutes, mostly with the same data: a chart
    whose spec (data included) is unchanged is read back instead of being rendered again by
    vl-convert. Only the charts of the latest report are kept (``prune``).
    """

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.used: set[str] = set()
        self.hits = 0
        self.misses = 0

    def get(self, spec: dict) -> str:
        key = hashlib.sha256(json.dumps(spec, sort_keys=True, default=str).encode()).hexdigest()[:32]
        self.used.add(key)
        path = self.folder / f"{key}.svg"
        if path.exists():
            self.hits += 1
            return path.read_text(encoding="utf-8")
        self.misses += 1
        svg = _render(spec)
        self.folder.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(svg, encoding="utf-8")
        tmp.replace(path)
        return svg

    def prune(self) -> None:
        """Drop the charts this report no longer shows."""
        for path in self.folder.glob("*.svg"):
            if path.stem not in self.used:
                path.unlink(missing_ok=True)


_cache: SvgCache | None = None


@contextmanager
def svg_cache(folder: str | Path):
    """Charts rendered inside this block are cached under ``folder`` (see :class:`SvgCache`)."""
    global _cache
    previous, _cache = _cache, SvgCache(Path(folder))
    try:
        yield _cache
        _cache.prune()
    finally:
        _cache = previous


def _render(spec: dict) -> str:
    svg = vlc.vegalite_to_svg(spec)
    # vl-convert writes an XML prolog; inside HTML only the <svg> element belongs.
    return svg[svg.index("<svg"):]


def _svg(chart: alt.TopLevelMixin, datasets: dict[str, list[dict]]) -> str:
    """Render ``chart``, whose data are ``alt.NamedData`` references to ``datasets``.

    The rows go into the spec's top-level ``datasets`` after Altair has built it: Altair deep-copies
    and walks every value it holds (the ward polygons' ~100,000 coordinates, once per page), which
    was most of the report's time; Vega-Lite reads named datasets the same as inline values.
    """
    spec = chart.configure(font=FONT).configure_view(stroke=None).to_dict(validate=VALIDATE_SPECS)
    spec["datasets"] = {**spec.get("datasets", {}), **datasets}
    return _cache.get(spec) if _cache is not None else _render(spec)


def _clockwise(geom):
    # d3-geo (Vega's projection) reads a counter-clockwise ring as "the whole globe but this":
    # exterior rings must be clockwise, the opposite of GeoJSON's RFC 7946 rule.
    polys = getattr(geom, "geoms", [geom])
    fixed = [orient(p, sign=-1.0) for p in polys]
    return fixed[0] if len(fixed) == 1 else type(geom)(fixed)


def ward_features(wards: list[dict], counts: dict[str, int], names: dict[str, str] | None = None,
                  highlight: str | None = None) -> list[dict]:
    """GeoJSON features of the wards with their name (as the tables show it), incidents and label point."""
    features = []
    for w in wards:
        shape = shapely_wkt.loads(w["geom_wkt"])
        label = shape.representative_point()
        features.append({"type": "Feature", "geometry": mapping(shapely.force_2d(_clockwise(shape))),
                         "properties": {"ward_id": w["ward_id"], "name": (names or {}).get(w["ward_id"]) or w.get("name") or w["ward_id"],
                                        "incidents": counts.get(w["ward_id"], 0), "lon": label.x, "lat": label.y,
                                        "is_this_ward": highlight is None or w["ward_id"] == highlight}})
    return features


def ward_map(wards: list[dict], counts: dict[str, int], points: list[tuple[float, float]], *,
             names: dict[str, str] | None = None, highlight: str | None = None, width: int = 520) -> str:
    """The wards shaded by incidents (with a legend), each labelled with its name, incidents as dots.

    With ``highlight``, that ward is shaded and named and the others are grey context.
    """
    if not wards:
        return "<p>No ward boundaries loaded.</p>"
    features = ward_features(wards, counts, names, highlight)
    shapes = alt.NamedData(name="wards")
    datasets = {"wards": features}
    top = max(counts.values(), default=0) or 1
    fill = alt.Color("properties.incidents:Q", title="Incidents", scale=alt.Scale(scheme="oranges", domain=[0, top]),
                     legend=alt.Legend(orient="right", gradientLength=120))
    base = alt.Chart(shapes).mark_geoshape(stroke="#333", strokeWidth=0.8).encode(
        color=alt.condition("datum.properties.is_this_ward", fill, alt.value("#eeeeee")),
        tooltip=[alt.Tooltip("properties.name:N", title="Ward"), alt.Tooltip("properties.incidents:Q", title="Incidents")])
    labels = alt.Chart(shapes).mark_text(fontSize=10, fontWeight="bold", color="#111").encode(
        longitude="properties.lon:Q", latitude="properties.lat:Q", text="properties.name:N",
    ).transform_filter("datum.properties.is_this_ward")
    layers = [base, labels]
    if points:
        datasets["incidents"] = [{"lon": lon, "lat": lat} for lon, lat in sorted(points)]
        dots = alt.Chart(alt.NamedData(name="incidents")).mark_circle(
            size=14, color=INCIDENT_COLOR, opacity=0.8).encode(longitude="lon:Q", latitude="lat:Q")
        layers.insert(1, dots)
    height = _map_height(features, width)
    return _svg(alt.layer(*layers).properties(width=width, height=height).project(type="mercator"), datasets)


def _map_height(features: list[dict], width: int) -> int:
    from shapely.geometry import shape

    bounds = [shape(f["geometry"]).bounds for f in features]
    min_x, min_y = min(b[0] for b in bounds), min(b[1] for b in bounds)
    max_x, max_y = max(b[2] for b in bounds), max(b[3] for b in bounds)
    import math

    kx = math.cos(math.radians((min_y + max_y) / 2))
    return int(max(120, min(900, width * (max_y - min_y) / max((max_x - min_x) * kx, 1e-9))))


def trend_chart(rows: list[dict], *, start: date, end: date, y_max: int, width: int = 560) -> str:
    """Reports per day, one row of bars per service, every row on the same y scale (0..``y_max``).

    ``rows``: dicts with ``service``, ``activity_date`` and ``posts``. The x axis runs from
    ``start`` to ``end`` on every page, so pages compare like with like.
    """
    if not rows:
        return "<p>No reports yet.</p>"
    # Sorted: the marts' row order varies between reads, and an unchanged chart must keep its
    # spec (and so its cached rendering, SvgCache).
    data = sorted(({"service": r["service"], "day": r["activity_date"].isoformat(), "posts": r["posts"]} for r in rows),
                  key=lambda r: (r["service"], r["day"]))
    # Busiest first; ties by name (a set's order changes with each process's string hashing, so
    # tied rows used to swap places between runs).
    order = sorted({r["service"] for r in data}, key=lambda s: (-sum(r["posts"] for r in data if r["service"] == s), s))
    x = alt.X("yearmonthdate(day):T", title=None, scale=alt.Scale(domain=[start.isoformat(), end.isoformat()]),
              axis=alt.Axis(format="%b %d", labelAngle=0, tickCount="day"))
    chart = alt.Chart(alt.NamedData(name="reports")).mark_bar(color="#c83c1e", width={"band": 0.8}).encode(
        x=x, y=alt.Y("posts:Q", title=None, scale=alt.Scale(domain=[0, max(y_max, 1)]), axis=alt.Axis(tickCount=3)),
        tooltip=["service:N", alt.Tooltip("day:T", format="%Y-%m-%d"), "posts:Q"],
    ).properties(width=width, height=46).facet(
        row=alt.Row("service:N", title=None, sort=order, header=alt.Header(labelAngle=0, labelAlign="left", labelLimit=220)),
        spacing=6).resolve_scale(y="shared", x="shared").properties(title="Reports a day (one scale on every row and page)")
    return _svg(chart, {"reports": data})


def sentiment_chart(rows: list[dict], *, start: date, end: date, width: int = 560) -> str:
    """Mean sentiment of report posts per day on a fixed −1..1 scale, zero marked."""
    data = [{"day": r["activity_date"].isoformat(), "sentiment": r["sentiment"], "posts": r["posts"]}
            for r in rows if r["sentiment"] is not None]
    if not data:
        return "<p>No sentiment yet.</p>"
    x = alt.X("yearmonthdate(day):T", title=None, scale=alt.Scale(domain=[start.isoformat(), end.isoformat()]),
              axis=alt.Axis(format="%b %d", labelAngle=0, tickCount="day"))
    y = alt.Y("sentiment:Q", title="Mean sentiment", scale=alt.Scale(domain=[-1, 1]))
    line = alt.Chart(alt.NamedData(name="sentiment")).mark_line(point=True, color=INCIDENT_COLOR).encode(
        x=x, y=y, tooltip=[alt.Tooltip("day:T", format="%Y-%m-%d"), "sentiment:Q", "posts:Q"])
    zero = alt.Chart(alt.Data(values=[{"zero": 0}])).mark_rule(color="#999", strokeDash=[4, 3]).encode(y="zero:Q")
    return _svg(alt.layer(zero, line).properties(width=width, height=140), {"sentiment": data})


def campaign_chart(rows: list[dict], *, start: date, end: date, width: int = 560) -> str:
    """Posts per day per campaign, one colour each, with a legend."""
    if not rows:
        return "<p>No campaign posts yet.</p>"
    data = [{"campaign": r["campaign"], "day": r["activity_date"].isoformat(), "posts": r["post_count"]} for r in rows]
    x = alt.X("yearmonthdate(day):T", title=None, scale=alt.Scale(domain=[start.isoformat(), end.isoformat()]),
              axis=alt.Axis(format="%b %d", labelAngle=0, tickCount="day"))
    chart = alt.Chart(alt.NamedData(name="campaigns")).mark_line(point=True).encode(
        x=x, y=alt.Y("posts:Q", title="Posts"), color=alt.Color("campaign:N", title="Campaign", legend=alt.Legend(orient="bottom")),
        tooltip=["campaign:N", alt.Tooltip("day:T", format="%Y-%m-%d"), "posts:Q"])
    return _svg(chart.properties(width=width, height=160), {"campaigns": data})
