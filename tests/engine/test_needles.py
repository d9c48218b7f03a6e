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


def test_non_ascii_needles_are_found_in_non_ascii_texts_beside_the_ascii_ones():
    """Non-ASCII needles live in their own automaton, consulted only for non-ASCII texts."""
    rng = random.Random(5)
    needles = _needles(rng)
    alphabet = "abcdefgh–—😀é"
    for word in {"".join(rng.choice(alphabet) for _ in range(rng.randint(1, 4))) for _ in range(300)}:
        needles.setdefault(word, len(needles))
    assert any(not n.isascii() for n in needles) and any(n.isascii() for n in needles)
    find_all = needles_module._automaton(needles)
    for prefer_set in (False, True):
        finder = needles_module.Finder(needles, prefer_set=prefer_set)
        for _ in range(60):
            text = "".join(rng.choice(alphabet + " ") for _ in range(rng.randint(0, 200)))
            assert set(finder(text)) == set(find_all(text)), text
    assert set(needles_module.Finder({"😀": 1})("plain ascii")) == set()
    assert set(needles_module.Finder({"😀": 1, "ab": 2})("xab😀")) == {1, 2}
