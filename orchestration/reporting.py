"""Reporting: the static HTML ward report council members read."""


from datetime import datetime, timezone
from pathlib import Path

import dagster as dg
from markupsafe import escape

from social311.orchestration.quality import Suite, validate
from social311.orchestration.report_html import ReportData, render
from social311.orchestration.resources import CityResource
from social311.warehouse import connect

WARD_REPORT = dg.AssetKey(["ward_report"])


def _rows(con, sql: str) -> list[dict]:
    cur = con.execute(sql)
    names = [d[0] for d in cur.description]
    return [dict(zip(names, row)) for row in cur.fetchall()]


def collect(duckdb_path: str | Path, city: str) -> ReportData:
    """Read the marts into the report's data."""
    with connect(duckdb_path) as con:
        totals = {
            "posts ingested": con.execute("select count(*) from raw.posts").fetchone()[0],
            "problem reports": con.execute("select count(*) from ml.post_signals where is_report").fetchone()[0],
            "incidents": con.execute("select count(*) from fct_incidents").fetchone()[0],
            "tickets filed": con.execute("select count(*) from fct_incidents where has_ticket").fetchone()[0],
            "records quarantined": con.execute("select count(*) from quarantine.records").fetchone()[0],
        }
        version = con.execute("select max(boundary_version) from gis.wards").fetchone()[0]
        wards = _rows(con, f"select ward_id, name, st_astext(geom) as geom_wkt from gis.wards "
                           f"where boundary_version = '{version}' order by ward_id") if version else []
        incidents = _rows(con, "select * from fct_incidents order by first_seen_at desc")
        daily = _rows(con, "select * from fct_ward_issue_daily")
        services = dict(con.execute("select service_code, service_name from ops.service_catalog").fetchall())
    return ReportData(city=city, generated_at=datetime.now(timezone.utc), totals=totals, wards=wards,
                      incidents=incidents, daily=daily, services=services)


@dg.asset(key=WARD_REPORT, deps=[dg.AssetKey(["fct_ward_issue_daily"]), dg.AssetKey(["fct_incidents"])],
          group_name="reporting", compute_kind="html")
def ward_report(context: dg.AssetExecutionContext, city: CityResource) -> dg.MaterializeResult:
    """Static HTML ward report: incidents by ward, daily trends by service, tickets filed."""
    cfg = city.load()
    data = collect(cfg.duckdb_path, cfg.city)
    path = Path(cfg.report_dir) / "index.html"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render(data), encoding="utf-8")
    return dg.MaterializeResult(metadata={"path": dg.MetadataValue.path(str(path)), **{k.replace(" ", "_"): v for k, v in data.totals.items()}})


report_suite = Suite(
    name="report_expectations",
    expectations=(("ExpectColumnValuesToBeInSet", {"column": "shown_in_report", "value_set": [True]}),),
)


@dg.asset_check(asset=WARD_REPORT, name="report_expectations",
                description="Every filed ticket's request id and every ward with incidents appear in the report.")
def report_shows_every_ticket_and_ward(city: CityResource) -> dg.AssetCheckResult:
    cfg = city.load()
    html = (Path(cfg.report_dir) / "index.html").read_text(encoding="utf-8")
    with connect(cfg.duckdb_path) as con:
        frame = con.execute(
            "select 'ticket' as item, service_request_id as shown_as from fct_incidents where has_ticket "
            "union all select distinct 'ward', coalesce(w.name, w.ward_id) "
            "from fct_incidents i join gis.wards w on w.ward_id = i.ward_id and w.boundary_version = i.boundary_version"
        ).df()
    # Jinja escapes what it renders; look for the text as it appears in the page.
    frame["shown_in_report"] = [f">{escape(text)}<" in html for text in frame["shown_as"]]
    success, metadata = validate(frame, report_suite)
    return dg.AssetCheckResult(passed=success, metadata=metadata)


def defs() -> dg.Definitions:
    return dg.Definitions(assets=[ward_report], asset_checks=[report_shows_every_ticket_and_ward])
