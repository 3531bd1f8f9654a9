"""A conformant Open311 GeoReport v2 sandbox server with fault injection (tests and demos)."""

from social311.integrations.ticketing.sandbox.catalog import CatalogService, default_catalog, load_catalog
from social311.integrations.ticketing.sandbox.faults import QUIRK_MODES, Faults, Quirks
from social311.integrations.ticketing.sandbox.server import SandboxServer, run_sandbox

__all__ = ["CatalogService", "Faults", "QUIRK_MODES", "Quirks", "SandboxServer", "default_catalog", "load_catalog", "run_sandbox"]
