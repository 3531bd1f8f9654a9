"""The council report: a city page and ward pages, names matching, drafts shown as drafts, text escaped."""

import re
from dataclasses import replace
from datetime import date, datetime, timedelta, timezone

import pytest

from social311.orchestration import report_charts
from social311.orchestration.report_html import ReportData, render, render_pages, ward_page
from social311.orchestration.reporting import write_report

SQUARE = "POLYGON((0 0, 1 0, 1 1, 0 1, 0 0))"
EAST = "POLYGON((1 0, 2 0, 2 1, 1 1, 1 0))"
NOW = datetime(2026, 1, 20, 12, tzinfo=timezone.utc)


@pytest.fixture(autouse=True)
def validate_chart_specs(monkeypatch):
    """Production skips Altair's schema validation (report_charts.VALIDATE_SPECS); the tests keep it."""
    monkeypatch.setattr(report_charts, "VALIDATE_SPECS", True)


def incident(**overrides):
    row = {"incident_id": "inc-1", "service_code": "POTHOLE", "service_name": "Pothole in Street", "ward_id": "W1",
           "lat": 0.5, "lon": 0.5, "post_count": 3, "representative_text": "Huge pothole at State and Madison",
           "ticket_state": "submitted", "service_request_id": "72355", "has_ticket": True, "incident_status": "ready",
           "ticket_requested_at": datetime(2026, 1, 18, 12, tzinfo=timezone.utc), "ticket_status": "open",
           "is_acknowledge_overdue": True, "is_close_overdue": False, "residents_unanswered_overdue": 2}
    return {**row, **overrides}


def daily(ward, day, posts, code="POTHOLE"):
    return {"ward_id": ward, "service_code": code, "activity_date": date(2026, 1, day), "post_count": posts,
            "incident_count": 1, "ticket_count": 1, "mean_sentiment": -0.5}


def data(incidents, rows=(), **more):
    return ReportData(city="Springfield", generated_at=NOW, totals={"incidents": len(incidents)},
                      wards=[{"ward_id": "W1", "name": "Westside", "geom_wkt": SQUARE},
                             {"ward_id": "W2", "name": "Eastside", "geom_wkt": EAST}],
                      incidents=list(incidents), daily=list(rows), services={"POTHOLE": "Pothole in Street"}, **more)


def text_of(svg: str) -> list[str]:
    return re.findall(r"<text[^>]*>([^<]*)</text>", svg)


def test_a_page_per_ward_with_names_that_match_on_map_table_and_page():
    pages = render_pages(data([incident(), incident(incident_id="inc-2", ward_id="W2", service_request_id="72356")],
                              [daily("W1", 19, 7), daily("W2", 19, 1), daily("W2", 10, 2)]))
    assert set(pages) == {"index.html", ward_page("W1"), ward_page("W2")}
    city = pages["index.html"]
    map_svg = city[city.index("<svg"):city.index("</svg>")]
    assert {"Westside (W1)", "Eastside (W2)"} <= set(text_of(map_svg)), "map labels are the names the table shows"
    assert '<a href="wards/ward-W1.html">Westside (W1)</a>' in city
    assert map_svg.count('aria-roledescription="geoshape"') == 2
    ward = pages[ward_page("W1")]
    assert "<h1>Westside (W1)</h1>" in ward and 'href="../index.html"' in ward
    assert ">72355<" in ward and ">72356<" not in ward
    assert "not acknowledged in time" in ward and "2 resident(s) not answered" in ward
    assert "<script" not in city + ward, "no script: the pages open anywhere"


def test_trend_charts_share_one_scale_across_pages():
    pages = render_pages(data([incident()], [daily("W1", 19, 7), daily("W2", 19, 1)]))
    # A 1-post service does not look like a 7-post one: both pages' y axes end at the busiest day.
    ticks = []
    for page in (pages[ward_page("W1")], pages[ward_page("W2")]):
        trend = page[page.index("Reports per day by service"):]
        ticks.append([t for t in text_of(trend[trend.index("<svg"):trend.index("</svg>")]) if t.isdigit()])
        assert "0–7 reports a day" in page
    assert ticks[0] == ticks[1] and "6" in ticks[1], ticks


def test_week_over_week_change_and_spikes_are_flagged():
    spikes = [{"ward_id": "W1", "service_code": "POTHOLE", "activity_date": date(2026, 1, 19), "post_count": 7,
               "baseline_mean": 0.5}]
    city = render(data([incident()], [daily("W1", 19, 6), daily("W1", 10, 2), daily("W2", 19, 1), daily("W2", 9, 4)],
                       spikes=spikes))
    row_w1 = city[city.index('ward-W1.html">'):].split("</tr>")[0]
    row_w2 = city[city.index('ward-W2.html">'):].split("</tr>")[0]
    assert "▲ 200%" in row_w1 and "spike" in row_w1
    assert "▼ 75%" in row_w2 and "spike" not in row_w2


