"""Operator alerts: facts the platform cannot settle alone and a person must look at.

An alert is raised once per ``dedupe_key`` (a bank repeating the notification that caused it raises
nothing new) and stays open until an operator resolves it in the console.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime


class AlertKind(enum.StrEnum):
    # A verified bank message reported another amount than the attempt asked for.
    AMOUNT_MISMATCH = "amount_mismatch"
    # A verified bank message contradicts a final state we recorded (success, then failure …).
    BANK_CHANGED_ITS_MIND = "bank_changed_its_mind"
    # A verified bank message about an attempt or refund this platform does not know.
    UNKNOWN_REFERENCE = "unknown_reference"


class AlertSeverity(enum.StrEnum):
    WARNING = "warning"
    ERROR = "error"


class AlertStatus(enum.StrEnum):
    OPEN = "open"
    RESOLVED = "resolved"


@dataclass(frozen=True, slots=True)
class OperatorAlert:
    id: str
    kind: AlertKind
    severity: AlertSeverity
    dedupe_key: str
    subject_id: str | None
    message: str
    created_at: datetime
    details: Mapping[str, str] = field(default_factory=dict)
    status: AlertStatus = AlertStatus.OPEN
    resolved_at: datetime | None = None
