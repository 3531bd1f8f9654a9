"""The dbt project (staging -> intermediate -> marts) run by Dagster through dagster-dbt.

Python hands data to dbt through DuckDB tables (see ``social311.warehouse.TABLES``); dbt owns
everything it builds. ``PROJECT_DIR`` is this folder.
"""

from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parent
