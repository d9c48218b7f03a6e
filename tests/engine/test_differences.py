"""Our side of each row of docs/engine.md "Where we differ from RSigma / pySigma and why".

Numbers in strings and Unicode case folding have their own files (test_numbers.py, test_folding.py).
Each test here states what this engine does where a peer differs; the comment names the peer's answer.
"""

from __future__ import annotations

import base64

import pytest


@pytest.mark.parametrize(
    ("event_value", "expected"),
    [
        ("10.1.2.3", True),
        (" 10.1.2.3", False),  # pySigma sqlite: no match (LIKE '10.%')
        ("10.1.2.3 ", False),  # pySigma sqlite: match
        ("10.1.2.3\n", False),
        ("\t2001:db8::1", False),
    ],
)
def test_cidr_needs_the_whole_value_to_be_an_address(matches, event_value, expected):
    assert matches({"F|cidr": ["10.0.0.0/8", "2001:db8::/32"]}, {"F": event_value}) is expected


@pytest.mark.parametrize(
    ("event_value", "expected"),
    [
        (True, True),
        ("true", True),
        ("TRUE", True),
        ("yes", False),  # RSigma: match
        ("1", False),  # RSigma and pySigma sqlite: match
        (1, False),  # pySigma sqlite: match
        ("true ", False),
    ],
)
def test_boolean_spellings(matches, event_value, expected):
    assert matches({"F": True}, {"F": event_value}) is expected


@pytest.mark.parametrize(
    ("event", "expected"),
    [
        ({"F": "Set-OabVirtualDirectory -ExternalUrl x"}, True),  # RSigma: no match
        ({"F": "Set-OabVirtualDirectory", "G": "x -ExternalUrl y"}, True),  # RSigma: no match
        ({"F": "Set-OabVirtualDirectory"}, False),
    ],
)
def test_keyword_all_needs_each_keyword_anywhere(matches, event, expected):
    """The specification's own example."""
    assert matches({"|all": ["OabVirtualDirectory", " -ExternalUrl "]}, event) is expected


@pytest.mark.parametrize("dash", ["-", "/", "\u2013", "\u2014", "\u2015"])
def test_windash_expands_a_slash_too(matches, dash):
    # RSigma expands only `-`: the rule written with `/` misses every other dash.
    assert matches({"F|windash|contains": " /quiet"}, {"F": f"setup.exe {dash}quiet"})
    assert matches({"F|windash|contains": " -quiet"}, {"F": f"setup.exe {dash}quiet"})


@pytest.mark.parametrize("offset", [0, 1, 2])
@pytest.mark.parametrize("after", [b"", b" ", b"  x", b"\x00\xff"])
def test_base64offset_does_not_depend_on_the_next_byte(matches, offset, after):
    # RSigma keeps the unstable last character: at offset 1 it misses whoami followed by any byte.
    encoded = base64.b64encode(b" " * offset + b"whoami" + after).decode()
    assert matches({"F|base64offset|contains": "whoami"}, {"F": "x" + encoded + "x"})


@pytest.mark.parametrize(
    ("field", "event_value", "expected"),
    [
        ("F|startswith", "abcz", True),  # RSigma: no match
        ("F|startswith", "zabc", False),  # RSigma: match
        ("F|startswith", "zac", False),  # RSigma: match
        ("F|endswith", "zabc", True),
        ("F|endswith", "abcz", False),  # RSigma: match
    ],
)
def test_wildcards_inside_startswith_and_endswith(matches, field, event_value, expected):
    assert matches({field: "a*c"}, {"F": event_value}) is expected


@pytest.mark.parametrize(
    ("selection", "event_value"),
    [
        ({"F": "a*b"}, "a\nb"),  # RSigma: no match
        ({"F|contains": "powershell*-enc"}, "powershell\n-enc x"),  # RSigma: no match
        ({"F|endswith": "\\cmd.exe"}, "C:\\x\ny\\cmd.exe"),
        ({"F": "a?b"}, "a\nb"),
    ],
)
def test_star_crosses_newlines(matches, selection, event_value):
    assert matches(selection, {"F": event_value})


@pytest.mark.parametrize("event", [{"a": "x6y"}, {"a": 16}, {"a": 6}, {"a": ["z", "6"]}])
def test_a_number_in_a_keyword_list_is_its_text(matches, event):
    # RSigma: an unquoted number in a keyword list never matches.
    assert matches([0, 6], event)


@pytest.mark.parametrize(
    ("keyword", "event"),
    [("6", {"a": 6}), ("1.5", {"a": 1.5}), ("6", {"a": {"b": [16]}}), ("true", {"a": True})],
)
def test_keywords_search_numbers_as_text(matches, keyword, event):
    # RSigma searches string values only.
    assert matches([keyword], event)


@pytest.mark.parametrize(
    "event",
    [
        {"gcp.audit.method_name": "x"},
        {"gcp": {"audit": {"method_name": "x"}}},
        {"gcp": {"audit.method_name": "x"}},  # RSigma: no match
        {"gcp.audit": {"method_name": "x"}},  # RSigma: no match
    ],
)
def test_a_dotted_field_finds_partly_flattened_keys(matches, event):
    assert matches({"gcp.audit.method_name": "x"}, event)


def test_fieldref_against_a_list(matches):
    # RSigma: no match.
    assert matches({"B|fieldref": "A"}, {"A": "same", "B": ["other", "same"]})
    assert not matches({"B|fieldref": "A"}, {"A": "same", "B": ["other", "else"]})


@pytest.mark.parametrize(
    ("pattern", "unicode", "ascii"),
    [
        (r"^a\wb$", "a\u00e9b", "axb"),
        (r"^a\wb$", "a\u212ab", "akb"),
        (r"^\d+$", "\uff14\uff16", "46"),
        (r"a\sb", "a\u00a0b", "a b"),
    ],
)
def test_regex_classes_are_ascii(matches, pattern, unicode, ascii):
    # RSigma (Rust regex) matches the Unicode texts too: its classes are Unicode.
    assert not matches({"F|re": pattern}, {"F": unicode})
    assert matches({"F|re": pattern}, {"F": ascii})
