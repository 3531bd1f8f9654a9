"""The contract every source plugin keeps: resumable, never raising, ids namespaced."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from social311.integrations.sources.base import FetchResult, SourcePlugin
from social311.records import Post, Reject

KEY = "contract-test-key"


class SourceContract:
    """Subclass as ``Test...`` and implement :meth:`make_source`; pytest runs every test.

    Attributes:
        has_bad_records: set False when ``make_source`` cannot serve invalid input (a live
            API); the reject test is then skipped.
    """

    has_bad_records: bool = True

    def make_source(self, tmp_path: Path) -> SourcePlugin:
        """A source holding at least one valid and (unless ``has_bad_records`` is False) one
        invalid record, with everything it reads placed under ``tmp_path``."""
        raise NotImplementedError

    @pytest.fixture
    def source(self, tmp_path: Path) -> SourcePlugin:
        return self.make_source(tmp_path)

    @pytest.fixture
    def first(self, source: SourcePlugin) -> FetchResult:
        return source.fetch(None, pseudonym_key=KEY)

    def test_fetch_returns_fetch_result(self, first: FetchResult) -> None:
        assert isinstance(first, FetchResult)
        assert first.posts, "make_source must serve at least one valid post"
        assert all(isinstance(p, Post) for p in first.posts)
        assert all(isinstance(r, Reject) for r in first.rejects)
        assert first.cursor is None or isinstance(first.cursor, str)

    def test_second_fetch_with_cursor_returns_nothing_new(self, source: SourcePlugin, first: FetchResult) -> None:
        second = source.fetch(first.cursor, pseudonym_key=KEY)
        assert second.posts == []
        assert second.rejects == []

    def test_bad_records_become_rejects(self, source: SourcePlugin, first: FetchResult) -> None:
        if not self.has_bad_records:
            pytest.skip("this source cannot serve invalid records")
        assert first.rejects, "make_source must serve at least one invalid record"
        for reject in first.rejects:
            assert reject.source == source.instance_name
            assert reject.reason.strip() and reject.record_ref.strip()

    def test_post_ids_unique_and_prefixed(self, source: SourcePlugin, first: FetchResult) -> None:
        ids = [p.post_id for p in first.posts]
        assert len(ids) == len(set(ids))
        for post in first.posts:
            assert post.source == source.instance_name
            assert post.post_id == f"{source.instance_name}:{post.native_id}"
            assert post.repost_of is None or post.repost_of.startswith(f"{source.instance_name}:")

    def test_authors_are_keyed_pseudonyms(self, source: SourcePlugin, first: FetchResult) -> None:
        other = source.fetch(None, pseudonym_key="another-key")
        mine = {p.post_id: p.author_hash for p in first.posts}
        changed = [p for p in other.posts if p.author_hash is not None]
        assert all(mine[p.post_id] != p.author_hash for p in changed), "author_hash must depend on the key"

    def test_cursor_is_stable_text(self, source: SourcePlugin, first: FetchResult) -> None:
        # The orchestration layer stores the cursor as text and hands it back unchanged.
        again = source.fetch(first.cursor, pseudonym_key=KEY)
        assert again.cursor == first.cursor
        if first.cursor is not None:
            json.dumps(first.cursor)
