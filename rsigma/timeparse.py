"""Event timestamps shared by the engine (date modifiers) and correlation (window times): ISO 8601
strings (naive means UTC) and epoch seconds or milliseconds.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Final

#: Epoch values above this are taken as milliseconds (1e12 s is in the year 33658).
EPOCH_MS_THRESHOLD: Final = 1e12


def parse_datetime(value: Any) -> datetime | None:
    """A timezone-aware UTC datetime, or None when the value is not a recognisable time."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        return _from_epoch(float(value))
    if not isinstance(value, str):
        return None
    text = value.strip()
    if not text:
        return None
    if text[0].isdigit() and text.replace(".", "", 1).isdigit():
        return _from_epoch(float(text))
    try:
        dt = datetime.fromisoformat(text)
    except ValueError:
        return None
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)


def _from_epoch(seconds: float) -> datetime | None:
    if seconds > EPOCH_MS_THRESHOLD:
        seconds /= 1000.0
    try:
        return datetime.fromtimestamp(seconds, tz=UTC)
    except (OverflowError, OSError, ValueError):
        return None


def time_part(dt: datetime, unit: str) -> int:
    """The number the Sigma time modifiers compare: UTC minute, hour, day, ISO week, month or year."""
    if unit == "week":
        return dt.isocalendar().week
    return int(getattr(dt, unit))
