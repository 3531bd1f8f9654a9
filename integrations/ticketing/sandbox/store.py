"""The sandbox's service requests in SQLite: persistent across restarts, safe across threads.

One connection behind one lock: request handlers run in threads, ``:memory:`` databases exist
per connection, and SQLite serialises writers anyway. Times are stored as UTC epoch seconds so
that the date filters are plain comparisons.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterable
from typing import Any

_SCHEMA = """
create table if not exists service_requests (
    seq integer primary key autoincrement,
    service_request_id text not null unique,
    token text unique,
    token_polls integer not null default 0,
    jurisdiction_id text,
    service_code text not null,
    service_name text not null,
    description text,
    status text not null default 'open',
    status_notes text,
    agency_responsible text,
    service_notice text,
    requested_at real not null,
    updated_at real not null,
    expected_at real,
    address text,
    address_id text,
    zipcode text,
    lat real,
    long real,
    media_url text,
    attributes text not null default '{}',
    contact text not null default '{}'
);
create index if not exists service_requests_requested_at on service_requests (requested_at);
"""
_FIRST_ID = 240_000  # ids look like a city's numeric ids, but are strings on the wire
_COLUMNS = (
    "jurisdiction_id", "service_code", "service_name", "description", "status_notes",
    "agency_responsible", "service_notice", "expected_at", "address", "address_id", "zipcode",
    "lat", "long", "media_url", "attributes", "contact",
)


class Store:
    """Service requests of one sandbox, in the SQLite file ``path`` (or ``":memory:"``)."""

    def __init__(self, path: str) -> None:
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.row_factory = sqlite3.Row
        if path != ":memory:":
            self._db.execute("pragma journal_mode=wal")
            self._db.execute("pragma synchronous=normal")  # durable across restarts, not power cuts
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        """Close the database; the file keeps every committed request."""
        with self._lock:
            self._db.close()

    def insert(self, fields: dict[str, Any], *, with_token: bool = False, random_id: bool = False,
               at: float | None = None) -> dict[str, Any]:
        """Commit one new request and return it as stored.

        Args:
            fields: column values (``attributes``/``contact`` as dicts); unknown keys are errors.
            with_token: also issue a batch token for it.
            random_id: an 8-character ``[a-z0-9]`` id (issue-reporting) instead of a number.
            at: its ``requested_datetime`` as epoch seconds (now by default), so tests and the
                demo can stage a history of past requests (then :meth:`set_status` to close them).
        """
        values = {k: fields.get(k) for k in _COLUMNS}
        values["attributes"] = json.dumps(fields.get("attributes") or {}, ensure_ascii=False)
        values["contact"] = json.dumps(fields.get("contact") or {}, ensure_ascii=False)
        unknown = set(fields) - set(_COLUMNS)
        if unknown:
            raise KeyError(f"unknown request fields {sorted(unknown)}")
        now = time.time() if at is None else at
        with self._lock, self._db:
            self._db.execute("begin immediate")
            seq = self._db.execute("select coalesce(max(seq), 0) + 1 from service_requests").fetchone()[0]
            values.update(
                service_request_id=uuid.uuid4().hex[:8] if random_id else str(_FIRST_ID + seq),
                token=uuid.uuid4().hex if with_token else None,
                requested_at=now,
                updated_at=now,
            )
            names = ", ".join(values)
            marks = ", ".join(f":{k}" for k in values)
            self._db.execute(f"insert into service_requests ({names}) values ({marks})", values)  # noqa: S608
            row = self._db.execute("select * from service_requests where seq = last_insert_rowid()").fetchone()
        return dict(row)

    def by_ids(self, ids: Iterable[str]) -> list[dict[str, Any]]:
        """The stored requests among ``ids``, in the order asked; unknown ids are absent."""
        ids = list(dict.fromkeys(i for i in ids if i))
        if not ids:
            return []
        marks = ", ".join("?" for _ in ids)
        with self._lock:
            rows = self._db.execute(f"select * from service_requests where service_request_id in ({marks})", ids)  # noqa: S608
            found = {r["service_request_id"]: dict(r) for r in rows}
        return [found[i] for i in ids if i in found]

    def query(
        self,
        *,
        service_codes: list[str] | None = None,
        statuses: list[str] | None = None,
        start: float | None = None,
        end: float | None = None,
        updated_after: float | None = None,
        updated_before: float | None = None,
        limit: int = 1000,
        offset: int = 0,
    ) -> list[dict[str, Any]]:
        """Requests matching every given filter, newest first."""
        where, args = ["1 = 1"], []
        for column, wanted in (("service_code", service_codes), ("status", statuses)):
            if wanted:
                where.append(f"{column} in ({', '.join('?' for _ in wanted)})")
                args.extend(wanted)
        for clause, value in (
            ("requested_at >= ?", start), ("requested_at <= ?", end),
            ("updated_at >= ?", updated_after), ("updated_at <= ?", updated_before),
        ):
            if value is not None:
                where.append(clause)
                args.append(value)
        sql = f"select * from service_requests where {' and '.join(where)} order by requested_at desc, seq desc limit ? offset ?"  # noqa: S608
        with self._lock:
            return [dict(r) for r in self._db.execute(sql, [*args, limit, offset])]

    def poll_token(self, token: str, polls_needed: int) -> tuple[bool, str | None]:
        """Count one poll of ``token``; its id shows once ``polls_needed`` polls were answered empty.

        Returns:
            ``(known, service_request_id or None)``.
        """
        with self._lock, self._db:
            row = self._db.execute(
                "select service_request_id, token_polls from service_requests where token = ?", (token,)
            ).fetchone()
            if row is None:
                return False, None
            if row["token_polls"] >= polls_needed:
                return True, row["service_request_id"]
            self._db.execute("update service_requests set token_polls = token_polls + 1 where token = ?", (token,))
            return True, None

    def set_status(self, service_request_id: str, status: str, notes: str | None = None, *,
                   agency: str | None = None, at: float | None = None) -> bool:
        """Change a request's status, as the city's staff would; True when it exists.

        Args:
            agency: the agency now responsible (kept when None).
            at: the update's epoch time (now by default), so tests can stage a history.
        """
        with self._lock, self._db:
            cur = self._db.execute(
                "update service_requests set status = ?, status_notes = ?, updated_at = ?, "
                "agency_responsible = coalesce(?, agency_responsible) where service_request_id = ?",
                (status, notes, time.time() if at is None else at, agency, service_request_id),
            )
            return cur.rowcount == 1

    def descriptions(self) -> list[tuple[str, str | None]]:
        """``(service_request_id, description)`` of every stored request (for filing audits)."""
        with self._lock:
            return [tuple(r) for r in self._db.execute("select service_request_id, description from service_requests order by seq")]

    def count(self, service_code: str | None = None, description_contains: str | None = None) -> int:
        """How many requests are stored, optionally of one service or holding a text."""
        sql, args = "select count(*) from service_requests where 1 = 1", []
        if service_code is not None:
            sql += " and service_code = ?"
            args.append(service_code)
        if description_contains is not None:
            sql += " and instr(description, ?) > 0"
            args.append(description_contains)
        with self._lock:
            return self._db.execute(sql, args).fetchone()[0]
