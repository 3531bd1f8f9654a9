"""The ``social311`` command line: demo, run, sandbox, tickets.

Usage::

    social311 demo [--workdir DIR]          # the bundled demo city, end to end, offline
    social311 run --config CITY.yaml        # one pass of the pipeline for a configured city
    social311 sandbox --port 8311           # the local Open311 sandbox server alone
    social311 tickets --config CITY.yaml [--stuck]
    social311 eval [--out FILE]             # the language models on the shared labelled data
    social311 review --config CITY.yaml [--accept ID | --reject ID | --relabel ID CODE]
"""

from __future__ import annotations

import argparse
import os
import sys
from datetime import datetime, timezone
from pathlib import Path

# Offline by default: never let a library try to reach a model hub or a telemetry endpoint.
OFFLINE_ENV = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "DO_NOT_TRACK": "1",
               "DBT_SEND_ANONYMOUS_USAGE_STATS": "false", "GX_ANALYTICS_ENABLED": "false",
               "TOKENIZERS_PARALLELISM": "false"}


def _offline() -> None:
    for key, value in OFFLINE_ENV.items():
        os.environ.setdefault(key, value)


def dagster_instance(home: Path):
    """A persistent Dagster instance in ``home`` with telemetry off (shared with ``dagster dev``)."""
    from dagster import DagsterInstance

    home.mkdir(parents=True, exist_ok=True)
    settings = home / "dagster.yaml"
    if not settings.exists():
        settings.write_text("telemetry:\n  enabled: false\n")
    return DagsterInstance.from_config(str(home))


def run_pipeline(config_path: Path, *, dagster_home: Path | None = None):
    """Materialize the whole graph once for the city in ``config_path``.

    Returns:
        (Dagster's in-process result, the time the run started) so callers can report what
        this run filed.
    """
    _offline()
    os.environ["SOCIAL311_CONFIG"] = str(config_path.resolve())
    from social311.config import load_config
    from social311.orchestration.definitions import defs

    cfg = load_config(config_path)
    home = dagster_home or Path(os.environ.get("DAGSTER_HOME") or Path(cfg.duckdb_path).parent / "dagster_home")
    started = datetime.now(timezone.utc)
    # INFO keeps the console to progress lines (posts embedded, tickets filed) and problems;
    # the full DEBUG event stream is still in the Dagster instance for `dagster dev`.
    run_config = {"loggers": {"console": {"config": {"log_level": "INFO"}}}}
    result = defs.resolve_job_def("social311_pipeline").execute_in_process(
        run_config=run_config, instance=dagster_instance(home), raise_on_error=False)
    return result, started


def filed_since(duckdb_path: Path, since: datetime) -> list[tuple]:
    """Tickets filed since a time: (request id, service name, ward, posts merged)."""
    from social311.warehouse import connect

    with connect(duckdb_path) as con:
        return con.execute(
            """select l.service_request_id, coalesce(c.service_name, l.service_code), i.ward_id, i.post_count
               from ops.ticket_ledger l join ops.incidents i using (incident_id)
               left join ops.service_catalog c on c.service_code = l.service_code
               where l.state in ('submitted', 'awaiting_token') and l.filed_at >= ?
               order by l.filed_at, l.incident_id""", [since]).fetchall()


def print_tickets(rows: list[tuple]) -> None:
    print(f"\nTickets filed this run: {len(rows)}")
    if rows:
        print(f"  {'request id':<14} {'service':<34} {'ward':<6} posts merged")
        for request_id, service, ward, posts in rows:
            print(f"  {request_id or '(token)':<14} {service[:34]:<34} {ward or '-':<6} {posts}")


def cmd_demo(args: argparse.Namespace) -> int:
    from social311.demo.runner import prepare_demo

    workdir = Path(args.workdir).resolve()
    with prepare_demo(workdir, port=args.port) as config_path:
        from social311.config import load_config

        cfg = load_config(config_path)
        result, started = run_pipeline(config_path, dagster_home=workdir / "dagster_home")
        ok = result.success
        print_tickets(filed_since(cfg.duckdb_path, started))
    print(f"Ward report: {Path(cfg.report_dir) / 'index.html'}")
    print(f"Warehouse:   {cfg.duckdb_path}")
    if not ok:
        print("The run had failures: see the log above.", file=sys.stderr)
    return 0 if ok else 1


