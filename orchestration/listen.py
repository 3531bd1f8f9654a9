"""Listening to one source outside a full pipeline run: ``social311 listen`` and Dagster sensors.

``social311 listen --config CITY.yaml --source NAME [--once] [--every MINUTES]`` fetches the
source from its stored cursor into ``raw.posts`` (bad records to quarantine), stores the new
cursor, and re-checks its recent posts for deletions and edits; without ``--once`` it repeats
every ``--every`` minutes until stopped. The next pipeline run scores and files what came in.

For Dagster, :func:`listen_defs` gives one sensor per polling source of the city, named
``listen_<source>``, **stopped by default** (a city turns each on in the UI or with
``dagster sensor start``); each tick runs ``listen_once`` for its source at most every
``poll_minutes`` (from the source's config, default 10).
"""

from __future__ import annotations

import sys
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import dagster as dg

from social311.config import CityConfig, ConfigError, load_config
from social311.orchestration.listening import build_source, city_plan
from social311.warehouse import connect

DEFAULT_POLL_MINUTES = 10


@dataclass
class ListenSummary:
    """One pass over one source."""

    source: str
    fetched: int
    new: int
    quarantined: int
    deleted: int
    edited: int

    def line(self) -> str:
        return (f"{self.source}: {self.fetched} fetched, {self.new} new, {self.quarantined} quarantined, "
                f"{self.deleted} deleted, {self.edited} edited")


def listen_once(cfg: CityConfig, source_name: str, *, pseudonym_key: str, run_id: str | None = None) -> ListenSummary:
    """Fetch ``source_name`` once from its stored cursor into the warehouse; see the module doc."""
    from social311.orchestration.ingest import post_row, quarantine
    from social311.orchestration.withdrawals import recheck_source

    refs = {ref.instance_name: ref for ref in cfg.sources}
    if source_name not in refs:
        raise ConfigError(f"no source named {source_name!r} in the city config; sources: {sorted(refs)}")
    source = build_source(refs[source_name], cfg, plan=city_plan(cfg))
    run_id = run_id or f"listen-{uuid.uuid4().hex[:12]}"
    now = datetime.now(timezone.utc)
    with connect(cfg.duckdb_path) as con:
        row = con.execute("select cursor from ops.source_cursors where source = ?", [source_name]).fetchone()
        result = source.fetch(row[0] if row else None, pseudonym_key=pseudonym_key)
        before = con.execute("select count(*) from raw.posts").fetchone()[0]
        rows = [post_row(p, ingested_at=now, run_id=run_id) for p in result.posts]
        if rows:
            marks = ", ".join(["?"] * len(rows[0]))
            con.executemany(f"insert into raw.posts values ({marks}) on conflict (post_id) do nothing", rows)
        new = con.execute("select count(*) from raw.posts").fetchone()[0] - before
        quarantine(con, result.rejects, stage="ingest", run_id=run_id)
        if result.cursor is not None:
            con.execute("insert or replace into ops.source_cursors values (?, ?, ?)", [source_name, result.cursor, now])
        checked = recheck_source(con, source, pseudonym_key=pseudonym_key, run_id=run_id)
    return ListenSummary(source_name, len(result.posts), new, len(result.rejects), len(checked.deleted), len(checked.edited))


def _pseudonym_key(config_path: str) -> str:
    from social311.orchestration.resources import CityResource

    return CityResource(config_path=config_path).pseudonym_key()


def cmd_listen(args) -> int:
    """``social311 listen``: one line per pass; exit 2 on a configuration error."""
    try:
        cfg = load_config(args.config)
        key = _pseudonym_key(str(Path(args.config).resolve()))
        while True:
            summary = listen_once(cfg, args.source, pseudonym_key=key)
            print(summary.line(), flush=True)
            if args.once:
                return 0
            time.sleep(max(1.0, args.every * 60))
    except ConfigError as exc:
        print(f"social311 listen: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 0


def add_listen_parser(sub) -> None:
    """Register ``listen`` on the CLI's subparsers."""
    listen = sub.add_parser("listen", help="fetch one source into the warehouse now (or every N minutes)")
    listen.add_argument("--config", required=True, help="the city YAML")
    listen.add_argument("--source", required=True, help="the source's instance name in the city YAML")
    listen.add_argument("--once", action="store_true", help="one pass, then exit")
    listen.add_argument("--every", type=float, default=DEFAULT_POLL_MINUTES, help="minutes between passes")
    listen.set_defaults(func=cmd_listen)


def _sensor(source_name: str, minutes: float) -> dg.SensorDefinition:
    @dg.sensor(name=f"listen_{source_name}", minimum_interval_seconds=int(minutes * 60),
               default_status=dg.DefaultSensorStatus.STOPPED,
               description=f"Fetch source {source_name} into raw.posts every {minutes:g} minutes (off by default).")
    def listen_sensor(context: dg.SensorEvaluationContext):
        import os

        config_path = os.environ["SOCIAL311_CONFIG"]
        cfg = load_config(config_path)
        summary = listen_once(cfg, source_name, pseudonym_key=_pseudonym_key(config_path))
        return dg.SkipReason(summary.line())

    return listen_sensor


def listen_defs(config_path: str | None = None) -> dg.Definitions:
    """One stopped-by-default sensor per polling source of the city named by ``SOCIAL311_CONFIG``."""
    import os

    from social311.integrations import registry
    from social311.orchestration.listening import is_listening_source

    path = config_path or os.environ.get("SOCIAL311_CONFIG")
    if not path or not Path(path).is_file():
        return dg.Definitions()
    sensors = []
    for ref in load_config(path).sources:
        try:
            cls = registry.load_class("sources", ref.plugin)
        except LookupError:
            continue
        if is_listening_source(cls):
            sensors.append(_sensor(ref.instance_name, float(ref.config.get("poll_minutes", DEFAULT_POLL_MINUTES))))
    return dg.Definitions(sensors=sensors)
