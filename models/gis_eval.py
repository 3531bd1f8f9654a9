"""``social311 eval --task ward | geocode``: a city's own 311 cases against its own GIS.

A city has years of 311 cases with the point each was geocoded to, an address text, and often
the ward each was filed under: the best test set it will ever have. Both evals read the GIS
from the city YAML and run the pipeline's own code on a scratch warehouse: ``gis/wards``'s
loading and normalisation, ``gis/places``'s gazetteer, the pipeline's ``locate``, the text
evidence step and the dbt models ``int_default_points`` / ``int_posts_in_wards`` with the
city's settings as vars. Only figures leave this module, never case text.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd

from social311.config import CityConfig
from social311.models.geo import haversine_m
from social311.models.locations import locate

RUN_ID = "eval"


class EvalInputError(ValueError):
    """The cases file or its columns cannot be used (one line, exit 2)."""


def read_cases(path: Path, columns: list[str | None]) -> pd.DataFrame:
    """The cases CSV with the named columns (all read as text; numbers parsed where used)."""
    if not path.is_file():
        raise EvalInputError(f"no cases file at {path}")
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False, encoding_errors="replace")
    except (OSError, ValueError) as exc:
        raise EvalInputError(f"cannot read {path} as CSV: {str(exc)[:200]}") from exc
    missing = [c for c in columns if c and c not in frame.columns]
    if missing:
        raise EvalInputError(f"{path} has no column {', '.join(map(repr, missing))} (columns: {', '.join(frame.columns[:20])})")
    return frame


def _coords(frame: pd.DataFrame, lat_col: str, lon_col: str) -> tuple[np.ndarray, np.ndarray]:
    lat = pd.to_numeric(frame[lat_col], errors="coerce").to_numpy(dtype=float, copy=True)
    lon = pd.to_numeric(frame[lon_col], errors="coerce").to_numpy(dtype=float, copy=True)
    bad = ~np.isfinite(lat) | ~np.isfinite(lon) | (np.abs(lat) > 90) | (np.abs(lon) > 180) | ((lat == 0) & (lon == 0))
    lat[bad], lon[bad] = np.nan, np.nan
    return lat, lon


def _dates(frame: pd.DataFrame, date_col: str | None) -> pd.Series:
    now = pd.Timestamp(datetime.now(timezone.utc))
    if not date_col:
        return pd.Series([now] * len(frame))
    raw = frame[date_col]
    numeric = pd.to_numeric(raw, errors="coerce")
    parsed = pd.to_datetime(numeric, unit="s", utc=True, errors="coerce") if numeric.notna().mean() > 0.5 else \
        pd.to_datetime(raw, utc=True, errors="coerce", format="mixed")
    return parsed.fillna(now)


def _warehouse(cfg: CityConfig, tmp: Path, *, gazetteer: bool) -> Path:
    """A scratch warehouse holding the city's wards (and gazetteer) as ``gis/wards`` / ``gis/places`` store them."""
    from social311.integrations import registry
    from social311.orchestration.gis import boundary_refs, load_ward_sets, secrets_for, store_gazetteer, store_ward_sets
    from social311.warehouse import connect

    db = tmp / "eval.duckdb"
    refs = boundary_refs(cfg)
    ward_sets, failed = load_ward_sets(refs, cfg.bbox)
    if failed:
        raise EvalInputError(f"the city's wards cannot be read: {failed[0].reason}")
    with connect(db) as con:
        store_ward_sets(con, ward_sets, {}, RUN_ID)
        if gazetteer:
            store_gazetteer(con, registry.build("gis", cfg.gis, **secrets_for(cfg.gis)))
    return db


