"""Shared fixtures: offline settings, the shared data folder, a demo city in a temp folder."""

import os
from pathlib import Path

import pytest

for _key, _value in {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "DO_NOT_TRACK": "1",
                     "DBT_SEND_ANONYMOUS_USAGE_STATS": "false", "GX_ANALYTICS_ENABLED": "false",
                     "TOKENIZERS_PARALLELISM": "false"}.items():
    os.environ.setdefault(_key, _value)

REPO = Path(__file__).resolve().parents[1]


def shared_data_dir() -> Path:
    """``../shared/data`` beside the repository, or SOCIAL311_SHARED_DATA."""
    return Path(os.environ.get("SOCIAL311_SHARED_DATA") or REPO.parent / "shared" / "data")


@pytest.fixture
def shared_data() -> Path:
    path = shared_data_dir()
    if not path.is_dir():
        pytest.skip(f"real public data not found at {path} (set SOCIAL311_SHARED_DATA)")
    return path


@pytest.fixture
def social(shared_data):
    """The recorded real API exchanges of the social platforms (``../shared/data/social``)."""
    path = shared_data / "social"
    if not path.is_dir():
        pytest.skip(f"recorded social exchanges not found at {path}")
    return path


@pytest.fixture(scope="session")
def postgis_url():
    """A throwaway PostGIS cluster on 127.0.0.1 for the whole session (skips without the binaries)."""
    from social311.integrations.testing.gis import PostGISCluster, postgis_binaries

    bindir, why = postgis_binaries()
    if bindir is None:
        pytest.skip(why)
    with PostGISCluster(bindir) as cluster:
        yield cluster.url


#: The api_key the loopback sandbox of the ticketing fixtures accepts.
OPEN311_TEST_KEY = "loopback-test-key"


@pytest.fixture
def sandbox():
    """A strict Open311 sandbox on 127.0.0.1 (in-memory), stopped after the test."""
    from social311.integrations.ticketing.sandbox import SandboxServer

    with SandboxServer(api_keys=(OPEN311_TEST_KEY,)) as server:
        yield server


@pytest.fixture
def plugin(sandbox):
    """The open311 ticketing plugin pointed at ``sandbox``."""
    from social311.integrations.ticketing.open311 import Open311Config, Open311Ticketing

    return Open311Ticketing(Open311Config(endpoint=sandbox.url, timeout_read_s=2), instance_name="city", api_key=OPEN311_TEST_KEY)
