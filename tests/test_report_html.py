"""The ward report renders wards, trends and tickets, and escapes what residents wrote."""

from datetime import date, datetime, timezone

from social311.orchestration.report_html import ReportData, render

SQUARE = "POLYGON((0 0, 1 0, 1 1, 0 1, 0 0))"
EAST = "POLYGON((1 0, 2 0, 2 1, 1 1, 1 0))"


def incident(**overrides):
    row = {"incident_id": "inc-1", "service_code": "POTHOLE", "service_name": "Pothole in Street", "ward_id": "1",
           "lat": 0.5, "lon": 0.5, "post_count": 3, "representative_text": "Huge pothole at State and Madison",
           "ticket_state": "submitted", "service_request_id": "72355", "has_ticket": True, "incident_status": "ready"}
    return {**row, **overrides}


def data(incidents, daily=()):
    return ReportData(city="Springfield", generated_at=datetime(2026, 1, 1, tzinfo=timezone.utc),
                      totals={"incidents": len(incidents)},
                      wards=[{"ward_id": "1", "name": "Ward 1", "geom_wkt": SQUARE}, {"ward_id": "2", "name": "Ward 2", "geom_wkt": EAST}],
                      incidents=list(incidents), daily=list(daily), services={"POTHOLE": "Pothole in Street"})


def test_tickets_wards_and_map_are_shown():
    html = render(data([incident(), incident(incident_id="inc-2", service_request_id=None, has_ticket=False,
                                             ticket_state="not_filed", incident_status="review")]))
    assert ">72355<" in html
    assert ">Ward 1<" in html and ">Ward 2<" in html
    assert html.count("<path") == 2
    assert "inc-2" in html and "review" in html, "unfiled incidents are listed with the reason"


def test_wards_are_ordered_by_incidents():
    html = render(data([incident(ward_id="2"), incident(incident_id="inc-2", ward_id="2")]))
    assert html.index(">Ward 2<") < html.index(">Ward 1<")


def test_hostile_text_is_escaped():
    html = render(data([incident(representative_text='<script>alert(1)</script> & "x"', ward_id="<i>w</i>")]))
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert "<i>w</i>" not in html and "&lt;i&gt;w" in html


def test_daily_trend_rows_per_service():
    daily = [{"ward_id": "1", "service_code": "POTHOLE", "activity_date": date(2026, 1, d), "post_count": d,
              "incident_count": 1, "ticket_count": 1, "mean_sentiment": -0.5} for d in (1, 2, 3)]
    html = render(data([incident()], daily))
    assert "2026-01-01 … 2026-01-03" in html
    assert html.count('class="bar"') == 3


def test_an_empty_city_renders():
    html = render(ReportData(city="Empty", generated_at=datetime(2026, 1, 1, tzinfo=timezone.utc), totals={}, wards=[],
                             incidents=[], daily=[]))
    assert "No tickets filed" in html and "No ward boundaries" in html
