"""What the two real servers did to the client, the ledger and the pipeline, replayed in the sandbox.

Each test runs the sandbox in the quirk mode that reproduces one behaviour recorded from
issue-reporting (6aika) or open311-adapter (mySociety) (OPEN311.md §2, issue 11), or from the
hostile sweep (issue 17): pages of 100 named by ``X-Next-Page-URL``, other paging styles, a 500
on every address-only POST, an empty catalog for an unknown jurisdiction, date filters ignored,
no token lookup, HTML pages answered with 200, secrets in URLs.
"""

import time
from datetime import datetime, timedelta, timezone

import dagster as dg
import pytest

from social311.integrations.ticketing.base import KeyRefused
from social311.integrations.ticketing.client import Open311Client, ResponseParseError, ServerError, TransportError
from social311.integrations.ticketing.client.errors import redact
from social311.integrations.ticketing.history import harvest
from social311.integrations.ticketing.ledger import TicketLedger, marker_for
from social311.integrations.ticketing.open311 import Open311Config, Open311Ticketing
from social311.integrations.ticketing.sandbox import QUIRK_MODES, Quirks, SandboxServer
from social311.records import TicketRequest
from social311.warehouse import connect

KEY = "real-limits-key"


class Clock:
    """A clock the test moves by hand, to step through backoff."""

    def __init__(self):
        self.now = datetime.now(timezone.utc)

    def __call__(self):
        return self.now


def sandbox_in(mode: str | None = None, **quirks) -> SandboxServer:
    return SandboxServer(api_keys=(KEY,), quirks=Quirks(**{**(QUIRK_MODES[mode] if mode else {}), **quirks}))


def plugin_for(server: SandboxServer, key: str = KEY, **config) -> Open311Ticketing:
    settings = dict(endpoint=server.url, timeout_read_s=5, backoff_s=0.01, **config)
    return Open311Ticketing(Open311Config(**settings), instance_name="city", api_key=key)


def request_for(incident_id: str, service_code: str = "STREETLIGHT", **location) -> TicketRequest:
    where = location or {"lat": 41.88, "lon": -87.63}
    return TicketRequest(service_code=service_code, description=f"Street light out.\n\n{marker_for(incident_id)}", **where)


def stage(server: SandboxServer, n: int, service_code: str = "STREETLIGHT", *, after: float | None = None,
          step: float = 1) -> None:
    start = time.time() if after is None else after
    for i in range(n):
        server.stage_request(service_code, f"resident request {i}", at=start + step * (1 + i))


def crash_after_post(led: TicketLedger, plugin: Open311Ticketing, incident_id: str) -> None:
    """The intent written and the POST made, then the process died before recording the reply."""
    led._upsert(incident_id, request_for(incident_id), state="pending", attempts=1)
    plugin.submit(request_for(incident_id))


# --- paging ---------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["pages_x_next", "pages_link_header", "pages_numbered_from_1",
                                  "pages_numbered_from_0", "issue_reporting", "open311_adapter"])
def test_every_paging_style_lists_every_request_once(mode):
    with sandbox_in(mode) as server:
        stage(server, 105, after=time.time() - 3600)
        client = Open311Client(server.url)
        first = client.requests(service_codes=["STREETLIGHT"])
        again = client.requests(service_codes=["STREETLIGHT"])
        calls = server.hits("GET", "requests")
    assert len(first) == 105 and len({r.service_request_id for r in first}) == 105
    assert {r.service_request_id for r in again} == {r.service_request_id for r in first}
    assert not first.truncated
    if mode.startswith("pages_numbered"):
        # The base is detected once: the second listing needs no probe (first page + 2 more).
        assert client.pages.base == (0 if mode.endswith("_0") else 1) and client.pages.page_size == 50
        assert calls <= 7, calls
    if mode == "open311_adapter":
        assert client.pages.unsupported, "a strict server refuses page/page_size: asked once, then never"


