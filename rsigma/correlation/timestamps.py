"""Event time for correlation windows: the first parseable field of a configurable list."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

from rsigma.fields import MISSING, resolve
from rsigma.timeparse import EPOCH_MS_THRESHOLD, parse_datetime

DEFAULT_TIMESTAMP_FIELDS: Final = (
    "@timestamp",
    "timestamp",
    "UtcTime",
    "TimeCreated",
    "EventTime",
    "eventTime",
)


def event_time(event: dict[str, Any], fields: Sequence[str]) -> float | None:
    """Seconds since the epoch (sub-second precision kept), or None when no field parses."""
    for name in fields:
        value = resolve(event, name)
        if value is MISSING:
            continue
        if isinstance(value, dict):  # e.g. {"SystemTime": "..."} under TimeCreated
            value = next(iter(value.values()), None)
        if type(value) is float or type(value) is int:
            return value / 1000.0 if value > EPOCH_MS_THRESHOLD else float(value)
        dt = parse_datetime(value)
        if dt is not None:
            return dt.timestamp()
    return None
