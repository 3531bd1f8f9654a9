"""The static HTML ward report for council members: a map, ward table, trends and tickets.

Pure rendering: it takes plain rows and returns one self-contained HTML page (inline SVG and
CSS, no scripts, nothing fetched), so it opens from a file share or an e-mail attachment.
"""

from __future__ import annotations

import math
from html import escape
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime

from jinja2 import Environment, select_autoescape
from shapely import wkt as shapely_wkt


@dataclass
class ReportData:
    """Everything the report shows. Rows are dicts straight from the marts."""

    city: str
    generated_at: datetime
    totals: dict[str, int]
    wards: list[dict]  # ward_id, name, geom_wkt
    incidents: list[dict]  # rows of fct_incidents
    daily: list[dict]  # rows of fct_ward_issue_daily
    services: dict[str, str] = field(default_factory=dict)  # service_code -> name


def _svg_map(wards: list[dict], counts: dict[str, int], points: list[tuple[float, float]], width: int = 520) -> str:
    """Wards as an SVG choropleth of incident counts, with incident points on top."""
    shapes = [(w["ward_id"], shapely_wkt.loads(w["geom_wkt"])) for w in wards]
    if not shapes:
        return "<p>No ward boundaries loaded.</p>"
    min_x = min(s.bounds[0] for _, s in shapes)
    min_y = min(s.bounds[1] for _, s in shapes)
    max_x = max(s.bounds[2] for _, s in shapes)
    max_y = max(s.bounds[3] for _, s in shapes)
    # Equirectangular with the latitude's cosine: right enough at city scale.
    kx = math.cos(math.radians((min_y + max_y) / 2))
    scale = width / max((max_x - min_x) * kx, 1e-9)
    height = int((max_y - min_y) * scale) + 1

    def xy(x: float, y: float) -> str:
        return f"{(x - min_x) * kx * scale:.1f},{(max_y - y) * scale:.1f}"

    top = max(counts.values(), default=0) or 1
    parts = [f'<svg viewBox="0 0 {width} {height}" width="{width}" height="{height}" role="img" aria-label="Incidents by ward">']
    for ward_id, shape in shapes:
        polys = getattr(shape, "geoms", [shape])
        path = " ".join("M" + " L".join(xy(x, y) for x, y in poly.exterior.coords) + " Z" for poly in polys)
        shade = 0.08 + 0.8 * counts.get(ward_id, 0) / top
        parts.append(f'<path d="{path}" fill="rgba(200,60,30,{shade:.2f})" stroke="#333" stroke-width="0.8">'
                     f"<title>Ward {escape(ward_id)}: {counts.get(ward_id, 0)} incidents</title></path>")
        c = shape.representative_point()
        parts.append(f'<text x="{xy(c.x, c.y).split(",")[0]}" y="{xy(c.x, c.y).split(",")[1]}" class="wl">{escape(ward_id)}</text>')
    for lon, lat in points:
        x, y = xy(lon, lat).split(",")
        parts.append(f'<circle cx="{x}" cy="{y}" r="2.5" fill="#1a4d8f"/>')
    parts.append("</svg>")
    return "".join(parts)


def _trend(daily: list[dict], services: dict[str, str], days: int = 14) -> tuple[list[date], list[dict]]:
    """Per service, incident counts over the last ``days`` days of activity."""
    if not daily:
        return [], []
    last = max(r["activity_date"] for r in daily)
    dates = sorted({r["activity_date"] for r in daily if (last - r["activity_date"]).days < days})
    per = defaultdict(lambda: defaultdict(int))
    for r in daily:
        per[r["service_code"]][r["activity_date"]] += r["post_count"]
    rows = []
    for code, by_day in sorted(per.items(), key=lambda kv: -sum(kv[1].values())):
        values = [by_day.get(d, 0) for d in dates]
        rows.append({"service": services.get(code, code), "values": values, "total": sum(values), "peak": max(values) or 1})
    return dates, rows


