"""Jinja templates of the council report (``report_html.py``): one base, the city page, a ward page.

Kept as Python strings so they ship with the code whatever the install (wheel, editable).
"""

BASE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{% block title %}{% endblock %}</title>
<style>
body{font-family:"DejaVu Sans",system-ui,sans-serif;margin:1.5rem 2rem;color:#222;max-width:78rem}
h1{margin-bottom:0}h2{margin-top:1.8rem;border-bottom:1px solid #ddd;padding-bottom:.2rem}.sub{color:#666;margin-top:.2rem}
.tiles{display:flex;gap:.8rem;flex-wrap:wrap}.tile{border:1px solid #ddd;border-radius:6px;padding:.5rem .9rem;min-width:7rem}
.tile b{display:block;font-size:1.5rem}.tile.warn{border-color:#c83c1e;background:#fff4f0}
.banner{background:#fff6d6;border:1px solid #e0c060;padding:.6rem 1rem;border-radius:6px;margin:.8rem 0}
table{border-collapse:collapse;margin:.5rem 0 1rem}td,th{border-bottom:1px solid #eee;padding:.25rem .55rem;text-align:left;vertical-align:top}
th{background:#f6f6f6}.num{text-align:right;white-space:nowrap}.flag{color:#b3261e;font-weight:bold}.muted{color:#777}
.grid{display:flex;gap:2rem;flex-wrap:wrap;align-items:flex-start}.note{color:#666;font-size:.9rem;max-width:48rem}
nav a{margin-right:1rem}
</style></head><body>
<nav><a href="{{ root }}index.html">{{ city }} — city page</a></nav>
{% block body %}{% endblock %}
<p class="note">Generated {{ generated_at.strftime("%Y-%m-%d %H:%M UTC") }} by social311. Charts: {{ start }} to {{ end }};
every trend chart on every page shares one scale (0–{{ y_max }} reports a day).</p>
</body></html>
"""

TICKETS = """{% macro ticket_table(tickets, filing_enabled) %}
{% if tickets %}<table><tr><th>Request</th><th>Service</th><th>Ward</th><th>Status</th><th class="num">Age</th><th class="num">Posts</th><th>Flags</th><th>What residents said</th></tr>
{% for t in tickets %}<tr><td>{{ t.service_request_id or ("draft" if t.ticket_state == "dry_run" else "—") }}</td><td>{{ t.service }}</td><td>{{ t.ward }}</td>
<td>{{ t.status }}</td><td class="num">{{ t.age }}</td><td class="num">{{ t.post_count }}</td>
<td>{% for f in t.flags %}<span class="flag">{{ f }}</span>{% if not loop.last %}; {% endif %}{% endfor %}</td><td>{{ t.representative_text[:140] }}</td></tr>{% endfor %}
</table>{% else %}<p>{{ "No tickets filed." if filing_enabled else "No draft tickets." }}</p>{% endif %}
{% endmacro %}
{% macro response_table(responses) %}
{% if responses %}<table><tr><th>Service</th><th class="num">Tickets</th><th class="num">Acknowledged</th><th class="num">Closed</th>
<th class="num">Acknowledge, median</th><th class="num">p90</th><th class="num">Close, median</th><th class="num">p90</th><th class="num">Overdue</th></tr>
{% for r in responses %}<tr><td>{{ r.service }}</td><td class="num">{{ r.ticket_count }}</td><td class="num">{{ r.acknowledged_count }}</td>
<td class="num">{{ r.closed_count }}</td><td class="num">{{ r.acknowledge_median_h }}</td><td class="num">{{ r.acknowledge_p90_h }}</td>
<td class="num">{{ r.close_median_h }}</td><td class="num">{{ r.close_p90_h }}</td><td class="num{{ ' flag' if r.overdue_count }}">{{ r.overdue_count }}</td></tr>{% endfor %}
</table>{% else %}<p>No filed ticket yet.</p>{% endif %}
{% endmacro %}
{% macro spike_table(spikes, root, with_ward) %}
{% if spikes %}<table><tr><th>Day</th>{% if with_ward %}<th>Ward</th>{% endif %}<th>Service</th><th class="num">Reports</th><th class="num">Baseline a day</th></tr>
{% for s in spikes %}<tr><td>{{ s.activity_date }}</td>{% if with_ward %}<td>{% if s.page %}<a href="{{ root }}{{ s.page }}">{{ s.ward }}</a>{% else %}{{ s.ward or "city-wide" }}{% endif %}</td>{% endif %}
<td>{{ s.service }}</td><td class="num flag">{{ s.post_count }}</td><td class="num">{{ s.baseline_mean }}</td></tr>{% endfor %}
</table>{% else %}<p>None.</p>{% endif %}
{% endmacro %}
{% macro waiting_table(waiting) %}
{% if waiting %}<h2>Not filed</h2><table><tr><th>Incident</th><th>Why</th><th>Service</th><th class="num">Posts</th></tr>
{% for t in waiting %}<tr><td>{{ t.incident_id }}</td><td>{{ t.incident_status }}</td><td>{{ t.service_name or t.service_code or "—" }}</td><td class="num">{{ t.post_count }}</td></tr>{% endfor %}</table>{% endif %}
{% endmacro %}
"""

DRY_RUN = """{% if not filing_enabled %}<div class="banner"><b>Dry run:</b> filing is off for this city, so no ticket
was sent to the 311 system. The tickets below are drafts of what would be filed.</div>{% endif %}"""

CITY = """{% extends "base.html" %}{% from "macros.html" import ticket_table, response_table, spike_table, waiting_table %}
{% block title %}{{ city }} — council report{% endblock %}
{% block body %}
<h1>{{ city }}</h1><p class="sub">Council report: what residents reported, where, and what the city did</p>
""" + DRY_RUN + """
<div class="tiles">{% for label, value in totals.items() %}<div class="tile{{ ' warn' if ('overdue' in label or 'spike' in label) and value }}"><b>{{ value }}</b>{{ label }}</div>{% endfor %}</div>
<div class="grid"><div><h2>Incidents by ward</h2>{{ map_svg | safe }}</div>
<div><h2>Wards</h2><table id="wards"><tr><th>Ward</th><th class="num">Incidents</th><th class="num">{{ "Tickets" if filing_enabled else "Drafts" }}</th><th class="num">Posts</th>
<th class="num">Last 7 days</th><th class="num">7 days before</th><th class="num">Change</th><th>Flags</th><th>Most reported</th></tr>
{% for w in ward_rows %}<tr><td><a href="{{ w.page }}">{{ w.name }}</a></td><td class="num">{{ w.incidents }}</td><td class="num">{{ w.tickets if filing_enabled else w.drafts }}</td>
<td class="num">{{ w.posts }}</td><td class="num">{{ w.this_week }}</td><td class="num">{{ w.last_week }}</td><td class="num{{ ' flag' if w.rising }}">{{ w.change }}</td>
<td>{% if w.spike %}<span class="flag">spike</span> {% endif %}{% if w.overdue %}<span class="flag">{{ w.overdue }} overdue</span>{% endif %}</td><td>{{ w.top }}</td></tr>{% endfor %}
</table><p class="note">Week over week: report posts in the 7 days ending {{ end }} against the 7 days before.</p></div></div>
<h2>Spikes in the last 7 days</h2>{{ spike_table(spikes, root, true) }}
<h2>City-wide surges in the last 7 days</h2>{{ spike_table(surges, root, false) }}
<h2>Reports per day by service</h2>{{ trend_svg | safe }}
<h2>Response times by service</h2>{{ response_table(responses) }}
<h2>Campaigns</h2>
{% if campaigns %}{{ campaign_svg | safe }}<table><tr><th>Campaign</th><th class="num">Posts</th><th class="num">Authors, busiest day</th><th class="num">Reposts</th><th class="num">Mean sentiment</th><th>Wards</th></tr>
{% for c in campaigns %}<tr><td>{{ c.campaign }}</td><td class="num">{{ c.posts }}</td><td class="num">{{ c.authors }}</td><td class="num">{{ c.reposts }}</td>
<td class="num">{{ c.sentiment if c.sentiment is not none else "—" }}</td><td>{{ c.ward_names }}</td></tr>{% endfor %}</table>
{% else %}<p>No campaign configured or no post matched one yet.</p>{% endif %}
{% if unplaced %}<h2>{{ "Tickets" if filing_enabled else "Draft tickets" }} without a ward on this map</h2>{{ ticket_table(unplaced, filing_enabled) }}{% endif %}
{{ waiting_table(waiting) }}
{% endblock %}
"""

WARD = """{% extends "base.html" %}{% from "macros.html" import ticket_table, response_table, spike_table, waiting_table %}
{% block title %}{{ ward.name }} — {{ city }}{% endblock %}
{% block body %}
<h1>{{ ward.name }}</h1><p class="sub">{{ city }} — ward page</p>
""" + DRY_RUN + """
<div class="tiles"><div class="tile"><b>{{ ward.incidents }}</b>incidents</div>
<div class="tile"><b>{{ ward.tickets if filing_enabled else ward.drafts }}</b>{{ "tickets filed" if filing_enabled else "tickets drafted (dry run, none sent)" }}</div>
<div class="tile"><b>{{ ward.posts }}</b>posts</div><div class="tile"><b>{{ ward.change }}</b>last 7 days vs 7 before ({{ ward.this_week }} / {{ ward.last_week }})</div>
<div class="tile{{ ' warn' if ward.overdue }}"><b>{{ ward.overdue }}</b>tickets overdue</div></div>
<div class="grid"><div><h2>Map</h2>{{ map_svg | safe }}</div>
<div><h2>Top issues</h2>{% if top_issues %}<table><tr><th>Service</th><th class="num">Incidents</th><th class="num">Posts</th></tr>
{% for t in top_issues %}<tr><td>{{ t.service }}</td><td class="num">{{ t.incidents }}</td><td class="num">{{ t.posts }}</td></tr>{% endfor %}</table>{% else %}<p>No incidents.</p>{% endif %}
<h2>Spikes</h2>{{ spike_table(spikes, root, false) }}</div></div>
<h2>Reports per day by service</h2>{{ trend_svg | safe }}
<h2>Sentiment of reports over time</h2>{{ sentiment_svg | safe }}
<p class="note">Mean sentiment of the ward's report posts each day, from −1 (angry) to +1 (pleased).</p>
<h2>Response times</h2>{{ response_table(responses) }}
<h2>{{ "Tickets" if filing_enabled else "Draft tickets" }}</h2>{{ ticket_table(tickets, filing_enabled) }}
{{ waiting_table(waiting) }}
{% endblock %}
"""

TEMPLATES = {"base.html": BASE, "macros.html": TICKETS, "city.html": CITY, "ward.html": WARD}
