"""Base class of ticketing plugins (group ``social311.ticketing``) and their errors."""

from __future__ import annotations

from abc import ABC, abstractmethod
from datetime import datetime

from social311.integrations.base import Plugin
from social311.records import Service, ServiceRequest, SubmitResult, TicketRequest


class TicketingError(Exception):
    """A ticketing call failed. ``status`` is the HTTP status when there was one."""

    def __init__(self, message: str, *, status: int | None = None, server_message: str | None = None):
        super().__init__(message)
        self.status = status
        self.server_message = server_message


class SubmitRejected(TicketingError):
    """The server definitely did not create the ticket (4xx, validation). Safe to fix and retry."""


class KeyRefused(SubmitRejected):
    """The server refused the api_key (401/403, or a 400 saying so), or none is configured.

    Every other ticket would be refused the same way, so the ledger stops the pass at the first
    one and the run says which variable to fix; the ticket is not at fault and loses no attempt.
    """


class SubmitAmbiguous(TicketingError):
    """The ticket may or may not exist (timeout, reset, 5xx after sending). Reconcile first."""


class TicketingPlugin(Plugin, ABC):
    """A 311 system that receives tickets.

    Implementations never retry a submit on their own: exactly-once filing is the ledger's job
    (see ``social311.orchestration.ticketing``), which needs to know whether a failure was
    definite (:class:`SubmitRejected`) or ambiguous (:class:`SubmitAmbiguous`).
    """

    @abstractmethod
    def services(self) -> list[Service]:
        """The city's service catalog."""

    @abstractmethod
    def submit(self, request: TicketRequest) -> SubmitResult:
        """File one ticket, once. Raises SubmitRejected or SubmitAmbiguous on failure."""

    @abstractmethod
    def get(self, service_request_ids: list[str]) -> list[ServiceRequest]:
        """Look tickets up by id; unknown ids are simply absent from the result."""

    @abstractmethod
    def find(
        self,
        *,
        service_codes: list[str] | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
        status: list[str] | None = None,
    ) -> list[ServiceRequest]:
        """Query tickets (used to reconcile an ambiguous submit by its marker)."""

    def check_attributes(
        self, service_code: str, values: dict[str, str | list[str]]
    ) -> tuple[dict[str, str | list[str]], list[str]]:
        """Validate ticket attributes against the service's definition before submitting.

        Returns:
            ``(to_send, problems)``; a non-empty ``problems`` means the ticket must not be sent.
            Default: every value sent, no problem (a system without attribute definitions).
        """
        return dict(values), []

    def updates_since(self, since: datetime) -> list[ServiceRequest] | None:
        """Tickets updated at or after ``since`` (a change feed), or None when unsupported.

        Default: None, and the status sync looks every open ticket up by id instead.
        """
        return None

    def resolve_token(self, token: str) -> str | None:
        """Turn a batch token into a service_request_id, or None while not ready. Default: None."""
        return None
