"""How a result line is written: the native JSON line as the engine serialised it, indented
(`--pretty`), or as an OCSF Detection Finding (`?format=ocsf` outputs).

Results are serialised once in the native shape (see `rsigma/payloads.py`) and re-encoded only where a
format asks for it, so other outputs and dead-letter entries keep the native lines.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import orjson

from rsigma.ocsf import detection_finding

#: Re-encodes one native result line (ending in a newline).
LineFormat = Callable[[bytes], bytes]


def _dumps(obj: Any, pretty: bool) -> bytes:
    try:
        return orjson.dumps(obj, option=orjson.OPT_INDENT_2 if pretty else 0)
    except orjson.JSONEncodeError:
        pass
    # Deeper than orjson writes (an event kept by --include-event): the standard library writes ~990
    # levels; deeper still fails the write, and the sink worker hands the results to the DLQ.
    try:
        if pretty:
            return json.dumps(obj, ensure_ascii=False, indent=2).encode()
        return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode()
    except RecursionError:
        raise OSError("result nested too deeply to write in this sink's format") from None


def _load(line: bytes) -> Any:
    try:
        return orjson.loads(line)
    except orjson.JSONDecodeError:  # deeper than orjson reads: the worker dead-letters the results
        raise OSError("result nested too deeply to write in this sink's format") from None


def line_format(fmt: str | None, pretty: bool) -> LineFormat | None:
    """The re-encoding for a sink of this format; None when the native line goes out as it is."""
    if fmt == "ocsf":
        return lambda line: _dumps(detection_finding(_load(line)), pretty) + b"\n"
    if pretty:
        return lambda line: _dumps(_load(line), True) + b"\n"
    return None
