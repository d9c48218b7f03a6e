"""Regexes from rules run on RE2 (linear time), so no rule can stall the engine on a hostile event.

Patterns that need features RE2 lacks (backreferences, lookaround) fall back to the backtracking
`regex` module, and the rule is named in a warning. All the fallback searches for one event share a
budget of `BACKTRACKING_BUDGET_S` of CPU time (the clock `regex` times out by), so a list of 200
values is one event, not 200 chances to backtrack:
the search that runs past it raises `BacktrackingBudgetExceeded`, which the caller turns into a
dead letter, since no answer (match or not) would be right; `backtracking_timeouts()` counts it (the
daemon exports it as `rsigma_regex_timeouts_total`). `Engine.evaluate` starts each event's budget.
"""

from __future__ import annotations

import logging
import re
import re._constants as _c
import re._parser as _parser
import time
from collections.abc import Callable
from typing import Any, Final

import re2
import regex

from rsigma.engine.folding import fold
from rsigma.errors import SigmaValueError

log = logging.getLogger(__name__)

#: Whether the pattern occurs in a text.
Search = Callable[[str], bool]

_RE2_OPTIONS = re2.Options()
_RE2_OPTIONS.log_errors = False
_RE2_OPTIONS.max_mem = 64 << 20

#: CPU seconds all the backtracking searches for one event may take together; past it, the event is
#: dead-lettered.
BACKTRACKING_BUDGET_S: Final = 0.5

_timeouts = 0


class BacktrackingBudgetExceeded(Exception):
    """An event's backtracking searches ran past `BACKTRACKING_BUDGET_S`; `rule` is set by the engine."""

    def __init__(self, field: str, pattern: str) -> None:
        super().__init__(field, pattern)
        self.field = field
        self.pattern = pattern
        self.rule: str | None = None

    def __str__(self) -> str:
        return (
            f"backtracking regex budget of {BACKTRACKING_BUDGET_S:g} s per event exceeded: rule "
            f"{self.rule!r}, field {self.field!r}, pattern {self.pattern!r}"
        )


class _Budget:
    __slots__ = ("spent",)

    def __init__(self) -> None:
        self.spent = 0.0


#: Seconds the current event's backtracking searches took so far (reset by `Engine.evaluate`).
BUDGET: Final = _Budget()


def backtracking_timeouts() -> int:
    """Events this process stopped evaluating at `BACKTRACKING_BUDGET_S`."""
    return _timeouts


def compile_search(
    pattern: str, flags: frozenset[str] = frozenset(), *, context: str = "", field: str = "keyword"
) -> Search:
    """A `search(text)` function for the pattern; flags are the Sigma `i`, `m`, `s` sub-modifiers.
    `field` names the event field it searches, for `BacktrackingBudgetExceeded`."""
    prefix = f"(?{''.join(sorted(flags))})" if flags else ""
    try:
        return _occurs(re2.compile(prefix + pattern, _RE2_OPTIONS))
    except re2.error:
        pass
    try:
        compiled = regex.compile(prefix + pattern)
    except (regex.error, RecursionError, OverflowError) as e:
        raise SigmaValueError(f"{context}invalid regular expression {pattern!r}: {e}") from e
    log.warning(
        "%sregex %r needs a backtracking engine (not RE2-compatible); an event whose backtracking "
        "searches take over %g s in all is dead-lettered",
        context,
        pattern,
        BACKTRACKING_BUDGET_S,
    )
    return _bounded(compiled.search, pattern, field)


def _occurs(compiled: Any) -> Search:
    """One call into RE2 per text. The wrapper's `search` also maps byte offsets back to characters
    and builds a match object, which costs 1.5 to 4 times the search itself and which no caller
    needs. This uses the wrapper's compiled RE2 object (`_regexp`), an internal of google-re2:
    tests/engine/test_regex_search.py checks it against the public `search`."""
    match = compiled._regexp.Match
    unanchored = re2._Anchor.UNANCHORED
    no_match = (-1, -1)

    def occurs(text: str) -> bool:
        data = text.encode()
        return match(unanchored, data, 0, len(data))[0] != no_match

    return occurs


def _bounded(search: Callable[..., Any], pattern: str, field: str) -> Search:
    def bounded_search(text: str) -> bool:
        global _timeouts
        budget = BUDGET
        left = BACKTRACKING_BUDGET_S - budget.spent
        started = time.process_time()  # the clock of `regex`'s timeout
        try:
            if left <= 0:
                raise TimeoutError
            return search(text, timeout=left) is not None
        except TimeoutError:
            _timeouts += 1
            raise BacktrackingBudgetExceeded(field, pattern) from None
        finally:
            budget.spent += time.process_time() - started

    return bounded_search


def compile_fullmatch(pattern: str) -> Search:
    """An anchored match for patterns the engine generates itself (wildcards with `?`)."""
    return _occurs(re2.compile(r"(?s)\A(?:" + pattern + r")\z", _RE2_OPTIONS))


def required_literal(pattern: str, flags: frozenset[str] = frozenset()) -> tuple[str, bool] | None:
    """The longest literal every match must contain, and whether it is case-insensitive.

    Used twice: as the regex's witness in the candidate index, and as a substring check that skips
    the regex engine call when the literal is absent (most texts, for most rule regexes).
    """
    prefix = f"(?{''.join(sorted(flags))})" if flags else ""
    try:
        parsed = _parser.parse(prefix + pattern)
    except (re.error, RecursionError, OverflowError):
        return None
    ignorecase = bool(parsed.state.flags & re.IGNORECASE)
    runs: list[str] = []
    _literal_runs(parsed, runs)
    best = max(runs, key=len, default="")
    if not best:
        return None
    return (fold(best) if ignorecase else best), ignorecase


def _literal_runs(seq: Any, runs: list[str]) -> None:
    """Collect runs of consecutive required literal characters of a parsed pattern sequence."""
    run: list[str] = []

    def flush() -> None:
        if run:
            runs.append("".join(run))
            run.clear()

    for op, arg in seq:
        if op is _c.LITERAL:
            run.append(chr(arg))
        elif op is _c.AT:
            continue  # anchors are zero-width: they do not break a run
        elif op is _c.SUBPATTERN:
            flush()
            if arg[1] == 0 and arg[2] == 0:  # no local flag changes inside the group
                _literal_runs(arg[3], runs)
        elif op in (_c.MAX_REPEAT, _c.MIN_REPEAT, _c.POSSESSIVE_REPEAT):
            flush()
            if arg[0] >= 1:
                _literal_runs(arg[2], runs)
        else:
            flush()
    flush()
