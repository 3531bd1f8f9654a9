"""Deleted and edited platform posts, applied to a real DuckDB warehouse through the real ingest
asset, with the Mastodon plugin reading a loopback fake built from recorded exchanges."""

from __future__ import annotations

from datetime import datetime, timezone

import dagster as dg
import pytest
import yaml

from social311.orchestration.ingest import raw_posts
from social311.orchestration.resources import CityResource
from social311.warehouse import connect


def _city(tmp_path, url: str) -> str:
    cfg = {
        "city": "Test City", "duckdb_path": str(tmp_path / "w.duckdb"),
        "sources": [{"plugin": "mastodon", "name": "masto",
                     "config": {"base_url": url, "credentials_env": {"access_token": "TEST_MASTODON_TOKEN"}}}],
        "gis": {"plugin": "geojson", "config": {"wards_path": str(tmp_path / "none.geojson")}},
        "ticketing": {"plugin": "open311", "config": {"endpoint": "http://127.0.0.1:1/open311/v2"}},
        "listening": {"hashtags": ["pothole"], "keywords": ["pothole"]},
    }
    path = tmp_path / "city.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return str(path)


def _ingest(config_path: str) -> dg.ExecuteInProcessResult:
    return dg.materialize([raw_posts], resources={"city": CityResource(config_path=config_path)})


def test_deleted_post_leaves_the_warehouse_and_a_filed_ticket_stays(tmp_path, social, monkeypatch):
    from social311.integrations.testing.social_fakes import MastodonFake

    monkeypatch.setenv("TEST_MASTODON_TOKEN", "token-from-env")
    monkeypatch.setenv("SOCIAL311_PSEUDONYM_KEY", "k")
    with MastodonFake(social) as fake:
        ids = fake.add_posts([f"pothole {i} on Main St, a deep one" for i in range(6)])
        config = _city(tmp_path, fake.url)
        assert _ingest(config).success
        db = tmp_path / "w.duckdb"
        now = datetime.now(timezone.utc)
        with connect(db) as con:
            assert con.execute("select count(*) from raw.posts").fetchone()[0] == 6
            # Post 0 was filed (ticket 72355); post 1 is in an unfiled incident; both have scores.
            con.execute("insert into ops.incident_posts values ('inc-a', ?, 'anchor'), ('inc-b', ?, 'anchor')",
                        [f"masto:{ids[0]}", f"masto:{ids[1]}"])
            con.execute("insert into ops.ticket_ledger (incident_id, marker, state, service_code, service_request_id, "
                        "created_at, updated_at) values ('inc-a', 'm-a', 'submitted', 'POTHOLE', '72355', ?, ?)", [now, now])
            for pid in (ids[0], ids[1], ids[2]):
                con.execute("insert into ml.post_signals (post_id, relevance, is_report) values (?, 0.9, true)",
                            [f"masto:{pid}"])
        fake.delete(ids[0])
        fake.delete(ids[1])
        fake.edit(ids[2], "pothole on Main St: now two of them")
        assert _ingest(config).success
        with connect(db) as con:
            left = {r[0] for r in con.execute("select native_id from raw.posts").fetchall()}
            assert left == set(ids[2:])
            scored = {r[0] for r in con.execute("select post_id from ml.post_signals").fetchall()}
            assert scored == set(), "deleted posts lose their embedding; the edited one is re-scored"
            assert con.execute("select text from raw.posts where native_id = ?", [ids[2]]).fetchone()[0] \
                == "pothole on Main St: now two of them"
            ledger = con.execute("select state, service_request_id from ops.ticket_ledger").fetchall()
            assert ledger == [("submitted", "72355")], "the filed ticket stays"
            withdrawn = con.execute("select native_id, kind, service_request_id from ops.post_withdrawals "
                                    "order by kind, native_id").fetchall()
            assert sorted(withdrawn) == sorted([(ids[0], "deleted", "72355"), (ids[1], "deleted", None),
                                                (ids[2], "edited", None)])
            assert con.execute("select count(*) from ops.incident_posts").fetchone()[0] == 0
        # A third run changes nothing: deletions are applied once.
        assert _ingest(config).success
        with connect(db) as con:
            assert con.execute("select count(*) from ops.post_withdrawals").fetchone()[0] == 3


def test_missing_credential_variable_is_named(tmp_path, social, monkeypatch):
    from social311.integrations.testing.social_fakes import MastodonFake

    monkeypatch.delenv("TEST_MASTODON_TOKEN", raising=False)
    with MastodonFake(social) as fake:
        config = _city(tmp_path, fake.url)
        with pytest.raises(Exception, match="TEST_MASTODON_TOKEN"):
            CityResource(config_path=config).sources()


def test_listen_once_cli_and_sensor_default_off(tmp_path, social, monkeypatch, capsys):
    from social311.cli import main
    from social311.integrations.testing.social_fakes import MastodonFake
    from social311.orchestration.listen import listen_defs

    monkeypatch.setenv("TEST_MASTODON_TOKEN", "token-from-env")
    with MastodonFake(social) as fake:
        fake.add_posts([f"pothole {i} by the school" for i in range(4)])
        config = _city(tmp_path, fake.url)
        assert main(["listen", "--config", config, "--source", "masto", "--once"]) == 0
        assert "masto: 4 fetched, 4 new, 0 quarantined" in capsys.readouterr().out
        fake.add_posts(["pothole again"])
        assert main(["listen", "--config", config, "--source", "masto", "--once"]) == 0
        assert "masto: 1 fetched, 1 new" in capsys.readouterr().out
        assert main(["listen", "--config", config, "--source", "nope", "--once"]) == 2
        assert "no source named 'nope'" in capsys.readouterr().err
    defs = listen_defs(config)
    sensor = defs.resolve_sensor_def("listen_masto")
    assert sensor.default_status == dg.DefaultSensorStatus.STOPPED
