"""Compile one detection item into a predicate over an EventView.

Everything that can be decided per rule is decided here, once: values are lower-cased, wildcard
strings are split into prefix / suffix / substring / glob tests, regexes and networks are compiled.
The predicate an event runs is a closure with no parsing and no per-event allocation beyond the
view's shared caches.
"""

from __future__ import annotations

import ipaddress
import operator
from bisect import bisect_right
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import ahocorasick

from rsigma.engine.event import KEYWORD_SEPARATOR, EventView
from rsigma.engine.folding import fold
from rsigma.engine.numbers import number_of
from rsigma.engine.regex import compile_fullmatch, compile_search, required_literal
from rsigma.errors import SigmaValueError
from rsigma.fields import MISSING
from rsigma.rules.model import DetectionItem
from rsigma.rules.values import QMARK, STAR, SigmaCIDR, SigmaFieldRef, SigmaRegex, SigmaString
from rsigma.timeparse import parse_datetime, time_part

Predicate = Callable[[EventView], bool]
TextTest = Callable[[str], bool]

#: Substring lists at least this long are matched with one Aho-Corasick pass instead of a loop.
AHO_CORASICK_MIN_NEEDLES = 8

_COMPARE = {"gt": operator.gt, "gte": operator.ge, "lt": operator.lt, "lte": operator.le}


@dataclass(slots=True)
class StringTests:
    """String values of one item, sorted by the cheapest test that decides them."""

    exact: set[str] = field(default_factory=set)
    prefixes: list[str] = field(default_factory=list)
    suffixes: list[str] = field(default_factory=list)
    substrings: list[str] = field(default_factory=list)
    others: list[TextTest] = field(default_factory=list)
    any_text: bool = False

    def add(self, value: SigmaString, cased: bool) -> None:
        shape = value.simple_shape()
        if shape is not None:
            kind, text = shape
            text = text if cased else fold(text)
            if kind == "exact":
                self.exact.add(text)
            elif kind == "contains":
                self.substrings.append(text)
            elif kind == "suffix":
                self.suffixes.append(text)
            else:
                self.prefixes.append(text)
            return
        if value.has_placeholders:
            return  # no pipeline gave the placeholder values: an empty list (Engine.warnings says so)
        parts = [p if cased or not isinstance(p, str) else fold(p) for p in value.parts]
        literal = [p for p in parts if isinstance(p, str)]
        stars = [i for i, p in enumerate(parts) if p is STAR]
        if QMARK in parts:
            self.others.append(_glob_regex(parts))
        elif not stars:
            self.exact.add("".join(literal))
        elif len(parts) == 1:
            self.any_text = True
        elif len(parts) == 2 and stars == [1]:
            self.prefixes.append(parts[0])
        elif len(parts) == 2 and stars == [0]:
            self.suffixes.append(parts[1])
        elif len(parts) == 3 and stars == [0, 2]:
            self.substrings.append(parts[1])
        else:
            self.others.append(_glob(parts))

    def only_substrings(self, separator: str) -> bool:
        return (
            bool(self.substrings)
            and not (self.exact or self.prefixes or self.suffixes or self.others or self.any_text)
            and not any(separator in s for s in self.substrings)
        )

    def text_test(self) -> TextTest:
        """One function answering 'does this text match any of the values?'."""
        if self.any_text:
            return lambda t: True
        exact = frozenset(self.exact)
        prefixes = tuple(self.prefixes)
        suffixes = tuple(self.suffixes)
        subs = tuple(dict.fromkeys(self.substrings))
        others = tuple(self.others)
        if len(subs) >= AHO_CORASICK_MIN_NEEDLES:
            automaton = ahocorasick.Automaton()
            for s in subs:
                automaton.add_word(s, s)
            automaton.make_automaton()

            def has_sub(t: str) -> bool:
                for _ in automaton.iter(t):
                    return True
                return False

            subs = ()
        else:
            has_sub = None
        tests: list[TextTest] = []
        if exact:
            tests.append(exact.__contains__)
        if prefixes:
            tests.append(lambda t: t.startswith(prefixes))
        if suffixes:
            tests.append(lambda t: t.endswith(suffixes))
        if len(subs) == 1:
            needle = subs[0]
            tests.append(lambda t: needle in t)
        elif subs:
            tests.append(lambda t: any(n in t for n in subs))
        if has_sub is not None:
            tests.append(has_sub)
        tests.extend(others)
        if len(tests) == 1:
            return tests[0]
        return lambda t: any(test(t) for test in tests)


