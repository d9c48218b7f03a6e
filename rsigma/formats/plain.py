"""Plain text: the whole line as one event, for keyword rules."""

from __future__ import annotations


def parse_plain(line: str) -> dict[str, str]:
    """`{"_raw": line}`, the event RSigma's plain adapter writes (keyword rules search its value)."""
    return {"_raw": line}
