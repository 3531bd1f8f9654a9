"""One YAML file per city deployment, validated with pydantic.

Secrets never live in this file: the Open311 ``api_key`` is named by the environment variable
that holds it (``api_key_env``) and is read only when the ticketing plugin is built.
Relative paths are resolved against the folder of the YAML file, so a city folder can be moved
as a whole.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import date
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from social311.integrations.sources.listening import ListeningPlan
#: Limits on the YAML file itself, checked before anything is built from it. A city config is
#: a few KB; these stop a YAML bomb (billion laughs) or a runaway generated file in milliseconds.
MAX_CONFIG_BYTES = 1_000_000
MAX_YAML_ALIASES = 100  # ``*anchor`` references in the whole file
MAX_YAML_NODES = 100_000  # scalars, lists and mappings once every alias is expanded
MAX_YAML_DEPTH = 50  # nesting of lists and mappings


class ConfigError(ValueError):
    """The city configuration is missing, unreadable or invalid (its message is one line)."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PluginRef(_Strict):
    """Which registered plugin to use and its own settings (validated by the plugin)."""

    plugin: str
    name: str | None = None  # instance name; defaults to the plugin name
    config: dict[str, Any] = Field(default_factory=dict)
    replies_enabled: bool = Field(False, description="sources only: post the request number under residents' "
                                  "posts (off = replies are drafted and recorded, never posted)")

    @property
    def instance_name(self) -> str:
        return self.name or self.plugin


#: The variable holding the Open311 api_key when the city YAML names none (README, Configuration).
DEFAULT_API_KEY_ENV = "SOCIAL311_OPEN311_API_KEY"


class TicketingRef(PluginRef):
    """The ticketing plugin, plus what the orchestration layer needs around it: its secret's name
    and the filing ledger's retry policy. Every default lives here, nowhere else.

    ``api_key_env`` and ``max_attempts`` may also be written inside ``config`` (where the README
    has always shown ``api_key_env``); they are lifted out before the plugin validates its config.
    """

    api_key_env: str = Field(DEFAULT_API_KEY_ENV, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$",
                             description="the NAME of the environment variable holding the api_key, never the key")
    max_attempts: int = Field(3, ge=1, le=100, description="POSTs of one ticket before it ends `failed` "
                              "(5xx and timeouts included: each is settled by a marker search first)")

    @model_validator(mode="before")
    @classmethod
    def _lift_from_config(cls, data: Any) -> Any:
        if not isinstance(data, dict) or not isinstance(data.get("config"), dict):
            return data
        config, data = dict(data["config"]), dict(data)
        for key in ("api_key_env", "max_attempts"):
            if key in config:
                value = config.pop(key)
                if key in data and data[key] != value:
                    raise ValueError(f"ticketing.{key} and ticketing.config.{key} differ; give it once")
                data[key] = value
        data["config"] = config
        return data


class MergeRuleSettings(_Strict):
    """One service's own merge radius and window (``thresholds.merge_by_type``)."""

    radius_m: float = Field(gt=0)
    window_hours: float = Field(gt=0)


class Thresholds(_Strict):
    """Tunable decisions of the pipeline. Defaults suit the demo city."""

    relevance: float = Field(0.5, ge=0, le=1, description="P(report) at or above which a post is a report")
    type_similarity: float = Field(0.45, ge=-1, le=1, description="min cosine to map a post to a service")
    merge_radius_m: float = Field(250, gt=0, description="posts this close may be one incident (FixMyStreet: 250 m)")
    merge_window_hours: float = Field(72, gt=0, description="posts this close in time may be one incident")
    merge_text_similarity: float = Field(0.4, ge=-1, le=1, description="min cosine between posts of one incident")
    unlocated_merge_text_similarity: float = Field(0.8, ge=-1, le=1, description="stricter text bar without a location")
    merge_max_posts: int | None = Field(50, ge=1, description="most posts (reposts aside) in one incident; null = no cap")
    merge_max_span_hours: float | None = Field(168, gt=0, description="longest time between an incident's first and "
                                               "last post (reposts aside); null = no cap")
    merge_template_min_points: int | None = Field(3, ge=2, description="a text seen at this many different points "
                                                  "is a template: its wording is not used to merge; null = off")
    merge_template_radius_m: float | None = Field(50, gt=0, description="posts whose text is a template (or the "
                                                  "type's name) merge only this close; null = merge_radius_m")
    merge_by_type: dict[str, MergeRuleSettings] = Field(default_factory=dict, description="service_code -> its own "
                                                         "merge radius_m and window_hours")
    file_min_confidence: float = Field(0.5, ge=0, le=1, description="incidents below this wait for review")
    link_radius_m: float = Field(50, ge=0, description="an open request of the same service this close is linked, "
                                 "not filed again (0 = never link)")
    link_window_days: float = Field(30, gt=0, description="how far back open requests are looked for to link to")


