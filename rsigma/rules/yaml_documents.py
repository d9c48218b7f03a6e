"""YAML documents as PyYAML's safe loader reads them (YAML 1.1 types), read fast.

PyYAML's CSafeLoader parses in C but composes a node tree and then constructs objects from it in
Python, resolving every scalar's type through a chain of calls; on the SigmaHQ set that is about
two thirds of load time. The builder here consumes the same C parser's events and builds dicts,
lists and scalars in one pass, using PyYAML's own implicit-type table and safe constructors for the
few scalars that are not strings. Only the safe tags are accepted.

Most rule files go faster still: yaml-rs (Rust) reads SigmaHQ's `rules/` in a fifth of the
builder's time, but it types plain scalars by its own mix of YAML 1.1 and 1.2 (`yes` and `1:30`
stay strings, `010` is 10, `0o7` a number). So a file takes that shortcut only when its result
provably equals the builder's (`_shortcut`); any doubt, and any error, sends it to the builder,
which also words the error.
"""

from __future__ import annotations

import datetime
import os
from collections.abc import Iterator
from functools import lru_cache
from typing import Any

import re2
import yaml

# yaml-rs allocates through its own mimalloc, which commits 5 MB up front and keeps the pages it
# frees (17 MB more after SigmaHQ's rules/, in every process that loads rules) unless told otherwise;
# neither setting costs it measurable speed. mimalloc reads them when the library loads.
os.environ.setdefault("MIMALLOC_ARENA_EAGER_COMMIT", "0")
os.environ.setdefault("MIMALLOC_PURGE_DELAY", "0")
import yaml_rs  # noqa: E402
from yaml.constructor import ConstructorError
from yaml.events import (
    AliasEvent,
    DocumentEndEvent,
    DocumentStartEvent,
    MappingEndEvent,
    MappingStartEvent,
    ScalarEvent,
    SequenceEndEvent,
    SequenceStartEvent,
    StreamEndEvent,
)
from yaml.nodes import ScalarNode

_Parser: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_RESOLVERS = yaml.SafeLoader.yaml_implicit_resolvers
_TYPED_FIRST_CHARS = frozenset(_RESOLVERS)
_CONSTRUCTOR = yaml.SafeLoader("")
_STR = "tag:yaml.org,2002:str"
_MAP = "tag:yaml.org,2002:map"
_SEQ = "tag:yaml.org,2002:seq"
_MERGE = "tag:yaml.org,2002:merge"


def _plain_tag(value: str) -> str:
    for tag, regexp in _RESOLVERS.get(value[:1], ()):
        if regexp.match(value):
            return tag
    return _STR


def _scalar(event: ScalarEvent) -> Any:
    tag = event.tag
    if tag is None or tag == "!":
        if not event.implicit[0]:
            return event.value  # quoted: always a string
        tag = _plain_tag(event.value)
    if tag == _STR:
        return event.value
    if tag == _MERGE:
        return _MERGE_KEY
    constructor = _CONSTRUCTOR.yaml_constructors.get(tag)
    if constructor is None or tag in (_MAP, _SEQ):
        raise ConstructorError(None, None, f"unsupported tag {tag!r}", event.start_mark)
    try:
        return constructor(
            _CONSTRUCTOR, ScalarNode(tag, event.value, event.start_mark, event.end_mark, event.style)
        )
    except ValueError as e:  # a date such as 2023-13-01 has the timestamp's shape but no day
        raise ConstructorError(
            None, None, f"{event.value!r} is not a valid {tag.rsplit(':', 1)[-1]}: {e}", event.start_mark
        ) from None


def _check_collection_tag(event: Any, expected: str) -> None:
    if event.tag not in (None, "!", expected):
        raise ConstructorError(None, None, f"unsupported tag {event.tag!r}", event.start_mark)


