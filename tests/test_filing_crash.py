"""The filing process is killed (SIGKILL) at random points, restarted, and still files exactly once."""

import os
import random
import signal
import subprocess
import sys
import time

import pytest

from social311.integrations.testing.filing import audit, drill_requests
from social311.integrations.ticketing.sandbox import Faults, SandboxServer
from social311.warehouse import connect

KEY = "crash-drill-key"
N = 300
#: One filing process: what a Dagster run of ops/ticket_ledger does, in a process we can kill.
WORKER = """
import sys
from datetime import timedelta
from social311.integrations.testing.filing import drill_requests, file_until_settled
from social311.integrations.ticketing.ledger import TicketLedger
from social311.integrations.ticketing.open311 import Open311Config, Open311Ticketing
from social311.warehouse import connect
endpoint, db, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
plugin = Open311Ticketing(Open311Config(endpoint=endpoint, timeout_read_s=1, backoff_s=0.01),
                          instance_name="city", api_key="crash-drill-key")
# The drill is about SIGKILL, not the retry schedule: a 5xx is retried on the next pass (no
# backoff), and five attempts keep three 5% faults in a row from ending a ticket `failed`.
with connect(db) as con:
    ledger = TicketLedger(con, backoff=(timedelta(0),), max_attempts=5)
    file_until_settled(ledger, plugin, drill_requests(n), max_passes=50)
print("settled")
"""


def progress(db):
    with connect(db, read_only=True) as con:
        return con.execute("select count(*) from ops.ticket_ledger where state = 'submitted'").fetchone()[0]


@pytest.mark.slow
def test_sigkill_at_random_points_then_restart_files_exactly_once(tmp_path):
    db = tmp_path / "w.duckdb"
    rng = random.Random(7)
    faults = Faults(fail_rate_5xx=0.05, lose_reply_after_commit=0.05, seed=7)
    with SandboxServer(api_keys=(KEY,), db_path=tmp_path / "sandbox.sqlite", faults=faults) as sandbox:
        command = [sys.executable, "-c", WORKER, sandbox.url, str(db), str(N)]
        killed_mid_way = 0
        for _ in range(6):
            # Kill after the server has taken a random number of new tickets from this worker,
            # plus a random fraction of a request cycle: the kill lands mid-filing whatever the
            # machine's speed (a kill on a timer missed the filing window on a busy machine).
            target = sandbox.requests_filed() + rng.randint(5, 35)
            worker = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            deadline = time.monotonic() + 120
            while worker.poll() is None and sandbox.requests_filed() < target and time.monotonic() < deadline:
                time.sleep(0.005)
            time.sleep(rng.uniform(0, 0.02))
            if worker.poll() is None:
                os.kill(worker.pid, signal.SIGKILL)
            worker.wait()
            done = progress(db) if db.exists() else 0
            killed_mid_way += 0 < done < N
        finished = subprocess.run(command, capture_output=True, text=True, timeout=300)
        assert finished.returncode == 0 and "settled" in finished.stdout, finished.stderr[-2000:]
        with connect(db) as con:
            result = audit(con, sandbox.store.descriptions(), list(drill_requests(N)))
    assert killed_mid_way >= 3, "the kills should land while tickets are being filed"
    assert result.ok, result
    assert result.filed == N
