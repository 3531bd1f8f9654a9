"""social311: turn residents' public posts about fixable city problems into Open311 tickets.

The import root maps onto the repository's top-level folders (see pyproject.toml):
``social311`` is ``core/`` (records, config, warehouse, CLI), ``social311.orchestration`` is
the Dagster code location, ``social311.integrations`` the plugins, ``social311.models`` the ML
models, ``social311.transforms`` the dbt project and ``social311.demo`` the bundled demo city.
"""

__version__ = "0.1.0"
