"""ML: relevance, embeddings and sentiment per post; issue types; post locations.

Every asset here is incremental: it works only on posts it has not scored, typed or located
yet, so a post is never embedded twice.
"""


from datetime import datetime, timezone

import dagster as dg
import numpy as np

from social311.orchestration.quality import Suite, gx_check, sql_check
from social311.orchestration.resources import CityResource
from social311.records import Place, Service, StreetSegment
from social311.warehouse import connect, insert_many

STG_POSTS = dg.AssetKey(["stg_social__posts"])
SERVICE_CATALOG = dg.AssetKey(["ops", "service_catalog"])
POST_SIGNALS = dg.AssetKey(["ml", "post_signals"])
ISSUE_TYPES = dg.AssetKey(["ml", "issue_types"])
POST_TYPES = dg.AssetKey(["ml", "post_types"])
POST_LOCATIONS = dg.AssetKey(["ml", "post_locations"])
PLACES = dg.AssetKey(["gis", "places"])


def load_services(con) -> list[Service]:
    """The service catalog as records."""
    rows = con.execute('select service_code, service_name, description, metadata, type, keywords, "group" '
                       "from ops.service_catalog order by service_code").fetchall()
    return [Service(service_code=r[0], service_name=r[1], description=r[2] or "", metadata=bool(r[3]),
                    type=r[4] or "realtime", keywords=tuple(r[5] or ()), group=r[6] or "") for r in rows]


def service_text(service: Service) -> str:
    """How a service reads to the embedding model."""
    return ". ".join(filter(None, [service.service_name, service.description, ", ".join(service.keywords)]))


@dg.asset(key=POST_SIGNALS, deps=[STG_POSTS, SERVICE_CATALOG], group_name="ml", compute_kind="sentence-transformers")
def post_signals(context: dg.AssetExecutionContext, city: CityResource) -> dg.MaterializeResult:
    """Relevance probability, all-MiniLM-L6-v2 embedding and sentiment for posts not yet scored."""
    from social311.models.embeddings import get_embedder
    from social311.models.relevance import RelevanceModel
    from social311.models.review import labelled_posts
    from social311.models.sentiment import sentiment

    cfg = city.load()
    with connect(cfg.duckdb_path) as con:
        todo = con.execute(
            "select post_id, post_text, lang from stg_social__posts "
            "where post_id not in (select post_id from ml.post_signals) order by ingested_at, post_id"
        ).fetchall()
        services = load_services(con)
        labelled = labelled_posts(con)  # reviewers' labels retrain the model (models/review.py)
    if not todo:
        return dg.MaterializeResult(metadata={"embedded": 0})
    embedder = get_embedder(cfg.embedding_backend)
    texts = [t for _, t, _ in todo]

    def progress(done: int, total: int) -> None:
        context.log.info(f"posts embedded {done}/{total}")

    embeddings = embedder.encode(texts, progress=progress)
    model = RelevanceModel.from_seeds(embedder, [service_text(s) for s in services], labelled=labelled)
    relevance = model.predict_proba(embeddings)
    moods = sentiment(texts)
    now = datetime.now(timezone.utc)
    threshold = cfg.thresholds.relevance
    with connect(cfg.duckdb_path) as con:
        insert_many(
            con,
            "insert into ml.post_signals values (?, ?, ?, ?, ?, ?, ?, ?) on conflict (post_id) do nothing",
            [(pid, float(p), bool(p >= threshold), float(s), lang, emb.tolist(), embedder.model_name, now)
             for (pid, _, lang), p, s, emb in zip(todo, relevance, moods, embeddings)],
        )
    reports = int((relevance >= threshold).sum())
    return dg.MaterializeResult(metadata={"embedded": len(todo), "reports": reports, "model": embedder.model_name,
                                          "reviewed_posts_in_training": int(len(labelled[1])),
                                          "mean_relevance": float(np.mean(relevance))})


