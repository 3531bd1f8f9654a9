"""Alerting: the run queues what the marts flag; two sensors deliver (``orchestration/alerts.py``).

- ``ops/alerts`` (an asset of every pipeline run) reads the spike, surge and SLA marts and
  queues one alert per new spike, surge, overdue ticket and ticket with residents unanswered.
- ``alert_sensor`` delivers queued alerts to the outbox file and the webhook, once each; it reads
  the small delivery ledger only, never the warehouse, so it cannot hold a lock a run needs.
- ``run_failure_alert_sensor`` turns a failed run into an alert through the same delivery.
"""

from pathlib import Path

import dagster as dg
import duckdb

from social311.config import CityConfig
from social311.orchestration.alerts import Alert, Channels, deliver_pending, deliveries, ledger_path, queue
from social311.orchestration.report_html import ward_page
from social311.orchestration.resources import CityResource
from social311.warehouse import connect

ALERTS = dg.AssetKey(["ops", "alerts"])
#: Spikes and surges this many days before the newest day of data are alerted; older ones are
#: history (on the report), not news: a first run over a year of posts sends no backlog.
RECENT_DAYS = 2


def channels(cfg: CityConfig) -> Channels:
    """The city's alert channels: the outbox always, the webhook when the YAML names its variable."""
    outbox = cfg.alerts.outbox_path or Path(cfg.duckdb_path).parent / "alerts.jsonl"
    return Channels(outbox_path=Path(outbox), webhook_env=cfg.alerts.webhook_url_env, timeout_s=cfg.alerts.timeout_s)


def _rows(con: duckdb.DuckDBPyConnection, sql: str) -> list[dict]:
    cur = con.execute(sql)
    names = [d[0] for d in cur.description]
    return [dict(zip(names, row)) for row in cur.fetchall()]


_NAMES = """
    left join (select distinct on (ward_id) ward_id, name as ward_name from gis.wards
               order by ward_id, boundary_version desc) as w using (ward_id)
    left join (select service_code, service_name from ops.service_catalog) as c using (service_code)"""


def find_alerts(con: duckdb.DuckDBPyConnection, city: str) -> list[Alert]:
    """Alerts for what the marts flag now: recent spikes and surges, SLA breaches of open tickets."""
    alerts = []
    for r in _rows(con, f"""
            select s.*, coalesce(w.ward_name, s.ward_id) as ward, coalesce(c.service_name, s.service_code) as service
            from fct_ward_service_spikes as s {_NAMES}
            where is_spike and activity_date >= (select max(activity_date) from fct_ward_service_spikes) - {RECENT_DAYS}
            order by activity_date, ward_id, service_code"""):
        alerts.append(Alert(
            alert_id=f"spike:{r['ward_id']}:{r['service_code']}:{r['activity_date']}", kind="spike",
            title=f"{city}: spike of {r['service']} in {r['ward']}",
            text=f"{r['post_count']} reports on {r['activity_date']} against a baseline of {r['baseline_mean']:g} a day.",
            ward_id=r["ward_id"], service_code=r["service_code"],
            details={"date": str(r["activity_date"]), "posts": r["post_count"], "baseline": r["baseline_mean"],
                     "page": ward_page(r["ward_id"])}))
    for r in _rows(con, f"""
            select s.*, coalesce(c.service_name, s.service_code) as service
            from fct_service_surges as s
            left join (select service_code, service_name from ops.service_catalog) as c using (service_code)
            where is_spike and activity_date >= (select max(activity_date) from fct_service_surges) - {RECENT_DAYS}
            order by activity_date, service_code"""):
        alerts.append(Alert(
            alert_id=f"surge:{r['service_code']}:{r['activity_date']}", kind="surge",
            title=f"{city}: surge of {r['service']} reports city-wide",
            text=f"{r['post_count']} reports on {r['activity_date']} against a baseline of {r['baseline_mean']:g} a day.",
            service_code=r["service_code"],
            details={"date": str(r["activity_date"]), "posts": r["post_count"], "baseline": r["baseline_mean"]}))
    for r in _rows(con, f"""
            select s.*, coalesce(w.ward_name, s.ward_id) as ward, coalesce(c.service_name, s.service_code) as service
            from fct_ticket_sla as s {_NAMES}
            where is_acknowledge_overdue or is_close_overdue or has_unanswered_residents
            order by service_request_id"""):
        where = f"request {r['service_request_id']} ({r['service']}, {r['ward'] or 'no ward'})"
        details = {"service_request_id": r["service_request_id"], "page": ward_page(r["ward_id"]) if r["ward_id"] else None}
        if r["is_acknowledge_overdue"]:
            alerts.append(Alert(f"sla_acknowledge:{r['service_request_id']}", "sla_acknowledge",
                                f"{city}: {where} not acknowledged in time",
                                f"Filed {r['age_s'] / 3600:.1f} h ago; target {r['acknowledge_target_s'] / 3600:g} h.",
                                r["ward_id"], r["service_code"], details))
        if r["is_close_overdue"]:
            alerts.append(Alert(f"sla_close:{r['service_request_id']}", "sla_close",
                                f"{city}: {where} still open past its target",
                                f"Filed {r['age_s'] / 3600:.1f} h ago; target {r['close_target_s'] / 3600:g} h.",
                                r["ward_id"], r["service_code"], details))
        if r["has_unanswered_residents"]:
            alerts.append(Alert(f"sla_answer:{r['service_request_id']}", "sla_answer",
                                f"{city}: residents behind {where} not answered",
                                f"{r['residents_unanswered_overdue']} of {r['resident_posts']} residents have had no reply "
                                f"with the request number within {r['answer_target_s'] / 3600:g} h.",
                                r["ward_id"], r["service_code"], details))
    return alerts


