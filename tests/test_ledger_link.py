"""Before filing, an open request of the same service nearby is linked to instead of filed again."""

import pytest

from social311.integrations.ticketing.ledger import TicketLedger, marker_for, open_request_nearby
from social311.integrations.ticketing.open311 import Open311Config, Open311Ticketing
from social311.integrations.ticketing.sandbox import SandboxServer
from social311.records import ServiceRequest, TicketRequest
from social311.warehouse import connect

KEY = "link-test-key"
HERE = (41.8820, -87.6278)
REQUEST = TicketRequest(service_code="POTHOLE", lat=HERE[0], lon=HERE[1], attributes={"SIZE": "M"},
                        description=f"Pothole.\n\n{marker_for('inc-1')}")


def candidate(rid="1", code="POTHOLE", status="open", north_m=0.0, description="Called in by a resident"):
    return ServiceRequest(service_request_id=rid, status=status, service_code=code, description=description,
                          lat=HERE[0] + north_m / 111_195, lon=HERE[1])


@pytest.mark.parametrize(("candidates", "expected"), [
    ([candidate(north_m=30)], "1"),
    ([candidate(north_m=80)], None),                                   # too far
    ([candidate(code="STREETLIGHT")], None),                           # another service
    ([candidate(status="closed")], None),                              # already fixed
    ([candidate(description=f"... {marker_for('inc-9')}")], None),     # ours: another incident
    ([candidate("far", north_m=45), candidate("near", north_m=10)], "near"),
    ([], None),
])
def test_open_request_nearby(candidates, expected):
    found = open_request_nearby(REQUEST, candidates, radius_m=50)
    assert (found.service_request_id if found else None) == expected


def test_unlocated_requests_are_never_linked():
    unlocated = REQUEST.model_copy(update={"lat": None, "lon": None, "address_string": "State and Madison"})
    assert open_request_nearby(unlocated, [candidate()], radius_m=50) is None


def test_linking_records_the_existing_id_and_posts_nothing(tmp_path):
    with SandboxServer(api_keys=(KEY,)) as sandbox, connect(tmp_path / "w.duckdb") as con:
        plugin = Open311Ticketing(Open311Config(endpoint=sandbox.url), instance_name="city", api_key=KEY)
        resident = plugin.submit(REQUEST.model_copy(update={"description": "Huge pothole, called 311"}))
        existing = open_request_nearby(REQUEST, plugin.find(service_codes=["POTHOLE"], status=["open"]), radius_m=50)
        ledger = TicketLedger(con)
        outcome = ledger.link("inc-1", REQUEST, existing)
        assert (outcome.state, outcome.service_request_id) == ("linked", resident.service_request_id)
        assert ledger.file(plugin, "inc-1", REQUEST).state == "linked"  # settled: never filed after
        assert sandbox.requests_filed() == 1
        ledger.file(plugin, "inc-2", REQUEST.model_copy(update={"description": f"x {marker_for('inc-2')}"}))
        with pytest.raises(ValueError, match="submitted"):
            ledger.link("inc-2", REQUEST, existing)
