"""The contract every GIS plugin keeps: a versioned, valid, uniquely keyed boundary set."""

from __future__ import annotations

from pathlib import Path

import pytest
import shapely

from social311.integrations.gis.base import GISPlugin
from social311.records import Place, Reject, WardSet


class GISContract:
    """Subclass as ``Test...`` and implement :meth:`make_gis`; pytest runs every test."""

    def make_gis(self, tmp_path: Path) -> GISPlugin:
        """A GIS plugin with at least one ward, reading only from ``tmp_path`` or fixed files."""
        raise NotImplementedError

    @pytest.fixture
    def gis(self, tmp_path: Path) -> GISPlugin:
        return self.make_gis(tmp_path)

    @pytest.fixture
    def ward_set(self, gis: GISPlugin) -> WardSet:
        return gis.wards()

    def test_wards_non_empty_with_unique_ids(self, ward_set: WardSet) -> None:
        assert isinstance(ward_set, WardSet)
        ids = [w.ward_id for w in ward_set.wards]
        assert ids, "a boundary set needs at least one ward"
        assert len(ids) == len(set(ids))
        assert all(isinstance(r, Reject) for r in ward_set.rejects)

    def test_versions_set(self, ward_set: WardSet) -> None:
        assert ward_set.version.strip()
        if ward_set.valid_from and ward_set.valid_to:
            assert ward_set.valid_from <= ward_set.valid_to

    def test_geometry_is_valid_polygonal_wgs84(self, ward_set: WardSet) -> None:
        for ward in ward_set.wards:
            geom = shapely.from_wkt(ward.geometry_wkt)
            assert geom.geom_type in ("Polygon", "MultiPolygon"), ward.ward_id
            assert not geom.is_empty and geom.is_valid, ward.ward_id
            min_x, min_y, max_x, max_y = geom.bounds
            assert -180 <= min_x <= max_x <= 180 and -90 <= min_y <= max_y <= 90, ward.ward_id

    def test_places_have_coordinates_in_range(self, gis: GISPlugin) -> None:
        places = gis.places()
        assert all(isinstance(p, Place) for p in places)
        ids = [p.place_id for p in places]
        assert len(ids) == len(set(ids))
        for place in places:
            assert place.name.strip()
            assert -90 <= place.lat <= 90 and -180 <= place.lon <= 180
            assert not (place.lat == 0 and place.lon == 0), place.place_id


# --- Real backends for tests: a throwaway PostGIS cluster and an ArcGIS FeatureServer on loopback.

def postgis_binaries() -> tuple[Path | None, str]:
    """The PostgreSQL ``bin`` folder whose server has PostGIS installed, or None and why not."""
    import glob

    for bindir in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        version = Path(bindir).parent.name
        if Path(f"/usr/share/postgresql/{version}/extension/postgis.control").exists():
            return Path(bindir), ""
    return None, ("PostgreSQL + PostGIS not installed (apt-get install postgresql-15-postgis-3 "
                  "postgresql-15-postgis-3-scripts; .ci/run does it)")


class PostGISCluster:
    """A throwaway PostgreSQL + PostGIS server on 127.0.0.1, in a temp folder, stopped on exit.

    PostgreSQL refuses to run as root, so as root the server runs as the ``postgres`` user.
    Authentication is ``trust`` on loopback only; ``url`` is a SQLAlchemy URL to its database.
    """

    def __init__(self, bindir: Path) -> None:
        import tempfile

        self.bindir = bindir
        self.root = Path(tempfile.mkdtemp(prefix="social311-pg-"))
        self.port = _free_port()
        self.url = f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str) -> None:
        import os
        import subprocess

        cmd = [str(self.bindir / args[0]), *args[1:]]
        if os.geteuid() == 0:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        subprocess.run(cmd, check=True, capture_output=True, timeout=120)

    def __enter__(self) -> "PostGISCluster":
        import os
        import shutil

        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres", "postgres")
        data = self.root / "data"
        self._run("initdb", "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync")
        opts = f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.root} -c fsync=off -c full_page_writes=off"
        self._run("pg_ctl", "-D", str(data), "-o", opts, "-l", str(self.root / "log"), "-w", "-t", "60", "start")
        import sqlalchemy as sa

        engine = sa.create_engine(self.url)
        with engine.begin() as con:
            con.execute(sa.text("create extension if not exists postgis"))
        engine.dispose()
        return self

    def __exit__(self, *exc: object) -> None:
        import shutil
        import subprocess

        try:
            self._run("pg_ctl", "-D", str(self.root / "data"), "-m", "immediate", "-w", "stop")
        except subprocess.SubprocessError:
            pass
        shutil.rmtree(self.root, ignore_errors=True)


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class FeatureServerSandbox:
    """An ArcGIS REST FeatureServer layer on loopback, answering the documented query format.

    ``GET /arcgis/rest/services/<name>/FeatureServer/0/query?where=1=1&outFields=*&f=geojson``
    with ``resultOffset`` / ``resultRecordCount`` paging capped at ``max_record_count``;
    ``exceededTransferLimit`` (under ``properties``, as Esri's GeoJSON puts it) says more remain.
    With ``token`` set, requests without it get Esri's ``{"error": {"code": 499, ...}}``.
    ``requests`` counts the query calls, so tests can see the paging.
    """

    def __init__(self, features: list[dict], *, max_record_count: int = 1000, token: str | None = None,
                 name: str = "Wards") -> None:
        self.features = features
        self.max_record_count = max_record_count
        self.token = token
        self.name = name
        self.requests: list[dict[str, str]] = []
        self._server = None

    @property
    def layer_url(self) -> str:
        host, port = self._server.server_address
        return f"http://{host}:{port}/arcgis/rest/services/{self.name}/FeatureServer/0"

    def answer(self, path: str, query: dict[str, str]) -> tuple[int, dict]:
        """The (HTTP status, JSON body) Esri's server gives for one request."""
        if not path.endswith(f"/services/{self.name}/FeatureServer/0/query"):
            return 404, {"error": {"code": 400, "message": "Invalid URL", "details": []}}
        self.requests.append(query)
        if self.token and query.get("token") != self.token:
            code, msg = (499, "Token Required") if "token" not in query else (498, "Invalid Token")
            return 200, {"error": {"code": code, "message": msg, "details": []}}
        if query.get("f") != "geojson" or query.get("where") != "1=1":
            return 200, {"error": {"code": 400, "message": "Unable to complete operation.", "details": []}}
        offset = int(query.get("resultOffset", 0))
        count = min(int(query.get("resultRecordCount", self.max_record_count)), self.max_record_count)
        page = self.features[offset : offset + count]
        body = {"type": "FeatureCollection", "features": page}
        if offset + count < len(self.features):
            body["properties"] = {"exceededTransferLimit": True}
        return 200, body

    def __enter__(self) -> "FeatureServerSandbox":
        import json
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
        from urllib.parse import parse_qsl, urlsplit

        sandbox = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                parts = urlsplit(self.path)
                status, body = sandbox.answer(parts.path, dict(parse_qsl(parts.query)))
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/geo+json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
