"""Value modifiers (sigma-appendix-modifiers.md), positive and negative cases, and illegal combinations."""

from __future__ import annotations

import base64
import ipaddress
import random

import pytest


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


STRING_OPS = [
    pytest.param("F|contains", "foo", "xxFOOxx", True, id="contains-case-insensitive"),
    pytest.param("F|contains", "foo", "xxfoxx", False, id="contains-miss"),
    pytest.param("F|contains", "foo", "foo", True, id="contains-whole"),
    pytest.param(
        "F|contains", "\\AppData\\", "C:\\Users\\x\\appdata\\Local", True, id="contains-backslashes"
    ),
    pytest.param("F|contains", "foo*bar", "xxfooZZbarxx", True, id="contains-inner-wildcard"),
    pytest.param("F|contains", "foo*bar", "barfoo", False, id="contains-inner-wildcard-order"),
    pytest.param("F|contains", "a?c", "xxabcxx", True, id="contains-question"),
    pytest.param("F|contains", "a?c", "xxacxx", False, id="contains-question-needs-char"),
    pytest.param("F|contains", r"a\*b", "xa*bx", True, id="contains-escaped-star"),
    pytest.param("F|contains", r"a\*b", "xaZbx", False, id="contains-escaped-star-literal"),
    pytest.param("F|contains", "a.b", "xaZbx", False, id="contains-dot-literal"),
    pytest.param("F|contains", "4624", 14624, True, id="contains-int-event-stringified"),
    pytest.param(
        "F|startswith", "C:\\Windows", "c:\\windows\\system32", True, id="startswith-case-insensitive"
    ),
    pytest.param("F|startswith", "C:\\Windows", "D:\\C:\\Windows", False, id="startswith-anchored"),
    pytest.param("F|startswith", "a*b", "axxbyy", True, id="startswith-wildcard-prefix"),
    pytest.param("F|startswith", "a*b", "ab", True, id="startswith-wildcard-empty"),
    pytest.param("F|startswith", "a*b", "zab", False, id="startswith-wildcard-anchored-start"),
    pytest.param("F|startswith", "a?c", "abcdef", True, id="startswith-question"),
    pytest.param("F|startswith", "a?c", "zabc", False, id="startswith-question-anchored"),
    pytest.param("F|endswith", "\\cmd.exe", "C:\\x\\CMD.EXE", True, id="endswith-case-insensitive"),
    pytest.param("F|endswith", "\\cmd.exe", "cmd.exe", False, id="endswith-needs-backslash"),
    pytest.param("F|endswith", "\\cmd.exe", "C:\\cmd.exe.bak", False, id="endswith-anchored"),
    pytest.param("F|endswith", "\\7z*.exe", "C:\\x\\7zFM.exe", True, id="endswith-wildcard"),
    pytest.param("F|endswith", "\\7z*.exe", "C:\\x\\7z.exe", True, id="endswith-wildcard-empty"),
    pytest.param("F|endswith", "\\7z*.exe", "C:\\7zip.exe\\x", False, id="endswith-wildcard-anchored-end"),
    pytest.param("F|endswith", "a?c", "zzzabc", True, id="endswith-question"),
    pytest.param("F|endswith", "a?c", "abcz", False, id="endswith-question-anchored"),
    pytest.param("F|contains|cased", "Foo", "xFoox", True, id="contains-cased-hit"),
    pytest.param("F|contains|cased", "Foo", "xfoox", False, id="contains-cased-miss"),
    pytest.param("F|startswith|cased", "Foo", "Foobar", True, id="startswith-cased-hit"),
    pytest.param("F|startswith|cased", "Foo", "foobar", False, id="startswith-cased-miss"),
    pytest.param("F|endswith|cased", "Bar", "fooBar", True, id="endswith-cased-hit"),
    pytest.param("F|endswith|cased", "Bar", "foobar", False, id="endswith-cased-miss"),
    pytest.param("F|contains", ["x", "foo"], "a foo b", True, id="contains-value-list-or"),
    pytest.param("F|contains", ["x", "y"], "a foo b", False, id="contains-value-list-none"),
]


@pytest.mark.parametrize(("field", "value", "event_value", "expected"), STRING_OPS)
def test_string_operators(matches, field, value, event_value, expected):
    assert matches({field: value}, {"F": event_value}) is expected


