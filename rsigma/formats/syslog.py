"""Syslog, RFC 5424 and RFC 3164 (BSD), shaped as RSigma's syslog adapter shapes it.

Fields, each present only when the line has it: `timestamp` (RFC 3339), `hostname`, `appname`,
`procid`, `msgid`, `facility` and `severity` (from the `<PRI>`, named as syslog_loose names them:
`LOG_AUTH`, `SEV_CRIT`), RFC 5424 structured data as `<SD-ID>.<param>`, and the message as `_raw`.
When the message is a JSON object, that object is the event, with the header added as `syslog_*`
fields (and structured data as `sd.<SD-ID>.<param>`) where the object has no such key.

An RFC 3164 timestamp has no year and usually no zone: the year is the current one (a January message
read in December is next year's, a December one read in January last year's), the zone `--syslog-tz`.
Parsing is loose, as RSigma's: a line that is not syslog becomes `{"_raw": line}`, never an error.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import orjson

FACILITIES = (
    "LOG_KERN", "LOG_USER", "LOG_MAIL", "LOG_DAEMON", "LOG_AUTH", "LOG_SYSLOG", "LOG_LPR", "LOG_NEWS",
    "LOG_UUCP", "LOG_CRON", "LOG_AUTHPRIV", "LOG_FTP", "LOG_NTP", "LOG_AUDIT", "LOG_ALERT", "LOG_CLOCKD",
    "LOG_LOCAL0", "LOG_LOCAL1", "LOG_LOCAL2", "LOG_LOCAL3", "LOG_LOCAL4", "LOG_LOCAL5", "LOG_LOCAL6",
    "LOG_LOCAL7",
)  # fmt: skip
SEVERITIES = (
    "SEV_EMERG", "SEV_ALERT", "SEV_CRIT", "SEV_ERR", "SEV_WARNING", "SEV_NOTICE", "SEV_INFO", "SEV_DEBUG",
)  # fmt: skip
MONTH_NAMES = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
MONTHS = {m: i for i, m in enumerate(MONTH_NAMES, 1)}
BOM = "\ufeff"

_PRI = re.compile(r"<(\d{1,3})>")
_RFC5424 = re.compile(r"(\d{1,2}) (\S+) (\S+) (\S+) (\S+) (\S+) ?")
# `Mmm dd hh:mm:ss`, the day space-padded, with optional fractional seconds and a year after it
_RFC3164_TIME = re.compile(
    r"([A-Z][a-z]{2}) {1,2}(\d{1,2}) (\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,6}))?(?: (\d{4}))? ?"
)
_RFC3339_TIME = re.compile(
    r"(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:\d{2})?) ?", re.IGNORECASE
)
_TAG = re.compile(r"([^\s\[\]:]+)(?:\[([^\]\s]*)\])?: ?")
_SD_ELEMENT = re.compile(r"\[([^\s\]=\"]+)((?:\s+[^\s\]=\"]+=\"(?:[^\"\\]|\\.)*\")*)\s*\]")
_SD_PARAM = re.compile(r"([^\s\]=\"]+)=\"((?:[^\"\\]|\\.)*)\"")
_SD_ESCAPE = re.compile(r"\\([\"\\\]])")


def parse_syslog(line: str, tz: timezone = UTC, strip_bom: bool = True) -> dict[str, Any]:
    """The event of one syslog line (see the module docstring); `tz` is the zone of RFC 3164 times."""
    header: dict[str, str] = {}
    sd: list[tuple[str, str, str]] = []
    rest = line.lstrip()
    pri = _PRI.match(rest)
    if pri:
        value = int(pri.group(1))
        if value >> 3 < len(FACILITIES):
            header["facility"] = FACILITIES[value >> 3]
        header["severity"] = SEVERITIES[value & 7]
        rest = rest[pri.end() :]
    v5424 = _RFC5424.match(rest) if pri else None
    if v5424 and (v5424.group(2) == "-" or _RFC3339_TIME.fullmatch(v5424.group(2))):
        message = _rfc5424(v5424, rest, header, sd)
    else:
        message = _rfc3164(rest, tz, header)
    if strip_bom and message.startswith(BOM):
        message = message[1:]
    message = message.strip()
    if message[:1] == "{":
        try:
            embedded = orjson.loads(message)
        except orjson.JSONDecodeError:
            embedded = None
        if isinstance(embedded, dict):
            for key in ("timestamp", "hostname", "appname", "procid", "msgid", "facility", "severity"):
                if key in header:
                    embedded.setdefault(f"syslog_{key}", header[key])
            for sd_id, key, value in sd:
                embedded.setdefault(f"sd.{sd_id}.{key}", value)
            return embedded
    event: dict[str, Any] = {}
    for key in ("timestamp", "hostname", "appname", "procid", "msgid", "facility", "severity"):
        if key in header:
            event[key] = header[key]
    for sd_id, key, value in sd:
        event.setdefault(f"{sd_id}.{key}", value)
    if message:
        event.setdefault("_raw", message)
    return event


def _rfc5424(match: re.Match[str], rest: str, header: dict[str, str], sd: list[tuple[str, str, str]]) -> str:
    """Fills the header and structured data of an RFC 5424 line; returns its message."""
    _, stamp, host, app, procid, msgid = match.groups()
    when = _parse_rfc3339(stamp, UTC) if stamp != "-" else None
    if when is not None:
        header["timestamp"] = _rfc3339(when)
    for key, value in (("hostname", host), ("appname", app), ("procid", procid), ("msgid", msgid)):
        if value != "-":
            header[key] = value
    rest = rest[match.end() :]
    if rest.startswith("-"):
        rest = rest[1:]
    while element := _SD_ELEMENT.match(rest):
        for key, value in _SD_PARAM.findall(element.group(2)):
            sd.append((element.group(1), key, _SD_ESCAPE.sub(r"\1", value)))
        rest = rest[element.end() :]
    return rest[1:] if rest.startswith(" ") else rest  # the space between the header and the message


def _rfc3164(rest: str, tz: timezone, header: dict[str, str]) -> str:
    """Fills the header of a BSD line (time, host, tag); returns its message."""
    stamp = _RFC3164_TIME.match(rest)
    when: datetime | None = None
    if stamp and stamp.group(1) in MONTHS:
        month, day = MONTHS[stamp.group(1)], int(stamp.group(2))
        year = int(stamp.group(7)) if stamp.group(7) else _year(month)
        micros = int((stamp.group(6) or "0").ljust(6, "0"))
        h, m, s = (int(stamp.group(i)) for i in (3, 4, 5))
        try:
            when = datetime(year, month, day, h, m, s, micros, tzinfo=tz)
        except ValueError:
            stamp = None
    elif iso := _RFC3339_TIME.match(rest):
        stamp, when = iso, _parse_rfc3339(iso.group(1), tz)
    else:
        stamp = None
    if stamp is None or when is None:
        tag = _TAG.match(rest)
        if tag is None:
            return rest
        return _take_tag(tag, rest, header)
    header["timestamp"] = _rfc3339(when)
    rest = rest[stamp.end() :]
    tag = _TAG.match(rest)
    if tag is None:  # a host before the tag
        host, _, after = rest.partition(" ")
        if not host:
            return rest
        header["hostname"] = host
        rest = after
        tag = _TAG.match(rest)
        if tag is None:
            return rest
    return _take_tag(tag, rest, header)


def _take_tag(tag: re.Match[str], rest: str, header: dict[str, str]) -> str:
    header["appname"] = tag.group(1)
    if tag.group(2):
        header["procid"] = tag.group(2)
    return rest[tag.end() :]


def _year(month: int) -> int:
    now = datetime.now(UTC)
    if now.month == 12 and month == 1:
        return now.year + 1
    if now.month == 1 and month == 12:
        return now.year - 1
    return now.year


def _parse_rfc3339(text: str, tz: timezone) -> datetime | None:
    """The time, in `tz` when it has no zone; None for an impossible date (month 13), which the
    event then goes without."""
    try:
        when = datetime.fromisoformat(text.upper())
    except ValueError:
        return None
    return when if when.tzinfo is not None else when.replace(tzinfo=tz)


def _rfc3339(when: datetime) -> str:
    """As chrono's `to_rfc3339`: `+00:00` for UTC, fractional seconds only when there are some."""
    micros = when.microsecond
    when = when.replace(microsecond=0)
    text = when.isoformat()
    if micros:
        fraction = f".{micros // 1000:03d}" if micros % 1000 == 0 else f".{micros:06d}"
        text = text[:19] + fraction + text[19:]
    return text


def parse_tz(value: str) -> timezone:
    """`--syslog-tz`: `±HH:MM`, `UTC`, `utc` or `Z` (ValueError otherwise)."""
    if value in ("UTC", "utc", "Z"):
        return UTC
    match = re.fullmatch(r"([+-])(\d{2}):(\d{2})", value)
    if match is None or int(match.group(2)) > 23 or int(match.group(3)) > 59:
        raise ValueError(f"Invalid timezone offset: {value!r} (expected ±HH:MM, UTC or Z)")
    sign = -1 if match.group(1) == "-" else 1
    return timezone(sign * timedelta(hours=int(match.group(2)), minutes=int(match.group(3))))
