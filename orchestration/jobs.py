"""Jobs and schedules: one pass of the whole pipeline, and a schedule for it."""

import dagster as dg

#: One pass: ingest new posts through to filed tickets and the ward report.
pipeline_job = dg.define_asset_job("social311_pipeline", selection=dg.AssetSelection.all(),
                                   description="One pass of social311: new posts in, tickets filed, ward report out.")

#: Off until a city turns it on in the UI: filing on a schedule is the city's decision.
pipeline_schedule = dg.ScheduleDefinition(job=pipeline_job, cron_schedule="*/15 * * * *",
                                          default_status=dg.DefaultScheduleStatus.STOPPED)


def jobs_defs() -> dg.Definitions:
    return dg.Definitions(jobs=[pipeline_job], schedules=[pipeline_schedule])
