"""Strict date and date-time parameters, in query strings and in JSON bodies (``expires_at`` of
``POST /v1/payments``): only the ISO 8601 forms docs/api.md documents.

In its lax mode pydantic reads ``created_from=0`` or ``date_to=86400`` as Unix timestamps, and a
date-time at midnight as a date. A merchant who sends those has made a mistake, and a filter that
silently starts in 1970 hides it; so a date is ``YYYY-MM-DD`` and a date-time is ISO 8601 with a time
zone (``2026-11-27T09:30:00+08:00``, ``…Z``), and anything else (a JSON number included) answers
``400 parameter_invalid`` naming the parameter, through the API's one error envelope.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated

from pydantic import AwareDatetime, BeforeValidator
from pydantic_core import PydanticCustomError

from tianpay.entrypoints.iso_dates import (
    DATE_FORMAT,
    DATETIME_FORMAT,
    PLUS_AS_SPACE,
    parse_iso_date,
    parse_iso_datetime,
)

__all__ = ["DATETIME_FORMAT", "DATE_FORMAT", "IsoDate", "IsoDateTime", "parse_iso_date", "parse_iso_datetime"]

def _strict_date(value: object) -> object:
    if isinstance(value, date) and not isinstance(value, datetime):
        return value
    parsed = parse_iso_date(value) if isinstance(value, str) else None
    if parsed is None:
        raise PydanticCustomError("parameter_invalid", DATE_FORMAT)
    return parsed


def _strict_datetime(value: object) -> object:
    if isinstance(value, datetime):
        return value
    parsed = parse_iso_datetime(value) if isinstance(value, str) else None
    if parsed is not None:
        return parsed
    if isinstance(value, str) and PLUS_AS_SPACE.fullmatch(value):
        raise PydanticCustomError("parameter_invalid", DATETIME_FORMAT + " (send '+' as %2B in a query string)")
    raise PydanticCustomError("parameter_invalid", DATETIME_FORMAT)


IsoDate = Annotated[date, BeforeValidator(_strict_date)]
IsoDateTime = Annotated[AwareDatetime, BeforeValidator(_strict_datetime)]
