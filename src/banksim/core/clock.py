"""The simulated world's clock: real time plus a settable offset.

Banks keep business dates in Asia/Shanghai (BANKS.md, DESIGN.md §8). Tests and demos move the
clock forward (`POST /_sim/clock`) to reach the next business day without waiting; the offset is
kept in a small JSON file so a restarted world keeps the same notion of "today".
"""

from __future__ import annotations

import json
import threading
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path

# China has had no daylight saving time since 1991, so a fixed offset is exact and avoids a
# dependency on the host's tz database.
SHANGHAI = timezone(timedelta(hours=8), name="Asia/Shanghai")


class SimClock:
    """Wall-clock time shifted by an offset that tests may change at run time."""

    def __init__(self, state_path: Path | None = None) -> None:
        self._state_path = state_path
        self._lock = threading.Lock()
        self._offset_s = self._load()

    @property
    def offset_s(self) -> float:
        return self._offset_s

    def now(self) -> datetime:
        """The simulated time, timezone-aware, in UTC."""
        return datetime.now(UTC) + timedelta(seconds=self._offset_s)

    def local_now(self) -> datetime:
        """The simulated time in Beijing time, the time every bank speaks on the wire."""
        return self.now().astimezone(SHANGHAI)

    def business_date(self) -> date:
        return self.local_now().date()

    def timestamp(self) -> float:
        """Simulated seconds since the epoch; used for schedules persisted in the books."""
        return self.now().timestamp()

    def set_offset(self, offset_s: float) -> None:
        with self._lock:
            self._offset_s = float(offset_s)
            self._save()

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._offset_s += float(seconds)
            self._save()

    def set_now(self, when: datetime) -> None:
        """Make the simulated time equal `when` (an aware datetime) from this instant on."""
        if when.tzinfo is None:
            raise ValueError("the time must carry a timezone offset")
        self.set_offset((when - datetime.now(UTC)).total_seconds())

    def reset(self) -> None:
        self.set_offset(0.0)

    def _load(self) -> float:
        if self._state_path is None or not self._state_path.exists():
            return 0.0
        data = json.loads(self._state_path.read_text(encoding="utf-8"))
        return float(data.get("offset_s", 0.0))

    def _save(self) -> None:
        if self._state_path is None:
            return
        self._state_path.parent.mkdir(parents=True, exist_ok=True)
        self._state_path.write_text(json.dumps({"offset_s": self._offset_s}), encoding="utf-8")


def shanghai_date(moment: datetime) -> date:
    """The business date (Asia/Shanghai) of an aware moment."""
    return moment.astimezone(SHANGHAI).date()
