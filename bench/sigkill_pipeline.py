"""Whole-pipeline SIGKILL drill: the demo city's run killed ≥ 10 times across ingest, dbt,
embedding and filing, then run to the end; nothing lost, nothing scored twice, nothing filed twice.

Each round drops one more batch of demo posts (new work for every stage), starts
``social311 run`` in its own process group, waits until the targeted Dagster step has started
(for filing: until the sandbox has taken at least one new ticket from it), waits a random
fraction of a second more and SIGKILLs the whole group (the run and any dbt child), as a
supervisor, the OOM killer or a power cut would. After the last kill, one run is let finish
and the warehouse and the Open311 sandbox are audited:

- drop-folder lines in = posts stored + lines quarantined + ids repeated in a later fetch (edits
  or unchanged, their ids stored), each quarantined line once, the stored ids exactly those of
  one clean read of the whole folder;
- every stored post scored exactly once (``ml.post_signals``);
- every ready incident has one ledger row; no incident has two tickets on the server (by
  marker); the incidents with a ticket on the server = the ledger's ``submitted`` and
  ``awaiting_token`` rows (batch services answer with a token first).

Usage::

    .venv/bin/python bench/sigkill_pipeline.py [--kills 11] [--seed 7] [--workdir DIR] [--out FILE]
    .venv/bin/python bench/sigkill_pipeline.py --audit-only --workdir DIR   # audit a finished drill again

Prints one line per round and the audit as JSON; exit 1 when the audit fails.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

STAGES = {  # the Dagster steps each kill targets
    "ingest": ("raw__posts",),
    "dbt": ("dbt_staging", "dbt_intermediate", "dbt_marts"),
    "embedding": ("ml__post_signals",),
    "filing": ("ops__ticket_ledger",),
}
_STEP = re.compile(r'Started execution of step "([^"]+)"')
# What `social311 run` does (cli.run_pipeline), with DEBUG console logs: they carry STEP_START.
RUNNER = """
import os, sys
from pathlib import Path
from social311.cli import _offline, dagster_instance
_offline()
os.environ["SOCIAL311_CONFIG"] = str(Path(sys.argv[1]).resolve())
from social311.orchestration.definitions import defs
result = defs.resolve_job_def("social311_pipeline").execute_in_process(
    run_config={"loggers": {"console": {"config": {"log_level": "DEBUG"}}}},
    instance=dagster_instance(Path(sys.argv[2])), raise_on_error=False)
