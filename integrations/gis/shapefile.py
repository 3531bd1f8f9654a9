"""Shapefile GIS: ward boundaries from an Esri Shapefile, as a folder, a ``.shp`` or a ``.zip``.

The file is read by GDAL inside DuckDB spatial (``ST_Read``), and its CRS from the ``.prj``
(``ST_Read_Meta``), so state-plane exports are reprojected without extra packages. A Shapefile
without a ``.prj`` is read as lon/lat when its coordinates are degrees, else its features are
quarantined until ``source_crs`` is set. A truncated ``.shp`` keeps the features GDAL can read
and quarantines the rest with GDAL's own words.
"""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any

import duckdb
import shapely

from social311.integrations.gis.base import GISPlugin
from social311.integrations.gis.normalise import BoundaryConfig, RawWard, normalise_wards
from social311.records import WardSet
from social311.warehouse import extension_dir


class ShapefileError(ValueError):
    """The Shapefile cannot be found or opened at all."""


class ShapefileConfig(BoundaryConfig):
    """Where the Shapefile is; ``layer`` picks one ``.shp`` when a folder or zip holds several."""

    wards_path: str
    layer: str | None = None


def gdal_path(path: str | Path, layer: str | None = None) -> str:
    """The path GDAL opens: the ``.shp`` itself, in a folder, or inside a zip (``/vsizip/``).

    Raises:
        ShapefileError: nothing to open, or several layers and no ``layer`` named.
    """
    path = Path(path)
    if path.suffix.lower() == ".zip":
        try:
            with zipfile.ZipFile(path) as zf:
                names = [n for n in zf.namelist() if n.lower().endswith(".shp")]
        except (OSError, zipfile.BadZipFile) as exc:
            raise ShapefileError(f"cannot open zip {path}: {exc}") from exc
        return f"/vsizip/{path.resolve()}/{_pick(names, layer, path)}"
    if path.is_dir():
        names = sorted(p.name for p in path.iterdir() if p.suffix.lower() == ".shp")
        return str(path / _pick(names, layer, path))
    if not path.exists():
        raise ShapefileError(f"cannot read Shapefile {path}: no such file")
    return str(path)


def _pick(names: list[str], layer: str | None, where: Path) -> str:
    if layer:
        names = [n for n in names if Path(n).stem == layer]
    if len(names) != 1:
        raise ShapefileError(f"{where} holds {len(names)} matching .shp files {names[:5]}; name one with `layer`")
    return names[0]


def _connect() -> duckdb.DuckDBPyConnection:
    con = duckdb.connect(config={"extension_directory": extension_dir(), "autoinstall_known_extensions": False})
    con.execute("LOAD spatial")
    return con


def layer_crs(con: duckdb.DuckDBPyConnection, path: str) -> str | None:
    """The layer's CRS as ``EPSG:nnnn`` when GDAL identifies one, else its WKT, else None (no .prj)."""
    meta = con.execute("select layers from st_read_meta(?)", [path]).fetchone()
    fields = (meta[0][0]["geometry_fields"] if meta and meta[0] else []) or []
    crs = fields[0].get("crs") if fields else None
    if not crs:
        return None
    if crs.get("auth_name") and crs.get("auth_code"):
        return f"{crs['auth_name']}:{crs['auth_code']}"
    return crs.get("wkt") or None


def read_rows(con: duckdb.DuckDBPyConnection, path: str) -> tuple[list[tuple[dict[str, Any], bytes | None]], str | None]:
    """(properties, WKB) of every feature, or no rows and GDAL's error when the file is broken.

    GDAL reads a Shapefile in batches, so a truncated ``.shp`` fails as a whole: nothing of it
    is trusted (a half-read boundary set would move posts to the wrong ward quietly).
    """
    try:
        return _rows(con.execute("select * from st_read(?, keep_wkb := true)", [path])), None
    except duckdb.Error as exc:
        return [], str(exc).splitlines()[0]


def prj_text(path: str) -> str | None:
    """The ``.prj`` beside a ``.shp`` (also inside a zip), for when GDAL's metadata is silent."""
    if path.startswith("/vsizip/"):
        inner = path[len("/vsizip/"):]
        zip_end = inner.lower().index(".zip") + 4
        archive, member = inner[:zip_end], inner[zip_end + 1:]
        prj = member[:-4] + ".prj"
        with zipfile.ZipFile(archive) as zf:
            match = [n for n in zf.namelist() if n.lower() == prj.lower()]
            return zf.read(match[0]).decode("utf-8", "replace").strip() or None if match else None
    prj_path = Path(path).with_suffix(".prj")
    return prj_path.read_text(encoding="utf-8", errors="replace").strip() or None if prj_path.exists() else None


def _rows(cur: duckdb.DuckDBPyConnection) -> list[tuple[dict[str, Any], bytes | None]]:
    cols = [d[0] for d in cur.description]
    geom_col = cols.index("wkb_geometry") if "wkb_geometry" in cols else None
    out = []
    for row in cur.fetchall():
        props = {c: v for i, (c, v) in enumerate(zip(cols, row)) if i != geom_col}
        out.append((props, bytes(row[geom_col]) if geom_col is not None and row[geom_col] is not None else None))
    return out


class ShapefileGIS(GISPlugin):
    """Wards from a Shapefile (folder, ``.shp`` or ``.zip``) in whatever CRS its ``.prj`` declares."""

    config_model = ShapefileConfig
    config: ShapefileConfig

    def wards(self) -> WardSet:
        """The boundary set in EPSG:4326; unreadable features land in ``rejects``.

        Raises:
            ShapefileError: the Shapefile cannot be found or opened at all.
        """
        cfg = self.config
        path = gdal_path(cfg.wards_path, cfg.layer)
        name = Path(path).name
        con = _connect()
        try:
            try:
                crs = layer_crs(con, path) or prj_text(path)
            except duckdb.Error as exc:
                raise ShapefileError(f"cannot open Shapefile {path}: {str(exc).splitlines()[0]}") from exc
            rows, error = read_rows(con, path)
        finally:
            con.close()
        raws = []
        for i, (props, wkb) in enumerate(rows):
            try:
                geom = shapely.from_wkb(wkb) if wkb else None
            except shapely.errors.ShapelyError as exc:
                raws.append(RawWard(f"{name}#{i}", props, problem=f"unreadable geometry: {exc}"))
                continue
            raws.append(RawWard(f"{name}#{i}", props, geom))
        if error:
            raws.append(RawWard(f"{name}", {"file": name}, problem=f"unreadable Shapefile (truncated?): {error[:200]}"))
        return normalise_wards(raws, cfg, source=self.instance_name, declared_crs=crs)
