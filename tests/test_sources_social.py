"""Mastodon and Bluesky plugins: the real client libraries against loopback fakes of the
platforms, built from the recorded real exchanges of ../shared/data/social (skipped without it)."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from social311.integrations.sources.facebook import FacebookConfig, FacebookSource
from social311.integrations.sources.bluesky import BlueskyConfig, BlueskySource, reply_rkey
from social311.integrations.sources.jetstream import JetstreamConfig, JetstreamSource
from social311.integrations.sources.listening import ListeningPlan
from social311.integrations.sources.mastodon import MastodonConfig, MastodonSource
from social311.integrations.sources.reddit import RedditConfig, RedditSource
from social311.integrations.sources.x import XConfig, XSource, build_queries
from social311.integrations.testing.social_fakes import (
    BlueskyFake, FacebookFake, JetstreamFake, MastodonFake, RedditFake, XFake, load_exchange,
)
from social311.integrations.testing.sources import KEY, PollingSourceContract, SourceContract

PLAN = ListeningPlan(keywords=["pothole"], hashtags=["pothole"], subreddits=["chicago"])


def _no_sleep(seconds: float) -> None:  # waits are recorded by the source, not slept
    pass


class TestMastodonContract(PollingSourceContract):
    def make_fake(self, data_dir):
        return MastodonFake(data_dir, tag="pothole")

    def make_polling_source(self, fake, *, name="mastodon", **settings):
        config = MastodonConfig(base_url=fake.url, plan=PLAN, **settings)
        return MastodonSource(config, instance_name=name, credentials={"access_token": "token"}, sleep=_no_sleep)


class TestBlueskyContract(PollingSourceContract):
    # The AppView validates records before indexing them: search never serves an invalid one,
    # and atproto would refuse the whole page if it did.
    has_bad_records = False

    def make_fake(self, data_dir):
        return BlueskyFake(data_dir)

    def make_polling_source(self, fake, *, name="bluesky", **settings):
        config = BlueskyConfig(base_url=fake.url, plan=PLAN, **settings)
        creds = {"handle": "city311.bsky.social", "app_password": fake.password}
        return BlueskySource(config, instance_name=name, credentials=creds, sleep=_no_sleep)


class TestRedditContract(PollingSourceContract):
    reply_idempotent_on_platform = False
    library_retries = 2  # prawcore retries a 5xx or a dropped connection twice itself

    def make_fake(self, data_dir):
        return RedditFake(data_dir, subreddit="chicago")

    def make_polling_source(self, fake, *, name="reddit", **settings):
        settings.setdefault("comments", False)
        config = RedditConfig(base_url=fake.url, auth_url=fake.url, plan=PLAN, **settings)
        creds = {"client_id": "id", "client_secret": "secret", "user_agent": "social311 tests", "refresh_token": "r"}
        return RedditSource(config, instance_name=name, credentials=creds, sleep=_no_sleep)


class TestXContract(PollingSourceContract):
    reply_idempotent_on_platform = False

    def make_fake(self, data_dir):
        return XFake(data_dir)

    def make_polling_source(self, fake, *, name="x", **settings):
        settings.setdefault("page_size", 100)
        config = XConfig(base_url=fake.url, plan=PLAN, **settings)
        creds = {"bearer_token": "b", "consumer_key": "ck", "consumer_secret": "cs", "access_token": "at",
                 "access_token_secret": "as"}
        return XSource(config, instance_name=name, credentials=creds, sleep=_no_sleep)


class TestFacebookContract(PollingSourceContract):
    reply_idempotent_on_platform = False

    def expected_wait(self, asked_s):
        return 60.0 * -(-asked_s // 60)  # the Graph API says whole minutes

    def make_fake(self, data_dir):
        return FacebookFake(data_dir, page_id="19292868552")

    def make_polling_source(self, fake, *, name="facebook", **settings):
        config = FacebookConfig(base_url=fake.url, page_id="19292868552", plan=PLAN, **settings)
        creds = {"page_access_token": "page-token", "app_secret": "s"}
        return FacebookSource(config, instance_name=name, credentials=creds, sleep=_no_sleep)


def test_mastodon_reads_the_recorded_pages_through_their_link_headers(social):
    """The recorded page 1 and page 2 (Link rel=next max_id), then the recorded empty poll."""
    page1 = load_exchange(social, "mastodon", "hashtag_timeline_page1")
    page2 = load_exchange(social, "mastodon", "hashtag_timeline_page2_max_id")
    tag = page1["request"]["url"].split("?")[0].rsplit("/", 1)[1]
    recorded = [s["id"] for s in page1["response"]["body"] + page2["response"]["body"]]
    newest = max(datetime.fromisoformat(s["created_at"].replace("Z", "+00:00")) for s in page1["response"]["body"])
    with MastodonFake(social) as fake:
        fake.serve_recorded_pages()
        source = MastodonSource(MastodonConfig(base_url=fake.url, plan=ListeningPlan(hashtags=[tag]), page_size=10),
                                instance_name="m", clock=lambda: (newest + timedelta(hours=1)).timestamp())
        first = source.fetch(None, pseudonym_key=KEY)
        got = [p.native_id for p in first.posts] + [r.record_ref.split()[-1] for r in first.rejects]
        assert got == recorded  # every recorded status, in the server's order, each once
        assert all(p.author_hash and len(p.author_hash) == 24 for p in first.posts)
        assert not any(p.text.startswith("<") for p in first.posts), "HTML must be turned into text"
        second = source.fetch(first.cursor, pseudonym_key=KEY)
        assert second.posts == [] and second.rejects == []


def test_mastodon_expired_token_is_a_clear_stop(social):
    with MastodonFake(social) as fake:
        fake.add_posts(["pothole on Elm"])
        source = MastodonSource(MastodonConfig(base_url=fake.url, plan=PLAN), instance_name="m", sleep=_no_sleep)
        fake.fail_next(1, "401")
        result = source.fetch(None, pseudonym_key=KEY)
        assert result.posts == []
        assert "access token is invalid" in result.rejects[0].reason.lower() or "401" in result.rejects[0].reason


def test_bluesky_refreshes_an_expiring_session_and_relogs_an_expired_one(social):
    with BlueskyFake(social, access_ttl_s=60) as fake:  # inside atproto's 15-minute refresh margin
        fake.add_posts(["pothole by the school"])
        source = BlueskySource(BlueskyConfig(base_url=fake.url, plan=PLAN), instance_name="b",
                               credentials={"handle": "c.bsky.social", "app_password": fake.password})
        assert len(source.fetch(None, pseudonym_key=KEY).posts) == 1
        assert fake.refreshes >= 1
        fake.expire_tokens()  # the server forgets every token: ExpiredToken, then a new login
        fake.add_posts(["pothole again"])
        assert len(source.fetch(None, pseudonym_key=KEY).posts) == 2


def test_bluesky_wrong_password_is_a_clear_stop(social):
    with BlueskyFake(social) as fake:
        fake.add_posts(["pothole"])
        source = BlueskySource(BlueskyConfig(base_url=fake.url, plan=PLAN), instance_name="b",
                               credentials={"handle": "c.bsky.social", "app_password": "wrong"})
        result = source.fetch(None, pseudonym_key=KEY)
        assert result.posts == [] and "login refused" in result.rejects[0].reason


def test_bluesky_reply_key_is_a_stable_tid():
    key = reply_rkey("bluesky:at://did:plc:x/app.bsky.feed.post/3l")
    assert key == reply_rkey("bluesky:at://did:plc:x/app.bsky.feed.post/3l")
    assert len(key) == 13 and key[0] in "234567abcdefghij"
    assert key != reply_rkey("bluesky:at://did:plc:x/app.bsky.feed.post/3m")


def test_language_filter_of_the_plan(social):
    with MastodonFake(social) as fake:
        fake.add_posts(["pothole here"], lang="en")
        fake.add_posts(["bache aquí"], lang="es")
        plan = ListeningPlan(hashtags=["pothole"], languages=["es"])
        source = MastodonSource(MastodonConfig(base_url=fake.url, plan=plan), instance_name="m")
        assert [p.lang for p in source.fetch(None, pseudonym_key=KEY).posts] == ["es"]


def test_reddit_comments_stream_and_deleted_comment(social):
    with RedditFake(social, subreddit="chicago") as fake:
        names = fake.add_posts(["Pothole on Ashland swallowed my tire", "same here, by the Jewel"], kind="t1")
        source = RedditSource(RedditConfig(base_url=fake.url, auth_url=fake.url, plan=PLAN), instance_name="r",
                              credentials={"client_id": "i", "client_secret": "s"})
        posts = source.fetch(None, pseudonym_key=KEY).posts
        assert sorted(p.native_id for p in posts) == sorted(names)
        assert all(p.reply_to == "r:t3_parent" for p in posts)
        fake.delete(names[0])  # the API then reads author and body "[deleted]", as recorded
        assert source.recheck(names, pseudonym_key=KEY).deleted == [names[0]]


def test_x_geo_and_place_from_expansions(social):
    with XFake(social) as fake:
        fake.add_posts(["pothole at State and Lake"], point=(41.8857, -87.6278))
        fake.add_posts(["pothole somewhere downtown"], place=("Chicago, IL", [-87.94, 41.64, -87.52, 42.02]))
        source = XSource(XConfig(base_url=fake.url, plan=PLAN), instance_name="x", credentials={"bearer_token": "b"})
        posts = {p.text: p for p in source.fetch(None, pseudonym_key=KEY).posts}
        exact = posts["pothole at State and Lake"]
        assert (exact.lat, exact.lon) == (41.8857, -87.6278)
        placed = posts["pothole somewhere downtown"]
        assert placed.place_name == "Chicago, IL" and placed.place_bbox == (-87.94, 41.64, -87.52, 42.02)
        assert placed.lat is None


def test_x_queries_fit_the_access_level():
    terms = [f"street number {i}" for i in range(60)] + ["pothole", "#chicago311"]
    queries = build_queries(terms, suffix="-is:retweet", limit=512)
    assert all(len(q) <= 512 for q in queries) and len(queries) > 1
    joined = " ".join(queries)
    assert all((f'"{t}"' if " " in t else t) in joined for t in terms)


def test_facebook_skips_the_pages_own_answers_and_keeps_threads(social):
    with FacebookFake(social, page_id="42") as fake:
        resident = fake.add_posts(["The streetlight on Oak has been out a week"])
        fake.add_posts(["Thanks, we have sent a crew"], author="42")  # the city's own answer
        source = FacebookSource(FacebookConfig(base_url=fake.url, page_id="42", plan=PLAN), instance_name="fb",
                                credentials={"page_access_token": "t"})
        posts = source.fetch(None, pseudonym_key=KEY).posts
        assert [p.native_id for p in posts] == resident
        assert posts[0].reply_to == f"fb:{fake.page_posts[0]}" and posts[0].mentions_city


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
class TestJetstreamContract(SourceContract):
    """The firehose plugin against the recorded production Jetstream window, over a real WebSocket."""

    @pytest.fixture(autouse=True)
    def _stream(self, shared_data):
        data_dir = shared_data / "social"
        if not data_dir.is_dir():
            pytest.skip(f"recorded social exchanges not found at {data_dir}")
        with JetstreamFake(data_dir) as fake:
            self.fake = fake
            yield

    def make_source(self, tmp_path):
        return JetstreamSource(JetstreamConfig(url=self.fake.url, idle_seconds=0.5, max_seconds=10),
                               instance_name="jetstream")

    def test_every_recorded_post_create_once_and_the_delete_seen(self):
        source = self.make_source(None)
        first = source.fetch(None, pseudonym_key=KEY)
        creates = self.fake.post_creates()
        texts_nonempty = [e for e in creates if (e["commit"].get("record") or {}).get("text", "").strip()]
        assert len(first.posts) == len(texts_nonempty) and len(creates) == 17
        assert "wantedCollections=app.bsky.feed.post" in self.fake.connections[0]
        assert first.cursor == str(max(e["time_us"] for e in self.fake.events
                                       if e.get("kind") != "commit" or e["commit"]["collection"] == "app.bsky.feed.post"))
        gone = self.fake.post_deletes()
        assert source.recheck([*gone, first.posts[0].native_id], pseudonym_key=KEY).deleted == gone

    def test_plan_filters_the_firehose(self):
        source = JetstreamSource(JetstreamConfig(url=self.fake.url, idle_seconds=0.5,
                                                 plan=ListeningPlan(keywords=["zzzz-no-such-word"])), instance_name="j")
        result = source.fetch(None, pseudonym_key=KEY)
        assert result.posts == [] and result.cursor is not None


def test_mastodon_timeline_pages_stay_plain_json_with_paging(social):
    """The speed path: Mastodon.py returns timeline pages uncast (dicts) yet still pages them."""
    with MastodonFake(social) as fake:
        fake.add_posts([f"pothole {i}" for i in range(3)])
        source = MastodonSource(MastodonConfig(base_url=fake.url, plan=PLAN), instance_name="m")
        page = source.api.timeline_hashtag("pothole", limit=2)
        assert [type(s) for s in page] == [dict, dict]
        assert page._pagination_next["max_id"] is not None
        assert type(source.api.status(page[0]["id"])).__name__ == "Status"  # other calls keep their types


def test_x_filtered_stream_bounded_run(social):
    """Rules set from the plan; the recorded messages and new matching Tweets ingested; the
    recorded cut-off line quarantined with its reason; a redelivered Tweet once; the dropped
    connection reconnected; the run ends at its bound; a second run adds no duplicate."""
    import time as _time

    from social311.integrations.sources.x_stream import RULE_TAG, wanted_rules

    recorded = load_exchange(social, "x", "filtered_stream_messages")["response"]["body"]
    with XFake(social) as fake:
        fake.stream_rules["7"] = {"id": "7", "value": "other app's rule", "tag": "someone-else"}
        fake.stream_rules["8"] = {"id": "8", "value": "stale", "tag": f"{RULE_TAG}:0"}
        fake.serve_recorded_stream()
        new = fake.add_posts([f"pothole on Main St {i}" for i in range(5)] + ["nice weather today"])
        config = XConfig(base_url=fake.url, plan=PLAN, stream=True, stream_max_seconds=4, stream_idle_seconds=2)
        source = XSource(config, instance_name="x", credentials={"bearer_token": "b"}, sleep=_no_sleep)
        wanted = wanted_rules(source)
        assert wanted and all("pothole" in value for value, _ in wanted)
        t0 = _time.monotonic()
        first = source.fetch(None, pseudonym_key=KEY)
        took = _time.monotonic() - t0
        rules = {(r["value"], r.get("tag")) for r in fake.stream_rules.values()}
        assert rules == {*wanted, ("other app's rule", "someone-else")}  # ours synced, theirs untouched
        ids = [p.native_id for p in first.posts]
        assert len(ids) == len(set(ids))
        assert set(new[:5]) <= set(ids) and new[5] not in ids
        assert {str(m["data"]["id"]) for m in recorded} <= set(ids)
        cut = [r for r in first.rejects if "not valid JSON" in r.reason]
        assert len(cut) == 1, [r.reason for r in first.rejects]
        assert fake.stream_connections >= 2  # the drop after the cut-off line was reconnected
        assert took < config.stream_max_seconds + config.stream_idle_seconds + 3
        later = fake.add_posts(["another pothole on Elm"])
        second = XSource(config, instance_name="x", credentials={"bearer_token": "b"}).fetch(first.cursor, pseudonym_key=KEY)
        assert [p.native_id for p in second.posts] == later  # the redelivered one is not ingested again