def iter_documents(text: str) -> Iterator[tuple[int, Any]]:
    """Yield (first line, document) for each document; raises yaml.YAMLError with its position."""
    shortcut = _shortcut(text)
    if shortcut is not None:
        yield from shortcut
        return
    parser = _Parser(text)
    try:
        yield from _build(parser)
    finally:
        parser.dispose()


def _build(parser: Any) -> Iterator[tuple[int, Any]]:
    anchors: dict[str, Any] = {}
    # Each frame: [container, pending mapping key or _NO_KEY, start line]
    stack: list[list[Any]] = []
    root: Any = None
    line = 0
    get_event = parser.get_event
    while True:
        event = get_event()
        cls = type(event)
        if cls is ScalarEvent:
            # Most scalars are strings: quoted, or plain with a first character no type can start with.
            value = event.value
            if event.tag is not None or (event.implicit[0] and value[:1] in _TYPED_FIRST_CHARS):
                value = _scalar(event)
            if event.anchor:
                anchors[event.anchor] = value
        elif cls is MappingStartEvent or cls is SequenceStartEvent:
            is_map = cls is MappingStartEvent
            _check_collection_tag(event, _MAP if is_map else _SEQ)
            value = {} if is_map else []
            if event.anchor:
                anchors[event.anchor] = value
            if not stack:
                line = event.start_mark.line + 1
            stack.append([value, _NO_KEY])
            continue
        elif cls is MappingEndEvent or cls is SequenceEndEvent:
            value = stack.pop()[0]
        elif cls is AliasEvent:
            try:
                value = anchors[event.anchor]
            except KeyError:
                raise ConstructorError(
                    None, None, f"unknown alias {event.anchor!r}", event.start_mark
                ) from None
        elif cls is DocumentStartEvent:
            anchors = {}
            root = None
            line = event.start_mark.line + 1
            continue
        elif cls is DocumentEndEvent:
            yield line, root
            continue
        elif cls is StreamEndEvent:
            return
        else:
            continue  # StreamStartEvent
        if not stack:
            root = value
            if cls is ScalarEvent:
                line = event.start_mark.line + 1
            continue
        frame = stack[-1]
        container = frame[0]
        if type(container) is list:
            container.append(value)
        elif frame[1] is _NO_KEY:
            frame[1] = value
        else:
            key = frame[1]
            frame[1] = _NO_KEY
            if key is _MERGE_KEY:
                _merge(container, value, event.start_mark)
            else:
                try:
                    container[key] = value
                except TypeError:
                    raise ConstructorError(
                        None, None, f"unhashable mapping key {key!r}", event.start_mark
                    ) from None


class _NoKey:
    __slots__ = ()


_NO_KEY = _NoKey()


class _MergeKey:
    """A plain `<<` key (YAML's merge key); a quoted one is the string "<<"."""

    __slots__ = ()


_MERGE_KEY = _MergeKey()


def _merge(target: dict[Any, Any], source: Any, mark: Any) -> None:
    """`<<: *a` or `<<: [*a, *b]`: keys not given in the mapping come from its sources."""
    for part in source if isinstance(source, list) else [source]:
        if not isinstance(part, dict):
            raise ConstructorError(
                None, None, f"a merge key takes a mapping or a list of mappings, not {part!r}", mark
            )
        for k, v in part.items():
            target.setdefault(k, v)


