"""--jq and --jsonpath: the events each picks out of a JSON document, the reasons a line is refused,
and the decoding path that applies them (only to JSON documents, compiled once per process)."""

from __future__ import annotations

import pickle

import orjson
import pytest

from rsigma.correlation.engine import CorrelationConfig
from rsigma.formats import input_format
from rsigma.formats.extract import Extraction, InvalidExpression, extractor
from rsigma.loading import load_evaluator
from rsigma.payloads import PayloadOptions, evaluate_payloads, event_decoder

BATCH = {"records": [{"n": 1}, {"n": 2, "user": "bob"}], "meta": {"n": 0}}

JQ = Extraction("jq", ".records[]")
JSONPATH = Extraction("jsonpath", "$.records[*]")


def extract(spec: Extraction, document: object) -> object:
    return extractor(spec)(document, orjson.dumps(document).decode())


@pytest.mark.parametrize("spec", [JQ, JSONPATH], ids=["jq", "jsonpath"])
def test_each_record_becomes_an_event(spec):
    assert extract(spec, BATCH) == [{"n": 1}, {"n": 2, "user": "bob"}]
    assert extract(spec, {"records": []}) == []


def test_jsonpath_is_rfc_9535_with_its_filter_functions():
    """RSigma's serde_json_path is RFC 9535: its filter syntax and functions mean the same here."""
    found = extract(Extraction("jsonpath", "$.records[?@.n > 1 && length(@.user) == 3]"), BATCH)
    assert found == [{"n": 2, "user": "bob"}]


def test_jq_can_reshape_and_filter():
    spec = Extraction("jq", '.records[] | select(.user) | {who: .user, batch: "b1"}')
    assert extract(spec, BATCH) == [{"who": "bob", "batch": "b1"}]


@pytest.mark.parametrize(
    ("spec", "document", "reason"),
    [
        (Extraction("jq", ".records[].n"), BATCH, "--jq produced a number, expected objects"),
        (Extraction("jq", ".records"), BATCH, "--jq produced an array, expected objects"),
        (Extraction("jq", ".missing"), BATCH, "--jq produced null, expected objects"),
        (Extraction("jq", ".[]"), ["x", {"a": 1}], "--jq produced a string, expected objects"),
        (Extraction("jq", ".[]"), [True], "--jq produced a boolean, expected objects"),
        (Extraction("jq", ".records[]"), {"records": 5}, "--jq failed: Cannot iterate over number (5)"),
        (Extraction("jq", 'error("bad batch")'), BATCH, "--jq failed: bad batch"),
        (Extraction("jsonpath", "$.records[*].n"), BATCH, "--jsonpath produced a number, expected objects"),
        (Extraction("jsonpath", "$"), "x", "--jsonpath failed: the line is a string, not an object or array"),
    ],
)
def test_a_line_with_anything_but_objects_is_refused_whole(spec, document, reason):
    """One bad output refuses the line (the objects beside it too): all of it goes to the DLQ."""
    assert extract(spec, document) == reason


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (Extraction("jq", ".records["), "invalid --jq filter '.records[': jq: error: syntax error"),
        (Extraction("jq", "no(1)"), "invalid --jq filter 'no(1)': jq: error: no/1 is not defined"),
        (Extraction("jsonpath", "$.x["), "invalid --jsonpath query '$.x[': unexpected end of query"),
        (Extraction("jsonpath", "x[*]"), "invalid --jsonpath query 'x[*]': expected 'TOKEN_ROOT'"),
    ],
)
def test_an_expression_that_does_not_compile_names_the_flag_and_the_reason(spec, message):
    with pytest.raises(InvalidExpression) as raised:
        extractor(spec)
    assert str(raised.value).startswith(message), str(raised.value)


def test_compiled_once_per_process_and_sent_to_matchers_as_text():
    assert extractor(Extraction("jq", ".records[]")) is extractor(JQ)
    options = PayloadOptions(1 << 20, extraction=JQ)
    assert pickle.loads(pickle.dumps(options)) == options