def _dbt(db: Path, tmp: Path, select: list[str], variables: dict) -> None:
    from social311.orchestration.transforms import PROJECT_DIR, dbt_env, dbt_executable

    result = subprocess.run(
        [dbt_executable(), "run", "--quiet", "--select", *select, "--vars", json.dumps(variables),
         "--project-dir", str(PROJECT_DIR), "--profiles-dir", str(PROJECT_DIR),
         "--target-path", str(tmp / "target"), "--log-path", str(tmp / "logs")],
        env={**os.environ, **dbt_env(db)}, capture_output=True, text=True, timeout=1800)
    if result.returncode != 0:
        raise RuntimeError(f"dbt run failed: {(result.stdout + result.stderr)[-1500:]}")


def _normalise_label(cfg: CityConfig):
    """Labels normalised as the ward ids are (the ``gis`` plugin's prefix / zero options)."""
    from social311.integrations.gis.normalise import BoundaryConfig, ward_id

    opts = {k: cfg.gis.config[k] for k in ("ward_id_strip_prefix", "ward_id_strip_zeros") if k in cfg.gis.config}
    bc = BoundaryConfig(boundary_version="label", **opts)
    return lambda value: ward_id(value, bc) or None


def ward_eval(cfg: CityConfig, frame: pd.DataFrame, *, lat_col: str, lon_col: str, label_col: str | None = None,
              text_col: str | None = None, date_col: str | None = None) -> dict:
    """Agreement of the pipeline's ward join with the filed ward, and what the default-point rule did.

    Returns:
        Figures: cases, located, default points and the cases on them (by reason), candidates
        kept, cases outside every ward, and with labels the agreement of the join (rule on and
        plain point-in-polygon) and the real-point cases the rule took a ward from.
    """
    from social311.orchestration.gis import dbt_vars, load_gazetteer, text_places_for
    from social311.warehouse import connect, insert_many, registered

    lat, lon = _coords(frame, lat_col, lon_col)
    texts = frame[text_col].astype(str).tolist() if text_col else [""] * len(frame)
    now = datetime.now(timezone.utc)
    with tempfile.TemporaryDirectory(prefix="social311-eval-") as name:
        tmp = Path(name)
        db = _warehouse(cfg, tmp, gazetteer=bool(text_col))
        posts = pd.DataFrame({"post_id": [f"case-{i}" for i in range(len(frame))], "text": texts,
                              "created_at": _dates(frame, date_col), "lat": lat, "lon": lon})
        located = [locate(a if np.isfinite(a) else None, b if np.isfinite(b) else None, None, None, None) for a, b in zip(lat, lon)]
        locations = pd.DataFrame({"post_id": posts["post_id"], "lat": [r.lat for r in located], "lon": [r.lon for r in located],
                                  "method": [r.method for r in located], "confidence": [r.confidence for r in located]})
        with connect(db) as con:
            with registered(con, posts, "cases") as view:
                con.execute(f"""insert into raw.posts (post_id, source, native_id, text, created_at, lat, lon, ingested_at)
                                select post_id, 'eval', post_id, text, created_at, lat, lon, ? from {view}""", [now])
            with registered(con, locations, "locs") as view:
                con.execute(f"""insert into ml.post_locations (post_id, lat, lon, method, confidence, located_at)
                                select post_id, lat, lon, method, confidence, ? from {view}""", [now])
        variables = dbt_vars(cfg)
        _dbt(db, tmp, ["stg_social__posts"], variables)
        with connect(db) as con:
            # The text evidence step of the pipeline (ml/post_text_places), on the cases' texts.
            rows = text_places_for(con, load_gazetteer(con), cfg.locations.default_points.min_posts) if text_col else []
            insert_many(con, "insert into ml.post_text_places values (?, ?, ?, ?, ?)", rows)
        _dbt(db, tmp, ["int_default_points", "int_posts_in_wards"], variables)
        with connect(db) as con:
            joined = con.execute("""select post_id, ward_id, is_default_point, is_outside_wards from int_posts_in_wards""").df()
            points = con.execute("""select lat, lon, posts, text_posts, text_agree, text_disagree, text_disagree_places, reason, is_default,
                                           is_suspected_false_flag from int_default_points order by posts desc""").df()
            plain = con.execute("""
                select l.post_id, min(w.ward_id) as plain_ward from ml.post_locations l
                join raw.posts p using (post_id)
                join gis.wards w on st_intersects(st_point(l.lon, l.lat), w.geom)
                    and (w.valid_from is null or cast(p.created_at as date) >= w.valid_from)
                    and (w.valid_to is null or cast(p.created_at as date) < w.valid_to)
                where l.lat is not null group by l.post_id""").df()
    out = posts[["post_id"]].merge(joined, on="post_id", how="left").merge(plain, on="post_id", how="left")
    is_located = ~np.isnan(lat)
    flagged = out["is_default_point"].fillna(False).to_numpy(dtype=bool)
    defaults = points[points["is_default"]]
    reasons: dict[str, int] = {}
    for posts_n, reason in zip(defaults["posts"], defaults["reason"]):
        key = str(reason).split(":")[0]
        reasons[key] = reasons.get(key, 0) + int(posts_n)
    result = {
        "task": "ward", "cases": len(frame), "located": int(is_located.sum()),
        "candidate_points": len(points), "default_points": len(defaults),
        "cases_flagged": int(flagged.sum()), "cases_flagged_by_reason": reasons,
        "candidate_points_kept": int((~points["is_default"]).sum()),
        "cases_at_candidates_kept": int(points.loc[~points["is_default"], "posts"].sum()),
        "suspected_false_flags": int(points["is_suspected_false_flag"].sum()),
        "cases_outside_wards": int(out["is_outside_wards"].fillna(False).sum()),
        "share_outside_of_located": float(out["is_outside_wards"].fillna(False).sum() / max(is_located.sum(), 1)),
        # Per candidate point (JSON only): what the rule saw and decided, for a city to review.
        "candidates": [{k: (v.item() if hasattr(v, "item") else v) for k, v in row.items()}
                       for row in points.to_dict(orient="records")],
    }
    if label_col:
        norm = _normalise_label(cfg)
        labels = np.array([norm(v) for v in frame[label_col]], dtype=object)
        has = np.array([v is not None for v in labels]) & is_located
        ward = out["ward_id"].to_numpy(dtype=object)
        plain_ward = out["plain_ward"].to_numpy(dtype=object)
        real = has & ~flagged
        # Cases the rule took a ward from although the plain join agreed with the filed ward.
        lost = has & flagged & (plain_ward == labels)
        result.update({
            "labelled_located": int(has.sum()),
            "agreement_real_points": float((ward[real] == labels[real]).mean()) if real.any() else None,
            "agreement_plain_join": float((plain_ward[has] == labels[has]).mean()) if has.any() else None,
            "flagged_cases_plain_join_agreed": int(lost.sum()),
            "share_labelled_lost_to_rule": float(lost.sum() / has.sum()) if has.any() else None,
        })
    return result


