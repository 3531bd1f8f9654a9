"""ML: relevance, embeddings and sentiment per post; issue types; post locations.

Every asset here is incremental: it works only on posts it has not scored, typed or located
yet, so a post is never embedded twice.
"""


from datetime import datetime, timezone

import dagster as dg
import numpy as np

from social311.orchestration import model_cache
from social311.orchestration.quality import Suite, gx_check, sql_check
from social311.orchestration.resources import CityResource
from social311.records import Service
from social311.warehouse import connect, insert_many, registered
from social311.logs import pairs as log_pairs

STG_POSTS = dg.AssetKey(["stg_social__posts"])
SERVICE_CATALOG = dg.AssetKey(["ops", "service_catalog"])
POST_SIGNALS = dg.AssetKey(["ml", "post_signals"])
ISSUE_TYPES = dg.AssetKey(["ml", "issue_types"])
POST_TYPES = dg.AssetKey(["ml", "post_types"])
POST_LOCATIONS = dg.AssetKey(["ml", "post_locations"])
PLACES = dg.AssetKey(["gis", "places"])
SERVICE_HISTORY = dg.AssetKey(["ml", "service_history"])


def load_services(con) -> list[Service]:
    """The service catalog as records."""
    rows = con.execute('select service_code, service_name, description, metadata, type, keywords, "group" '
                       "from ops.service_catalog order by service_code").fetchall()
    return [Service(service_code=r[0], service_name=r[1], description=r[2] or "", metadata=bool(r[3]),
                    type=r[4] or "realtime", keywords=tuple(r[5] or ()), group=r[6] or "") for r in rows]


def service_text(service: Service) -> str:
    """How a service reads to the embedding model."""
    return ". ".join(filter(None, [service.service_name, service.description, ", ".join(service.keywords)]))


