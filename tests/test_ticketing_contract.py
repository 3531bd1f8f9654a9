"""The ticketing contract run against Open311Ticketing and the sandbox over loopback HTTP."""

from __future__ import annotations

import pytest

from social311.config import PluginRef
from social311.integrations import registry
from social311.integrations.testing.ticketing import TicketingContract
from social311.integrations.ticketing.open311 import Open311Config, Open311Ticketing
from social311.integrations.ticketing.sandbox import SandboxServer
from social311.records import Service, TicketRequest

KEY = "contract-key"


@pytest.fixture(scope="module")
def sandbox():
    with SandboxServer(api_keys=[KEY]) as server:
        yield server


class _OnSandbox(TicketingContract):
    fmt = "json"

    @pytest.fixture(autouse=True)
    def _bind(self, sandbox):
        self.sandbox = sandbox

    def make_plugin(self) -> Open311Ticketing:
        config = Open311Config(endpoint=self.sandbox.url, format=self.fmt, timeout_read_s=10)
        return Open311Ticketing(config, instance_name="contract", api_key=KEY)


class TestOpen311OverJSON(_OnSandbox):
    fmt = "json"


class TestOpen311OverXML(_OnSandbox):
    fmt = "xml"


class TestOpen311BatchTokens(_OnSandbox):
    """A batch (token) service: the id appears only after the token is polled."""

    token_poll_interval_s = 0.01

    def sample_request(self, services: list[Service], marker: str) -> TicketRequest:
        batch = next(s for s in services if s.type == "batch")
        return TicketRequest(service_code=batch.service_code, description=f"Car with no plates, ref {marker}",
                             address_string="1200 W Madison St")


def test_plugin_is_built_through_its_entry_point(sandbox):
    ref = PluginRef(plugin="open311", name="city311", config={"endpoint": sandbox.url, "format": "xml"})
    plugin = registry.build("ticketing", ref, api_key=KEY)
    assert isinstance(plugin, Open311Ticketing)
    assert plugin.instance_name == "city311"
    assert KEY not in repr(plugin)
    assert any(s.service_code == "POTHOLE" for s in plugin.services())


@pytest.mark.parametrize("bad", [{"endpoint": "x", "format": "csv"}, {"endpoint": "x", "api_key": "k"}, {}])
def test_config_rejects_bad_settings_and_inline_secrets(bad):
    with pytest.raises(ValueError):
        Open311Config.model_validate(bad)
