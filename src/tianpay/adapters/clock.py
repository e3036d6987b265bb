"""Clocks: the system clock for production and a settable one for tests and simulations."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


class SettableClock:
    """A clock tests move by hand; it is the only fake Tianpay's tests use (the true edge)."""

    def __init__(self, start: datetime | None = None) -> None:
        self._now = start or datetime.now(UTC)
        self._lock = threading.Lock()

    def now(self) -> datetime:
        with self._lock:
            return self._now

    def set(self, moment: datetime) -> None:
        with self._lock:
            self._now = moment

    def advance(self, delta: timedelta) -> None:
        with self._lock:
            self._now += delta


class OffsetFileClock:
    """System time shifted by an offset read from a small JSON file (``{"offset_s": …}``).

    For demos and end-to-end tests only (``TIANPAY_CLOCK_FILE``): ``serve``, ``worker`` and the CLI are
    separate processes, so "advance the platform a day" must reach all of them; each re-reads the file
    when it changes (one ``stat`` per reading of the time). A missing or unreadable file means no offset.
    """

    def __init__(self, path: Path) -> None:
        self._path = path
        self._lock = threading.Lock()
        self._seen_mtime_ns: int | None = None
        self._offset = timedelta(0)

    def now(self) -> datetime:
        return datetime.now(UTC) + self._current_offset()

    def advance(self, delta: timedelta) -> None:
        """Move every process reading this file forward (used by `tianpay demo` and tests)."""
        with self._lock:
            offset = self._read() + delta
            self._path.parent.mkdir(parents=True, exist_ok=True)
            self._path.write_text(json.dumps({"offset_s": offset.total_seconds()}), encoding="utf-8")

    def _current_offset(self) -> timedelta:
        try:
            mtime_ns = self._path.stat().st_mtime_ns
        except OSError:
            return timedelta(0)
        with self._lock:
            if mtime_ns != self._seen_mtime_ns:
                self._offset = self._read()
                self._seen_mtime_ns = mtime_ns
            return self._offset

    def _read(self) -> timedelta:
        try:
            data = json.loads(self._path.read_text(encoding="utf-8"))
            return timedelta(seconds=float(data.get("offset_s", 0.0)))
        except (OSError, ValueError, TypeError, AttributeError):
            return timedelta(0)
