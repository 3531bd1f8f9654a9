"""Filing throughput with the exactly-once ledger on, against the sandbox on loopback.

Every ticket goes through ``TicketLedger.file``: the intent row written to DuckDB, one POST,
the id recorded. The sandbox runs in this process (one thread per connection), as in the tests.

    .venv/bin/python bench/open311_filing.py            # 1000 tickets, JSON
    .venv/bin/python bench/open311_filing.py --n 500 --format xml
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from social311.integrations.testing.filing import audit, drill_requests, file_pass
from social311.integrations.ticketing.ledger import TicketLedger
from social311.integrations.ticketing.open311 import Open311Config, Open311Ticketing
from social311.integrations.ticketing.sandbox import Quirks, SandboxServer
from social311.warehouse import connect

KEY = "bench-key"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1000, help="tickets to file")
    parser.add_argument("--format", choices=("json", "xml"), default="json")
    args = parser.parse_args()
    requests = drill_requests(args.n)
    with tempfile.TemporaryDirectory() as tmp, \
            SandboxServer(api_keys=(KEY,), db_path=Path(tmp) / "sandbox.sqlite", quirks=Quirks(token_polls=0)) as sandbox, \
            connect(Path(tmp) / "bench.duckdb") as con:
        plugin = Open311Ticketing(Open311Config(endpoint=sandbox.url, format=args.format), instance_name="city", api_key=KEY)
        plugin.services()  # warm the connection pool, as a pipeline run's catalog step does
        started = time.perf_counter()
        outcomes = file_pass(TicketLedger(con), plugin, requests)
        elapsed = time.perf_counter() - started
        result = audit(con, sandbox.store.descriptions(), list(requests))
    print(f"filed {result.filed}/{args.n} tickets ({dict(outcomes)}) in {elapsed:.2f} s: "
          f"{result.filed / elapsed:.0f} tickets/s with the ledger on ({args.format}); duplicates {len(result.duplicates)}")


if __name__ == "__main__":
    main()
