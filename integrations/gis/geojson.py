"""GeoJSON GIS: ward boundaries and a gazetteer from GeoJSON files the city exports.

Most city GIS teams can export their council districts as GeoJSON in WGS84. Broken features
are repaired where that is safe (``shapely.make_valid``, keeping polygonal parts) and rejected
with a reason where it is not (no geometry, no id, a repeated id, projected coordinates).
"""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Any

import shapely
from pydantic import ValidationError
from shapely.errors import ShapelyError
from shapely.geometry import MultiPolygon, Polygon, shape

from social311.integrations.base import PluginConfig
from social311.integrations.gis.base import GISPlugin
from social311.records import Place, Reject, Ward, WardSet


class GISFileError(ValueError):
    """The boundary or places file cannot be read as a GeoJSON FeatureCollection."""


class GeoJSONConfig(PluginConfig):
    """Where the files are and which properties hold the ward id and name."""

    wards_path: str
    places_path: str | None = None
    ward_id_property: str = "ward_id"
    ward_name_property: str | None = None
    boundary_version: str
    valid_from: date | None = None
    valid_to: date | None = None


def read_features(path: str | Path) -> list[dict[str, Any]]:
    """The features of a GeoJSON FeatureCollection file.

    Raises:
        GISFileError: the file is missing, not JSON, or not a FeatureCollection.
    """
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise GISFileError(f"cannot read GeoJSON {path}: {exc}") from exc
    if not isinstance(data, dict) or not isinstance(data.get("features"), list):
        raise GISFileError(f"{path} is not a GeoJSON FeatureCollection")
    return data["features"]


def polygonal(geom: Any) -> Polygon | MultiPolygon | None:
    """The polygonal part of ``geom`` after repair, or None when nothing polygonal is left."""
    if not geom.is_valid:
        geom = shapely.make_valid(geom)
    parts = [g for g in getattr(geom, "geoms", [geom]) if isinstance(g, (Polygon, MultiPolygon)) and not g.is_empty]
    polys = [p for g in parts for p in getattr(g, "geoms", [g])]
    if not polys:
        return None
    return polys[0] if len(polys) == 1 else MultiPolygon(polys)


def _id_text(value: Any) -> str:
    # Shapefile exports turn "7" into 7 or 7.0; ids are compared as text.
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return "" if value is None else str(value).strip()


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
        wards: list[Ward] = []
        rejects: list[Reject] = []
        first_seen: dict[str, int] = {}
        for index, feat in enumerate(read_features(cfg.wards_path)):
            props = (feat.get("properties") or {}) if isinstance(feat, dict) else {}
            ward_id = _id_text(props.get(cfg.ward_id_property))
            ref = f"{Path(cfg.wards_path).name}#{index}" + (f" (ward {ward_id})" if ward_id else "")
            problem, geom = self._ward_geometry(feat)
            if not ward_id:
                problem = f"no {cfg.ward_id_property!r} property"
            elif ward_id in first_seen:
                problem = f"duplicate ward id {ward_id!r}, first at feature {first_seen[ward_id]}"
            if problem:
                rejects.append(Reject(source=self.instance_name, record_ref=ref, reason=problem,
                                      raw_excerpt=json.dumps(props, default=str)[:200]))
                continue
            first_seen[ward_id] = index
            name = props.get(cfg.ward_name_property) if cfg.ward_name_property else None
            wards.append(Ward(ward_id=ward_id, name=str(name) if name else f"Ward {ward_id}",
                              geometry_wkt=shapely.to_wkt(geom, rounding_precision=-1)))
        return WardSet(version=cfg.boundary_version, valid_from=cfg.valid_from, valid_to=cfg.valid_to,
                       wards=tuple(wards), rejects=tuple(rejects))

    @staticmethod
    def _ward_geometry(feat: Any) -> tuple[str | None, Any]:
        raw = feat.get("geometry") if isinstance(feat, dict) else None
        if not raw:
            return "no geometry", None
        try:
            geom = shape(raw)
        except (ValueError, TypeError, AttributeError, IndexError, KeyError, ShapelyError) as exc:
            return f"unreadable geometry: {exc}", None
        if geom.is_empty:
            return "empty geometry", None
        fixed = polygonal(geom)
        if fixed is None:
            return f"no polygonal part in a {geom.geom_type}", None
        min_x, min_y, max_x, max_y = fixed.bounds
        if min_x < -180 or max_x > 180 or min_y < -90 or max_y > 90:
            return "coordinates outside EPSG:4326 degrees (projected file? export in WGS84)", None
        return None, fixed

    def places(self) -> list[Place]:
        """The gazetteer; features that are not valid places are left out (see ``read_places``)."""
        return self.read_places()[0]

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