ALL = [
    pytest.param("F|contains|all", ["foo", "bar"], "xx foo yy BAR", True, id="contains-all-both"),
    pytest.param("F|contains|all", ["foo", "bar"], "xx foo yy", False, id="contains-all-one-missing"),
    pytest.param("F|all|contains", ["foo", "bar"], "bar foo", True, id="all-before-contains"),
    pytest.param("F|all", ["a*", "*b"], "ab", True, id="all-equality-wildcards"),
    pytest.param("F|all", ["a*", "*b"], "ax", False, id="all-equality-wildcards-miss"),
]


@pytest.mark.parametrize(("field", "value", "event_value", "expected"), ALL)
def test_all_modifier(matches, field, value, event_value, expected):
    assert matches({field: value}, {"F": event_value}) is expected


RE = [
    pytest.param("F|re", "foo.*bar", "xxfooZbarxx", True, id="re-unanchored-search"),
    pytest.param("F|re", "foo.*bar", "FOOZBAR", False, id="re-case-sensitive"),
    pytest.param("F|re|i", "foo.*bar", "xxFOOZBARxx", True, id="re-i-case-insensitive"),
    pytest.param("F|re", "^abc$", "abc", True, id="re-anchors"),
    pytest.param("F|re", "^abc$", "xabc", False, id="re-anchors-miss"),
    pytest.param("F|re", "^bar$", "foo\nbar\nbaz", False, id="re-without-m"),
    pytest.param("F|re|m", "^bar$", "foo\nbar\nbaz", True, id="re-m-multiline"),
    pytest.param("F|re", "foo.bar", "foo\nbar", False, id="re-without-s"),
    pytest.param("F|re|s", "foo.bar", "foo\nbar", True, id="re-s-dotall"),
    pytest.param("F|re", r"a\d+z", "xa123z", True, id="re-raw-escape-class"),
    pytest.param("F|re", r"C:\\Windows", "C:\\Windows\\x", True, id="re-raw-backslash"),
    pytest.param("F|re", "ab*c", "ac", True, id="re-star-is-quantifier"),
    pytest.param("F|re", "^a?c$", "abc", False, id="re-question-is-quantifier"),
    pytest.param("F|re", "^a?c$", "c", True, id="re-question-optional"),
    pytest.param("F|re", "(?:evil|bad)[0-9]{2}", "a bad42 b", True, id="re-group-alternation"),
    pytest.param("F|re", ["^x", "y$"], "aay", True, id="re-value-list-or"),
    # RE2 cannot run these: the backtracking fallback must give the same answers
    pytest.param("F|re", r"cmd(?!\.exe)", "cmd.com", True, id="re-negative-lookahead"),
    pytest.param("F|re", r"cmd(?!\.exe)", "cmd.exe", False, id="re-negative-lookahead-miss"),
    pytest.param("F|re", r"(?<=\\)evil", "C:\\evil", True, id="re-lookbehind"),
    pytest.param("F|re", r"(?<=\\)evil", "C:/evil", False, id="re-lookbehind-miss"),
    pytest.param("F|re", r"(\w)\1{3}", "xAAAAy", True, id="re-backreference"),
    pytest.param("F|re|i", r"(\w)\1{3}", "xAaaAy", True, id="re-backreference-i"),
    pytest.param("F|re", r"(\w)\1{3}", "xAAAby", False, id="re-backreference-miss"),
]


@pytest.mark.parametrize(("field", "value", "event_value", "expected"), RE)
def test_re(matches, field, value, event_value, expected):
    assert matches({field: value}, {"F": event_value}) is expected


