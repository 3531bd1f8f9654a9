"""Open311 records that only the client needs: service definitions and service discovery.

Services, service requests and submit results are the shared records of ``social311.records``.
"""

from __future__ import annotations

from typing import Literal

from social311.records import Record

Datatype = Literal["string", "number", "datetime", "text", "singlevaluelist", "multivaluelist"]


class AttributeValue(Record):
    """One allowed value of a list attribute: ``key`` is submitted, ``name`` is shown."""

    key: str
    name: str = ""


class Attribute(Record):
    """One attribute of a service definition. ``variable=False`` means display text only."""

    code: str
    datatype: Datatype = "string"
    variable: bool = True
    required: bool = False
    order: int | None = None
    description: str = ""
    datatype_description: str | None = None
    values: tuple[AttributeValue, ...] = ()


class ServiceDefinition(Record):
    """The extra questions of a service (GET services/{code}), sorted by ``order``."""

    service_code: str
    attributes: tuple[Attribute, ...] = ()


class DiscoveryEndpoint(Record):
    """One endpoint announced by service discovery."""

    specification: str = ""
    url: str
    changeset: str | None = None
    type: str = "production"
    formats: tuple[str, ...] = ()


class Discovery(Record):
    """The service discovery document; a changed ``changeset`` invalidates cached catalogs."""

    changeset: str | None = None
    contact: str | None = None
    key_service: str | None = None
    endpoints: tuple[DiscoveryEndpoint, ...] = ()



class Found(list):
    """Requests of a list answer, each id once, with what the walk over windows needs to know.

    A plain list everywhere else. Attributes:
        truncated: paging stopped at ``max_pages``; more requests exist in the window.
        dates_ignored: the server answered requests outside the asked window (it ignores date
            filters); they were dropped, and splitting the window would not help.
        largest_answer: the most requests one window's answer held before that drop, to compare
            with the server's cap.
    A marker search that did not see every request of its window cannot say a ticket is absent.
    """

    truncated: bool = False
    dates_ignored: bool = False
    largest_answer: int = 0