@dg.multi_asset(
    specs=[
        dg.AssetSpec(ISSUE_TYPES, deps=[POST_SIGNALS, SERVICE_CATALOG], group_name="ml",
                     description="Issue types with stable ids: one per Open311 service, plus candidate clusters for review."),
        dg.AssetSpec(POST_TYPES, deps=[POST_SIGNALS], group_name="ml",
                     description="The issue type and Open311 service code of each reported problem."),
    ],
    compute_kind="scikit-learn",
)
def issue_types(context: dg.AssetExecutionContext, city: CityResource):
    """Types reports into issue types mapped to the city's Open311 catalog; never renumbers old types."""
    from social311.models.embeddings import get_embedder
    from social311.models import issue_types as typing_
    from social311.models.review import typed_examples

    cfg = city.load()
    embedder = get_embedder(cfg.embedding_backend)
    with connect(cfg.duckdb_path) as con:
        services = load_services(con)
        types = typing_.service_types(services, embedder)
        # Reviewers' accepted and relabelled posts refine their service's centroid (same ids).
        types = typing_.with_examples(types, typed_examples(con))
        known = {r[0] for r in con.execute("select type_id from ml.issue_types").fetchall()}
        todo = con.execute(
            "select s.post_id, s.embedding, p.post_text from ml.post_signals s join stg_social__posts p using (post_id) "
            "where s.is_report and s.post_id not in (select post_id from ml.post_types) order by p.ingested_at, s.post_id"
        ).fetchall()
        existing_candidates = _load_candidates(con)
        all_types = types + existing_candidates
        now = datetime.now(timezone.utc)
        new_types = [t for t in types if t.type_id not in known]
        insert_many(
            con,
            "insert into ml.issue_types values (?, ?, ?, ?, ?, ?, ?) on conflict (type_id) do nothing",
            [(t.type_id, t.label, t.service_code, t.status, t.centroid.tolist(), list(t.top_terms), now) for t in new_types],
        )
        assigned = 0
        unmatched = []
        if todo:
            embeddings = np.array([r[1] for r in todo], dtype=np.float32)
            choices = typing_.assign_types(embeddings, all_types, cfg.thresholds.type_similarity)
            code_of = {t.type_id: t.service_code for t in all_types}
            rows = []
            for (pid, _, text), (type_id, sim), emb in zip(todo, choices, embeddings):
                if type_id is None:
                    unmatched.append((pid, text, emb))
                    continue
                rows.append((pid, type_id, code_of[type_id], float(sim), now))
            insert_many(con, "insert into ml.post_types values (?, ?, ?, ?, ?) on conflict (post_id) do nothing", rows)
            assigned = len(rows)
        candidates = []
        if len(unmatched) >= 3:
            candidates = typing_.propose_candidates(
                np.array([u[2] for u in unmatched]), [u[1] for u in unmatched], [u[0] for u in unmatched], all_types)
            insert_many(
            con,
                "insert into ml.issue_types values (?, ?, ?, ?, ?, ?, ?) on conflict (type_id) do nothing",
                [(t.type_id, t.label, t.service_code, t.status, t.centroid.tolist(), list(t.top_terms), now) for t in candidates],
            )
        type_count = con.execute("select count(*) from ml.issue_types").fetchone()[0]
    context.log.info(f"typed {assigned} reports; {len(unmatched)} matched no service; {len(candidates)} candidate types")
    yield dg.MaterializeResult(asset_key=ISSUE_TYPES, metadata={"types": type_count, "new_candidates": len(candidates)})
    yield dg.MaterializeResult(asset_key=POST_TYPES, metadata={"typed": assigned, "untyped": len(unmatched)})


def _load_candidates(con) -> list:
    from social311.models.issue_types import IssueType

    rows = con.execute("select type_id, label, service_code, status, centroid, top_terms from ml.issue_types "
                       "where status = 'candidate'").fetchall()
    return [IssueType(type_id=r[0], label=r[1], service_code=r[2], status=r[3],
                      centroid=np.array(r[4], dtype=np.float32), top_terms=tuple(r[5] or ())) for r in rows]


@dg.asset(key=POST_LOCATIONS, deps=[STG_POSTS, PLACES], group_name="ml", compute_kind="python")
def post_locations(context: dg.AssetExecutionContext, city: CityResource) -> dg.MaterializeResult:
    """Where each new post is: its geotag, else a place named in its text, else its platform place box."""
    from social311.models.locations import Gazetteer, locate

    cfg = city.load()
    with connect(cfg.duckdb_path) as con:
        places = [Place(place_id=r[0], name=r[1], kind=r[2], lat=r[3], lon=r[4], aliases=tuple(r[5] or ()),
                        streets=tuple(r[6] or ()), area=r[7])
                  for r in con.execute("select place_id, name, kind, lat, lon, aliases, streets, area from gis.places").fetchall()]
        # Only centerlines with house-number ranges add anything (address interpolation).
        segments = [StreetSegment(segment_id=r[0], name=r[1], area=r[2], geometry_wkt=r[3], from_address=r[4], to_address=r[5])
                    for r in con.execute("select segment_id, name, area, st_astext(geom), from_address, to_address "
                                         "from gis.streets where from_address is not null and to_address is not null").fetchall()]
        gazetteer = Gazetteer(places, segments=segments)
        todo = con.execute(
            "select post_id, lat, lon, post_text, place_min_lon, place_min_lat, place_max_lon, place_max_lat "
            "from stg_social__posts where post_id not in (select post_id from ml.post_locations)"
        ).fetchall()
        now = datetime.now(timezone.utc)
        rows, methods = [], {}
        for pid, lat, lon, text, *bbox in todo:
            result = locate(lat, lon, text, tuple(bbox) if bbox[0] is not None else None, gazetteer)
            methods[result.method] = methods.get(result.method, 0) + 1
            rows.append((pid, result.lat, result.lon, result.method, result.confidence, result.matched_text, result.place_id, now))
        insert_many(con, "insert into ml.post_locations values (?, ?, ?, ?, ?, ?, ?, ?) on conflict (post_id) do nothing", rows)
    return dg.MaterializeResult(metadata={"located": len(rows), **{f"method_{k}": v for k, v in methods.items()}})


