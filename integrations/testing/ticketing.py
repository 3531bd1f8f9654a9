"""A reusable contract test suite for ticketing plugins (like the Singer SDK's tap tests).

Subclass :class:`TicketingContract` in a test module, name the subclass ``Test…`` and implement
:meth:`~TicketingContract.make_plugin`; pytest then runs every ``test_*`` method against the
plugin. The plugin must talk to a test system (a sandbox), never a city's production 311::

    class TestMyTicketing(TicketingContract):
        def make_plugin(self):
            return MyTicketing(MyConfig(endpoint=SANDBOX_URL), instance_name="t", api_key="k")
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone

import pytest

from social311.integrations.ticketing.base import SubmitRejected, TicketingPlugin
from social311.records import Service, SubmitResult, TicketRequest


class TicketingContract:
    """The behaviour every ticketing plugin promises; see the module docstring for use."""

    #: where sample tickets are placed (WGS84); override for a sandbox that checks its bbox.
    sample_location: tuple[float, float] = (41.8781, -87.6298)
    #: how many times to poll a batch token before giving up, and the pause between polls.
    token_polls: int = 10
    token_poll_interval_s: float = 0.2

    def make_plugin(self) -> TicketingPlugin:
        """Build the plugin under test, pointed at a test system."""
        raise NotImplementedError("subclasses return the plugin under test")

    def sample_request(self, services: list[Service], marker: str) -> TicketRequest:
        """A valid ticket carrying ``marker`` in its description.

        The default picks the first realtime service without extra attributes; override when a
        catalog has none or needs attributes.
        """
        plain = [s for s in services if not s.metadata and s.type == "realtime"]
        if not plain:
            pytest.skip("no realtime service without attributes; override sample_request")
        lat, lon = self.sample_location
        return TicketRequest(
            service_code=plain[0].service_code,
            description=f"Contract test ticket, please ignore. Ref {marker}. Ünïcödé kept: café ✓",
            lat=lat,
            lon=lon,
        )

    def wait_for_id(self, plugin: TicketingPlugin, result: SubmitResult) -> str:
        """The ticket's id, polling its batch token when the server gave one."""
        if result.service_request_id:
            return result.service_request_id
        assert result.token, "submit returned neither an id nor a token"
        for _ in range(self.token_polls):
            found = plugin.resolve_token(result.token)
            if found:
                return found
            time.sleep(self.token_poll_interval_s)
        pytest.fail(f"token was not resolved after {self.token_polls} polls")


    @pytest.fixture
    def plugin(self) -> Iterator[TicketingPlugin]:
        plugin = self.make_plugin()
        yield plugin
        close = getattr(plugin, "close", None)
        if callable(close):
            close()

    @pytest.fixture
    def filed(self, plugin: TicketingPlugin) -> tuple[TicketRequest, SubmitResult, str]:
        marker = f"s311-{uuid.uuid4().hex[:12]}"
        request = self.sample_request(plugin.services(), marker)
        result = plugin.submit(request)
        return request, result, marker


    def test_services_are_listed_with_string_codes(self, plugin: TicketingPlugin) -> None:
        services = plugin.services()
        assert services, "the catalog is empty"
        codes = [s.service_code for s in services]
        assert all(isinstance(c, str) and c for c in codes)
        assert len(codes) == len(set(codes)), "service codes repeat"

    def test_submit_returns_an_id_or_a_token(self, filed) -> None:
        _, result, _ = filed
        assert isinstance(result, SubmitResult)
        assert result.service_request_id or result.token

    def test_get_finds_the_ticket_with_its_description(self, plugin: TicketingPlugin, filed) -> None:
        request, result, marker = filed
        request_id = self.wait_for_id(plugin, result)
        found = plugin.get([request_id])
        assert [r.service_request_id for r in found] == [request_id]
        assert found[0].description == request.description
        assert marker in (found[0].description or "")
        assert found[0].service_code == request.service_code

    def test_find_by_service_and_time_window_includes_the_ticket(self, plugin: TicketingPlugin, filed) -> None:
        request, result, _ = filed
        request_id = self.wait_for_id(plugin, result)
        now = datetime.now(timezone.utc)
        found = plugin.find(service_codes=[request.service_code], start=now - timedelta(hours=1), end=now + timedelta(hours=1))
        assert request_id in {r.service_request_id for r in found}
        assert {r.service_code for r in found} == {request.service_code}

    def test_find_outside_the_window_excludes_the_ticket(self, plugin: TicketingPlugin, filed) -> None:
        request, result, _ = filed
        request_id = self.wait_for_id(plugin, result)
        long_ago = datetime.now(timezone.utc) - timedelta(days=30)
        found = plugin.find(service_codes=[request.service_code], start=long_ago - timedelta(days=1), end=long_ago)
        assert request_id not in {r.service_request_id for r in found}

    def test_unknown_ids_are_absent(self, plugin: TicketingPlugin) -> None:
        assert plugin.get([f"no-such-{uuid.uuid4().hex[:8]}"]) == []
        assert plugin.get([]) == []

    def test_unknown_service_is_rejected_definitely(self, plugin: TicketingPlugin) -> None:
        lat, lon = self.sample_location
        bogus = TicketRequest(service_code=f"NO_SUCH_{uuid.uuid4().hex[:6]}", description="contract test", lat=lat, lon=lon)
        with pytest.raises(SubmitRejected):
            plugin.submit(bogus)
