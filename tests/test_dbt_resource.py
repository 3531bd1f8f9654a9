"""The dbt resource skips dagster-dbt's per-step `dbt --version` subprocess and in-process adapter."""

from __future__ import annotations

import inspect
import subprocess
from importlib.metadata import version as installed_version

from dagster_dbt import DbtCliResource
from packaging import version

from social311.orchestration.transforms import CityDbtResource, dbt_resource


def test_the_overridden_hooks_are_the_ones_dagster_dbt_calls_before_each_build():
    # If a dagster-dbt upgrade renames them, the overrides would silently stop saving anything.
    source = inspect.getsource(DbtCliResource.cli)
    assert "self._cli_version" in source and "self._initialize_dbt_core_adapter(" in source


def test_no_version_subprocess_and_no_adapter(monkeypatch):
    resource = dbt_resource()
    assert isinstance(resource, CityDbtResource)

    def no_subprocess(*args, **kwargs):
        raise AssertionError(f"a subprocess was started: {args}")

    monkeypatch.setattr(subprocess, "check_output", no_subprocess)
    monkeypatch.setattr("dagster_dbt.core.resource.check_output", no_subprocess)
    assert resource._cli_version == version.parse(installed_version("dbt-core"))
    assert resource._cli_version.major < 2  # dbt-core, not the fusion engine: dagster-dbt's dbt-core path
    assert resource._initialize_dbt_core_adapter(["build"]) is None
