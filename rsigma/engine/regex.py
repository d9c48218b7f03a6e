"""Regexes from rules run on RE2 (linear time), so no rule can stall the engine on a hostile event.

Patterns that need features RE2 lacks (backreferences, lookaround) fall back to the backtracking
`regex` module, and the rule is named in a warning. Each fallback search stops after
`BACKTRACKING_TIMEOUT_S`: the value then counts as not matching, a warning names the pattern, and
`backtracking_timeouts()` counts it (the daemon exports it as `rsigma_regex_timeouts_total`).
"""

from __future__ import annotations

import logging
import re
import re._constants as _c
import re._parser as _parser
from collections.abc import Callable
from typing import Any, Final

import re2
import regex

from rsigma.errors import SigmaValueError

log = logging.getLogger(__name__)

Search = Callable[[str], Any]

_RE2_OPTIONS = re2.Options()
_RE2_OPTIONS.log_errors = False
_RE2_OPTIONS.max_mem = 64 << 20

#: Longest one backtracking search may run on one value; past it, the value counts as not matching.
BACKTRACKING_TIMEOUT_S: Final = 0.1

_timeouts = 0


def backtracking_timeouts() -> int:
    """Backtracking searches this process cut off at `BACKTRACKING_TIMEOUT_S`."""
    return _timeouts


def compile_search(pattern: str, flags: frozenset[str] = frozenset(), *, context: str = "") -> Search:
    """A `search(text)` function for the pattern; flags are the Sigma `i`, `m`, `s` sub-modifiers."""
    prefix = f"(?{''.join(sorted(flags))})" if flags else ""
    try:
        return re2.compile(prefix + pattern, _RE2_OPTIONS).search
    except re2.error:
        pass
    try:
        compiled = regex.compile(prefix + pattern)
    except (regex.error, RecursionError, OverflowError) as e:
        raise SigmaValueError(f"{context}invalid regular expression {pattern!r}: {e}") from e
    log.warning(
        "%sregex %r needs a backtracking engine (not RE2-compatible); each search is cut off after %g s",
        context,
        pattern,
        BACKTRACKING_TIMEOUT_S,
    )
    return _bounded(compiled.search, pattern, context)


def _bounded(search: Callable[..., Any], pattern: str, context: str) -> Search:
    def bounded_search(text: str) -> Any:
        global _timeouts
        try:
            return search(text, timeout=BACKTRACKING_TIMEOUT_S)
        except TimeoutError:
            _timeouts += 1
            log.warning(
                "%sregex %r gave up after %g s on a value of %d characters; counted as not matching",
                context,
                pattern,
                BACKTRACKING_TIMEOUT_S,
                len(text),
            )
            return None

    return bounded_search


def compile_fullmatch(pattern: str) -> Search:
    """An anchored match for patterns the engine generates itself (wildcards with `?`)."""
    return re2.compile(r"(?s)\A(?:" + pattern + r")\z", _RE2_OPTIONS).search


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
    return (best.lower() if ignorecase else best), ignorecase


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
