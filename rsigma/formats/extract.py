"""Event extraction (`--jq`, `--jsonpath`): a decoded JSON document in, the events it holds out.

A CloudTrail or Azure batch line holds its events in an array (`--jq '.records[]'`,
`--jsonpath '$.Records[*]'`); each event is evaluated on its own, and their results make that line's
one outcome (see `rsigma.payloads`). The expression travels as text, because `PayloadOptions` is
pickled to the matcher processes and a compiled jq program does not pickle; each process compiles it
once, on first use (`extractor`).

The engines are libraries, not hand-written: libjq through the `jq` package, and RFC 9535 JSONPath
through `python-jsonpath` in strict mode (RSigma's `serde_json_path` is RFC 9535 too, so the same
queries, filter functions included, select the same nodes).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

#: A decoded document and its JSON text in; its events, or the dead-letter reason of its line.
Extractor = Callable[[Any, str], list[dict[str, Any]] | str]
#: What an expression finds in a document (given both ways: libjq reads text faster than it takes
#: Python values, which it would serialise first; JSONPath walks the values).
_Find = Callable[[Any, str], list[Any]]


@dataclass(frozen=True, slots=True)
class Extraction:
    """Which language and expression pick the events out of each JSON document."""

    language: Literal["jq", "jsonpath"]
    expression: str

    @property
    def flag(self) -> str:
        return f"--{self.language}"


class InvalidExpression(ValueError):
    """An expression the library cannot compile; the message names the flag, the expression and the
    library's reason."""


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    return "an array"


def _jq(expression: str) -> _Find:
    import jq

    try:
        program = jq.compile(expression)
    except ValueError as e:
        raise InvalidExpression(f"invalid --jq filter {expression!r}: {e}") from None
    return lambda _, text: program.input_text(text).all()


def _jsonpath(expression: str) -> _Find:
    from jsonpath import JSONPathEnvironment, JSONPathError

    try:
        query = JSONPathEnvironment(strict=True).compile(expression)
    except JSONPathError as e:
        raise InvalidExpression(f"invalid --jsonpath query {expression!r}: {e}") from None

    def find(document: Any, _: str) -> list[Any]:
        if not isinstance(document, dict | list):
            # A scalar has no members to select, and the library would read a string as a JSON text.
            raise ValueError(f"the line is {_json_type(document)}, not an object or array")
        try:
            return query.findall(document)
        except JSONPathError as e:
            raise ValueError(str(e)) from None

    return find


@functools.cache
def extractor(spec: Extraction) -> Extractor:
    """The compiled extraction, once per process (`InvalidExpression` if it does not compile).

    A line's events are all or nothing: a runtime error, or any output that is not an object (the
    engine matches fields of objects), dead-letters the whole line with the reason, before any of its
    events is evaluated, instead of dropping part of it unseen."""
    find = _jq(spec.expression) if spec.language == "jq" else _jsonpath(spec.expression)
    flag = spec.flag

    def extract(document: Any, text: str) -> list[dict[str, Any]] | str:
        try:
            found = find(document, text)
        except ValueError as e:
            return f"{flag} failed: {e}"
        except RecursionError:
            return f"{flag} failed: the line is nested too deeply"
        for value in found:
            if not isinstance(value, dict):
                return f"{flag} produced {_json_type(value)}, expected objects"
        return found

    return extract
