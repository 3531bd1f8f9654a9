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


class PollingSourceContract(SourceContract):
    """What every social-platform plugin must do against its loopback fake (subclass as ``Test...``).

    Implement :meth:`make_fake` (a started-later :class:`~social311.integrations.testing.social_fakes.FakeServer`
    with ``add_posts``/``delete``/``edit``/``fail_next``) and :meth:`make_polling_source`. The
    fake serves ``n_posts`` generated posts plus, unless ``has_bad_records`` is False, one that
    the plugin must reject. Waits are recorded, not slept.
    """

    n_posts: int = 95
    #: True when the platform itself refuses a repeated reply (Mastodon Idempotency-Key,
    #: Bluesky record key); otherwise the plugin must read its replies back (``find_reply``).
    reply_idempotent_on_platform: bool = True
    #: How often the client library itself retries a 5xx or a dropped connection (prawcore: 2).
    library_retries: int = 0
    texts_match: str = "pothole"  # every generated text contains it, so any plan term finds it

    def make_fake(self, data_dir: Path):  # pragma: no cover - abstract
        raise NotImplementedError

    def make_polling_source(self, fake, *, name: str = "src", **settings):  # pragma: no cover - abstract
        raise NotImplementedError

    def expected_wait(self, asked_s: float) -> float:
        """The wait the platform's headers express when the fake asks for ``asked_s`` seconds."""
        return asked_s

    def bad_texts(self) -> list[str]:
        """Texts the plugin must reject (default: one empty post)."""
        return [""] if self.has_bad_records else []

    @pytest.fixture
    def fake(self, shared_data: Path):
        data_dir = shared_data / "social"
        if not data_dir.is_dir():
            pytest.skip(f"recorded social exchanges not found at {data_dir}")
        with self.make_fake(data_dir) as server:
            server.add_posts([f"{self.texts_match} report {i}: deep hole by house {i} Main St" for i in range(self.n_posts)])
            bad = self.bad_texts()
            if bad:
                server.add_posts(bad)
            yield server

    def make_source(self, tmp_path: Path) -> SourcePlugin:
        return self.make_polling_source(self._fake)

    @pytest.fixture(autouse=True)
    def _bind_fake(self, fake) -> None:
        self._fake = fake

    def waits(self, source) -> list[float]:
        return source.waits

    def test_backfill_then_incremental(self, fake) -> None:
        source = self.make_polling_source(fake)
        first = source.fetch(None, pseudonym_key=KEY)
        assert len(first.posts) == self.n_posts
        new_ids = fake.add_posts([f"{self.texts_match} new {i}" for i in range(3)])
        second = source.fetch(first.cursor, pseudonym_key=KEY)
        assert sorted(p.native_id for p in second.posts) == sorted(new_ids)

    def test_restart_mid_sweep_no_post_twice_none_missed(self, fake) -> None:
        got: list[str] = []
        cursor = None
        for _ in range(200):
            # A fresh instance each run, one page per run: the cursor alone carries the sweep.
            source = self.make_polling_source(fake, max_pages=1, page_size=10)
            result = source.fetch(cursor, pseudonym_key=KEY)
            got += [p.native_id for p in result.posts]
            if result.cursor == cursor and not result.posts:
                break
            cursor = result.cursor
        assert len(got) == len(set(got)), "a post was fetched twice"
        assert len(got) == self.n_posts, f"{self.n_posts - len(got)} posts missed"

    @pytest.mark.parametrize("fault", ["503", "drop"])
    def test_failure_mid_sweep_resumes_where_it_stopped(self, fake, fault: str) -> None:
        source = self.make_polling_source(fake, page_size=10, max_retries=0)
        # Two pages served, the third fails (as many times as the library itself retries, + 1).
        fake.fail_next(1 + self.library_retries, fault, after=2)
        stopped = source.fetch(None, pseudonym_key=KEY)
        assert len(stopped.posts) == 20 - len(self.bad_texts())  # the newest post is the bad one
        stops = [r for r in stopped.rejects if "resumes next run" in r.reason]
        assert len(stops) == 1, [r.reason for r in stopped.rejects]
        resumed = self.make_polling_source(fake, page_size=10).fetch(stopped.cursor, pseudonym_key=KEY)
        ids = [p.native_id for p in [*stopped.posts, *resumed.posts]]
        assert len(ids) == len(set(ids)) == self.n_posts

    def test_429_waits_as_headers_say(self, fake) -> None:
        source = self.make_polling_source(fake)
        fake.fail_next(1, "429", retry_after=7)
        result = source.fetch(None, pseudonym_key=KEY)
        assert len(result.posts) == self.n_posts
        expected = self.expected_wait(7)
        assert len(source.waits) == 1 and expected - 1.5 <= source.waits[0] <= expected + 1.5, source.waits

    def test_429_longer_than_allowed_stops_cleanly(self, fake) -> None:
        source = self.make_polling_source(fake, max_wait_s=3)
        fake.fail_next(1, "429", retry_after=60)
        result = source.fetch(None, pseudonym_key=KEY)
        assert result.posts == [] and any("rate limited" in r.reason for r in result.rejects)
        again = source.fetch(result.cursor, pseudonym_key=KEY)
        assert len(again.posts) == self.n_posts

    def test_recheck_sees_deletion_and_edit(self, fake) -> None:
        source = self.make_polling_source(fake)
        posts = source.fetch(None, pseudonym_key=KEY).posts
        gone, edited = posts[0].native_id, posts[1].native_id
        fake.delete(gone)
        fake.edit(edited, f"{self.texts_match} edited: now it is two holes")
        check = source.recheck([p.native_id for p in posts[:5]], pseudonym_key=KEY)
        assert check.deleted == [gone]
        current = {p.native_id: p.text for p in check.current}
        assert set(current) == {p.native_id for p in posts[1:5]}
        assert current[edited].endswith("now it is two holes")

    def test_reply_is_posted_once_under_retries(self, fake) -> None:
        source = self.make_polling_source(fake)
        post, other = source.fetch(None, pseudonym_key=KEY).posts[:2]
        text = "We're on it! Your report number is 72355."
        if source.reply_read_back:
            assert source.find_reply(post, "72355") is None  # nothing posted yet: provably absent
        first = source.reply(post, text)
        assert first and fake.reply_count() == 1
        if self.reply_idempotent_on_platform:
            # The platform refuses a second one (Idempotency-Key, record key): a blind retry is safe.
            assert source.reply(post, text) == first
        if source.reply_read_back:
            # Read back: the reply is found under its post by its request id, and only there.
            assert source.find_reply(post, "72355") == first
            assert source.find_reply(other, "72355") is None
            if not self.reply_idempotent_on_platform:  # (Bluesky's key is one reply per post, whatever it says)
                assert source.find_reply(post, "72356") is None
        assert self.reply_idempotent_on_platform or source.reply_read_back, \
            "a platform without an idempotency key needs a read-back for exactly-once replies"
        assert fake.reply_count() == 1
