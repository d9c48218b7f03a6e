"""Find which of many literal needles occur in a text: the index's multi-pattern matcher.

Two engines, picked per needle set by its size and needle length, because each wins on one shape
of data (measured on SigmaHQ with the benchmark's Sysmon stream):

- pyahocorasick reports every occurrence; fastest on short texts with few hits (Image paths:
  0.75 us against 1.1 us) and on long needles such as hashes, and quick to build.
- an RE2 Set reports only *which* needles occur, from one DFA pass; fastest on long texts with
  many short, overlapping needles (CommandLine's 4,900 ASCII needles: 3.7 us against 10 us once
  its DFA states are built, 8 us on a command line never seen; the event-wide keyword text: 2.7 us
  against 9.8 us).

Both are linear in the text. An RE2 Set that cannot build its DFA would report no match at all, so
every set is probed once after compiling and replaced by the automaton if the probe fails. Once
built, a set never misses for lack of memory: RE2 creates a DFA only with room for 20 states of the
largest size, and when the cache fills mid-search it clears it and goes on (a many-match search,
which a Set is, never bails out for slowness). A small budget costs speed only; the test
`tests/engine/test_needles.py` runs a set at 1 MB, 15 times slower from constant resets, against the
automaton.

Needles that are not ASCII (SigmaHQ's emoji and homoglyph rules give CommandLine about 4,000) are
kept apart, in an automaton searched only when the text is not ASCII (`str.isascii` is a flag check),
since no such needle can occur in an ASCII text. In an RE2 Set they multiplied the cost of building
its DFA: on the first search of each new command line, 38 us with them against 7 us without (3.6 us
and 3.0 us once the states are built), which made the first pass over a stream about half as fast as
later ones.

A finder pickles as its needles (an RE2 Set cannot be pickled) and builds its matcher on first use.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Final

import ahocorasick
import re2

log = logging.getLogger(__name__)

#: Needle sets at least this large, of needles this short on average, use an RE2 Set; others an
#: Aho-Corasick automaton. Long needles (hashes, IOCs) rarely overlap, so the automaton searches
#: their texts as fast and builds in half the time (SigmaHQ's 5,600 Hashes needles, 49 characters
#: on average: 23 ms against 51 ms, paid on the first event that has the field).
RE2_SET_MIN_NEEDLES: Final = 2000
RE2_SET_MAX_MEAN_LENGTH: Final = 24
#: DFA memory budget of one RE2 Set: the cache fills lazily up to it, then starts over (bounded RSS).
RE2_SET_MAX_MEM: Final = 32 << 20


class Finder:
    """Calling it with a text returns the payloads of the needles found in it (duplicates possible).

    The matcher is built on the first call, so a rule set pays only for the finders its events use
    (routed indexes, fields that never occur), and unpickling one (from a rule cache) is cheap.
    """

    __slots__ = ("needles", "prefer_set", "_find")

    def __init__(self, needles: dict[str, int], *, prefer_set: bool = False) -> None:
        self.needles = needles
        self.prefer_set = prefer_set
        self._find: Callable[[str], Iterable[int]] | None = None

    def __call__(self, text: str) -> Iterable[int]:
        find = self._find
        if find is None:
            find = self._find = self._build()
        return find(text)

    def _build(self) -> Callable[[str], Iterable[int]]:
        ascii_needles = {n: p for n, p in self.needles.items() if n.isascii()}
        find_ascii = self._ascii_finder(ascii_needles)
        if len(ascii_needles) == len(self.needles):
            return find_ascii
        find_other = _lazy_automaton({n: p for n, p in self.needles.items() if not n.isascii()})

        def find(text: str) -> Iterable[int]:
            if text.isascii():
                return find_ascii(text)
            return [*find_ascii(text), *find_other(text)]

        return find

    def _ascii_finder(self, needles: dict[str, int]) -> Callable[[str], Iterable[int]]:
        if not needles:
            return _nothing
        if self.prefer_set or (
            len(needles) >= RE2_SET_MIN_NEEDLES
            and sum(map(len, needles)) < RE2_SET_MAX_MEAN_LENGTH * len(needles)
        ):
            find = _re2_set(needles)
            if find is not None:
                return find
        return _automaton(needles)

    def __getstate__(self) -> tuple[dict[str, int], bool]:
        return self.needles, self.prefer_set

    def __setstate__(self, state: tuple[dict[str, int], bool]) -> None:
        self.needles, self.prefer_set = state
        self._find = None


def _nothing(text: str) -> Iterable[int]:
    return ()


def _lazy_automaton(needles: dict[str, int]) -> Callable[[str], Iterable[int]]:
    """An automaton built on the first text that needs it: most streams are ASCII throughout."""
    automaton: Callable[[str], Iterable[int]] | None = None

    def find(text: str) -> Iterable[int]:
        nonlocal automaton
        if automaton is None:
            automaton = _automaton(needles)
        return automaton(text)

    return find


def _automaton(needles: dict[str, int]) -> Callable[[str], Iterable[int]]:
    automaton = ahocorasick.Automaton()
    for needle, payload in needles.items():
        automaton.add_word(needle, payload)
    automaton.make_automaton()

    def find(text: str) -> Iterable[int]:
        return [payload for _, payload in automaton.iter(text)]

    return find


def _re2_set(needles: dict[str, int]) -> Callable[[str], Iterable[int]] | None:
    options = re2.Options()
    options.literal = True
    options.log_errors = False
    options.max_mem = RE2_SET_MAX_MEM
    rset = re2.Set.SearchSet(options)
    payloads: list[int] = []
    for needle, payload in needles.items():
        rset.Add(needle)
        payloads.append(payload)
    try:
        rset.Compile()
    except re2.error:
        log.warning("RE2 Set of %d needles did not compile; using Aho-Corasick", len(needles))
        return None
    probe = max(needles, key=len)
    if not rset.Match(probe):
        log.warning("RE2 Set of %d needles failed its probe; using Aho-Corasick", len(needles))
        return None
    match = rset.Match
    lookup = payloads.__getitem__

    def find(text: str) -> Iterable[int]:
        found = match(text)
        return map(lookup, found) if found else ()

    return find
