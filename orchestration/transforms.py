"""The dbt project as Dagster assets: staging, intermediate and marts, each its own step.

The layers are three ``@dbt_assets`` because Python assets sit between them (ML between staging
and the ward join, incidents and filing between the ward join and the marts). dbt tests load as
asset checks. dbt runs as a subprocess against the same DuckDB file, so no Python connection is
open while it runs (DuckDB has one writer per file).
"""


import json
import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import dagster as dg
from dagster_dbt import DagsterDbtTranslator, DagsterDbtTranslatorSettings, DbtCliResource, DbtProject, dbt_assets

from social311.orchestration.resources import CityResource
from social311.transforms import PROJECT_DIR
from social311.warehouse import MEMORY_LIMIT_ENV, extension_dir, memory_limit

MANIFEST = PROJECT_DIR / "target" / "manifest.json"


def dbt_executable() -> str:
    """The dbt of this interpreter's environment (works whether or not the venv is activated).

    ``social311-dbt`` (``core/child.py``) when installed: dbt that the kernel kills when the run
    that started it dies, so a SIGKILLed run never leaves dbt holding the DuckDB lock.
    """
    for name in ("social311-dbt", "dbt"):
        candidate = Path(sys.executable).with_name(name)
        if candidate.exists():
            return str(candidate)
    return "dbt"


def dbt_env(duckdb_path: str | Path) -> dict[str, str]:
    """What dbt's profiles.yml reads: the warehouse file and the packaged spatial extension."""
    return {"SOCIAL311_DUCKDB_PATH": str(duckdb_path), "SOCIAL311_DUCKDB_EXTENSION_DIR": extension_dir(),
            MEMORY_LIMIT_ENV: memory_limit(duckdb_path),  # the city's memory.duckdb_memory_limit
            "DO_NOT_TRACK": "1", "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
            "DBT_USE_COLORS": "false"}  # dbt's lines go to logs, where ANSI colour codes are noise


def ensure_manifest() -> Path:
    """Parse the dbt project when its manifest is missing or older than any model file."""
    sources = [p for p in PROJECT_DIR.rglob("*") if p.suffix in {".sql", ".yml"} and "target" not in p.parts]
    if MANIFEST.exists() and all(p.stat().st_mtime <= MANIFEST.stat().st_mtime for p in sources):
        return MANIFEST
    subprocess.run([dbt_executable(), "parse", "--quiet", "--project-dir", str(PROJECT_DIR), "--profiles-dir", str(PROJECT_DIR)],
                   check=True, env={**os.environ, **dbt_env(PROJECT_DIR / "target" / "parse.duckdb")})
    return MANIFEST


class Translator(DagsterDbtTranslator):
    """Short descriptions (the model's own), group from ``meta.dagster.group`` in dbt_project.yml."""

    def get_description(self, dbt_resource_props: Mapping[str, Any]) -> str:
        return dbt_resource_props.get("description") or f"dbt {dbt_resource_props['resource_type']} {dbt_resource_props['name']}"


TRANSLATOR = Translator(settings=DagsterDbtTranslatorSettings(enable_asset_checks=True))


def target_dir(duckdb_path: str | Path) -> Path:
    """dbt's target folder for one warehouse: beside the DuckDB file, the same on every run.

    dagster-dbt gives each invocation a fresh folder by default, seeded with the project's
    ``partial_parse.msgpack``; that one was parsed against another warehouse path, so dbt saw
    "profile has changed" and parsed the whole project again on each of the three layer steps
    (~1.5 s each). One folder per warehouse keeps the partial parse of the previous invocation.
    The layers run one after another (each depends on the one before), never at once.
    """
    path = Path(duckdb_path)
    return path.with_name(f"{path.stem}.dbt-target")


#: A scheduled run's dbt command. The models' dbt unit tests pin SQL rules against fixed rows
#: (given, expected): they say nothing about this run's data, and ran in every build (~1 s each
#: on a 2-core machine). ``make test`` runs them (tests/test_ward_join_dbt.py: ``dbt build`` with
#: no exclusion); data tests still run here, as asset checks.
PRODUCTION_BUILD = ["build", "--exclude-resource-type", "unit_test"]


def _build(context: dg.AssetExecutionContext, dbt: DbtCliResource, city: CityResource):
    # dbt's profile reads these; the subprocess inherits them.
    from social311.orchestration.gis import dbt_vars

    cfg = city.load()
    duckdb_path = cfg.duckdb_path
    os.environ.update(dbt_env(duckdb_path))
    # Per-city settings of the models (the default-point rule) from the city YAML.
    # Incremental models (int_posts_in_wards) rebuild in full on request: SOCIAL311_DBT_FULL_REFRESH=1.
    full = ["--full-refresh"] if os.environ.get("SOCIAL311_DBT_FULL_REFRESH") == "1" else []
    yield from dbt.cli([*PRODUCTION_BUILD, *full, "--vars", json.dumps(dbt_vars(cfg))], context=context,
                       target_path=target_dir(duckdb_path)).stream()


def layer_assets(manifest: Path) -> list[dg.AssetsDefinition]:
    """One ``@dbt_assets`` per layer folder."""
    assets = []
    for layer in ("staging", "intermediate", "marts"):

        @dbt_assets(manifest=manifest, select=f"social311.{layer}", name=f"dbt_{layer}", dagster_dbt_translator=TRANSLATOR)
        def _layer(context: dg.AssetExecutionContext, dbt: DbtCliResource, city: CityResource):
            yield from _build(context, dbt, city)

        assets.append(_layer)
    return assets


def dbt_resource() -> DbtCliResource:
    return DbtCliResource(project_dir=DbtProject(project_dir=PROJECT_DIR, profiles_dir=PROJECT_DIR),
                          dbt_executable=dbt_executable())


def defs() -> dg.Definitions:
    return dg.Definitions(assets=layer_assets(ensure_manifest()))
