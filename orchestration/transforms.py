"""The dbt project as Dagster assets: staging, intermediate and marts, each its own step.

The layers are three ``@dbt_assets`` because Python assets sit between them (ML between staging
and the ward join, incidents and filing between the ward join and the marts). dbt tests load as
asset checks. dbt runs as a subprocess against the same DuckDB file, so no Python connection is
open while it runs (DuckDB has one writer per file).
"""


import functools
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


@functools.lru_cache(maxsize=4)
def _manifest(path: Path, mtime: float) -> dict:
    return json.loads(path.read_text())


def _skip_unchanged(context: dg.AssetExecutionContext, layer: str, duckdb_path, variables: dict):
    """``(key, skipped_events)``: the layer's inputs key, and the events to yield if it need not run.

    See ``orchestration/dbt_layers.py``: a layer whose inputs are those of its last clean build
    (within a day) is not run again; its models are reported as materialized ("not rebuilt") and
    its tests as passed on those inputs. Only when the run selected the whole layer.
    """
    from social311.orchestration import dbt_layers
    from social311.warehouse import connect

    whole = (set(context.selected_asset_keys) == set(context.assets_def.keys)
             and set(context.selected_asset_check_keys) == set(context.assets_def.check_keys))
    if layer not in dbt_layers.SKIPPABLE_LAYERS or not whole:
        return None, None
    manifest = _manifest(MANIFEST, MANIFEST.stat().st_mtime)
    with connect(duckdb_path) as con:
        key = dbt_layers.inputs_key(con, manifest, layer, PROJECT_DIR, variables)
        since = dbt_layers.unchanged_since(con, layer, key)
        if since is None:
            dbt_layers.forget_build(con, layer)  # until this build passes, the next run builds again
            return key, None
    note = f"not rebuilt: inputs unchanged since the clean build of {since:%Y-%m-%d %H:%M} UTC"
    context.log.info(f"dbt {layer}: {note}")
    events = [dg.Output(None, output_name=context.assets_def.get_output_name_for_asset_key(asset_key),
                        metadata={"dbt": note}) for asset_key in sorted(context.selected_asset_keys)]
    events += [dg.AssetCheckResult(asset_key=check.asset_key, check_name=check.name, passed=True,
                                   metadata={"scope": "unchanged inputs", "validated_by": note})
               for check in sorted(context.selected_asset_check_keys)]
    return key, events


def _build(context: dg.AssetExecutionContext, dbt: DbtCliResource, city: CityResource, layer: str):
    # dbt's profile reads these; the subprocess inherits them.
    from social311.orchestration import dbt_layers
    from social311.orchestration.gis import dbt_vars
    from social311.warehouse import connect

    cfg = city.load()
    duckdb_path = cfg.duckdb_path
    os.environ.update(dbt_env(duckdb_path))
    # Per-city settings of the models (the default-point rule) from the city YAML.
    variables = dbt_vars(cfg)
    key, skipped = _skip_unchanged(context, layer, duckdb_path, variables)
    if skipped is not None:
        yield from skipped
        return
    # Incremental models (int_posts_in_wards) rebuild in full on request: SOCIAL311_DBT_FULL_REFRESH=1.
    full = ["--full-refresh"] if os.environ.get("SOCIAL311_DBT_FULL_REFRESH") == "1" else []
    clean = True
    for event in dbt.cli([*PRODUCTION_BUILD, *full, "--vars", json.dumps(variables)], context=context,
                         target_path=target_dir(duckdb_path)).stream():
        if isinstance(event, dg.AssetCheckResult) and not event.passed:
            clean = False  # a warning-level test failed: the next run must run the tests again
        yield event
    if key is not None and clean:
        with connect(duckdb_path) as con:
            dbt_layers.record_clean_build(con, layer, key)


def layer_assets(manifest: Path) -> list[dg.AssetsDefinition]:
    """One ``@dbt_assets`` per layer folder."""
    return [_layer_asset(manifest, layer) for layer in ("staging", "intermediate", "marts")]


def _layer_asset(manifest: Path, layer: str) -> dg.AssetsDefinition:
    @dbt_assets(manifest=manifest, select=f"social311.{layer}", name=f"dbt_{layer}", dagster_dbt_translator=TRANSLATOR)
    def _layer(context: dg.AssetExecutionContext, dbt: DbtCliResource, city: CityResource):
        yield from _build(context, dbt, city, layer)

    return _layer


class CityDbtResource(DbtCliResource):
    """dagster-dbt's ``DbtCliResource`` without two costs it pays on every step.

    Before each ``dbt build`` subprocess, the pinned dagster-dbt (0.29) ran ``dbt --version`` in a
    second subprocess (``_cli_version``: a new interpreter importing dbt, 3–6 s) and built a dbt
    adapter inside the Dagster process (``_initialize_dbt_core_adapter``: profile, project and
    macros loaded, 3–7 s). The adapter only serves ``fetch_row_counts`` /
    ``fetch_column_metadata``, which this project never calls; the version is that of the dbt-core
    installed beside this interpreter (``dbt_executable`` is this environment's dbt). On a run with
    nothing new these were ~40% of each dbt step (bench/pipeline_100k.py --reruns 0).
    ``tests/test_dbt_resource.py`` pins both (and fails if dagster-dbt renames the hooks).
    """

    @property
    def _cli_version(self):  # type: ignore[override]  (a cached_property upstream)
        from importlib.metadata import version as installed_version

        from packaging import version

        return version.parse(installed_version("dbt-core"))

    def _initialize_dbt_core_adapter(self, args):  # type: ignore[override]
        return None  # no in-process adapter: nothing here fetches row counts or column metadata


def dbt_resource() -> DbtCliResource:
    return CityDbtResource(project_dir=DbtProject(project_dir=PROJECT_DIR, profiles_dir=PROJECT_DIR),
                           dbt_executable=dbt_executable())


def defs() -> dg.Definitions:
    return dg.Definitions(assets=layer_assets(ensure_manifest()))
