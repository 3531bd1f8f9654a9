"""The DuckDB warehouse: connections with the spatial extension, and the tables Python writes.

DuckDB allows one writer per file and dbt runs as a subprocess, so connections here are short:
open, work, close. Never hold one across a dbt call.

The spatial extension is loaded from the ``duckdb-ext-spatial`` package, never downloaded.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import threading
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

import duckdb


class WarehouseBusy(RuntimeError):
    """The warehouse file is held by another process (DuckDB allows one writer per file)."""


class WarehouseMissing(FileNotFoundError):
    """A read-only command was pointed at a warehouse file that does not exist."""


class RunLockHeld(RuntimeError):
    """Another run of the same city holds its single-run lock."""


def extension_dir() -> str:
    """The folder holding the packaged spatial extension (``duckdb-ext-spatial``)."""
    import duckdb_ext

    return str(duckdb_ext.get_extension_dir())


#: DuckDB's own default is 80% of the machine's RAM (18.8 GiB here): a backfill's dbt child and the
#: run's process could each take that. A city sets its own (``memory.duckdb_memory_limit``).
DEFAULT_MEMORY_LIMIT = "1GiB"
#: How dbt's profile (transforms/profiles.yml) receives the limit of the warehouse it builds.
MEMORY_LIMIT_ENV = "SOCIAL311_DUCKDB_MEMORY_LIMIT"
_MEMORY_LIMITS: dict[str, str] = {}  # resolved warehouse path -> the city's limit (set by load_config)


def set_memory_limit(path: str | Path, limit: str) -> None:
    """Use ``limit`` (DuckDB syntax, e.g. ``1GiB``) for every later connection to the warehouse at ``path``."""
    _MEMORY_LIMITS[str(Path(path).resolve())] = limit


def memory_limit(path: str | Path) -> str:
    """DuckDB's memory_limit for the warehouse at ``path``: the city's, else :data:`DEFAULT_MEMORY_LIMIT`."""
    return _MEMORY_LIMITS.get(str(Path(path).resolve()), DEFAULT_MEMORY_LIMIT)


@contextlib.contextmanager
def connect(path: str | Path, *, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
    """Open the warehouse file with spatial loaded and every Python-written table present."""
    path = Path(path)
    if not read_only:
        path.parent.mkdir(parents=True, exist_ok=True)
    elif not path.exists():
        raise WarehouseMissing(f"no warehouse at {path}: run the pipeline for this city first")
    try:
        con = duckdb.connect(
            str(path),
            read_only=read_only,
            # Past the limit DuckDB spills to <warehouse>.tmp (its default temp_directory for a file).
            config={"extension_directory": extension_dir(), "autoinstall_known_extensions": False,
                    "memory_limit": memory_limit(path)},
        )
    except duckdb.IOException as exc:
        if "lock" not in str(exc).lower():
            raise
        # DuckDB's message names the file and the holder's PID; one line is what an operator needs.
        holder = run_lock_holder(path)
        raise WarehouseBusy(f"the warehouse {path} is in use by another process"
                            + (f" ({holder})" if holder else "") + "; try again when it ends") from exc
    try:
        con.execute("LOAD spatial")
        if not read_only:
            ensure_tables(con)
        yield con
    finally:
        con.close()


# One pipeline run per city at a time. DuckDB already refuses a second writer, but only when the
# second process opens the file, deep inside some step, and each step of both runs then fails on
# "Conflicting lock is held". The lock file beside the warehouse turns that into one refusal at
# the start of the second run, naming the first. flock is released by the kernel when the holder
# dies (even by SIGKILL), so a crash never leaves a stale lock. Within one process the lock is
# re-entrant: the CLI takes it before launching the run, and the run's resource takes it again.
_HELD: dict[str, list] = {}  # lock path -> [open file, depth]
_HELD_GUARD = threading.Lock()


def run_lock_path(duckdb_path: str | Path) -> Path:
    """The lock file of a city's warehouse: ``<warehouse>.run-lock`` beside it."""
    path = Path(duckdb_path)
    return path.with_name(path.name + ".run-lock")


