"""The ``social311`` command line: demo, run, validate, sandbox, tickets, eval, review.

Usage::

    social311 demo [--workdir DIR]          # the bundled demo city, end to end, offline
    social311 run --config CITY.yaml        # one pass of the pipeline for a configured city
    social311 validate --config CITY.yaml   # check a deployment without writing anything
    social311 sandbox --port 8311           # the local Open311 sandbox server alone
    social311 tickets --config CITY.yaml [--stuck]
    social311 eval [--out FILE]             # the language models on the shared labelled data
    social311 eval --task ward|geocode --config CITY.yaml --data CASES.csv ...  # the city's GIS on its own cases
    social311 review --config CITY.yaml [--accept ID | --reject ID | --relabel ID CODE
                                         | --accept-post POST_ID | --reject-post POST_ID]
    social311 --version

Every mistake ends with one line on stderr (``social311: error: ...``) and an exit code of
:data:`EXIT_CODES`, never a traceback; the README's "Exit codes" table lists them.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import json
import os
import sys
from datetime import datetime, timezone
from pathlib import Path

#: Exit codes of every command (the README's table). argparse's own usage errors are 2 as well.
EXIT_OK = 0
EXIT_RUN_FAILED = 1  # a step or an ERROR check failed, or a ticket is held/failed (core/run_summary.py)
EXIT_USAGE = 2  # a wrong argument, a missing or invalid config, a missing file, an unset api_key variable
EXIT_BUSY = 3  # another run of the city holds its lock, or the warehouse is in use: try again later
EXIT_UNAVAILABLE = 4  # the machine refuses: port in use, permission denied
EXIT_CODES = {EXIT_OK: "success", EXIT_RUN_FAILED: "the run finished with a failure to act on",
              EXIT_USAGE: "usage or configuration mistake", EXIT_BUSY: "city busy: another run or process holds it",
              EXIT_UNAVAILABLE: "a system resource is unavailable (port in use, permission denied)"}


class CliError(Exception):
    """A mistake the CLI reports as one line and an exit code."""

    def __init__(self, message: str, code: int = EXIT_USAGE):
        super().__init__(message)
        self.code = code

# Offline by default: never let a library try to reach a model hub or a telemetry endpoint.
# DBT_USE_COLORS: dbt's output goes to logs and files, where ANSI colour codes are noise.
OFFLINE_ENV = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "DO_NOT_TRACK": "1",
               "DBT_SEND_ANONYMOUS_USAGE_STATS": "false", "GX_ANALYTICS_ENABLED": "false",
               "TOKENIZERS_PARALLELISM": "false", "DBT_USE_COLORS": "false"}


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


def run_pipeline(config_path: Path, *, dagster_home: Path | None = None, log_format: str = "text"):
    """Materialize the whole graph once for the city in ``config_path``.

    The city's single-run lock (``warehouse.run_lock``) is held for the whole run.

    Args:
        log_format: ``text`` (Dagster's console lines) or ``json`` (one JSON object a line).

    Returns:
        (Dagster's in-process result, the time the run started) so callers can report what
        this run filed.

    Raises:
        RunLockHeld: another run of this city is in progress.
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
    job = defs.resolve_job_def("social311_pipeline")
    if log_format == "json":
        import dagster as dg

        job = job.with_logger_defs({"console": dg.json_console_logger})
    from social311.warehouse import run_lock

    with run_lock(cfg.duckdb_path, owner="social311 run (command line)"):
        result = job.execute_in_process(run_config=run_config, instance=dagster_instance(home), raise_on_error=False)
    return result, started


def filed_since(duckdb_path: Path, since: datetime) -> list[tuple]:
    """Tickets filed since a time: (request id, service name, ward, posts merged)."""
    from social311.warehouse import connect

    with connect(duckdb_path, read_only=True) as con:
        return con.execute(
            """select l.service_request_id, coalesce(c.service_name, l.service_code), i.ward_id, i.post_count
               from ops.ticket_ledger l join ops.incidents i using (incident_id)
               left join ops.service_catalog c on c.service_code = l.service_code
               where l.state in ('submitted', 'awaiting_token') and l.filed_at >= ?
               order by l.filed_at, l.incident_id""", [since]).fetchall()


def load_city(path: str | Path):
    """The city config, or a one-line :class:`CliError` (exit 2) for every way it can be wrong."""
    import yaml

    from social311.config import ConfigError, load_config

    path = Path(path)
    if not path.is_file():
        raise CliError(f"no city config at {path}" + (" (it is a folder)" if path.is_dir() else ""))
    try:
        return load_config(path)
    except ConfigError as exc:
        raise CliError(_one_line(str(exc))) from None
    except UnicodeDecodeError as exc:
        raise CliError(f"city config {path} is not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except (yaml.YAMLError, ValueError, TypeError, AttributeError) as exc:
        # A config shaped unlike the schema (e.g. `sources` as a mapping) can fail before
        # validation; it is still the config's fault, so it is said as such.
        raise CliError(f"invalid city config {path}: {_one_line(str(exc)) or type(exc).__name__}") from None


def _one_line(text: str) -> str:
    return " ".join(part.strip() for part in str(text).splitlines() if part.strip())


def require_api_key(cfg) -> None:
    """Filing on with the api_key variable unset is a mistake to say before the run, not a retry_wait after it.

    Every other secret a plugin names (settings ending in ``_env``) must be set too
    (``config.require_secrets``: a one-line ConfigError, exit 2).
    """
    from social311.config import require_secrets

    name = getattr(cfg.ticketing, "api_key_env", None)
    if cfg.filing_enabled and name and not os.environ.get(name):
        raise CliError(f"${name} is not set: it must hold the Open311 api_key (filing_enabled is true); "
                       f"set it, or set filing_enabled: false for a dry run")
    require_secrets(cfg)


def _run_and_report(config_path: Path, cfg, args: argparse.Namespace, *, dagster_home: Path | None = None) -> int:
    from social311.run_summary import summarise
    from social311.warehouse import RunLockHeld

    try:
        result, started = run_pipeline(config_path, dagster_home=dagster_home, log_format=args.log_format)
    except RunLockHeld as exc:
        raise CliError(str(exc), EXIT_BUSY) from None
    summary = summarise(result, Path(cfg.duckdb_path), started)
    print(summary.json() if args.log_format == "json" else summary.text())
    return summary.exit_code


def cmd_demo(args: argparse.Namespace) -> int:
    from social311.demo.runner import prepare_demo

    workdir = Path(args.workdir).resolve()
    with prepare_demo(workdir, port=args.port) as config_path, contextlib.ExitStack() as stack:
        if getattr(args, "source", "file_drop") == "mastodon":  # the posts through the Mastodon fake
            from social311.demo.social import serve_on_mastodon

            config_path = stack.enter_context(serve_on_mastodon(config_path))
        cfg = load_city(config_path)
        code = _run_and_report(config_path, cfg, args, dagster_home=workdir / "dagster_home")
    if args.log_format != "json":
        print(f"Ward report: {Path(cfg.report_dir) / 'index.html'}")
        print(f"Warehouse:   {cfg.duckdb_path}")
    if code:
        print("social311: the run had failures: see the lines starting with error: above", file=sys.stderr)
    return code


def cmd_run(args: argparse.Namespace) -> int:
    cfg = load_city(args.config)
    require_api_key(cfg)
    code = _run_and_report(Path(args.config), cfg, args)
    if args.log_format != "json":
        print(f"Ward report: {Path(cfg.report_dir) / 'index.html'}")
    return code


def cmd_validate(args: argparse.Namespace) -> int:
    _offline()
    from social311.validate import validate_city

    cfg = load_city(args.config)
    findings = validate_city(cfg)
    failed = [f for f in findings if f.level == "fail"]
    if args.log_format == "json":
        print(json.dumps({"config": str(args.config), "findings": [f.__dict__ for f in findings],
                          "exit_code": EXIT_USAGE if failed else EXIT_OK}))
    else:
        for finding in findings:
            print(finding.line())
        print(f"{len(findings)} checks: {len(failed)} failed, {sum(f.level == 'warn' for f in findings)} warnings")
    if failed:
        print(f"social311: error: {len(failed)} check(s) failed; first: {failed[0].check}: {failed[0].detail}", file=sys.stderr)
        return EXIT_USAGE
    return EXIT_OK


def cmd_sandbox(args: argparse.Namespace) -> int:
    from social311.integrations.ticketing.sandbox import run_sandbox

    try:
        run_sandbox(port=args.port, db_path=args.db, api_keys=args.api_key or ["demo-key"], quirk_modes=args.quirks or [])
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise CliError(f"port {args.port} on 127.0.0.1 is in use: choose another with --port (0: any free port)",
                           EXIT_UNAVAILABLE) from None
        raise
    return EXIT_OK


def cmd_tickets(args: argparse.Namespace) -> int:
    from social311.warehouse import connect

    cfg = load_city(args.config)
    where = "where state not in ('submitted', 'linked')" if args.stuck else ""
    if args.retry:
        from social311.integrations.ticketing.ledger import TicketLedger

        with connect(cfg.duckdb_path) as con:
            ledger = TicketLedger(con)
            for incident_id in args.retry:
                done = ledger.requeue(incident_id)
                print(f"{incident_id}: " + ("requeued for the next run" if done else "not failed or waiting; left as it is"))
        return EXIT_OK
    # Read-only: listing the ledger never writes, and never creates a warehouse that is not there.
    with connect(cfg.duckdb_path, read_only=True) as con:
        if not con.execute("select count(*) from duckdb_tables() where schema_name = 'ops' and table_name = 'ticket_ledger'").fetchone()[0]:
            raise CliError(f"the warehouse {cfg.duckdb_path} has no ticket ledger yet: run the pipeline first")
        rows = con.execute(f"select incident_id, state, service_code, service_request_id, attempts, next_attempt_at, last_error "
                           f"from ops.ticket_ledger {where} order by updated_at").fetchall()
    for incident_id, state, code, request_id, attempts, next_at, error in rows:
        line = f"{incident_id}  {state:<15} {code:<12} {request_id or '-':<12} attempts={attempts}"
        if next_at:
            line += f" next={next_at:%Y-%m-%d %H:%M}"
        print(line + (f"\n    {error}" if error else ""))
    print(f"{len(rows)} ledger rows" + (" stuck" if args.stuck else ""))
    return EXIT_OK


def cmd_eval(args: argparse.Namespace) -> int:
    _offline()
    if args.task in ("ward", "geocode"):  # the city's own cases against its GIS (models/gis_eval.py)
        from social311.models.gis_eval import run_cli

        return run_cli(args)
    if args.task in ("lodo", "learning"):
        return _eval_lodo(args)
    from social311.models.evaluation import runner

    if args.model_dir and not Path(args.model_dir).expanduser().is_dir():
        print(f"eval: --model-dir {args.model_dir}: no such folder", file=sys.stderr)
        return 2
    if args.model_dir:  # a folder that is no model, or a broken one, fails here in one line, not after the data loads
        from social311.models.embeddings import LocalModelEmbedder

        try:
            LocalModelEmbedder(args.model_dir).encode(["check"])
        except (ValueError, OSError) as exc:
            raise CliError(f"eval: --model-dir {_one_line(str(exc))}") from None
    if args.train and not args.data:
        print("--train needs --data (the test set)", file=sys.stderr)
        return 2
    if args.data:
        if not (args.task and args.text_column and args.label_column):
            raise CliError("--data needs --task, --text-column and --label-column")
        for option, value in (("--data", args.data), *(("--train", p) for p in args.train or [])):
            if value and not Path(value).is_file():
                raise CliError(f"{option} {value}: no such file")
        from social311.models.evaluation.files import EvalInputError

        try:
            result = runner.run_file(args.task, Path(args.data), args.text_column, args.label_column,
                                     [Path(p) for p in args.train or []], backend=args.backend,
                                     fine_tune=args.fine_tune, split=args.split, folds=args.folds, seed=args.seed,
                                     log=lambda m: print(m, file=sys.stderr), model_dir=args.model_dir)
        except EvalInputError as exc:
            raise CliError(f"eval: {_one_line(exc)}") from None
    else:
        from social311.models.evaluation.datasets import default_data_dir

        data_dir = Path(args.data_dir) if args.data_dir else default_data_dir()
        if not data_dir.is_dir():
            # Documented: the shared data is optional (tests/test_eval.py); saying so is enough.
            print(f"no shared data at {data_dir} (set SOCIAL311_SHARED_DATA or --data-dir): nothing to evaluate")
            return EXIT_OK
        only = {name.strip() for name in args.only.split(",") if name.strip()} if args.only else None
        result = runner.run_shared(data_dir, backend=args.backend, log=lambda m: print(m, file=sys.stderr),
                                   fine_tune=args.fine_tune, only=only, model_dir=args.model_dir)
    print(runner.format_table(result))
    runner.write(result, Path(args.out))
    print(f"\nWritten to {args.out}")
    return EXIT_OK


def _eval_lodo(args: argparse.Namespace) -> int:
    """``eval --task lodo`` (each shared set held out once, every model trained on the others) and
    ``eval --task learning`` (F1 against reviewed labels, random and uncertainty selection)."""
    import json

    from social311.models.embeddings import get_embedder
    from social311.models.evaluation import lodo
    from social311.models.evaluation.datasets import default_data_dir

    data_dir = Path(args.data_dir) if args.data_dir else default_data_dir()
    if not data_dir.is_dir():
        raise CliError(f"eval --task lodo: no shared data at {data_dir} (set SOCIAL311_SHARED_DATA or --data-dir)")
    say = lambda m: print(m, file=sys.stderr)  # noqa: E731 - progress goes to stderr
    try:
        if args.task == "learning":
            from social311.models.evaluation import learning

            rows = learning.run_shared(data_dir, get_embedder(args.backend), log=say)
            table, key = learning.format_table(rows), "learning_curves"
        else:
            embedder = get_embedder(args.backend)
            typing_rows = lodo.typing(data_dir, embedder, log=say)
            rows = {"relevance": lodo.relevance(data_dir, embedder, log=say), "typing": typing_rows}
            table, key = lodo.format_table(rows["relevance"]) + "\n\n" + lodo.format_typing_table(typing_rows), "lodo"
    except FileNotFoundError as exc:
        raise CliError(f"eval --task {args.task}: {exc}") from None
    print(table)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"data_dir": str(data_dir), "backend": args.backend, key: rows}, indent=2),
                   encoding="utf-8")
    print(f"\nWritten to {out}")
    return EXIT_OK