WINDASH = [
    pytest.param("F|windash|contains", "-foo", "cmd -foo", True, id="dash-as-dash"),
    pytest.param("F|windash|contains", "-foo", "cmd /foo", True, id="dash-as-slash"),
    pytest.param("F|windash|contains", "-foo", "cmd \u2013foo", True, id="dash-as-en-dash"),
    pytest.param("F|windash|contains", "-foo", "cmd \u2014foo", True, id="dash-as-em-dash"),
    pytest.param("F|windash|contains", "-foo", "cmd \u2015foo", True, id="dash-as-horizontal-bar"),
    pytest.param("F|windash|contains", "-foo", "cmd foo", False, id="dash-required"),
    pytest.param("F|windash|contains", "-foo", "cmd +foo", False, id="plus-not-a-dash"),
    pytest.param("F|windash|contains", "/foo", "cmd -foo", True, id="slash-as-dash"),
    pytest.param("F|windash|contains", "/foo", "cmd \u2013foo", True, id="slash-as-en-dash"),
    pytest.param("F|windash|contains", "/foo", "cmd /foo", True, id="slash-as-slash"),
    pytest.param("F|windash|contains", " -param-name", "x /param-name", True, id="word-start-replaced"),
    pytest.param("F|windash|contains", " -param-name", "x /param/name", False, id="inner-dash-kept"),
    pytest.param(
        "F|windash|contains", " -param-name", "x -param\u2013name", False, id="inner-dash-not-en-dash"
    ),
    pytest.param("F|windash", "-Force", "/force", True, id="equality-windash"),
    pytest.param("F|windash", "-Force", "x /Force", False, id="equality-windash-anchored"),
    pytest.param("F|windash|endswith", " -s", "cmd.exe /s", True, id="endswith-windash"),
    pytest.param("F|contains|windash", ["-a ", "-b "], "x /b y", True, id="windash-value-list"),
]


@pytest.mark.parametrize(("field", "value", "event_value", "expected"), WINDASH)
def test_windash(matches, field, value, event_value, expected):
    assert matches({field: value}, {"F": event_value}) is expected


BASE64 = [
    pytest.param("F|base64", "foobar", "Zm9vYmFy", True, id="base64-exact"),
    pytest.param("F|base64", "foobar", "xZm9vYmFy", False, id="base64-exact-anchored"),
    pytest.param("F|base64", "foobar", "foobar", False, id="base64-not-plain"),
    pytest.param("F|base64|contains", "foobar", "cmd -e Zm9vYmFy yy", True, id="base64-contains"),
    pytest.param("F|base64|contains", "foobar", "cmd -e Zm9vYmE= yy", False, id="base64-contains-miss"),
    pytest.param("F|wide|base64", "Test", "VABlAHMAdAA=", True, id="wide-base64-spec-vector"),
    pytest.param("F|utf16le|base64", "Test", b64("Test".encode("utf-16-le")), True, id="utf16le-base64"),
    pytest.param("F|utf16be|base64", "Test", b64("Test".encode("utf-16-be")), True, id="utf16be-base64"),
    pytest.param(
        "F|utf16|base64", "Test", b64(b"\xff\xfe" + "Test".encode("utf-16-le")), True, id="utf16-bom"
    ),
    pytest.param("F|wide|base64", "Test", b64(b"Test"), False, id="wide-is-not-utf8"),
    pytest.param("F|utf16be|base64", "Test", "VABlAHMAdAA=", False, id="utf16be-is-not-le"),
]


@pytest.mark.parametrize(("field", "value", "event_value", "expected"), BASE64)
def test_base64_and_utf16(matches, field, value, event_value, expected):
    assert matches({field: value}, {"F": event_value}) is expected


@pytest.mark.parametrize("prefix", ["", "x", "xy", "xyz"])
@pytest.mark.parametrize("suffix", ["", "!", "!!"])
def test_base64offset_finds_value_at_any_offset(matches, prefix, suffix):
    encoded = b64(f"{prefix}foobar{suffix}".encode())
    assert matches({"F|base64offset|contains": "foobar"}, {"F": f"cmd {encoded} end"})


def test_base64offset_matches_the_pysigma_example(matches):
    assert b64(b"xfoobar!") == "eGZvb2JhciE="
    assert matches({"F|base64offset|contains": "foobar"}, {"F": "eGZvb2JhciE="})


@pytest.mark.parametrize(
    "event_value", ["foobar", b64(b"fooba"), b64(b"xfooba"), b64(b"xyfooba"), b64(b"xyfoXbar")]
)
def test_base64offset_does_not_match_other_data(matches, event_value):
    assert not matches({"F|base64offset|contains": "foobar"}, {"F": event_value})


@pytest.mark.parametrize("prefix", ["I", "IE", "IEX "])
def test_wide_base64offset_finds_utf16_text(matches, prefix):
    encoded = b64(f"{prefix}powershell -enc".encode("utf-16-le"))
    assert matches({"F|wide|base64offset|contains": "powershell"}, {"F": encoded})
    assert not matches({"F|base64offset|contains": "powershell"}, {"F": encoded})


