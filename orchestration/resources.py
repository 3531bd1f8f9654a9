"""Dagster resources: the city deployment and what is built from it (plugins, secrets).

Settings are read when a resource is used, never at import time, so definitions load the same
everywhere. The Open311 api_key is read from the environment variable the city config names,
at run time, and handed to the plugin: it never becomes Dagster config, so it never reaches the
event log or the UI.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path

import dagster as dg
from pydantic import PrivateAttr

from social311.config import CityConfig, ConfigError, load_config
from social311.integrations import registry
from social311.integrations.gis.base import GISPlugin
from social311.integrations.sources.base import SourcePlugin
from social311.integrations.ticketing.base import TicketingPlugin

PSEUDONYM_KEY_ENV = "SOCIAL311_PSEUDONYM_KEY"


class CityResource(dg.ConfigurableResource):
    """The city deployment: its validated YAML config and the plugins it names."""

    config_path: str

    _config: CityConfig | None = PrivateAttr(default=None)

    @contextlib.contextmanager
    def yield_for_execution(self, context: dg.InitResourceContext):
        """Hold the city's single-run lock for the whole run (``warehouse.run_lock``).

        A second run of the same city, from the CLI, a schedule, a sensor or the UI, fails here
        with one line naming the first, before any step opens the warehouse.
        """
        from social311.warehouse import RunLockHeld, run_lock

        run = context.run
        with contextlib.ExitStack() as stack:
            if run is None:  # a sensor or schedule evaluation reads the config; it is not a run
                yield self
                return
            try:
                stack.enter_context(run_lock(self.load().duckdb_path, owner=f"Dagster run {run.run_id}"))
            except RunLockHeld as exc:
                raise dg.Failure(description=str(exc)) from None
            yield self

    def load(self) -> CityConfig:
        """The validated city config (read once per resource instance)."""
        if self._config is None:
            self._config = load_config(self.config_path)
        return self._config

    def sources(self) -> list[SourcePlugin]:
        """Every configured source plugin."""
        from social311.orchestration.listening import build_source, city_plan

        cfg = self.load()
        plan = city_plan(cfg)
        return [build_source(ref, cfg, plan=plan) for ref in cfg.sources]

    def gis(self) -> GISPlugin:
        """The configured GIS plugin."""
        return registry.build("gis", self.load().gis)

    def ticketing(self, *, require_key: bool = False) -> TicketingPlugin:
        """The configured ticketing plugin, with its secret resolved from the environment.

        Args:
            require_key: filing: a missing or empty key variable is a :class:`ConfigError`
                before anything is sent (reads need no key).
        """
        ref = self.load().ticketing
        secret = os.environ.get(ref.api_key_env) or None
        if require_key and secret is None:
            raise ConfigError(f"filing is enabled but the environment variable {ref.api_key_env} "
                              "(ticketing.api_key_env) holding the Open311 api_key is not set")
        return registry.build("ticketing", ref, api_key=secret)

    def pseudonym_key(self) -> str:
        """Key for hashing author handles: from the environment, else a random per-warehouse key.

        The fallback key is kept in a file beside the warehouse (mode 600), never in DuckDB, so
        the warehouse alone cannot be used to test guesses of who wrote what.
        """
        from_env = os.environ.get(PSEUDONYM_KEY_ENV)
        if from_env:
            return from_env
        key_file = Path(self.load().duckdb_path).with_suffix(".pseudonym-key")
        if not key_file.exists():
            key_file.parent.mkdir(parents=True, exist_ok=True)
            key_file.write_text(secrets.token_hex(32))
            key_file.chmod(0o600)
        return key_file.read_text().strip()