def run_lock_holder(duckdb_path: str | Path) -> str:
    """Who holds the city's run lock, as written by the holder (empty when no run holds it)."""
    try:
        with open(run_lock_path(duckdb_path), encoding="utf-8") as handle:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                return handle.read().strip() or "a social311 run"
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)  # free: what it says is stale
            return ""
    except OSError:
        return ""


@contextlib.contextmanager
def run_lock(duckdb_path: str | Path, *, owner: str = "social311 run") -> Iterator[Path]:
    """Hold the city's single-run lock for the block; raise :class:`RunLockHeld` if another run has it.

    Args:
        duckdb_path: the city's warehouse file; the lock lives beside it.
        owner: a few words naming this run (e.g. its Dagster run id), shown to the refused run.
    """
    lock = run_lock_path(duckdb_path).resolve()
    key = str(lock)
    with _HELD_GUARD:
        if key in _HELD:
            _HELD[key][1] += 1
            reentered = True
        else:
            reentered = False
    if reentered:
        try:
            yield lock
        finally:
            _release(key)
        return
    lock.parent.mkdir(parents=True, exist_ok=True)
    handle = open(lock, "a+", encoding="utf-8")  # noqa: SIM115 - held for the whole block
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "another process"
        handle.close()
        raise RunLockHeld(f"another run of this city is in progress ({holder}); "
                          f"this one did not start. Lock file: {lock}") from None
    handle.seek(0)
    handle.truncate()
    handle.write(f"{owner}, pid {os.getpid()}, since {datetime.now(timezone.utc):%Y-%m-%d %H:%M:%S} UTC\n")
    handle.flush()
    with _HELD_GUARD:
        _HELD[key] = [handle, 1]
    try:
        yield lock
    finally:
        _release(key)


def _release(key: str) -> None:
    with _HELD_GUARD:
        entry = _HELD[key]
        entry[1] -= 1
        if entry[1]:
            return
        del _HELD[key]
    handle = entry[0]
    handle.seek(0)
    handle.truncate()  # the next reader sees no stale holder
    fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
    handle.close()


