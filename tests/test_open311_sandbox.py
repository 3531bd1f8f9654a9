"""The sandbox server speaks strict GeoReport v2 over real loopback HTTP (OPEN311.md §1.8)."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from xml.etree import ElementTree as ET

import pytest
import requests
import yaml

from social311.integrations.ticketing.sandbox import SandboxServer, default_catalog, load_catalog

KEY = "sandbox-test-key"
POT = {"service_code": "POTHOLE", "lat": "41.88", "long": "-87.63", "attribute[SIZE]": "M", "description": "hole"}


@pytest.fixture
def sandbox():
    with SandboxServer(api_keys=[KEY]) as server:
        yield server


def post(server, fields, fmt="json", key=KEY):
    data = dict(fields, **({"api_key": key} if key is not None else {}))
    return requests.post(server.url + f"requests.{fmt}", data=data, timeout=5)


def get(server, resource, **params):
    return requests.get(server.url + resource, params=params, timeout=5)


def errors_of(response):
    if response.headers["Content-Type"].startswith("text/xml"):
        root = ET.fromstring(response.content)
        assert root.tag == "errors"
        return [(int(e.findtext("code")), e.findtext("description")) for e in root.iter("error")]
    return [(e["code"], e["description"]) for e in response.json()]


def test_default_catalog_is_a_realistic_city():
    services = default_catalog()
    assert 8 <= len(services) <= 12
    names = " ".join(s.service_name.lower() for s in services)
    for word in ("pothole", "light", "litter", "garbage", "flood", "graffiti", "tree", "sidewalk", "noise", "vehicle", "sign"):
        assert word in names
    assert all(s.description.endswith(".") and "," in s.keywords and s.group for s in services)
    assert sum(s.type == "realtime" for s in services) > len(services) / 2
    (rich,) = [s for s in services if s.metadata]
    assert {a.datatype for a in rich.attributes} == {"string", "number", "datetime", "text", "singlevaluelist", "multivaluelist"}
    assert any(not a.variable for a in rich.attributes)


@pytest.mark.parametrize(
    ("resource", "ctype"),
    [("services.json", "application/json; charset=utf-8"), ("services.xml", "text/xml; charset=utf-8"),
     ("services/POTHOLE.xml", "text/xml; charset=utf-8"), ("discovery.json", "application/json; charset=utf-8"),
     ("requests.xml", "text/xml; charset=utf-8")],
)
def test_content_types_and_xml_declaration(sandbox, resource, ctype):
    response = get(sandbox, resource)
    assert response.status_code == 200 and response.headers["Content-Type"] == ctype
    if resource.endswith(".xml"):
        assert response.content.startswith(b'<?xml version="1.0" encoding="utf-8"?>')


def test_services_json_is_spark_shaped(sandbox):
    services = get(sandbox, "services.json").json()
    assert isinstance(services, list)
    assert all(isinstance(s["service_code"], str) and isinstance(s["metadata"], bool) for s in services)
    assert {s["type"] for s in services} <= {"realtime", "batch", "blackbox"}
    definition = get(sandbox, "services/POTHOLE.json").json()
    orders = [a["order"] for a in definition["attributes"]]
    assert orders == sorted(orders) and all(a["values"] for a in definition["attributes"] if a["datatype"].endswith("list"))


def test_service_definition_xml_has_the_attributes_wrapper(sandbox):
    root = ET.fromstring(get(sandbox, "services/POTHOLE.xml").content)
    assert root.tag == "service_definition"
    values = root.findall("./attributes/attribute/values/value/key")
    assert {"S", "M", "L"} <= {v.text for v in values}


@pytest.mark.parametrize("resource", ["services.csv", "services", "nothing.json", "services/NOPE.json", "requests/1.json", "tokens/x.xml"])
def test_unknown_resources_are_404_with_errors(sandbox, resource):
    response = get(sandbox, resource)
    assert response.status_code == 404
    assert errors_of(response)[0][0] == 404


@pytest.mark.parametrize(
    ("fields", "key", "status", "words"),
    [
        (POT, None, 403, "api_key"),
        (POT, "wrong", 403, "api_key"),
        (dict(POT, service_code="NOPE"), KEY, 404, "NOPE"),
        ({k: v for k, v in POT.items() if k != "service_code"}, KEY, 400, "service_code"),
        ({k: v for k, v in POT.items() if k != "long"}, KEY, 400, "together"),
        ({"service_code": "POTHOLE", "attribute[SIZE]": "M"}, KEY, 400, "location"),
        ({k: v for k, v in POT.items() if k != "attribute[SIZE]"}, KEY, 400, "SIZE is required"),
        (dict(POT, **{"attribute[SIZE]": "XXL"}), KEY, 400, "XXL"),
        (dict(POT, **{"attribute[DEPTH_CM]": "deep"}), KEY, 400, "number"),
        (dict(POT, **{"attribute[SEEN_AT]": "2024-05-01T10:00:00"}), KEY, 400, "timezone"),
        (dict(POT, **{"attribute[LANDMARK]": "two\nlines"}), KEY, 400, "line"),
        (dict(POT, **{"attribute[LANES][]": "SKY"}), KEY, 400, "SKY"),
        (dict(POT, description="x" * 4001), KEY, 400, "4000"),
        (dict(POT, jurisdiction_id="elsewhere.gov"), KEY, 404, "jurisdiction"),
    ],
)
@pytest.mark.parametrize("fmt", ["json", "xml"])
def test_post_validation(fields, key, status, words, fmt):
    with SandboxServer(api_keys=[KEY], jurisdiction_id="city.example") as server:
        response = post(server, fields, fmt, key)
        assert response.status_code == status
        assert any(words in d for _, d in errors_of(response))
        assert server.requests_filed() == 0


def test_post_accepts_both_multivalue_encodings_and_ignores_informational_attributes(sandbox):
    brackets = post(sandbox, dict(POT, **{"attribute[LANES][]": ["CURB", "BIKE"], "attribute[SAFETY]": "ignored"}))
    repeated = post(sandbox, dict(POT, **{"attribute[LANES]": ["CURB", "BIKE"]}))
    assert brackets.status_code == repeated.status_code == 201
    ids = [r.json()[0]["service_request_id"] for r in (brackets, repeated)]
    rows = sandbox.store.by_ids(ids)
    assert [json.loads(r["attributes"]) for r in rows] == [{"SIZE": "M", "LANES": ["CURB", "BIKE"]}] * 2


def test_post_answers_with_id_or_token_never_both(sandbox):
    realtime = post(sandbox, POT).json()
    assert realtime[0]["service_request_id"] and "token" not in realtime[0]
    batch = post(sandbox, {"service_code": "ABANDONED_VEHICLE", "address_string": "5 Elm St"}, "xml")
    item = ET.fromstring(batch.content).find("request")
    assert item.findtext("token") and item.find("service_request_id") is None
    token = item.findtext("token")
    first, second = (get(sandbox, f"tokens/{token}.json").json()[0] for _ in range(2))
    assert first["service_request_id"] is None and second["service_request_id"] and second["token"] == token


def test_description_is_stored_verbatim(sandbox):
    text = "Ünïcödé ✓ <tag> & \"quotes\"\r\nsecond line  [ref:s311-1]"
    request_id = post(sandbox, dict(POT, description=text)).json()[0]["service_request_id"]
    for fmt in ("json", "xml"):
        response = get(sandbox, f"requests/{request_id}.{fmt}")
        if fmt == "json":
            (item,) = response.json()
            assert item["description"] == text
        else:
            (item,) = ET.fromstring(response.content).findall("request")
            assert item.findtext("description").replace("\n", "\r\n") == text  # XML normalises CRLF


def test_get_requests_filters(sandbox):
    ids = [post(sandbox, POT).json()[0]["service_request_id"] for _ in range(2)]
    light = post(sandbox, {"service_code": "STREETLIGHT", "address_string": "Elm & 5th"}).json()[0]["service_request_id"]
    sandbox.set_status(ids[0], "closed", "Repaired")
    listed = lambda **p: [r["service_request_id"] for r in get(sandbox, "requests.json", **p).json()]  # noqa: E731
    assert set(listed()) == {*ids, light}
    assert set(listed(service_code="POTHOLE,STREETLIGHT")) == {*ids, light}
    assert set(listed(service_code="STREETLIGHT")) == {light}
    assert set(listed(status="closed")) == {ids[0]}
    assert set(listed(status="open,closed", service_code="POTHOLE")) == set(ids)
    # The id list overrides every other filter; empty arguments count as absent.
    assert listed(service_request_id=ids[0], service_code="STREETLIGHT", status="open") == [ids[0]]
    assert set(listed(service_code="", status="")) == {*ids, light}
    past = datetime.now(timezone.utc) - timedelta(days=10)
    assert listed(start_date=(past - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ"), end_date=past.strftime("%Y-%m-%dT%H:%M:%SZ")) == []
    assert listed(page=2, page_size=2) == [ids[0]]


@pytest.mark.parametrize(
    "params",
    [
        {"start_date": "2024-01-01T00:00:00"},
        {"start_date": "yesterday"},
        {"start_date": "2024-01-01T00:00:00Z", "end_date": "2024-06-01T00:00:00Z"},
        {"start_date": "2024-02-01T00:00:00Z", "end_date": "2024-01-01T00:00:00Z"},
        {"status": "pending"},
        {"page": "0"},
    ],
)
def test_get_requests_rejects_bad_filters(sandbox, params):
    response = get(sandbox, "requests.json", **params)
    assert response.status_code == 400 and errors_of(response)


def test_requests_by_id_is_a_one_element_list(sandbox):
    request_id = post(sandbox, POT).json()[0]["service_request_id"]
    assert [r["service_request_id"] for r in get(sandbox, f"requests/{request_id}.json").json()] == [request_id]
    assert len(ET.fromstring(get(sandbox, f"requests/{request_id}.xml").content).findall("request")) == 1


def test_other_methods_are_refused(sandbox):
    response = requests.put(sandbox.url + "requests.json", data=POT, timeout=5)
    assert response.status_code == 405 and errors_of(response)[0][0] == 405


def test_requests_survive_a_restart(tmp_path):
    db = tmp_path / "sandbox.sqlite"
    with SandboxServer(api_keys=[KEY], db_path=db) as first:
        request_id = post(first, POT).json()[0]["service_request_id"]
    with SandboxServer(api_keys=[KEY], db_path=db) as second:
        assert get(second, f"requests/{request_id}.json").json()[0]["description"] == "hole"
        assert post(second, POT).json()[0]["service_request_id"] != request_id
        assert second.requests_filed() == 2


@pytest.mark.parametrize("suffix", [".json", ".yaml"])
def test_catalog_loads_from_a_file(tmp_path, suffix):
    services = [{"service_code": "BINS", "service_name": "Bins", "description": "Full bins.", "keywords": "bin, trash",
                 "group": "Sanitation", "type": "batch"}]
    path = tmp_path / f"catalog{suffix}"
    path.write_text(json.dumps(services) if suffix == ".json" else yaml.safe_dump({"services": services}))
    assert [s.service_code for s in load_catalog(path)] == ["BINS"]
    with SandboxServer(api_keys=[KEY], catalog=path) as server:
        assert get(server, "services.json").json() == [dict(services[0], metadata=False)]


def test_catalog_files_are_validated(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps([{"service_code": "A", "service_name": "A", "description": "a",
                                 "attributes": [{"code": "L", "datatype": "singlevaluelist", "description": "?", "order": 1}]}]))
    with pytest.raises(ValueError, match="values"):
        load_catalog(path)


def test_faults_429_5xx_and_html(sandbox):
    sandbox.faults.next_429 = 1
    limited = get(sandbox, "services.json")
    assert limited.status_code == 429 and limited.headers["Retry-After"] == "1"
    sandbox.faults.fail_next_5xx = 1
    assert post(sandbox, POT).status_code == 503
    assert sandbox.requests_filed() == 0  # refused before any work
    sandbox.faults.html_errors = True
    page = get(sandbox, "services/NOPE.json")
    assert page.status_code == 404 and page.headers["Content-Type"].startswith("text/html") and b"NOPE" in page.content


def test_lost_reply_commits_then_drops_the_connection(sandbox):
    sandbox.faults.lose_next_post_replies = 1
    with pytest.raises(requests.ConnectionError):
        post(sandbox, dict(POT, description="ref s311-lost"))
    assert sandbox.requests_filed(description_contains="s311-lost") == 1
    assert post(sandbox, POT).status_code == 201  # the next reply arrives


def test_many_concurrent_posts_are_each_filed_once(sandbox):
    def file(i: int) -> str:
        with requests.Session() as session:
            response = session.post(sandbox.url + "requests.json", data=dict(POT, api_key=KEY, description=f"n{i}"), timeout=10)
            return response.json()[0]["service_request_id"]

    with ThreadPoolExecutor(max_workers=8) as pool:
        ids = list(pool.map(file, range(120)))
    assert len(set(ids)) == 120 and sandbox.requests_filed() == 120


def test_run_sandbox_prints_its_url_and_stops_on_sigterm(tmp_path):
    import signal
    import subprocess
    import sys

    code = "from social311.integrations.ticketing.sandbox import run_sandbox; run_sandbox(0, sys.argv[1], ['k'])"
    proc = subprocess.Popen([sys.executable, "-c", "import sys; " + code, str(tmp_path / "s.sqlite")],
                            stdout=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        url = line.split()[3]
        assert url.startswith("http://127.0.0.1:") and url.endswith("/open311/v2/")
        assert requests.get(url + "services.json", timeout=5).status_code == 200
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()


def test_run_sandbox_refuses_unknown_quirk_modes(tmp_path):
    from social311.integrations.ticketing.sandbox import run_sandbox

    with pytest.raises(ValueError, match="issue_reporting"):
        run_sandbox(0, str(tmp_path / "s.sqlite"), ["k"], quirk_modes=["no_such_quirk"])
