"""The file-offset clock: every process reading the same file moves forward together."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from tianpay.adapters.clock import OffsetFileClock


def test_a_missing_file_means_the_system_time(tmp_path: Path) -> None:
    clock = OffsetFileClock(tmp_path / "clock.json")
    assert abs(clock.now() - datetime.now(UTC)) < timedelta(seconds=5)


def test_advancing_one_clock_moves_another_reading_the_same_file(tmp_path: Path) -> None:
    path = tmp_path / "clock.json"
    writer, reader = OffsetFileClock(path), OffsetFileClock(path)
    assert reader.now() - datetime.now(UTC) < timedelta(hours=1)
    writer.advance(timedelta(days=1))
    assert reader.now() - datetime.now(UTC) > timedelta(hours=23)
    writer.advance(timedelta(days=1))
    assert reader.now() - datetime.now(UTC) > timedelta(hours=47)


def test_an_unreadable_file_means_no_offset(tmp_path: Path) -> None:
    path = tmp_path / "clock.json"
    path.write_text("not json", encoding="utf-8")
    assert abs(OffsetFileClock(path).now() - datetime.now(UTC)) < timedelta(seconds=5)