# Every table written from Python, in one place so the next engineer sees the whole warehouse.
# dbt reads these as sources (transforms/models/sources.yml) and owns everything it builds.
TABLES: dict[str, str] = {
    "raw.posts": """
        post_id VARCHAR PRIMARY KEY, source VARCHAR NOT NULL, native_id VARCHAR NOT NULL,
        text VARCHAR NOT NULL, created_at TIMESTAMPTZ NOT NULL, author_hash VARCHAR,
        lat DOUBLE, lon DOUBLE, place_name VARCHAR,
        place_min_lon DOUBLE, place_min_lat DOUBLE, place_max_lon DOUBLE, place_max_lat DOUBLE,
        repost_of VARCHAR, reply_to VARCHAR, mentions_city BOOLEAN, lang VARCHAR, url VARCHAR,
        ingested_at TIMESTAMPTZ NOT NULL, ingest_run_id VARCHAR""",
    "ops.source_cursors": "source VARCHAR PRIMARY KEY, cursor VARCHAR, updated_at TIMESTAMPTZ",
    "quarantine.records": """
        stage VARCHAR NOT NULL, source VARCHAR, record_ref VARCHAR NOT NULL, reason VARCHAR NOT NULL,
        raw_excerpt VARCHAR, quarantined_at TIMESTAMPTZ NOT NULL, run_id VARCHAR""",
    "gis.wards": """
        ward_id VARCHAR NOT NULL, name VARCHAR, boundary_version VARCHAR NOT NULL,
        valid_from DATE, valid_to DATE, geom GEOMETRY NOT NULL, area_km2 DOUBLE,
        PRIMARY KEY (boundary_version, ward_id)""",
    "gis.boundary_repairs": """
        boundary_version VARCHAR NOT NULL, ward_id VARCHAR NOT NULL, record_ref VARCHAR,
        repair VARCHAR NOT NULL, source_crs VARCHAR, loaded_at TIMESTAMPTZ, run_id VARCHAR""",
    "gis.streets": """
        segment_id VARCHAR PRIMARY KEY, name VARCHAR NOT NULL, area VARCHAR, geom GEOMETRY NOT NULL,
        from_address INTEGER, to_address INTEGER""",
    "gis.places": """
        place_id VARCHAR PRIMARY KEY, name VARCHAR NOT NULL, kind VARCHAR NOT NULL,
        lat DOUBLE NOT NULL, lon DOUBLE NOT NULL, aliases VARCHAR[], streets VARCHAR[], area VARCHAR""",
    # Each boundary load: replaced, or the previous wards kept because too few ids came (gis/wards).
    "gis.boundary_loads": """
        boundary_version VARCHAR NOT NULL, loaded_at TIMESTAMPTZ NOT NULL, run_id VARCHAR, outcome VARCHAR NOT NULL,
        wards_read INTEGER, wards_before INTEGER, missing_ids VARCHAR[], reason VARCHAR""",
    # Street names of areas the GIS names but has no geometry for (the gazetteer refuses to guess there).
    "gis.unlocated_street_names": "area VARCHAR NOT NULL, name VARCHAR NOT NULL",
    # Where the text of a post that has coordinates names a place: the default-point rule's evidence.
    "ml.post_text_places": """
        post_id VARCHAR PRIMARY KEY, text_lat DOUBLE, text_lon DOUBLE, place_id VARCHAR,
        matched_text VARCHAR""",
    "ops.service_catalog": """
        service_code VARCHAR PRIMARY KEY, service_name VARCHAR NOT NULL, description VARCHAR,
        metadata BOOLEAN, type VARCHAR, keywords VARCHAR[], "group" VARCHAR, fetched_at TIMESTAMPTZ""",
    "ml.post_signals": """
        post_id VARCHAR PRIMARY KEY, relevance DOUBLE NOT NULL, is_report BOOLEAN NOT NULL,
        sentiment DOUBLE, lang VARCHAR, embedding FLOAT[384], model_name VARCHAR,
        scored_at TIMESTAMPTZ""",
    # The city's past 311 requests (Open311 GET), training data of relevance and typing
    # (orchestration/history.py); descriptions masked, social311's own tickets left out.
    "ml.service_history": """
        service_request_id VARCHAR PRIMARY KEY, service_code VARCHAR NOT NULL, description VARCHAR NOT NULL,
        requested_datetime TIMESTAMPTZ, embedding FLOAT[384], fetched_at TIMESTAMPTZ NOT NULL""",
    "ml.issue_types": """
        type_id VARCHAR PRIMARY KEY, label VARCHAR NOT NULL, service_code VARCHAR,
        status VARCHAR NOT NULL, centroid FLOAT[384], top_terms VARCHAR[], created_at TIMESTAMPTZ""",
    "ml.post_types": """
        post_id VARCHAR PRIMARY KEY, type_id VARCHAR NOT NULL, service_code VARCHAR,
        similarity DOUBLE NOT NULL, assigned_at TIMESTAMPTZ""",
    # Reports typing tried and matched to no type, and under which typing inputs (orchestration/ml.py
    # issue_types): not tried again until those inputs change or the post is scored again.
    "ml.typing_attempts": "post_id VARCHAR PRIMARY KEY, typing_key VARCHAR NOT NULL, attempted_at TIMESTAMPTZ NOT NULL",
    # Posts below the relevance threshold in a language the model cannot read (models/language.py):
    # not chatter, but for a person to read.
    "ml.language_review": """
        post_id VARCHAR PRIMARY KEY, lang VARCHAR NOT NULL, confidence DOUBLE, relevance DOUBLE,
        reason VARCHAR NOT NULL, routed_at TIMESTAMPTZ""",
    "ml.post_locations": """
        post_id VARCHAR PRIMARY KEY, lat DOUBLE, lon DOUBLE, method VARCHAR NOT NULL,
        confidence DOUBLE NOT NULL, matched_text VARCHAR, place_id VARCHAR, located_at TIMESTAMPTZ""",
    "ops.incidents": """
        incident_id VARCHAR PRIMARY KEY, type_id VARCHAR, service_code VARCHAR,
        ward_id VARCHAR, boundary_version VARCHAR, lat DOUBLE, lon DOUBLE,
        first_seen_at TIMESTAMPTZ, last_seen_at TIMESTAMPTZ, post_count INTEGER NOT NULL,
        representative_text VARCHAR, confidence DOUBLE NOT NULL, status VARCHAR NOT NULL,
        updated_at TIMESTAMPTZ""",
    "ops.incident_posts": "incident_id VARCHAR NOT NULL, post_id VARCHAR PRIMARY KEY, merge_reason VARCHAR",
    # A reviewer's label of an incident in the review queue (models/review.py); the latest wins.
    "ops.review_labels": """
        incident_id VARCHAR PRIMARY KEY, action VARCHAR NOT NULL, service_code VARCHAR,
        labelled_at TIMESTAMPTZ NOT NULL""",
    # A reviewer's label of a post in language review (models/review.py): accept makes it a report
    # on the next run (orchestration/ml.py post_signals), reject leaves it chatter; the latest wins.
    "ops.post_review_labels": "post_id VARCHAR PRIMARY KEY, action VARCHAR NOT NULL, labelled_at TIMESTAMPTZ NOT NULL",
    "ops.ticket_ledger": """
        incident_id VARCHAR PRIMARY KEY, marker VARCHAR NOT NULL UNIQUE, state VARCHAR NOT NULL,
        service_code VARCHAR NOT NULL, service_request_id VARCHAR, token VARCHAR,
        attempts INTEGER NOT NULL DEFAULT 0, last_error VARCHAR, request_json VARCHAR,
        created_at TIMESTAMPTZ NOT NULL, updated_at TIMESTAMPTZ NOT NULL, next_attempt_at TIMESTAMPTZ,
        filed_at TIMESTAMPTZ""",
    # The city YAML's reporting rules, rewritten each run by orchestration/city_rules.py for dbt.
    "ops.sla_targets": "service_code VARCHAR PRIMARY KEY, acknowledge_s DOUBLE, close_s DOUBLE, answer_s DOUBLE",
    "ops.spike_rule": """
        baseline_days INTEGER NOT NULL, min_history_days INTEGER NOT NULL, min_count INTEGER NOT NULL,
        city_min_count INTEGER NOT NULL, ratio DOUBLE NOT NULL""",
    "ops.campaign_terms": "campaign VARCHAR NOT NULL, term VARCHAR NOT NULL, pattern VARCHAR NOT NULL",
    "ops.ticket_status": """
        service_request_id VARCHAR PRIMARY KEY, incident_id VARCHAR, status VARCHAR NOT NULL,
        status_notes VARCHAR, agency_responsible VARCHAR, requested_at TIMESTAMPTZ, updated_at TIMESTAMPTZ,
        acknowledged_at TIMESTAMPTZ, closed_at TIMESTAMPTZ, time_to_acknowledge_s DOUBLE,
        time_to_close_s DOUBLE, synced_at TIMESTAMPTZ NOT NULL""",
    "ops.ticket_status_notes": """
        service_request_id VARCHAR NOT NULL, updated_at TIMESTAMPTZ NOT NULL, status VARCHAR NOT NULL,
        status_notes VARCHAR, agency_responsible VARCHAR, seen_at TIMESTAMPTZ NOT NULL,
        PRIMARY KEY (service_request_id, updated_at)""",
    "ops.resident_replies": """
        post_id VARCHAR PRIMARY KEY, source VARCHAR NOT NULL, incident_id VARCHAR NOT NULL,
        service_request_id VARCHAR NOT NULL, reply_text VARCHAR NOT NULL, state VARCHAR NOT NULL,
        reply_id VARCHAR, last_error VARCHAR, drafted_at TIMESTAMPTZ NOT NULL, sent_at TIMESTAMPTZ""",
    # Every reply request sent to a platform, for the per-minute cap (a sliding window that
    # survives restarts); rows older than a day are pruned by orchestration/replies.py.
    "ops.reply_attempts": "source VARCHAR NOT NULL, post_id VARCHAR NOT NULL, attempted_at TIMESTAMPTZ NOT NULL",
}


