"""Open311Client: encoding, parsing of real city payloads, typed errors, retries and faults."""

from __future__ import annotations

import json
import logging
from datetime import datetime, timedelta, timezone

import pytest
import requests
from requests.adapters import BaseAdapter

from social311.integrations.ticketing.client import (
    BadRequest,
    Forbidden,
    NotFound,
    Open311Client,
    RateLimited,
    ResponseParseError,
    ServerError,
    SubmitAmbiguous,
    SubmitRejected,
    build_session,
)
from social311.integrations.ticketing.client import Attribute, AttributeValue, ServiceDefinition, decode, encode, parse
from social311.integrations.ticketing.client.attributes import check_attributes
from social311.integrations.ticketing.client.errors import parse_error_body
from social311.integrations.ticketing.sandbox import Quirks, SandboxServer
from social311.records import TicketRequest

KEY = "s3cr3t-Key-0f-the-city"
UTC = timezone.utc


class Canned(BaseAdapter):
    """A transport that serves fixed bytes, so real payloads go through the whole client."""

    def __init__(self, status: int, body: bytes, content_type: str = "application/json"):
        super().__init__()
        self.status, self.body, self.content_type = status, body, content_type
        self.sent: list[requests.PreparedRequest] = []

    def send(self, request, **kwargs):
        self.sent.append(request)
        response = requests.Response()
        response.status_code, response._content, response.url, response.request = self.status, self.body, request.url, request
        response.headers["Content-Type"] = self.content_type
        return response

    def close(self):
        pass


def canned_client(status: int, body: bytes | str, content_type: str = "application/json", **kwargs) -> Open311Client:
    session = requests.Session()
    session.mount("http://canned/", Canned(status, body.encode() if isinstance(body, str) else body, content_type))
    return Open311Client("http://canned/v2", session=session, api_key=KEY, **kwargs)


@pytest.fixture
def sandbox():
    with SandboxServer(api_keys=[KEY]) as server:
        yield server


def pothole(**changes) -> TicketRequest:
    values = dict(service_code="POTHOLE", description="Deep hole by the bus stop", lat=41.88, lon=-87.63,
                  attributes={"SIZE": "L", "LANES": ["CURB", "BIKE"]})
    values.update(changes)
    return TicketRequest(**values)


@pytest.mark.parametrize(
    ("moment", "wire"),
    [
        (datetime(2024, 5, 1, 12, 30, 15, 123456, tzinfo=UTC), "2024-05-01T12:30:15Z"),
        (datetime(2024, 5, 1, 8, 0, tzinfo=timezone(timedelta(hours=-4))), "2024-05-01T12:00:00Z"),
    ],
)
def test_datetimes_are_sent_as_whole_seconds_utc(moment, wire):
    assert encode.w3c(moment) == wire


def test_naive_datetimes_are_refused():
    with pytest.raises(ValueError):
        encode.w3c(datetime(2024, 5, 1))


@pytest.mark.parametrize(
    ("days", "expected_windows"),
    [(1, 1), (90, 1), (91, 2), (200, 3), (365, 5)],
)
def test_ranges_are_split_into_windows_of_at_most_90_days(days, expected_windows):
    start = datetime(2024, 1, 1, tzinfo=UTC)
    spans = encode.windows(start, start + timedelta(days=days))
    assert len(spans) == expected_windows
    assert spans[0][0] == start and spans[-1][1] == start + timedelta(days=days)
    assert all(hi - lo <= timedelta(days=90) for lo, hi in spans)
    assert all(a[1] == b[0] for a, b in zip(spans, spans[1:]))


@pytest.mark.parametrize(
    ("encoding", "fields"),
    [
        ("brackets", [("attribute[SIZE]", "L"), ("attribute[LANES][]", "CURB"), ("attribute[LANES][]", "BIKE")]),
        ("repeat", [("attribute[SIZE]", "L"), ("attribute[LANES]", "CURB"), ("attribute[LANES]", "BIKE")]),
    ],
)
def test_multivalue_encodings(encoding, fields):
    assert encode.attribute_fields({"SIZE": "L", "LANES": ["CURB", "BIKE"]}, encoding) == fields