def cmd_review(args: argparse.Namespace) -> int:
    from social311.models.review import LabelError, list_post_queue, list_queue, record_label, record_post_label
    from social311.warehouse import connect

    cfg = load_city(args.config)
    listing = not (args.accept or args.reject or args.relabel or args.accept_post or args.reject_post)
    # Listing the queue only reads: it opens the warehouse read-only.
    with connect(cfg.duckdb_path, read_only=listing) as con:
        try:
            if args.accept:
                record_label(con, args.accept, "accept")
            elif args.reject:
                record_label(con, args.reject, "reject")
            elif args.relabel:
                record_label(con, args.relabel[0], "relabel", service_code=args.relabel[1])
            elif args.accept_post:
                record_post_label(con, args.accept_post, "accept")
            elif args.reject_post:
                record_post_label(con, args.reject_post, "reject")
            else:
                rows = list_queue(con)
                for r in rows:
                    print(f"{r.incident_id}  {r.service_code or '-':<12} ward={r.ward_id or '-':<5} "
                          f"confidence={r.confidence:.2f} posts={r.post_count}  {r.text[:80]}")
                print(f"{len(rows)} incidents waiting for review")
                # Posts in a language the model cannot read (ml.language_review), not chatter.
                posts = list_post_queue(con)
                for p in posts:
                    relevance = "-" if p.relevance is None else f"{p.relevance:.2f}"
                    text = " ".join(p.text.split())[:80]
                    print(f"{p.post_id}  lang={p.lang:<4} relevance={relevance}  {p.reason}  {text}")
                print(f"{len(posts)} posts waiting for language review (--accept-post / --reject-post)")
                return EXIT_OK
        except LabelError as exc:
            raise CliError(_one_line(str(exc))) from None
    print("recorded; it takes effect on the next run")
    return EXIT_OK


