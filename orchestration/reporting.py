"""Reporting: the static HTML council report (a city page and one page per ward)."""


from datetime import datetime, timezone
from pathlib import Path

import dagster as dg
from markupsafe import escape

from social311.orchestration.quality import Suite, validate
from social311.orchestration.report_html import ReportData, render_pages
from social311.orchestration.resources import CityResource
from social311.warehouse import connect

WARD_REPORT = dg.AssetKey(["ward_report"])
MARTS = ("fct_ward_issue_daily", "fct_incidents", "fct_ward_service_spikes", "fct_service_surges", "fct_ticket_sla",
         "fct_response_times", "fct_campaign_daily")


def _rows(con, sql: str, params: list | None = None) -> list[dict]:
    cur = con.execute(sql, params or [])
    names = [d[0] for d in cur.description]
    return [dict(zip(names, row)) for row in cur.fetchall()]


def collect(duckdb_path: str | Path, city: str, *, filing_enabled: bool = True) -> ReportData:
    """Read the marts into the report's data."""
    with connect(duckdb_path) as con:
        count = lambda sql: con.execute(sql).fetchone()[0]  # noqa: E731
        totals = {
            "posts ingested": count("select count(*) from raw.posts"),
            "problem reports": count("select count(*) from ml.post_signals where is_report"),
            "incidents": count("select count(*) from fct_incidents"),
        }
        if filing_enabled:
            totals["tickets filed"] = count("select count(*) from fct_incidents where has_ticket")
        else:
            totals["tickets drafted (dry run, none sent)"] = count("select count(*) from fct_incidents where ticket_state = 'dry_run'")
        totals["tickets overdue"] = count("select count(*) from fct_ticket_sla where is_acknowledge_overdue or is_close_overdue")
        totals["spikes, last 7 days"] = count(
            "select count(*) from fct_ward_service_spikes where is_spike "
            "and activity_date > (select max(activity_date) from fct_ward_service_spikes) - 7")
        totals["records quarantined"] = count("select count(*) from quarantine.records")
        version = con.execute("select max(boundary_version) from gis.wards").fetchone()[0]
        wards = _rows(con, "select ward_id, name, st_astext(geom) as geom_wkt from gis.wards "
                           "where boundary_version = ? order by ward_id", [version]) if version else []
        incidents = _rows(con, """
            select i.*, s.status as ticket_status, s.is_acknowledge_overdue, s.is_close_overdue,
                   s.residents_unanswered_overdue
            from fct_incidents as i left join fct_ticket_sla as s using (service_request_id)
            order by i.first_seen_at desc""")
        return ReportData(
            city=city, generated_at=datetime.now(timezone.utc), totals=totals, wards=wards, incidents=incidents,
            daily=_rows(con, "select * from fct_ward_issue_daily"),
            services=dict(con.execute("select service_code, service_name from ops.service_catalog").fetchall()),
            filing_enabled=filing_enabled,
            spikes=_rows(con, "select * from fct_ward_service_spikes where is_spike"),
            surges=_rows(con, "select * from fct_service_surges where is_spike"),
            response_times=_rows(con, "select * from fct_response_times"),
            campaigns=_rows(con, "select * from fct_campaign_daily order by campaign, activity_date"))


def write_report(data: ReportData, report_dir: str | Path, stats: dict | None = None) -> list[Path]:
    """Write every page under ``report_dir``; pages of wards no longer in the boundaries are removed.

    Charts are cached beside the folder (``<report_dir>.chart-cache``, not published with the
    pages); ``stats``, when given, receives ``charts_rendered`` and ``charts_reused``.
    """
    from social311.orchestration.report_charts import svg_cache

    root = Path(report_dir)
    # Charts are read back when their spec is unchanged (report_charts.SvgCache); ages and
    # "generated at" are re-rendered every time, so a page is never stale.
    with svg_cache(root.with_name(root.name + ".chart-cache")) as charts:
        pages = render_pages(data)
    if stats is not None:
        stats.update(charts_rendered=charts.misses, charts_reused=charts.hits)
    written = []
    for relative, html in pages.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(html, encoding="utf-8")
        tmp.replace(path)  # a reader never sees half a page
        written.append(path)
    for stale in (root / "wards").glob("ward-*.html"):
        if stale not in written:
            stale.unlink()
    return written


@dg.asset(key=WARD_REPORT, deps=[dg.AssetKey([m]) for m in MARTS], group_name="reporting", compute_kind="html")
def ward_report(context: dg.AssetExecutionContext, city: CityResource) -> dg.MaterializeResult:
    """Static HTML council report: a city page (map, wards, spikes, campaigns) and one page per ward."""
    cfg = city.load()
    data = collect(cfg.duckdb_path, cfg.city, filing_enabled=cfg.filing_enabled)
    stats: dict = {}
    written = write_report(data, cfg.report_dir, stats)
    return dg.MaterializeResult(metadata={"path": dg.MetadataValue.path(str(Path(cfg.report_dir) / "index.html")),
                                          "pages": len(written), **stats,
                                          **{k.replace(" ", "_").replace(",", ""): v for k, v in data.totals.items()}})


report_suite = Suite(
    name="report_expectations",
    expectations=(("ExpectColumnValuesToBeInSet", {"column": "shown_in_report", "value_set": [True]}),),
)


@dg.asset_check(asset=WARD_REPORT, name="report_expectations",
                description="Every filed ticket's request id appears on a page and every ward has its page, named as on the map.")
def report_shows_every_ticket_and_ward(city: CityResource) -> dg.AssetCheckResult:
    cfg = city.load()
    html = "\n".join(p.read_text(encoding="utf-8") for p in sorted(Path(cfg.report_dir).rglob("*.html")))
    with connect(cfg.duckdb_path) as con:
        frame = con.execute(
            "select 'ticket' as item, service_request_id as shown_as from fct_incidents where has_ticket "
            "union all select distinct 'ward', coalesce(w.name, w.ward_id) "
            "from fct_incidents i join gis.wards w on w.ward_id = i.ward_id and w.boundary_version = i.boundary_version"
        ).df()
    # Jinja escapes what it renders; look for the text as it appears in the page.
    # A ward's name may be followed by its id ("Westside (W1)"): match its start only.
    frame["shown_in_report"] = [(f">{escape(text)}<" if item == "ticket" else f">{escape(text)}") in html
                                for item, text in zip(frame["item"], frame["shown_as"])]
    success, metadata = validate(frame, report_suite)
    return dg.AssetCheckResult(passed=success, metadata=metadata)


def defs() -> dg.Definitions:
    return dg.Definitions(assets=[ward_report], asset_checks=[report_shows_every_ticket_and_ward])
