"""The Dagster code location: one small ``defs()`` per area, merged.

Run ``dagster dev`` from the repository root (workspace.yaml points here) with
``SOCIAL311_CONFIG`` naming the city YAML.
"""

import dagster as dg

from social311.orchestration import alerting, city_rules, gis, history, incidents, ingest, ml, replies, reporting, status, ticketing, transforms
from social311.orchestration import listen
from social311.orchestration.jobs import jobs_defs
from social311.orchestration.resources import CityResource


def build_defs() -> dg.Definitions:
    """All assets, checks, jobs and schedules, with resources resolved at run time."""
    return dg.Definitions.merge(
        ingest.defs(), gis.defs(), history.defs(), ml.defs(), transforms.defs(), incidents.defs(), ticketing.defs(),
        reporting.defs(), status.defs(), replies.defs(), city_rules.defs(), alerting.defs(),
        jobs_defs(),
        listen.listen_defs(),  # one stopped-by-default sensor per social-platform source
        dg.Definitions(resources={
            "city": CityResource(config_path=dg.EnvVar("SOCIAL311_CONFIG")),
            "dbt": transforms.dbt_resource(),
        }),
    )


defs = build_defs()
