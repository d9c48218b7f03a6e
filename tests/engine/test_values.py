"""Plain values: escaping, wildcards, case, type coercion, null/empty/exists, lists and nested fields.

Rule values in the tables are the strings *after* YAML unquoting (see conftest.make_rule).
"""

from __future__ import annotations

import pytest

# sigma-engine.md §1.4 escaping table, one or more rows per table line (no modifier: whole-value match).
ESCAPES = [
    pytest.param(r"a\*b", "a*b", True, id="escaped-star-is-literal"),
    pytest.param(r"a\*b", "axyb", False, id="escaped-star-is-not-wildcard"),
    pytest.param(r"a\?b", "a?b", True, id="escaped-question-is-literal"),
    pytest.param(r"a\?b", "axb", False, id="escaped-question-is-not-wildcard"),
    pytest.param(r"a\\b", "a\\b", True, id="double-backslash-is-one-backslash"),
    pytest.param(r"a\\b", r"a\\b", False, id="double-backslash-is-not-two"),
    pytest.param(r"C:\\Windows", r"C:\Windows", True, id="double-backslash-path"),
    pytest.param(r"C:\Windows\System32", r"C:\Windows\System32", True, id="backslash-other-char-kept"),
    pytest.param(r"a\nb", r"a\nb", True, id="backslash-n-is-two-chars"),
    pytest.param(r"a\nb", "a\nb", False, id="backslash-n-is-not-newline"),
    pytest.param("C:\\Windows\\", "C:\\Windows\\", True, id="trailing-lone-backslash-literal"),
    pytest.param("abc\\", "abc", False, id="trailing-lone-backslash-required"),
    pytest.param(r"C:\Windows\*", "C:\\Windows*", True, id="path-then-escaped-star-literal"),
    pytest.param(r"C:\Windows\*", r"C:\Windows\*", False, id="path-then-escaped-star-consumes-backslash"),
    pytest.param(r"C:\Windows\*", r"C:\Windows\System32", False, id="path-then-escaped-star-not-wildcard"),
    pytest.param(r"C:\\*", "C:\\Users", True, id="escaped-backslash-then-wildcard"),
    pytest.param(r"C:\\*", "C:\\", True, id="escaped-backslash-then-wildcard-empty"),
    pytest.param(r"C:\\*", "C:Users", False, id="escaped-backslash-then-wildcard-needs-backslash"),
    pytest.param(r"C:\\*", "D:\\Users", False, id="escaped-backslash-then-wildcard-prefix"),
    pytest.param(r"a\\\*", "a\\*", True, id="three-backslash-star-literal-both"),
    pytest.param(r"a\\\*", "a\\bc", False, id="three-backslash-star-not-wildcard"),
    pytest.param(r"a\\\\b", r"a\\b", True, id="four-backslashes-are-two"),
    pytest.param(r"a\\\\b", "a\\b", False, id="four-backslashes-not-one"),
    pytest.param(r"a\\\b", r"a\\b", True, id="three-backslashes-are-two"),
]


@pytest.mark.parametrize(("value", "event_value", "expected"), ESCAPES)
def test_escaping_table(matches, value, event_value, expected):
    assert matches({"F": value}, {"F": event_value}) is expected


