"""One YAML file per city deployment, validated with pydantic.

Secrets never live in this file: the Open311 ``api_key`` is named by the environment variable
that holds it (``api_key_env``) and is read only when the ticketing plugin is built.
Relative paths are resolved against the folder of the YAML file, so a city folder can be moved
as a whole.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator


class ConfigError(ValueError):
    """The city configuration is missing, unreadable or invalid."""


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
    ticketing: PluginRef
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
    filing_enabled: bool = Field(False, description="off = dry run: tickets are drafted, never POSTed")

    @model_validator(mode="after")
    def _unique_source_names(self) -> CityConfig:
        names = [s.instance_name for s in self.sources]
        if len(names) != len(set(names)):
            raise ValueError(f"source instance names must be unique, got {names}")
        return self


def _resolve_paths(data: dict[str, Any], base: Path) -> dict[str, Any]:
    for key in ("duckdb_path", "report_dir"):
        if key in data and data[key] is not None and not Path(data[key]).is_absolute():
            data[key] = str((base / data[key]).resolve())
    # Plugin settings whose name ends in `_path` or `_dir` are paths too.
    for ref in [*data.get("sources", []), data.get("gis") or {}, *data.get("boundaries", []), data.get("ticketing") or {}]:
        cfg = ref.get("config") or {}
        for key, value in list(cfg.items()):
            if (key.endswith("_path") or key.endswith("_dir")) and isinstance(value, str) and not Path(value).is_absolute():
                cfg[key] = str((base / value).resolve())
    return data


def load_config(path: str | Path, overrides: dict[str, Any] | None = None) -> CityConfig:
    """Read and validate a city YAML file.

    Args:
        path: the YAML file.
        overrides: top-level keys that replace the file's (used by the demo and the tests).

    Returns:
        The validated configuration, with relative paths made absolute.

    Raises:
        ConfigError: with every validation problem listed, never a bare traceback.
    """
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read city config {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"city config {path} must be a mapping at the top level")
    data = _resolve_paths(data, path.resolve().parent)
    data.update(overrides or {})
    try:
        return CityConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(f"invalid city config {path}:\n{exc}") from exc