def _glob(parts: list[Any]) -> TextTest:
    """Match `*`-only wildcards with greedy leftmost search: linear, no regex backtracking."""
    segments: list[str] = []
    buf = ""
    for p in parts:
        if p is STAR:
            segments.append(buf)
            buf = ""
        else:
            buf += p
    segments.append(buf)
    head, *middle, tail = segments
    fixed = len(head) + len(tail)

    def test(t: str) -> bool:
        if len(t) < fixed or not t.startswith(head) or not t.endswith(tail):
            return False
        pos, end = len(head), len(t) - len(tail)
        for seg in middle:
            if seg:
                pos = t.find(seg, pos, end)
                if pos < 0:
                    return False
                pos += len(seg)
        return True

    return test


def _glob_regex(parts: list[Any]) -> TextTest:
    import re

    rx = "".join(".*" if p is STAR else "." if p is QMARK else re.escape(p) for p in parts)
    search = compile_fullmatch(rx)
    return search


def _scalars(value: Any) -> Sequence[Any]:
    if value is MISSING or value is None:
        return ()
    if isinstance(value, list):
        out: list[Any] = []
        stack = [value]
        while stack:
            for v in stack.pop():
                if isinstance(v, list):
                    stack.append(v)
                else:
                    out.append(v)
        return out
    return (value,)


@lru_cache(maxsize=65536)
def _ip(text: str) -> tuple[int, int] | None:
    """(IP version, address as an integer), or None if the text is not an address."""
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        return None
    return ip.version, int(ip)


def compile_item(item: DetectionItem) -> Predicate:
    """The predicate for one item: values OR'ed (AND'ed with `all`), negated with `neq`."""
    tests = _value_tests(item)
    if len(tests) == 1:
        pred = tests[0]
    elif item.match_all:
        pred = all_of(tests)
    else:
        pred = any_of(tests)
    if not item.negated:
        return pred
    name = item.field
    assert name is not None

    def negated(view: EventView) -> bool:
        return view.get(name) is not MISSING and not pred(view)

    return negated


def all_of(preds: Sequence[Predicate]) -> Predicate:
    """AND of predicates, unrolled for the usual two or three (a closure call less per event)."""
    if len(preds) == 1:
        return preds[0]
    if len(preds) == 2:
        a, b = preds
        return lambda view: a(view) and b(view)
    if len(preds) == 3:
        a, b, c = preds
        return lambda view: a(view) and b(view) and c(view)
    ps = tuple(preds)
    return lambda view: all(p(view) for p in ps)


def any_of(preds: Sequence[Predicate]) -> Predicate:
    if len(preds) == 1:
        return preds[0]
    if len(preds) == 2:
        a, b = preds
        return lambda view: a(view) or b(view)
    ps = tuple(preds)
    return lambda view: any(p(view) for p in ps)


def _value_tests(item: DetectionItem) -> list[Predicate]:
    """Predicates for the item's values; string values are fused into one test unless `all` needs each."""
    name = item.field
    op = item.op
    if op == "exists":
        want = bool(item.values[0])
        return [lambda view: (view.get(name) is not MISSING) is want]
    if op == "fieldref":
        return [_fieldref(name, v, item.cased) for v in item.values if isinstance(v, SigmaFieldRef)]
    if op == "cidr":
        return [_cidr(name, [v.network for v in item.values if isinstance(v, SigmaCIDR)])]
    if op == "re":
        return [_regex(name, v, item.cased) for v in item.values if isinstance(v, SigmaRegex)]
    if item.time_part is not None:
        return [_time(name, item.time_part, op, v) for v in item.values]
    if op in _COMPARE:
        return [_compare(name, op, v) for v in item.values]
    return _eq_tests(item)


def _texts_source(name: str | None, cased: bool) -> Callable[[EventView], tuple[str, ...]]:
    if name is None:
        return EventView.raw_leaves if cased else EventView.leaves
    if cased:
        return lambda view: view.texts(name)
    return lambda view: view.lower(name)


def _string_predicate(name: str | None, tests: StringTests, cased: bool) -> Predicate:
    if name is None and not cased and tests.only_substrings(KEYWORD_SEPARATOR):
        # Plain keywords: one substring search over all of the event's values joined.
        joined_test = tests.text_test()
        return lambda view: joined_test(view.keyword_text())
    test = tests.text_test()
    source = _texts_source(name, cased)
    if name is not None and not cased:

        def field_pred(view: EventView) -> bool:
            texts = view.lowered.get(name)
            if texts is None:
                texts = view.lower(name)
            for t in texts:
                if test(t):
                    return True
            return False

        return field_pred

    def pred(view: EventView) -> bool:
        for t in source(view):
            if test(t):
                return True
        return False

    return pred


