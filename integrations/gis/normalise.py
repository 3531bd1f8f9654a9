"""One normalisation for every boundary backend: whatever the source, the same WardSet comes out.

Each backend only reads raw features (properties + a shapely geometry, or the reason it could
not) and the CRS the source declares; this module turns them into a ``WardSet`` in EPSG:4326:

- reprojected from the declared CRS (state-plane feet are common) with PROJ;
- invalid geometries repaired (``make_valid``, polygonal parts kept), each repair recorded;
- swapped axes (lat, lon) detected against the city's extent and swapped back, recorded;
- empty, degenerate (no area) or unreadable geometries, missing and duplicate ids quarantined
  with a reason, never raised.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import numpy as np
import shapely
from shapely.errors import ShapelyError
from shapely.geometry import MultiPolygon, Polygon, box
from shapely.geometry.base import BaseGeometry

from pydantic import Field, field_validator

from social311.integrations.base import PluginConfig
from social311.integrations.gis.reproject import CRSError, canonical_crs, is_wgs84, to_wgs84
from social311.records import Reject, Repair, Ward, WardSet

# Below this area (in squared degrees, about 1 m² at mid latitudes) a ward is degenerate.
MIN_AREA_DEG2 = 1e-10
# What GEOS, PROJ or numpy may raise on one hostile feature (NaN vertex, absurd coordinates):
# the feature is quarantined with the message, the others load.
GEOMETRY_ERRORS = (ShapelyError, ValueError, TypeError, AttributeError, IndexError, KeyError, OverflowError,
                   FloatingPointError, RecursionError, MemoryError)


class BoundaryConfig(PluginConfig):
    """Settings every boundary backend shares: which fields, which version, which CRS."""

    ward_id_property: str = "ward_id"
    ward_name_property: str | None = None
    boundary_version: str
    valid_from: date | None = None
    valid_to: date | None = None
    source_crs: str | None = None  # overrides / stands in for what the source declares
    expected_bbox: tuple[float, float, float, float] | None = None  # city extent (lon/lat): catches swapped axes
    # Ward labels come as "Ward 5", "05" and "5": a regex removed from the front of each id (e.g.
    # "(?i)ward\\s*"), and leading zeros dropped from numeric ids, so they all read "5".
    ward_id_strip_prefix: str | None = None
    ward_id_strip_zeros: bool = False
    # A new load replaces its boundary version only when at least this share of the ward ids
    # the version has now is present in it; else the previous wards stay and a check says so.
    replace_min_share: float = Field(1.0, ge=0, le=1)
    # Input limits of file backends: a ward file larger than this, or nested deeper, is refused.
    max_file_bytes: int = Field(512 * 1024 * 1024, gt=0)
    max_json_depth: int = Field(64, ge=8)

    @field_validator("ward_id_strip_prefix")
    @classmethod
    def _regex(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"ward_id_strip_prefix is not a regular expression: {exc}") from exc
        return value


@dataclass(frozen=True)
class RawWard:
    """One feature as a backend read it, before any normalisation."""

    ref: str  # where it came from, e.g. "wards.shp#12"
    props: dict[str, Any] = field(default_factory=dict)
    geometry: BaseGeometry | None = None
    problem: str | None = None  # why the backend could not read a geometry
    fixes: tuple[str, ...] = ()  # repairs the backend already made while reading (e.g. a ring closed)


def id_text(value: Any) -> str:
    """A ward id as text: Shapefile and database exports turn "7" into 7 or 7.0."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return "" if value is None else str(value).strip()


def ward_id(value: Any, cfg: BoundaryConfig) -> str:
    """The ward id as ``cfg`` normalises it: prefix regex removed, leading zeros of numbers dropped."""
    text = id_text(value)
    if cfg.ward_id_strip_prefix:
        found = re.match(cfg.ward_id_strip_prefix, text)
        text = text[found.end():].strip() if found else text
    if cfg.ward_id_strip_zeros and text.isdigit():
        text = str(int(text))
    return text


def non_finite(geom: BaseGeometry) -> bool:
    """True when a vertex is NaN or infinite (GEOS raises on such geometries in ``make_valid``)."""
    return not bool(np.isfinite(shapely.get_coordinates(geom)).all())


def polygonal(geom: BaseGeometry) -> Polygon | MultiPolygon | None:
    """The polygonal part of ``geom`` after repair, or None when nothing polygonal is left."""
    if not geom.is_valid:
        geom = shapely.make_valid(geom)
    parts = [g for g in getattr(geom, "geoms", [geom]) if isinstance(g, (Polygon, MultiPolygon)) and not g.is_empty]
    polys = [p for g in parts for p in getattr(g, "geoms", [g])]
    if not polys:
        return None
    return polys[0] if len(polys) == 1 else MultiPolygon(polys)


def _in_degrees(geom: BaseGeometry) -> bool:
    min_x, min_y, max_x, max_y = geom.bounds
    return -180 <= min_x <= max_x <= 180 and -90 <= min_y <= max_y <= 90


def _swap(geom: BaseGeometry) -> BaseGeometry:
    return shapely.transform(geom, lambda xy: xy[:, ::-1])


def _axes(geom: BaseGeometry, bbox: tuple[float, float, float, float] | None) -> tuple[str | None, BaseGeometry]:
    """Swap (lat, lon) back to (lon, lat) when only the swapped geometry is plausible."""
    if bbox is not None:
        extent = box(*bbox)
        if geom.intersects(extent):
            return None, geom
        swapped = _swap(geom)
        if swapped.intersects(extent):
            return "axes swapped (lat, lon) -> (lon, lat)", swapped
        return "outside the city's expected_bbox (wrong CRS?)", geom
    min_x, min_y, max_x, max_y = geom.bounds
    if -90 <= min_x <= max_x <= 90 and (min_y < -90 or max_y > 90) and -180 <= min_y <= max_y <= 180:
        return "axes swapped (lat, lon) -> (lon, lat)", _swap(geom)
    return None, geom