WILDCARDS = [
    pytest.param("prog?.exe", "progA.exe", True, id="question-one-char"),
    pytest.param("prog?.exe", "prog.exe", False, id="question-not-zero-chars"),
    pytest.param("prog?.exe", "progAB.exe", False, id="question-not-two-chars"),
    pytest.param("??", "ab", True, id="two-questions-two-chars"),
    pytest.param("??", "abc", False, id="two-questions-not-three"),
    pytest.param("antivirus_V*.exe", "antivirus_V21.2.1.exe", True, id="star-any-run"),
    pytest.param("antivirus_V*.exe", "antivirus_V.exe", True, id="star-empty-run"),
    pytest.param("antivirus_V*.exe", "antivirus_V1.exe.bak", False, id="star-anchored-end"),
    pytest.param("antivirus_V*.exe", "x_antivirus_V1.exe", False, id="star-anchored-start"),
    pytest.param("*", "", True, id="star-matches-empty-string"),
    pytest.param("*", "line1\nline2", True, id="star-crosses-newlines"),
    pytest.param("a*b", "a\nx\nb", True, id="inner-star-crosses-newlines"),
    pytest.param("a*b", "a\nx\nbc", False, id="inner-star-still-anchored"),
    pytest.param("*\\cmd.exe", "C:\\x\\cmd.exe", True, id="leading-star-suffix"),
    pytest.param("*\\cmd.exe", "C:\\x\\cmd.exe.bak", False, id="leading-star-suffix-anchored"),
    pytest.param(r"C:\WINDOWS\\*", r"c:\windows\system32", True, id="wildcard-case-insensitive"),
    # Regex metacharacters in a plain value are literal.
    pytest.param("a.c", "abc", False, id="dot-is-literal"),
    pytest.param("a.c", "a.c", True, id="dot-matches-dot"),
    pytest.param("a+b", "aab", False, id="plus-is-literal"),
    pytest.param("a+b", "a+b", True, id="plus-matches-plus"),
    pytest.param("(x)|y", "y", False, id="alternation-is-literal"),
    pytest.param("(x)|y", "(x)|y", True, id="parens-pipe-literal"),
    pytest.param("[ab]", "a", False, id="class-is-literal"),
    pytest.param("[ab]", "[ab]", True, id="brackets-literal"),
    pytest.param("^a$", "a", False, id="anchors-are-literal"),
    pytest.param("^a$", "^a$", True, id="anchors-match-themselves"),
    pytest.param("a{2}", "aa", False, id="braces-are-literal"),
    pytest.param("*$HOME*", "x $HOME y", True, id="dollar-literal-with-wildcards"),
]


@pytest.mark.parametrize(("value", "event_value", "expected"), WILDCARDS)
def test_wildcards(matches, value, event_value, expected):
    assert matches({"F": value}, {"F": event_value}) is expected


CASE = [
    pytest.param("whoami.exe", "WhoAmI.EXE", True, id="rule-lower-event-mixed"),
    pytest.param("WHOAMI.EXE", "whoami.exe", True, id="rule-upper-event-lower"),
    pytest.param("ÉCOLE", "école", True, id="non-ascii-case-folding"),
    pytest.param("whoami.exe", "C:\\whoami.exe", False, id="no-implicit-contains"),
    pytest.param("whoami.exe", "whoami.exe ", False, id="no-trimming"),
]


@pytest.mark.parametrize(("value", "event_value", "expected"), CASE)
def test_plain_value_is_case_insensitive_whole_value_equality(matches, value, event_value, expected):
    assert matches({"F": value}, {"F": event_value}) is expected


@pytest.mark.parametrize(
    ("field", "value", "event_value", "expected"),
    [
        ("F|cased", "Foo", "Foo", True),
        ("F|cased", "Foo", "foo", False),
        ("F|cased", "Foo", "FOO", False),
        ("F|cased", "Fo*", "Foobar", True),
        ("F|cased", "Fo*", "foobar", False),
    ],
)
def test_cased_makes_plain_values_case_sensitive(matches, field, value, event_value, expected):
    assert matches({field: value}, {"F": event_value}) is expected


TYPES = [
    # A string rule value against a non-string event value: the event value is stringified.
    pytest.param("4624", 4624, True, id="str-rule-int-event"),
    pytest.param("4624", 4625, False, id="str-rule-other-int-event"),
    pytest.param("4624", 4624.0, True, id="str-rule-integral-float-event"),
    pytest.param("1", 1.0, True, id="float-1.0-stringifies-as-1"),
    pytest.param("1.5", 1.5, True, id="str-rule-float-event"),
    pytest.param("46*", 4624, True, id="wildcard-rule-int-event"),
    pytest.param("true", True, True, id="str-rule-bool-event"),
    pytest.param("TRUE", True, True, id="str-rule-bool-event-case"),
    pytest.param("false", False, True, id="str-rule-false-event"),
    pytest.param("true", False, False, id="str-rule-bool-mismatch"),
    pytest.param("x", {"a": "x"}, False, id="object-event-value-never-matches"),
    pytest.param("x", None, False, id="null-event-value-never-matches-string"),
    # An unquoted YAML number is numeric equality.
    pytest.param(4624, 4624, True, id="int-rule-int-event"),
    pytest.param(4624, "4624", True, id="int-rule-numeric-string-event"),
    pytest.param(4624, 4624.0, True, id="int-rule-float-event"),
    pytest.param(4624, 4625, False, id="int-rule-other-int"),
    pytest.param(4624, "4625", False, id="int-rule-other-numeric-string"),
    pytest.param(4624, "abc", False, id="int-rule-non-numeric-string"),
    pytest.param(1.5, 1.5, True, id="float-rule-float-event"),
    pytest.param(1.5, "1.5", True, id="float-rule-numeric-string"),
    pytest.param(1.5, 1, False, id="float-rule-other-int"),
    # Booleans.
    pytest.param(True, True, True, id="bool-rule-bool-event"),
    pytest.param(True, "true", True, id="bool-rule-string-true"),
    pytest.param(True, "True", True, id="bool-rule-string-True"),
    pytest.param(True, "TRUE", True, id="bool-rule-string-TRUE"),
    pytest.param(True, 1, False, id="bool-rule-not-int-1"),
    pytest.param(True, False, False, id="bool-rule-other-bool"),
    pytest.param(True, "false", False, id="bool-rule-string-false"),
    pytest.param(False, False, True, id="false-rule-false-event"),
    pytest.param(False, "false", True, id="false-rule-string-false"),
    pytest.param(False, 0, False, id="false-rule-not-int-0"),
    pytest.param(False, True, False, id="false-rule-true-event"),
]