def cmd_run(args: argparse.Namespace) -> int:
    from social311.config import ConfigError, load_config

    try:
        cfg = load_config(args.config)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 2
    result, started = run_pipeline(Path(args.config))
    print_tickets(filed_since(cfg.duckdb_path, started))
    print(f"Ward report: {Path(cfg.report_dir) / 'index.html'}")
    return 0 if result.success else 1


def cmd_sandbox(args: argparse.Namespace) -> int:
    from social311.integrations.ticketing.sandbox import run_sandbox

    run_sandbox(port=args.port, db_path=args.db, api_keys=args.api_key or ["demo-key"], quirk_modes=args.quirks or [])
    return 0


def cmd_tickets(args: argparse.Namespace) -> int:
    from social311.config import load_config
    from social311.warehouse import connect

    cfg = load_config(args.config)
    where = "where state not in ('submitted', 'linked')" if args.stuck else ""
    if args.retry:
        from social311.integrations.ticketing.ledger import TicketLedger

        with connect(cfg.duckdb_path) as con:
            ledger = TicketLedger(con)
            for incident_id in args.retry:
                done = ledger.requeue(incident_id)
                print(f"{incident_id}: " + ("requeued for the next run" if done else "not failed or waiting; left as it is"))
        return 0
    with connect(cfg.duckdb_path) as con:
        rows = con.execute(f"select incident_id, state, service_code, service_request_id, attempts, next_attempt_at, last_error "
                           f"from ops.ticket_ledger {where} order by updated_at").fetchall()
    for incident_id, state, code, request_id, attempts, next_at, error in rows:
        line = f"{incident_id}  {state:<15} {code:<12} {request_id or '-':<12} attempts={attempts}"
        if next_at:
            line += f" next={next_at:%Y-%m-%d %H:%M}"
        print(line + (f"\n    {error}" if error else ""))
    print(f"{len(rows)} ledger rows" + (" stuck" if args.stuck else ""))
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    _offline()
    from social311.models.evaluation import runner

    if args.model_dir and not Path(args.model_dir).expanduser().is_dir():
        print(f"eval: --model-dir {args.model_dir}: no such folder", file=sys.stderr)
        return 2
    if args.train and not args.data:
        print("--train needs --data (the test set)", file=sys.stderr)
        return 2
    if args.data:
        if not (args.task and args.text_column and args.label_column):
            print("--data needs --task, --text-column and --label-column", file=sys.stderr)
            return 2
        from social311.models.evaluation.files import EvalInputError

        try:
            result = runner.run_file(args.task, Path(args.data), args.text_column, args.label_column,
                                     [Path(p) for p in args.train or []], backend=args.backend,
                                     fine_tune=args.fine_tune, split=args.split, folds=args.folds, seed=args.seed,
                                     log=lambda m: print(m, file=sys.stderr), model_dir=args.model_dir)
        except EvalInputError as exc:
            print(f"eval: {exc}", file=sys.stderr)
            return 2
    else:
        from social311.models.evaluation.datasets import default_data_dir

        data_dir = Path(args.data_dir) if args.data_dir else default_data_dir()
        if not data_dir.is_dir():
            print(f"no shared data at {data_dir} (set SOCIAL311_SHARED_DATA or --data-dir): nothing to evaluate")
            return 0
        only = {name.strip() for name in args.only.split(",") if name.strip()} if args.only else None
        result = runner.run_shared(data_dir, backend=args.backend, log=lambda m: print(m, file=sys.stderr),
                                   fine_tune=args.fine_tune, only=only, model_dir=args.model_dir)
    print(runner.format_table(result))
    runner.write(result, Path(args.out))
    print(f"\nWritten to {args.out}")
    return 0


