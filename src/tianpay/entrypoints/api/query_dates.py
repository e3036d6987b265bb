"""Strict date and date-time parameters, in query strings and in JSON bodies (``expires_at`` of
``POST /v1/payments``): only the ISO 8601 forms docs/api.md documents.

In its lax mode pydantic reads ``created_from=0`` or ``date_to=86400`` as Unix timestamps, and a
date-time at midnight as a date. A merchant who sends those has made a mistake, and a filter that
silently starts in 1970 hides it; so a date is ``YYYY-MM-DD`` and a date-time is ISO 8601 with a time
zone (``2026-11-27T09:30:00+08:00``, ``…Z``), and anything else (a JSON number included) answers
``400 parameter_invalid`` naming the parameter, through the API's one error envelope.
"""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Annotated

from pydantic import AwareDatetime, BeforeValidator
from pydantic_core import PydanticCustomError

# re.ASCII: `\d` is 0-9 only, not any script's digits. Seconds and their fraction are optional, as in
# ISO 8601; the zone is Z or ±hh:mm (or ±hhmm).
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}", re.ASCII)
_DATETIME = re.compile(r"\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}(?::\d{2}(?:\.\d{1,9})?)?(?:[Zz]|[+-]\d{2}:?\d{2})", re.ASCII)
# `+08:00` sent unescaped in a query string arrives as ` 08:00`: a common slip worth naming.
_PLUS_AS_SPACE = re.compile(r"\d{4}-\d{2}-\d{2}[Tt][\d:.]+ \d{2}:?\d{2}", re.ASCII)
DATE_FORMAT = "a date as YYYY-MM-DD"
DATETIME_FORMAT = "an ISO 8601 date-time with a time zone, e.g. 2026-11-27T09:30:00+08:00"


def parse_iso_date(text: str) -> date | None:
    """The date written as ``YYYY-MM-DD``, or None for anything else (week dates, ``20261127``, numbers)."""
    if not _DATE.fullmatch(text):
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        return None


def parse_iso_datetime(text: str) -> datetime | None:
    """The zone-aware date-time written in ISO 8601 extended form, or None for anything else."""
    if not _DATETIME.fullmatch(text):
        return None
    try:
        return datetime.fromisoformat(text.upper())
    except ValueError:
        return None


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
    if isinstance(value, str) and _PLUS_AS_SPACE.fullmatch(value):
        raise PydanticCustomError("parameter_invalid", DATETIME_FORMAT + " (send '+' as %2B in a query string)")
    raise PydanticCustomError("parameter_invalid", DATETIME_FORMAT)


IsoDate = Annotated[date, BeforeValidator(_strict_date)]
IsoDateTime = Annotated[AwareDatetime, BeforeValidator(_strict_datetime)]
