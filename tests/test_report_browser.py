"""The council report in a real browser: headless Chromium (Debian's ``chromium``) driven by Playwright.

Rendered from the demo city's eight real ward boundaries; every page opens without a console
error, the city map has one shape per ward, every ward page exists and every link resolves.
Screenshots are saved under the test's own output folder.
"""

import json
import os
import shutil
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest
from shapely.geometry import shape

from social311.orchestration.report_html import ReportData, ward_page
from social311.orchestration.reporting import write_report

DEMO_WARDS = Path(__file__).resolve().parents[1] / "demo" / "wards.geojson"


def chromium() -> str:
    path = os.environ.get("SOCIAL311_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if not path:
        pytest.skip("Debian's chromium is not installed (.ci/run installs it: apt-get install chromium)")
    return path


def demo_report_data() -> ReportData:
    features = json.loads(DEMO_WARDS.read_text(encoding="utf-8"))["features"]
    wards = [{"ward_id": str(f["properties"]["ward_id"]), "name": f["properties"]["name"], "geom_wkt": shape(f["geometry"]).wkt}
             for f in features]
    now = datetime(2026, 5, 14, 9, tzinfo=timezone.utc)
    incidents, daily = [], []
    for k, w in enumerate(wards):
        point = shape(next(f for f in features if str(f["properties"]["ward_id"]) == w["ward_id"])["geometry"]).representative_point()
        for j in range(k % 3 + 1):
            incidents.append({"incident_id": f"inc-{k}-{j}", "service_code": "POTHOLE", "service_name": "Pothole in Street",
                              "ward_id": w["ward_id"], "lat": point.y, "lon": point.x, "post_count": 2,
                              "representative_text": f"Pothole number {j} in {w['name']}", "ticket_state": "submitted",
                              "service_request_id": str(240400 + 10 * k + j), "has_ticket": True, "incident_status": "ready",
                              "ticket_requested_at": now - timedelta(hours=5 * j), "ticket_status": "open",
                              "is_acknowledge_overdue": j == 2, "is_close_overdue": False, "residents_unanswered_overdue": 0})
        for d in range(10):
            daily.append({"ward_id": w["ward_id"], "service_code": "POTHOLE", "activity_date": date(2026, 5, 4 + d),
                          "post_count": (k + d) % 4 + 1, "incident_count": 1, "ticket_count": 1, "mean_sentiment": -0.3})
    return ReportData(
        city="Demo City", generated_at=now, totals={"incidents": len(incidents)}, wards=wards, incidents=incidents,
        daily=daily, services={"POTHOLE": "Pothole in Street"},
        spikes=[{"ward_id": wards[0]["ward_id"], "service_code": "POTHOLE", "activity_date": date(2026, 5, 13),
                 "post_count": 4, "baseline_mean": 1.0}],
        response_times=[{"ward_id": None, "service_code": "POTHOLE", "is_city_total": True, "ticket_count": 3,
                         "acknowledged_count": 2, "closed_count": 1, "open_count": 2, "acknowledge_median_h": 2.5,
                         "acknowledge_p90_h": 7.0, "close_median_h": 30.0, "close_p90_h": 30.0, "overdue_count": 1}],
        campaigns=[{"campaign": "#fixit", "activity_date": date(2026, 5, 4 + d), "post_count": d + 1, "author_count": d + 1,
                    "repost_count": 0, "mean_sentiment": -0.2, "ward_count": 1, "ward_ids": [wards[0]["ward_id"]]}
                   for d in range(5)])


def test_the_report_opens_in_chromium_without_errors_and_every_link_resolves(tmp_path):
    sync_api = pytest.importorskip("playwright.sync_api")
    executable = chromium()
    data = demo_report_data()
    report = tmp_path / "report"
    write_report(data, report)
    shots = tmp_path / "screenshots"
    shots.mkdir()
    errors: list[str] = []
    visited: set[Path] = set()
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.on("console", lambda m: errors.append(f"{page.url}: {m.type}: {m.text}") if m.type == "error" else None)
        page.on("pageerror", lambda exc: errors.append(f"{page.url}: {exc}"))
        page.on("requestfailed", lambda r: errors.append(f"{page.url}: failed to load {r.url}"))

        def visit(path: Path) -> list[Path]:
            page.goto(path.as_uri())
            visited.add(path)
            page.screenshot(path=str(shots / (path.stem + ".png")), full_page=True)
            targets = []
            for href in page.eval_on_selector_all("a[href]", "els => els.map(e => e.href)"):
                url = urlparse(href)
                assert url.scheme == "file", f"{path.name} links outside the report: {href}"
                target = Path(unquote(url.path))
                assert target.is_file(), f"{path.name} links to a missing page: {href}"
                targets.append(target)
            return targets

        links = visit(report / "index.html")
        shapes = page.locator('svg path[aria-roledescription="geoshape"]')
        assert shapes.count() == len(data.wards) == 8, "one shape per ward on the city map"
        labels = page.eval_on_selector_all("svg g.mark-text.role-mark text", "els => els.map(e => e.textContent)")
        table = page.eval_on_selector_all("#wards a", "els => els.map(e => e.textContent)")
        assert sorted(labels) == sorted(table), "the map names the wards as the table does"
        for ward in data.wards:
            assert report / ward_page(ward["ward_id"]) in links, f"no link to {ward['name']}'s page"
        for target in sorted(set(links) - visited):
            back = visit(target)
            assert report / "index.html" in back, f"{target.name} has no way back to the city page"
            assert page.locator("h1").inner_text() in table
        browser.close()
    assert not errors, errors
    assert len(visited) == len(data.wards) + 1
    assert (shots / "index.png").stat().st_size > 10_000
    print(f"screenshots: {shots}")
