"""Input line formats (`--input-format`): each turns one line into an event, or says why it cannot.

`json` is the NDJSON the daemon always read; `auto` picks per line as RSigma does (JSON when the line
starts with `{` or `[` and parses, syslog when it starts with `<` and has a syslog header, else
plain). `syslog`, `plain` and `logfmt` take any line; `json` and `cef` reject the lines that are not
theirs, which then go to the dead-letter queue.
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
    "parse_cef",
    "parse_logfmt",
    "parse_plain",
    "parse_syslog",
    "parse_tz",
]

FORMATS = ("auto", "json", "syslog", "plain", "logfmt", "cef")
DEFAULT_FORMAT = "json"


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


def line_parser(fmt: InputFormat, extract: Extractor | None = None) -> LineParser:
    """The parser of a text format (every format but `json`, which `rsigma.payloads` reads as bytes).
    `extract` (`--jq`/`--jsonpath`) turns the lines `auto` reads as JSON into their events; the other
    formats' events are not JSON documents, and pass as they are, as in RSigma."""
    tz, strip_bom = fmt.syslog_tz, fmt.syslog_strip_bom
    if fmt.name == "auto":

        def auto(line: str) -> dict[str, Any] | list[dict[str, Any]] | str:
            first = line.lstrip()[:1]
            if first in ("{", "["):
                try:
                    document = orjson.loads(line)
                except orjson.JSONDecodeError:
                    pass
                else:
                    if extract is not None:
                        return extract(document, line)
                    if isinstance(document, dict):
                        return document
            elif first == "<":
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