class PrefilterSettings(_Strict):
    """The cheap prefilter that skips obvious chatter before embedding (``models/prefilter.py``)."""

    enabled: bool = Field(False, description="skip posts a TF-IDF model, trained on the pipeline's own scored "
                          "posts, is sure are chatter: they are never embedded (saves ~half the embedding "
                          "time; costs ~1% of reports, see the README)")
    recall: float = Field(0.99, gt=0, le=1, description="share of the embedding model's reports it must keep "
                          "(out of fold, on the posts it is trained on)")
    min_training_posts: int = Field(5000, ge=200, description="posts scored in full before it is used; the "
                                    "first run embeds this many of its posts first")
    max_training_posts: int = Field(20000, ge=200, description="it is retrained each run on at most this many "
                                    "of the latest scored posts")


class MemorySettings(_Strict):
    """What a run may hold in memory: DuckDB's buffer limit and the scoring chunk (README "Backfill memory")."""

    duckdb_memory_limit: str = Field(
        "1GiB", pattern=r"^\d+(\.\d+)?\s*(KB|MB|GB|TB|KiB|MiB|GiB|TiB)$",
        description="DuckDB's memory_limit for every warehouse connection and for dbt's (e.g. 1GiB, 512MB); "
        "DuckDB spills larger sorts, joins and aggregates to <warehouse>.tmp beside the file")
    scoring_chunk_posts: int = Field(20000, ge=1, description="ml/post_signals reads, embeds, scores and writes "
                                     "its backlog this many posts at a time (memory does not grow with the backlog)")


class HistorySettings(_Strict):
    """The city's own 311 history (Open311 GET requests) as training data (``orchestration/history.py``)."""

    enabled: bool = Field(True, description="fetch past service requests and learn from their descriptions: "
                          "they are extra positives of the relevance model and examples of their service's type")
    days: int = Field(90, ge=1, le=3650, description="how far back the history goes; older requests are "
                      "dropped from the warehouse, so the models follow the city's recent requests")
    max_requests: int = Field(5000, ge=0, description="the most requests kept (the newest); a first run "
                              "fetches at most this many, newest first")
    statuses: tuple[Literal["open", "closed"], ...] = Field(
        (), description="only requests in these states (empty = all); e.g. [closed] for handled requests only")
    server_limit: int = Field(1000, ge=1, description="the most requests the server returns for one GET "
                              "(the spec's default is 1000; Chicago 50): a window that returns this many is "
                              "split in two and asked again, so none is lost to the cap")
    min_per_service: int = Field(10, ge=2, description="requests a service needs before the history "
                                 "classifier learns it (fewer: only its centroid moves)")


class IngestSettings(_Strict):
    """Plausibility rules for stored posts (``social311.records.implausible``); others go to quarantine."""

    earliest_post: date = Field(date(2006, 1, 1), description="posts dated before this are quarantined")
    future_tolerance_hours: float = Field(24, ge=0, description="posts dated more than this past now are "
                                          "quarantined (servers' clocks differ a little, never by a year)")
    swapped_axes_check: bool = Field(True, description="quarantine a point outside the city bbox whose "
                                     "swapped (lon, lat) falls inside it (needs `bbox`)")


class ScreeningSettings(_Strict):
    """The screening of ready incidents before the blocking check (``orchestration/screening.py``)."""

    max_held_share: float = Field(0.2, ge=0, le=1, description="when more than this share of ready incidents "
                                  "fail (and more than always_hold_up_to), nothing is held back: the "
                                  "blocking check stops filing (a bug upstream, not one bad post)")
    always_hold_up_to: int = Field(3, ge=0, description="this many failing incidents are always held, "
                                   "whatever their share (a small city has few ready incidents)")


class ServiceLevel(_Strict):
    """Response targets for one service (hours; unset = not tracked). The city's own SLA."""

    acknowledge_hours: float | None = Field(None, gt=0, description="from filing to the city acknowledging the ticket")
    close_hours: float | None = Field(None, gt=0, description="from filing to the ticket closed")
    answer_hours: float | None = Field(None, gt=0, description="from the resident's post to our reply with the request "
                                       "number (a reply sent, not only drafted)")