def ensure_tables(con: duckdb.DuckDBPyConnection) -> None:
    """Create the schemas and Python-written tables that do not exist yet (idempotent)."""
    for name, columns in TABLES.items():
        schema = name.split(".")[0]
        con.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
        con.execute(f"CREATE TABLE IF NOT EXISTS {name} ({columns})")
    # Columns added after a table first shipped: warehouses created before get them here.
    for table, column in ADDED_COLUMNS:
        con.execute(f"ALTER TABLE {table} ADD COLUMN IF NOT EXISTS {column}")
    # NOT NULL constraints dropped after a table first shipped (checked first: an ALTER is a write).
    for table, column in NULLABLE_SINCE:
        schema, name = table.split(".")
        required = con.execute("select not is_nullable from duckdb_columns() where schema_name = ? and table_name = ? "
                               "and column_name = ? and database_name = current_database()", [schema, name, column]).fetchone()
        if required and required[0]:
            con.execute(f"ALTER TABLE {table} ALTER COLUMN {column} DROP NOT NULL")


ADDED_COLUMNS: tuple[tuple[str, str], ...] = (("gis.places", "area VARCHAR"),)
# A post the prefilter skipped (models/prefilter.py) has signals but no embedding.
NULLABLE_SINCE: tuple[tuple[str, str], ...] = (("ml.post_signals", "embedding"),)