CIDR = [
    pytest.param("10.0.0.0/8", "10.1.2.3", True, id="v4-inside"),
    pytest.param("10.0.0.0/8", "11.0.0.1", False, id="v4-outside"),
    pytest.param("10.0.0.0/8", "not-an-ip", False, id="v4-not-an-ip"),
    pytest.param("10.0.0.0/8", "10.1.2.3:80", False, id="v4-with-port"),
    pytest.param("10.0.0.0/8", "", False, id="v4-empty"),
    pytest.param("10.0.0.0/8", ["1.1.1.1", "10.0.0.1"], True, id="v4-event-list"),
    pytest.param("192.168.1.5/32", "192.168.1.5", True, id="v4-host"),
    pytest.param("192.168.1.5/32", "192.168.1.6", False, id="v4-host-other"),
    pytest.param(["10.0.0.0/8", "192.168.0.0/16"], "192.168.7.1", True, id="v4-value-list"),
    pytest.param("2001:db8::/32", "2001:db8::1", True, id="v6-inside"),
    pytest.param("2001:db8::/32", "2001:DB8:0:0::ff", True, id="v6-inside-uppercase"),
    pytest.param("2001:db8::/32", "2001:db9::1", False, id="v6-outside"),
    pytest.param("2001:db8::/32", "10.0.0.1", False, id="v6-net-v4-address"),
    pytest.param("10.0.0.0/8", "2001:db8::1", False, id="v4-net-v6-address"),
]


@pytest.mark.parametrize(("value", "event_value", "expected"), CIDR)
def test_cidr(matches, value, event_value, expected):
    assert matches({"F|cidr": value}, {"F": event_value}) is expected


def test_cidr_lists_agree_with_ipaddress_on_overlapping_and_adjacent_networks(matches):
    """Networks are merged into ranges and bisected: the answer must be `ip in network` for some one."""
    rng = random.Random(3)
    for _ in range(40):
        nets = []
        for _ in range(rng.randint(1, 12)):
            if rng.random() < 0.7:
                prefix = rng.randint(20, 32)
                addr = ipaddress.IPv4Address(rng.choice((10, 11)) << 24 | rng.getrandbits(12))
            else:
                prefix = rng.randint(112, 128)
                addr = ipaddress.IPv6Address(0x20010DB8 << 96 | rng.getrandbits(16))
            nets.append(ipaddress.ip_network(f"{addr}/{prefix}", strict=False))
        probes = [
            str(n.network_address + rng.randint(0, n.num_addresses + 2)) for n in nets for _ in range(3)
        ]
        probes += [str(n.network_address - 1) for n in nets if int(n.network_address) > 0]
        for probe in probes:
            ip = ipaddress.ip_address(probe)
            expected = any(ip.version == n.version and ip in n for n in nets)
            assert matches({"F|cidr": [str(n) for n in nets]}, {"F": probe}) is expected, (probe, nets)


NUMERIC = [
    pytest.param("gt", 5, 6, True, id="gt-int"),
    pytest.param("gt", 5, 5, False, id="gt-equal"),
    pytest.param("gt", 5, 5.5, True, id="gt-float-event"),
    pytest.param("gt", 5, "6", True, id="gt-numeric-string"),
    pytest.param("gt", 5, "5", False, id="gt-numeric-string-equal"),
    pytest.param("gt", 5, "abc", False, id="gt-non-numeric"),
    pytest.param("gt", 5, [1, 10], True, id="gt-event-list"),
    pytest.param("gt", 1.5, 2, True, id="gt-float-rule"),
    pytest.param("gt", 1.5, 1.5, False, id="gt-float-rule-equal"),
    pytest.param("gte", 5, 5, True, id="gte-equal"),
    pytest.param("gte", 5, "5.0", True, id="gte-float-string"),
    pytest.param("gte", 5, 4.9, False, id="gte-below"),
    pytest.param("lt", 5, 4, True, id="lt-int"),
    pytest.param("lt", 5, "-1", True, id="lt-negative-string"),
    pytest.param("lt", 5, 5, False, id="lt-equal"),
    pytest.param("lt", 5, "x", False, id="lt-non-numeric"),
    pytest.param("lte", 5, 5, True, id="lte-equal"),
    pytest.param("lte", 5, 6, False, id="lte-above"),
    pytest.param("lte", 5, None, False, id="lte-null"),
]


@pytest.mark.parametrize(("op", "value", "event_value", "expected"), NUMERIC)
def test_numeric_comparisons(matches, op, value, event_value, expected):
    assert matches({f"F|{op}": value}, {"F": event_value}) is expected