@dg.asset(key=POST_SIGNALS, deps=[STG_POSTS, SERVICE_CATALOG, SERVICE_HISTORY], group_name="ml", compute_kind="sentence-transformers")
def post_signals(context: dg.AssetExecutionContext, city: CityResource) -> dg.MaterializeResult:
    """Relevance probability, all-MiniLM-L6-v2 embedding and sentiment for posts not yet scored."""
    # The backlog is scored in chunks of ``memory.scoring_chunk_posts`` (city config): each chunk is
    # read, embedded, scored, routed, analysed and written before the next is read, so memory does not
    # grow with the backlog (a 1,000,000-post backfill holds one chunk, not 1.5 GB of vectors). A run
    # that stops midway leaves its written chunks scored; the next run continues with the rest.
    from social311.models.history import empty_history, load_history
    from social311.models.relevance import MAX_HISTORY
    from social311.models.review import accepted_posts_to_rescore, labelled_post_texts

    cfg = city.load()
    settings = cfg.prefilter
    clock = _PhaseClock()  # where the step's time goes, in its metadata (bench/pipeline_100k.py reads it)
    with connect(cfg.duckdb_path) as con:
        # Posts a reviewer accepted out of language review (models/review.py) are scored again as
        # reports: their signal row goes, so they are in the backlog, embedded even if the prefilter
        # had skipped them (typing needs the embedding), and not routed to review again.
        accepted = set(accepted_posts_to_rescore(con))
        if accepted:
            con.execute("delete from ml.post_signals where list_contains(?, post_id)", [sorted(accepted)])
        total = con.execute(f"select count(*) from stg_social__posts where {_UNSCORED}").fetchone()[0]
        services = load_services(con)
        labelled = labelled_post_texts(con)  # reviewers' labels retrain the model (models/review.py)
        # The city's past 311 requests are extra positives (models/history.py).
        service_history = load_history(con, cfg.history.max_requests) if cfg.history.enabled and total else empty_history()
        # The prefilter learns the embedding model's own decisions on the latest posts it scored.
        scored_before = con.execute(
            "select p.post_text, s.is_report from ml.post_signals s join stg_social__posts p using (post_id) "
            "where s.embedding is not null order by s.scored_at desc, s.post_id limit ?",
            [settings.max_training_posts]).fetchall() if settings.enabled and total else []
    if not total:
        return dg.MaterializeResult(metadata={"embedded": 0})
    from social311.models.embeddings import get_embedder

    embedder = get_embedder(cfg.embedding_backend)
    # The production model (models/combined.py): n-grams + embedding, calibrated, on the seeds, the
    # catalog, the reviewed posts and the 311 history, over the shipped starting model as a prior.
    # Retrained only when one of those inputs changed (orchestration/model_cache.py), else read back.
    history_texts = service_history.texts if len(service_history.texts) == len(service_history) else ()
    model, model_cached = model_cache.city_relevance_model(
        cfg.duckdb_path, embedder, [service_text(s) for s in services], labelled=labelled,
        history=(list(history_texts), service_history.embeddings) if len(history_texts) else None,
        warn=context.log.warning)
    history_in_training = min(len(service_history), MAX_HISTORY)
    del service_history, history_texts  # the 311 history's vectors are in the model now
    clock.lap("load_and_train")
    run = _SignalRun(context, cfg, embedder, model, clock, total=total, accepted=accepted, scored_before=scored_before)
    del scored_before
    chunk = cfg.memory.scoring_chunk_posts
    while run.done < total:
        with connect(cfg.duckdb_path) as con:
            rows = con.execute(
                f"select post_id, post_text, lang from stg_social__posts where {_UNSCORED} "
                "order by ingested_at, post_id limit ?", [min(chunk, total - run.done)]).fetchall()
            # Texts stored by an earlier run or an earlier chunk of this one are copied, not embedded.
            stored = stored_embeddings(con, [t for _, t, _ in rows], embedder.model_name)
        clock.lap("read")
        if not rows:  # the backlog shrank under the run (posts withdrawn): nothing left to score
            break
        run.score_chunk(rows, stored)
        del rows, stored
    prefilter_meta = run.finish_prefilter()
    context.log.info(f"prefilter: {log_pairs(prefilter_meta)}")
    if run.routed:
        context.log.warning(f"{run.routed} posts in a language the relevance model cannot read go to review "
                            "(ml.language_review), not to chatter")
    return dg.MaterializeResult(metadata={"embedded": run.embedded, "reports": run.reports, "model": embedder.model_name,
                                          "reviewed_posts_in_training": int(len(labelled[2])),
                                          "starting_model": bool(model.trained_on.get("starting_model")),
                                          "language_review": run.routed, "accepted_from_review": len(accepted),
                                          "history_requests_in_training": history_in_training,
                                          "mean_relevance": run.relevance_sum / max(run.done, 1), **prefilter_meta,
                                          "embeddings_reused": run.reused, "relevance_model_cached": model_cached,
                                          "chunks": run.chunks, "seconds": clock.seconds()})


# The backlog of post_signals: staged posts without a signal row.
_UNSCORED = "post_id not in (select post_id from ml.post_signals)"


