"""Screening of ready incidents: one bad incident is held back, the rest of the city files.

The blocking GX check on ``ops/incidents`` stops every ticket of a run when one row fails
(one post with ``bob@localhost`` held 365 ready incidents back, run after run). Screening runs
the same suite first, row by row (GX ``COMPLETE`` results name the failing rows): failing
incidents get status ``held`` and a quarantine row (stage ``screening``) with every reason,
so the blocking check then sees only clean rows and filing goes on.

When more than ``screening.max_held_share`` of the ready incidents fail (and more than
``screening.always_hold_up_to``), the cause is upstream (a regression, not one bad post):
nothing is held, the blocking check fails and stops filing, as it should.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import pandas as pd

from social311.config import CityConfig
from social311.orchestration.quality import Suite
from social311.privacy import mask_personal_data

#: Status of an incident held back by screening (never filed; reasons in quarantine.records).
HELD = "held"
# Expectations about the whole column (not one row): they stay with the blocking check alone.
_SET_LEVEL = {"ExpectColumnValuesToBeUnique"}


def failing_rows(frame: pd.DataFrame, suite: Suite) -> dict[Any, list[str]]:
    """Frame index -> the reasons its row fails ``suite`` (row-level expectations only)."""
    import great_expectations as gx

    from social311.orchestration.quality import _batch_definition

    row_level = [(name, kwargs) for name, kwargs in suite.expectations if name not in _SET_LEVEL]
    if frame.empty or not row_level:
        return {}
    batch_definition = _batch_definition()
    gx_suite = gx.ExpectationSuite(name=f"{suite.name}_screening")
    for name, kwargs in row_level:
        gx_suite.add_expectation(getattr(gx.expectations, name)(**kwargs))
    frame = frame.reset_index(drop=True)
    result = batch_definition.get_batch(batch_parameters={"dataframe": frame}).validate(
        gx_suite, result_format="COMPLETE")
    reasons: dict[Any, list[str]] = {}
    for item in result.results:
        if item.success:
            continue
        config = item.expectation_config
        kwargs = {k: v for k, v in config.kwargs.items() if k not in {"column", "batch_id"}}
        label = f"{config.type}({config.kwargs.get('column', '')}{', ' if kwargs else ''}" \
                f"{', '.join(f'{k}={v}' for k, v in sorted(kwargs.items()))})"
        for index in item.result.get("unexpected_index_list") or []:
            reasons.setdefault(index, []).append(label)
    return reasons


def screen_ready_incidents(con, cfg: CityConfig, suite: Suite, *, run_id: str | None = None) -> dict[str, Any]:
    """Hold ready incidents that fail ``suite`` (status ``held``, reasons quarantined) unless too many fail.

    Args:
        con: an open warehouse connection (the caller's transaction, if any, covers the writes).
        cfg: the city config (``screening`` settings).
        suite: the blocking suite of ready incidents.
        run_id: the Dagster run, recorded with each quarantine row.

    Returns:
        ``{"ready": n, "failing": n, "held": [incident ids], "systemic": bool}``; ``systemic``
        means too many failed to be one bad input (or screening itself failed: ``error``), and
        nothing was held: the blocking check decides.
    """
    frame = con.execute("select * from ops.incidents where status = 'ready' order by incident_id").df()
    try:
        reasons = failing_rows(frame, suite)
    except Exception as exc:  # noqa: BLE001 - screening is a convenience; the blocking check still guards
        return {"ready": len(frame), "failing": 0, "held": [], "systemic": True,
                "error": f"{type(exc).__name__}: {exc}"[:500]}
    outcome: dict[str, Any] = {"ready": len(frame), "failing": len(reasons), "held": [], "systemic": False}
    if not reasons:
        return outcome
    settings = cfg.screening
    if len(reasons) > max(settings.always_hold_up_to, settings.max_held_share * len(frame)):
        outcome["systemic"] = True
        return outcome
    now = datetime.now(timezone.utc)
    known = {(r[0], r[1]) for r in con.execute(
        "select record_ref, reason from quarantine.records where stage = 'screening'").fetchall()}
    for index, failed in sorted(reasons.items()):
        row = frame.iloc[index]
        incident_id = str(row["incident_id"])
        reason = "held before filing: fails " + "; ".join(failed)
        con.execute("update ops.incidents set status = ? where incident_id = ?", [HELD, incident_id])
        if (incident_id, reason) not in known:  # one row per incident and reason, not one per run
            excerpt = mask_personal_data(str(row["representative_text"] or ""))[:500]
            con.execute("insert into quarantine.records values ('screening', null, ?, ?, ?, ?, ?)",
                        [incident_id, reason, excerpt, now, run_id])
        outcome["held"].append(incident_id)
    return outcome
