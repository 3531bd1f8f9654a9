"""Runs launched the way the UI, a schedule or a sensor launch them, not ``materialize`` in process.

``dagster job execute`` against the code location and a persistent DagsterInstance resolves the
job's own executor, as the run launcher does. Before, that was the multiprocess executor:
parallel step processes opened the one DuckDB file and the run failed on "Conflicting lock is
held". Two overlapping runs of one city: the second is refused at once by the city's run lock,
with one line naming the first; the first finishes untouched.
"""

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from social311.warehouse import run_lock_holder

pytestmark = pytest.mark.slow

DAGSTER = str(Path(sys.executable).with_name("dagster"))


def launch(env: dict, log: Path) -> subprocess.Popen:
    return subprocess.Popen([DAGSTER, "job", "execute", "-m", "social311.orchestration.definitions", "-j", "social311_pipeline"],
                            env=env, stdout=log.open("w"), stderr=subprocess.STDOUT)


def test_job_launched_with_the_instance_runs_in_process_and_a_second_run_is_refused(tmp_path):
    import dagster as dg

    from social311.config import load_config
    from social311.demo.runner import prepare_demo
    from social311.warehouse import connect

    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    with prepare_demo(tmp_path / "city") as config_path:
        cfg = load_config(config_path)
        env = {**os.environ, "DAGSTER_HOME": str(home), "SOCIAL311_CONFIG": str(config_path)}
        first = launch(env, tmp_path / "first.log")
        deadline = time.monotonic() + 300
        while not run_lock_holder(cfg.duckdb_path) and first.poll() is None and time.monotonic() < deadline:
            time.sleep(0.5)
        assert run_lock_holder(cfg.duckdb_path).startswith("Dagster run "), (tmp_path / "first.log").read_text()[-3000:]
        second = launch(env, tmp_path / "second.log")
        assert second.wait(timeout=300) != 0
        assert first.poll() is None, "the refused run must not disturb the first"
        assert first.wait(timeout=840) == 0, (tmp_path / "first.log").read_text()[-5000:]
    second_log = (tmp_path / "second.log").read_text()
    assert "another run of this city is in progress (Dagster run " in second_log

    instance = dg.DagsterInstance.from_config(str(home))
    runs = instance.get_runs()
    assert len(runs) == 2
    by_status = {run.status: run for run in runs}
    ok = by_status[dg.DagsterRunStatus.SUCCESS]
    assert dg.DagsterRunStatus.FAILURE in by_status
    events = instance.all_logs(ok.run_id)
    messages = [event.user_message or "" for event in events]
    assert any("executing steps in process" in m.lower() for m in messages), "the run did not use the in-process executor"
    assert not any("multiprocess" in m.lower() for m in messages)
    assert not any("Conflicting lock" in m for m in messages)
    # the first run did its whole job: tickets filed and checks evaluated
    with connect(cfg.duckdb_path, read_only=True) as con:
        assert con.execute("select count(*) from ops.ticket_ledger where state = 'submitted'").fetchone()[0] > 0
    checks = [e for e in events if e.dagster_event and e.dagster_event.event_type_value == "ASSET_CHECK_EVALUATION"]
    assert len(checks) >= 40
    assert run_lock_holder(cfg.duckdb_path) == ""  # released
