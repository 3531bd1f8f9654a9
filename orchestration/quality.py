"""Great Expectations suites run as Dagster asset checks.

Each Python asset declares its expectations as plain data (:class:`Suite`); ``gx_check`` turns a
suite plus a SQL query into a Dagster asset check that pulls the rows from DuckDB into a pandas
DataFrame and validates them with GX in an ephemeral context. (GX's own SQL datasource on
DuckDB is broken in 1.24: see the stack notes.) Checks guarding a side effect are ``blocking``.
"""


import os
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import dagster as dg
import pandas as pd

from social311.warehouse import connect


@dataclass(frozen=True)
class Suite:
    """A named list of GX expectations: ``(expectation class name, kwargs)`` pairs."""

    name: str
    expectations: Sequence[tuple[str, dict[str, Any]]] = field(default_factory=tuple)


def _batch_definition():
    # Imported lazily: GX costs ~3 s to import, paid once per process and only when checks run.
    # A fresh ephemeral context per validation (~20 ms): GX keeps a process-global "current
    # context", and a cached one is not always the current one when the next check runs.
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    asset = context.data_sources.add_pandas("social311").add_dataframe_asset(name="rows")
    return asset.add_batch_definition_whole_dataframe("all_rows")


def validate(frame: pd.DataFrame, suite: Suite) -> tuple[bool, dict[str, Any]]:
    """Validate a DataFrame against a suite.

    Returns:
        (success, metadata) where metadata lists each failed expectation with its unexpected
        count and a few unexpected values, ready for Dagster check metadata.
    """
    if frame.empty and all(name.startswith("ExpectColumnValues") for name, _ in suite.expectations):
        # Every per-row expectation holds on no rows: the answer is known without importing GX
        # (~3 s, and ~20 s on a loaded machine, for a check whose asset wrote nothing new).
        return True, {"rows": 0, "expectations": len(suite.expectations), "failed": 0,
                      "failures": dg.MetadataValue.json({}), "validated_by": "no rows: nothing to validate"}
    import great_expectations as gx

    batch_definition = _batch_definition()  # creates the context the suite below needs
    gx_suite = gx.ExpectationSuite(name=suite.name)
    for class_name, kwargs in suite.expectations:
        gx_suite.add_expectation(getattr(gx.expectations, class_name)(**kwargs))
    result = batch_definition.get_batch(batch_parameters={"dataframe": frame}).validate(gx_suite)
    failures = {}
    for item in result.results:
        if not item.success:
            config = item.expectation_config
            key = f"{config.type}({config.kwargs.get('column', '')})"
            failures[key] = {
                "unexpected_count": item.result.get("unexpected_count"),
                "examples": [str(v)[:80] for v in (item.result.get("partial_unexpected_list") or [])[:5]],
                "observed": str(item.result.get("observed_value", ""))[:200],
            }
    metadata = {
        "rows": len(frame),
        "expectations": len(suite.expectations),
        "failed": len(failures),
        "failures": dg.MetadataValue.json(failures),
    }
    return bool(result.success), metadata


def gx_check(
    *,
    asset: dg.AssetKey | str | Sequence[str],
    suite: Suite,
    query: str,
    blocking: bool = False,
    description: str,
    latest_query: str | None = None,
) -> dg.AssetChecksDefinition:
    """A Dagster asset check validating ``query``'s rows against ``suite``.

    Args:
        asset: the asset key the check is attached to.
        suite: the expectations.
        query: SQL run on the warehouse; its result is the DataFrame validated.
        blocking: when true, a failure stops downstream assets in the same run.
        description: one line shown in the UI.
        latest_query: the same columns for only the rows the asset's latest run wrote. Given,
            a run validates those (an incremental asset's run pulls its own rows, not a million),
            and the whole table once every ``FULL_CHECK_EVERY_HOURS`` (``full_check_due``).
    """

    def evaluate(con, cfg) -> tuple[bool, dict[str, Any]]:
        full = latest_query is None or full_check_due(con, suite.name)
        frame = con.execute(query if full else latest_query).df()
        scope = {"scope": "full" if full else "latest run"}
        digest = frame_digest(frame, suite)
        passed_at = passed_unchanged(con, suite.name, digest)
        if passed_at is not None:
            # The same rows passed the same suite within FULL_CHECK_EVERY_HOURS: GX would say
            # the same again (a static table, or a run that wrote nothing new).
            return True, {"rows": len(frame), "expectations": len(suite.expectations), "failed": 0,
                          "failures": dg.MetadataValue.json({}), **scope,
                          "validated_by": f"unchanged rows: passed this suite at {passed_at:%Y-%m-%d %H:%M} UTC"}
        success, metadata = validate(frame, suite)
        if success:
            record_passed(con, suite.name, digest)
            if full and latest_query is not None:
                record_full_check(con, suite.name)
        return success, {**metadata, **scope}

    return _single_check(BatchableCheck(
        dg.AssetCheckSpec(suite.name, asset=asset, description=description, blocking=blocking), evaluate))


