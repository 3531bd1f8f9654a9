"""The ticketing contract, the ledger and the status sync in every sandbox quirk mode, JSON and XML.

Each mode switches on one deviation recorded from the real servers (OPEN311.md §2), or all of
one server's at once (``issue_reporting``, ``open311_adapter``); the client must cope with all.
"""

import time

import pytest

from social311.integrations.testing.ticketing import TicketingContract
from social311.integrations.ticketing.ledger import TicketLedger, marker_for
from social311.integrations.ticketing.open311 import Open311Config, Open311Ticketing
from social311.integrations.ticketing.sandbox import QUIRK_MODES, Quirks, SandboxServer
from social311.orchestration.status import sync_status
from social311.records import TicketRequest
from social311.warehouse import connect

KEY = "quirk-key"


@pytest.fixture(scope="class")
def quirky_sandbox(request):
    with SandboxServer(api_keys=[KEY], quirks=Quirks(**QUIRK_MODES[request.cls.mode])) as server:
        yield server


class _InQuirkMode(TicketingContract):
    mode = "strict"
    fmt = "json"

    @pytest.fixture(autouse=True)
    def _bind(self, quirky_sandbox):
        self.sandbox = quirky_sandbox

    def make_plugin(self) -> Open311Ticketing:
        config = Open311Config(endpoint=self.sandbox.url, format=self.fmt, timeout_read_s=5, backoff_s=0.01,
                               email="social311@city.example")
        return Open311Ticketing(config, instance_name="quirks", api_key=KEY)

    def test_ledger_reconciles_a_lost_reply_then_sync_reads_the_close(self, plugin, tmp_path):
        incident_id = f"inc-{self.mode}-{self.fmt}"
        request = TicketRequest(service_code="STREETLIGHT", lat=41.88, lon=-87.63,
                                description=f"Light out, ref.\n\n{marker_for(incident_id)}")
        self.sandbox.faults.lose_next_post_replies = 1
        with connect(tmp_path / "w.duckdb") as con:
            outcome = TicketLedger(con).file(plugin, incident_id, request)
            assert outcome.state == "submitted", outcome
            assert self.sandbox.requests_filed(description_contains=marker_for(incident_id)) == 1
            sync_status(con, plugin)
            self.sandbox.set_status(outcome.service_request_id, "closed", "fixed", at=time.time() + 60)
            sync_status(con, plugin)
            status, time_to_close = con.execute("select status, time_to_close_s from ops.ticket_status").fetchone()
        assert status == "closed" and time_to_close > 0


for _mode in QUIRK_MODES:
    for _fmt in ("json", "xml"):
        _name = f"TestQuirk_{_mode}_{_fmt}"
        globals()[_name] = type(_name, (_InQuirkMode,), {"mode": _mode, "fmt": _fmt})
