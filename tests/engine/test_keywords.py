"""Keyword (field-less) search: case-insensitive substring over every scalar leaf of the event."""

from __future__ import annotations

import pytest

KEYWORDS = [
    pytest.param(["EVILSERVICE", "svchost.exe -n evil"], {"msg": "evilservice started"}, True, id="or-first"),
    pytest.param(
        ["EVILSERVICE", "svchost.exe -n evil"], {"cmd": "C:\\svchost.exe -n EVIL"}, True, id="or-second"
    ),
    pytest.param(["EVILSERVICE", "svchost.exe -n evil"], {"msg": "nothing here"}, False, id="or-none"),
    pytest.param(["mimikatz"], {"a": {"b": ["x", "run Mimikatz now"]}}, True, id="nested-list-leaf"),
    pytest.param(["mimikatz"], {"a": [[{"b": "deep mimikatz"}]]}, True, id="deep-leaf"),
    pytest.param(["mimikatz"], {"mimikatz": "x"}, False, id="keys-not-searched"),
    pytest.param(["mimikatz"], {"a": {"mimikatz": 1}}, False, id="nested-keys-not-searched"),
    pytest.param(["mimikatz"], {}, False, id="empty-event"),
    pytest.param(["4624"], {"EventID": 4624}, True, id="int-leaf-stringified"),
    pytest.param(["462"], {"EventID": 4624}, True, id="int-leaf-substring"),
    pytest.param(["true"], {"flag": True}, True, id="bool-leaf-stringified"),
    pytest.param(["evil*tool"], {"msg": "an EVIL hacking tool!"}, True, id="inner-wildcard"),
    pytest.param(["evil*tool"], {"msg": "a tool, evil"}, False, id="inner-wildcard-order"),
    pytest.param(["ev?l"], {"msg": "xx evXl yy"}, True, id="question-wildcard"),
    pytest.param([r"a\*b"], {"msg": "xa*bx"}, True, id="escaped-star"),
    pytest.param([r"a\*b"], {"msg": "xazzbx"}, False, id="escaped-star-literal"),
    pytest.param(
        ["event::clear", "event::drop"], {"CommandLine": "mimikatz EVENT::DROP exit"}, True, id="spec-example"
    ),
]


@pytest.mark.parametrize(("keywords", "event", "expected"), KEYWORDS)
def test_keyword_list(matches, keywords, event, expected):
    assert matches(keywords, event) is expected


def test_single_string_keyword(detect):
    rule = {"keywords": "mimikatz", "condition": "keywords"}
    assert detect(rule, {"a": ["x", "sekurlsa by MIMIKATZ"]})
    assert not detect(rule, {"a": ["x", "y"]})


def test_unquoted_number_keyword_matches_number_leaf(matches):
    assert matches([4624], {"EventID": 4624})
    assert not matches([4624], {"EventID": 4625})


OAB = {"keywords_cmdlet": {"|all": ["OabVirtualDirectory", " -ExternalUrl "]}, "condition": "keywords_cmdlet"}


@pytest.mark.parametrize(
    ("event", "expected"),
    [
        pytest.param({"msg": "Set-OabVirtualDirectory -ExternalUrl x"}, True, id="spec-example-one-leaf"),
        pytest.param(
            {"a": "set-oabvirtualdirectory", "b": {"c": ["y -externalurl z"]}}, True, id="different-leaves"
        ),
        pytest.param({"msg": "Set-OabVirtualDirectory -InternalUrl x"}, False, id="second-missing"),
        pytest.param({"msg": "x -ExternalUrl y"}, False, id="first-missing"),
        pytest.param({"OabVirtualDirectory": "x -ExternalUrl y"}, False, id="key-does-not-count"),
    ],
)
def test_all_keywords_must_each_be_found(detect, event, expected):
    assert bool(detect(OAB, event)) is expected


@pytest.mark.parametrize(
    ("event", "expected"),
    [
        ({"Image": "C:\\x\\cmd.exe", "msg": "evil stuff"}, True),
        ({"Image": "C:\\x\\cmd.exe", "msg": "benign"}, False),
        ({"Image": "C:\\x\\evil.exe"}, False),
    ],
)
def test_keywords_combined_with_field_selection(detect, event, expected):
    rule = {
        "keywords": ["evil"],
        "selection": {"Image|endswith": "\\cmd.exe"},
        "condition": "selection and keywords",
    }
    assert bool(detect(rule, event)) is expected


def test_keywords_and_not_keywords(detect):
    rule = {"keywords": ["error"], "filter": ["expected"], "condition": "keywords and not filter"}
    assert detect(rule, {"msg": "an error occurred"})
    assert not detect(rule, {"msg": "an error occurred", "note": "it was EXPECTED"})