@contextlib.contextmanager
def registered(con: duckdb.DuckDBPyConnection, frame, name: str = "rows") -> Iterator[str]:
    """``frame`` (a pandas DataFrame) readable by SQL on ``con`` inside the block, as the yielded view name.

    Bulk writes go through a registered DataFrame rather than ``executemany`` (one statement
    instead of ~8 ms a row); the view is dropped however the block ends.
    """
    view = f"__social311_{name}_{id(frame)}"
    con.register(view, frame)
    try:
        yield view
    finally:
        con.unregister(view)


def insert_many(con: duckdb.DuckDBPyConnection, sql: str, rows: list) -> int:
    """Run ``sql`` once per row (``executemany`` semantics) and return the row count; empty lists are fine.

    A plain ``insert [into] T [(cols)] values (?, ..., ?) [on conflict ... do nothing]`` is run as
    one bulk ``insert ... select`` from a DataFrame of the rows instead of one statement per row
    (DuckDB's ``executemany`` costs ~8 ms a row: 100,000 posts took 13 minutes; the bulk load
    takes about a second). Each column is typed from the target table, so NULLs and large ids
    survive; rows repeating a conflict key keep the first, as row-by-row inserts did. Anything
    else (updates, ``do update``, ``insert or replace``, expressions around the placeholders)
    runs row by row as before.
    """
    if not rows:
        return 0
    bulk = _bulk_insert(sql)
    if bulk is None:
        con.executemany(sql, rows)
    else:
        _insert_frame(con, *bulk, rows)
    return len(rows)


