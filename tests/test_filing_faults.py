"""1,000 incidents filed through a sandbox that fails at least a fifth of all calls, every kind of fault.

Each incident must end filed exactly once (its id in the ledger, one ticket on the server) or
failed with the server's reason; zero duplicates, zero lost.
"""

from datetime import datetime, timezone

import pytest

from social311.integrations.testing.filing import audit, drill_requests, file_until_settled, now_clock
from social311.integrations.ticketing.ledger import TicketLedger
from social311.integrations.ticketing.open311 import Open311Config, Open311Ticketing
from social311.integrations.ticketing.sandbox import Faults, Quirks, SandboxServer
from social311.warehouse import connect

KEY = "fault-drill-key"
#: Per-request shares; together about a quarter of all calls hit something.
FAULTS = dict(fail_rate_5xx=0.08, rate_429=0.05, retry_after_s=0, lose_reply_after_commit=0.06,
              reset_mid_reply=0.06, slow_rate=0.03, slow_rate_s=0.5, html_errors=True, seed=2026)
KINDS = {"fail_next_5xx", "next_429", "lose_next_post_replies", "reset_next_replies", "slow_next"}


@pytest.mark.slow
def test_a_thousand_incidents_under_faults_are_filed_exactly_once(tmp_path):
    requests = drill_requests(1000)
    with SandboxServer(api_keys=(KEY,), faults=Faults(**FAULTS), quirks=Quirks(token_polls=1)) as sandbox, \
            connect(tmp_path / "w.duckdb") as con:
        plugin = Open311Ticketing(Open311Config(endpoint=sandbox.url, timeout_read_s=0.25, get_retries=3, backoff_s=0.01),
                                  instance_name="city", api_key=KEY)
        clock, advance = now_clock(datetime.now(timezone.utc))
        passes = file_until_settled(TicketLedger(con, clock=clock), plugin, requests, advance=advance)
        calls = sum(sandbox.hits(m, r) for m in ("GET", "POST") for r in ("requests", "tokens"))
        fired = sandbox.faults.fired
        result = audit(con, sandbox.store.descriptions(), list(requests))
        # Every server error text the ledger kept (HTML pages, resets, 5xx) is free of the key.
        leaked = con.execute("select count(*) from ops.ticket_ledger where contains(concat(last_error, request_json), ?)",
                             [KEY]).fetchone()[0]

    print(f"passes={passes} calls={calls} faults={sum(fired.values())} {dict(fired)} filed={result.filed} failed={result.failed}")
    assert set(fired) == KINDS, fired
    assert sum(fired.values()) >= 0.2 * calls, (fired, calls)
    assert result.ok, result
    assert leaked == 0
    assert result.filed + result.failed == 1000
    assert result.filed >= 990, result  # a failure needs three definite refusals in a row
    assert passes < 20
