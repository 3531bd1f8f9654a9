"""Every exchange recorded from the two real servers, replayed through the client.

The transcripts in ``../shared/data/open311/real-servers/`` hold what issue-reporting (6aika) and
open311-adapter (mySociety) answered on loopback. Each answer is served to the client byte for
byte: a success must parse into the typed model, a failure must become a typed error that keeps
the HTTP status (and the server's own words where the body was not an HTML page), and a POST
failure must be definite (4xx) or ambiguous (5xx), never mistaken for success. The recording
cut long bodies; a cut success must be a parse error (ambiguous on POST), never half a result.
"""

import json
import re
from pathlib import Path
from xml.etree import ElementTree

import pytest
import requests
from requests.adapters import BaseAdapter

from social311.integrations.ticketing.client import (
    Open311Client,
    Open311Error,
    ResponseParseError,
    SubmitAmbiguous,
    SubmitRejected,
)
from social311.records import Service, ServiceRequest, SubmitResult, TicketRequest

from conftest import shared_data_dir

TRANSCRIPTS = shared_data_dir() / "open311" / "real-servers"
_STATUS = re.compile(r"^HTTP/1\.[01] (\d{3})")
_HEADER = re.compile(r"^[A-Za-z][A-Za-z0-9-]*: ")


def exchanges(path: Path) -> list[dict]:
    """``### title`` blocks: the status line, headers, a blank line, the body."""
    out = []
    for block in re.split(r"^### ", path.read_text(encoding="utf-8"), flags=re.MULTILINE)[1:]:
        title, *lines = block.split("\n")
        status = int(_STATUS.match(lines[0]).group(1))
        headers, at = {}, 1
        # Some recordings keep only a few headers and no blank line before the body.
        while at < len(lines) and _HEADER.match(lines[at]):
            name, _, value = lines[at].partition(": ")
            headers[name] = value
            at += 1
        body = "\n".join(lines[at:]).strip()
        out.append({"title": title.strip(), "status": status, "content_type": headers.get("Content-Type", ""),
                    "body": body.encode("utf-8")})
    return out


def complete(body: bytes) -> bool:
    """Whether a recorded body is whole (the standard library's parsers as the judge)."""
    try:
        if body.lstrip().startswith(b"<"):
            ElementTree.fromstring(body)
        else:
            json.loads(body)
    except (ValueError, ElementTree.ParseError):
        return False
    return True


def cases():
    if not TRANSCRIPTS.is_dir():
        return [pytest.param(None, marks=pytest.mark.skip(reason=f"real-server transcripts not found at {TRANSCRIPTS}"))]
    found = []
    for path in sorted(TRANSCRIPTS.glob("*.txt")):
        for number, exchange in enumerate(exchanges(path), start=1):
            found.append(pytest.param(exchange, id=f"{path.stem}#{number}:{exchange['title'][:50]}"))
    return found


class Replay(BaseAdapter):
    def __init__(self, exchange):
        super().__init__()
        self.exchange = exchange

    def send(self, request, **kwargs):
        response = requests.Response()
        response.status_code, response._content = self.exchange["status"], self.exchange["body"]
        response.url, response.request = request.url, request
        response.headers["Content-Type"] = self.exchange["content_type"]
        return response

    def close(self):
        pass


def call(exchange):
    """The client call that produced the recorded answer."""
    title = exchange["title"].removeprefix("DEBUG=0: ")
    method, _, rest = title.partition(" ")
    resource = rest.split(" ")[0].split("?")[0]
    fmt = "xml" if resource.endswith(".xml") or "(xml)" in title else "json"
    session = requests.Session()
    session.mount("http://recorded/", Replay(exchange))
    client = Open311Client("http://recorded/v2", session=session, api_key="key", format=fmt)
    name = resource.rsplit(".", 1)[0]
    if method == "POST":
        return "submit", lambda: client.submit(TicketRequest(service_code="POTHOLE", description="replay", lat=60.17, lon=24.94))
    if name.startswith("services/"):
        return "definition", lambda: client.service_definition(name.split("/", 1)[1])
    if name.startswith("services"):
        return "services", client.services
    if name.startswith("requests/"):
        return "request", lambda: client.request(name.split("/", 1)[1])
    if name.startswith("requests"):
        return "requests", client.requests
    if name.startswith("tokens/"):
        return "token", lambda: client.token(name.split("/", 1)[1])
    if name.startswith("discovery"):
        return "discovery", lambda: client.discovery("http://recorded/v2/discovery.json")
    return "unsupported", None


@pytest.mark.parametrize("exchange", cases())
def test_recorded_answer_is_parsed_or_typed(exchange):
    kind, run = call(exchange)
    if kind == "unsupported" or exchange["title"].endswith("PUT requests.json"):
        pytest.skip("the client never makes this call")
    status = exchange["status"]
    if status < 400 and not complete(exchange["body"]):
        # The recording cut long bodies: a half answer must never pass for a whole one.
        with pytest.raises(SubmitAmbiguous if kind == "submit" else ResponseParseError) as info:
            run()
        assert info.value.status == status
        return
    if status < 400:
        result = run()
        expected = {"submit": SubmitResult, "services": list, "requests": list, "request": (ServiceRequest, type(None))}
        if kind in expected:
            assert isinstance(result, expected[kind])
        if kind in ("services", "requests"):
            assert all(isinstance(r, (Service, ServiceRequest)) for r in result)
        return
    if kind == "request" and status == 404:
        assert run() is None  # an unknown id is simply absent
        return
    error_type = (SubmitAmbiguous if status >= 500 else SubmitRejected) if kind == "submit" else Open311Error
    with pytest.raises(error_type) as info:
        run()
    assert info.value.status == status
    if not exchange["content_type"].startswith("text/html") and exchange["body"]:
        assert info.value.server_message, "the server's own words are kept"
