"""Merchant API routes for the notification log: list events, show one, resend one.

Each event is shown with its delivery status and every attempt (status code, latency, error), so a
merchant can see why a webhook did not arrive and ask for it again. A merchant only ever sees its
own events; another merchant's event id answers 404 like an unknown one.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from tianpay.domain.notifications import EventStatus, EventType, iso_utc
from tianpay.ports.outbox import AttemptRecord, EventRecord
from tianpay.services import notifications

from .deps import AuthenticatedMerchant, ContainerDep

router = APIRouter(prefix="/v1", tags=["events"])


class WebhookAttemptOut(BaseModel):
    attempt_no: int
    started_at: str
    succeeded: bool
    response_status: int | None = Field(description="The merchant's HTTP status; null when none came back.")
    latency_ms: int
    error: str | None


class EventOut(BaseModel):
    id: str = Field(description="The event id, sent as the webhook-id header: stable across retries.")
    object: Literal["event"] = "event"
    type: EventType
    created_at: str
    status: EventStatus
    attempt_count: int
    next_attempt_at: str | None
    delivered_at: str | None
    data: dict[str, Any] = Field(description="The data object of the webhook body, as sent.")
    attempts: list[WebhookAttemptOut]


class EventListOut(BaseModel):
    object: Literal["list"] = "list"
    url: str = "/v1/events"
    data: list[EventOut]
    has_more: bool


@router.get("/events", response_model=EventListOut, summary="List notification events, newest first")
def list_events(
    merchant: AuthenticatedMerchant,
    container: ContainerDep,
    limit: Annotated[int, Query(ge=1, le=notifications.MAX_PAGE_LIMIT)] = 10,
    starting_after: Annotated[str | None, Query(description="An event id: the page after it.")] = None,
    type: Annotated[EventType | None, Query(description="Only events of this type.")] = None,
) -> EventListOut:
    page = notifications.list_events(
        container.uow, merchant.merchant_id, type=type, starting_after=starting_after, limit=limit
    )
    return EventListOut(data=[event_out(event) for event in page.events], has_more=page.has_more)


@router.get("/events/{event_id}", response_model=EventOut, summary="Show one event and its delivery attempts")
def get_event(event_id: str, merchant: AuthenticatedMerchant, container: ContainerDep) -> EventOut:
    return event_out(notifications.get_event(container.uow, merchant.merchant_id, event_id))


@router.post(
    "/events/{event_id}/resend",
    response_model=EventOut,
    summary="Deliver an event again now (attempt numbers continue)",
)
def resend_event(event_id: str, merchant: AuthenticatedMerchant, container: ContainerDep) -> EventOut:
    event = notifications.resend_event(container.uow, container.clock, merchant.merchant_id, event_id)
    return event_out(event)


def event_out(event: EventRecord) -> EventOut:
    body = json.loads(event.body)
    return EventOut(
        id=event.id,
        type=event.type,
        created_at=iso_utc(event.created_at),
        status=event.status,
        attempt_count=event.attempt_count,
        next_attempt_at=_iso_or_none(event.next_attempt_at),
        delivered_at=_iso_or_none(event.delivered_at),
        data=body["data"],
        attempts=[attempt_out(attempt) for attempt in event.attempts],
    )


def attempt_out(attempt: AttemptRecord) -> WebhookAttemptOut:
    return WebhookAttemptOut(
        attempt_no=attempt.attempt_no,
        started_at=iso_utc(attempt.started_at),
        succeeded=attempt.succeeded,
        response_status=attempt.response_status,
        latency_ms=attempt.latency_ms,
        error=attempt.error,
    )


def _iso_or_none(moment: datetime | None) -> str | None:
    return None if moment is None else iso_utc(moment)
