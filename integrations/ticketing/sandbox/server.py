"""The sandbox Open311 server: a real HTTP server on loopback, strict to GeoReport v2.

Used by the tests, the demo and ``social311 sandbox``; never by production code. Requests are
kept in SQLite, so a sandbox restarted on the same file still knows every ticket it accepted,
which is what exactly-once filing has to be tested against.
"""

from __future__ import annotations

import signal
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterable
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

from social311.integrations.ticketing.sandbox.catalog import CatalogService, default_catalog, load_catalog
from social311.integrations.ticketing.sandbox.faults import QUIRK_MODES, Faults, Quirks
from social311.integrations.ticketing.sandbox.handler import Handler
from social311.integrations.ticketing.sandbox.store import Store

CatalogSource = str | Path | Iterable[CatalogService | dict[str, Any]] | None


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # bursts of 50+ POSTs a second queue instead of being refused

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that timed out and left is what fault drills are made of, not a sandbox bug.
        if isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
            return
        super().handle_error(request, client_address)


def _catalog(source: CatalogSource) -> list[CatalogService]:
    if source is None:
        return default_catalog()
    if isinstance(source, (str, Path)):
        return load_catalog(source)
    return [s.model_copy(deep=True) if isinstance(s, CatalogService) else CatalogService.model_validate(s) for s in source]