#: How often a check with a ``latest_query`` validates the whole table anyway.
FULL_CHECK_EVERY_HOURS = 24


def full_check_due(con, name: str) -> bool:
    """Whether check ``name`` validates its whole table this run.

    Due when it never passed a full validation, when the last one is older than
    ``FULL_CHECK_EVERY_HOURS``, or when ``SOCIAL311_FULL_CHECKS=1`` asks for it. A failed full
    validation is not recorded, so the next run checks in full again.
    """
    if os.environ.get("SOCIAL311_FULL_CHECKS") == "1":
        return True
    con.execute("create table if not exists ops.full_checks (check_name VARCHAR PRIMARY KEY, checked_at TIMESTAMPTZ NOT NULL)")
    row = con.execute("select checked_at < now() - to_hours(?::bigint) from ops.full_checks where check_name = ?",
                      [FULL_CHECK_EVERY_HOURS, name]).fetchone()
    return row is None or bool(row[0])


def frame_digest(frame: pd.DataFrame, suite: Suite) -> str | None:
    """SHA-256 of a check's rows (values, columns, dtypes) and its suite; None if a cell cannot be hashed."""
    import hashlib

    try:
        rows = pd.util.hash_pandas_object(frame, index=False).to_numpy()
    except TypeError:  # a list or array cell (an embedding): validate every time
        return None
    digest = hashlib.sha256(repr((suite, list(frame.columns), [str(t) for t in frame.dtypes])).encode())
    digest.update(rows.tobytes())
    return digest.hexdigest()


_PASSED_TABLE = ("create table if not exists ops.passed_validations "
                 "(check_name VARCHAR PRIMARY KEY, frame_digest VARCHAR NOT NULL, passed_at TIMESTAMPTZ NOT NULL)")


def passed_unchanged(con, name: str, digest: str | None):
    """When check ``name`` last passed on exactly these rows, if within ``FULL_CHECK_EVERY_HOURS``.

    None when the rows differ, the pass is older, the rows cannot be hashed, or
    ``SOCIAL311_FULL_CHECKS=1`` asks for a fresh validation.
    """
    if digest is None or os.environ.get("SOCIAL311_FULL_CHECKS") == "1":
        return None
    con.execute(_PASSED_TABLE)
    row = con.execute("select passed_at from ops.passed_validations where check_name = ? and frame_digest = ? "
                      "and passed_at >= now() - to_hours(?::bigint)", [name, digest, FULL_CHECK_EVERY_HOURS]).fetchone()
    return row[0] if row else None


def record_passed(con, name: str, digest: str | None) -> None:
    """Remember that check ``name`` passed on the rows of ``digest`` (a failure is never remembered)."""
    if digest is None:
        return
    con.execute(_PASSED_TABLE)
    con.execute("insert or replace into ops.passed_validations values (?, ?, now())", [name, digest])


def forget_passed(con, name: str) -> None:
    """Drop the remembered pass of ``name``: its next evaluation runs in full."""
    con.execute(_PASSED_TABLE)
    con.execute("delete from ops.passed_validations where check_name = ?", [name])


def record_full_check(con, name: str) -> None:
    """Remember that check ``name`` just passed over its whole table."""
    con.execute("create table if not exists ops.full_checks (check_name VARCHAR PRIMARY KEY, checked_at TIMESTAMPTZ NOT NULL)")
    con.execute("insert or replace into ops.full_checks values (?, now())", [name])


def sql_check(
    *, asset: dg.AssetKey | str | Sequence[str], name: str, query: str, description: str, blocking: bool = False
) -> dg.AssetChecksDefinition:
    """A check that passes when ``query`` (which selects offending rows) returns none."""

    def evaluate(con, cfg) -> tuple[bool, dict[str, Any]]:
        offending = con.execute(query).fetchall()
        return not offending, {"offending_rows": len(offending), "examples": str(offending[:5])[:500]}

    return _single_check(BatchableCheck(
        dg.AssetCheckSpec(name, asset=asset, description=description, blocking=blocking), evaluate))


# --- Batching -------------------------------------------------------------------------------------
# An asset check of its own is a Dagster step of its own: step events and event-log writes, and
# here a warehouse connection each (the README's "Checks batched" gives the figures: 55 steps
# became 41 on the demo warehouse, the checks' time fell by a few seconds only). ``gx_check``,
# ``sql_check`` and ``city_check`` therefore register what they build here, and the
# code location (``definitions.build_defs``) replaces those single checks by one
# ``multi_asset_check`` per asset (``batched_checks``). Check keys, descriptions, blocking flags,
# metadata and pass/fail logic are the same either way; the single checks stay usable on their own.


