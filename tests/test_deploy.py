"""The deployment recipe: deploy/dagster.yaml is a working Dagster instance on a real PostgreSQL."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest
import sqlalchemy as sa

from conftest import REPO

DEPLOY = REPO / "deploy"


@dg.asset
def probe():
    return 1


def test_instance_on_postgres_stores_runs_and_queues_one_at_a_time(postgis_url, tmp_path, monkeypatch):
    url = sa.engine.make_url(postgis_url)
    engine = sa.create_engine(postgis_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as con:
        con.execute(sa.text("drop database if exists dagster_deploy_test"))
        con.execute(sa.text("create database dagster_deploy_test"))
    engine.dispose()
    monkeypatch.setenv("SOCIAL311_DAGSTER_PG_URL",
                       f"postgresql+psycopg2://{url.username}@{url.host}:{url.port}/dagster_deploy_test")
    home = tmp_path / "dagster_home"
    home.mkdir()
    text = (DEPLOY / "dagster.yaml").read_text().replace("/var/lib/social311/dagster_home", str(home))
    (home / "dagster.yaml").write_text(text)
    instance = dg.DagsterInstance.from_config(str(home))
    try:
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        assert type(instance.run_coordinator).__name__ == "QueuedRunCoordinator"
        assert instance.run_coordinator.get_run_queue_config().max_concurrent_runs == 1
        result = dg.materialize([probe], instance=instance)
        assert result.success
        stored = instance.get_run_by_id(result.run_id)
        assert stored is not None and stored.status == dg.DagsterRunStatus.SUCCESS
    finally:
        instance.dispose()
    # The events are in PostgreSQL, not in files under DAGSTER_HOME.
    check = sa.create_engine(postgis_url.rsplit("/", 1)[0] + "/dagster_deploy_test")
    with check.connect() as con:
        assert con.execute(sa.text("select count(*) from runs")).scalar() == 1
        assert con.execute(sa.text("select count(*) from event_logs")).scalar() > 3
    check.dispose()


def test_env_example_names_every_variable_the_instance_reads():
    env = {line.split("=", 1)[0] for line in (DEPLOY / "social311.env.example").read_text().splitlines()
           if line and not line.startswith("#")}
    import re

    named = set(re.findall(r"env: (\w+)", (DEPLOY / "dagster.yaml").read_text()))
    assert named and named <= env
    assert {"DAGSTER_HOME", "SOCIAL311_CONFIG", "SOCIAL311_OPEN311_API_KEY"} <= env


@pytest.mark.parametrize("unit", sorted((DEPLOY / "systemd").glob("*.service")), ids=lambda p: p.name)
def test_systemd_units_start_our_binaries(unit):
    text = unit.read_text()
    exec_start = next(line for line in text.splitlines() if line.startswith("ExecStart="))
    binary = Path(exec_start.split("=", 1)[1].split()[0]).name
    assert (Path(sys.executable).parent / binary).exists(), binary
    assert "EnvironmentFile=/etc/social311/social311.env" in text
    assert "KillSignal=SIGINT" in text
    if shutil.which("systemd-analyze"):
        # Paths of the target machine do not exist here; only the syntax is judged.
        out = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True)
        problems = [line for line in out.stderr.splitlines() if "Unknown" in line or "Invalid" in line or "syntax" in line.lower()]
        assert not problems, out.stderr