@pytest.mark.parametrize(
    ("policy", "lat", "address", "sent"),
    [
        ("latlong", 41.5, "1 Main St", {"lat", "long"}),
        ("latlong", None, "1 Main St", {"address_string"}),
        ("address", 41.5, "1 Main St", {"address_string"}),
        ("address", 41.5, None, {"lat", "long"}),
        ("both", 41.5, "1 Main St", {"lat", "long", "address_string"}),
        ("both", None, "1 Main St", {"address_string"}),
    ],
)
def test_location_policy(policy, lat, address, sent):
    request = TicketRequest(service_code="X", description="d", lat=lat, lon=None if lat is None else -87.5, address_string=address)
    names = {k for k, _ in encode.submit_fields(request, location_policy=policy)}
    assert names & {"lat", "long", "address_string"} == sent


def test_a_ticket_without_location_is_rejected_before_sending():
    client = canned_client(201, "[]")
    with pytest.raises(SubmitRejected, match="location"):
        client.submit(TicketRequest(service_code="X", description="d"))
    assert client.session.get_adapter("http://canned/").sent == []


@pytest.mark.parametrize(
    ("text", "max_len"),
    [("short", 5), ("word " * 1000, 4000), ("x" * 5000, 4000), ("é" * 4001, 4000)],
)
def test_truncate_keeps_the_head_and_the_limit(text, max_len):
    out = encode.truncate(text)
    assert len(out) <= 4000 and len(out) <= max(len(text), 1)
    assert text.startswith(out.rstrip("…").rstrip())
    assert out.endswith("…") == (len(text) > 4000)


def test_connect_failures_are_retried_for_get_but_never_for_post():
    from urllib3.exceptions import MaxRetryError, NewConnectionError

    retry = build_session(retries=3).get_adapter("http://x/").max_retries
    refused = NewConnectionError(None, "connection refused")
    assert retry.increment("GET", "/services.json", error=refused).total == 2
    with pytest.raises(MaxRetryError):
        retry.increment("POST", "/requests.json", error=refused)


POTHOLE_DEFINITION = ServiceDefinition(service_code="POTHOLE", attributes=(
    Attribute(code="NOTE", datatype="text", variable=False),
    Attribute(code="SIZE", datatype="singlevaluelist", required=True, values=(AttributeValue(key="S"), AttributeValue(key="L"))),
    Attribute(code="LANES", datatype="multivaluelist", values=(AttributeValue(key="CURB"), AttributeValue(key="BIKE"))),
    Attribute(code="DEPTH", datatype="number"),
    Attribute(code="SEEN", datatype="datetime"),
    Attribute(code="SPOT", datatype="string"),
))


@pytest.mark.parametrize(
    ("values", "sent", "problems"),
    [
        ({"SIZE": "S"}, {"SIZE": "S"}, []),
        ({"SIZE": "S", "NOTE": "x", "OTHER": "y"}, {"SIZE": "S"}, []),
        ({}, {}, ["SIZE: required"]),
        ({"SIZE": "XL"}, {"SIZE": "XL"}, ["SIZE: 'XL' is not one of ['L', 'S']"]),
        ({"SIZE": "S", "LANES": ["CURB", "SKY"]}, {"SIZE": "S", "LANES": ["CURB", "SKY"]}, ["LANES: 'SKY' is not one of ['BIKE', 'CURB']"]),
        ({"SIZE": "S", "DEPTH": "deep"}, {"SIZE": "S", "DEPTH": "deep"}, ["DEPTH: 'deep' is not a number"]),
        ({"SIZE": "S", "SEEN": "2024-05-01T10:00:00"}, {"SIZE": "S", "SEEN": "2024-05-01T10:00:00"}, ["SEEN: datetime needs a timezone"]),
        ({"SIZE": "S", "SPOT": "a\nb"}, {"SIZE": "S", "SPOT": "a\nb"}, ["SPOT: a string attribute is one line"]),
    ],
)
def test_attributes_are_checked_against_the_definition(values, sent, problems):
    assert check_attributes(POTHOLE_DEFINITION, values) == (sent, problems)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("2026-11-22T05:03:43.753076+02:00", datetime(2026, 11, 22, 3, 3, 43, 753076, tzinfo=UTC)),
        ("2010-01-01T00:00:00Z", datetime(2010, 1, 1, tzinfo=UTC)),
        ("2014-07-12T10:58:43-05:00", datetime(2014, 7, 12, 15, 58, 43, tzinfo=UTC)),
        ("2012-03-14 23:17:08.23", None),  # no offset: the instant is unknown
        ("", None),
        ("not a date", None),
    ],
)
def test_datetimes_are_parsed_to_aware_utc(raw, expected):
    assert parse.moment(raw) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [(True, True), ("true", True), ("TRUE", True), ("1", True), (False, False), ("false", False), ("", False), (None, False)],
)
def test_booleans_from_strings(raw, expected):
    assert parse.boolean(raw) is expected


