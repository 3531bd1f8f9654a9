"""Text geocoding measured on New York's PublicStuff reports against their given coordinates.

The gazetteer comes through the same plugin interface a city would configure (GeoJSON plugin:
OpenStreetMap street layers per borough, council districts as wards). Only resident-written
descriptions count (the NYC 311 mirrors' boilerplate is left out), once per distinct
(description, point). Figures only: no report text leaves this module.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from social311.integrations.gis.geojson import GeoJSONConfig, GeoJSONGIS
from social311.models.geo import haversine_m
from social311.models.locations import Gazetteer
from social311.models.wardjoin import shapely_assign

BOILERPLATE = "This request was submitted to NYC 311"


def nyc_gis(shared: Path) -> GeoJSONGIS:
    """New York as a city would configure it: council districts + OSM street layers by borough."""
    return GeoJSONGIS(GeoJSONConfig(
        wards_path=str(shared / "nyc" / "nyc_council_districts_2013_2023.geojson"), ward_id_property="coun_dist",
        boundary_version="nyc-2013", streets_dir=str(shared / "nyc" / "streets"),
        streets_pattern="nyc_osm_streets_*.geojson", street_names_pattern="nyc_osm_street_names_*.json"),
        instance_name="nyc_gis")


def resident_reports(shared: Path) -> list[tuple[str, float, float]]:
    """(description, lat, lon) of distinct resident-written reports with coordinates."""
    seen, out = set(), []
    with open(shared / "nyc" / "publicstuff_nyc_2010_2018.csv", newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            text = (row.get("Description") or "").strip()
            try:
                lat, lon = float(row["Latitude"]), float(row["Longitude"])
            except (TypeError, ValueError):
                continue
            key = (text, round(lat, 6), round(lon, 6))
            if not text or text.startswith(BOILERPLATE) or key in seen:
                continue
            seen.add(key)
            out.append((text, lat, lon))
    return out


def evaluate(shared: Path) -> dict:
    """Share placed, error in metres (median, p90) and share in the wrong council district."""
    gis = nyc_gis(shared)
    places = gis.gazetteer()
    gazetteer = Gazetteer(places, gis.unlocated_streets())
    wards = list(gis.wards().wards)
    reports = resident_reports(shared)
    placed = [(r, gazetteer.match(r[0])) for r in reports]
    placed = [(r, m) for r, m in placed if m is not None]
    given_lat = np.array([r[1] for r, _ in placed])
    given_lon = np.array([r[2] for r, _ in placed])
    got_lat = np.array([m.lat for _, m in placed])
    got_lon = np.array([m.lon for _, m in placed])
    errors = haversine_m(given_lat, given_lon, got_lat, got_lon) if placed else np.array([])
    given_d = shapely_assign(wards, given_lon, given_lat)
    got_d = shapely_assign(wards, got_lon, got_lat)
    comparable = [(a, b) for a, b in zip(given_d, got_d) if a is not None]
    return {
        "intersections_in_gazetteer": len(places),
        "resident_reports": len(reports),
        "placed": len(placed),
        "share_placed": len(placed) / len(reports) if reports else 0.0,
        "median_error_m": float(np.median(errors)) if len(errors) else None,
        "p90_error_m": float(np.percentile(errors, 90)) if len(errors) else None,
        "share_within_250m": float(np.mean(errors <= 250)) if len(errors) else None,
        "share_wrong_district": sum(a != b for a, b in comparable) / len(comparable) if comparable else None,
    }
