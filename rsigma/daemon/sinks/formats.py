"""How a findings sink writes each result: the native JSON line (`?format=ndjson`, the default) or an
OCSF Detection Finding (`?format=ocsf`), compact, or indented with `--pretty` on stdout.

Results arrive serialised once in the native shape (see `rsigma/payloads.py`) and are re-encoded
here, at the sink that asked for it, so other sinks and dead-letter entries keep the native lines.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, Final

import orjson

from rsigma.errors import ConfigError
from rsigma.ocsf import detection_finding

FORMATS: Final = ("ndjson", "ocsf")

#: Re-encodes one native result line (ending in a newline) for a sink.
LineFormat = Callable[[bytes], bytes]


def split_sink_url(url: str, flag: str) -> tuple[str, str | None]:
    """The URL without its query, and the `format=` it names (None: not given). The query is split
    at the first `?`, then on `&`, as RSigma does; an unknown key, an unknown or empty format, or a
    repeated one is a startup error naming the flag, and so is any format on the DLQ."""
    base, sep, query = url.partition("?")
    if not sep:
        return url, None
    fmt: str | None = None
    for part in query.split("&"):
        key, _, value = part.partition("=")
        if key != "format":
            raise ConfigError(f"{flag} {url!r}: unknown query parameter {key!r} (supported: format)")
        if flag == "--dlq":
            raise ConfigError(
                f"{flag} {url!r}: format= is only supported on findings sinks (--output);"
                " dead-letter entries are always JSON lines"
            )
        if fmt is not None:
            raise ConfigError(f"{flag} {url!r}: format= may be specified only once")
        if value not in FORMATS:
            raise ConfigError(f"{flag} {url!r}: unknown sink format {value!r} (supported: ndjson, ocsf)")
        fmt = value
    return base, fmt


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
