"""Contract test suites any plugin can run (Singer SDK style): subclass, provide a factory.

Example, in a plugin package's tests::

    from social311.integrations.testing import SourceContract

    class TestMastodonContract(SourceContract):
        def make_source(self, tmp_path):
            return MastodonSource(MastodonConfig(...), instance_name="mastodon")

The suites import pytest, so import this package only from tests.
"""

from social311.integrations.testing.gis import GISContract
from social311.integrations.testing.sources import SourceContract
from social311.integrations.testing.ticketing import TicketingContract

__all__ = ["GISContract", "SourceContract", "TicketingContract"]