def test_numeric_comparison_on_missing_field_does_not_match(matches):
    assert not matches({"F|lt": 5}, {"G": 1})


# 2024-03-10T13:45:30Z is a Sunday in ISO week 10; its epoch is 1710078330.
TIME_PARTS = [
    pytest.param("hour", 13, "2024-03-10T13:45:30Z", True, id="hour-z"),
    pytest.param("hour", 13, "2024-03-10T13:45:30.123Z", True, id="hour-fraction"),
    pytest.param("hour", 13, "2024-03-10T13:45:30", True, id="hour-naive-is-utc"),
    pytest.param("hour", 13, "2024-03-10T13:45:30+02:00", False, id="hour-offset-local"),
    pytest.param("hour", 11, "2024-03-10T13:45:30+02:00", True, id="hour-offset-to-utc"),
    pytest.param("hour", 13, 1710078330, True, id="hour-epoch-seconds"),
    pytest.param("hour", 13, 1710078330000, True, id="hour-epoch-millis"),
    pytest.param("hour", 14, 1710078330, False, id="hour-epoch-other"),
    pytest.param("minute", 45, "2024-03-10T13:45:30Z", True, id="minute"),
    pytest.param("minute", 30, "2024-03-10T13:45:30Z", False, id="minute-not-second"),
    pytest.param("day", 10, "2024-03-10T13:45:30Z", True, id="day"),
    pytest.param("day", 9, "2024-03-10T01:00:00+02:00", True, id="day-utc-crosses-midnight"),
    pytest.param("day", 10, "2024-03-10T01:00:00+02:00", False, id="day-not-local"),
    pytest.param("month", 3, "2024-03-10T13:45:30Z", True, id="month"),
    pytest.param("month", 4, "2024-03-10T13:45:30Z", False, id="month-other"),
    pytest.param("year", 2024, "2024-03-10T13:45:30Z", True, id="year"),
    pytest.param("year", 2024, 1710078330000, True, id="year-epoch-millis"),
    pytest.param("week", 10, "2024-03-10T13:45:30Z", True, id="week-iso"),
    pytest.param("week", 53, "2021-01-03T12:00:00Z", True, id="week-iso-53-in-january"),
    pytest.param("week", 1, "2021-01-03T12:00:00Z", False, id="week-not-calendar-week"),
    pytest.param("year", 2021, "2021-01-03T12:00:00Z", True, id="year-is-calendar-year"),
    pytest.param("hour", 13, "not a date", False, id="not-a-date"),
    pytest.param("hour", 13, None, False, id="null"),
]


@pytest.mark.parametrize(("part", "value", "event_value", "expected"), TIME_PARTS)
def test_time_part_modifiers(matches, part, value, event_value, expected):
    assert matches({f"T|{part}": value}, {"T": event_value}) is expected


FIELDREF = [
    pytest.param("F|fieldref", {"F": "abc", "G": "ABC"}, True, id="equal-case-insensitive"),
    pytest.param("F|fieldref", {"F": "abc", "G": "abd"}, False, id="different"),
    pytest.param("F|fieldref", {"F": "abc"}, False, id="referenced-field-missing"),
    pytest.param("F|fieldref", {"G": "abc"}, False, id="own-field-missing"),
    pytest.param("F|fieldref", {"F": 5, "G": 5}, True, id="equal-numbers"),
    pytest.param("F|fieldref|cased", {"F": "abc", "G": "ABC"}, False, id="cased-differs"),
    pytest.param("F|fieldref|cased", {"F": "ABC", "G": "ABC"}, True, id="cased-equal"),
    pytest.param("F|fieldref|neq", {"F": "a", "G": "b"}, True, id="neq-different"),
    pytest.param("F|fieldref|neq", {"F": "a", "G": "A"}, False, id="neq-equal"),
]


@pytest.mark.parametrize(("field", "event", "expected"), FIELDREF)
def test_fieldref(matches, field, event, expected):
    assert matches({field: "G"}, event) is expected


def test_fieldref_reaches_nested_field(matches):
    assert matches({"F|fieldref": "a.b"}, {"F": "x", "a": {"b": "X"}})
    assert not matches({"F|fieldref": "a.b"}, {"F": "x", "a": {"b": "y"}})