signals_suite = Suite(
    name="post_signals_expectations",
    expectations=(
        ("ExpectColumnValuesToBeUnique", {"column": "post_id"}),
        ("ExpectColumnValuesToBeBetween", {"column": "relevance", "min_value": 0, "max_value": 1}),
        ("ExpectColumnValuesToBeBetween", {"column": "sentiment", "min_value": -1, "max_value": 1}),
        ("ExpectColumnValuesToBeBetween", {"column": "embedding_norm", "min_value": 0.98, "max_value": 1.02}),
    ),
)

locations_suite = Suite(
    name="post_locations_expectations",
    expectations=(
        ("ExpectColumnValuesToBeUnique", {"column": "post_id"}),
        ("ExpectColumnValuesToBeInSet", {"column": "method", "value_set": ["geotag", "text", "place_bbox", "none"]}),
        ("ExpectColumnValuesToBeBetween", {"column": "confidence", "min_value": 0, "max_value": 1}),
        ("ExpectColumnValuesToBeBetween", {"column": "lat", "min_value": -90, "max_value": 90}),
    ),
)

issue_types_suite = Suite(
    name="issue_types_expectations",
    expectations=(
        ("ExpectColumnValuesToBeUnique", {"column": "type_id"}),
        ("ExpectColumnValuesToNotBeNull", {"column": "label"}),
        ("ExpectColumnValuesToBeInSet", {"column": "status", "value_set": ["mapped", "candidate"]}),
        ("ExpectColumnValuesToMatchRegex", {"column": "type_id", "regex": "^(svc|cand)-"}),
    ),
)

post_types_suite = Suite(
    name="post_types_expectations",
    expectations=(
        ("ExpectColumnValuesToBeUnique", {"column": "post_id"}),
        ("ExpectColumnValuesToNotBeNull", {"column": "type_id"}),
        ("ExpectColumnValuesToBeBetween", {"column": "similarity", "min_value": -1, "max_value": 1}),
    ),
)


def defs() -> dg.Definitions:
    return dg.Definitions(
        assets=[post_signals, issue_types, post_locations],
        asset_checks=[
            gx_check(asset=POST_SIGNALS, suite=signals_suite, description="Scores are probabilities, embeddings unit-length, one row per post.",
                     query="select post_id, relevance, sentiment, sqrt(list_sum(list_transform(embedding, x -> x * x))) as embedding_norm from ml.post_signals"),
            sql_check(asset=POST_SIGNALS, name="every_post_scored", description="Every staged post has signals (none skipped).",
                      query="select post_id from stg_social__posts where post_id not in (select post_id from ml.post_signals)"),
            gx_check(asset=POST_TYPES, suite=post_types_suite, description="One issue type per reported post.",
                     query="select post_id, type_id, similarity from ml.post_types"),
            gx_check(asset=ISSUE_TYPES, suite=issue_types_suite, description="Type ids are unique and stable-shaped, labelled, mapped or candidate.",
                     query="select type_id, label, status from ml.issue_types"),
            sql_check(asset=ISSUE_TYPES, name="types_map_to_catalog", description="Every mapped issue type names a service in the catalog.",
                      query="select type_id from ml.issue_types where status = 'mapped' and service_code not in (select service_code from ops.service_catalog)"),
            gx_check(asset=POST_LOCATIONS, suite=locations_suite, description="Locations carry a method, a confidence in [0, 1] and valid coordinates.",
                     query="select post_id, method, confidence, lat from ml.post_locations"),
        ],
    )