class SpikeRule(_Strict):
    """When a ward x service count is a spike (dbt mart ``fct_ward_service_spikes``)."""

    baseline_days: int = Field(28, ge=7, le=365, description="the rolling baseline: days before the day, not counting it")
    min_history_days: int = Field(7, ge=0, description="days of posts the city needs before a day is judged (a "
                                  "new deployment has no baseline yet)")
    min_count: int = Field(3, ge=1, description="reports on one day before it can be a spike, whatever the baseline")
    ratio: float = Field(3.0, gt=1, description="a spike is at least this many times the baseline")
    city_min_count: int = Field(5, ge=1, description="city-wide reports of one service on one day before it is a surge")


class Campaign(_Strict):
    """A hashtag or keyword group followed over time on the city page (e.g. a council's #FixOurStreets)."""

    name: str = Field(min_length=1)
    terms: tuple[str, ...] = Field(min_length=1, description="hashtags or words, matched case-insensitively as whole "
                                   "words anywhere in a post")


class AlertSettings(_Strict):
    """Where alerts go: a Slack/Teams-compatible webhook and an outbox file, each once per alert."""

    webhook_url_env: str | None = Field(None, description="environment variable holding the incoming-webhook URL "
                                        "(the URL is a secret: it is never written in this file)")
    outbox_path: Path | None = Field(None, description="JSON-lines file every alert is appended to (default: "
                                     "alerts.jsonl beside the warehouse)")
    timeout_s: float = Field(10, gt=0, description="read timeout of one webhook POST")


class DefaultPointSettings(_Strict):
    """How a geocoder's default point (City Hall, a centroid) is told from a busy real address.

    A point shared by at least ``min_posts`` geotagged or place-box posts is a candidate; it is
    a default only with evidence (``transforms/models/intermediate/int_default_points.sql``).
    """

    min_posts: int = Field(5, ge=2, description="posts on one identical point before it is examined at all")
    known_points: tuple[tuple[float, float], ...] = Field(
        (), description="(lat, lon) of the city's known geocoder defaults (City Hall, the city centroid): flagged")
    known_centroids: tuple[tuple[float, float], ...] = Field(
        (), description="(lat, lon) of neighbourhood / ZIP centroids; the city bbox centre and every ward's "
        "centroid are known centroids without being listed")
    centroid_tolerance_m: float = Field(30, ge=0, description="a candidate this close to a known point or centroid is it")
    disagree_m: float = Field(1000, gt=0, description="a post's text naming a place farther than this from its "
                              "point disagrees with it")
    agree_m: float = Field(300, gt=0, description="a post's text naming a place this close to its point agrees")
    min_disagreeing_posts: int = Field(3, ge=1, description="texts that disagree before a point is a default by text")
    min_disagreeing_places: int = Field(2, ge=1, description="distinct far places those texts must name (one "
                                        "address repeated far away is a busy address with a bad point, not a default)")
    disagree_share: float = Field(0.5, gt=0, le=1, description="share of a point's located texts that must disagree")
    max_share: float = Field(0.02, gt=0, le=1, description="a point holding more than this share of the city's "
                             "located posts is far beyond any real address: a default")
    share_min_posts: int = Field(50, ge=2, description="posts a point needs before the share rule applies (small cities)")


class LocationSettings(_Strict):
    """Per-city rules of the ward join and its warnings (passed to dbt as vars)."""

    default_points: DefaultPointSettings = DefaultPointSettings()
    max_outside_share: float = Field(0.05, ge=0, le=1, description="warn when more than this share of located "
                                     "posts falls outside every ward or before every boundary version")