@pytest.mark.parametrize(("value", "event_value", "expected"), TYPES)
def test_type_coercion(matches, value, event_value, expected):
    assert matches({"F": value}, {"F": event_value}) is expected


NULL_AND_EMPTY = [
    pytest.param(None, {}, True, id="null-matches-missing"),
    pytest.param(None, {"F": None}, True, id="null-matches-json-null"),
    pytest.param(None, {"F": ""}, False, id="null-not-empty-string"),
    pytest.param(None, {"F": "x"}, False, id="null-not-value"),
    pytest.param(None, {"F": 0}, False, id="null-not-zero"),
    pytest.param(None, {"F": False}, False, id="null-not-false"),
    pytest.param("", {"F": ""}, True, id="empty-matches-empty"),
    pytest.param("", {}, False, id="empty-not-missing"),
    pytest.param("", {"F": None}, False, id="empty-not-null"),
    pytest.param("", {"F": " "}, False, id="empty-not-space"),
    pytest.param("", {"F": "x"}, False, id="empty-not-value"),
    pytest.param("*", {"F": None}, False, id="star-not-null"),
    pytest.param("*", {}, False, id="star-not-missing"),
]


@pytest.mark.parametrize(("value", "event", "expected"), NULL_AND_EMPTY)
def test_null_and_empty_values(matches, value, event, expected):
    assert matches({"F": value}, event) is expected


SPEC_SPECIAL_VALUES = {
    "selection_main": {"FieldA": "something"},
    "selection_empty1": {"FieldB": ""},
    "selection_empty2": {"FieldB": None},
    "condition": "selection_main and 1 of selection_empty*",
}


@pytest.mark.parametrize(
    ("event", "expected"),
    [
        ({"FieldA": "something"}, True),
        ({"FieldA": "something", "FieldB": ""}, True),
        ({"FieldA": "something", "FieldB": None}, True),
        ({"FieldA": "something", "FieldB": "x"}, False),
        ({"FieldA": "other", "FieldB": ""}, False),
    ],
)
def test_spec_special_values_example(detect, event, expected):
    assert bool(detect(SPEC_SPECIAL_VALUES, event)) is expected


@pytest.mark.parametrize(
    ("event", "expected"),
    [
        ({"EventID": 4738, "PasswordLastSet": "2024-01-01"}, True),
        ({"EventID": 4738}, False),
        ({"EventID": 4738, "PasswordLastSet": None}, False),
    ],
)
def test_not_null_is_a_negated_null_selection(detect, event, expected):
    detection = {
        "selection": {"EventID": 4738},
        "filter": {"PasswordLastSet": None},
        "condition": "selection and not filter",
    }
    assert bool(detect(detection, event)) is expected


EXISTS = [
    pytest.param(True, {"F": "x"}, True, id="true-present"),
    pytest.param(True, {"F": None}, True, id="true-present-null"),
    pytest.param(True, {"F": ""}, True, id="true-present-empty"),
    pytest.param(True, {"F": 0}, True, id="true-present-zero"),
    pytest.param(True, {"F": False}, True, id="true-present-false"),
    pytest.param(True, {"G": "x"}, False, id="true-absent"),
    pytest.param(False, {"G": "x"}, True, id="false-absent"),
    pytest.param(False, {"F": None}, False, id="false-present-null"),
    pytest.param(False, {"F": ""}, False, id="false-present-empty"),
    pytest.param(False, {"F": "x"}, False, id="false-present"),
]


@pytest.mark.parametrize(("value", "event", "expected"), EXISTS)
def test_exists(matches, value, event, expected):
    assert matches({"F|exists": value}, event) is expected


