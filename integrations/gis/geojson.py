"""GeoJSON GIS: ward boundaries and a gazetteer from GeoJSON files the city exports.

Most city GIS teams can export their council districts as GeoJSON in WGS84; older exports name
a projected CRS in a ``crs`` member, and are reprojected. Features go through the shared
normalisation (``normalise.py``): repaired where that is safe, quarantined with a reason where
it is not (no geometry, no id, a repeated id, projected coordinates with no CRS).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import shapely
from pydantic import ValidationError
from shapely.geometry import shape

from social311.integrations.gis.base import GISPlugin
from social311.integrations.gis.normalise import (
    GEOMETRY_ERRORS, BoundaryConfig, RawWard, id_text as _id_text, normalise_wards,
)
from social311.records import Place, Reject, StreetSegment, WardSet


class GISFileError(ValueError):
    """The boundary or places file cannot be read as a GeoJSON FeatureCollection."""


class GeoJSONConfig(BoundaryConfig):
    """Where the files are and which properties hold the ward id and name."""

    wards_path: str
    places_path: str | None = None
    # Street centerlines: every file in streets_dir matching streets_pattern; the part of the
    # file name the "*" stands for is the area (borough) of its streets.
    streets_dir: str | None = None
    streets_pattern: str = "*.geojson"
    street_name_property: str = "name"
    street_from_property: str | None = None  # house number at the first vertex, if the layer has ranges
    street_to_property: str | None = None
    # Name lists (JSON arrays) per area in streets_dir, e.g. for an area whose geometry is missing.
    street_names_pattern: str | None = None
    # Address points (one Point per address): house numbers placed exactly, no ranges needed.
    # Either a number and a street property, or one property holding "1382 Dumont Ave".
    address_points_path: str | None = None
    address_number_property: str = "number"
    address_street_property: str = "street"
    address_property: str | None = None
    address_area_property: str | None = None


# Defaults of the input limits (``BoundaryConfig.max_file_bytes`` / ``max_json_depth``).
MAX_FILE_BYTES = 512 * 1024 * 1024
MAX_JSON_DEPTH = 64


def read_features(path: str | Path, *, max_bytes: int = MAX_FILE_BYTES) -> list[dict[str, Any]]:
    """The features of a GeoJSON FeatureCollection file (see ``read_collection``)."""
    return read_collection(path, max_bytes=max_bytes)["features"]


def read_collection(path: str | Path, *, max_bytes: int = MAX_FILE_BYTES) -> dict[str, Any]:
    """A GeoJSON FeatureCollection file as a dict.

    Raises:
        GISFileError: the file is missing, larger than ``max_bytes``, not JSON (or nested so
            deep the parser gives up), or not a FeatureCollection.
    """
    try:
        size = Path(path).stat().st_size
        if size > max_bytes:
            raise GISFileError(f"GeoJSON {path} is {size:,} bytes, over the {max_bytes:,}-byte limit (max_file_bytes)")
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except RecursionError as exc:
        raise GISFileError(f"cannot read GeoJSON {path}: nested too deeply") from exc
    except (OSError, ValueError) as exc:
        if isinstance(exc, GISFileError):
            raise
        raise GISFileError(f"cannot read GeoJSON {path}: {str(exc)[:300]}") from exc
    if not isinstance(data, dict) or not isinstance(data.get("features"), list):
        raise GISFileError(f"{path} is not a GeoJSON FeatureCollection")
    return data


def too_deep(value: Any, limit: int) -> bool:
    """True when ``value`` nests lists/dicts more than ``limit`` levels (iterative: no recursion)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, (list, dict)):
            if depth > limit:
                return True
            stack.extend((v, depth + 1) for v in (item.values() if isinstance(item, dict) else item))
    return False


def declared_crs(collection: dict[str, Any]) -> str | None:
    """The pre-RFC 7946 ``crs`` member (``{"type": "name", "properties": {"name": ...}}``), if any.

    RFC 7946 GeoJSON is always WGS84 lon/lat; older exports from desktop GIS still name their
    CRS, often a state plane in feet.
    """
    crs = collection.get("crs")
    name = crs.get("properties", {}).get("name") if isinstance(crs, dict) and isinstance(crs.get("properties"), dict) else None
    return str(name) if name else None


