"""Syslog lines shaped as RSigma shapes them: header fields, `_raw`, structured data, embedded JSON."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from rsigma.formats import parse_syslog, parse_tz


def test_rfc3164_header_and_message():
    event = parse_syslog("<38>Apr 25 14:30:00 web01 sudo: admin : TTY=pts/0 ; COMMAND=/bin/bash")
    year = datetime.now(UTC).year
    assert event == {
        "timestamp": f"{year}-04-25T14:30:00+00:00",
        "hostname": "web01",
        "appname": "sudo",
        "facility": "LOG_AUTH",
        "severity": "SEV_INFO",
        "_raw": "admin : TTY=pts/0 ; COMMAND=/bin/bash",
    }


def test_rfc3164_procid_padded_day_and_zone():
    event = parse_syslog("<34>Oct  1 22:14:15 mymachine su[123]: 'su root' failed", tz=parse_tz("+05:30"))
    assert event["timestamp"].endswith("-10-01T22:14:15+05:30")
    assert (event["appname"], event["procid"], event["severity"]) == ("su", "123", "SEV_CRIT")
    assert event["_raw"] == "'su root' failed"


def test_rfc5424_every_header_field():
    line = "<165>1 2024-01-15T10:30:00.000Z web01 myapp 1234 ID47 - Connection established"
    assert parse_syslog(line) == {
        "timestamp": "2024-01-15T10:30:00+00:00",
        "hostname": "web01",
        "appname": "myapp",
        "procid": "1234",
        "msgid": "ID47",
        "facility": "LOG_LOCAL4",
        "severity": "SEV_NOTICE",
        "_raw": "Connection established",
    }


def test_rfc5424_nil_fields_are_absent_and_empty_message_has_no_raw():
    assert parse_syslog("<13>1 2024-01-15T10:30:00.5+02:00 host app - - -") == {
        "timestamp": "2024-01-15T10:30:00.500+02:00",
        "hostname": "host",
        "appname": "app",
        "facility": "LOG_USER",
        "severity": "SEV_NOTICE",
    }


def test_rfc5424_structured_data_with_escapes():
    line = (
        '<165>1 2024-01-15T10:30:00Z host app - ID1 [exampleSDID@32473 iut="3" eventSource="App"]'
        '[x@1 a="b\\"c\\]"] message'
    )
    event = parse_syslog(line)
    assert event["exampleSDID@32473.iut"] == "3"
    assert event["exampleSDID@32473.eventSource"] == "App"
    assert event["x@1.a"] == 'b"c]'
    assert event["_raw"] == "message"


def test_embedded_json_message_is_the_event_with_syslog_fields():
    line = (
        '<134>1 2024-01-15T10:30:00Z docker01 myapp 9876 MSGID1 [s@1 k="v"] '
        '\ufeff{"EventID": 1, "user": "admin", "syslog_hostname": "kept"}'
    )
    assert parse_syslog(line) == {
        "EventID": 1,
        "user": "admin",
        "syslog_hostname": "kept",
        "syslog_timestamp": "2024-01-15T10:30:00+00:00",
        "syslog_appname": "myapp",
        "syslog_procid": "9876",
        "syslog_msgid": "MSGID1",
        "syslog_facility": "LOG_LOCAL0",
        "syslog_severity": "SEV_INFO",
        "sd.s@1.k": "v",
    }


def test_bom_is_stripped_unless_disabled():
    line = "<34>1 2003-10-11T22:14:15.003Z mymachine.example.com su - ID47 - \ufeffan event"
    assert parse_syslog(line)["_raw"] == "an event"
    assert parse_syslog(line, strip_bom=False)["_raw"] == "\ufeffan event"


def test_a_line_that_is_not_syslog_is_only_its_message():
    assert parse_syslog("just some text") == {"_raw": "just some text"}


@pytest.mark.parametrize(
    ("value", "offset"),
    [("+00:00", 0), ("UTC", 0), ("utc", 0), ("Z", 0), ("-05:00", -5 * 3600), ("+05:30", 19800)],
)
def test_syslog_tz_values(value, offset):
    assert parse_tz(value) == timezone(timedelta(seconds=offset))


@pytest.mark.parametrize("value", ["5", "+5:00", "+24:00", "EST", "+05:60", ""])
def test_bad_syslog_tz_is_refused(value):
    with pytest.raises(ValueError, match="Invalid timezone offset"):
        parse_tz(value)
