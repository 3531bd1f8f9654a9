"""Checks on incremental assets validate the latest run's rows, and the whole table once a day."""

from __future__ import annotations

from social311.orchestration.quality import FULL_CHECK_EVERY_HOURS, full_check_due, record_full_check
from social311.warehouse import connect


def test_a_full_check_is_due_first_then_once_per_period(tmp_path, monkeypatch):
    monkeypatch.delenv("SOCIAL311_FULL_CHECKS", raising=False)
    with connect(tmp_path / "w.duckdb") as con:
        assert full_check_due(con, "signals")  # never validated in full
        record_full_check(con, "signals")
        assert not full_check_due(con, "signals")
        assert full_check_due(con, "types"), "each check keeps its own date"
        con.execute("update ops.full_checks set checked_at = now() - to_hours(?::bigint) where check_name = 'signals'",
                    [FULL_CHECK_EVERY_HOURS + 1])
        assert full_check_due(con, "signals")
        record_full_check(con, "signals")
        monkeypatch.setenv("SOCIAL311_FULL_CHECKS", "1")
        assert full_check_due(con, "signals"), "an operator can ask for a full check"


def test_no_rows_pass_row_expectations_without_gx_but_not_a_row_count():
    import pandas as pd

    from social311.orchestration.quality import Suite, validate

    rows = Suite(name="rows", expectations=(("ExpectColumnValuesToBeUnique", {"column": "post_id"}),))
    passed, meta = validate(pd.DataFrame({"post_id": pd.Series([], dtype="string")}), rows)
    assert passed and meta["rows"] == 0 and "validated_by" in meta
    counted = Suite(name="count", expectations=(("ExpectTableRowCountToBeBetween", {"min_value": 1}),))
    passed, meta = validate(pd.DataFrame({"post_id": pd.Series([], dtype="string")}), counted)
    assert not passed and meta["failed"] == 1  # GX decides, and an empty table fails it
    passed, _ = validate(pd.DataFrame({"post_id": ["a", "a"]}), rows)
    assert not passed


def test_unchanged_rows_that_passed_are_not_validated_again_until_they_change_or_a_day_passes(tmp_path, monkeypatch):
    """A static table (places, wards) or a run with nothing new: GX is not run again on the same rows."""
    from social311.orchestration import quality
    from social311.orchestration.quality import Suite, gx_check

    monkeypatch.delenv("SOCIAL311_FULL_CHECKS", raising=False)
    calls = []
    real_validate = quality.validate
    monkeypatch.setattr(quality, "validate", lambda frame, suite: calls.append(len(frame)) or real_validate(frame, suite))
    suite = Suite(name="places_test", expectations=(("ExpectColumnValuesToBeUnique", {"column": "place_id"}),))
    check = gx_check(asset="places", suite=suite, description="d", query="select place_id from places")
    evaluate = quality.REGISTRY[next(iter(check.check_keys))].evaluate
    with connect(tmp_path / "w.duckdb") as con:
        con.execute("create table places as select 'p' || range as place_id from range(5)")
        assert evaluate(con, None)[0] and calls == [5]
        passed, meta = evaluate(con, None)
        assert passed and calls == [5] and meta["validated_by"].startswith("unchanged rows"), "same rows: not re-run"
        con.execute("insert into places values ('p0')")  # a duplicate: the rows changed
        passed, meta = evaluate(con, None)
        assert not passed and calls == [5, 6]
        passed, _ = evaluate(con, None)
        assert not passed and calls == [5, 6, 6], "a failure is never remembered as a pass"
        con.execute("delete from places where rowid = (select max(rowid) from places)")
        assert evaluate(con, None)[0] and calls == [5, 6, 6], "back to the rows that passed"
        con.execute("update ops.passed_validations set passed_at = now() - to_hours(?::bigint)", [FULL_CHECK_EVERY_HOURS + 1])
        assert evaluate(con, None)[0] and calls == [5, 6, 6, 5], "validated again once a day"
        assert evaluate(con, None)[0] and calls == [5, 6, 6, 5]
        monkeypatch.setenv("SOCIAL311_FULL_CHECKS", "1")
        assert evaluate(con, None)[0] and calls == [5, 6, 6, 5, 5], "an operator can force it"