def geocode_eval(cfg: CityConfig, frame: pd.DataFrame, *, text_col: str, lat_col: str, lon_col: str,
                 label_col: str | None = None) -> dict:
    """Text geocoding of the cases' texts against their own points, with the pipeline's gazetteer.

    Returns:
        Share placed, error in metres (median, p90, share within 250 m), share placed in
        another ward than the case's point (or its filed ward, with ``label_col``).
    """
    from social311.models.wardjoin import shapely_assign
    from social311.orchestration.gis import load_gazetteer
    from social311.records import Ward
    from social311.warehouse import connect

    lat, lon = _coords(frame, lat_col, lon_col)
    texts = frame[text_col].astype(str).tolist()
    with tempfile.TemporaryDirectory(prefix="social311-eval-") as name:
        db = _warehouse(cfg, Path(name), gazetteer=True)
        with connect(db) as con:
            gazetteer = load_gazetteer(con)
            wards = [Ward(ward_id=r[0], name=r[0], geometry_wkt=r[1]) for r in con.execute(
                "select ward_id, st_astext(geom) from gis.wards where valid_to is null or valid_to > current_date").fetchall()]
    with_text = np.array([bool(t.strip()) for t in texts])
    found = [locate(None, None, t, None, gazetteer) if w else None for t, w in zip(texts, with_text)]
    placed = np.array([f is not None and f.method == "text" for f in found])
    got_lat = np.array([f.lat if p else np.nan for f, p in zip(found, placed)], dtype=float)
    got_lon = np.array([f.lon if p else np.nan for f, p in zip(found, placed)], dtype=float)
    comparable = placed & ~np.isnan(lat)
    errors = haversine_m(lat[comparable], lon[comparable], got_lat[comparable], got_lon[comparable]) if comparable.any() else np.array([])
    got_ward = np.array(shapely_assign(wards, got_lon[comparable], got_lat[comparable]), dtype=object) if comparable.any() else np.array([])
    if label_col:
        norm = _normalise_label(cfg)
        ref_ward = np.array([norm(v) for v in frame[label_col]], dtype=object)[comparable]
    else:
        ref_ward = np.array(shapely_assign(wards, lon[comparable], lat[comparable]), dtype=object) if comparable.any() else np.array([])
    judged = np.array([r is not None for r in ref_ward], dtype=bool)
    return {
        "task": "geocode", "cases": len(frame), "with_text": int(with_text.sum()), "placed": int(placed.sum()),
        "share_placed": float(placed.sum() / with_text.sum()) if with_text.any() else 0.0,
        "compared_to_point": int(comparable.sum()),
        "median_error_m": float(np.median(errors)) if len(errors) else None,
        "p90_error_m": float(np.percentile(errors, 90)) if len(errors) else None,
        "share_within_250m": float(np.mean(errors <= 250)) if len(errors) else None,
        "share_in_another_ward": float(np.mean(got_ward[judged] != ref_ward[judged])) if judged.any() else None,
        "ward_reference": "filed ward" if label_col else "ward of the case's point",
        "gazetteer_places": len(gazetteer),
    }