def _reproject(items: list[tuple[RawWard, BaseGeometry]], crs: str | None, source: str) -> tuple[list, list[Reject]]:
    """(raw, geometry in EPSG:4326) pairs, and rejects for what cannot be reprojected."""
    rejects: list[Reject] = []
    if crs is None or is_wgs84(crs):
        out = []
        for raw, geom in items:
            if _in_degrees(geom) or _in_degrees(_swap(geom)):  # swapped axes are fixed later
                out.append((raw, geom))
            else:
                why = "no CRS declared (set source_crs)" if crs is None else f"declared {crs[:40]}"
                rejects.append(_reject(source, raw, f"coordinates outside EPSG:4326 degrees ({why}; projected file?)"))
        return out, rejects
    looks_like_degrees = all(_in_degrees(g) for _, g in items)
    try:
        moved = to_wgs84([g for _, g in items], crs)
    except CRSError as exc:
        return [], [_reject(source, raw, str(exc)) for raw, _ in items]
    if looks_like_degrees and any(g.distance(m) > 0.01 for (_, g), m in zip(items, moved)):
        # Projected CRSs count in metres or feet from a far origin; small numbers mean degrees.
        return [], [_reject(source, raw, f"declared CRS {crs[:40]!r} is projected but the coordinates look like lon/lat degrees")
                    for raw, _ in items]
    return [(raw, m) for (raw, _), m in zip(items, moved)], rejects


def _reject(source: str, raw: RawWard, reason: str) -> Reject:
    return Reject(source=source, record_ref=raw.ref, reason=reason, raw_excerpt=json.dumps(raw.props, default=str)[:200])


def normalise_wards(raws: list[RawWard], cfg: BoundaryConfig, *, source: str, declared_crs: str | int | None) -> WardSet:
    """The versioned boundary set in EPSG:4326 from raw features.

    Args:
        raws: features in source order (the first of two equal ids wins).
        cfg: the backend's boundary settings.
        source: the plugin instance name, recorded on rejects.
        declared_crs: what the source says its CRS is; ``cfg.source_crs`` takes precedence.

    Returns:
        Wards, rejects (with reasons) and repairs; never raises for bad features.
    """
    crs = canonical_crs(cfg.source_crs) or canonical_crs(declared_crs)
    rejects: list[Reject] = []
    readable: list[tuple[RawWard, BaseGeometry]] = []
    for raw in raws:
        if raw.problem or raw.geometry is None:
            rejects.append(_reject(source, raw, raw.problem or "no geometry"))
        elif raw.geometry.is_empty:
            rejects.append(_reject(source, raw, "empty geometry"))
        elif non_finite(raw.geometry):
            rejects.append(_reject(source, raw, "NaN or infinite coordinate"))
        else:
            readable.append((raw, raw.geometry))
    moved, crs_rejects = _reproject(readable, crs, source)
    rejects.extend(crs_rejects)

    wards: list[Ward] = []
    repairs: list[Repair] = []
    first_seen: dict[str, str] = {}
    for raw, geom in moved:
        wid = ward_id(raw.props.get(cfg.ward_id_property), cfg)
        ref = raw.ref + (f" (ward {wid})" if wid else "")
        fixes: list[str] = list(raw.fixes)
        try:
            axes, geom = _axes(geom, cfg.expected_bbox)
            fixed = polygonal(geom)
            valid_reason = None if geom.is_valid else shapely.is_valid_reason(geom)
        except GEOMETRY_ERRORS as exc:
            rejects.append(Reject(source=source, record_ref=ref, reason=f"geometry error: {type(exc).__name__}: {str(exc)[:200]}",
                                  raw_excerpt=json.dumps(raw.props, default=str)[:200]))
            continue
        ward_id_ = wid
        problem = None
        if axes and axes.startswith("outside"):
            problem = axes
        elif fixed is None:
            problem = f"no polygonal part in a {geom.geom_type}"
        elif fixed.area < MIN_AREA_DEG2:
            problem = f"degenerate {geom.geom_type}: no area"
        elif not ward_id_:
            problem = f"no {cfg.ward_id_property!r} property"
        elif ward_id_ in first_seen:
            problem = f"duplicate ward id {ward_id_!r}, first at {first_seen[ward_id_]}"
        if problem:
            rejects.append(Reject(source=source, record_ref=ref, reason=problem,
                                  raw_excerpt=json.dumps(raw.props, default=str)[:200]))
            continue
        if axes:
            fixes.append(axes)
        if valid_reason:
            fixes.append(f"made valid: {valid_reason}")
        first_seen[ward_id_] = f"feature {raw.ref.rsplit('#', 1)[-1]}" if "#" in raw.ref else raw.ref
        repairs.extend(Repair(record_ref=ref, ward_id=ward_id_, what=f) for f in fixes)
        name = raw.props.get(cfg.ward_name_property) if cfg.ward_name_property else None
        wards.append(Ward(ward_id=ward_id_, name=str(name) if name else f"Ward {ward_id_}",
                          geometry_wkt=shapely.to_wkt(fixed, rounding_precision=-1)))
    return WardSet(version=cfg.boundary_version, valid_from=cfg.valid_from, valid_to=cfg.valid_to,
                   wards=tuple(wards), rejects=tuple(rejects), repairs=tuple(repairs), source_crs=crs)
