"""Bench: 100,000 generated posts through the whole Dagster pipeline vs the raw embedding path.

Run: ``.venv/bin/python bench/pipeline_100k.py [--posts 100000] [--prefilter off|on|both] [--filing]``
(``make bench`` runs ``--prefilter both``).

1. ``generate_stream`` (demo/generate.py, seeded) writes N posts, one demo week after another
   (about 260 posts and 40 incidents a week, the demo's density), plus the demo's malformed
   lines, as JSON Lines files into the drop folder of a temporary copy of the demo city config
   (``embedding_backend: onnx-int8``, the fastest path).
2. The job ``social311_pipeline`` of the real definitions runs once, in process, as
   ``social311 demo`` runs it: every asset and check, from ``raw/posts`` through dbt staging,
   the ML assets, the dbt ward join, incidents, the ticket ledger, the marts and the ward
   report, against a real DuckDB file (dbt in its child process) and the Open311 sandbox on
   loopback (the service catalog is fetched over HTTP). Filing is a **dry run** by default:
   100,000 demo posts make about 14,000 ready incidents, and filing them one POST at a time
   (~95 tickets/s, bench/open311_filing.py) would add ~150 s that measure the sandbox, not
   the pipeline. ``--filing`` files them.
3. The raw speed of the same embedding path on the same 100,000 texts, embedding only, model
   loaded and warmed first, once before the pipeline and once after (``--raw-passes 2``); the
   faster pass counts, so the machine's load never flatters the ratio. The pipeline loads its
   own model (its load time is in the pipeline's time).

``--prefilter both`` runs the pipeline twice, each in its own child process (its own peak
memory), without and with the cheap prefilter (models/prefilter.py), and reports the
prefilter's cost against embedding everything: reports it skipped, ready incidents missed.

Reported: posts/s end to end (posts / the job's wall time), raw posts/s, their ratio (target
>= 0.8), each step's seconds from the Dagster event log, peak RSS (``getrusage`` of the
process, which holds Dagster, the model and every DuckDB connection of the Python assets; and
dbt's child processes, sampled from /proc every 0.25 s), and the DuckDB file's size. Printed
as tables and written as JSON (``--out``, default ``.social311/bench/pipeline_100k.json``).
``--max-rss-mb N`` exits 3 when a peak is above N.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

for _key, _value in {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "DO_NOT_TRACK": "1",
                     "DBT_SEND_ANONYMOUS_USAGE_STATS": "false", "GX_ANALYTICS_ENABLED": "false",
                     "TOKENIZERS_PARALLELISM": "false"}.items():
    os.environ.setdefault(_key, _value)

POSTS_PER_FILE = 10_000


def _status_kb(pid: int | str, field: str = "VmRSS:") -> int:
    try:
        with open(f"/proc/{pid}/status") as handle:
            for line in handle:
                if line.startswith(field):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def rss_mb() -> float:
    """This process's resident memory now (Linux /proc), in MB."""
    return _status_kb("self") / 1024