def test_a_server_that_ignores_page_numbers_is_probed_once():
    with sandbox_in("no_pagination") as server:
        stage(server, 30, after=time.time() - 3600)
        client = Open311Client(server.url)
        assert len(client.requests()) == 30 and len(client.requests()) == 30
        assert client.pages.unsupported and server.hits("GET", "requests") == 4  # 3 to learn, then 1


def test_a_listing_cut_at_max_pages_says_so():
    with sandbox_in("issue_reporting") as server:
        stage(server, 250, after=time.time() - 3600)
        found = Open311Client(server.url, max_pages=2).requests(service_codes=["STREETLIGHT"])
    assert len(found) == 200 and found.truncated


def test_the_marker_search_finds_the_ticket_on_page_2_and_files_nothing_twice(tmp_path):
    """issue 11: 105 newer requests of the service pushed the ticket to page 2; it was filed twice."""
    clock = Clock()
    with sandbox_in("issue_reporting") as server, connect(tmp_path / "w.duckdb") as con:
        plugin = plugin_for(server)
        led = TicketLedger(con, clock=clock)
        crash_after_post(led, plugin, "inc-p2")
        stage(server, 105)
        outcome = led.file(plugin, "inc-p2", request_for("inc-p2"))
        assert outcome.state == "submitted", outcome
        assert server.hits("POST", "requests") == 1
        assert server.requests_filed(description_contains=marker_for("inc-p2")) == 1
        assert server.hits("GET", "requests") >= 2, "the ticket sits on page 2"


def test_a_listing_cut_by_max_pages_is_narrowed_by_windows_until_the_marker_is_seen(tmp_path):
    with sandbox_in("issue_reporting") as server, connect(tmp_path / "w.duckdb") as con:
        plugin = plugin_for(server, max_pages=1)
        led = TicketLedger(con, clock=Clock())
        crash_after_post(led, plugin, "inc-cut")
        stage(server, 105)
        assert led.file(plugin, "inc-cut", request_for("inc-cut")).state == "submitted"
        assert server.hits("POST", "requests") == 1


def test_a_marker_search_that_cannot_see_everything_never_posts_again(tmp_path):
    """A burst of 105 requests within one second, one page allowed: the window cannot be narrowed."""
    with sandbox_in("issue_reporting") as server, connect(tmp_path / "w.duckdb") as con:
        plugin = plugin_for(server, max_pages=1)
        led = TicketLedger(con, clock=Clock())
        crash_after_post(led, plugin, "inc-burst")
        stage(server, 105, after=time.time(), step=0.001)
        outcome = led.file(plugin, "inc-burst", request_for("inc-burst"))
        assert outcome.state == "pending" and "could not be read whole" in outcome.error
        assert server.hits("POST", "requests") == 1


def test_the_marker_search_covers_a_thousand_newer_requests_on_a_server_without_paging(tmp_path):
    """issue 17: one GET answers the newest 1,000; the search narrows the window until it sees all."""
    with sandbox_in(pagination=False) as server, connect(tmp_path / "w.duckdb") as con:
        plugin = plugin_for(server, paging="off")
        led = TicketLedger(con, clock=Clock())
        crash_after_post(led, plugin, "inc-1k")
        stage(server, 1005)
        outcome = led.file(plugin, "inc-1k", request_for("inc-1k"))
        assert outcome.state == "submitted", outcome
        assert server.hits("POST", "requests") == 1 and server.requests_filed() == 1006


def test_a_server_ignoring_dates_and_capping_its_answer_cannot_be_searched(tmp_path):
    """open311-adapter's Endpoint1 ignores date filters: a full answer cannot be narrowed, so no re-POST."""
    with sandbox_in("open311_adapter", max_results=50) as server, connect(tmp_path / "w.duckdb") as con:
        plugin = plugin_for(server)
        led = TicketLedger(con, clock=Clock(), server_limit=50)
        crash_after_post(led, plugin, "inc-ign")
        stage(server, 60)
        outcome = led.file(plugin, "inc-ign", request_for("inc-ign"))
        assert outcome.state == "pending" and outcome.error.startswith("reconcile failed")
        assert server.hits("POST", "requests") == 1


