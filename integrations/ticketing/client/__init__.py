"""Open311 GeoReport v2 client: JSON and XML into the shared records, typed errors."""

from social311.integrations.ticketing.base import KeyRefused, SubmitAmbiguous, SubmitRejected, TicketingError
from social311.integrations.ticketing.client.errors import (
    BadRequest,
    Forbidden,
    NotFound,
    Open311Error,
    RateLimited,
    ResponseParseError,
    ServerError,
    TransportError,
)
from social311.integrations.ticketing.client.http import Open311Client
from social311.integrations.ticketing.client.models import Attribute, AttributeValue, Discovery, ServiceDefinition
from social311.integrations.ticketing.client.session import build_session

__all__ = [
    "Attribute",
    "AttributeValue",
    "BadRequest",
    "Discovery",
    "Forbidden",
    "KeyRefused",
    "NotFound",
    "Open311Client",
    "Open311Error",
    "RateLimited",
    "ResponseParseError",
    "ServerError",
    "ServiceDefinition",
    "SubmitAmbiguous",
    "SubmitRejected",
    "TicketingError",
    "TransportError",
    "build_session",
]