@pytest.mark.parametrize(
    ("value", "event", "expected"),
    [
        (True, {"a": {"b": None}}, True),
        (True, {"a": {}}, False),
        (False, {"a": {}}, True),
        (False, {"a": {"b": 1}}, False),
    ],
)
def test_exists_on_nested_field(matches, value, event, expected):
    assert matches({"a.b|exists": value}, event) is expected


FIELDS = [
    pytest.param("F", "b", {"F": ["a", "B"]}, True, id="event-list-any-element"),
    pytest.param("F", "c", {"F": ["a", "b"]}, False, id="event-list-no-element"),
    pytest.param("F", 5, {"F": [1, 5]}, True, id="event-list-numeric-element"),
    pytest.param("F|contains", "ev", {"F": ["x", "evil"]}, True, id="event-list-contains"),
    pytest.param("a.b.c", "x", {"a": {"b": {"c": "x"}}}, True, id="dotted-nested"),
    pytest.param("a.b.c", "x", {"a": {"b": {"c": "y"}}}, False, id="dotted-nested-other-value"),
    pytest.param("a.b", "y", {"a": [{"b": "x"}, {"b": "y"}]}, True, id="dotted-through-array"),
    pytest.param("a.b", "z", {"a": [{"b": "x"}, {"b": "y"}]}, False, id="dotted-through-array-miss"),
    pytest.param(
        "a.b.c", "y", {"a": [{"b": {"c": "x"}}, {"b": [{"c": "y"}]}]}, True, id="dotted-nested-arrays"
    ),
    pytest.param("a.b", "flat", {"a.b": "flat", "a": {"b": "nested"}}, True, id="flat-key-matches"),
    pytest.param("a.b", "nested", {"a.b": "flat", "a": {"b": "nested"}}, False, id="flat-key-wins"),
    pytest.param("a.b", "x", {"a": "x"}, False, id="scalar-intermediate"),
    pytest.param("a.b", "x", {"a": None}, False, id="null-intermediate"),
    pytest.param("a.b", None, {"a": {}}, True, id="null-matches-missing-nested"),
    pytest.param("Image", "x", {"image": "x"}, False, id="field-names-case-sensitive-1"),
    pytest.param("image", "x", {"Image": "x"}, False, id="field-names-case-sensitive-2"),
    pytest.param("F", "x", {}, False, id="missing-field"),
]


@pytest.mark.parametrize(("field", "value", "event", "expected"), FIELDS)
def test_event_lists_and_nested_fields(matches, field, value, event, expected):
    assert matches({field: value}, event) is expected


STRUCTURE = [
    pytest.param({"F": ["a", "b"]}, {"F": "b"}, True, id="value-list-or-second"),
    pytest.param({"F": ["a", "b"]}, {"F": "A"}, True, id="value-list-or-first"),
    pytest.param({"F": ["a", "b"]}, {"F": "c"}, False, id="value-list-or-none"),
    pytest.param({"F": "a", "G": "b"}, {"F": "a", "G": "b"}, True, id="map-and-all"),
    pytest.param({"F": "a", "G": "b"}, {"F": "a"}, False, id="map-and-missing"),
    pytest.param({"F": "a", "G": "b"}, {"F": "a", "G": "c"}, False, id="map-and-mismatch"),
    pytest.param([{"F": "a"}, {"G": "b"}], {"G": "b"}, True, id="list-of-maps-or-second"),
    pytest.param([{"F": "a"}, {"G": "b"}], {"F": "a"}, True, id="list-of-maps-or-first"),
    pytest.param([{"F": "a"}, {"G": "b"}], {"F": "x", "G": "x"}, False, id="list-of-maps-none"),
    pytest.param(
        [{"F": "a", "G": "b"}, {"H": "c"}], {"F": "a", "H": "x"}, False, id="list-of-maps-inner-and"
    ),
    pytest.param(
        [{"F": "a", "G": "b"}, {"H": "c"}], {"F": "a", "G": "b"}, True, id="list-of-maps-inner-and-ok"
    ),
    pytest.param(
        {"EventID": [517, 1102], "EventLog": "Security"},
        {"EventLog": "security", "EventID": 1102},
        True,
        id="spec-map-example",
    ),
]


@pytest.mark.parametrize(("selection", "event", "expected"), STRUCTURE)
def test_value_lists_maps_and_lists_of_maps(matches, selection, event, expected):
    assert matches(selection, event) is expected
