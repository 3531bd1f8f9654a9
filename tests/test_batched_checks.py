"""Checks built by ``gx_check``/``sql_check`` run batched, one Dagster step per asset.

A real Dagster run over a real DuckDB file: a batch with a passing, a failing and a raising
check reports each check's own result, and a failed blocking check in a batch still stops the
downstream asset in the same run.
"""

from __future__ import annotations

import dagster as dg

from social311.orchestration import quality
from social311.orchestration.definitions import defs
from social311.orchestration.quality import Suite, batched_checks, gx_check, sql_check
from social311.warehouse import connect

UP = dg.AssetKey(["t", "up"])


class _City(dg.ConfigurableResource):
    """The ``city`` resource's one attribute the checks use: where the warehouse is."""

    duckdb_path: str

    def load(self):
        return self


def _run(tmp_path, *, blocking: bool):
    path = tmp_path / "w.duckdb"
    with connect(path) as con:
        con.execute("create table t_up as select * from (values (1, 'a'), (2, 'b'), (2, 'c')) v(id, name)")

    @dg.asset(key=UP)
    def up():
        return None

    @dg.asset(deps=[UP])
    def down():
        return None

    checks = [
        sql_check(asset=UP, name="ids_unique", blocking=blocking, description="No id twice.",
                  query="select id from t_up group by id having count(*) > 1"),
        sql_check(asset=UP, name="table_is_there", description="Reads a table that does not exist.",
                  query="select * from no_such_table"),
        gx_check(asset=UP, suite=Suite(name="names_present", expectations=(
            ("ExpectColumnValuesToNotBeNull", {"column": "name"}),)),
                 query="select name from t_up", description="Every row has a name."),
    ]
    batch = batched_checks(quality.REGISTRY[key] for c in checks for key in c.check_keys)
    result = dg.materialize([up, down, *batch], resources={"city": _City(duckdb_path=str(path))},
                            raise_on_error=False)
    return batch, result


def test_a_batch_reports_each_checks_own_result(tmp_path):
    batch, result = _run(tmp_path, blocking=False)
    assert len(batch) == 1, "three checks on one asset are one step"
    evaluations = {e.check_name: e for e in result.get_asset_check_evaluations()}
    assert set(evaluations) == {"ids_unique", "table_is_there", "names_present"}
    assert evaluations["ids_unique"].passed is False
    assert evaluations["ids_unique"].metadata["offending_rows"].value == 1
    assert evaluations["table_is_there"].passed is False
    assert "no_such_table" in evaluations["table_is_there"].metadata["error"].value
    assert evaluations["table_is_there"].description.startswith("check raised CatalogException")
    assert evaluations["names_present"].passed is True
    materialized = {e.asset_key for e in result.get_asset_materialization_events()}
    assert dg.AssetKey("down") in materialized, "non-blocking failures do not stop downstream"


def test_a_failed_blocking_check_in_a_batch_stops_downstream(tmp_path):
    _, result = _run(tmp_path, blocking=True)
    evaluations = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
    assert evaluations == {"ids_unique": False, "table_is_there": False, "names_present": True}
    materialized = {e.asset_key for e in result.get_asset_materialization_events()}
    assert UP in materialized and dg.AssetKey("down") not in materialized
    assert not result.success


def test_the_code_location_runs_builder_checks_batched_with_the_same_specs():
    specs = {}
    for checks_def in defs.asset_checks:
        for spec in checks_def.check_specs:
            specs[spec.key] = (checks_def.node_def.name, spec)
    registered = {key: check for key, check in quality.REGISTRY.items() if key in specs}
    assert len(registered) >= 20, "the builders' checks are in the code location"
    for key, check in registered.items():
        op_name, spec = specs[key]
        assert op_name.startswith("checks__"), f"{key} is not batched"
        assert (spec.blocking, spec.description) == (check.spec.blocking, check.spec.description)
    blocking = {key.name for key, (_, spec) in specs.items() if spec.blocking and key.asset_key == dg.AssetKey(["ops", "incidents"])}
    assert "no_report_lost" in blocking