@pytest.mark.parametrize(
    ("body", "count"),
    [
        (b'<?xml version="1.0"?><services/>', 0),
        (b"<services><service><service_code>1</service_code><service_name>a</service_name></service></services>", 1),
        (b"<services><service><service_code>1</service_code></service><service><service_code>2</service_code></service></services>", 2),
    ],
)
def test_xml_lists_stay_lists_for_zero_one_and_many_children(body, count):
    _, value = decode.decode_xml(body)
    assert isinstance(value, list) and len(value) == count


def test_old_definitions_without_the_attributes_wrapper():
    body = (b"<service_definition><service_code>A</service_code>"
            b"<attribute><code>Q2</code><order>2</order><datatype>string</datatype><variable>true</variable></attribute>"
            b"<attribute><code>Q1</code><order>1</order><datatype>singlevaluelist</datatype><required>true</required>"
            b"<values><value><key>y</key><name>Yes</name></value></values></attribute></service_definition>")
    definition = parse.service_definition(decode.decode_xml(body)[1], "A")
    assert [a.code for a in definition.attributes] == ["Q1", "Q2"]
    assert definition.attributes[0].required and [v.key for v in definition.attributes[0].values] == ["y"]


def test_bloomington_integer_service_codes_become_strings(shared_data):
    client = canned_client(200, (shared_data / "open311/bloomington/services.json").read_bytes())
    services = client.services()
    assert len(services) == 53
    assert all(isinstance(s.service_code, str) for s in services)
    graffiti = next(s for s in services if s.service_name == "Graffiti")
    assert graffiti.service_code == "37" and graffiti.metadata is True and graffiti.keywords == ()


def test_chicago_requests_sample(shared_data):
    client = canned_client(200, (shared_data / "open311/chicago/requests_2014-07-12_sample.json").read_bytes())
    found = client.requests(service_codes=["4ffa9cad6018277d4000007b"])
    assert [r.service_request_id for r in found] == ["14-01100669", "14-01100627"]
    assert found[0].requested_datetime == datetime(2014, 7, 12, 15, 58, 43, tzinfo=UTC)
    assert found[1].status_notes == "Locked" and found[0].lon < -87


@pytest.mark.parametrize(("name", "count"), [("requests_single.xml", 1), ("requests_many.xml", 2)])
def test_toronto_requests_xml(shared_data, name, count):
    client = canned_client(200, (shared_data / "open311/toronto" / name).read_bytes(), "text/xml", format="xml")
    found = client.requests()
    assert len(found) == count
    first = found[0]
    assert first.service_code == "CSROWR-12" and first.description is None and first.updated_datetime is None
    assert first.requested_datetime == datetime(2018, 7, 30, 4, 1, tzinfo=UTC)


def test_giessen_services_xml_keeps_leading_zeros(shared_data):
    client = canned_client(200, (shared_data / "open311/services_giessen_de.xml").read_bytes(), "text/xml", format="xml")
    services = client.services()
    assert [s.service_code for s in services][:2] == ["015", "010"]
    assert services[2].service_name == "Laterne defekt"
    assert next(s for s in services if s.service_code == "011").keywords == ("litter", "trash", "garbage")


def test_truncated_san_francisco_xml_is_a_clear_parse_error(shared_data):
    body = (shared_data / "open311/sanfrancisco/open311dashboard_test_requests_2012.xml").read_bytes()
    client = canned_client(200, body, "text/xml", format="xml")
    with pytest.raises(ResponseParseError, match="malformed XML") as info:
        client.requests()
    assert info.value.status == 200


