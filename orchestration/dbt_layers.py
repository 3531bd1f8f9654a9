"""When a dbt layer need not run: its inputs are the same as at its last clean build.

A city runs every 15 minutes, and most runs bring nothing new for the staging view and the
ward join; each ``dbt build`` still cost a new dbt process (~3 s of imports), a parse check, the
models and their data tests (6–7 s a layer on an idle 2-core machine). A layer whose models are
pure functions of their inputs (no ``now()``) gives the same tables and the same test results
on the same inputs, so it is skipped when:

- the *inputs key* is the one remembered at the layer's last build whose tests all passed (as a
  pass of ``dbt:<layer>`` in ``quality``'s ``ops.passed_validations``, the GX checks' memo): a SHA-256
  of the dbt project's files (models, macros, tests, ``dbt_project.yml``), the dbt vars, and a
  content fingerprint of every table or view the layer reads that another layer or a Python
  asset writes (row count and per-column sums of DuckDB's ``hash``, embeddings left out:
  they never change without ``model_name``/``scored_at`` changing too);
- that build is less than ``FULL_CHECK_EVERY_HOURS`` old (the periodic full check);
- the run selected the whole layer, and neither ``SOCIAL311_FULL_CHECKS=1`` nor
  ``SOCIAL311_DBT_FULL_REFRESH=1`` is set.

The marts are never skipped: ``fct_ticket_sla`` reads the clock (overdue flags change with time).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from social311.orchestration import quality

#: Layers whose models read no clock: the same inputs give the same tables and test results.
SKIPPABLE_LAYERS = ("staging", "intermediate")


def layer_inputs(manifest: dict, layer: str) -> list[tuple[str, str]]:
    """``(schema, name)`` of every relation the layer's models and tests read from outside the layer."""
    inside = {uid for uid, node in manifest["nodes"].items() if node["fqn"][1:2] == [layer]}
    tested = {uid for uid, node in manifest["nodes"].items()
              if node["resource_type"] == "test" and set(node["depends_on"]["nodes"]) & inside}
    read = set()
    for uid in inside | tested:
        read.update(manifest["nodes"][uid]["depends_on"]["nodes"])
    relations = set()
    for uid in sorted(read - inside):
        node = manifest["sources"].get(uid) or manifest["nodes"].get(uid)
        if node and node["resource_type"] in ("source", "model", "seed", "snapshot"):
            relations.add((node["schema"], node.get("identifier") or node.get("alias") or node["name"]))
    return sorted(relations)


def project_digest(project_dir: Path) -> str:
    """SHA-256 of the dbt project's source files (a changed model, macro or test is a new key)."""
    digest = hashlib.sha256()
    for path in sorted(project_dir.rglob("*")):
        if path.is_file() and path.suffix in {".sql", ".yml", ".yaml", ".csv"} and not {"target", "logs", "dbt_packages"} & set(path.parts):
            digest.update(str(path.relative_to(project_dir)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def relation_fingerprint(con, schema: str, name: str) -> str:
    """Row count and per-column hash sums of one table or view (``missing`` if it does not exist)."""
    columns = con.execute(
        "select column_name, data_type from information_schema.columns where table_schema = ? and table_name = ? "
        "order by ordinal_position", [schema, name]).fetchall()
    if not columns:
        return "missing"
    # Embedding vectors are left out: a row's vector never changes without its model_name/scored_at.
    kept = [c for c, t in columns if not t.upper().startswith("FLOAT[")]
    sums = ", ".join(f'sum(hash("{c}"))' for c in kept)
    row = con.execute(f'select count(*){", " + sums if sums else ""} from "{schema}"."{name}"').fetchone()
    return json.dumps([[c for c, _ in columns], [str(v) for v in row]])


def inputs_key(con, manifest: dict, layer: str, project_dir: Path, dbt_vars: dict) -> str:
    """The layer's inputs key (see the module docstring)."""
    digest = hashlib.sha256(project_digest(project_dir).encode())
    digest.update(json.dumps(dbt_vars, sort_keys=True, default=str).encode())
    for schema, name in layer_inputs(manifest, layer):
        digest.update(f"{schema}.{name}={relation_fingerprint(con, schema, name)}".encode())
    return digest.hexdigest()


def memo_name(layer: str) -> str:
    """The name under which a layer's clean builds are remembered in ``ops.passed_validations``."""
    return f"dbt:{layer}"


def unchanged_since(con, layer: str, key: str):
    """When the layer was last built cleanly on these inputs, if within ``quality.FULL_CHECK_EVERY_HOURS``; else None.

    Also None for the marts, and when ``SOCIAL311_FULL_CHECKS=1`` or ``SOCIAL311_DBT_FULL_REFRESH=1`` is set.
    """
    if layer not in SKIPPABLE_LAYERS or os.environ.get("SOCIAL311_DBT_FULL_REFRESH") == "1":
        return None
    return quality.passed_unchanged(con, memo_name(layer), key)


def record_clean_build(con, layer: str, key: str) -> None:
    """Remember the inputs of a build whose models and tests all passed."""
    quality.record_passed(con, memo_name(layer), key)


def forget_build(con, layer: str) -> None:
    """A failed or partial build: the next run builds the layer again."""
    quality.forget_passed(con, memo_name(layer))