sys.exit(0 if result.success else 1)
"""


def _wait_group_gone(pgid: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)
    raise RuntimeError(f"process group {pgid} still alive {timeout} s after SIGKILL")


def run_once(config: Path, home: Path, log: Path, *, stage: str | None, rng: random.Random, sandbox,
             timeout: float = 900) -> dict:
    """One pipeline run; killed in ``stage`` (None: let it finish). Returns what happened."""
    started = time.monotonic()
    filed_before = sandbox.requests_filed()
    with log.open("w") as out:
        child = subprocess.Popen([sys.executable, "-c", RUNNER, str(config), str(home)], stdout=out,
                                 stderr=subprocess.STDOUT, start_new_session=True)
    seen: list[str] = []
    killed_in = None
    while child.poll() is None and time.monotonic() - started < timeout:
        seen = _STEP.findall(log.read_text(errors="replace"))
        if stage and seen and seen[-1] in STAGES[stage]:
            if stage == "filing":  # mid-filing: after the server took at least one new ticket
                deadline = time.monotonic() + 60
                while (sandbox.requests_filed() == filed_before and child.poll() is None
                       and time.monotonic() < deadline):
                    time.sleep(0.005)
            time.sleep(rng.uniform(0, 0.5 if stage != "filing" else 0.05))
            if child.poll() is None:
                os.killpg(child.pid, signal.SIGKILL)
                killed_in = _STEP.findall(log.read_text(errors="replace"))[-1]
            break
        time.sleep(0.02)
    if child.poll() is None and killed_in is None:
        os.killpg(child.pid, signal.SIGKILL)
        killed_in = "timeout"
    child.wait()
    _wait_group_gone(child.pid)
    return {"target": stage, "killed_in_step": killed_in, "rc": child.returncode,
            "seconds": round(time.monotonic() - started, 1),
            "tickets_filed": sandbox.requests_filed() - filed_before}


def audit(cfg, drop: Path, sandbox_db: Path) -> dict:
    """The invariants after the drill (see the module docstring)."""
    from social311.integrations.ticketing.ledger import MARKER_PREFIX
    from social311.warehouse import connect

    from social311.integrations import registry
    from social311.orchestration.ingest import post_limits
    from social311.records import implausible

    lines = sum(1 for path in drop.glob("*.jsonl") for raw in path.read_bytes().splitlines() if raw.strip())
    # What one uninterrupted read of the whole folder gives: the posts that must be stored.
    fresh = registry.build("sources", cfg.sources[0]).fetch(None, pseudonym_key="audit")
    limits = post_limits(cfg)
    expected_ids = {p.post_id for p in fresh.posts if implausible(p, limits) is None}
    with connect(cfg.duckdb_path, read_only=True) as con:
        one = lambda sql: con.execute(sql).fetchone()[0]  # noqa: E731
        stored = one("select count(*) from raw.posts")
        stored_ids = {r[0] for r in con.execute("select post_id from raw.posts").fetchall()}
        quarantined = one("select count(*) from quarantine.records where stage = 'ingest'")
        quarantined_twice = one("select count(*) from (select record_ref from quarantine.records "
                                "where stage = 'ingest' group by 1 having count(*) > 1)")
        scored = one("select count(*) from ml.post_signals")
        unscored = one("select count(*) from raw.posts where post_id not in (select post_id from ml.post_signals)")
        quarantined_refs = {r[0] for r in con.execute("select record_ref from quarantine.records").fetchall()}
        ready = one("select count(*) from ops.incidents where status = 'ready'")
        ready_without_ledger = one("select count(*) from ops.incidents where status = 'ready' and incident_id "
                                   "not in (select incident_id from ops.ticket_ledger)")
        ledger_ids = one("select count(*) from ops.ticket_ledger where service_request_id is not null")
        on_server = {r[0] for r in con.execute("select incident_id from ops.ticket_ledger "
                                              "where state in ('submitted', 'awaiting_token')").fetchall()}
        ledger_states = dict(con.execute("select state, count(*) from ops.ticket_ledger group by 1").fetchall())
    import sqlite3

    # An id seen again in a later fetch is, run by run, an edit or unchanged: one clean read of the
    # whole folder calls it a duplicate. Each such line must have its id stored.
    repeats = [r for r in fresh.rejects if r.reason.startswith("duplicate id") and r.record_ref not in quarantined_refs]
    repeated_ids = {f"{cfg.sources[0].instance_name}:{r.reason.split(chr(39))[1]}" for r in repeats}
    markers: Counter = Counter()
    with sqlite3.connect(sandbox_db) as db:  # the server's own store: what the city's 311 system holds
        for (description,) in db.execute("select description from service_requests"):
            if MARKER_PREFIX in (description or ""):
                markers[description.split(MARKER_PREFIX, 1)[1].split("]", 1)[0]] += 1
    result = {
        "drop_lines": lines, "fresh_read_posts": len(fresh.posts), "fresh_read_rejects": len(fresh.rejects),
        "ids_repeated_in_later_fetches": len(repeats), "repeated_ids_not_stored": len(repeated_ids - stored_ids),
        "posts_missing": len(expected_ids - stored_ids), "posts_unexpected": len(stored_ids - expected_ids),
        "posts_stored": stored, "lines_quarantined": quarantined,
        "quarantined_twice": quarantined_twice, "posts_scored": scored, "posts_unscored": unscored,
        "ready_incidents": ready, "ready_without_ledger_row": ready_without_ledger,
        "ledger_states": ledger_states, "ledger_with_request_id": ledger_ids,
        "server_tickets_with_marker": sum(markers.values()), "markers_filed_twice": sum(1 for n in markers.values() if n > 1),
        "ledger_filed_not_on_server": len(on_server - set(markers)), "on_server_not_in_ledger": len(set(markers) - on_server),
    }
    result["ok"] = (lines == stored + quarantined + len(repeats) and not result["repeated_ids_not_stored"]
                    and not result["posts_missing"]
                    and not result["posts_unexpected"] and quarantined_twice == 0 and unscored == 0 and scored == stored
                    and ready_without_ledger == 0 and result["markers_filed_twice"] == 0
                    and not result["ledger_filed_not_on_server"] and not result["on_server_not_in_ledger"])
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kills", type=int, default=11)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--workdir", help="default: a new temporary folder")
    parser.add_argument("--out", help="write the rounds and the audit here as JSON")
    parser.add_argument("--audit-only", action="store_true", help="audit an earlier drill's --workdir again")
    args = parser.parse_args(argv)
    if args.audit_only:
        from social311.config import load_config

        workdir = Path(args.workdir).resolve()
        result = audit(load_config(workdir / "city.yaml"), workdir / "drop", workdir / "sandbox.sqlite")
        print(json.dumps(result, indent=2))
        return 0 if result["ok"] else 1
    from social311.cli import _offline
    from social311.config import load_config
    from social311.demo.history import seed_sandbox
    from social311.demo.runner import API_KEY_ENV, DEMO_API_KEY, demo_config, write_demo_posts
    from social311.integrations.ticketing.sandbox import SandboxServer

    _offline()
    rng = random.Random(args.seed)
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="sigkill-")).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault(API_KEY_ENV, DEMO_API_KEY)
    order = list(STAGES)
    rounds = []
    write_demo_posts(workdir / "drop", seed=0, batch=1)
    # The sandbox lives in this process: killing the pipeline never kills the "city's 311 system".
    sandbox = SandboxServer(db_path=str(workdir / "sandbox.sqlite"), api_keys=(os.environ[API_KEY_ENV],)).start()
    try:
        seed_sandbox(sandbox, seed=0)
        config = demo_config(workdir, sandbox.url)
        cfg = load_config(config)
        for k in range(args.kills):
            write_demo_posts(workdir / "drop", seed=0, batch=k + 2)  # new work for every stage
            stage = order[k % len(order)]
            outcome = run_once(config, workdir / "dagster_home", workdir / f"run-{k:02d}.log",
                               stage=stage, rng=rng, sandbox=sandbox)
            rounds.append(outcome)
            print(json.dumps({"round": k + 1, **outcome}), flush=True)
        final = run_once(config, workdir / "dagster_home", workdir / "run-final.log", stage=None, rng=rng,
                         sandbox=sandbox)
        print(json.dumps({"round": "final", **final}), flush=True)
        result = {"rounds": rounds, "final": final,
                  "audit": audit(cfg, workdir / "drop", workdir / "sandbox.sqlite"), "workdir": str(workdir)}
    finally:
        sandbox.stop()
    print(json.dumps(result["audit"], indent=2))
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=2))
    return 0 if result["audit"]["ok"] and final["rc"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