def test_issue_reporting_requests_root_and_string_values():
    body = ('<?xml version="1.0" encoding="utf-8"?><requests><request><service_request_id>zc14lm82</service_request_id>'
            "<status>open</status><description>Big pothole</description><address></address>"
            "<requested_datetime>2026-11-22T05:03:43.753076+02:00</requested_datetime></request></requests>")
    (found,) = canned_client(200, body, "application/xml", format="xml").requests(service_request_ids=["zc14lm82"])
    assert found.service_request_id == "zc14lm82" and found.address is None and found.lat is None
    assert found.requested_datetime.tzinfo is not None


@pytest.mark.parametrize(
    ("body", "content_type", "message"),
    [
        ('[{"code":403,"description":"api_key missing or invalid"}]', "application/json", "api_key missing or invalid"),
        ("<errors><error><code>404</code><description>Resource not found</description></error></errors>", "text/xml", "Resource not found"),
        ('{"code":400,"detail":{"non_field_errors":["Service code NOPE is invalid"]}}', "application/json", "Service code NOPE is invalid"),
        ('{"code":400,"detail":["Invalid API key"]}', "application/json", "Invalid API key"),
        ("<requests><code>400</code><detail><non_field_errors><request>Service code NOPE is invalid</request></non_field_errors></detail></requests>",
         "application/xml", "Service code NOPE is invalid"),
        ("<!DOCTYPE html><html><head><title>ValidationError at /api/georeport/v2/requests.json</title></head><body>x</body></html>",
         "text/html", "ValidationError at /api/georeport/v2/requests.json"),
        ("Bad extension. We support .xml and .json", "text/plain", "Bad extension. We support .xml and .json"),
    ],
)
def test_server_words_are_read_from_any_error_shape(body, content_type, message):
    assert parse_error_body(body.encode(), content_type)[0] == message


@pytest.mark.parametrize(
    ("status", "error"),
    [(400, BadRequest), (403, Forbidden), (404, NotFound), (429, RateLimited), (500, ServerError), (502, ServerError)],
)
def test_get_failures_are_typed_and_keep_status_and_words(status, error):
    client = canned_client(status, f'[{{"code":{status},"description":"nope {status}"}}]', retries=0)
    with pytest.raises(error) as info:
        client.services()
    assert info.value.status == status
    assert info.value.server_message == f"nope {status}"
    assert info.value.errors == ((str(status), f"nope {status}"),)


@pytest.mark.parametrize(("status", "error"), [(400, SubmitRejected), (403, SubmitRejected), (404, SubmitRejected), (500, SubmitAmbiguous), (503, SubmitAmbiguous)])
def test_submit_failures_are_definite_for_4xx_and_ambiguous_for_5xx(status, error):
    with pytest.raises(error) as info:
        canned_client(status, '{"code":%d,"detail":"no"}' % status).submit(pothole())
    assert info.value.status == status and info.value.server_message == "no"


@pytest.mark.parametrize("body", ['"just a string"', "{not json", "42"])
def test_unexpected_get_bodies_are_parse_errors(body):
    with pytest.raises(ResponseParseError):
        canned_client(200, body).services()


def test_an_unreadable_success_on_post_is_ambiguous():
    with pytest.raises(SubmitAmbiguous):
        canned_client(201, "<html>oops").submit(pothole())


def test_api_key_never_leaks(sandbox, caplog):
    caplog.set_level(logging.DEBUG)
    echo = canned_client(400, f'{{"code":400,"detail":["Invalid API key {KEY}"]}}')
    wrong = Open311Client(sandbox.url, api_key=KEY + "-old")
    dead = Open311Client("http://127.0.0.1:9/open311/v2/", api_key=KEY, timeout=(0.5, 0.5))
    errors = []
    for client in (echo, wrong, dead):
        with pytest.raises((SubmitRejected, SubmitAmbiguous)) as info:
            client.submit(pothole())
        errors.append(info.value)
    assert errors[1].status == 403
    for exc in errors:
        assert KEY not in f"{exc} {exc!r} {exc.server_message} {exc.__cause__!r}"
    assert "***" in str(errors[0])
    assert KEY not in repr(echo) and KEY not in caplog.text
    # The key is in the form body of the POST, and nowhere in its URL.
    sent = echo.session.get_adapter("http://canned/").sent[0]
    assert KEY not in sent.url and f"api_key={KEY}" in sent.body


