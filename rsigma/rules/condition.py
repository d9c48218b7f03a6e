"""The condition language: `and`, `or`, `not`, parentheses and `1 of` / `all of` selectors.

Precedence, loosest first: or < and < not < `x of` < parentheses (Sigma specification v2.1).
Keywords are lower-case only; `them` and patterns skip identifiers that start with `_` unless the
pattern itself starts with `_` (pySigma's reading of the specification).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from typing import Final

from rsigma.errors import SigmaConditionError
from rsigma.pickling import pickled_by_fields

MAX_CONDITION_CHARS: Final = 65536
MAX_NESTING_DEPTH: Final = 64


@pickled_by_fields
@dataclass(frozen=True, slots=True)
class CondRef:
    name: str


@pickled_by_fields
@dataclass(frozen=True, slots=True)
class CondSelector:
    """`N of pattern`: quantifier is "any", "all" or a count of at least 1."""

    quantifier: str | int
    pattern: str  # "them" or a name pattern with `*` wildcards


@pickled_by_fields
@dataclass(frozen=True, slots=True)
class CondNot:
    item: CondNode


@pickled_by_fields
@dataclass(frozen=True, slots=True)
class CondAnd:
    items: tuple[CondNode, ...]


@pickled_by_fields
@dataclass(frozen=True, slots=True)
class CondOr:
    items: tuple[CondNode, ...]


CondNode = CondRef | CondSelector | CondNot | CondAnd | CondOr

_TOKEN = re.compile(r"\s*(?:(\()|(\))|([^\s()]+))")
_IDENT = re.compile(r"[\w.\-]+")
_PATTERN = re.compile(r"[\w.\-*]+")
_KEYWORDS = frozenset({"and", "or", "not", "of", "them"})


def parse_condition(text: str) -> CondNode:
    """Parse a condition string; raise SigmaConditionError naming the position of the problem."""
    if not isinstance(text, str) or not text.strip():
        raise SigmaConditionError("condition must be a non-empty string")
    if len(text) > MAX_CONDITION_CHARS:
        raise SigmaConditionError(f"condition is longer than {MAX_CONDITION_CHARS} characters")
    return _parsed(text)


@lru_cache(maxsize=4096)
def _parsed(text: str) -> CondNode:
    """Conditions repeat across rules (`selection`, `selection and not filter`): each is parsed once,
    and rules share the tree, which is immutable."""
    return _Parser(text).parse()


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens: list[tuple[str, int]] = []
        pos = 0
        while pos < len(text):
            m = _TOKEN.match(text, pos)
            if m is None or m.end() == pos:
                break
            tok = m.group(1) or m.group(2) or m.group(3)
            if tok:
                self.tokens.append((tok, m.start(m.lastindex or 0)))
            pos = m.end()
        self.i = 0
        self.depth = 0

    def error(self, what: str) -> SigmaConditionError:
        if self.i < len(self.tokens):
            tok, pos = self.tokens[self.i]
            found = f"found {tok!r} at position {pos + 1}"
        else:
            found = "found the end of the condition"
        return SigmaConditionError(f"condition {self.text!r}: expected {what}, {found}")

    def peek(self) -> str | None:
        return self.tokens[self.i][0] if self.i < len(self.tokens) else None

    def take(self) -> str:
        tok = self.tokens[self.i][0]
        self.i += 1
        return tok

    def parse(self) -> CondNode:
        node = self.parse_or()
        if self.peek() is not None:
            raise self.error("'and', 'or' or the end of the condition")
        return node

    def parse_or(self) -> CondNode:
        items = [self.parse_and()]
        while self.peek() == "or":
            self.take()
            items.append(self.parse_and())
        return items[0] if len(items) == 1 else CondOr(tuple(items))

    def parse_and(self) -> CondNode:
        items = [self.parse_not()]
        while self.peek() == "and":
            self.take()
            items.append(self.parse_not())
        return items[0] if len(items) == 1 else CondAnd(tuple(items))

    def parse_not(self) -> CondNode:
        if self.peek() == "not":
            self.take()
            return CondNot(self.parse_not())
        return self.parse_primary()

    def parse_primary(self) -> CondNode:
        tok = self.peek()
        if tok is None:
            raise self.error("an identifier, a selector or '('")
        if tok == "(":
            self.take()
            self.depth += 1
            if self.depth > MAX_NESTING_DEPTH:
                raise self.error(f"at most {MAX_NESTING_DEPTH} nested parentheses")
            node = self.parse_or()
            if self.peek() != ")":
                raise self.error("')'")
            self.take()
            self.depth -= 1
            return node
        nxt = self.tokens[self.i + 1][0] if self.i + 1 < len(self.tokens) else None
        if nxt == "of" and (tok in ("any", "all") or tok.isdigit()):
            self.take()
            self.take()
            target = self.peek()
            if (
                target is None
                or target in ("(", ")")
                or (target != "them" and not _PATTERN.fullmatch(target))
            ):
                raise self.error("'them' or an identifier pattern after 'of'")
            self.take()
            quantifier: str | int = tok if not tok.isdigit() else int(tok)
            if quantifier == 0:
                raise SigmaConditionError(f"condition {self.text!r}: '0 of' is not a valid selector")
            return CondSelector("any" if quantifier == 1 else quantifier, target)
        if tok in _KEYWORDS or tok == ")" or not _IDENT.fullmatch(tok):
            raise self.error("an identifier, a selector or '('")
        self.take()
        return CondRef(tok)


def selector_names(selector: CondSelector, names: Iterable[str]) -> list[str]:
    """The identifiers a selector covers, in definition order."""
    pattern = selector.pattern
    if pattern == "them":
        return [n for n in names if not n.startswith("_")]
    rx = _selector_regex(pattern)
    keep_underscore = pattern.startswith("_")
    return [n for n in names if rx.fullmatch(n) and (keep_underscore or not n.startswith("_"))]


@lru_cache(maxsize=4096)
def _selector_regex(pattern: str) -> re.Pattern[str]:
    return re.compile("".join(".*" if c == "*" else re.escape(c) for c in pattern))


def check_references(node: CondNode, names: list[str], text: str) -> None:
    """Every identifier must exist and every selector must cover at least one identifier."""
    match node:
        case CondRef(name):
            if name not in names:
                raise SigmaConditionError(
                    f"condition {text!r} refers to {name!r}, which the detection does not define"
                    f" (defined: {', '.join(names) or 'none'})"
                )
        case CondSelector(_, pattern):
            if not selector_names(node, names):
                raise SigmaConditionError(f"condition {text!r}: {pattern!r} matches no search identifier")
        case CondNot(item):
            check_references(item, names, text)
        case CondAnd(items) | CondOr(items):
            for item in items:
                check_references(item, names, text)