class CityConfig(_Strict):
    """A city deployment: where posts come from, whose GIS, which 311 system, which thresholds."""

    city: str
    jurisdiction_id: str | None = None
    bbox: tuple[float, float, float, float] | None = Field(
        None, description="(min_lon, min_lat, max_lon, max_lat) of the city; posts outside are not filed"
    )
    duckdb_path: Path = Path("social311.duckdb")
    report_dir: Path = Path("report")
    sources: tuple[PluginRef, ...] = Field(min_length=1)
    gis: PluginRef
    boundaries: tuple[PluginRef, ...] = Field(
        (),
        description="more boundary versions (e.g. the wards before a redistricting), each a GIS plugin "
        "with its own boundary_version and valid_from/valid_to; the `gis` plugin's wards are one more",
    )
    ticketing: TicketingRef
    thresholds: Thresholds = Thresholds()
    service_attributes: dict[str, dict[str, str | list[str]]] = Field(
        default_factory=dict,
        description="per service_code, attribute values the 311 team agreed social311 may send "
        "when residents' words do not say (e.g. POTHOLE: {SIZE: M}); validated against the "
        "service definition before every POST",
    )
    embedding_backend: Literal["torch", "onnx-int8", "onnx-fp32"] = Field(
        "torch", description="sentence-transformers on torch, or the ONNX export (int8: ~3.5x faster on CPU)"
    )
    prefilter: PrefilterSettings = PrefilterSettings()
    history: HistorySettings = HistorySettings()
    memory: MemorySettings = MemorySettings()
    filing_enabled: bool = Field(False, description="off = dry run: tickets are drafted, never POSTed")
    listening: ListeningPlan = Field(ListeningPlan(), description="what the social-platform sources search for")
    ingest: IngestSettings = IngestSettings()
    screening: ScreeningSettings = ScreeningSettings()
    sla: dict[str, ServiceLevel] = Field(
        default_factory=dict, description="per service_code (or `default` for every other service), response targets")
    spikes: SpikeRule = SpikeRule()
    campaigns: tuple[Campaign, ...] = ()
    alerts: AlertSettings = AlertSettings()
    locations: LocationSettings = LocationSettings()

    @model_validator(mode="after")
    def _unique_source_names(self) -> CityConfig:
        names = [s.instance_name for s in self.sources]
        if len(names) != len(set(names)):
            raise ValueError(f"source instance names must be unique, got {names}")
        return self


def _resolve_paths(data: dict[str, Any], base: Path) -> dict[str, Any]:
    for key in ("duckdb_path", "report_dir"):
        if isinstance(data.get(key), str) and not Path(data[key]).is_absolute():
            data[key] = str((base / data[key]).resolve())
    alerts = data.get("alerts")
    if isinstance(alerts, dict) and isinstance(alerts.get("outbox_path"), str) and not Path(alerts["outbox_path"]).is_absolute():
        alerts["outbox_path"] = str((base / alerts["outbox_path"]).resolve())
    # Plugin settings whose name ends in `_path` or `_dir` are paths too. Wrong shapes are left
    # as they are for the model to reject with a clear message.
    refs: list[Any] = []
    for key in ("sources", "boundaries"):
        refs += data[key] if isinstance(data.get(key), list) else []
    refs += [data.get("gis"), data.get("ticketing")]
    for ref in refs:
        cfg = ref.get("config") if isinstance(ref, dict) else None
        if not isinstance(cfg, dict):
            continue
        for key, value in list(cfg.items()):
            if (isinstance(key, str) and (key.endswith("_path") or key.endswith("_dir")) and isinstance(value, str)
                    and not Path(value).is_absolute()):
                cfg[key] = str((base / value).resolve())
    return data


def _yaml_limits(node: yaml.Node, where: str) -> None:
    """Raise ConfigError when the composed YAML graph is too deep, too aliased or too big expanded."""
    sizes: dict[int, int] = {}
    aliases = 0
    # Iterative walk: a hostile file must not be able to exhaust the Python stack either.
    stack: list[tuple[yaml.Node, int, bool]] = [(node, 1, False)]
    while stack:
        current, depth, done = stack.pop()
        if depth > MAX_YAML_DEPTH:
            raise ConfigError(f"{where}: nested deeper than {MAX_YAML_DEPTH} levels")
        children: list[yaml.Node] = []
        if isinstance(current, yaml.SequenceNode):
            children = list(current.value)
        elif isinstance(current, yaml.MappingNode):
            children = [n for pair in current.value for n in pair]
        if done:
            sizes[id(current)] = 1 + sum(sizes.get(id(c), 1) for c in children)
            if sizes[id(current)] > MAX_YAML_NODES:
                raise ConfigError(f"{where}: more than {MAX_YAML_NODES:,} values once aliases are expanded "
                                  "(a YAML bomb?)")
            continue
        if id(current) in sizes:
            aliases += 1  # a node reached twice is an alias
            if aliases > MAX_YAML_ALIASES:
                raise ConfigError(f"{where}: more than {MAX_YAML_ALIASES} YAML aliases")
            continue
        sizes[id(current)] = 0  # in progress (a cycle counts as an alias, then stops)
        stack.append((current, depth, True))
        stack.extend((c, depth + 1, False) for c in children)