# What yaml-rs is not trusted with, found in the text: document markers and directives (several
# documents, and their lines); tags (it ignores unknown ones); anchors and aliases (merge keys, and
# its alias limits); tabs, and characters YAML 1.1 reads otherwise than 1.2 (NEL, U+2028, U+2029 are
# line breaks in 1.1) or rejects (other controls, a BOM). RE2 scans a rule file in microseconds
# where `re` took a third of the time yaml-rs saves.
_NOT_FOR_SHORTCUT = re2.compile(
    r"(?m)^(?:---|\.\.\.|%)|(?:^|[\s\[{,])[!&*]"
    r"|[\t\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\x{2028}\x{2029}\x{feff}\x{fffe}\x{ffff}]"
)
# A plain number token yaml-rs and YAML 1.1 may read apart: leading zeros (010 is 10 against 8),
# 0o, 0b, 0X, underscores. Looked for only when the document holds an int.
_ODD_NUMBER = re2.compile(
    r"(?m)(?:^|[\s\[{,])[-+]?(?:0[0-9_oObBX]|[0-9][0-9_]*_)[0-9A-Za-z_]*(?:[\s,:\]}]|$)"
)
_NO_DUPLICATES = yaml_rs.DuplicateKeyPolicy.Error
_CONTENT_LINE = re2.compile(r"(?m)^ *[^ #\n]")


class _Doubt(Exception):
    """The shortcut's result might differ from the builder's."""


def _shortcut(text: str) -> list[tuple[int, Any]] | None:
    """The file's documents read by yaml-rs, or None where they might differ from `_build`'s."""
    if _NOT_FOR_SHORTCUT.search(text):
        return None
    try:
        document = yaml_rs.loads(text, duplicate_key_policy=_NO_DUPLICATES)
    except (ValueError, RecursionError):  # YAMLDecodeError is a ValueError
        return None  # the builder says what is wrong, in PyYAML's words, or reads it after all
    if document is None:
        return []
    if type(document) is not dict:
        return None
    try:
        holds_int = _check(document)
    except (_Doubt, RecursionError):  # the builder nests without recursion
        return None
    if holds_int and _ODD_NUMBER.search(text):
        return None
    return [(_first_line(text), document)]


def _check(container: dict[Any, Any] | list[Any]) -> bool:
    """Raise `_Doubt` where YAML 1.1 could have read a node otherwise; True if an int is held.

    One call per container, with its strings settled inline: the walk sees every node of every rule
    file, and a call per node cost as much as yaml-rs's whole parse."""
    held = False
    if type(container) is dict:
        for key in container:
            if type(key) is not str or key[:1] in _TYPED_FIRST_CHARS:
                held = _check_scalar(key) or held
        values: Any = container.values()
    else:
        values = container
    for value in values:
        kind = type(value)
        if kind is str:
            if value[:1] in _TYPED_FIRST_CHARS and _doubtful(value):
                raise _Doubt(value)
        elif kind is dict or kind is list:
            held = _check(value) or held
        else:
            held = _check_scalar(value) or held
    return held


def _check_scalar(value: Any) -> bool:
    kind = type(value)
    if kind is str:
        if _doubtful(value):
            raise _Doubt(value)
        return False
    if kind is int:
        return True
    if kind is bool or value is None or kind is datetime.date:
        return False
    raise _Doubt(value)  # floats (1e3 is a string in 1.1), datetimes (time zones), other keys


@lru_cache(maxsize=4096)
def _doubtful(value: str) -> bool:
    """A string YAML 1.1 would type otherwise if it was plain (`yes`, `1:30`, `2023-13-01`: a bool,
    an int, an error) and that yaml-rs may have read plain. Cached: keys and values recur."""
    return _plain_tag(value) != _STR and not _was_quoted(value)


def _was_quoted(value: str) -> bool:
    """Whether yaml-rs types plain `value` as something else than a string, or cannot read it plain,
    so that the string it returned was quoted ('10', 'true', '', '*'), a string in YAML 1.1 too."""
    if not value:
        return True
    if any(c.isspace() for c in value):
        return False  # perhaps a plain scalar folded over lines
    try:
        return type(yaml_rs.loads("k: " + value)["k"]) is not str
    except ValueError:
        return True  # not a plain scalar at all (`*`, `'`)


def _first_line(text: str) -> int:
    """The line of a lone document's first node, as the builder gives it: its first line that is
    neither blank nor a comment (tabs never reach here)."""
    found = _CONTENT_LINE.search(text)
    return 1 if found is None else text.count("\n", 0, found.start()) + 1
