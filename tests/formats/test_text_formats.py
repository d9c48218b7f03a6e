"""logfmt, CEF, plain and auto: the events each format makes of a line, and the lines it refuses."""

from __future__ import annotations

import random

import pytest

from rsigma.formats import CefError, input_format, line_parser, parse_cef, parse_logfmt
from rsigma.payloads import event_decoder


def test_logfmt_pairs_quotes_bare_keys_and_empty_values():
    line = 'ts=2024-01-15T10:30:00Z level=error msg="disk \\"full\\" on C:\\\\" retry=3 fatal empty= =junk'
    assert parse_logfmt(line) == {
        "ts": "2024-01-15T10:30:00Z",
        "level": "error",
        "msg": 'disk "full" on C:\\',
        "retry": "3",
        "fatal": "true",
        "empty": "",
    }


def test_logfmt_edge_cases():
    assert parse_logfmt('msg="unterminated quote') == {"msg": "unterminated quote"}
    assert parse_logfmt('msg="keeps \\n literally" expr=a=b') == {"msg": "keeps \\n literally", "expr": "a=b"}
    assert parse_logfmt("a=1 a=2\tb=ünï") == {"a": "1", "b": "ünï"}  # the first value of a key counts


def test_cef_header_and_extensions_with_escapes():
    line = (
        "<134>Feb 14 19:04:54 fw01 CEF:0|Palo\\|Alto|PAN-OS|10|THREAT|threat|7|"
        "msg=User signed in from 10.0.0.1 src=10.0.0.1 request=https://x?f\\=b path=C:\\\\W note=a\\nb"
    )
    assert parse_cef(line) == {
        "cef_version": "0",
        "deviceVendor": "Palo|Alto",
        "deviceProduct": "PAN-OS",
        "deviceVersion": "10",
        "signatureId": "THREAT",
        "name": "threat",
        "severity": "7",
        "msg": "User signed in from 10.0.0.1",
        "src": "10.0.0.1",
        "request": "https://x?f=b",
        "path": "C:\\W",
        "note": "a\nb",
    }


def test_cef_without_extensions():
    assert parse_cef("CEF:1|V|P|1.0|100|Name|5|")["name"] == "Name"


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("just a log line", "input does not contain a CEF header"),
        ("CEF:0|Vendor|Product", "CEF header requires 7 pipe-delimited fields"),
        ("CEF:x|V|P|1|1|N|1|", "CEF version is not a valid integer"),
    ],
)
def test_cef_refuses_lines_that_are_not_cef(line, reason):
    with pytest.raises(CefError, match=reason):
        parse_cef(line)
    assert line_parser(input_format("cef"))(line) == f"invalid CEF: {reason}"


@pytest.mark.parametrize(
    ("line", "event"),
    [
        ('{"EventID": 1}', {"EventID": 1}),
        ('  {"EventID": 1}', {"EventID": 1}),
        # unlike RSigma's auto (plain text), refused as --input-format json refuses them
        ("{not json", "invalid JSON: unexpected character, expected a string key: line 1 column 2 (char 1)"),
        (" [1, 2]", "expected a JSON object, got list"),
        (
            '\ufeff{"EventID": 1}',
            "invalid JSON: UTF-8 byte order mark (BOM) is not supported: line 1 column 1 (char 0)",
        ),
        ("<html> a page", {"_raw": "<html> a page"}),
        ("CRITICAL ERROR in module X", {"_raw": "CRITICAL ERROR in module X"}),
        ("level=error msg=x", {"_raw": "level=error msg=x"}),  # auto never picks logfmt, as RSigma
    ],
)
def test_auto_picks_json_syslog_or_plain_per_line(line, event):
    assert line_parser(input_format("auto"))(line) == event
    # the daemon and eval read auto's JSON lines as bytes, its other lines as text: alike
    assert event_decoder(input_format("auto"))(line.encode(), 1 << 20) == event


def test_auto_picks_syslog_and_honours_the_syslog_settings():
    parse = line_parser(input_format("auto", "-03:00", syslog_strip_bom=False))
    event = parse("<34>Oct 11 22:14:15 mymachine su: \ufeffhello")
    assert event["hostname"] == "mymachine"
    assert event["timestamp"].endswith("-10-11T22:14:15-03:00")
    assert event["_raw"] == "\ufeffhello"


def test_unknown_format_names_the_supported_ones():
    expected = "Unknown input format: 'xml'\nSupported formats: auto, json, syslog, plain, logfmt, cef"
    with pytest.raises(ValueError, match=expected):
        input_format("xml")


TRICKY = [
    "<34>1 2024-13-45T10:00:00Z host app - - - impossible date",
    "<34>Feb 30 10:00:00 host app: impossible day",
    "<999>1 - - - - - -",
    "<>",
    "<34>",
    "<34>1 2024-01-15T10:30:00Z h a - - [unterminated sd",
    "CEF:0|a|b|c|d|e|f|=x y= ==  k=v\\",
    "CEF:99999999999999999999|V|P|1|1|N|1|",
    'a="\\',
    "\\",
    "\ufeff",
]


@pytest.mark.parametrize("name", ["auto", "syslog", "plain", "logfmt", "cef"])
def test_no_line_makes_a_parser_raise(name):
    """A line decides only its own event: whatever it holds, the parser returns an event or a reason."""
    rng = random.Random(17)
    alphabet = '<>[]{}|=\\" :-0123456789TZabcCEF\ufeff\t'
    lines = TRICKY + ["".join(rng.choice(alphabet) for _ in range(rng.randint(1, 60))) for _ in range(3000)]
    parse = line_parser(input_format(name))
    for line in lines:
        assert isinstance(parse(line), dict | str), line