def test_a_dry_run_city_shows_drafts_not_zero_tickets_filed():
    drafts = [incident(incident_id=f"inc-{i}", ticket_state="dry_run", service_request_id=None, has_ticket=False,
                       ticket_status=None, is_acknowledge_overdue=None, residents_unanswered_overdue=None) for i in range(3)]
    pages = render_pages(data(drafts, filing_enabled=False))
    assert "Dry run:" in pages["index.html"] and "tickets filed" not in pages["index.html"]
    ward = pages[ward_page("W1")]
    assert "<b>3</b>tickets drafted (dry run, none sent)" in ward
    assert ward.count("draft (dry run)") == 3


def test_hostile_text_and_ward_ids_are_escaped_and_kept_out_of_paths():
    evil = '<img src=x onerror=alert(1)>'
    html = render_pages(ReportData(city="S", generated_at=NOW, totals={}, incidents=[incident(
        representative_text='<script>alert(1)</script> & "x"', ward_id=evil)], daily=[],
        wards=[{"ward_id": evil, "name": None, "geom_wkt": SQUARE}]))
    page = ward_page(evil)
    assert re.fullmatch(r"wards/ward-[A-Za-z0-9_-]+\.html", page) and page in html
    everything = "".join(html.values())
    assert "<script>" not in everything and "&lt;script&gt;" in everything
    assert "<img src=x" not in everything
    assert ward_page("../../etc") != ward_page("______etc") and "/" not in ward_page("../../etc")[6:]


def test_an_empty_city_renders():
    html = render(ReportData(city="Empty", generated_at=NOW, totals={}, wards=[], incidents=[], daily=[]))
    assert "No ward boundaries" in html and "No reports yet" in html


def test_a_ticket_in_a_ward_of_older_boundaries_is_still_listed_on_the_city_page():
    city = render(data([incident(ward_id="OLD-7", service_request_id="99001")]))
    assert "without a ward on this map" in city and ">99001<" in city


def test_an_unchanged_report_reuses_its_charts_and_a_change_renders_only_what_changed(tmp_path):
    report = data([incident(), incident(incident_id="inc-2", ward_id="W2", service_request_id="72356")],
                  [daily("W1", 19, 7), daily("W2", 19, 1), daily("W2", 10, 2)])
    first, second, third = {}, {}, {}
    write_report(report, tmp_path / "report", first)
    pages = {p.name: p.read_text() for p in (tmp_path / "report").rglob("*.html")}
    assert first["charts_rendered"] > 0 and first["charts_reused"] == 0
    # A run 15 minutes later with the same data: every chart read back, pages the same but for the clock.
    later = replace(report, generated_at=NOW + timedelta(minutes=15), daily=list(reversed(report.daily)))
    write_report(later, tmp_path / "report", second)
    assert second == {"charts_rendered": 0, "charts_reused": first["charts_rendered"]}
    again = {p.name: p.read_text() for p in (tmp_path / "report").rglob("*.html")}
    assert again.keys() == pages.keys()
    assert [k for k in pages if pages[k] != again[k].replace("2026-01-20 12:15", "2026-01-20 12:00")] == [], \
        "only the generation time may differ"
    # One more post in ward 2: its charts (and the city's) change, ward 1's trend does not.
    more = replace(report, daily=report.daily + [daily("W2", 19, 1, code="GRAFFITI")])
    write_report(more, tmp_path / "report", third)
    assert 0 < third["charts_rendered"] < first["charts_rendered"]
    cache = tmp_path / "report.chart-cache"
    assert len(list(cache.glob("*.svg"))) == third["charts_rendered"] + third["charts_reused"], "stale charts pruned"
    assert not list((tmp_path / "report").rglob("*.svg")), "the cache is not published with the pages"


def test_services_with_the_same_count_keep_their_order_between_runs():
    rows = [daily("W1", 19, 2, code=code) for code in ("POTHOLE", "GRAFFITI", "STREETLIGHT", "NOISE")]
    services = {"POTHOLE": "Pothole in Street", "GRAFFITI": "Graffiti Removal", "STREETLIGHT": "Street Light Out",
                "NOISE": "Noise Complaint"}
    page = render_pages(replace(data([incident()], rows), services=services))[ward_page("W1")]
    trend = page[page.index("Reports per day by service"):]
    labels = [t for t in text_of(trend[trend.index("<svg"):trend.index("</svg>")]) if t in services.values()]
    assert labels == sorted(services.values()), "ties are ordered by name, not by a set's hash order"