class SandboxServer:
    """A GeoReport v2 endpoint on 127.0.0.1 for tests and demos.

    Args:
        host: interface to bind; keep the loopback default.
        port: TCP port; 0 picks a free one (see :attr:`url` after :meth:`start`).
        db_path: SQLite file holding the requests, or ``":memory:"``.
        api_keys: keys that POST requests accepts.
        catalog: services: None for the default city, a JSON/YAML file, or a list.
        base_path: where the endpoint lives, e.g. ``/open311/v2/``.
        jurisdiction_id: when set, any other ``jurisdiction_id`` is a 404.
        faults: fault injection, changeable while running (``server.faults.slow_s = 2``).
        quirks: real-server deviations, changeable while running.
        verbose: log each request to stderr.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        db_path: str | Path = ":memory:",
        api_keys: Iterable[str] = ("demo-key",),
        catalog: CatalogSource = None,
        base_path: str = "/open311/v2/",
        *,
        jurisdiction_id: str | None = None,
        faults: Faults | None = None,
        quirks: Quirks | None = None,
        verbose: bool = False,
    ) -> None:
        self.host, self.port = host, port
        self.base_path = "/" + base_path.strip("/") + "/" if base_path.strip("/") else "/"
        self.api_keys = set(api_keys)
        self.jurisdiction_id = jurisdiction_id
        self.faults = faults or Faults()
        self.quirks = quirks or Quirks()
        self.verbose = verbose
        self.db_path = str(db_path)
        self.store = Store(self.db_path)
        self._catalog = _catalog(catalog)
        self._catalog_lock = threading.Lock()
        self._changeset = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        self._hits: Counter[tuple[str, str]] = Counter()
        self._hits_lock = threading.Lock()
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None


    def start(self) -> SandboxServer:
        """Bind and serve in a background thread; returns self."""
        if self._httpd is not None:
            return self
        self._httpd = _HTTPServer((self.host, self.port), Handler)
        self._httpd.sandbox = self  # type: ignore[attr-defined]
        self.port = self._httpd.server_address[1]
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.1}, name="open311-sandbox", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the database (idempotent)."""
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        self.store.close()

    def __enter__(self) -> SandboxServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """The endpoint base URL, e.g. ``http://127.0.0.1:54321/open311/v2/``."""
        return f"http://{self.host}:{self.port}{self.base_path}"


    def services(self) -> list[CatalogService]:
        """A snapshot of the catalog."""
        with self._catalog_lock:
            return list(self._catalog)

    def service(self, code: str) -> CatalogService | None:
        """One service by code, or None."""
        return next((s for s in self.services() if s.service_code == code), None)

    def set_service_type(self, code: str, kind: str) -> None:
        """Switch a service to ``realtime``, ``batch`` (tokens) or ``blackbox`` (no id)."""
        with self._catalog_lock:
            index = next(i for i, s in enumerate(self._catalog) if s.service_code == code)
            self._catalog[index] = self._catalog[index].model_copy(update={"type": kind})
            self._changeset = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())

    def discovery(self) -> dict[str, Any]:
        """The service discovery document of this sandbox."""
        return {
            "changeset": self._changeset,
            "contact": "Sandbox 311 desk, sandbox-311@example.invalid",
            "key_service": "API keys are set when the sandbox starts (social311 sandbox --api-key).",
            "endpoints": [
                {
                    "specification": "http://wiki.open311.org/GeoReport_v2",
                    "url": self.url.rstrip("/"),
                    "changeset": self._changeset,
                    "type": "test",
                    "formats": ["text/xml", "application/json"],
                }
            ],
        }


    def count_hit(self, method: str, resource: str) -> None:
        """Count one request to a resource (called by the handler)."""
        with self._hits_lock:
            self._hits[(method, resource)] += 1

    def hits(self, method: str, resource: str) -> int:
        """How many ``method`` calls reached ``resource`` (``"requests"``, ``"services"``...)."""
        with self._hits_lock:
            return self._hits[(method, resource)]

    def requests_filed(self, service_code: str | None = None, description_contains: str | None = None) -> int:
        """How many requests the server has committed (to assert there are no duplicates)."""
        return self.store.count(service_code, description_contains)

    def stage_request(self, service_code: str, description: str, *, at: float, status: str = "open",
                      updated_at: float | None = None, lat: float | None = None, lon: float | None = None,
                      address: str | None = None) -> str:
        """Add a request as if a resident had filed it at epoch ``at`` (a staged 311 history).

        Args:
            service_code: a code of the catalog (its name is filled in).
            status: ``open`` or ``closed``; a closed one was updated at ``updated_at``.

        Returns:
            The new request's id.
        """
        service = self.service(service_code)
        if service is None:
            raise KeyError(f"unknown service_code {service_code!r}")
        row = self.store.insert({"service_code": service_code, "service_name": service.service_name,
                                 "description": description, "lat": lat, "long": lon, "address": address,
                                 "agency_responsible": service.agency_responsible or None,
                                 "jurisdiction_id": self.jurisdiction_id}, at=at)
        if status != "open" or updated_at is not None:
            self.store.set_status(row["service_request_id"], status, at=updated_at if updated_at is not None else at)
        return row["service_request_id"]

    def set_status(self, service_request_id: str, status: str, notes: str | None = None, *,
                   agency: str | None = None, at: float | None = None) -> bool:
        """Close or reopen a request as city staff would; True when it exists (see Store.set_status)."""
        return self.store.set_status(service_request_id, status, notes, agency=agency, at=at)


def run_sandbox(port: int, db_path: str, api_keys: list[str], catalog: str | None = None,
                quirk_modes: Iterable[str] = ()) -> None:
    """Serve a sandbox on 127.0.0.1 until SIGINT or SIGTERM; prints the endpoint URL.

    Args:
        port: TCP port (0 for any free one).
        db_path: SQLite file that keeps requests across restarts.
        api_keys: keys accepted on POST.
        catalog: optional JSON/YAML catalog file; the default city otherwise.
        quirk_modes: names from :data:`QUIRK_MODES`, combined.

    Raises:
        ValueError: for an unknown quirk mode.
    """
    switches: dict[str, Any] = {}
    for mode in quirk_modes:
        if mode not in QUIRK_MODES:
            raise ValueError(f"unknown quirk mode {mode!r}; known: {', '.join(sorted(QUIRK_MODES))}")
        switches.update(QUIRK_MODES[mode])
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    server = SandboxServer(port=port, db_path=db_path, api_keys=api_keys, catalog=catalog, quirks=Quirks(**switches)).start()
    try:
        print(f"Open311 sandbox at {server.url} (requests kept in {db_path}); Ctrl-C stops it", flush=True)
        stop.wait()
    finally:
        server.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