TEMPLATE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{{ city }} — ward report</title>
<style>
body{font-family:system-ui,sans-serif;margin:2rem;color:#222;max-width:70rem}
h1{margin-bottom:0}.sub{color:#666;margin-top:.2rem}
.tiles{display:flex;gap:1rem;flex-wrap:wrap}.tile{border:1px solid #ddd;border-radius:6px;padding:.6rem 1rem}
.tile b{display:block;font-size:1.6rem}table{border-collapse:collapse;margin:.5rem 0 1.5rem}
td,th{border-bottom:1px solid #eee;padding:.3rem .6rem;text-align:left;vertical-align:top}
th{background:#f6f6f6}.num{text-align:right}.bar{display:inline-block;width:9px;background:#c83c1e;margin-right:1px;vertical-align:bottom}
.wl{font-size:9px;text-anchor:middle;fill:#111}.grid{display:flex;gap:2rem;flex-wrap:wrap}
</style></head><body>
<h1>{{ city }}</h1><p class="sub">Ward report — generated {{ generated_at.strftime("%Y-%m-%d %H:%M UTC") }} by social311</p>
<div class="tiles">{% for label, value in totals.items() %}<div class="tile"><b>{{ value }}</b>{{ label }}</div>{% endfor %}</div>
<div class="grid"><div><h2>Incidents by ward</h2>{{ svg | safe }}</div>
<div><h2>Wards</h2><table><tr><th>Ward</th><th class="num">Incidents</th><th class="num">Tickets</th><th class="num">Posts</th><th>Most reported</th></tr>
{% for w in ward_rows %}<tr><td>{{ w.name }}</td><td class="num">{{ w.incidents }}</td><td class="num">{{ w.tickets }}</td><td class="num">{{ w.posts }}</td><td>{{ w.top }}</td></tr>{% endfor %}
</table></div></div>
<h2>Reports per day by service</h2>
{% if trend_rows %}<table><tr><th>Service</th><th>{{ trend_dates[0] }} … {{ trend_dates[-1] }}</th><th class="num">Posts</th></tr>
{% for r in trend_rows %}<tr><td>{{ r.service }}</td><td>{% for v in r["values"] %}<span class="bar" style="height:{{ (2 + 28 * v / r.peak) | int }}px" title="{{ v }}"></span>{% endfor %}</td><td class="num">{{ r.total }}</td></tr>{% endfor %}
</table>{% else %}<p>No reports yet.</p>{% endif %}
<h2>Tickets filed</h2>
{% if tickets %}<table><tr><th>Request</th><th>Service</th><th>Ward</th><th class="num">Posts merged</th><th>State</th><th>What residents said</th></tr>
{% for t in tickets %}<tr><td>{{ t.service_request_id or "—" }}</td><td>{{ t.service_name or t.service_code }}</td><td>{{ t.ward_id or "—" }}</td><td class="num">{{ t.post_count }}</td><td>{{ t.ticket_state }}</td><td>{{ t.representative_text[:160] }}</td></tr>{% endfor %}
</table>{% else %}<p>No tickets filed.</p>{% endif %}
{% if waiting %}<h2>Not filed</h2><table><tr><th>Incident</th><th>Why</th><th>Service</th><th class="num">Posts</th></tr>
{% for t in waiting %}<tr><td>{{ t.incident_id }}</td><td>{{ t.incident_status }}</td><td>{{ t.service_name or t.service_code or "—" }}</td><td class="num">{{ t.post_count }}</td></tr>{% endfor %}</table>{% endif %}
</body></html>
"""


def render(data: ReportData) -> str:
    """The report as one HTML page (all text escaped)."""
    counts: dict[str, int] = defaultdict(int)
    tickets: dict[str, int] = defaultdict(int)
    posts: dict[str, int] = defaultdict(int)
    services_by_ward: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for inc in data.incidents:
        if inc["ward_id"]:
            counts[inc["ward_id"]] += 1
            tickets[inc["ward_id"]] += 1 if inc["has_ticket"] else 0
            posts[inc["ward_id"]] += inc["post_count"]
            services_by_ward[inc["ward_id"]][inc["service_name"] or inc["service_code"] or "?"] += 1
    ward_rows = sorted(
        ({"name": w.get("name") or w["ward_id"], "incidents": counts.get(w["ward_id"], 0), "tickets": tickets.get(w["ward_id"], 0),
          "posts": posts.get(w["ward_id"], 0),
          "top": max(services_by_ward[w["ward_id"]].items(), key=lambda kv: kv[1])[0] if services_by_ward.get(w["ward_id"]) else "—"}
         for w in data.wards),
        key=lambda r: (-r["incidents"], r["name"]),
    )
    dates, trend_rows = _trend(data.daily, data.services)
    env = Environment(autoescape=select_autoescape(default=True, default_for_string=True))
    return env.from_string(TEMPLATE).render(
        city=data.city, generated_at=data.generated_at, totals=data.totals, ward_rows=ward_rows,
        svg=_svg_map(data.wards, counts, [(i["lon"], i["lat"]) for i in data.incidents if i["lat"] is not None and i["ward_id"]]),
        trend_dates=dates, trend_rows=trend_rows,
        tickets=[i for i in data.incidents if i["ticket_state"] != "not_filed"],
        waiting=[i for i in data.incidents if i["ticket_state"] == "not_filed"],
    )
