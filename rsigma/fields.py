"""Event field primitives shared by the engine, correlation and routing: lookup and text form.

Field names are case-sensitive. A flat key (`"a.b"`) wins over nesting; otherwise a dotted name walks
nested objects, following every element of the arrays it meets.
"""

from __future__ import annotations

from typing import Any, Final

MAX_DEPTH: Final = 64


class _Missing:
    __slots__ = ()

    def __repr__(self) -> str:
        return "MISSING"


MISSING: Final = _Missing()


def text_of(value: Any) -> str | None:
    """The string a scalar is compared as: numbers in decimal, booleans as true/false, null as nothing."""
    if isinstance(value, str):
        return value
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() and abs(value) < 1e16 else repr(value)
    return None


def _walk(obj: Any, segments: list[str], out: list[Any], depth: int) -> None:
    if depth > MAX_DEPTH:
        return
    if isinstance(obj, list):
        for item in obj:
            _walk(item, segments, out, depth + 1)
        return
    if not isinstance(obj, dict):
        return
    # The longest dotted prefix that is a key of this object wins (flat keys beat nesting).
    for k in range(len(segments), 0, -1):
        key = ".".join(segments[:k]) if k > 1 else segments[0]
        if key in obj:
            if k == len(segments):
                out.append(obj[key])
            else:
                _walk(obj[key], segments[k:], out, depth + 1)
            return


def resolve(data: dict[str, Any], field: str) -> Any:
    """The value of `field` in `data`, MISSING when absent; several nested hits come back as a list."""
    value = data.get(field, MISSING)
    if value is not MISSING or "." not in field:
        return value
    found: list[Any] = []
    _walk(data, field.split("."), found, 0)
    if not found:
        return MISSING
    return found[0] if len(found) == 1 else found
