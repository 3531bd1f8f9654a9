"""The Dagster definitions load, and every asset has a group, a description and checks."""

import dagster as dg

from social311.orchestration.definitions import defs


def graph():
    return defs.resolve_asset_graph()


def test_every_asset_has_a_group_and_a_one_line_description():
    for key in graph().get_all_asset_keys():
        node = graph().get(key)
        assert node.group_name and node.group_name != "default", f"{key} has no group"
        assert node.description and node.description.strip(), f"{key} has no description"
        assert "\n" not in node.description.strip(), f"{key}: description must be one line"


def test_every_asset_has_at_least_one_check():
    checked = {ck.asset_key for ck in graph().asset_check_keys}
    missing = [k.to_user_string() for k in graph().get_all_asset_keys() if k not in checked]
    assert not missing, f"assets without checks: {missing}"


def test_the_stages_are_wired_in_the_order_of_the_design():
    upstream = {k.to_user_string(): {p.to_user_string() for p in graph().get(k).parent_keys}
                for k in graph().get_all_asset_keys()}
    assert "raw/posts" in upstream["stg_social__posts"]
    assert "stg_social__posts" in upstream["ml/post_signals"]
    assert {"ml/post_types", "ml/post_locations", "gis/wards"} <= upstream["int_posts_in_wards"]
    assert "int_posts_in_wards" in upstream["ops/incidents"]
    assert "ops/incidents" in upstream["ops/ticket_ledger"]
    assert "ops/ticket_ledger" in upstream["fct_incidents"]
    assert {"fct_incidents", "fct_ward_issue_daily"} <= upstream["ward_report"]


def test_checks_guarding_filing_are_blocking():
    blocking = {spec.key.name for spec in _check_specs() if spec.blocking and spec.asset_key == dg.AssetKey(["ops", "incidents"])}
    assert {"ready_incidents_expectations", "no_report_lost"} <= blocking


def test_dbt_tests_load_as_checks():
    names = {spec.key.name for spec in _check_specs() if spec.asset_key == dg.AssetKey(["int_posts_in_wards"])}
    assert any(name.startswith("unique_int_posts_in_wards") for name in names), names


def test_the_pipeline_job_and_schedule_exist():
    job = defs.resolve_job_def("social311_pipeline")
    assert job is not None
    assert defs.get_schedule_def("social311_pipeline_schedule").cron_schedule


def _check_specs():
    for assets_def in graph().assets_defs:
        yield from assets_def.check_specs
