"""YAML documents built straight from libyaml's event stream.

PyYAML's CSafeLoader parses in C but composes a node tree and then constructs objects from it in
Python, resolving every scalar's type through a chain of calls; on the SigmaHQ set that is about
two thirds of load time. This builder consumes the same C parser's events and builds dicts, lists
and scalars in one pass, using PyYAML's own implicit-type table and safe constructors for the few
scalars that are not strings. Only the safe tags are accepted.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import yaml
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
    return constructor(
        _CONSTRUCTOR, ScalarNode(tag, event.value, event.start_mark, event.end_mark, event.style)
    )


def _check_collection_tag(event: Any, expected: str) -> None:
    if event.tag not in (None, "!", expected):
        raise ConstructorError(None, None, f"unsupported tag {event.tag!r}", event.start_mark)


def iter_documents(text: str) -> Iterator[tuple[int, Any]]:
    """Yield (first line, document) for each document; raises yaml.YAMLError with its position."""
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