@dg.asset(key=ALERTS, deps=[dg.AssetKey(["fct_ward_service_spikes"]), dg.AssetKey(["fct_service_surges"]),
                            dg.AssetKey(["fct_ticket_sla"])], group_name="reporting", compute_kind="python")
def alert_queue(context: dg.AssetExecutionContext, city: CityResource) -> dg.MaterializeResult:
    """Spikes, surges and SLA breaches the marts flag, queued once each for the alert sensor."""
    cfg = city.load()
    with connect(cfg.duckdb_path) as con:
        found = find_alerts(con, cfg.city)
    new = queue(ledger_path(cfg.duckdb_path), found, channels(cfg))
    by_kind = {kind: sum(a.kind == kind for a in found) for kind in sorted({a.kind for a in found})}
    if new:
        context.log.warning(f"{new} new alert(s) queued: " + "; ".join(a.title for a in found[:5]))
    return dg.MaterializeResult(metadata={"flagged": len(found), "new": new, **{f"flagged_{k}": v for k, v in by_kind.items()},
                                          "ledger": dg.MetadataValue.path(str(ledger_path(cfg.duckdb_path)))})


@dg.asset_check(asset=ALERTS, name="no_alert_given_up",
                description="No alert delivery has been given up (refused by the webhook or out of attempts).")
def no_alert_given_up(city: CityResource) -> dg.AssetCheckResult:
    failed = [d for d in deliveries(ledger_path(city.load().duckdb_path)) if d["state"] == "failed"]
    return dg.AssetCheckResult(passed=not failed, metadata={
        "failed": len(failed), "examples": str([(d["alert_id"], d["channel"], d["last_error"]) for d in failed[:5]])[:500]})


def _deliver(cfg: CityConfig) -> dict[str, int]:
    return deliver_pending(ledger_path(cfg.duckdb_path), channels(cfg))


@dg.sensor(name="alert_sensor", minimum_interval_seconds=60, default_status=dg.DefaultSensorStatus.RUNNING,
           description="Deliver queued alerts (spikes, surges, SLA breaches) to the outbox and the webhook, once each.")
def alert_sensor(context: dg.SensorEvaluationContext, city: CityResource) -> dg.SkipReason:
    counts = _deliver(city.load())
    if counts["retry"] or counts["failed"]:
        context.log.warning(f"alert delivery: {counts}")
    return dg.SkipReason(f"alerts delivered: {counts['delivered']}, to retry: {counts['retry']}, given up: {counts['failed']}")


@dg.run_failure_sensor(name="run_failure_alert_sensor", default_status=dg.DefaultSensorStatus.RUNNING,
                       description="Alert (outbox and webhook) when a run of this code location fails.")
def run_failure_alert_sensor(context: dg.RunFailureSensorContext, city: CityResource) -> None:
    cfg = city.load()
    run = context.dagster_run
    message = context.failure_event.message or "run failed"
    alert = Alert(alert_id=f"run_failure:{run.run_id}", kind="run_failure",
                  title=f"{cfg.city}: run of {run.job_name} failed",
                  text=f"Run {run.run_id[:8]}: {message[:300]}", details={"run_id": run.run_id, "job": run.job_name})
    queue(ledger_path(cfg.duckdb_path), [alert], channels(cfg))
    counts = _deliver(cfg)
    context.log.info(f"run failure alert for {run.run_id}: {counts}")


def defs() -> dg.Definitions:
    return dg.Definitions(assets=[alert_queue], asset_checks=[no_alert_given_up],
                          sensors=[alert_sensor, run_failure_alert_sensor])