class _DepthLimitedLoader(yaml.SafeLoader):
    """PyYAML's safe loader that refuses nesting past ``MAX_YAML_DEPTH`` while composing.

    Checked as nodes are composed, so ``[[[[...`` fails after 50 brackets, not after scanning
    (and recursing through) the whole file.
    """

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent, index):  # noqa: ANN001 - PyYAML's signature
        self._depth += 1
        try:
            if self._depth > MAX_YAML_DEPTH:
                mark = self.peek_event().start_mark
                raise ConfigError(f"nested deeper than {MAX_YAML_DEPTH} levels (line {mark.line + 1})")
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def safe_load_yaml(raw: bytes, where: str) -> Any:
    """Parse YAML with PyYAML's safe loader under the size, alias, node and depth limits above.

    Raises:
        ConfigError: one line, naming ``where`` and what is wrong.
    """
    if len(raw) > MAX_CONFIG_BYTES:
        raise ConfigError(f"{where}: {len(raw):,} bytes, more than the {MAX_CONFIG_BYTES:,} allowed")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{where}: not UTF-8 ({exc.reason} at byte {exc.start})") from None
    loader = _DepthLimitedLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _yaml_limits(node, where)
        return loader.construct_document(node)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{where}: not valid YAML: {' '.join(str(exc).split())}") from None
    except RecursionError:
        raise ConfigError(f"{where}: nested too deeply") from None
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    finally:
        loader.dispose()


def one_line(exc: ValidationError) -> str:
    """``"sources: Input should be a valid tuple; gis: Field required"``: every problem, one line."""
    parts = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"]) or "config"
        parts.append(f"{loc}: {' '.join(str(err['msg']).split())}")
    return "; ".join(parts)


def load_config(path: str | Path, overrides: dict[str, Any] | None = None) -> CityConfig:
    """Read and validate a city YAML file.

    Args:
        path: the YAML file.
        overrides: top-level keys that replace the file's (used by the demo and the tests).

    Returns:
        The validated configuration, with relative paths made absolute.

    Raises:
        ConfigError: with every problem listed on one line, never a bare traceback.
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read city config {path}: {exc.strerror or exc}") from None
    data = safe_load_yaml(raw, f"city config {path}") or {}
    if not isinstance(data, dict):
        raise ConfigError(f"city config {path} must be a mapping at the top level, not a {type(data).__name__}")
    data = _resolve_paths(data, path.resolve().parent)
    data.update(overrides or {})
    try:
        cfg = CityConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(f"invalid city config {path}: {one_line(exc)}") from None
    # Every connection to this warehouse (and dbt's, through its profile) uses the city's limit.
    from social311.warehouse import set_memory_limit

    set_memory_limit(cfg.duckdb_path, cfg.memory.duckdb_memory_limit)
    return cfg


def missing_secrets(cfg: CityConfig, environ: Mapping[str, str] | None = None) -> list[str]:
    """Names of the environment variables the config needs but that are unset or empty.

    Every plugin setting ending in ``_env`` (after the plugin's own defaults) names a secret's
    variable. The ticketing plugin's are needed only when ``filing_enabled`` (a dry run never
    sends the key). Plugins that cannot be loaded are left to the run to report.
    """
    from social311.integrations import registry

    environ = os.environ if environ is None else environ
    refs = [("sources", r) for r in cfg.sources] + [("gis", cfg.gis)] + [("gis", r) for r in cfg.boundaries]
    if cfg.filing_enabled:
        refs.append(("ticketing", cfg.ticketing))
    missing = []
    for kind, ref in refs:
        try:
            settings = registry.load_class(kind, ref.plugin).config_model.model_validate(ref.config).model_dump()
        except Exception:  # noqa: BLE001 - an unknown plugin or bad settings is reported by the run itself
            settings = dict(ref.config)
        for key, value in settings.items():
            if key.endswith("_env") and isinstance(value, str) and value and not environ.get(value):
                missing.append(f"{kind} {ref.instance_name}: {key} names {value}, which is not set")
    # The api_key's variable lives on TicketingRef itself (one default, SOCIAL311_OPEN311_API_KEY).
    key_env = getattr(cfg.ticketing, "api_key_env", None)
    if cfg.filing_enabled and key_env and not environ.get(key_env):
        missing.append(f"ticketing {cfg.ticketing.instance_name}: api_key_env names {key_env}, which is not set")
    return missing


def require_secrets(cfg: CityConfig, environ: Mapping[str, str] | None = None) -> None:
    """Raise ConfigError (one line) when a secret the config needs is missing from the environment."""
    missing = missing_secrets(cfg, environ)
    if missing:
        raise ConfigError("missing secret: " + "; ".join(missing))