def descendants_rss_mb(root: int) -> float:
    """The summed resident memory of every live descendant of ``root`` (dbt and its children), in MB."""
    parent: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as handle:
                    parent[int(entry)] = int(handle.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
    family, frontier = set(), {root}
    while frontier:
        frontier = {pid for pid, ppid in parent.items() if ppid in frontier} - family
        family |= frontier
    return sum(_status_kb(pid) for pid in family) / 1024


class RssSampler(threading.Thread):
    """Samples RSS every ``interval`` seconds: (time, this process MB, its descendants MB) triples.

    ``getrusage(RUSAGE_CHILDREN)`` is no use for the children: a child forked from this process
    counts the parent's pages it shared before ``exec``, so it reads as big as the parent.
    """

    def __init__(self, interval: float = 0.25) -> None:
        super().__init__(daemon=True)
        self.interval, self.samples, self._done = interval, [], threading.Event()

    def run(self) -> None:
        pid = os.getpid()
        while not self._done.is_set():
            self.samples.append((time.time(), rss_mb(), descendants_rss_mb(pid)))
            self._done.wait(self.interval)

    def stop(self) -> list[tuple[float, float, float]]:
        self._done.set()
        self.join()
        return self.samples


def write_posts(drop: Path, n_posts: int, seed: int) -> list[str]:
    """The stream as drop files of POSTS_PER_FILE lines (malformed lines in the first); returns the texts."""
    from social311.demo.generate import generate_malformed, generate_stream, write_drop

    posts = generate_stream(n_posts, seed=seed)
    for k, start in enumerate(range(0, len(posts), POSTS_PER_FILE)):
        records: list = list(posts[start:start + POSTS_PER_FILE])
        if k == 0:
            for offset, bad in enumerate(generate_malformed(seed)):
                records.insert(min(len(records), 7 + offset * 11), bad)
        write_drop(drop, records, f"posts-{k + 1:04d}")
    return [p["text"] for p in posts]


def city_config(workdir: Path, endpoint: str, *, filing: bool, prefilter: bool | None) -> Path:
    """The demo city's YAML for this work folder, on the onnx-int8 path."""
    import yaml

    from social311.demo.runner import demo_config

    path = demo_config(workdir, endpoint)
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    data["embedding_backend"] = "onnx-int8"
    data["filing_enabled"] = filing
    # The stream runs at the demo's density (~260 posts a week), so 100,000 posts span ~7 years
    # from DEFAULT_START, past today: widen the plausible-date window (core/records.implausible)
    # so the bench measures the pipeline, not the quarantine of synthetic future dates.
    data["ingest"] = {"earliest_post": "1970-01-01", "future_tolerance_hours": 24 * 366 * 100}
    if prefilter is not None:
        data["prefilter"] = {"enabled": prefilter}
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def step_seconds(instance, run_id: str) -> list[dict]:
    """Each step of the run with its start, end and seconds, from the Dagster event log."""
    steps: dict[str, dict] = {}
    for entry in instance.all_logs(run_id):
        event = entry.dagster_event
        if event is None or not entry.step_key:
            continue
        kind = event.event_type_value
        step = steps.setdefault(entry.step_key, {"step": entry.step_key})
        if kind == "STEP_START":
            step["start"] = entry.timestamp
        elif kind in ("STEP_SUCCESS", "STEP_FAILURE", "STEP_SKIPPED"):
            step["end"] = entry.timestamp
            step["outcome"] = kind.removeprefix("STEP_").lower()
    out = []
    for step in steps.values():
        if "start" in step and "end" in step:
            step["seconds"] = round(step["end"] - step["start"], 2)
            out.append(step)
    return sorted(out, key=lambda s: s["start"])


def post_signals_phases(result) -> dict:
    """Where ``ml/post_signals`` spent its time (its ``seconds`` metadata: embedding, prefilter, ...)."""
    for event in result.all_events:
        if event.event_type_value == "ASSET_MATERIALIZATION":
            materialization = event.event_specific_data.materialization
            if materialization.asset_key.path == ["ml", "post_signals"] and "seconds" in materialization.metadata:
                return dict(materialization.metadata["seconds"].value)
    return {}


def raw_pass(texts: list[str]) -> float:
    """Seconds the onnx-int8 path takes to embed ``texts`` (model loaded and warmed first)."""
    from social311.models.embeddings import get_embedder

    embedder = get_embedder("onnx-int8")
    embedder.encode(texts[:128])  # load and warm-up are not counted
    start = time.perf_counter()
    embedder.encode(texts)
    seconds = time.perf_counter() - start
    get_embedder.cache_clear()  # a pipeline run after this loads its own model, as a fresh run would
    return seconds


def append_posts(drop: Path, offset: int, n_new: int, seed: int) -> None:
    """The next ``n_new`` posts of the same stream after its first ``offset`` ones, as one new drop file.

    What a city's next run finds: the stream continued (new ids, later times), nothing else changed.
    ``n_new = 0`` writes nothing: a run with nothing new.
    """
    from social311.demo.generate import generate_stream, write_drop

    if n_new:
        posts = generate_stream(offset + n_new, seed=seed)[offset:]
        write_drop(drop, posts, f"posts-next-{offset:09d}")


def run_pipeline(workdir: Path, *, posts: int, seed: int, filing: bool, prefilter: bool,
                 rerun_new: int | None = None) -> dict:
    """Generate the posts into ``workdir`` and run the whole job once, in this process; the figures.

    With ``rerun_new`` (0 or more), ``workdir`` is an earlier run's work folder (its warehouse,
    ledger and sandbox kept): the stream's next ``rerun_new`` posts are dropped and the job runs
    again on that warehouse, as a scheduled run would (``posts`` is then how many the earlier
    runs already read).
    """
    load_before = os.getloadavg()
    started = time.perf_counter()
    if rerun_new is None:
        if workdir.exists():
            shutil.rmtree(workdir)  # a fresh warehouse: every post is new
        write_posts(workdir / "drop", posts, seed)
    else:
        if not (workdir / "social311.duckdb").exists():
            raise SystemExit(f"--rerun needs an earlier run's work folder; no warehouse in {workdir}")
        append_posts(workdir / "drop", posts, rerun_new, seed)
    generate_s = time.perf_counter() - started
    rss_before_pipeline = rss_mb()

    from social311.cli import dagster_instance
    from social311.demo.runner import API_KEY_ENV, DEMO_API_KEY
    from social311.integrations.ticketing.sandbox import SandboxServer
    from social311.orchestration.definitions import defs  # import cost is the process's, not the run's

    os.environ.setdefault(API_KEY_ENV, DEMO_API_KEY)
    server = SandboxServer(port=0, db_path=str(workdir / "sandbox.sqlite"), api_keys=(os.environ[API_KEY_ENV],)).start()
    try:
        config_path = city_config(workdir, server.url, filing=filing, prefilter=prefilter)
        os.environ["SOCIAL311_CONFIG"] = str(config_path)
        instance = dagster_instance(workdir / "dagster_home")
        sampler = RssSampler()
        sampler.start()
        t0 = time.perf_counter()
        result = defs.resolve_job_def("social311_pipeline").execute_in_process(
            run_config={"loggers": {"console": {"config": {"log_level": "WARNING"}}}},
            instance=instance, raise_on_error=False)
        pipeline_s = time.perf_counter() - t0
        samples = sampler.stop()
    finally:
        server.stop()
    peak_self_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    peak_child_mb = max((child for _, _, child in samples), default=0.0)  # sampled: see RssSampler
    steps = step_seconds(instance, result.run_id)
    signals_phases = post_signals_phases(result)
    for step in steps:
        inside = [(mb, child) for t, mb, child in samples if step["start"] <= t <= step["end"]]
        step["rss_mb_max"] = round(max(mb for mb, _ in inside), 1) if inside else None
        step["child_rss_mb_max"] = round(max(child for _, child in inside), 1) if inside else None

    from social311.config import load_config
    from social311.warehouse import connect

    cfg = load_config(config_path)
    with connect(cfg.duckdb_path, read_only=True) as con:
        counts = {
            "posts": con.execute("select count(*) from stg_social__posts").fetchone()[0],
            "quarantined": con.execute("select count(*) from quarantine.records").fetchone()[0],
            "embedded": con.execute("select count(*) from ml.post_signals where embedding is not null").fetchone()[0],
            "reports": con.execute("select count(*) from ml.post_signals where is_report").fetchone()[0],
            "typed": con.execute("select count(*) from ml.post_types").fetchone()[0],
            "incidents": con.execute("select count(*) from ops.incidents").fetchone()[0],
            "ready": con.execute("select count(*) from ops.incidents where status = 'ready'").fetchone()[0],
            "ledger": dict(con.execute("select state, count(*) from ops.ticket_ledger group by 1").fetchall()),
        }
        duckdb_limit = con.execute("select current_setting('memory_limit')").fetchone()[0]
    return {
        "measured_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, load average {load_before[0]:.1f} before / "
                   f"{os.getloadavg()[0]:.1f} after",
        "posts": counts["posts"], "backend": "onnx-int8", "filing": "on (sandbox, loopback)" if filing else "dry run",
        "prefilter": prefilter, "success": result.success, "new_posts": posts if rerun_new is None else rerun_new,
        "failed_steps": [s["step"] for s in steps if s.get("outcome") != "success"],
        "errors": [f"{e.step_key}: {e.step_failure_data.error.message.strip().splitlines()[0][:300]}"
                   for e in result.all_events if e.is_step_failure and e.step_failure_data.error],
        "generate_s": round(generate_s, 1), "pipeline_s": round(pipeline_s, 1),
        "end_to_end_posts_per_s": round(counts["posts"] / pipeline_s, 1),
        "peak_rss_mb": {"process": round(peak_self_mb, 1), "children_sampled": round(peak_child_mb, 1),
                        "before_pipeline": round(rss_before_pipeline, 1),
                        "process_sampled": round(max((mb for _, mb, _ in samples), default=0.0), 1),
                        "process_plus_children_sampled": round(max((mb + c for _, mb, c in samples), default=0.0), 1)},
        "duckdb": {"file_mb": round(Path(cfg.duckdb_path).stat().st_size / 2**20, 1), "memory_limit": duckdb_limit,
                   "note": "DuckDB runs inside this process (Python assets) and inside the dbt child: its memory is in those peaks"},
        "counts": counts,
        "post_signals_seconds": signals_phases,
        "steps": [{k: s[k] for k in ("step", "seconds", "rss_mb_max", "child_rss_mb_max", "outcome")} for s in steps],
        "warehouse": str(cfg.duckdb_path),
    }


def prefilter_cost(off_warehouse: str, on_warehouse: str) -> dict:
    """What the prefilter lost against embedding everything: reports skipped, ready incidents missed."""
    import duckdb

    con = duckdb.connect()
    try:
        con.execute(f"attach '{off_warehouse}' as off (read_only)")
        con.execute(f"attach '{on_warehouse}' as pre (read_only)")
        reports = con.execute("select count(*) from off.ml.post_signals where is_report").fetchone()[0]
        skipped = con.execute("select count(*) from pre.ml.post_signals where embedding is null").fetchone()[0]
        lost = con.execute("select count(*) from off.ml.post_signals o join pre.ml.post_signals p using (post_id) "
                           "where o.is_report and p.embedding is null").fetchone()[0]
        # A ready incident of the full run is still found when one of its posts is in a ready incident.
        ready = con.execute("select count(*) from off.ops.incidents where status = 'ready'").fetchone()[0]
        found = con.execute("""
            select count(distinct i.incident_id) from off.ops.incidents i
            join off.ops.incident_posts ip using (incident_id)
            join pre.ops.incident_posts pp using (post_id)
            join pre.ops.incidents pi on pi.incident_id = pp.incident_id and pi.status = 'ready'
            where i.status = 'ready'""").fetchone()[0]
    finally:
        con.close()
    return {"posts_skipped": skipped, "reports_without_prefilter": reports, "reports_skipped": lost,
            "report_recall": round(1 - lost / reports, 4) if reports else None,
            "ready_incidents_without_prefilter": ready, "ready_incidents_still_found": found,
            "ready_incident_recall": round(found / ready, 4) if ready else None}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--posts", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--prefilter", choices=("off", "on", "both"), default="off",
                        help="the city config's prefilter; both = one run each (in child processes) and its recall cost")
    parser.add_argument("--filing", action="store_true", help="file every ready incident into the sandbox (default: dry run)")
    parser.add_argument("--raw-passes", type=int, choices=(0, 1, 2), default=2,
                        help="raw embedding passes: 2 = before and after the pipeline (the faster counts), 1 = after, 0 = none")
    parser.add_argument("--workdir", type=Path, help="keep the warehouses, drop folders and reports here (default: a temp folder, removed)")
    parser.add_argument("--out", type=Path, default=Path(".social311/bench/pipeline_100k.json"))
    parser.add_argument("--max-rss-mb", type=float, help="exit 3 when the peak RSS (this process or its children) is above this")
    parser.add_argument("--reruns", help="comma-separated new-post counts (e.g. 0,1000): scheduled reruns on one warehouse "
                                         "of --posts posts, side by side, each in its own process (see rerun_bench)")
    parser.add_argument("--base", type=Path, help="with --reruns: the warehouse's work folder, built once and reused "
                                                  "(default: WORKDIR/base)")
    parser.add_argument("--rerun-new", type=int, help=argparse.SUPPRESS)  # internal: one rerun in this process
    parser.add_argument("--build-only", action="store_true", help=argparse.SUPPRESS)  # internal: first run into WORKDIR
    args = parser.parse_args()
    if args.rerun_new is not None or args.build_only:
        label = "build" if args.build_only else f"rerun_{args.rerun_new}"
        report = {"runs": {label: run_pipeline(args.workdir, posts=args.posts, seed=args.seed, filing=args.filing,
                                               prefilter=args.prefilter == "on", rerun_new=args.rerun_new)}}
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=2, default=str), encoding="utf-8")
        return 0 if report["runs"][label]["success"] else 2
    if args.reruns is not None:
        return rerun_bench(args)

    workdir = (args.workdir or Path(tempfile.mkdtemp(prefix="social311-bench-"))).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    texts = None
    raw_times: list[float] = []
    if args.raw_passes:
        from social311.demo.generate import generate_stream

        texts = [p["text"] for p in generate_stream(args.posts, seed=args.seed)]
    if args.raw_passes == 2:
        raw_times.append(raw_pass(texts))

    runs: dict[str, dict] = {}
    modes = ("off", "on") if args.prefilter == "both" else (args.prefilter,)
    for mode in modes:
        if len(modes) == 1:
            runs[mode] = run_pipeline(workdir / mode, posts=args.posts, seed=args.seed, filing=args.filing,
                                      prefilter=mode == "on")
            continue
        # Each run in its own process: its own peak memory, its own model load.
        child_out = workdir / f"{mode}.json"
        command = [sys.executable, __file__, "--posts", str(args.posts), "--seed", str(args.seed), "--prefilter", mode,
                   "--raw-passes", "0", "--workdir", str(workdir), "--out", str(child_out)]
        if args.filing:
            command.append("--filing")
        subprocess.run(command, check=False, stdout=subprocess.DEVNULL)
        runs[mode] = json.loads(child_out.read_text(encoding="utf-8"))["runs"][mode]
    if args.raw_passes:
        raw_times.append(raw_pass(texts))

    raw = len(texts) / min(raw_times) if raw_times else None
    for run in runs.values():
        run["ratio"] = round(run["end_to_end_posts_per_s"] / raw, 3) if raw else None
    report = {"raw_embedding": {"backend": "onnx-int8", "texts": len(texts) if texts else None,
                                "passes_s": [round(t, 1) for t in raw_times],
                                "posts_per_s": round(raw, 1) if raw else None},
              "runs": runs}
    if len(runs) == 2:
        report["prefilter_cost"] = prefilter_cost(runs["off"]["warehouse"], runs["on"]["warehouse"])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2, default=str), encoding="utf-8")
    print_table(report)
    print(f"JSON: {args.out}")
    if not args.workdir:
        shutil.rmtree(workdir, ignore_errors=True)
    if not all(run["success"] for run in runs.values()):
        return 2
    peak = max(max(run["peak_rss_mb"]["process"], run["peak_rss_mb"]["children_sampled"]) for run in runs.values())
    if args.max_rss_mb is not None and peak > args.max_rss_mb:
        print(f"peak RSS {peak:.0f} MB is above the cap of {args.max_rss_mb:.0f} MB", file=sys.stderr)
        return 3
    return 0