@pytest.mark.parametrize("fmt", ["json", "xml"])
def test_round_trip_against_the_sandbox(sandbox, fmt):
    client = Open311Client(sandbox.url, api_key=KEY, format=fmt)
    services = client.services()
    assert {"POTHOLE", "STREETLIGHT", "GRAFFITI"} <= {s.service_code for s in services}
    definition = client.service_definition("POTHOLE")
    assert {a.datatype for a in definition.attributes} == {
        "string", "number", "datetime", "text", "singlevaluelist", "multivaluelist"}
    assert any(not a.variable for a in definition.attributes)
    description = "Très profond\nnid-de-poule <b>près</b> de l'arrêt & du café — ref s311-abc"
    result = client.submit(pothole(description=description))
    assert result.service_request_id and result.token is None
    one = client.request(result.service_request_id)
    assert one.description == description and one.status == "open"
    assert one.requested_datetime.tzinfo == UTC
    listed = client.requests(service_codes=["POTHOLE"], status=["open"])
    assert result.service_request_id in {r.service_request_id for r in listed}
    assert client.request("999999999") is None
    with pytest.raises(NotFound):
        client.service_definition("NO_SUCH")
    discovery = client.discovery(sandbox.url + f"discovery.{fmt}")
    assert discovery.endpoints[0].url.startswith("http://127.0.0.1")


@pytest.mark.parametrize("encoding", ["brackets", "repeat"])
def test_sandbox_stores_multivalue_attributes_in_either_encoding(sandbox, encoding):
    client = Open311Client(sandbox.url, api_key=KEY, multivalue_encoding=encoding)
    result = client.submit(pothole())
    (row,) = sandbox.store.by_ids([result.service_request_id])
    assert json.loads(row["attributes"]) == {"SIZE": "L", "LANES": ["CURB", "BIKE"]}


def test_over_long_descriptions_are_truncated_before_sending(sandbox):
    client = Open311Client(sandbox.url, api_key=KEY)
    long = TicketRequest.model_construct(**pothole().model_dump() | {"description": "ref s311-x " + "word " * 1200})
    result = client.submit(long)
    stored = client.request(result.service_request_id).description
    assert len(stored) <= 4000 and stored.startswith("ref s311-x word")


def test_tokens_resolve_after_polling(sandbox):
    client = Open311Client(sandbox.url, api_key=KEY)
    result = client.submit(TicketRequest(service_code="ABANDONED_VEHICLE", description="no plates", address_string="5 Elm St"))
    assert result.service_request_id is None and result.token
    assert client.token(result.token) is None
    assert client.token(result.token) == client.requests(service_codes=["ABANDONED_VEHICLE"])[0].service_request_id
    with pytest.raises(NotFound):
        client.token("unknown-token")


def test_blackbox_services_return_neither_id_nor_token(sandbox):
    sandbox.set_service_type("NOISE", "blackbox")
    result = Open311Client(sandbox.url, api_key=KEY).submit(TicketRequest(service_code="NOISE", description="party", lat=41.9, lon=-87.6))
    assert result.service_request_id is None and result.token is None and result.service_notice
    assert sandbox.requests_filed("NOISE") == 1


def test_long_ranges_are_queried_in_90_day_windows(sandbox):
    client = Open311Client(sandbox.url, api_key=KEY)
    filed = client.submit(pothole()).service_request_id
    now = datetime.now(UTC)
    found = client.requests(start=now - timedelta(days=200), end=now + timedelta(minutes=1))
    assert sandbox.hits("GET", "requests") == 3
    assert [r.service_request_id for r in found] == [filed]


def test_lost_reply_is_ambiguous_while_the_server_committed(sandbox):
    client = Open311Client(sandbox.url, api_key=KEY)
    sandbox.faults.lose_next_post_replies = 1
    with pytest.raises(SubmitAmbiguous):
        client.submit(pothole(description="ref s311-lost"))
    assert sandbox.requests_filed(description_contains="s311-lost") == 1
    assert sandbox.hits("POST", "requests") == 1  # never retried