_BULK_INSERT = re.compile(
    r"^\s*insert\s+into\s+(?P<table>[\w.\"]+)\s*(?:\((?P<columns>[^)]*)\))?\s*"
    r"values\s*\((?P<values>\s*\?(?:\s*,\s*\?)*\s*)\)\s*"
    r"(?P<conflict>on\s+conflict\s*(?:\((?P<keys>[^)]*)\))?\s*do\s+nothing)?\s*;?\s*$",
    re.IGNORECASE | re.DOTALL,
)


def _bulk_insert(sql: str) -> tuple[str, list[str] | None, int, str, list[str] | None] | None:
    """``(table, columns, placeholders, conflict clause, conflict keys)`` of a plain insert, else None."""
    match = _BULK_INSERT.match(sql)
    if match is None:
        return None
    names = lambda text: [c.strip().strip('"') for c in text.split(",")] if text else None  # noqa: E731
    return (match["table"], names(match["columns"]), match["values"].count("?"), match["conflict"] or "",
            names(match["keys"]))


def _column_types(con: duckdb.DuckDBPyConnection, table: str) -> dict[str, str]:
    schema, _, name = table.replace('"', "").rpartition(".")
    rows = con.execute(
        "select column_name, data_type from duckdb_columns() where table_name = ? and schema_name = ? "
        "and database_name = current_database() order by column_index", [name, schema or "main"]).fetchall()
    return dict(rows)


def _series(values: list, data_type: str):
    """One column as a pandas Series DuckDB reads without guessing (except nested and temporal types)."""
    import pandas as pd

    if data_type in ("VARCHAR",):
        return pd.Series(values, dtype="string")
    if data_type in ("DOUBLE", "FLOAT", "REAL"):
        return pd.Series(values, dtype="float64")
    if data_type in ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "UTINYINT", "USMALLINT", "UINTEGER"):
        return pd.Series(values, dtype="Int64")
    if data_type == "BOOLEAN":
        return pd.Series(values, dtype="boolean")
    return pd.Series(values, dtype=object)  # DuckDB infers these from every value (see below)


def _insert_frame(con: duckdb.DuckDBPyConnection, table: str, columns: list[str] | None, width: int, conflict: str,
                  keys: list[str] | None, rows: list) -> None:
    import pandas as pd

    types = _column_types(con, table)
    names = columns or list(types)
    if len(names) != width or any(len(row) != width for row in rows):
        raise ValueError(f"insert into {table}: {width} placeholders, {len(names)} columns, rows of other lengths")
    frame = pd.DataFrame({f"c{k}": _series([row[k] for row in rows], types.get(name, "")) for k, name in enumerate(names)})
    if conflict:
        # Row by row, the first of two rows with one key won; keep that.
        if keys is None:
            keys = _primary_key(con, table)
        positions = [names.index(k) for k in keys if k in names]
        if positions:
            frame = frame.drop_duplicates(subset=[f"c{k}" for k in positions], keep="first")
    target = f"{table} ({', '.join(chr(34) + n + chr(34) for n in names)})"
    sample = con.execute("select current_setting('pandas_analyze_sample')").fetchone()[0]
    try:
        # Object columns (timestamps, dates, lists) are typed from all their values, not a sample:
        # a column whose first thousand values are NULL must not be read as NULL throughout.
        if any(frame[c].dtype == object for c in frame.columns):
            con.execute(f"set pandas_analyze_sample = {max(len(frame), 1000)}")
        with registered(con, frame) as view:
            con.execute(f"insert into {target} select * from {view} {conflict}")
    finally:
        con.execute(f"set pandas_analyze_sample = {int(sample)}")


def _primary_key(con: duckdb.DuckDBPyConnection, table: str) -> list[str]:
    schema, _, name = table.replace('"', "").rpartition(".")
    row = con.execute(
        "select constraint_column_names from duckdb_constraints() where table_name = ? and schema_name = ? "
        "and database_name = current_database() and constraint_type = 'PRIMARY KEY'", [name, schema or "main"]).fetchone()
    return list(row[0]) if row else []
