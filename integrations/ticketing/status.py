"""Ticket status sync rules: which server answer wins, and when a ticket was acknowledged or closed.

Status answers arrive out of order: an id lookup and an updated-since window can both return a
ticket, a lagging replica can answer with an older copy, and a retried GET can land after a
newer one. The rule is the one a change feed needs: an answer is applied only when its
``updated_datetime`` is not older than the one already kept, so an older update never overwrites
a newer state. Every distinct update is still kept as a note (the ticket's history).

Open311 has no "acknowledged" status. A ticket counts as acknowledged the first time the city
touched it: a later ``updated_datetime`` than its ``requested_datetime``, notes, or a status
other than ``open``. Closed means ``status == "closed"``; the close time is that update's
``updated_datetime`` (the spec: "for closed requests, the close time").
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from social311.records import ServiceRequest

#: An update within this of the request time is the server's own creation stamp, not the city.
_CREATION_SLACK = timedelta(seconds=1)


@dataclass(frozen=True)
class TicketStatus:
    """What is known of one filed ticket; mirrors a row of ``ops.ticket_status``."""

    service_request_id: str
    incident_id: str | None
    status: str
    status_notes: str | None
    agency_responsible: str | None
    requested_at: datetime | None
    updated_at: datetime | None
    acknowledged_at: datetime | None = None
    closed_at: datetime | None = None

    @property
    def time_to_acknowledge_s(self) -> float | None:
        """Seconds from the request to the city's first touch, when both are known."""
        return _seconds(self.requested_at, self.acknowledged_at)

    @property
    def time_to_close_s(self) -> float | None:
        """Seconds from the request to its close, when closed."""
        return _seconds(self.requested_at, self.closed_at)


def _seconds(start: datetime | None, end: datetime | None) -> float | None:
    return max((end - start).total_seconds(), 0.0) if start and end else None


def is_newer(update: ServiceRequest, current: TicketStatus | None) -> bool:
    """Whether ``update`` may replace ``current``: not older, or the first one seen.

    Equal stamps are accepted (servers stamp whole seconds, and two changes can share one);
    an update without ``updated_datetime`` cannot be ordered, so it only fills an empty slot.
    """
    if current is None:
        return True
    if update.updated_datetime is None or current.updated_at is None:
        return current.updated_at is None and update.updated_datetime is not None
    return update.updated_datetime >= current.updated_at


def _acknowledged(update: ServiceRequest, requested_at: datetime | None) -> datetime | None:
    """When ``update`` shows the city touched the ticket, else None."""
    stamp = update.updated_datetime
    if stamp is None:
        return None
    touched = update.status != "open" or bool(update.status_notes)
    if requested_at is not None and stamp > requested_at + _CREATION_SLACK:
        touched = True
    return stamp if touched else None


def apply_update(current: TicketStatus | None, update: ServiceRequest, *, incident_id: str | None,
                 filed_at: datetime | None = None) -> TicketStatus:
    """The status after ``update``; ``current`` unchanged when the update is not newer.

    Args:
        current: what is kept now, or None for a ticket never synced.
        update: one answer of the server.
        incident_id: the incident behind the ticket (from the ledger).
        filed_at: the ledger's filing time, used when the server gives no ``requested_datetime``.

    Returns:
        The status to keep. The acknowledgement time is the earliest one ever seen, even from an
        update that is too old to change the state.
    """
    requested_at = (current.requested_at if current else None) or update.requested_datetime or filed_at
    acked = _acknowledged(update, requested_at)
    if current is not None and not is_newer(update, current):
        earliest = min(a for a in (current.acknowledged_at, acked) if a) if (current.acknowledged_at or acked) else None
        return replace(current, acknowledged_at=earliest)
    earlier = current.acknowledged_at if current else None
    closed = update.status == "closed"
    return TicketStatus(
        service_request_id=update.service_request_id,
        incident_id=incident_id if incident_id is not None else (current.incident_id if current else None),
        status=update.status,
        status_notes=update.status_notes,
        # Agencies are rarely re-sent on every update; keep the one we know.
        agency_responsible=update.agency_responsible or (current.agency_responsible if current else None),
        requested_at=requested_at,
        updated_at=update.updated_datetime,
        acknowledged_at=min(a for a in (earlier, acked) if a) if (earlier or acked) else None,
        closed_at=(update.updated_datetime or (current.closed_at if current else None)) if closed else None,
    )
