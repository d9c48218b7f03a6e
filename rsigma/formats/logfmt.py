"""logfmt (`key=value key2="quoted value" flag`), as RSigma's parser reads it.

A bare key means `"true"`, `key=` means `""`, a quoted value takes `\\"` and `\\\\` escapes (any other
backslash is kept), an unterminated quote runs to the end of the line, and a pair without a key
(`=x`) is skipped. Every value is a string. A key given twice keeps its first value, the one
RSigma's rules see.
"""

from __future__ import annotations

_SPACE = " \t"


def parse_logfmt(line: str) -> dict[str, str]:
    """The line's pairs; never fails (a line of words is a set of bare keys)."""
    pairs: dict[str, str] = {}
    n = len(line)
    pos = 0
    while pos < n:
        if line[pos] in _SPACE:
            pos += 1
            continue
        start = pos
        while pos < n and line[pos] != "=" and line[pos] not in _SPACE:
            pos += 1
        if pos == start:  # a pair without a key: skip to the next space
            while pos < n and line[pos] not in _SPACE:
                pos += 1
            continue
        key = line[start:pos]
        if pos >= n or line[pos] != "=":
            pairs.setdefault(key, "true")
            continue
        pos += 1
        if pos < n and line[pos] == '"':
            value, pos = _quoted(line, pos + 1)
        else:
            start = pos
            while pos < n and line[pos] not in _SPACE:
                pos += 1
            value = line[start:pos]
        pairs.setdefault(key, value)
    return pairs


def _quoted(line: str, pos: int) -> tuple[str, int]:
    """The value of a quoted string starting after its opening quote, and the position after it."""
    out: list[str] = []
    n = len(line)
    while pos < n:
        c = line[pos]
        if c == "\\" and pos + 1 < n and line[pos + 1] in '"\\':
            out.append(line[pos + 1])
            pos += 2
        elif c == '"':
            return "".join(out), pos + 1
        else:
            out.append(c)
            pos += 1
    return "".join(out), pos