def _unclosed(raw: Any) -> bool:
    if not isinstance(raw, dict) or raw.get("type") not in ("Polygon", "MultiPolygon"):
        return False
    polys = raw.get("coordinates") or []
    polys = polys if raw["type"] == "MultiPolygon" else [polys]
    try:
        return any(list(ring[0]) != list(ring[-1]) for poly in polys for ring in poly if ring)
    except (TypeError, IndexError, KeyError):
        return False


def _raw_ward(ref: str, feat: Any, max_depth: int = MAX_JSON_DEPTH) -> RawWard:
    """One feature read as far as it goes; what stops it becomes ``problem``."""
    if isinstance(feat, dict) and too_deep(feat, max_depth):
        return RawWard(ref, {}, problem=f"feature nested deeper than {max_depth} levels (max_json_depth)")
    props = (feat.get("properties") or {}) if isinstance(feat, dict) else {}
    props = props if isinstance(props, dict) else {}
    raw = feat.get("geometry") if isinstance(feat, dict) else None
    if not raw:
        return RawWard(ref, props, problem="no geometry")
    try:
        geom = shape(raw)
    except GEOMETRY_ERRORS as exc:
        return RawWard(ref, props, problem=f"unreadable geometry: {type(exc).__name__}: {str(exc)[:200]}")
    # shapely closes open rings silently; the GIS team should still hear about them.
    fixes = ("unclosed ring closed",) if _unclosed(raw) else ()
    return RawWard(ref, props, geom, fixes=fixes)


