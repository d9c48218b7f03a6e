"""Input line formats (`--input-format`): each turns one line into an event, or says why it cannot.

`auto` (the default, as in RSigma) picks per line: JSON when the line starts with `{` or `[` (after
blanks and a UTF-8 BOM), syslog
when it starts with `<` and has a syslog header, else plain. Unlike RSigma's, it does not read a line
starting with `{` or `[` that is not a JSON object as plain text: a truncated or corrupt JSON event
would then silently miss every field rule, so it is refused as `json` refuses it. `syslog`, `plain`
and `logfmt` take any line; `json`, `cef` and `auto` reject the lines they cannot read, which then go
to the dead-letter queue.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, timezone
from typing import Any

import orjson

from rsigma.formats.cef import CefError, parse_cef
from rsigma.formats.extract import Extractor
from rsigma.formats.logfmt import parse_logfmt
from rsigma.formats.plain import parse_plain
from rsigma.formats.syslog import parse_syslog, parse_tz

__all__ = [
    "FORMATS",
    "CefError",
    "InputFormat",
    "LineParser",
    "input_format",
    "line_parser",
    "extract_json",
    "parse_cef",
    "parse_json",
    "starts_as_json",
    "parse_logfmt",
    "parse_plain",
    "parse_syslog",
    "parse_tz",
]

FORMATS = ("auto", "json", "syslog", "plain", "logfmt", "cef")
DEFAULT_FORMAT = "auto"
#: The first non-blank bytes with which `auto` reads a line as JSON.
JSON_STARTS = (b"{", b"[")
UTF8_BOM = b"\xef\xbb\xbf"
#: The first bytes of a line that may still start as JSON further on: blanks, and a BOM's first byte.
_BLANK_OR_BOM = b" \t\n\r\x0b\x0c\xef"


def starts_as_json(payload: bytes) -> bool:
    """Whether `auto` reads this line as JSON: its first byte after blanks (and a UTF-8 BOM, which
    `json` refuses: such a line is a JSON event all the same) is `{` or `[`. Most lines are decided by
    their first byte."""
    first = payload[:1]
    if first in JSON_STARTS:
        return True
    if not first or first not in _BLANK_OR_BOM:
        return False
    rest = payload.lstrip()
    if rest.startswith(UTF8_BOM):
        rest = rest[3:].lstrip()
    return rest[:1] in JSON_STARTS


@dataclass(frozen=True, slots=True)
class InputFormat:
    """A line format with its syslog settings, checked once at startup (see `input_format`)."""

    name: str = DEFAULT_FORMAT
    syslog_tz: timezone = UTC  # the zone of RFC 3164 timestamps, which have none
    syslog_strip_bom: bool = True  # drop the UTF-8 BOM RFC 5424 puts before a message


def input_format(name: str, syslog_tz: str = "+00:00", syslog_strip_bom: bool = True) -> InputFormat:
    """The format the flags name; ValueError with RSigma's message for an unknown name or zone."""
    if name not in FORMATS:
        raise ValueError(f"Unknown input format: {name!r}\nSupported formats: {', '.join(FORMATS)}")
    return InputFormat(name, parse_tz(syslog_tz), syslog_strip_bom)


#: One line in, its event (its events, when extracted) or the reason it is not one of the format's lines.
LineParser = Callable[[str], dict[str, Any] | list[dict[str, Any]] | str]


def _not_json(data: bytes | str, error: orjson.JSONDecodeError) -> str:
    return "empty line" if not data.strip() else f"invalid JSON: {error}"


def parse_json(data: bytes | str) -> dict[str, Any] | str:
    """The JSON object, or the dead-letter reason for data that is not one."""
    try:
        event = orjson.loads(data)
    except orjson.JSONDecodeError as e:
        return _not_json(data, e)
    if not isinstance(event, dict):
        return f"expected a JSON object, got {type(event).__name__}"
    return event


def extract_json(data: bytes | str, extract: Extractor) -> list[dict[str, Any]] | str:
    """The events `extract` (`--jq`/`--jsonpath`) finds in a JSON document of any type, or the
    dead-letter reason for data that is not JSON or that the extraction refuses."""
    try:
        document = orjson.loads(data)
    except orjson.JSONDecodeError as e:
        return _not_json(data, e)
    return extract(document, data if isinstance(data, str) else data.decode())


def line_parser(fmt: InputFormat, extract: Extractor | None = None) -> LineParser:
    """The parser of a text format (every format but `json`, which `rsigma.payloads` reads as bytes, as
    it reads `auto`'s JSON lines). `extract` (`--jq`/`--jsonpath`) turns the lines `auto` reads as JSON
    into their events; the other formats' events are not JSON documents, and pass as they are, as in
    RSigma."""
    tz, strip_bom = fmt.syslog_tz, fmt.syslog_strip_bom
    if fmt.name == "auto":

        def auto(line: str) -> dict[str, Any] | list[dict[str, Any]] | str:
            first = line.lstrip().removeprefix("\ufeff").lstrip()[:1]  # as starts_as_json, on text
            if first in ("{", "["):
                return parse_json(line.encode()) if extract is None else extract_json(line, extract)
            if first == "<":
                event = parse_syslog(line, tz, strip_bom)
                if any(key != "_raw" for key in event):
                    return event
            return parse_plain(line)

        return auto
    if fmt.name == "syslog":
        return lambda line: parse_syslog(line, tz, strip_bom)
    if fmt.name == "cef":

        def cef(line: str) -> dict[str, Any] | str:
            try:
                return parse_cef(line)
            except CefError as e:
                return f"invalid CEF: {e}"

        return cef
    if fmt.name == "logfmt":
        return parse_logfmt
    if fmt.name == "plain":
        return parse_plain
    raise ValueError(f"no line parser for input format {fmt.name!r}")
