"""The index's multi-pattern finders: an RE2 Set whose DFA cache is far too small for its needles
must still report every needle (RE2 resets its cache and goes on; a Set never bails out to "no
match"), so a memory budget can only cost speed, never a detection."""

from __future__ import annotations

import random

from rsigma.engine import needles as needles_module


def _needles(rng: random.Random) -> dict[str, int]:
    words = {"".join(rng.choice("abcdefgh") for _ in range(rng.randint(3, 9))) for _ in range(2500)}
    return {word: i for i, word in enumerate(sorted(words))}


def test_an_re2_set_thrashing_its_dfa_cache_finds_exactly_what_the_automaton_finds(monkeypatch):
    rng = random.Random(7)
    needles = _needles(rng)
    monkeypatch.setattr(needles_module, "RE2_SET_MAX_MEM", 1 << 20)  # ~15x slower: constant resets
    find_set = needles_module._re2_set(needles)
    assert find_set is not None, "a 1 MB budget still compiles this set"
    find_all = needles_module._automaton(needles)
    for _ in range(40):
        text = "".join(rng.choice("abcdefgh") for _ in range(rng.randint(2000, 8000)))
        assert set(find_set(text)) == set(find_all(text))


def test_a_finder_of_many_needles_matches_the_automaton_on_each_text():
    rng = random.Random(11)
    needles = _needles(rng)
    finder = needles_module.Finder(needles)
    find_all = needles_module._automaton(needles)
    for _ in range(40):
        text = "".join(rng.choice("abcdefgh xyz") for _ in range(rng.randint(0, 300)))
        assert set(finder(text)) == set(find_all(text))