def test_the_history_harvest_follows_pages_past_100():
    """issue 11: '0 new requests of 100 fetched' while the server held about 540."""
    with sandbox_in("issue_reporting") as server:
        stage(server, 540, service_code="POTHOLE", after=time.time() - 86400)
        got = harvest(plugin_for(server), start=datetime.now(timezone.utc) - timedelta(days=2),
                      end=datetime.now(timezone.utc))
    assert len(got.requests) == 540 and got.truncated == 0


# --- one retry policy ---------------------------------------------------------------------


def test_a_500_on_every_post_ends_failed_after_the_attempts_with_backoff_then_retry_requeues(tmp_path, capsys):
    """issue 11: issue-reporting answers an address-only POST with an HTML 500, forever."""
    from social311.cli import main

    clock = Clock()
    bad = request_for("inc-500", address_string="1 Main St")
    db = tmp_path / "w.duckdb"
    with sandbox_in("issue_reporting") as server:
        plugin = plugin_for(server)
        with connect(db) as con:
            led = TicketLedger(con, clock=clock, max_attempts=3)
            assert led.file(plugin, "inc-500", bad).state == "pending"
            assert led.due(["inc-500"]) == [], "waits 5 minutes"
            clock.now += timedelta(minutes=6)
            assert led.file(plugin, "inc-500", bad).state == "pending"
            clock.now += timedelta(minutes=6)
            assert led.due(["inc-500"]) == [], "then 30"
            clock.now += timedelta(minutes=30)
            final = led.file(plugin, "inc-500", bad)
            row = led.row("inc-500")
        assert final.state == "failed" and row["attempts"] == 3 and row["next_attempt_at"] is None
        assert "requires coordinates" in row["last_error"] and row["last_error"].count("HTTP 500") == 1
        assert server.hits("POST", "requests") == 3 and server.requests_filed() == 0

        city = tmp_path / "city.yaml"
        city.write_text(f"city: T\nduckdb_path: {db}\nsources: [{{plugin: file_drop}}]\ngis: {{plugin: geojson}}\n"
                        f"ticketing: {{plugin: open311, config: {{endpoint: '{server.url}'}}}}\n")
        assert main(["tickets", "--config", str(city), "--stuck"]) == 0
        assert "inc-500  failed" in capsys.readouterr().out
        assert main(["tickets", "--config", str(city), "--retry", "inc-500"]) == 0
        assert "inc-500: requeued" in capsys.readouterr().out
        searches = server.hits("GET", "requests")
        with connect(db) as con:
            led = TicketLedger(con, clock=clock)
            assert led.row("inc-500")["state"] == "pending" and led.due(["inc-500"]) == ["inc-500"]
            # The address is fixed: the marker is searched first (a 5xx may have filed it), then one POST.
            fixed = led.file(plugin, "inc-500", request_for("inc-500"))
        assert fixed.state == "submitted" and server.hits("GET", "requests") > searches
        assert server.hits("POST", "requests") == 4 and server.requests_filed() == 1


def test_a_pending_ticket_found_by_its_search_after_the_last_attempt_is_filed_not_failed(tmp_path):
    clock = Clock()
    with sandbox_in() as server, connect(tmp_path / "w.duckdb") as con:
        plugin = plugin_for(server)
        led = TicketLedger(con, clock=clock, max_attempts=1)
        server.faults.lose_next_post_replies, server.faults.reset_next_replies = 1, 1
        assert led.file(plugin, "inc-last", request_for("inc-last")).state == "pending"
        clock.now += timedelta(minutes=6)
        assert led.file(plugin, "inc-last", request_for("inc-last")).state == "submitted"
        assert server.hits("POST", "requests") == 1


# --- keys, catalog, tokens ----------------------------------------------------------------


def _city_yaml(tmp_path, server: SandboxServer, extra: str = "", jurisdiction: str | None = None):
    config = f"endpoint: '{server.url}'" + (f", jurisdiction_id: {jurisdiction}" if jurisdiction else "") + extra
    city = tmp_path / "city.yaml"
    city.write_text(f"city: T\nduckdb_path: {tmp_path / 'w.duckdb'}\nsources: [{{plugin: file_drop}}]\n"
                    f"gis: {{plugin: geojson}}\nticketing: {{plugin: open311, config: {{{config}}}}}\n")
    return city


