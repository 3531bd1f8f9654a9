"""Bench: how many Dagster steps a pipeline run took, and what they cost, read from its event log.

Run: ``.venv/bin/python bench/check_steps.py DAGSTER_HOME [RUN_ID]`` (default: the latest run).
E.g. after ``social311 demo --workdir /tmp/d`` and a second ``social311 run --config /tmp/d/city.yaml``
(nothing new), with ``/tmp/d/dagster_home``. Reported: the run's wall time, its steps (all, and
those that only run asset checks), each step's time from STEP_START to its end, and the time
between one step's end and the next one's start, and for check steps the part inside the
checks' own code (Dagster's compute timer; the rest is Dagster's per-step work).
"""

from __future__ import annotations

import argparse
import json
import sys

import dagster as dg
from dagster._core.events import DagsterEventType


def step_figures(home: str, run_id: str | None) -> dict:
    with dg.DagsterInstance.from_config(home) as instance:
        if run_id is None:
            run_id = instance.get_runs(limit=1)[0].run_id
        records = instance.all_logs(run_id)
        starts, ends, check_steps, asset_steps, compute = {}, {}, set(), set(), {}
        run_start = run_end = None
        for record in records:
            event = record.dagster_event
            if event is None:
                continue
            kind = event.event_type
            if kind == DagsterEventType.RUN_START:
                run_start = record.timestamp
            elif kind in (DagsterEventType.RUN_SUCCESS, DagsterEventType.RUN_FAILURE):
                run_end = record.timestamp
            elif kind == DagsterEventType.STEP_START:
                starts[event.step_key] = record.timestamp
            elif kind in (DagsterEventType.STEP_SUCCESS, DagsterEventType.STEP_FAILURE):
                ends[event.step_key] = record.timestamp
                if kind == DagsterEventType.STEP_SUCCESS:
                    compute[event.step_key] = event.event_specific_data.duration_ms / 1000
            elif kind == DagsterEventType.ASSET_CHECK_EVALUATION and event.step_key:
                check_steps.add(event.step_key)
            elif kind == DagsterEventType.ASSET_MATERIALIZATION and event.step_key:
                asset_steps.add(event.step_key)  # a step that materialises is an asset step
        durations = {k: ends[k] - starts[k] for k in starts if k in ends}
        order = sorted(starts, key=starts.get)
        gaps = [starts[b] - ends[a] for a, b in zip(order, order[1:]) if a in ends]
        only_checks = {k: v for k, v in durations.items() if k in check_steps - asset_steps}
        return {
            "run_id": run_id,
            "run_wall_s": round(run_end - run_start, 1) if run_start and run_end else None,
            "steps": len(durations),
            "check_only_steps": len(only_checks),
            "check_only_steps_s": round(sum(only_checks.values()), 1),
            # the checks' own code (Dagster's compute timer) vs the rest of those steps' time
            "check_only_compute_s": round(sum(compute.get(k, 0.0) for k in only_checks), 1),
            "all_steps_s": round(sum(durations.values()), 1),
            "between_steps_s": round(sum(gaps), 1),
            "check_step_median_s": round(sorted(only_checks.values())[len(only_checks) // 2], 2) if only_checks else None,
            "slowest_check_steps": sorted(((round(v, 1), k) for k, v in only_checks.items()), reverse=True)[:5],
        }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dagster_home")
    parser.add_argument("run_id", nargs="?")
    args = parser.parse_args(argv)
    print(json.dumps(step_figures(args.dagster_home, args.run_id), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
