"""One raw event in, its output lines (or the reason it cannot be used) out: shared by the daemon's
engine task and the worker pool's matcher processes, so both treat every payload alike."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import orjson

from rsigma.correlation.engine import CorrelationResult
from rsigma.engine.engine import Detection

#: (rule title, level or "unknown", correlation type or None): the labels results are counted by.
RuleKey = tuple[str, str, str | None]

#: The dead-letter reason for results that cannot be written (see `result_lines`).
TOO_DEEP_TO_WRITE = "event nested too deeply to write its results"


def decode_event(payload: bytes, max_event_bytes: int) -> dict[str, Any] | str:
    """The event object, or the dead-letter reason for a payload that is not one."""
    if len(payload) > max_event_bytes:
        return f"event of {len(payload)} bytes exceeds --max-event-bytes {max_event_bytes}"
    try:
        event = orjson.loads(payload)
    except orjson.JSONDecodeError as e:
        return "empty line" if not payload.strip() else f"invalid JSON: {e}"
    if not isinstance(event, dict):
        return f"expected a JSON object, got {type(event).__name__}"
    return event


def result_lines(
    results: Sequence[Detection | CorrelationResult], include_event: bool
) -> tuple[list[bytes], list[RuleKey]]:
    """The output line of each result, and the labels to count it by (RecursionError for results
    nested too deeply to write)."""
    lines: list[bytes] = []
    keys: list[RuleKey] = []
    for result in results:
        d = result.to_dict(include_event)
        try:
            line = orjson.dumps(d)
        except orjson.JSONEncodeError:
            # orjson writes at most 254 levels, but reads events up to 1,024 deep (kept whole by
            # --include-event): the standard library writes ~990; deeper raises RecursionError, which
            # the callers turn into a dead letter (TOO_DEEP_TO_WRITE) instead of dying.
            line = json.dumps(d, ensure_ascii=False, separators=(",", ":")).encode()
        lines.append(line + b"\n")
        keys.append((d["rule_title"], d.get("level") or "unknown", d.get("correlation_type")))
    return lines, keys