def port(text: str) -> int:
    """argparse type: a TCP port, 0 (any free port) to 65535."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"{value} is not a port (0 to 65535)")
    return value


def quirk_mode(text: str) -> str:
    """argparse type: a sandbox quirk mode name."""
    from social311.integrations.ticketing.sandbox import QUIRK_MODES

    if text not in QUIRK_MODES:
        raise argparse.ArgumentTypeError(f"unknown quirk mode {text!r}; known: {', '.join(sorted(QUIRK_MODES))}")
    return text


class Parser(argparse.ArgumentParser):
    """argparse, but a usage mistake is one line on stderr (``social311: error: ...``) and exit 2."""

    def error(self, message: str):  # noqa: D102 - argparse's hook
        command = self.prog.split()[-1]
        raise CliError(("" if command == "social311" else f"{command}: ") + f"{message} (see --help)")


def version() -> str:
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as dist_version

    try:
        return dist_version("social311")
    except PackageNotFoundError:
        return "unknown (not installed)"


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="social311", description=__doc__.split("\n")[0])
    parser.add_argument("--version", action="version", version=f"social311 {version()}")
    parser.add_argument("--log-format", choices=("text", "json"), default="text",
                        help="json: Dagster's log lines and the run summary as JSON objects, one a line")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    # --log-format is accepted after the command too (`social311 run --config X --log-format json`).
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--log-format", choices=("text", "json"), default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    add = sub.add_parser
    sub.add_parser = lambda *a, **k: add(*a, parents=[common], **k)  # every command gets the shared option
    demo = sub.add_parser("demo", help="run the bundled demo city end to end (offline)")
    demo.add_argument("--workdir", default=".social311/demo", help="where the demo keeps its warehouse, drop folder and report")
    demo.add_argument("--port", type=port, default=0, help="the demo sandbox's port (default: any free port)")
    demo.add_argument("--source", choices=("file_drop", "mastodon"), default="file_drop",
                      help="mastodon: serve the demo posts through a loopback Mastodon and read them with the real plugin")
    demo.set_defaults(func=cmd_demo)
    run = sub.add_parser("run", help="one pass of the pipeline for a configured city")
    run.add_argument("--config", required=True, help="the city YAML")
    run.set_defaults(func=cmd_run)
    validate = sub.add_parser("validate", help="check a city config, its files, env vars, Open311 catalog and wards; writes nothing")
    validate.add_argument("--config", required=True, help="the city YAML")
    validate.set_defaults(func=cmd_validate)
    sandbox = sub.add_parser("sandbox", help="the local Open311 GeoReport v2 sandbox server")
    sandbox.add_argument("--port", type=port, default=8311)
    sandbox.add_argument("--db", default=".social311/sandbox.sqlite", help="SQLite file keeping the requests across restarts")
    sandbox.add_argument("--api-key", action="append", help="accepted api_key (repeatable; default demo-key)")
    sandbox.add_argument("--quirks", action="append", metavar="MODE", type=quirk_mode,
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
    evaluate.add_argument("--task", choices=("relevance", "complaint", "service_type", "ward", "geocode", "lodo", "learning"),
                          help="with --data: what the labels are; ward / geocode: the city's cases against its GIS; "
                               "lodo: leave-one-dataset-out over the shared labelled sets; "
                               "learning: F1 against reviewed labels on the shared sets")
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
    evaluate.add_argument("--config", help="ward / geocode: the city YAML whose GIS is evaluated")
    evaluate.add_argument("--lat-column")
    evaluate.add_argument("--lon-column")
    evaluate.add_argument("--date-column", help="ward: the case's date (boundaries in force then; default today)")
    evaluate.add_argument("--only", help="comma-separated datasets of the shared run, e.g. mumbai_relevance,acl_complaints")
    evaluate.set_defaults(func=cmd_eval)
    review = sub.add_parser("review", help="incidents below the confidence threshold, and labels for them")
    review.add_argument("--config", required=True)
    action = review.add_mutually_exclusive_group()
    action.add_argument("--accept", metavar="INCIDENT_ID", help="file it on the next run")
    action.add_argument("--reject", metavar="INCIDENT_ID", help="never file it")
    action.add_argument("--relabel", nargs=2, metavar=("INCIDENT_ID", "SERVICE_CODE"), help="file it under this service")
    action.add_argument("--accept-post", metavar="POST_ID", help="a post in language review: a report from the next run")
    action.add_argument("--reject-post", metavar="POST_ID", help="a post in language review: chatter")
    review.set_defaults(func=cmd_review)
    from social311.orchestration.listen import add_listen_parser  # social platforms (issue 12)

    add_listen_parser(sub)
    return parser


def _say_error(message: str, log_format: str) -> None:
    if log_format == "json":
        print(json.dumps({"level": "error", "message": message}), file=sys.stderr)
    else:
        print(f"social311: error: {message}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    """Run one command; every expected mistake becomes one stderr line and an exit code of EXIT_CODES."""
    from social311.config import ConfigError
    from social311.warehouse import RunLockHeld, WarehouseBusy, WarehouseMissing

    argv = sys.argv[1:] if argv is None else argv
    log_format = "json" if "--log-format=json" in argv or any(
        a == "--log-format" and b == "json" for a, b in zip(argv, argv[1:])) else "text"
    try:
        args = build_parser().parse_args(argv)
        return args.func(args)
    except CliError as exc:
        _say_error(str(exc), log_format)
        return exc.code
    except ConfigError as exc:  # e.g. a missing secret found after the config loaded
        _say_error(_one_line(str(exc)), log_format)
        return EXIT_USAGE
    except (RunLockHeld, WarehouseBusy) as exc:
        _say_error(_one_line(str(exc)), log_format)
        return EXIT_BUSY
    except WarehouseMissing as exc:
        _say_error(_one_line(str(exc)), log_format)
        return EXIT_USAGE
    except PermissionError as exc:
        _say_error(f"permission denied: {exc.filename or _one_line(str(exc))}", log_format)
        return EXIT_UNAVAILABLE
    except OSError as exc:
        if exc.errno != errno.EADDRINUSE:
            raise
        _say_error(f"address in use ({exc.strerror}): choose another port with --port (0: any free port)", log_format)
        return EXIT_UNAVAILABLE
    except KeyboardInterrupt:
        _say_error("interrupted", log_format)
        return 130


if __name__ == "__main__":
    sys.exit(main())