class _SignalRun:
    """One post_signals run over its backlog, chunk by chunk: the state that crosses chunks.

    That state is small and bounded: counters, the prefilter (and, until it is trained, its
    training texts: at most ``max_training_posts`` + ``min_training_posts``), never the chunks' rows.
    """

    def __init__(self, context, cfg, embedder, model, clock: "_PhaseClock", *, total: int, accepted: set[str],
                 scored_before: list[tuple[str, bool]]) -> None:
        self.context, self.embedder, self.model, self.clock = context, embedder, model, clock
        self.threshold = cfg.thresholds.relevance
        self.settings = cfg.prefilter
        self.duckdb_path = cfg.duckdb_path
        self.total, self.accepted = total, accepted
        self.done = self.embedded = self.reports = self.reused = self.routed = self.skipped = self.chunks = 0
        self.relevance_sum = 0.0
        self.logged = 0
        # Day one of the prefilter: the first posts of the backlog are embedded in full and become
        # its training data, beside the latest posts scored before this run.
        self.train_texts = [t for t, _ in scored_before]
        self.train_labels = [bool(r) for _, r in scored_before]
        self.boot_left = max(0, self.settings.min_training_posts - len(scored_before)) if self.settings.enabled else 0
        self.prefilter = None
        self.prefilter_tried = False
        self.trained_count = 0
        if self.settings.enabled and not self.boot_left:
            self._train_prefilter()

    def _train_prefilter(self) -> None:
        from social311.models.prefilter import Prefilter

        self.prefilter_tried = True
        if len(self.train_labels) >= self.settings.min_training_posts:
            self.prefilter = Prefilter.train(self.train_texts, np.array(self.train_labels, dtype=bool),
                                             recall=self.settings.recall)
        self.trained_count = len(self.train_labels)
        self.train_texts, self.train_labels = [], []
        self.clock.lap("prefilter")

    def finish_prefilter(self) -> dict:
        """The prefilter's metadata once the backlog is scored (trained or why not)."""
        if not self.settings.enabled:
            return {"prefilter": "off"}
        if self.prefilter is None:
            count = self.trained_count if self.prefilter_tried else len(self.train_labels)
            return {"prefilter": f"not trained yet ({count} scored posts)"}
        return {"prefilter": "on", "prefilter_skipped": self.skipped, "prefilter_trained_on": self.prefilter.trained_on,
                "prefilter_oof_recall": round(self.prefilter.oof_recall, 4)}

    def _progress(self, done: int) -> None:
        # Each log line is an event-log write, and a batch is 64 posts: about every 10% of the backlog.
        if done == self.total or done - self.logged >= max(self.total // 10, 1):
            self.logged = done
            self.context.log.info(f"posts embedded {done}/{self.total}")

    def score_chunk(self, rows: list[tuple], stored: dict[str, np.ndarray]) -> None:
        """Embed, score, route, analyse and write one chunk of the backlog (``rows`` in backlog order)."""
        from social311.models.embeddings import DIMENSIONS
        from social311.models.language import route_unreadable
        from social311.models.sentiment import sentiment

        texts = [t for _, t, _ in rows]
        n = len(rows)
        embeddings = np.zeros((n, DIMENSIONS), dtype=np.float32)
        relevance = np.zeros(n)
        embedded = np.zeros(n, dtype=bool)
        first_row: dict[str, int] = {}  # text -> the row of this chunk that embedded it

        def embed(idx: np.ndarray) -> None:
            """Embed and score ``rows[idx]``."""
            if not len(idx):
                return
            self.clock.lap("other")
            # A text is embedded once: a repeat of an earlier post's text (stored, by an earlier run
            # or chunk) or of one in this chunk (a repost, a template, a bot) copies its vector. (The
            # int8 path's vector of a text moves slightly with its batch: a copy is as good as a re-run.)
            fresh, copies = [], []
            for i in idx:
                text = texts[i]
                if text in stored:
                    embeddings[i] = stored[text]
                    self.reused += 1
                elif text in first_row:
                    copies.append((i, first_row[text]))
                else:
                    first_row[text] = i
                    fresh.append(i)
            before = self.done + int(embedded.sum())
            if fresh:
                scale = len(idx) / len(fresh)  # copies cost nothing: count them along with the fresh
                embeddings[fresh] = self.embedder.encode([texts[i] for i in fresh],
                                                         progress=lambda d, _: self._progress(before + int(d * scale)))
            for i, j in copies:
                embeddings[i] = embeddings[j]
            self.reused += len(copies)
            relevance[idx] = self.model.predict_proba([texts[i] for i in idx], embeddings[idx])
            embedded[idx] = True
            self.clock.lap("embedding")

        skip = np.zeros(n, dtype=bool)
        rest = np.arange(n)
        if self.settings.enabled and not self.prefilter_tried:
            boot = np.arange(min(n, self.boot_left))
            embed(boot)
            self.train_texts += [texts[i] for i in boot]
            self.train_labels += [bool(p >= self.threshold) for p in relevance[boot]]
            self.boot_left -= len(boot)
            rest = np.arange(len(boot), n)
            if not self.boot_left:
                self._train_prefilter()
        if self.prefilter is not None and len(rest):
            skip[rest], probability = self.prefilter.skip([texts[i] for i in rest], self.threshold)
            relevance[rest[skip[rest]]] = probability[skip[rest]]
            self.clock.lap("prefilter")
        forced = np.array([pid in self.accepted for pid, _, _ in rows], dtype=bool)  # reviewer-accepted: reports
        skip &= ~forced
        self.skipped += int(skip.sum())
        embed(np.flatnonzero(~skip & ~embedded))
        # A post the model cannot read is not chatter: below the threshold in another language, it goes
        # to review with its reason (models/language.py), whether embedded or skipped by the prefilter.
        routed = [r for r in route_unreadable(texts, relevance, self.threshold, tags=[lang for _, _, lang in rows])
                  if not forced[r.index]]
        self.clock.lap("language")
        moods = np.full(n, np.nan)
        moods[embedded] = sentiment([texts[i] for i in np.flatnonzero(embedded)])  # skipped chatter: not analysed
        self.clock.lap("sentiment")
        is_report = embedded & ((relevance >= self.threshold) | forced)
        self._write(rows, embeddings, relevance, is_report, moods, embedded, routed)
        self.done += n
        self.embedded += int(embedded.sum())
        self.reports += int(is_report.sum())
        self.routed += len(routed)
        self.relevance_sum += float(relevance.sum())
        self.chunks += 1
        self._progress(self.done)
        self.clock.lap("write")

    def _write(self, rows, embeddings, relevance, is_report, moods, embedded, routed) -> None:
        # One bulk insert from a DataFrame whose 384 float columns are the embedding matrix itself
        # (no Python list per post: 100,000 rows load in ~1 s instead of ~6 s, or 13 minutes row by row).
        import pandas as pd

        from social311.models.embeddings import DIMENSIONS
        from social311.models.prefilter import MODEL_NAME as PREFILTER_NAME

        frame = pd.DataFrame(embeddings, columns=[f"e{k}" for k in range(DIMENSIONS)], copy=False)
        frame.insert(0, "post_id", pd.Series([pid for pid, _, _ in rows], dtype="string"))
        frame["relevance"] = relevance
        frame["is_report"] = is_report
        frame["sentiment"] = moods  # NaN (skipped posts) reads as NULL
        frame["lang"] = pd.Series([lang for _, _, lang in rows], dtype="string")
        frame["embedded"] = embedded
        frame["model_name"] = np.where(embedded, self.embedder.model_name, PREFILTER_NAME)
        now = datetime.now(timezone.utc)
        frame["scored_at"] = pd.Timestamp(now)
        vector = ", ".join(f"e{k}" for k in range(DIMENSIONS))
        with connect(self.duckdb_path) as con:
            with registered(con, frame, "new_signals") as view:
                con.execute(
                    "insert into ml.post_signals select post_id, relevance, is_report, sentiment, lang, "
                    f"(case when embedded then [{vector}] end)::FLOAT[{DIMENSIONS}], model_name, scored_at "
                    f"from {view} on conflict (post_id) do nothing")
            insert_many(con, "insert into ml.language_review values (?, ?, ?, ?, ?, ?) on conflict (post_id) do nothing",
                        [(rows[r.index][0], r.language.code, r.language.confidence, float(relevance[r.index]), r.reason,
                          now) for r in routed])


def stored_embeddings(con, texts: list[str], model_name: str) -> dict[str, np.ndarray]:
    """Vectors already stored by ``model_name`` for any of ``texts`` (exact text match), by text.

    The text-hash cache of the embedding step: DuckDB hash-joins the new texts against the
    scored posts' texts, so only the matches come back to Python, never the whole table.
    """
    import pandas as pd

    if not texts:
        return {}
    wanted = pd.DataFrame({"post_text": pd.Series(list(dict.fromkeys(texts)), dtype="string")})
    with registered(con, wanted, "new_texts") as view:
        got = con.execute(
            f"select w.post_text, any_value(s.embedding) as embedding from {view} w "
            "join stg_social__posts p on p.post_text = w.post_text "
            "join ml.post_signals s on s.post_id = p.post_id "
            "where s.embedding is not null and s.model_name = ? group by w.post_text", [model_name]).fetchnumpy()
    return {t: np.asarray(v, dtype=np.float32) for t, v in zip(got["post_text"].tolist(), got["embedding"])}


class _PhaseClock:
    """Seconds spent per named phase: ``lap(name)`` adds the time since the previous lap to ``name``."""

    def __init__(self) -> None:
        import time

        self._now = time.perf_counter
        self._last = self._now()
        self._seconds: dict[str, float] = {}

    def lap(self, name: str) -> None:
        now = self._now()
        self._seconds[name] = self._seconds.get(name, 0.0) + now - self._last
        self._last = now

    def seconds(self) -> dict[str, float]:
        return {name: round(value, 2) for name, value in self._seconds.items()}


@dg.multi_asset(
    specs=[
        dg.AssetSpec(ISSUE_TYPES, deps=[POST_SIGNALS, SERVICE_CATALOG, SERVICE_HISTORY], group_name="ml",
                     description="Issue types with stable ids: one per Open311 service, plus candidate clusters for review."),
        dg.AssetSpec(POST_TYPES, deps=[POST_SIGNALS], group_name="ml",
                     description="The issue type and Open311 service code of each reported problem."),
    ],
    compute_kind="scikit-learn",
)
def issue_types(context: dg.AssetExecutionContext, city: CityResource):
    """Types reports into issue types mapped to the city's Open311 catalog; never renumbers old types.

    A report is typed when it is new, or when it matched no type under other typing inputs
    (the classifier's training data, the types' centroids, the thresholds: ``typing_key``)
    or before it was last scored. A run where no report is in that case neither loads the
    embedding model nor trains nor reads the classifier: the answer would be the same.
    """
    from social311.models.embeddings import get_embedder
    from social311.models import issue_types as typing_
    from social311.models.history import empty_history, load_history, with_history
    from social311.models.review import typed_example_texts, typed_examples

    cfg = city.load()
    embedder = get_embedder(cfg.embedding_backend)  # loads its model on first encode only
    with connect(cfg.duckdb_path) as con:
        services = load_services(con)
        known = {r[0] for r in con.execute("select type_id from ml.issue_types").fetchall()}
        # The city's past 311 requests pull each service's centroid and train a classifier (models/history.py).
        service_history = load_history(con, cfg.history.max_requests) if cfg.history.enabled else empty_history()
        # The production model (models/combined.py) over every service: catalog texts, the 311
        # history's texts and the reviewed posts; it reads each post's text and embedding.
        history_texts = list(service_history.texts) if len(service_history.texts) == len(service_history) else []
        inputs = model_cache.TypingInputs(
            services, history_texts=history_texts,
            history_codes=[str(c) for c in service_history.codes.tolist()] if history_texts else [],
            history_embeddings=service_history.embeddings if history_texts else None,
            reviewed=typed_example_texts(con))
        # The catalog's centroids are re-embedded only when the catalog or the model changed.
        catalog_types, centroids_cached = model_cache.service_types(cfg.duckdb_path, services, embedder)
        types = with_history(catalog_types, service_history)
        # Reviewers' accepted and relabelled posts refine their service's centroid (same ids).
        types = typing_.with_examples(types, typed_examples(con))
        existing_candidates = _load_candidates(con)
        all_types = types + existing_candidates
        typing_key = typing_inputs_key(inputs.key(embedder.model_name), all_types, cfg.thresholds.type_similarity)
        now = datetime.now(timezone.utc)
        new_types = [t for t in types if t.type_id not in known]
        insert_many(
            con,
            "insert into ml.issue_types values (?, ?, ?, ?, ?, ?, ?) on conflict (type_id) do nothing",
            [(t.type_id, t.label, t.service_code, t.status, t.centroid.tolist(), list(t.top_terms), now) for t in new_types],
        )
        # A withdrawn post's attempt goes with its signals.
        con.execute("delete from ml.typing_attempts where post_id not in (select post_id from ml.post_signals)")
        # Column-wise: the embeddings arrive as numpy arrays, not one Python list per post
        # (47,000 reports: 0.2 s instead of 5 s). Reports always have an embedding.
        fresh = con.execute(
            "select s.post_id, s.embedding, p.post_text from ml.post_signals s join stg_social__posts p using (post_id) "
            f"where {_UNTYPED} and s.post_id not in (select a.post_id from ml.typing_attempts a "
            "join ml.post_signals s2 using (post_id) where a.typing_key = ? and (s2.scored_at is null or a.attempted_at >= s2.scored_at)) "
            "order by p.ingested_at, s.post_id", [typing_key]
        ).fetchnumpy()
        todo = list(zip(fresh["post_id"].tolist(), fresh["post_text"].tolist()))
        if not todo:
            # Nothing new and the typing inputs unchanged: the same reports would get the same answer.
            types_now = con.execute("select count(*) from ml.issue_types").fetchone()[0]
            context.log.info("no report waiting for a type under these typing inputs; model neither loaded nor trained")
            yield dg.MaterializeResult(asset_key=ISSUE_TYPES, metadata={
                "types": types_now, "new_candidates": 0, "catalog_centroids_cached": centroids_cached,
                "classifier": "not needed", "typing_key": typing_key})
            yield dg.MaterializeResult(asset_key=POST_TYPES, metadata={"typed": 0, "untyped": 0, "tried": 0})
            return
        # Trained only when its inputs changed (orchestration/model_cache.py), else read back.
        classifier, classifier_cached = model_cache.type_classifier(cfg.duckdb_path, inputs, embedder)
        embeddings = np.stack(list(fresh["embedding"])).astype(np.float32, copy=False)
        del fresh
        choices = typing_.assign_types(embeddings, all_types, cfg.thresholds.type_similarity, classifier=classifier,
                                       texts=[t for _, t in todo])
        del embeddings
        code_of = {t.type_id: t.service_code for t in all_types}
        rows, missed = [], []
        for (pid, _), (type_id, sim) in zip(todo, choices):
            if type_id is None:
                missed.append((pid, typing_key, now))
            else:
                rows.append((pid, type_id, code_of[type_id], float(sim), now))
        insert_many(con, "insert into ml.post_types values (?, ?, ?, ?, ?) on conflict (post_id) do nothing", rows)
        insert_many(con, "insert into ml.typing_attempts values (?, ?, ?) on conflict (post_id) do update "
                         "set typing_key = excluded.typing_key, attempted_at = excluded.attempted_at", missed)
        assigned = len(rows)
        # Candidates come from every report still untyped (this run's misses and earlier ones), in
        # ingestion order as before: leader clustering depends on the order, and ids on the seeds.
        unmatched = con.execute(
            "select s.post_id, s.embedding, p.post_text from ml.post_signals s join stg_social__posts p using (post_id) "
            f"where {_UNTYPED} order by p.ingested_at, s.post_id").fetchnumpy()
        candidates = []
        if len(unmatched["post_id"]) >= 3:
            candidates = typing_.propose_candidates(
                np.stack(list(unmatched["embedding"])).astype(np.float32, copy=False), unmatched["post_text"].tolist(),
                unmatched["post_id"].tolist(), all_types)
            insert_many(
                con,
                "insert into ml.issue_types values (?, ?, ?, ?, ?, ?, ?) on conflict (type_id) do nothing",
                [(t.type_id, t.label, t.service_code, t.status, t.centroid.tolist(), list(t.top_terms), now) for t in candidates],
            )
        type_count = con.execute("select count(*) from ml.issue_types").fetchone()[0]
    context.log.info(f"typed {assigned} of {len(todo)} reports tried; {len(missed)} matched no service; "
                     f"{len(candidates)} candidate types; classifier {'cached' if classifier_cached else 'trained'}")
    yield dg.MaterializeResult(asset_key=ISSUE_TYPES, metadata={
        "types": type_count, "new_candidates": len(candidates), "history_requests": len(service_history),
        "history_classifier_services": len(classifier.classes) if classifier is not None else 0,
        "catalog_centroids_cached": centroids_cached,
        "classifier": "cached" if classifier_cached else ("trained" if classifier is not None else "none"),
        "typing_key": typing_key})
    yield dg.MaterializeResult(asset_key=POST_TYPES, metadata={"typed": assigned, "untyped": len(missed), "tried": len(todo)})


# Reports with an embedding and no type yet (``s`` is ml.post_signals).
_UNTYPED = ("s.is_report and s.embedding is not null "
            "and s.post_id not in (select post_id from ml.post_types)")


def typing_inputs_key(classifier_key: str, types: list, min_similarity: float) -> str:
    """What decides a report's type besides the report: the classifier's inputs, every type's
    id and centroid (a new candidate type can match a report that matched nothing before), and
    the bars of ``issue_types.assign_types``."""
    from social311.models import issue_types as typing_

    return model_cache.inputs_key("typing", classifier_key, [(t.type_id, t.service_code or "", t.status, t.centroid)
                                                             for t in types],
                                  float(min_similarity), typing_.CLASSIFIER_WEIGHT, typing_.CLASSIFIER_MAX_LIFT)


def _load_candidates(con) -> list:
    from social311.models.issue_types import IssueType

    rows = con.execute("select type_id, label, service_code, status, centroid, top_terms from ml.issue_types "
                       "where status = 'candidate'").fetchall()
    return [IssueType(type_id=r[0], label=r[1], service_code=r[2], status=r[3],
                      centroid=np.array(r[4], dtype=np.float32), top_terms=tuple(r[5] or ())) for r in rows]


@dg.asset(key=POST_LOCATIONS, deps=[STG_POSTS, PLACES], group_name="ml", compute_kind="python")
def post_locations(context: dg.AssetExecutionContext, city: CityResource) -> dg.MaterializeResult:
    """Where each new post is: its geotag, else a place named in its text, else its platform place box."""
    from social311.models.locations import locate
    from social311.orchestration.gis import load_gazetteer

    cfg = city.load()
    located, methods = 0, {}
    with connect(cfg.duckdb_path) as con:
        gazetteer = load_gazetteer(con)  # places, ranged centerlines, unlocated street names
        total = con.execute("select count(*) from stg_social__posts "
                            "where post_id not in (select post_id from ml.post_locations)").fetchone()[0]
        # In chunks, each written before the next is read: a backfill's posts (their texts, then
        # their rows, then a DataFrame of them) are never all in memory at once.
        while located < total:
            todo = con.execute(
                "select post_id, lat, lon, post_text, place_min_lon, place_min_lat, place_max_lon, place_max_lat "
                "from stg_social__posts where post_id not in (select post_id from ml.post_locations) limit ?",
                [min(cfg.memory.scoring_chunk_posts, total - located)]).fetchall()
            if not todo:
                break
            now = datetime.now(timezone.utc)
            rows = []
            for pid, lat, lon, text, *bbox in todo:
                result = locate(lat, lon, text, tuple(bbox) if bbox[0] is not None else None, gazetteer)
                methods[result.method] = methods.get(result.method, 0) + 1
                rows.append((pid, result.lat, result.lon, result.method, result.confidence, result.matched_text, result.place_id, now))
            insert_many(con, "insert into ml.post_locations values (?, ?, ?, ?, ?, ?, ?, ?) on conflict (post_id) do nothing", rows)
            located += len(rows)
            del todo, rows
    return dg.MaterializeResult(metadata={"located": located, **{f"method_{k}": v for k, v in methods.items()}})


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
                     query="select post_id, relevance, sentiment, sqrt(list_sum(list_transform(embedding, x -> x * x))) as embedding_norm from ml.post_signals",
                     latest_query="select post_id, relevance, sentiment, sqrt(list_sum(list_transform(embedding, x -> x * x))) as embedding_norm "
                                  "from ml.post_signals where scored_at = (select max(scored_at) from ml.post_signals)"),
            sql_check(asset=POST_SIGNALS, name="every_post_scored", description="Every staged post has signals (none skipped).",
                      query="select post_id from stg_social__posts where post_id not in (select post_id from ml.post_signals)"),
            gx_check(asset=POST_TYPES, suite=post_types_suite, description="One issue type per reported post.",
                     query="select post_id, type_id, similarity from ml.post_types",
                     latest_query="select post_id, type_id, similarity from ml.post_types "
                                  "where assigned_at = (select max(assigned_at) from ml.post_types)"),
            gx_check(asset=ISSUE_TYPES, suite=issue_types_suite, description="Type ids are unique and stable-shaped, labelled, mapped or candidate.",
                     query="select type_id, label, status from ml.issue_types"),
            sql_check(asset=ISSUE_TYPES, name="types_map_to_catalog", description="Every mapped issue type names a service in the catalog.",
                      query="select type_id from ml.issue_types where status = 'mapped' and service_code not in (select service_code from ops.service_catalog)"),
            gx_check(asset=POST_LOCATIONS, suite=locations_suite, description="Locations carry a method, a confidence in [0, 1] and valid coordinates.",
                     query="select post_id, method, confidence, lat from ml.post_locations",
                     latest_query="select post_id, method, confidence, lat from ml.post_locations "
                                  "where located_at = (select max(located_at) from ml.post_locations)"),
        ],
    )
