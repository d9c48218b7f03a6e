"""ArcSight Common Event Format, as RSigma's parser reads it.

`CEF:Version|Device Vendor|Device Product|Device Version|Signature ID|Name|Severity|Extension`, from
the first `CEF:` in the line (a syslog envelope before it is dropped). Header fields unescape `\\|`
and `\\\\`. The extension is `key=value` pairs whose values may hold spaces: each unescaped `=` ends
a key, the last word before it, and the text up to that word is the previous key's value; values
unescape `\\=`, `\\\\`, `\\n` and `\\r`. Any other backslash is kept.
"""

from __future__ import annotations

HEADER_FIELDS = ("deviceVendor", "deviceProduct", "deviceVersion", "signatureId", "name", "severity")


class CefError(ValueError):
    """A line that is not CEF; the message says why."""


def parse_cef(line: str) -> dict[str, str]:
    """The event: `cef_version`, the six header fields by RSigma's names, then the extension pairs
    (a key given twice keeps its first value)."""
    start = line.find("CEF:")
    if start < 0:
        raise CefError("input does not contain a CEF header")
    segments = _split_header(line[start + 4 :].strip())
    if len(segments) < 8:
        raise CefError("CEF header requires 7 pipe-delimited fields")
    version = segments[0].strip()
    if not (version.isascii() and version.isdigit()):
        raise CefError("CEF version is not a valid integer")
    event = {"cef_version": str(int(version))}
    for name, raw in zip(HEADER_FIELDS, segments[1:7], strict=True):
        event[name] = _unescape(raw, "|\\")
    for key, value in _extensions(segments[7]):
        event.setdefault(key, value)
    return event


def _split_header(text: str) -> list[str]:
    """Up to 8 segments: the version, six header fields, and everything after the 7th unescaped `|`."""
    segments: list[str] = []
    start = i = 0
    n = len(text)
    while i < n:
        c = text[i]
        if c == "\\" and i + 1 < n:
            i += 2
            continue
        if c == "|":
            segments.append(text[start:i])
            start = i + 1
            if len(segments) == 7:
                segments.append(text[start:])
                return segments
        i += 1
    segments.append(text[start:])
    return segments


_EXTENSION_ESCAPES = {"=": "=", "\\": "\\", "n": "\n", "r": "\r"}


def _unescape(text: str, escapable: str | dict[str, str]) -> str:
    if "\\" not in text:
        return text
    out: list[str] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c == "\\" and i + 1 < n and text[i + 1] in escapable:
            nxt = text[i + 1]
            out.append(escapable[nxt] if isinstance(escapable, dict) else nxt)
            i += 2
        else:
            out.append(c)
            i += 1
    return "".join(out)


def _extensions(text: str) -> list[tuple[str, str]]:
    text = text.strip()
    segments: list[str] = []
    start = i = 0
    n = len(text)
    while i < n:
        if text[i] == "\\" and i + 1 < n:
            i += 2
            continue
        if text[i] == "=":
            segments.append(text[start:i])
            start = i + 1
        i += 1
    segments.append(text[start:])
    if len(segments) < 2:
        return []
    pairs: list[tuple[str, str]] = []
    key = segments[0].rsplit(" ", 1)[-1]
    last = len(segments) - 1
    for index in range(1, len(segments)):
        segment = segments[index]
        if index < last and " " in segment:
            value, next_key = segment.rsplit(" ", 1)
        else:  # the last value, or a value with no space before the next `=` (RSigma's degenerate case)
            value, next_key = segment, ""
        pairs.append((key, _unescape(value.strip(), _EXTENSION_ESCAPES)))
        key = next_key
    return pairs
