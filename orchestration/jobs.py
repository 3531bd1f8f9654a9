"""Jobs and schedules: one pass of the whole pipeline, and a schedule for it.

Every job of the code location runs with Dagster's in-process executor: one process runs the
steps one after another. The default multiprocess executor starts a process per step and runs
independent steps (asset checks included) at once, and each of them opens the one DuckDB file,
which allows a single writer: runs launched from the UI, a schedule or a sensor then failed on
"Could not set lock on file ... Conflicting lock is held". The CLI already ran in process; now
every launch path does the same. Two runs of one city are kept apart by the city's run lock
(``warehouse.run_lock``, taken by the ``city`` resource).
"""

import hashlib
import warnings
from datetime import timedelta
from pathlib import Path

import dagster as dg

from social311.orchestration.resources import CityResource

RAW_POSTS = dg.AssetKey(["raw", "posts"])
TICKET_STATUS = dg.AssetKey(["ops", "ticket_status"])

#: Freshness: posts are ingested every 15 minutes and statuses synced every 30 when the schedules
#: are on; a warning after two hours without either means the city stopped listening or syncing.
#: Evaluated by ``freshness_checks_sensor`` (the daemon), never inside the pipeline run itself.
#: Dagster 1.13 marks these builders "superseded" by FreshnessPolicy on asset specs; they are kept
#: because they are asset checks: a pass/fail with a time in the UI and the event log, evaluated by
#: a plain sensor on an open-source daemon, testable with ``build_sensor_context``.
FRESH_WITHIN = timedelta(hours=2)
with warnings.catch_warnings():
    warnings.simplefilter("ignore", dg.SupersessionWarning if hasattr(dg, "SupersessionWarning") else Warning)
    freshness_checks = dg.build_last_update_freshness_checks(assets=[RAW_POSTS, TICKET_STATUS], lower_bound_delta=FRESH_WITHIN)
    freshness_sensor = dg.build_sensor_for_freshness_checks(freshness_checks=freshness_checks, minimum_interval_seconds=300)

#: One pass: ingest new posts through to filed tickets and the ward report.
pipeline_job = dg.define_asset_job(
    "social311_pipeline",
    selection=dg.AssetSelection.all() - dg.AssetSelection.checks(*freshness_checks),
    description="One pass of social311: new posts in, tickets filed, ward report out.")

#: Off until a city turns it on in the UI: filing on a schedule is the city's decision.
pipeline_schedule = dg.ScheduleDefinition(job=pipeline_job, cron_schedule="*/15 * * * *",
                                          default_status=dg.DefaultScheduleStatus.STOPPED)


def drop_fingerprint(drop_dir: Path, pattern: str) -> tuple[str, int]:
    """A digest of the regular files in a drop folder (name, size, mtime) and how many there are.

    It changes when a file is added, grows or is replaced; symlinks and other non-regular files
    are left out (the source refuses them, so they must not trigger runs either).
    """
    entries = []
    if drop_dir.is_dir():
        for path in sorted(drop_dir.glob(pattern)):
            if path.is_symlink() or not path.is_file():
                continue
            stat = path.stat()
            entries.append(f"{path.name}\t{stat.st_size}\t{stat.st_mtime_ns}")
    return hashlib.sha256("\n".join(entries).encode()).hexdigest()[:16], len(entries)


@dg.sensor(job=pipeline_job, minimum_interval_seconds=60, default_status=dg.DefaultSensorStatus.STOPPED,
           description="A run when files in a file_drop source's folder are new or changed (off until a city turns it on).")
def drop_folder_sensor(context: dg.SensorEvaluationContext, city: CityResource):
    """Launch one pipeline run per change of the drop folders; wait while a run holds the city."""
    from social311.warehouse import run_lock_holder

    cfg = city.load()
    drops = [ref for ref in cfg.sources if ref.plugin == "file_drop" and ref.config.get("drop_dir")]
    if not drops:
        return dg.SkipReason("no file_drop source in the city config")
    parts, files = [], 0
    for ref in drops:
        digest, count = drop_fingerprint(Path(ref.config["drop_dir"]), ref.config.get("pattern", "*.jsonl"))
        parts.append(f"{ref.instance_name}={digest}")
        files += count
    fingerprint = ",".join(parts)
    if not files:
        return dg.SkipReason("no file in the drop folder(s) yet")
    if fingerprint == context.cursor:
        return dg.SkipReason(f"no new or changed file among {files} in the drop folder(s)")
    holder = run_lock_holder(cfg.duckdb_path)
    if holder:
        # The cursor stays: the change is seen again, and run, once this run ends.
        return dg.SkipReason(f"drop folder changed, but a run holds the city ({holder}); waiting for it")
    context.update_cursor(fingerprint)
    return dg.RunRequest(run_key=fingerprint, tags={"social311/trigger": "drop_folder"})


def jobs_defs() -> dg.Definitions:
    # Definitions-level executor: it applies to every job without its own, including the
    # ticket_status_sync job and the ad hoc job the UI builds for "Materialize selected".
    return dg.Definitions(jobs=[pipeline_job], schedules=[pipeline_schedule], sensors=[drop_folder_sensor, freshness_sensor],
                          asset_checks=freshness_checks, executor=dg.in_process_executor)
