"""The Dagster code location: one small ``defs()`` per area, merged.

Run ``dagster dev`` from the repository root (workspace.yaml points here) with
``SOCIAL311_CONFIG`` naming the city YAML.
"""

import dagster as dg

from social311.orchestration import alerting, city_rules, gis, history, incidents, ingest, ml, replies, reporting, status, ticketing, transforms
from social311.orchestration import listen, quality
from social311.orchestration.jobs import jobs_defs
from social311.orchestration.resources import CityResource


def build_defs() -> dg.Definitions:
    """All assets, checks, jobs and schedules, with resources resolved at run time.

    The checks built by ``quality.gx_check``/``sql_check`` run batched, one step per asset
    (``quality.batched_checks``): a step costs about a second whatever its check does.
    """
    merged = dg.Definitions.merge(
        ingest.defs(), gis.defs(), history.defs(), ml.defs(), transforms.defs(), incidents.defs(), ticketing.defs(),
        reporting.defs(), status.defs(), replies.defs(), city_rules.defs(), alerting.defs(),
        jobs_defs(),
        listen.listen_defs(),  # one stopped-by-default sensor per social-platform source
        dg.Definitions(resources={
            "city": CityResource(config_path=dg.EnvVar("SOCIAL311_CONFIG")),
            "dbt": transforms.dbt_resource(),
        }),
    )
    return _batch_registered_checks(merged)


def _batch_registered_checks(merged: dg.Definitions) -> dg.Definitions:
    """``merged`` with its registered single checks replaced by one batched check per asset."""
    single, batchable = [], []
    for checks_def in merged.asset_checks or ():
        keys = list(checks_def.check_keys)
        if keys and all(key in quality.REGISTRY for key in keys):
            batchable.extend(quality.REGISTRY[key] for key in keys)
        else:
            single.append(checks_def)
    return dg.Definitions(
        assets=merged.assets, asset_checks=[*single, *quality.batched_checks(batchable)], schedules=merged.schedules,
        sensors=merged.sensors, jobs=merged.jobs, resources=merged.resources, executor=merged.executor,
        loggers=merged.loggers, metadata=merged.metadata)


defs = build_defs()