NEQ = [
    pytest.param("a", {"F": "b"}, True, id="differs"),
    pytest.param("a", {"F": "a"}, False, id="equal"),
    pytest.param("a", {"F": "A"}, False, id="equal-other-case"),
    pytest.param("a", {}, False, id="missing-field"),
    pytest.param(["a", "b"], {"F": "a"}, False, id="list-equals-first"),
    pytest.param(["a", "b"], {"F": "b"}, False, id="list-equals-second"),
    pytest.param(["a", "b"], {"F": "c"}, True, id="list-differs-from-all"),
    pytest.param(5, {"F": 5}, False, id="numeric-equal"),
    pytest.param(5, {"F": "5"}, False, id="numeric-equal-string"),
    pytest.param(5, {"F": 6}, True, id="numeric-differs"),
    pytest.param("a", {"F": ["a", "b"]}, False, id="event-list-contains-value"),
]


@pytest.mark.parametrize(("value", "event", "expected"), NEQ)
def test_neq(matches, value, event, expected):
    assert matches({"F|neq": value}, event) is expected


def test_value_with_percent_but_no_expand_is_literal(matches):
    assert matches({"F": "%name%"}, {"F": "%NAME%"})
    assert not matches({"F": "%name%"}, {"F": "x", "name": "x"})


@pytest.mark.parametrize(
    "selection",
    [
        pytest.param({"F|expand": "%servers%"}, id="expand"),
        pytest.param({"F|contains|expand": "%known_cdcs%"}, id="contains-expand"),
    ],
)
def test_expand_without_pipeline_warns_and_matches_nothing(selection):
    """No pipeline gave the placeholder values: the rule loads, a warning names it, the value is empty."""
    from rsigma.engine import Engine

    ((key, value),) = selection.items()
    engine = Engine.from_yaml(
        "title: t\nlogsource: {product: windows}\ndetection:\n"
        f"  sel:\n    {key}: '{value}'\n  condition: sel\n"
    )
    assert len(engine.warnings) == 1
    assert value in engine.warnings[0]
    assert engine.evaluate({"F": value}) == []
    assert engine.evaluate({"F": "anything"}) == []


def test_unknown_modifier_is_a_load_error_naming_it(load_error):
    err = load_error({"F|bogusmod": "x"})
    assert "bogusmod" in str(err)


def test_unknown_modifier_after_valid_one_is_named(load_error):
    err = load_error({"F|contains|frobnicate": "x"})
    assert "frobnicate" in str(err)


ILLEGAL = [
    pytest.param({"|neq": "x"}, id="keyword-neq"),
    pytest.param({"F|contains|startswith": "x"}, id="contains-startswith"),
    pytest.param({"F|startswith|endswith": "x"}, id="startswith-endswith"),
    pytest.param({"F|re|contains": "x"}, id="re-contains"),
    pytest.param({"F|contains|re": "x"}, id="contains-re"),
    pytest.param({"F|base64|base64offset|contains": "x"}, id="base64-base64offset"),
    pytest.param({"F|cidr|contains": "10.0.0.0/8"}, id="cidr-contains"),
    pytest.param({"F|gt|contains": 5}, id="gt-contains"),
    pytest.param({"F|gt|lt": 5}, id="gt-lt"),
    pytest.param({"F|re|base64": "x"}, id="re-base64"),
    pytest.param({"F|re|windash": "x"}, id="re-windash"),
    pytest.param({"F|contains|exists": True}, id="contains-exists"),
    pytest.param({"F|i": "x"}, id="i-without-re"),
    pytest.param({"F|contains|i": "x"}, id="i-with-contains"),
    pytest.param({"F|m": "x"}, id="m-without-re"),
    pytest.param({"F|s": "x"}, id="s-without-re"),
    pytest.param({"F|contains|all": "x"}, id="all-scalar"),
    pytest.param({"F|contains|all": ["x"]}, id="all-single-item-list"),
    pytest.param({"F|gt": "abc"}, id="gt-non-numeric-value"),
    pytest.param({"F|lte": "ten"}, id="lte-non-numeric-value"),
    pytest.param({"F|cidr": "not-a-network"}, id="cidr-invalid"),
    pytest.param({"F|re": "(unclosed"}, id="re-invalid"),
]


@pytest.mark.parametrize("selection", ILLEGAL)
def test_illegal_modifier_use_is_a_load_error(load_error, selection):
    load_error(selection)