@dataclass(frozen=True)
class BatchableCheck:
    """One check as data: its spec and a function of an open warehouse connection and the city.

    ``evaluate(con, cfg)`` returns ``(passed, metadata)``; ``cfg`` is the loaded city config.
    """

    spec: dg.AssetCheckSpec
    evaluate: Callable[[Any, Any], tuple[bool, dict[str, Any]]]
    #: WARN: a failure is shown as a warning and never blocks.
    severity: dg.AssetCheckSeverity = dg.AssetCheckSeverity.ERROR


#: Every check built by ``gx_check``/``sql_check``/``city_check``, by check key (a rebuilt check replaces its entry).
REGISTRY: dict[dg.AssetCheckKey, BatchableCheck] = {}


def _single_check(check: BatchableCheck) -> dg.AssetChecksDefinition:
    """Register ``check`` for batching and return it as a stand-alone asset check."""
    REGISTRY[check.spec.key] = check
    spec = check.spec

    @dg.asset_check(asset=spec.asset_key, name=spec.name, blocking=spec.blocking, description=spec.description,
                    required_resource_keys={"city"})
    def _check(context: dg.AssetCheckExecutionContext) -> dg.AssetCheckResult:
        cfg = context.resources.city.load()
        with connect(cfg.duckdb_path) as con:
            passed, metadata = check.evaluate(con, cfg)
        return dg.AssetCheckResult(passed=passed, metadata=metadata, severity=check.severity)

    return _check


def city_check(*, asset: dg.AssetKey | str | Sequence[str], name: str, description: str, blocking: bool = False,
               severity: dg.AssetCheckSeverity = dg.AssetCheckSeverity.ERROR):
    """Decorator: a check written as ``fn(con, cfg) -> (passed, metadata)``, batched like the others.

    For checks that need more than one query or the city config (thresholds, bounding box).
    """

    def wrap(fn: Callable[[Any, Any], tuple[bool, dict[str, Any]]]) -> dg.AssetChecksDefinition:
        return _single_check(BatchableCheck(
            dg.AssetCheckSpec(name, asset=asset, description=description, blocking=blocking), fn, severity))

    return wrap


def evaluate_one(check: BatchableCheck, con, cfg) -> dg.AssetCheckResult:
    """Run one check of a batch; an exception becomes that check's failed result, with the error.

    A batch is one step: letting the exception out would lose every later check's result.
    """
    description = None
    try:
        passed, metadata = check.evaluate(con, cfg)
    except Exception as exc:  # noqa: BLE001 - reported as the check's own failure, not swallowed
        error = f"{type(exc).__name__}: {exc}"
        # The description is what the run summary prints beside the failed check (one line).
        passed, metadata, description = False, {"error": error[:1000]}, "check raised " + error.splitlines()[0][:300]
    return dg.AssetCheckResult(asset_key=check.spec.asset_key, check_name=check.spec.name, passed=bool(passed),
                               metadata=metadata, severity=check.severity, description=description)


def batched_checks(checks: Iterable[BatchableCheck]) -> list[dg.AssetChecksDefinition]:
    """One ``multi_asset_check`` (one step, one warehouse connection) per asset of ``checks``.

    A blocking check keeps its flag in its spec: when it fails, Dagster fails the batch's step
    after every check of the batch has reported, and the asset's downstream assets do not run.
    The batch can run a subset (``can_subset``): a run that selects some of an asset's checks
    gets only those.
    """
    by_asset: dict[dg.AssetKey, list[BatchableCheck]] = {}
    for check in checks:
        by_asset.setdefault(check.spec.asset_key, []).append(check)
    return [_batch(asset_key, group) for asset_key, group in by_asset.items()]


def _batch(asset_key: dg.AssetKey, group: list[BatchableCheck]) -> dg.AssetChecksDefinition:
    op_name = "checks__" + re.sub(r"\W", "_", "__".join(asset_key.path))

    @dg.multi_asset_check(name=op_name, specs=[check.spec for check in group], can_subset=True,
                          description=f"The checks of {asset_key.to_user_string()}, run as one step.",
                          required_resource_keys={"city"})
    def _checks(context: dg.AssetCheckExecutionContext):
        selected = context.selected_asset_check_keys
        cfg = context.resources.city.load()
        with connect(cfg.duckdb_path) as con:
            for check in group:
                if check.spec.key in selected:
                    yield evaluate_one(check, con, cfg)

    return _checks
