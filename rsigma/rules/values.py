"""Typed rule values: Sigma strings with wildcards and placeholders, regexes, networks, field references.

Values are parsed once at load time. Everything the matcher needs at evaluation time (lower-cased
literals, compiled regexes, parsed networks) hangs off these objects, so no event ever pays for it.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from rsigma.pickling import pickled_by_fields


class Wildcard:
    """One of Sigma's two wildcard characters inside a string value."""

    __slots__ = ("char",)

    def __init__(self, char: str) -> None:
        self.char = char

    def __repr__(self) -> str:
        return f"Wildcard({self.char!r})"

    def __reduce__(self) -> str:
        # Matchers test `part is STAR`: an unpickled wildcard (rule cache) must be the module's own.
        return "STAR" if self is STAR else "QMARK"


STAR: Final = Wildcard("*")
QMARK: Final = Wildcard("?")


@pickled_by_fields
@dataclass(frozen=True, slots=True)
class Placeholder:
    """`%name%` inside a value with the `expand` modifier, resolved by a processing pipeline."""

    name: str


Part = str | Wildcard | Placeholder

_PLACEHOLDER = re.compile(r"%(\w+)%")
_SPECIAL = re.compile(r"[*?]|\\[*?\\]")


@pickled_by_fields
@dataclass(frozen=True, slots=True)
class SigmaString:
    """A string value as a sequence of literal text, wildcards and placeholders.

    `binary` marks literals whose characters stand for bytes (code points 0-255), which is what the
    UTF-16 modifiers produce and what `base64` then encodes.
    """

    parts: tuple[Part, ...]
    binary: bool = False

    @classmethod
    def from_text(cls, text: str) -> SigmaString:
        """Parse Sigma's escaping: only `*`, `?` and `\\` can be escaped; any other backslash is literal."""
        if not _SPECIAL.search(text):
            return cls((text,) if text else ())
        parts: list[Part] = []
        buf: list[str] = []
        i, n = 0, len(text)
        while i < n:
            c = text[i]
            if c == "\\" and i + 1 < n and text[i + 1] in "*?\\":
                buf.append(text[i + 1])
                i += 2
                continue
            if c in "*?":
                if buf:
                    parts.append("".join(buf))
                    buf = []
                parts.append(STAR if c == "*" else QMARK)
            else:
                buf.append(c)
            i += 1
        if buf:
            parts.append("".join(buf))
        return cls(tuple(parts))

    @classmethod
    def literal(cls, text: str) -> SigmaString:
        return cls((text,) if text else ())

    def simple_shape(self) -> tuple[str, str] | None:
        """("exact" | "prefix" | "suffix" | "contains", its literal) for the shapes nearly every value
        has (`a`, `a*`, `*a`, `*a*`), else None: read by compiling and indexing, once per value each."""
        parts = self.parts
        n = len(parts)
        if n == 1:
            text = parts[0]
            return ("exact", text) if type(text) is str else None
        if n == 3:
            text = parts[1]
            return ("contains", text) if parts[0] is STAR and parts[2] is STAR and type(text) is str else None
        if n == 2:
            first, last = parts
            if first is STAR and type(last) is str:
                return "suffix", last
            if last is STAR and type(first) is str:
                return "prefix", first
        return None

    @property
    def has_wildcards(self) -> bool:
        return any(isinstance(p, Wildcard) for p in self.parts)

    @property
    def has_placeholders(self) -> bool:
        return any(isinstance(p, Placeholder) for p in self.parts)

    @property
    def is_plain(self) -> bool:
        return all(isinstance(p, str) for p in self.parts)

    def plain(self) -> str:
        """The text of a value without wildcards or placeholders."""
        return "".join(p for p in self.parts if isinstance(p, str))

    def to_bytes(self) -> bytes:
        text = self.plain()
        return text.encode("latin-1") if self.binary else text.encode("utf-8")

    def starts_with_star(self) -> bool:
        return bool(self.parts) and self.parts[0] is STAR

    def ends_with_star(self) -> bool:
        return bool(self.parts) and self.parts[-1] is STAR

    def with_leading_star(self) -> SigmaString:
        return self if self.starts_with_star() else SigmaString((STAR, *self.parts), self.binary)

    def with_trailing_star(self) -> SigmaString:
        return self if self.ends_with_star() else SigmaString((*self.parts, STAR), self.binary)

    def with_stars(self) -> SigmaString:
        """`*value*` (the `contains` modifier), built once rather than a star at a time."""
        parts = self.parts
        if not parts or parts[0] is not STAR:
            parts = (STAR, *parts)
        if parts[-1] is not STAR:
            parts = (*parts, STAR)
        return self if parts is self.parts else SigmaString(parts, self.binary)

    def map_literals(self, fn: Callable[[str], str]) -> SigmaString:
        return SigmaString(tuple(fn(p) if isinstance(p, str) else p for p in self.parts), self.binary)

    def with_placeholders(self) -> SigmaString:
        """Split `%name%` out of the literal parts (the `expand` modifier)."""
        parts: list[Part] = []
        for p in self.parts:
            if not isinstance(p, str):
                parts.append(p)
                continue
            pos = 0
            for m in _PLACEHOLDER.finditer(p):
                if m.start() > pos:
                    parts.append(p[pos : m.start()])
                parts.append(Placeholder(m.group(1)))
                pos = m.end()
            if pos < len(p):
                parts.append(p[pos:])
        return SigmaString(tuple(parts), self.binary)

    def __str__(self) -> str:
        out = []
        for p in self.parts:
            if isinstance(p, Wildcard):
                out.append(p.char)
            elif isinstance(p, Placeholder):
                out.append(f"%{p.name}%")
            else:
                out.append(p.replace("\\", "\\\\").replace("*", "\\*").replace("?", "\\?"))
        return "".join(out)


@pickled_by_fields
@dataclass(frozen=True, slots=True)
class SigmaRegex:
    """A `re` value: the raw pattern and the flags given by the `i`, `m` and `s` modifiers."""

    pattern: str
    flags: frozenset[str] = frozenset()


@pickled_by_fields
@dataclass(frozen=True, slots=True)
class SigmaCIDR:
    network: ipaddress.IPv4Network | ipaddress.IPv6Network


@pickled_by_fields
@dataclass(frozen=True, slots=True)
class SigmaFieldRef:
    """A `fieldref` value: the name of the event field to compare with."""

    field: str


Value = SigmaString | SigmaRegex | SigmaCIDR | SigmaFieldRef | int | float | bool | None
