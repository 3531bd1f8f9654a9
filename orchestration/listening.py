"""Builds the social-platform sources of a city: credentials from the environment, the
listening plan with place terms from the city's own gazetteer.

Plugins never read ``os.environ`` (see :class:`social311.integrations.base.Plugin`): a polling
source names its credentials with ``credentials_env: {role: ENV_NAME}`` in the city YAML and
this module resolves them when the source is built. A named variable that is not set is an
error with the variable's name (never its value).
"""

from __future__ import annotations

import os
from pathlib import Path

import duckdb

from social311.config import CityConfig, ConfigError, PluginRef
from social311.integrations import registry
from social311.integrations.sources.base import SourcePlugin
from social311.integrations.sources.listening import ListeningPlan
from social311.integrations.sources.polling import PollingSource
from social311.warehouse import extension_dir


def gazetteer_names(duckdb_path: str | Path) -> list[str]:
    """Ward, place (and alias) and street names the GIS step stored; [] before the first GIS load."""
    path = Path(duckdb_path)
    if not path.exists():
        return []
    queries = ("select name from gis.wards where name is not null",
               "select name from gis.places union all select unnest(aliases) from gis.places",
               "select name from gis.streets")
    names: list[str] = []
    try:
        # The same settings as warehouse.connect, so that inside a run (where the warehouse is
        # already open) DuckDB hands back that same database instead of refusing a second one.
        con = duckdb.connect(str(path), config={"extension_directory": extension_dir(),
                                                "autoinstall_known_extensions": False})
        con.execute("LOAD spatial")
    except duckdb.Error:
        return []  # another process holds the warehouse: the plan is derived next run
    try:
        for sql in queries:
            try:
                names += [r[0] for r in con.execute(sql).fetchall() if r[0]]
            except duckdb.Error:
                continue  # that table is not there yet
    finally:
        con.close()
    return names


def city_plan(cfg: CityConfig) -> ListeningPlan:
    """The city's plan with its gazetteer's place terms added."""
    return cfg.listening.with_places(gazetteer_names(cfg.duckdb_path))


def resolve_credentials(ref: PluginRef) -> dict[str, str]:
    """``credentials_env`` of a source resolved from the environment; a missing one is an error."""
    names = ref.config.get("credentials_env") or {}
    missing = [env for env in names.values() if not os.environ.get(env)]
    if missing:
        raise ConfigError(f"source {ref.instance_name}: environment variable(s) {', '.join(sorted(missing))} "
                          "not set (credentials_env in the city YAML)")
    return {role: os.environ[env] for role, env in names.items()}


def is_listening_source(cls: object) -> bool:
    """True for the social-platform plugins (they take credentials and the city's plan)."""
    from social311.integrations.sources.jetstream import JetstreamSource

    return isinstance(cls, type) and issubclass(cls, (PollingSource, JetstreamSource))


def build_source(ref: PluginRef, cfg: CityConfig, *, plan: ListeningPlan | None = None) -> SourcePlugin:
    """One configured source; polling sources get their credentials and the city's plan."""
    cls = registry.load_class("sources", ref.plugin)
    if is_listening_source(cls):
        return registry.build("sources", ref, credentials=resolve_credentials(ref),
                              plan=plan if plan is not None else city_plan(cfg))
    return registry.build("sources", ref)
