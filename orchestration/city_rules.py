"""The city YAML's reporting rules (SLA targets, spike rule, campaigns) as tables dbt reads.

dbt gets no network and no YAML: the marts read ``ops.sla_targets``, ``ops.spike_rule`` and
``ops.campaign_terms``, rewritten from the config on every run so an edit of the YAML shows in
the next run's marts.
"""

import re

import dagster as dg
import duckdb

from social311.config import CityConfig
from social311.orchestration.quality import sql_check
from social311.orchestration.resources import CityResource
from social311.warehouse import connect, insert_many

SLA_TARGETS = dg.AssetKey(["ops", "sla_targets"])
SPIKE_RULE = dg.AssetKey(["ops", "spike_rule"])
CAMPAIGN_TERMS = dg.AssetKey(["ops", "campaign_terms"])
SERVICE_CATALOG = dg.AssetKey(["ops", "service_catalog"])


def term_pattern(term: str) -> str:
    """A case-insensitive whole-word RE2 pattern for a hashtag or keyword (``#fixit`` != ``#fixitnow``)."""
    return rf"(?i)(^|[^\w#@]){re.escape(term.strip())}($|[^\w])"


def rule_rows(cfg: CityConfig) -> dict[str, list[tuple]]:
    """Rows of the three rule tables for ``cfg``."""
    hours = lambda value: None if value is None else value * 3600  # noqa: E731
    spikes = cfg.spikes
    return {
        "ops.sla_targets": [(code, hours(t.acknowledge_hours), hours(t.close_hours), hours(t.answer_hours))
                            for code, t in sorted(cfg.sla.items())],
        "ops.spike_rule": [(spikes.baseline_days, spikes.min_history_days, spikes.min_count, spikes.city_min_count,
                            spikes.ratio)],
        "ops.campaign_terms": [(c.name, term, term_pattern(term)) for c in cfg.campaigns for term in c.terms],
    }


def write_rules(con: duckdb.DuckDBPyConnection, cfg: CityConfig) -> dict[str, int]:
    """Replace the rule tables with ``cfg``'s rules in one transaction; returns rows per table."""
    rows = rule_rows(cfg)
    con.execute("begin transaction")
    for table, values in rows.items():
        con.execute(f"delete from {table}")
        if values:
            insert_many(con, f"insert into {table} values ({', '.join('?' * len(values[0]))})", values)
    con.execute("commit")
    return {table.split(".")[1]: len(values) for table, values in rows.items()}


@dg.multi_asset(specs=[
    # After the catalog, so the check below judges the YAML's service codes against this run's catalog.
    dg.AssetSpec(SLA_TARGETS, description="Per-service response targets from the city YAML.", group_name="reporting",
                 deps=[SERVICE_CATALOG]),
    dg.AssetSpec(SPIKE_RULE, description="The spike rule's numbers from the city YAML.", group_name="reporting"),
    dg.AssetSpec(CAMPAIGN_TERMS, description="Campaign hashtags and keywords from the city YAML.", group_name="reporting"),
], compute_kind="yaml")
def city_rules(context: dg.AssetExecutionContext, city: CityResource):
    """SLA targets, spike rule and campaign terms of the city YAML, written for dbt."""
    cfg = city.load()
    with connect(cfg.duckdb_path) as con:
        counts = write_rules(con, cfg)
    for key, table in ((SLA_TARGETS, "sla_targets"), (SPIKE_RULE, "spike_rule"), (CAMPAIGN_TERMS, "campaign_terms")):
        yield dg.MaterializeResult(asset_key=key, metadata={"rows": counts[table]})


def defs() -> dg.Definitions:
    return dg.Definitions(assets=[city_rules], asset_checks=[
        sql_check(asset=SLA_TARGETS, name="targets_are_positive",
                  description="Every SLA target is unset or a positive number of seconds.",
                  query="select service_code from ops.sla_targets where acknowledge_s <= 0 or close_s <= 0 or answer_s <= 0"),
        sql_check(asset=SLA_TARGETS, name="targets_name_catalog_services",
                  description="Every SLA line is `default` or a service code of the city's Open311 catalog (a typo is not ignored).",
                  query="select service_code from ops.sla_targets where service_code <> 'default' "
                        "and service_code not in (select service_code from ops.service_catalog)"),
        sql_check(asset=SPIKE_RULE, name="one_rule",
                  description="The spike rule table holds exactly one row.",
                  query="select count(*) from ops.spike_rule having count(*) <> 1"),
        sql_check(asset=CAMPAIGN_TERMS, name="terms_are_not_blank",
                  description="Every campaign term is a non-blank word or hashtag.",
                  query="select campaign from ops.campaign_terms where trim(term) = ''"),
    ])
