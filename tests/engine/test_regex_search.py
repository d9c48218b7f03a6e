"""Rule regexes run through RE2's compiled object directly (an internal of google-re2, for speed):
its answers must stay those of the public `re2.search`, including on non-ASCII texts, anchors, and
empty matches, so a google-re2 upgrade that changes the internal fails here first."""

from __future__ import annotations

import re2

from rsigma.engine.regex import compile_fullmatch, compile_search

PATTERNS = [
    (r"net\s+user\s+", frozenset()),
    (r"NET\s+USER", frozenset({"i"})),
    (r"^c:\\windows\\", frozenset({"i"})),
    (r"\.exe$", frozenset()),
    (r"^$", frozenset()),
    (r"x*", frozenset()),
    (r"é+\w", frozenset()),
    (r"^a.b$", frozenset({"s"})),
    (r"^line2$", frozenset({"m"})),
]
TEXTS = [
    "",
    "cmd /c net  user admin /add",
    "C:\\Windows\\system32\\net.exe USER",
    "tool.exe",
    "tool.exe ",
    "ééé1 and ẞ",
    "a\nb",
    "line1\nline2\nline3",
    "x" * 1000 + " net user ",
]


def test_the_fast_path_agrees_with_re2_search() -> None:
    for pattern, flags in PATTERNS:
        occurs = compile_search(pattern, flags)
        prefix = f"(?{''.join(sorted(flags))})" if flags else ""
        public = re2.compile(prefix + pattern)
        for text in TEXTS:
            assert occurs(text) is (public.search(text) is not None), (pattern, flags, text)


def test_fullmatch_is_anchored_at_both_ends() -> None:
    occurs = compile_fullmatch(r"ab.d")
    assert occurs("abcd")
    assert not occurs("xabcd")
    assert not occurs("abcdx")
