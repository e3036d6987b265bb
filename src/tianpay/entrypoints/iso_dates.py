"""Dates and date-times typed by people and programs: only the ISO 8601 forms the docs name.

``date.fromisoformat`` alone would also take ``20261127`` and week dates such as ``2026-W48-5``;
every entrance (the API's query strings and bodies, the CLI's options, the portal's links) reads
dates through these two functions so that one spelling means one day everywhere.
"""

from __future__ import annotations

import re
from datetime import date, datetime

# re.ASCII: `\d` is 0-9 only, not any script's digits. Seconds and their fraction are optional, as in
# ISO 8601; the zone is Z or ±hh:mm (or ±hhmm).
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}", re.ASCII)
_DATETIME = re.compile(r"\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}(?::\d{2}(?:\.\d{1,9})?)?(?:[Zz]|[+-]\d{2}:?\d{2})", re.ASCII)
# `+08:00` sent unescaped in a query string arrives as ` 08:00`: a common slip worth naming.
PLUS_AS_SPACE = re.compile(r"\d{4}-\d{2}-\d{2}[Tt][\d:.]+ \d{2}:?\d{2}", re.ASCII)
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
