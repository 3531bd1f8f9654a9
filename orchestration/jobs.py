"""Jobs and schedules: one pass of the whole pipeline, and a schedule for it.

Every job of the code location runs with Dagster's in-process executor: one process runs the
steps one after another. The default multiprocess executor starts a process per step and runs
independent steps (asset checks included) at once, and each of them opens the one DuckDB file,
which allows a single writer: runs launched from the UI, a schedule or a sensor then failed on
"Could not set lock on file ... Conflicting lock is held". The CLI already ran in process; now
every launch path does the same. Two runs of one city are kept apart by the city's run lock
(``warehouse.run_lock``, taken by the ``city`` resource).
"""

import dagster as dg

#: One pass: ingest new posts through to filed tickets and the ward report.
pipeline_job = dg.define_asset_job("social311_pipeline", selection=dg.AssetSelection.all(),
                                   description="One pass of social311: new posts in, tickets filed, ward report out.")

#: Off until a city turns it on in the UI: filing on a schedule is the city's decision.
pipeline_schedule = dg.ScheduleDefinition(job=pipeline_job, cron_schedule="*/15 * * * *",
                                          default_status=dg.DefaultScheduleStatus.STOPPED)


def jobs_defs() -> dg.Definitions:
    # Definitions-level executor: it applies to every job without its own, including the
    # ticket_status_sync job and the ad hoc job the UI builds for "Materialize selected".
    return dg.Definitions(jobs=[pipeline_job], schedules=[pipeline_schedule], executor=dg.in_process_executor)
