"""Reprojection to EPSG:4326 with PROJ, through DuckDB spatial's ``ST_Transform``.

DuckDB spatial bundles PROJ and its database, so any CRS a city's source declares (an EPSG
code, an OGC URN, the WKT of a Shapefile's ``.prj``) is understood offline without pyproj.
Axis order is always (x, y) = (lon, lat): sources write coordinates that way whatever the
CRS definition says, and GeoJSON requires it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import duckdb
import shapely
from shapely.geometry.base import BaseGeometry

from social311.warehouse import extension_dir


class CRSError(ValueError):
    """The declared CRS is unknown to PROJ or the coordinates cannot be transformed."""


_WGS84 = re.compile(
    r"^(?:epsg:{1,2}4326|4326|urn:ogc:def:crs:epsg:[\d.]*:4326|urn:ogc:def:crs:ogc:[\d.]*:crs84|crs84|ogc:crs84)$",
    re.IGNORECASE,
)


def canonical_crs(crs: str | int | None) -> str | None:
    """A CRS spelled as PROJ reads it: ``3435`` and ``urn:ogc:def:crs:EPSG::3435`` become ``EPSG:3435``."""
    if crs is None or str(crs).strip() == "":
        return None
    text = str(crs).strip()
    if text.isdigit():
        return f"EPSG:{text}"
    m = re.match(r"^urn:ogc:def:crs:epsg:[\d.]*:(\d+)$", text, re.IGNORECASE) or re.match(r"^epsg:{1,2}(\d+)$", text, re.IGNORECASE)
    return f"EPSG:{m.group(1)}" if m else text


def is_wgs84(crs: str | None) -> bool:
    """True for the CRSs whose coordinates are already lon/lat degrees on WGS84."""
    if crs is None:
        return False
    text = crs.strip()
    if _WGS84.match(text):
        return True
    # The .prj ArcGIS writes for WGS84 is a bare GEOGCS named GCS_WGS_1984 / WGS 84.
    return text.upper().startswith("GEOGCS[") and re.search(r'"(GCS_WGS_1984|WGS 84)"', text) is not None


def to_wgs84(geoms: Sequence[BaseGeometry], crs: str) -> list[BaseGeometry]:
    """The geometries transformed from ``crs`` to EPSG:4326, in (lon, lat) order.

    Raises:
        CRSError: PROJ does not know ``crs`` or cannot transform the coordinates.
    """
    if not geoms or is_wgs84(crs):
        return list(geoms)
    con = duckdb.connect(config={"extension_directory": extension_dir(), "autoinstall_known_extensions": False})
    try:
        con.execute("LOAD spatial")
        con.execute("create table g (i integer, wkb blob)")
        con.executemany("insert into g values (?, ?)", [(i, shapely.to_wkb(g)) for i, g in enumerate(geoms)])
        rows = con.execute(
            "select i, st_aswkb(st_transform(st_geomfromwkb(wkb), ?, 'EPSG:4326', always_xy := true)) from g order by i",
            [crs],
        ).fetchall()
    except duckdb.Error as exc:
        raise CRSError(f"cannot reproject from {crs[:80]!r} to EPSG:4326: {str(exc).splitlines()[0][:200]}") from exc
    finally:
        con.close()
    return [shapely.from_wkb(bytes(wkb)) for _, wkb in rows]