def cmd_review(args: argparse.Namespace) -> int:
    from social311.config import load_config
    from social311.models.review import LabelError, list_queue, record_label
    from social311.warehouse import connect

    cfg = load_config(args.config)
    with connect(cfg.duckdb_path) as con:
        try:
            if args.accept:
                record_label(con, args.accept, "accept")
            elif args.reject:
                record_label(con, args.reject, "reject")
            elif args.relabel:
                record_label(con, args.relabel[0], "relabel", service_code=args.relabel[1])
            else:
                rows = list_queue(con)
                for r in rows:
                    print(f"{r.incident_id}  {r.service_code or '-':<12} ward={r.ward_id or '-':<5} "
                          f"confidence={r.confidence:.2f} posts={r.post_count}  {r.text[:80]}")
                print(f"{len(rows)} incidents waiting for review")
                return 0
        except LabelError as exc:
            print(exc, file=sys.stderr)
            return 2
    print("recorded; it takes effect on the next run")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="social311", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="run the bundled demo city end to end (offline)")
    demo.add_argument("--workdir", default=".social311/demo", help="where the demo keeps its warehouse, drop folder and report")
    demo.add_argument("--port", type=int, default=0, help="the demo sandbox's port (default: any free port)")
    demo.set_defaults(func=cmd_demo)
    run = sub.add_parser("run", help="one pass of the pipeline for a configured city")
    run.add_argument("--config", required=True, help="the city YAML")
    run.set_defaults(func=cmd_run)
    sandbox = sub.add_parser("sandbox", help="the local Open311 GeoReport v2 sandbox server")
    sandbox.add_argument("--port", type=int, default=8311)
    sandbox.add_argument("--db", default=".social311/sandbox.sqlite", help="SQLite file keeping the requests across restarts")
    sandbox.add_argument("--api-key", action="append", help="accepted api_key (repeatable; default demo-key)")
    sandbox.add_argument("--quirks", action="append", metavar="MODE",
                         help="behave like a real server: a mode of social311.integrations.ticketing.sandbox.QUIRK_MODES, "
                              "e.g. issue_reporting, open311_adapter, require_email (repeatable)")
    sandbox.set_defaults(func=cmd_sandbox)
    tickets = sub.add_parser("tickets", help="the filing ledger")
    tickets.add_argument("--config", required=True)
    tickets.add_argument("--stuck", action="store_true", help="only tickets not filed: pending, waiting to retry, failed")
    tickets.add_argument("--retry", action="append", metavar="INCIDENT_ID",
                         help="give a failed ticket fresh attempts on the next run, after fixing its cause (repeatable)")
    tickets.set_defaults(func=cmd_tickets)
    evaluate = sub.add_parser("eval", help="evaluate the language models on labelled data (offline)")
    evaluate.add_argument("--out", default=".social311/eval.json", help="where the JSON result goes")
    evaluate.add_argument("--data-dir", help="the shared data folder (default SOCIAL311_SHARED_DATA or ../shared/data)")
    evaluate.add_argument("--backend", default="onnx-int8", choices=("torch", "onnx-int8", "onnx-fp32"))
    evaluate.add_argument("--task", choices=("relevance", "complaint", "service_type"), help="with --data: what the labels are")
    evaluate.add_argument("--data", help="any labelled CSV to evaluate on (cross-validated unless --train)")
    evaluate.add_argument("--text-column")
    evaluate.add_argument("--label-column")
    evaluate.add_argument("--train", nargs="+", metavar="CSV",
                          help="labelled CSV(s) to train on (pooled; labels matched by name); --data is then the test set")
    evaluate.add_argument("--split", type=float, metavar="SHARE",
                          help="without --train: one stratified split with this test share (e.g. 0.2) instead of k-fold")
    evaluate.add_argument("--folds", type=int, default=5, help="without --train or --split: cross-validation folds")
    evaluate.add_argument("--seed", type=int, default=0, help="seed of the split or the folds")
    evaluate.add_argument("--model-dir", help="a local sentence-transformers model folder to evaluate instead of the packaged MiniLM")
    evaluate.add_argument("--fine-tune", action="store_true",
                          help="also fine-tune the encoder on each training part (slow on CPU; uses a GPU if torch sees one)")
    evaluate.add_argument("--only", help="comma-separated datasets of the shared run, e.g. mumbai_relevance,acl_complaints")
    evaluate.set_defaults(func=cmd_eval)
    review = sub.add_parser("review", help="incidents below the confidence threshold, and labels for them")
    review.add_argument("--config", required=True)
    action = review.add_mutually_exclusive_group()
    action.add_argument("--accept", metavar="INCIDENT_ID", help="file it on the next run")
    action.add_argument("--reject", metavar="INCIDENT_ID", help="never file it")
    action.add_argument("--relabel", nargs=2, metavar=("INCIDENT_ID", "SERVICE_CODE"), help="file it under this service")
    review.set_defaults(func=cmd_review)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