def rerun_bench(args) -> int:
    """Scheduled reruns side by side: ``--reruns 0,1000`` on one warehouse of ``--posts`` posts.

    The warehouse is built once (the first run of the stream, in a child process) into
    ``--base`` and reused by later invocations with the same posts and seed; each rerun then
    drops the stream's next N posts into it and runs the job in a fresh child process, as a
    scheduled run would (its imports and model load are in ``process_s``; ``pipeline_s`` is the
    job alone). The reruns go on one after another on that warehouse, so it grows by their new
    posts; ``bench_state.json`` in it keeps how far the stream has been read.
    """
    workdir = (args.workdir or Path(tempfile.mkdtemp(prefix="social311-bench-"))).resolve()
    base = (args.base or workdir / "base").resolve()
    state_path = base / "bench_state.json"
    state = json.loads(state_path.read_text(encoding="utf-8")) if state_path.exists() else None
    if not state or state.get("posts") != args.posts or state.get("seed") != args.seed:
        out = workdir / "base-build.json"
        # Built in place (not moved afterwards): dbt's partial parse is keyed on the warehouse path.
        command = [sys.executable, __file__, "--posts", str(args.posts), "--seed", str(args.seed), "--prefilter", args.prefilter,
                   "--raw-passes", "0", "--workdir", str(base), "--build-only", "--out", str(out)]
        started = time.perf_counter()
        subprocess.run(command, check=False, stdout=subprocess.DEVNULL)
        build = json.loads(out.read_text(encoding="utf-8"))["runs"]["build"]
        if not build["success"]:
            print(f"building the warehouse failed: {build['failed_steps']} {build.get('errors')}", file=sys.stderr)
            return 2
        state = {"posts": args.posts, "seed": args.seed, "offset": args.posts, "build_process_s": round(time.perf_counter() - started, 1),
                 "build": {k: build[k] for k in ("pipeline_s", "peak_rss_mb", "counts", "machine")}}
        state_path.write_text(json.dumps(state, indent=2, default=str), encoding="utf-8")
        print(f"warehouse of {args.posts:,} posts built in {state['build_process_s']} s: {base}")
    runs = {}
    for k, n in enumerate(int(x) for x in args.reruns.split(",") if x.strip()):
        label = f"rerun_{n}" if f"rerun_{n}" not in runs else f"rerun_{n}_{k + 1}"  # 0,0,1000: two runs with nothing new
        out = workdir / f"{label}.json"
        command = [sys.executable, __file__, "--posts", str(state["offset"]), "--seed", str(args.seed), "--prefilter",
                   args.prefilter, "--raw-passes", "0", "--workdir", str(base), "--rerun-new", str(n), "--out", str(out)]
        started = time.perf_counter()
        subprocess.run(command, check=False, stdout=subprocess.DEVNULL)
        process_s = time.perf_counter() - started
        run = json.loads(out.read_text(encoding="utf-8"))["runs"][f"rerun_{n}"]
        run["process_s"] = round(process_s, 1)
        run["warehouse_posts_before"] = state["offset"] + 1  # + the hostile-but-valid line
        runs[label] = run
        state["offset"] += n
        state_path.write_text(json.dumps(state, indent=2, default=str), encoding="utf-8")
    report = {"base": state, "reruns": runs}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2, default=str), encoding="utf-8")
    print("\n| new posts | warehouse posts before | job s | process s (with imports, model) | slowest 6 steps (s) | ok |")
    print("|---|---|---|---|---|---|")
    for r in runs.values():
        slow = ", ".join(f"{s['step']} {s['seconds']}" for s in sorted(r["steps"], key=lambda s: -s["seconds"])[:6])
        print(f"| {r['new_posts']:,} | {r['warehouse_posts_before']:,} | {r['pipeline_s']} | {r['process_s']} | {slow} "
              f"| {'yes' if r['success'] else 'FAILED ' + str(r['failed_steps'])} |")
    print(f"JSON: {args.out}")
    return 0 if all(r["success"] for r in runs.values()) else 2