def test_only_json_documents_are_extracted():
    """json: every line is a document; auto: the lines it reads as JSON (an array too), not the syslog
    or plain ones; the text formats: never."""
    line = orjson.dumps(BATCH)
    decode = event_decoder(input_format("json"), JQ)
    assert decode(line, 1 << 20) == [{"n": 1}, {"n": 2, "user": "bob"}]
    assert decode(b"[1]", 1 << 20) == '--jq failed: Cannot index array with string ("records")'
    assert decode(b"nope", 1 << 20).startswith("invalid JSON: ")
    assert decode(line, 10) == f"event of {len(line)} bytes exceeds --max-event-bytes 10"
    auto = event_decoder(input_format("auto"), Extraction("jq", ".[]"))
    assert auto(b'[{"a": 1}, {"b": 2}]', 1 << 20) == [{"a": 1}, {"b": 2}]
    assert auto(b"<13>Jan  1 00:00:00 host app: hi", 1 << 20)["appname"] == "app"
    assert auto(b"just text", 1 << 20) == {"_raw": "just text"}
    assert event_decoder(input_format("logfmt"), JQ)(b"a=1", 1 << 20) == {"a": "1"}


FAILED_LOGON = """
title: Failed logon
name: failed_logon
logsource: {product: test}
detection:
    selection: {EventID: 4625}
    condition: selection
---
title: Brute force
correlation:
    type: event_count
    rules: [failed_logon]
    generate: true
    group-by: [User]
    timespan: 1h
    condition: {gte: 3}
"""


@pytest.fixture
def evaluator(tmp_path):
    (tmp_path / "rules.yml").write_text(FAILED_LOGON)
    return load_evaluator([tmp_path / "rules.yml"], CorrelationConfig(), None, None)


def logons(*minutes: int) -> bytes:
    records = [{"EventID": 4625, "User": "bob", "@timestamp": f"2024-01-01T00:{m:02d}:00Z"} for m in minutes]
    return orjson.dumps({"records": records})


def test_a_lines_events_each_count_and_correlate_and_their_results_merge(evaluator):
    payloads = [logons(1, 2), b'{"records": 5}', logons(3)]
    answers, evaluated = evaluate_payloads(evaluator, payloads, PayloadOptions(1 << 20, extraction=JQ))
    assert evaluated == 3
    assert [position for position, _ in answers] == [0, 1, 2]
    assert answers[1][1] == "--jq failed: Cannot iterate over number (5)"
    titles = [[orjson.loads(line)["rule_title"] for line in answers[i][1][0]] for i in (0, 2)]
    assert titles == [["Failed logon", "Failed logon"], ["Failed logon", "Brute force"]]


def test_matchers_tag_each_extracted_events_hits_with_its_own_slot(evaluator):
    """A pool's correlation owners apply one window update per (correlation, position): two events
    of one line must not share one, or the second logon of a line would not count."""
    hits: list = []
    origins: list[int] = []
    options = PayloadOptions(1 << 20, extraction=JQ)
    evaluate_payloads(evaluator, [b"{}", logons(1, 2), logons(3)], options, hits=hits, origins=origins)
    assert [hit[4] for hit in hits] == [0, 1, 2]
    assert origins == [1, 1, 2]
    applied, _ = evaluator.correlation.apply(hits)
    assert [(r.rule.title, r.position) for r in applied] == [("Brute force", 2)]


def test_without_an_extraction_hits_carry_payload_positions(evaluator):
    hits: list = []
    origins: list[int] = []
    payloads = [orjson.dumps({"EventID": 4625, "User": "bob"})] * 2
    evaluate_payloads(evaluator, payloads, PayloadOptions(1 << 20), hits=hits, origins=origins)
    assert ([hit[4] for hit in hits], origins) == ([0, 1], [])


def test_with_auto_an_event_that_was_not_extracted_takes_a_slot_too(evaluator):
    """A syslog line under `auto` is one event, but its hits must be slotted like the extracted ones
    (the pool maps every hit of the batch through `origins`)."""
    syslog = b'<13>Jan  1 00:00:00 host app: {"EventID": 4625, "User": "bob"}'
    options = PayloadOptions(1 << 20, input_format=input_format("auto"), extraction=JQ)
    hits: list = []
    origins: list[int] = []
    evaluate_payloads(evaluator, [logons(1, 2), syslog], options, hits=hits, origins=origins)
    assert ([hit[4] for hit in hits], origins) == ([0, 1, 2], [0, 0, 1])
