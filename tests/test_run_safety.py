"""Run safety: one run per city (a lock the kernel frees on SIGKILL), and dbt ended with its run."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from social311.warehouse import RunLockHeld, WarehouseMissing, connect, run_lock, run_lock_holder

HOLD = """
import sys, time
from social311.warehouse import run_lock
with run_lock(sys.argv[1], owner="holder process"):
    print("held", flush=True)
    time.sleep(120)
"""


def hold_lock(duckdb_path: Path) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(duckdb_path)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_second_run_is_refused_with_one_line_naming_the_first(tmp_path):
    db = tmp_path / "city.duckdb"
    holder = hold_lock(db)
    try:
        with pytest.raises(RunLockHeld) as refused:
            with run_lock(db, owner="second"):
                pass
        message = str(refused.value)
        assert "\n" not in message
        assert f"holder process, pid {holder.pid}" in message
        assert run_lock_holder(db).startswith("holder process")
    finally:
        holder.kill()
        holder.wait()


def test_a_sigkilled_holder_leaves_no_stale_lock(tmp_path):
    db = tmp_path / "city.duckdb"
    holder = hold_lock(db)
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    assert run_lock_holder(db) == ""  # the file still says "holder process", but nobody holds it
    with run_lock(db, owner="next run"):
        assert run_lock_holder(db).startswith("next run")


def test_the_lock_is_reentrant_in_one_process_and_released_after(tmp_path):
    db = tmp_path / "city.duckdb"
    with run_lock(db, owner="cli"):
        with run_lock(db, owner="dagster resource"):  # the CLI holds it, the run's resource takes it again
            pass
        # still held after the inner block: another process is refused
        probe = subprocess.run([sys.executable, "-c", HOLD, str(db)], capture_output=True, text=True, timeout=60)
        assert probe.returncode != 0 and "RunLockHeld" in probe.stderr
    holder = hold_lock(db)  # released: another process gets it
    holder.kill()
    holder.wait()


def test_read_only_open_of_a_missing_warehouse_creates_nothing(tmp_path):
    with pytest.raises(WarehouseMissing):
        with connect(tmp_path / "absent.duckdb", read_only=True):
            pass
    assert not (tmp_path / "absent.duckdb").exists()


PARENT = """
import os, subprocess, sys, time
child = subprocess.Popen(sys.argv[1:])
print(child.pid, flush=True)
time.sleep(120)
"""
BOUND = "import os; from social311.child import exec_bound; exec_bound(['/bin/sleep', '120'], os.getppid())"


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def child_after_parent_killed(argv: list[str], settle_s: float = 1.0) -> int:
    parent = subprocess.Popen([sys.executable, "-c", PARENT, *argv], stdout=subprocess.PIPE, text=True)
    pid = int(parent.stdout.readline())
    time.sleep(settle_s)
    assert alive(pid)
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    return pid


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux-only")
def test_a_bound_child_dies_with_its_sigkilled_parent_and_a_plain_one_does_not():
    bound = child_after_parent_killed([sys.executable, "-c", BOUND])
    plain = child_after_parent_killed(["/bin/sleep", "120"])
    try:
        deadline = time.monotonic() + 5
        while alive(bound) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not alive(bound), "the bound child outlived its killed parent"
        assert alive(plain), "control: an unbound child goes on (what dbt did)"
    finally:
        if alive(plain):
            os.kill(plain, signal.SIGKILL)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux-only")
def test_social311_dbt_is_dbt_bound_to_its_parent():
    """The launcher dagster-dbt starts is dbt itself (same PID after exec), killed with the run."""
    from social311.orchestration.transforms import dbt_executable

    out = subprocess.run([dbt_executable(), "--help"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and "dbt" in out.stdout
    # dbt takes seconds to import: at 0.3 s it is still starting (or already bound and exec'd).
    pid = child_after_parent_killed([dbt_executable(), "debug", "--config-dir"], settle_s=0.3)
    deadline = time.monotonic() + 5
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not alive(pid)
