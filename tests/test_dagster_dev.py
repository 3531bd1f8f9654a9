"""`dagster dev` from workspace.yaml serves the whole asset graph with its checks."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from conftest import REPO

pytestmark = pytest.mark.slow

QUERY = "{ assetNodes { assetKey { path } groupName description assetChecksOrError { ... on AssetChecks { checks { name blocking } } } } }"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def graphql(port: int) -> dict:
    request = urllib.request.Request(f"http://127.0.0.1:{port}/graphql", data=json.dumps({"query": QUERY}).encode(),
                                     headers={"content-type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as reply:
        return json.load(reply)["data"]


def test_dagster_dev_shows_every_asset_with_group_description_and_checks(tmp_path):
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    port = free_port()
    env = {**os.environ, "DAGSTER_HOME": str(home), "SOCIAL311_CONFIG": str(REPO / "demo" / "city.yaml")}
    dagster = Path(sys.executable).with_name("dagster")
    # SIGINT back to default in the child: Dagster maps SIGTERM to SIGINT and stops cleanly on it.
    proc = subprocess.Popen([str(dagster), "dev", "-w", "workspace.yaml", "-h", "127.0.0.1", "-p", str(port)],
                            cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        deadline = time.monotonic() + 120
        data = None
        while time.monotonic() < deadline and data is None:
            time.sleep(2)
            try:
                data = graphql(port)
            except OSError:
                continue
        assert data is not None, "dagster dev did not answer within 120 s"
        nodes = data["assetNodes"]
        assert len(nodes) >= 16
        for node in nodes:
            name = "/".join(node["assetKey"]["path"])
            assert node["groupName"] and node["groupName"] != "default", name
            assert node["description"], name
            assert node["assetChecksOrError"]["checks"], f"{name} has no checks"
        incidents = next(n for n in nodes if n["assetKey"]["path"] == ["ops", "incidents"])
        assert any(c["blocking"] for c in incidents["assetChecksOrError"]["checks"])
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