def _eq_tests(item: DetectionItem) -> list[Predicate]:
    name = item.field
    preds: list[Predicate] = []
    strings = StringTests()
    for v in item.values:
        if isinstance(v, SigmaString):
            if item.match_all:
                one = StringTests()
                one.add(v, item.cased)
                preds.append(_string_predicate(name, one, item.cased))
            else:
                strings.add(v, item.cased)
        elif name is None:  # build_item turns every keyword into a string; anything else is a bug
            raise TypeError(f"keyword value {v!r} is not a Sigma string")
        elif v is None:
            preds.append(_null(name))
        elif isinstance(v, bool):
            preds.append(_bool(name, v))
        elif isinstance(v, int | float):
            preds.append(_numeric_eq(name, float(v)))
        else:
            raise SigmaValueError(f"{name!r}: unsupported value {v!r}")
    if (
        strings.exact
        or strings.prefixes
        or strings.suffixes
        or strings.substrings
        or strings.others
        or (strings.any_text)
    ):
        preds.insert(0, _string_predicate(name, strings, item.cased))
    if not preds:  # `F: []` is an empty OR: it never matches
        return [lambda view: False]
    return preds


def _null(name: str) -> Predicate:
    return lambda view: (v := view.get(name)) is MISSING or v is None


def _bool(name: str, want: bool) -> Predicate:
    want_text = "true" if want else "false"

    def pred(view: EventView) -> bool:
        for v in _scalars(view.get(name)):
            if v is want or (isinstance(v, str) and v.lower() == want_text):
                return True
        return False

    return pred


def _numeric_eq(name: str, want: float) -> Predicate:
    def pred(view: EventView) -> bool:
        for v in _scalars(view.get(name)):
            n = number_of(v)
            if n is not None and n == want:
                return True
        return False

    return pred


def _compare(name: str | None, op: str, bound: Any) -> Predicate:
    cmp = _COMPARE[op]
    limit = float(bound)

    def pred(view: EventView) -> bool:
        for v in _scalars(view.get(name)):
            n = number_of(v)
            if n is not None and cmp(n, limit):
                return True
        return False

    return pred


def _time(name: str | None, unit: str, op: str, want: Any) -> Predicate:
    cmp = _COMPARE.get(op, operator.eq)

    def pred(view: EventView) -> bool:
        for v in _scalars(view.get(name)):
            dt = parse_datetime(v)
            if dt is not None and cmp(time_part(dt, unit), want):
                return True
        return False

    return pred


def _cidr(name: str | None, networks: list[Any]) -> Predicate:
    """Networks as merged integer ranges per IP version, found by bisection: SigmaHQ lists up to 160
    networks in one item, and `ip in network` for each took 50 us per event."""
    ranges = {version: _merged_ranges([n for n in networks if n.version == version]) for version in (4, 6)}

    def pred(view: EventView) -> bool:
        for t in view.texts(name) if name else ():
            ip = _ip(t)
            if ip is not None:
                starts, ends = ranges[ip[0]]
                k = bisect_right(starts, ip[1]) - 1
                if k >= 0 and ip[1] <= ends[k]:
                    return True
        return False

    return pred


def _merged_ranges(networks: list[Any]) -> tuple[list[int], list[int]]:
    """Sorted, non-overlapping [first, last] address ranges covering the networks."""
    starts: list[int] = []
    ends: list[int] = []
    for first, last in sorted((int(n.network_address), int(n.broadcast_address)) for n in networks):
        if ends and first <= ends[-1] + 1:
            ends[-1] = max(ends[-1], last)
        else:
            starts.append(first)
            ends.append(last)
    return starts, ends


def _regex(name: str | None, value: SigmaRegex, cased: bool) -> Predicate:
    field = name or "keyword"
    search = compile_search(value.pattern, value.flags, context=f"{field}|re: ", field=field)
    source = _texts_source(name, True)
    literal = required_literal(value.pattern, value.flags)
    if literal is None:

        def pred(view: EventView) -> bool:
            for t in source(view):
                if search(t):
                    return True
            return False

        return pred
    needle, ignorecase = literal
    prefilter = _texts_source(name, False) if ignorecase else source

    def prefiltered(view: EventView) -> bool:
        # The regex runs only on texts that contain its required literal.
        for lowered, t in zip(prefilter(view), source(view), strict=True):
            if needle in lowered and search(t):
                return True
        return False

    return prefiltered


def _fieldref(name: str | None, ref: SigmaFieldRef, cased: bool) -> Predicate:
    other = ref.field
    source_a = _texts_source(name, cased)
    source_b = _texts_source(other, cased)

    def pred(view: EventView) -> bool:
        theirs = source_b(view)
        if not theirs:
            return False
        return any(t in theirs for t in source_a(view))

    return pred
