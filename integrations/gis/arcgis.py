"""ArcGIS GIS: ward boundaries from an ArcGIS REST FeatureServer or MapServer layer.

The layer is read with the documented query operation,
``<layer_url>/query?where=1=1&outFields=*&f=geojson&outSR=4326``, a page at a time: the next
page starts at ``resultOffset`` = features read so far, until the server no longer says
``exceededTransferLimit``. A token (secured services) is handed in by the orchestration layer
from the variable ``token_env`` names; it is sent as a query parameter, never logged.
ArcGIS reports errors inside HTTP 200 bodies (``{"error": {"code": 498, ...}}``): those raise.
"""

from __future__ import annotations

from typing import Any

import requests
from requests.adapters import HTTPAdapter
from shapely.errors import ShapelyError
from shapely.geometry import shape
from urllib3.util.retry import Retry

from social311.integrations.gis.base import GISPlugin
from social311.integrations.gis.normalise import BoundaryConfig, RawWard, normalise_wards
from social311.records import WardSet

MAX_PAGES = 1000  # a server that always says "more" must not loop forever


class ArcGISError(RuntimeError):
    """The service answered with an error, or not in the documented format."""

    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(message)
        self.code = code


class ArcGISConfig(BoundaryConfig):
    """Which layer, how big a page, and the name of the token's variable."""

    layer_url: str  # .../FeatureServer/0 or .../MapServer/3
    where: str = "1=1"
    page_size: int | None = None  # resultRecordCount; None = the server's maxRecordCount
    token_env: str | None = None
    timeout_s: tuple[float, float] = (5.0, 60.0)


class ArcGISGIS(GISPlugin):
    """Wards from an ArcGIS REST layer, paged with ``resultOffset``."""

    config_model = ArcGISConfig
    config: ArcGISConfig

    def __init__(self, config: ArcGISConfig, *, instance_name: str, token: str | None = None) -> None:
        super().__init__(config, instance_name=instance_name)
        self._token = token
        self._session = requests.Session()
        retry = Retry(total=3, backoff_factor=0.5, backoff_jitter=0.25, allowed_methods=("GET",),
                      status_forcelist=(429, 500, 502, 503, 504), respect_retry_after_header=True)
        self._session.mount("http://", HTTPAdapter(max_retries=retry))
        self._session.mount("https://", HTTPAdapter(max_retries=retry))

    def _page(self, offset: int) -> dict[str, Any]:
        cfg = self.config
        params: dict[str, Any] = {"where": cfg.where, "outFields": "*", "f": "geojson", "outSR": 4326,
                                  "returnGeometry": "true", "resultOffset": offset}
        if cfg.page_size:
            params["resultRecordCount"] = cfg.page_size
        if self._token:
            params["token"] = self._token
        url = cfg.layer_url.rstrip("/") + "/query"
        try:
            resp = self._session.get(url, params=params, timeout=cfg.timeout_s)
        except requests.RequestException as exc:
            raise ArcGISError(f"cannot reach {cfg.layer_url}: {type(exc).__name__}") from None
        if resp.status_code != 200:
            raise ArcGISError(f"{cfg.layer_url} answered HTTP {resp.status_code}", resp.status_code)
        try:
            data = resp.json()
        except ValueError:
            raise ArcGISError(f"{cfg.layer_url} did not answer JSON (f=geojson)") from None
        if isinstance(data, dict) and isinstance(data.get("error"), dict):
            err = data["error"]
            raise ArcGISError(f"{cfg.layer_url}: {err.get('code')} {err.get('message')}", err.get("code"))
        if not isinstance(data, dict) or not isinstance(data.get("features"), list):
            raise ArcGISError(f"{cfg.layer_url} did not answer a GeoJSON FeatureCollection")
        return data

    def features(self) -> list[dict[str, Any]]:
        """Every feature of the layer, page after page.

        Raises:
            ArcGISError: an error body, a non-GeoJSON answer, or paging that never ends.
        """
        out: list[dict[str, Any]] = []
        for _ in range(MAX_PAGES):
            data = self._page(len(out))
            out.extend(data["features"])
            # Esri's GeoJSON carries the flag at the top level or under "properties".
            more = data.get("exceededTransferLimit") or (data.get("properties") or {}).get("exceededTransferLimit")
            if not more:
                return out
            if not data["features"]:
                raise ArcGISError(f"{self.config.layer_url} says exceededTransferLimit but sent no features")
        raise ArcGISError(f"{self.config.layer_url}: more than {MAX_PAGES} pages")

    def wards(self) -> WardSet:
        """The boundary set in EPSG:4326 (the server reprojects: ``outSR=4326``)."""
        raws = []
        for index, feat in enumerate(self.features()):
            props = (feat.get("properties") or {}) if isinstance(feat, dict) else {}
            ref = "/".join(self.config.layer_url.rstrip("/").split("/")[-2:]) + f"#{index}"
            raw = feat.get("geometry") if isinstance(feat, dict) else None
            if not raw:
                raws.append(RawWard(ref, props, problem="no geometry"))
                continue
            try:
                raws.append(RawWard(ref, props, shape(raw)))
            except (ValueError, TypeError, AttributeError, IndexError, KeyError, ShapelyError) as exc:
                raws.append(RawWard(ref, props, problem=f"unreadable geometry: {exc}"))
        return normalise_wards(raws, self.config, source=self.instance_name, declared_crs="EPSG:4326")
