"""``social311 eval --task ward | geocode`` on New York's real PublicStuff cases and GIS.

The ward eval runs the pipeline's own default-point rule (text evidence + dbt): on real data,
a borough's geocoder centre (posts naming streets all over the borough) is flagged, while busy
real addresses (many posts, their address text on the point) keep their ward.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from social311.cli import main
from conftest import shared_data_dir

REPO = Path(__file__).resolve().parents[1]
NYC_YAML = REPO / "bench" / "cities" / "nyc.yaml"
MANHATTAN_CENTRE = ("40.783147", "-73.971277")  # the app's "Manhattan" point: 142 cases, 61 address strings


@pytest.fixture(scope="module")
def cases(tmp_path_factory) -> Path:
    """The cases at the Manhattan centre and at the five busiest single-address points."""
    src = shared_data_dir() / "nyc" / "publicstuff_nyc_2010_2018.csv"
    if not src.is_file():
        pytest.skip(f"{src} not found")
    with open(src, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    by_point: dict[tuple[str, str], list[dict]] = {}
    for r in rows:
        by_point.setdefault((r["Latitude"], r["Longitude"]), []).append(r)
    busy = sorted((p for p, rs in by_point.items() if len({r["Address"] for r in rs}) == 1 and rs[0]["Address"].strip()
                   and len(rs) >= 8), key=lambda p: -len(by_point[p]))[:5]
    out = tmp_path_factory.mktemp("cases") / "cases.csv"
    with open(out, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=["Address", "Latitude", "Longitude", "Date Created"])
        writer.writeheader()
        for point in [MANHATTAN_CENTRE, *busy]:
            for r in by_point[point]:
                writer.writerow({k: r[k] for k in writer.fieldnames})
    return out


def test_ward_eval_flags_a_borough_centre_and_keeps_busy_addresses(cases: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "ward.json"
    code = main(["eval", "--task", "ward", "--config", str(NYC_YAML), "--data", str(cases), "--lat-column", "Latitude",
                 "--lon-column", "Longitude", "--text-column", "Address", "--date-column", "Date Created", "--out", str(out)])
    assert code == 0
    result = json.loads(out.read_text())
    assert "cases_flagged" in capsys.readouterr().out
    by_point = {(round(c["lat"], 6), round(c["lon"], 6)): c for c in result["candidates"]}
    centre = by_point[(float(MANHATTAN_CENTRE[0]), float(MANHATTAN_CENTRE[1]))]
    assert centre["is_default"] and centre["reason"] == "texts name places elsewhere"
    busy = [c for p, c in by_point.items() if p != (float(MANHATTAN_CENTRE[0]), float(MANHATTAN_CENTRE[1]))]
    assert len(busy) == 5 and not any(c["is_default"] for c in busy)
    assert result["cases_flagged"] == centre["posts"] == 142
    assert result["suspected_false_flags"] == 0


def test_geocode_eval_places_texts_through_the_pipeline_gazetteer(cases: Path, tmp_path: Path) -> None:
    out = tmp_path / "geocode.json"
    code = main(["eval", "--task", "geocode", "--config", str(NYC_YAML), "--data", str(cases), "--text-column", "Address",
                 "--lat-column", "Latitude", "--lon-column", "Longitude", "--out", str(out)])
    assert code == 0
    result = json.loads(out.read_text())
    assert result["placed"] <= result["with_text"] <= result["cases"]
    assert 0 <= result["share_placed"] <= 1 and result["gazetteer_places"] > 10000


@pytest.mark.parametrize("argv, message", [
    (["--task", "ward", "--config", str(NYC_YAML), "--data", "nope.csv", "--lat-column", "a", "--lon-column", "b"], "no cases file"),
    (["--task", "geocode", "--config", str(NYC_YAML), "--data", "x.csv", "--lat-column", "a"], "missing --text-column, --lon-column"),
])
def test_eval_input_errors_are_one_line_exit_2(argv: list[str], message: str, capsys, tmp_path: Path) -> None:
    assert main(["eval", *argv, "--out", str(tmp_path / "o.json")]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err


def test_eval_names_a_missing_column(cases: Path, tmp_path: Path, capsys) -> None:
    assert main(["eval", "--task", "ward", "--config", str(NYC_YAML), "--data", str(cases), "--lat-column", "lat",
                 "--lon-column", "Longitude", "--out", str(tmp_path / "o.json")]) == 2
    assert "has no column 'lat'" in capsys.readouterr().err
