"""Bench: the ``gis/places`` asset (street layer read, intersections computed, bulk stored) on
New York's OpenStreetMap street layers.

    .venv/bin/python bench/gis_places.py [--boroughs brooklyn,bronx]

Brooklyn + the Bronx are 20,555 segments (the issue's 20,000-segment target); all four
boroughs with geometry are 31,316. Prints wall and CPU seconds (this process) per phase and for
the whole asset: on a shared, loaded machine the CPU time is the figure to compare.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import dagster as dg
import yaml

from social311.integrations.gis.geojson import GeoJSONConfig, GeoJSONGIS
from social311.models.geocode import intersections
from social311.orchestration.gis import gis_places
from social311.orchestration.resources import CityResource

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "nyc"


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--boroughs", default="brooklyn,bronx")
    args = parser.parse_args()
    if not SHARED.is_dir():
        print(f"no shared data at {SHARED}", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        streets = Path(tmp) / "streets"
        streets.mkdir()
        for borough in args.boroughs.split(","):
            (streets / f"nyc_osm_streets_{borough}.geojson").symlink_to(SHARED / "streets" / f"nyc_osm_streets_{borough}.geojson")
        gis_cfg = {"wards_path": str(SHARED / "nyc_council_districts_2013_2023.geojson"), "ward_id_property": "coun_dist",
                   "boundary_version": "nyc-2013", "streets_dir": str(streets), "streets_pattern": "nyc_osm_streets_*.geojson"}
        plugin = GeoJSONGIS(GeoJSONConfig(**gis_cfg), instance_name="gis")
        t0, c0 = time.perf_counter(), time.process_time()
        segs = plugin.streets()
        t1, c1 = time.perf_counter(), time.process_time()
        places = intersections(segs)
        t2, c2 = time.perf_counter(), time.process_time()
        print(f"segments: {len(segs):,}  read {t1 - t0:.1f} s wall / {c1 - c0:.1f} s CPU, "
              f"intersections ({len(places):,}) {t2 - t1:.1f} s wall / {c2 - c1:.1f} s CPU")
        cfg = {"city": "NYC", "duckdb_path": str(Path(tmp) / "w.duckdb"),
               "sources": [{"plugin": "file_drop", "config": {"drop_dir": str(Path(tmp) / "drop")}}],
               "gis": {"plugin": "geojson", "config": gis_cfg},
               "ticketing": {"plugin": "open311", "config": {"endpoint": "http://127.0.0.1:9/open311/v2"}}}
        (Path(tmp) / "city.yaml").write_text(yaml.safe_dump(cfg))
        t3, c3 = time.perf_counter(), time.process_time()
        result = dg.materialize([gis_places], resources={"city": CityResource(config_path=str(Path(tmp) / "city.yaml"))})
        t4, c4 = time.perf_counter(), time.process_time()
        assert result.success
        print(f"gis/places asset (materialize, whole): {t4 - t3:.1f} s wall / {c4 - c3:.1f} s CPU")
    return 0


if __name__ == "__main__":
    sys.exit(main())