def test_a_yaml_without_api_key_env_reads_the_documented_default(tmp_path, monkeypatch):
    from social311.config import ConfigError
    from social311.orchestration.resources import CityResource

    with sandbox_in() as server:
        city = CityResource(config_path=str(_city_yaml(tmp_path, server)))
        monkeypatch.delenv("SOCIAL311_OPEN311_API_KEY", raising=False)
        with pytest.raises(ConfigError, match="SOCIAL311_OPEN311_API_KEY"):
            city.ticketing(require_key=True)
        monkeypatch.setenv("SOCIAL311_OPEN311_API_KEY", KEY)
        assert city.load().ticketing.api_key_env == "SOCIAL311_OPEN311_API_KEY"
        result = city.ticketing(require_key=True).submit(request_for("inc-key"))
        assert result.service_request_id and server.requests_filed() == 1
        named = CityResource(config_path=str(_city_yaml(tmp_path, server, ", api_key_env: CITY_311_KEY")))
        monkeypatch.setenv("CITY_311_KEY", KEY)
        monkeypatch.delenv("SOCIAL311_OPEN311_API_KEY")
        assert named.ticketing(require_key=True).submit(request_for("inc-key2")).service_request_id


def test_a_refused_key_stops_filing_at_the_first_ticket_and_costs_no_attempt(tmp_path):
    with sandbox_in("issue_reporting") as server, connect(tmp_path / "w.duckdb") as con:
        led = TicketLedger(con, clock=Clock())
        with pytest.raises(KeyRefused, match="api_key"):
            led.file(plugin_for(server, key="wrong"), "inc-k", request_for("inc-k"))
        row = led.row("inc-k")
        assert row["state"] == "retry_wait" and row["attempts"] == 0 and "400" in row["last_error"]
        keyless = Open311Ticketing(Open311Config(endpoint=server.url), instance_name="city", api_key=None)
        with pytest.raises(KeyRefused, match="no api_key"):
            keyless.submit(request_for("inc-k"))
        assert server.hits("POST", "requests") == 1, "nothing is sent without a key"
        assert led.file(plugin_for(server), "inc-k", request_for("inc-k")).state == "submitted"


def test_an_empty_catalog_stops_the_run_with_a_clear_message(tmp_path):
    """issue-reporting answers an unknown jurisdiction_id with 200 [] on GET services."""
    from social311.orchestration.resources import CityResource
    from social311.orchestration.ticketing import service_catalog

    with sandbox_in("issue_reporting") as server:
        city = CityResource(config_path=str(_city_yaml(tmp_path, server, jurisdiction="nowhere.example")))
        result = dg.materialize([service_catalog], resources={"city": city}, raise_on_error=False)
    assert not result.success
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    message = failure.step_failure_data.user_failure_data.description
    assert "lists no services" in message and "nowhere.example" in message


def test_batch_tickets_resolve_by_marker_where_the_server_has_no_token_lookup(tmp_path):
    """issue 17: 'token lookup failed: NotFound: HTTP 404' on every run under issue_reporting."""
    with sandbox_in("issue_reporting") as server, connect(tmp_path / "w.duckdb") as con:
        server.set_service_type("STREETLIGHT", "batch")
        plugin = plugin_for(server)
        led = TicketLedger(con, clock=Clock())
        assert led.file(plugin, "inc-tok", request_for("inc-tok")).state == "awaiting_token"
        assert led.resolve_tokens(plugin) == 1
        row = led.row("inc-tok")
        assert row["state"] == "submitted" and row["service_request_id"] and row["token"]
        assert server.hits("POST", "requests") == 1


