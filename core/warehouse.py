"""The DuckDB warehouse: connections with the spatial extension, and the tables Python writes.

DuckDB allows one writer per file and dbt runs as a subprocess, so connections here are short:
open, work, close. Never hold one across a dbt call.

The spatial extension is loaded from the ``duckdb-ext-spatial`` package, never downloaded.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import duckdb


def extension_dir() -> str:
    """The folder holding the packaged spatial extension (``duckdb-ext-spatial``)."""
    import duckdb_ext

    return str(duckdb_ext.get_extension_dir())


@contextlib.contextmanager
def connect(path: str | Path, *, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
    """Open the warehouse file with spatial loaded and every Python-written table present."""
    path = Path(path)
    if not read_only:
        path.parent.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(
        str(path),
        read_only=read_only,
        config={"extension_directory": extension_dir(), "autoinstall_known_extensions": False},
    )
    try:
        con.execute("LOAD spatial")
        if not read_only:
            ensure_tables(con)
        yield con
    finally:
        con.close()


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
    "ops.service_catalog": """
        service_code VARCHAR PRIMARY KEY, service_name VARCHAR NOT NULL, description VARCHAR,
        metadata BOOLEAN, type VARCHAR, keywords VARCHAR[], "group" VARCHAR, fetched_at TIMESTAMPTZ""",
    "ml.post_signals": """
        post_id VARCHAR PRIMARY KEY, relevance DOUBLE NOT NULL, is_report BOOLEAN NOT NULL,
        sentiment DOUBLE, lang VARCHAR, embedding FLOAT[384] NOT NULL, model_name VARCHAR,
        scored_at TIMESTAMPTZ""",
    "ml.issue_types": """
        type_id VARCHAR PRIMARY KEY, label VARCHAR NOT NULL, service_code VARCHAR,
        status VARCHAR NOT NULL, centroid FLOAT[384], top_terms VARCHAR[], created_at TIMESTAMPTZ""",
    "ml.post_types": """
        post_id VARCHAR PRIMARY KEY, type_id VARCHAR NOT NULL, service_code VARCHAR,
        similarity DOUBLE NOT NULL, assigned_at TIMESTAMPTZ""",
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
    "ops.ticket_ledger": """
        incident_id VARCHAR PRIMARY KEY, marker VARCHAR NOT NULL UNIQUE, state VARCHAR NOT NULL,
        service_code VARCHAR NOT NULL, service_request_id VARCHAR, token VARCHAR,
        attempts INTEGER NOT NULL DEFAULT 0, last_error VARCHAR, request_json VARCHAR,
        created_at TIMESTAMPTZ NOT NULL, updated_at TIMESTAMPTZ NOT NULL, next_attempt_at TIMESTAMPTZ,
        filed_at TIMESTAMPTZ""",
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


ADDED_COLUMNS: tuple[tuple[str, str], ...] = (("gis.places", "area VARCHAR"),)


def insert_many(con: duckdb.DuckDBPyConnection, sql: str, rows: list) -> int:
    """``executemany`` that accepts an empty list (DuckDB refuses one); returns the row count."""
    if rows:
        con.executemany(sql, rows)
    return len(rows)