class GeoJSONGIS(GISPlugin):
    """Wards and places from GeoJSON files in EPSG:4326."""

    config_model = GeoJSONConfig
    config: GeoJSONConfig

    def wards(self) -> WardSet:
        """The boundary set; broken features are repaired or land in ``rejects``.

        Raises:
            GISFileError: the wards file cannot be read at all.
        """
        cfg = self.config
        data = read_collection(cfg.wards_path, max_bytes=cfg.max_file_bytes)
        name = Path(cfg.wards_path).name
        raws = [_raw_ward(f"{name}#{i}", feat, cfg.max_json_depth) for i, feat in enumerate(data["features"])]
        return normalise_wards(raws, cfg, source=self.instance_name, declared_crs=declared_crs(data))

    def places(self) -> list[Place]:
        """The gazetteer; features that are not valid places are left out (see ``read_places``),
        plus the address points (``address_points_path``)."""
        return self.read_places()[0] + self.address_points()

    def address_points(self) -> list[Place]:
        """One ``address`` place per Point of the address-point layer with a number and a street."""
        cfg = self.config
        if not cfg.address_points_path:
            return []
        out = []
        for index, feat in enumerate(read_features(cfg.address_points_path)):
            props = (feat.get("properties") or {}) if isinstance(feat, dict) else {}
            geom = (feat.get("geometry") or {}) if isinstance(feat, dict) else {}
            coords = geom.get("coordinates") if isinstance(geom, dict) and geom.get("type") == "Point" else None
            if cfg.address_property:
                found = re.match(r"\s*0*(\d+)[A-Za-z]?\s+(.+)", str(props.get(cfg.address_property) or ""))
                number, street = (found.group(1), found.group(2).split(",")[0].strip()) if found else (None, "")
            else:
                number, street = _house_number(props.get(cfg.address_number_property)), str(props.get(cfg.address_street_property) or "").strip()
            try:
                lon, lat = float(coords[0]), float(coords[1])
            except (TypeError, ValueError, IndexError):
                continue
            if number is None or not street or not (-180 <= lon <= 180 and -90 <= lat <= 90):
                continue
            area = props.get(cfg.address_area_property) if cfg.address_area_property else None
            out.append(Place(place_id=f"ap:{index}", name=f"{int(number)} {street}", kind="address", lat=lat, lon=lon,
                             streets=(street,), area=str(area) if area else None))
        return out

    def read_places(self) -> tuple[list[Place], list[Reject]]:
        """The gazetteer and the features that could not become places, with reasons.

        Properties read: ``place_id`` (or the feature ``id``), ``name``, ``kind``, ``aliases``,
        ``streets``; the geometry must be a Point.
        """
        if not self.config.places_path:
            return [], []
        places: list[Place] = []
        rejects: list[Reject] = []
        seen: set[str] = set()
        for index, feat in enumerate(read_features(self.config.places_path)):
            ref = f"{Path(self.config.places_path).name}#{index}"
            props = dict((feat.get("properties") or {}) if isinstance(feat, dict) else {})
            geom = (feat.get("geometry") or {}) if isinstance(feat, dict) else {}
            coords = geom.get("coordinates") if geom.get("type") == "Point" else None
            reason = None
            if not coords or len(coords) < 2:
                reason = "geometry is not a Point"
            else:
                try:
                    place = Place(
                        place_id=_id_text(props.get("place_id", feat.get("id"))),
                        name=props.get("name"), kind=props.get("kind"),
                        lon=coords[0], lat=coords[1],
                        aliases=tuple(props.get("aliases") or ()), streets=tuple(props.get("streets") or ()),
                    )
                except ValidationError as exc:
                    reason = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
                else:
                    if not place.place_id:
                        reason = "no place_id"
                    elif place.place_id in seen:
                        reason = f"duplicate place_id {place.place_id!r}"
            if reason:
                rejects.append(Reject(source=self.instance_name, record_ref=ref, reason=reason,
                                      raw_excerpt=json.dumps(props, default=str)[:200]))
                continue
            seen.add(place.place_id)
            places.append(place)
        return places, rejects

    def street_names(self) -> dict[str, list[str]]:
        """Street names by area: from the name lists (``street_names_pattern``) and the centerlines."""
        names = {area: set(n) for area, n in super().street_names().items()}
        cfg = self.config
        if cfg.streets_dir and cfg.street_names_pattern:
            for path in sorted(Path(cfg.streets_dir).glob(cfg.street_names_pattern)):
                try:
                    listed = json.loads(path.read_text(encoding="utf-8"))
                except (OSError, ValueError) as exc:
                    raise GISFileError(f"cannot read street names {path}: {exc}") from exc
                names.setdefault(_area(path.name, cfg.street_names_pattern) or "", set()).update(
                    str(n) for n in listed if isinstance(n, str) and n.strip())
        return {area: sorted(n) for area, n in names.items()}

    def streets(self) -> list[StreetSegment]:
        """Street centerline segments of every ``streets_dir`` file; unnamed or non-line features skipped."""
        cfg = self.config
        if not cfg.streets_dir:
            return []
        prefix, _, suffix = cfg.streets_pattern.partition("*")
        kept: list[tuple[str, str, str | None, Any, dict]] = []
        for path in sorted(Path(cfg.streets_dir).glob(cfg.streets_pattern)):
            area = path.name[len(prefix) : len(path.name) - len(suffix)].replace("_", " ") or None
            for index, feat in enumerate(read_features(path)):
                props = (feat.get("properties") or {}) if isinstance(feat, dict) else {}
                props = props if isinstance(props, dict) else {}
                name = str(props.get(cfg.street_name_property) or "").strip()
                geom = feat.get("geometry") if isinstance(feat, dict) else None
                if not name or not isinstance(geom, dict) or geom.get("type") not in ("LineString", "MultiLineString"):
                    continue
                kept.append((f"{path.stem}#{index}", name, area, geom, props))
        # One vectorised GEOS parse and WKT write for the whole layer (20,000 segments: ~1 s, not ~5 s);
        # a feature GEOS cannot read is skipped alone.
        geoms = _lines([k[3] for k in kept])
        ok = ~(shapely.is_missing(geoms) | shapely.is_empty(geoms))
        wkts = shapely.to_wkt(geoms[ok])
        segments = []
        for (sid, name, area, _, props), wkt in zip((k for k, good in zip(kept, ok) if good), wkts):
            segments.append(StreetSegment(
                segment_id=sid, name=name, area=area, geometry_wkt=wkt,
                from_address=_house_number(props.get(cfg.street_from_property)) if cfg.street_from_property else None,
                to_address=_house_number(props.get(cfg.street_to_property)) if cfg.street_to_property else None))
        return segments


def _lines(geoms: list[dict]) -> np.ndarray:
    """GeoJSON line geometries as shapely geometries (None where one cannot be read)."""
    try:
        return shapely.from_geojson([json.dumps(g) for g in geoms], on_invalid="ignore") if geoms else np.array([], dtype=object)
    except GEOMETRY_ERRORS:
        out = []
        for g in geoms:
            try:
                out.append(shape(g))
            except GEOMETRY_ERRORS:
                out.append(None)
        return np.array(out, dtype=object)


def _house_number(value: Any) -> int | None:
    try:
        return int(float(value))
    except (TypeError, ValueError):
        return None


def _area(name: str, pattern: str) -> str | None:
    prefix, _, suffix = pattern.partition("*")
    return name[len(prefix) : len(name) - len(suffix)].replace("_", " ") or None
