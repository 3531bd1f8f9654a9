"""Open311 GeoReport v2 ticketing plugin: the city's 311 system behind any conformant endpoint.

Configured in the city YAML under ``ticketing`` with ``plugin: open311``. The api_key is named
by ``ticketing.api_key_env`` only (``core/config.py``, default ``SOCIAL311_OPEN311_API_KEY``); the
orchestration layer reads that variable at run time and passes the secret to the constructor, so
this module never touches ``os.environ``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field

from social311.integrations.base import PluginConfig
from social311.integrations.ticketing.base import TicketingPlugin
from social311.integrations.ticketing.client import Open311Client
from social311.integrations.ticketing.client.attributes import check_attributes
from social311.integrations.ticketing.client.errors import BadRequest, NotFound
from social311.integrations.ticketing.client.models import ServiceDefinition
from social311.records import Service, ServiceRequest, SubmitResult, TicketRequest

_IDS_PER_CALL = 50  # keeps GET URLs well under common 8 KB limits


class Open311Config(PluginConfig):
    """Settings of one Open311 endpoint."""

    endpoint: str = Field(description="base URL, e.g. https://311.city.gov/open311/v2/")
    jurisdiction_id: str | None = Field(None, description="only for multi-jurisdiction endpoints")
    format: Literal["json", "xml"] = "json"
    timeout_connect_s: float = Field(3.05, gt=0)
    timeout_read_s: float = Field(30, gt=0)
    email: str | None = Field(None, description="team mailbox sent as `email` on every POST, for servers requiring one")
    get_retries: int = Field(3, ge=0, description="retries of one GET on 429/5xx/connection failures (POST: never)")
    backoff_s: float = Field(0.5, ge=0, description="base of the jittered exponential backoff between GET retries")
    multivalue_encoding: Literal["brackets", "repeat"] = "brackets"
    location_policy: Literal["latlong", "address", "both"] = "latlong"
    updated_after: bool = Field(True, description="the server filters GET requests by updated_after (status sync)")
    paging: Literal["auto", "links", "off"] = Field("auto", description="list answers: follow next-page links and "
                                                    "detect page/page_size (auto), follow links only, or read one page")
    max_pages: int = Field(100, ge=1, description="the most pages one list call reads; a window cut there is "
                           "logged and never taken as complete by the marker search")
    page_probe_min: int = Field(20, ge=2, description="a first page this long, without a next link, may have more")


class Open311Ticketing(TicketingPlugin):
    """Files and looks up tickets through an Open311 GeoReport v2 endpoint.

    Args:
        config: the validated :class:`Open311Config`.
        instance_name: the name of this instance in the city YAML.
        api_key: the secret for POST requests (None: submitting is refused by the server).
    """

    config_model = Open311Config

    def __init__(self, config: Open311Config, *, instance_name: str, api_key: str | None = None) -> None:
        super().__init__(config, instance_name=instance_name)
        self._definitions: dict[str, ServiceDefinition] = {}
        self.client = Open311Client(
            config.endpoint,
            jurisdiction_id=config.jurisdiction_id,
            api_key=api_key,
            format=config.format,
            timeout=(config.timeout_connect_s, config.timeout_read_s),
            multivalue_encoding=config.multivalue_encoding,
            location_policy=config.location_policy,
            email=config.email,
            retries=config.get_retries,
            backoff_factor=config.backoff_s,
            paging=config.paging,
            max_pages=config.max_pages,
            page_probe_min=config.page_probe_min,
        )

    def __repr__(self) -> str:
        return f"Open311Ticketing({self.instance_name!r}, {self.client!r})"

    def services(self) -> list[Service]:
        """The city's service catalog (GET services)."""
        return self.client.services()

    def submit(self, request: TicketRequest) -> SubmitResult:
        """File one ticket with one POST; never retried here (the ledger reconciles)."""
        return self.client.submit(request)

    def get(self, service_request_ids: list[str]) -> list[ServiceRequest]:
        """Tickets by id, in batches; ids the server does not know are absent."""
        ids = list(dict.fromkeys(i for i in service_request_ids if i))
        wanted = set(ids)
        found: list[ServiceRequest] = []
        for i in range(0, len(ids), _IDS_PER_CALL):
            # Some servers combine the id list with default filters; keep only what was asked.
            found.extend(r for r in self.client.requests(service_request_ids=ids[i : i + _IDS_PER_CALL]) if r.service_request_id in wanted)
        return found

    def find(
        self,
        *,
        service_codes: list[str] | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
        status: list[str] | None = None,
    ) -> list[ServiceRequest]:
        """Tickets matching the filters, every page; ranges over 90 days are queried window by window.

        The answer is a :class:`~social311.integrations.ticketing.client.models.Found`: it says
        when paging was cut short or the server ignored the dates (requests outside the window
        are dropped), which the marker search needs to know.
        """
        return self.client.requests(service_codes=service_codes, start=start, end=end, status=status)

    def updates_since(self, since: datetime) -> list[ServiceRequest] | None:
        """Tickets updated since ``since`` (``updated_after``), or None when the server lacks it.

        ``updated_after`` is a v2.1-draft extension; a server without it ignores it (and answers
        its default window) or refuses it with 400, which is read as "unsupported".
        """
        if not self.config.updated_after:
            return None
        try:
            found = self.client.requests(updated_after=since)
        except BadRequest:
            return None
        # A server that ignored the filter answers its default window: keep what really changed.
        return [r for r in found if r.updated_datetime is None or r.updated_datetime >= since]

    def check_attributes(
        self, service_code: str, values: dict[str, str | list[str]]
    ) -> tuple[dict[str, str | list[str]], list[str]]:
        """Validate attributes against the service definition (fetched once per service)."""
        if service_code not in self._definitions:
            try:
                self._definitions[service_code] = self.client.service_definition(service_code)
            except NotFound:
                # Some servers never implemented service definitions (issue-reporting): the
                # values the city configured go as they are, and the server judges them.
                return dict(values), []
        return check_attributes(self._definitions[service_code], values)

    def resolve_token(self, token: str) -> str | None:
        """The id behind a batch token, or None while the city has not assigned one."""
        return self.client.token(token)

    def close(self) -> None:
        """Release pooled connections."""
        self.client.close()