def print_table(report: dict) -> None:
    raw = report["raw_embedding"]
    print(f"\nraw embedding (onnx-int8, embedding only): {raw['posts_per_s'] or '-'} posts/s, passes {raw['passes_s']} s")
    print("\n| prefilter | posts | end to end | raw embedding | ratio | pipeline s | embedded | reports | ready incidents "
          "| peak RSS process / dbt child | machine |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for mode, r in report["runs"].items():
        print(f"| {mode} | {r['posts']:,} | {r['end_to_end_posts_per_s']:,} posts/s | {raw['posts_per_s'] or '-'} posts/s "
              f"| {r['ratio'] or '-'} | {r['pipeline_s']} | {r['counts']['embedded']:,} | {r['counts']['reports']:,} "
              f"| {r['counts']['ready']:,} | {r['peak_rss_mb']['process']:,.0f} / {r['peak_rss_mb']['children_sampled']:,.0f} MB "
              f"| {r['machine']} |")
    if "prefilter_cost" in report:
        print(f"\nprefilter cost: {report['prefilter_cost']}")
    for mode, r in report["runs"].items():
        print(f"\nml/post_signals, prefilter {mode}: {r.get('post_signals_seconds')} s")
        print(f"\nsteps, prefilter {mode} (seconds; max RSS MB of the process / its children while the step ran)")
        print("| step | seconds | max RSS MB |\n|---|---|---|")
        for s in sorted(r["steps"], key=lambda s: -s["seconds"]):
            if s["seconds"] >= 1:
                print(f"| {s['step']} | {s['seconds']} | {s['rss_mb_max']} / {s['child_rss_mb_max']} |")
        rest = [s for s in r["steps"] if s["seconds"] < 1]
        print(f"| {len(rest)} other steps (checks, small assets) | {sum(s['seconds'] for s in rest):.1f} | |")


if __name__ == "__main__":
    sys.exit(main())