def format_table(result: dict) -> str:
    """The figures as a two-column table."""
    rows = []
    for key, value in result.items():
        if isinstance(value, list):
            continue  # per-point detail: in the JSON
        if isinstance(value, float):
            text = f"{value:.2%}" if key.startswith(("share", "agreement")) else f"{value:,.1f}"
        elif isinstance(value, dict):
            text = ", ".join(f"{k}: {v:,}" for k, v in value.items()) or "none"
        elif isinstance(value, int):
            text = f"{value:,}"
        else:
            text = "-" if value is None else str(value)
        rows.append((key, text))
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)


def run_cli(args) -> int:
    """``social311 eval --task ward|geocode``: print the table, write the JSON; 2 on bad input."""
    import sys

    from social311.config import ConfigError, load_config

    need = {"ward": ("lat_column", "lon_column"), "geocode": ("text_column", "lat_column", "lon_column")}[args.task]
    missing = [f"--{n.replace('_', '-')}" for n in need if not getattr(args, n)]
    if not args.data or not args.config or missing:
        print(f"--task {args.task} needs --data, --config and {', '.join(f'--{n.replace(chr(95), chr(45))}' for n in need)}"
              + (f" (missing {', '.join(missing)})" if missing else ""), file=sys.stderr)
        return 2
    try:
        cfg = load_config(args.config)
        columns = [args.lat_column, args.lon_column, args.label_column, args.text_column, args.date_column]
        frame = read_cases(Path(args.data), columns)
        if args.task == "ward":
            result = ward_eval(cfg, frame, lat_col=args.lat_column, lon_col=args.lon_column, label_col=args.label_column,
                               text_col=args.text_column, date_col=args.date_column)
        else:
            result = geocode_eval(cfg, frame, text_col=args.text_column, lat_col=args.lat_column, lon_col=args.lon_column,
                                  label_col=args.label_column)
    except (ConfigError, EvalInputError) as exc:
        print(str(exc).splitlines()[0], file=sys.stderr)
        return 2
    result = {"data": str(args.data), "config": str(args.config), **result}
    print(format_table(result))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2, default=str))
    print(f"\nWritten to {out}")
    return 0