def test_an_unknown_id_is_a_500_on_open311_adapter_and_filing_does_not_depend_on_it(tmp_path):
    with sandbox_in("open311_adapter") as server, connect(tmp_path / "w.duckdb") as con:
        plugin = plugin_for(server)
        with pytest.raises(ServerError):
            plugin.client.request("no-such-id")
        assert plugin.get(["no-such-id"]) == []
        led = TicketLedger(con, clock=Clock())
        crash_after_post(led, plugin, "inc-500id")
        assert led.file(plugin, "inc-500id", request_for("inc-500id")).state == "submitted"
        assert server.hits("POST", "requests") == 1


# --- HTML pages with 200 ------------------------------------------------------------------


def test_an_html_200_to_a_post_is_ambiguous_never_submitted_without_an_id(tmp_path):
    with sandbox_in() as server, connect(tmp_path / "w.duckdb") as con:
        plugin = plugin_for(server)
        clock = Clock()
        led = TicketLedger(con, clock=clock)
        server.faults.html_200_next = 1
        outcome = led.file(plugin, "inc-waf", request_for("inc-waf"))
        assert outcome.state == "pending" and "HTML page" in outcome.error and "maintenance" in outcome.error
        assert led.row("inc-waf")["service_request_id"] is None
        clock.now += timedelta(minutes=6)
        assert led.file(plugin, "inc-waf", request_for("inc-waf")).state == "submitted"
        assert server.requests_filed() == 1


def test_an_html_200_to_the_marker_search_is_cannot_search_never_a_second_post(tmp_path):
    with sandbox_in() as server, connect(tmp_path / "w.duckdb") as con:
        plugin = plugin_for(server)
        clock = Clock()
        led = TicketLedger(con, clock=clock)
        crash_after_post(led, plugin, "inc-login")
        server.faults.html_200_next = 1  # the search's GET meets a login page
        again = led.file(plugin, "inc-login", request_for("inc-login"))
        assert again.state == "pending" and again.error.startswith("reconcile failed") and "HTML" in again.error
        assert server.hits("POST", "requests") == 1 and led.due(["inc-login"]) == [], "backs off"
        clock.now += timedelta(minutes=6)
        assert led.file(plugin, "inc-login", request_for("inc-login")).state == "submitted"
        assert server.hits("POST", "requests") == 1 and server.requests_filed() == 1


def test_a_list_answer_that_is_an_object_of_other_words_is_unreadable():
    with sandbox_in() as server:
        client = Open311Client(server.url)
        with pytest.raises(ResponseParseError, match="not a list"):
            client._as_list({"status": "maintenance", "retry": "later"}, "requests")
        assert client._as_list({"service_request_id": "1", "status": "open"}, "requests") == [
            {"service_request_id": "1", "status": "open"}]


# --- secrets in URLs ----------------------------------------------------------------------


@pytest.mark.parametrize("text, secret", [
    ("GET http://bob:pa55word@311.city.gov/v2/requests.json failed", "pa55word"),
    ("Max retries exceeded with url: /v2/requests.json?api_key=K3Y&page=2", "K3Y"),
    ("https://311.city.gov/v2/tokens.json?token=T0K&x=1", "T0K"),
    ("see <https://h/x?access_token=AT0K>; rel=next", "AT0K"),
    ("https://h/x?client_secret=CS3C", "CS3C"),
])
def test_secrets_in_printed_urls_are_redacted(text, secret):
    out = redact(text)
    assert secret not in out and "***" in out


def test_a_password_in_the_endpoint_never_reaches_a_message(tmp_path):
    with sandbox_in() as server:
        endpoint = server.url.replace("http://", "http://city:pa55word@")
        client = Open311Client(endpoint, api_key=KEY)
        assert "pa55word" not in repr(client)
        server.faults.html_200_next = 1
        with pytest.raises(ResponseParseError) as parse_error:
            client.services()
        assert "pa55word" not in str(parse_error.value) and "***" in str(parse_error.value)
    closed = Open311Client("http://city:pa55word@127.0.0.1:9/open311/v2/", retries=0, timeout=(0.5, 0.5))
    with pytest.raises(TransportError) as transport_error:
        closed.services()
    assert "pa55word" not in str(transport_error.value)