def test_slow_reply_after_commit_is_ambiguous(sandbox):
    client = Open311Client(sandbox.url, api_key=KEY, timeout=(1, 0.3))
    sandbox.faults.slow_s = 0.6
    with pytest.raises(SubmitAmbiguous):
        client.submit(pothole(description="ref s311-slow"))
    sandbox.faults.slow_s = 0
    assert sandbox.requests_filed(description_contains="s311-slow") == 1


def test_post_is_never_retried_on_5xx_but_get_is(sandbox):
    client = Open311Client(sandbox.url, api_key=KEY, backoff_factor=0.01)
    sandbox.faults.fail_next_5xx = 1
    with pytest.raises(SubmitAmbiguous) as info:
        client.submit(pothole())
    assert info.value.status == 503 and sandbox.hits("POST", "requests") == 1
    sandbox.faults.fail_next_5xx = 2
    assert client.services()
    assert sandbox.hits("GET", "services") == 3
    sandbox.faults.fail_next_5xx = 10
    with pytest.raises(ServerError):
        client.services()


def test_429_on_get_honours_retry_after(sandbox, monkeypatch):
    import urllib3.util.retry

    slept: list[float] = []
    monkeypatch.setattr(urllib3.util.retry.time, "sleep", slept.append)
    client = Open311Client(sandbox.url, api_key=KEY, backoff_factor=0.01)
    sandbox.faults.retry_after_s = 2
    sandbox.faults.next_429 = 1
    assert client.services()
    assert sandbox.hits("GET", "services") == 2 and slept == [2]
    sandbox.faults.next_429 = 10
    with pytest.raises(RateLimited) as info:
        client.services()
    assert info.value.retry_after_s == 2


def test_html_error_pages_become_typed_errors(sandbox):
    sandbox.faults.html_errors = True
    with pytest.raises(NotFound) as info:
        Open311Client(sandbox.url).service_definition("NO_SUCH")
    assert "NO_SUCH" in info.value.server_message


def test_real_world_quirks_are_tolerated():
    quirks = Quirks(string_booleans=True, requests_root=True, no_charset=True, local_offsets=True)
    with SandboxServer(api_keys=[KEY], quirks=quirks) as server:
        for fmt in ("json", "xml"):
            client = Open311Client(server.url, api_key=KEY, format=fmt)
            assert next(s for s in client.services() if s.service_code == "POTHOLE").metadata is True
            assert client.service_definition("POTHOLE").attributes[1].required is True
            filed = client.submit(pothole()).service_request_id
            (found,) = client.requests(service_request_ids=[filed])
            assert found.requested_datetime.tzinfo == UTC


def test_poll_token_backs_off_until_the_id_appears(sandbox):
    sandbox.quirks.token_polls = 3
    client = Open311Client(sandbox.url, api_key=KEY)
    token = client.submit(TicketRequest(service_code="ABANDONED_VEHICLE", description="no plates", address_string="5 Elm St")).token
    waits = []
    found = client.poll_token(token, first_wait_s=1, max_wait_s=3, sleep=waits.append)
    assert found and len(waits) == 3
    assert all(0.5 * w <= got <= w for got, w in zip(waits, [1, 2, 3]))  # jittered, doubling, capped


def test_poll_token_gives_up_at_the_deadline(sandbox):
    sandbox.quirks.token_polls = 100
    client = Open311Client(sandbox.url, api_key=KEY)
    token = client.submit(TicketRequest(service_code="ABANDONED_VEHICLE", description="no plates", address_string="5 Elm St")).token
    now = [0.0]
    found = client.poll_token(token, deadline_s=10, first_wait_s=4, sleep=lambda s: now.__setitem__(0, now[0] + s),
                              monotonic=lambda: now[0])
    assert found is None and now[0] <= 10


def test_change_feed_and_extensions_parameters_are_sent():
    canned = Canned(200, b"[]")
    client = Open311Client("https://311.example.gov/v2", session=requests.Session())
    client.session.mount("https://", canned)
    client.requests(updated_after=datetime(2026, 5, 1, tzinfo=UTC), updated_before=datetime(2026, 5, 2, tzinfo=UTC), extensions=True)
    sent = canned.sent[0].url
    assert "updated_after=2026-05-01T00%3A00%3A00Z" in sent and "updated_before=2026-05-02T00%3A00%3A00Z" in sent
    assert "extensions=true" in sent
