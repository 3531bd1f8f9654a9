"""The drop-folder sensor: one run per change of the folder, none while a run holds the city."""

import subprocess
import sys

import dagster as dg
import pytest
import yaml

from conftest import REPO
from social311.orchestration.jobs import FRESH_WITHIN, drop_folder_sensor, freshness_checks
from social311.orchestration.resources import CityResource


@pytest.fixture
def city(tmp_path):
    data = yaml.safe_load((REPO / "demo" / "city.yaml").read_text())
    data["sources"][0]["config"]["drop_dir"] = str(tmp_path / "drop")
    data["duckdb_path"] = str(tmp_path / "city.duckdb")
    path = tmp_path / "city.yaml"
    path.write_text(yaml.safe_dump(data))
    (tmp_path / "drop").mkdir()
    return CityResource(config_path=str(path))


def evaluate(city, cursor=None):
    with dg.build_sensor_context(cursor=cursor, resources={"city": city}) as context:
        result = drop_folder_sensor(context)
        return result, context.cursor


def test_new_grown_and_unchanged_files(city, tmp_path):
    drop = tmp_path / "drop"
    result, cursor = evaluate(city)
    assert isinstance(result, dg.SkipReason) and "no file" in result.skip_message and cursor is None
    (drop / "posts-0001.jsonl").write_text('{"id": "1"}\n')
    result, cursor = evaluate(city, cursor)
    assert isinstance(result, dg.RunRequest) and result.run_key == cursor
    again, same = evaluate(city, cursor)
    assert isinstance(again, dg.SkipReason) and "no new or changed file among 1" in again.skip_message and same == cursor
    with (drop / "posts-0001.jsonl").open("a") as f:  # a file that grows is new work
        f.write('{"id": "2"}\n')
    grown, cursor2 = evaluate(city, cursor)
    assert isinstance(grown, dg.RunRequest) and cursor2 != cursor
    (drop / "notes.txt").write_text("not a post file")  # outside the source's pattern
    (drop / "link.jsonl").symlink_to("/etc/hostname")  # refused by the source: no run either
    ignored, cursor3 = evaluate(city, cursor2)
    assert isinstance(ignored, dg.SkipReason) and cursor3 == cursor2


def test_waits_while_a_run_holds_the_city(city, tmp_path):
    (tmp_path / "drop" / "posts-0001.jsonl").write_text('{"id": "1"}\n')
    holder = subprocess.Popen([sys.executable, "-c",
                               "import sys, time\nfrom social311.warehouse import run_lock\n"
                               "with run_lock(sys.argv[1], owner='Dagster run abc'):\n    print('held', flush=True); time.sleep(60)",
                               str(tmp_path / "city.duckdb")], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        waiting, cursor = evaluate(city, "before")
        assert isinstance(waiting, dg.SkipReason) and "Dagster run abc" in waiting.skip_message
        assert cursor == "before"  # the change is seen again once the run ends
    finally:
        holder.kill()
        holder.wait()
    result, _ = evaluate(city, "before")
    assert isinstance(result, dg.RunRequest)


def test_freshness_checks_warn_and_stay_out_of_the_pipeline_run():
    from social311.orchestration.definitions import defs

    keys = {key for checks in freshness_checks for key in checks.check_keys}
    assert {k.asset_key.to_user_string() for k in keys} == {"raw/posts", "ops/ticket_status"}
    assert FRESH_WITHIN.total_seconds() == 7200
    for checks in freshness_checks:
        assert all(spec.blocking is False for spec in checks.check_specs)
    in_job = defs.resolve_job_def("social311_pipeline").asset_layer.asset_graph.asset_check_keys
    assert not keys & set(in_job)
    assert {s.name for s in defs.sensors} >= {"drop_folder_sensor", "freshness_checks_sensor"}
    for job in defs.resolve_all_job_defs():
        assert job.executor_def.name == "in_process", job.name
