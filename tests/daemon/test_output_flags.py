"""Output-side flags as RSigma has them: `?format=ocsf` on outputs, `--pretty`, `--sink-batch-max`,
`--sink-batch-flush-ms`, the `--batch-size` default, `--no-detections` and `--match-detail`."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from tests.support.ocsf import detection_finding_problems

RULE_ID = "11111111-1111-4111-8111-111111111111"  # Whoami (level high) in tests/daemon/conftest.py


def brute_force_events(ev) -> list[dict]:
    return [ev.failed("alice", minute) for minute in range(3)]


def test_ocsf_outputs_write_detection_findings_and_other_sinks_stay_native(
    daemon, rules_file, ev, tmp_path, jsonl
):
    ocsf_file, native = tmp_path / "ocsf.ndjson", tmp_path / "native.ndjson"
    d = daemon(
        "-r",
        rules_file,
        "--include-event",
        "--output",
        "stdout?format=ocsf",
        "--output",
        f"file://{ocsf_file}?format=ocsf",
        "--output",
        f"file://{native}?format=ndjson",
        stdin=ev.ndjson(ev.whoami(1), *brute_force_events(ev)),
    )
    assert d.wait_exit() == 0, d.stderr()
    findings = d.results()
    assert [f["finding_info"]["title"] for f in findings] == ["Whoami", "Brute force"]
    for finding in findings:
        assert detection_finding_problems(finding) == [], finding
    detection, correlation = findings
    assert (detection["class_uid"], detection["type_uid"], detection["severity_id"]) == (2004, 200401, 4)
    assert detection["finding_info"]["analytic"]["uid"] == RULE_ID
    assert detection["evidences"] == [
        {"data": {"event": ev.whoami(1), "matched_fields": {"CommandLine": "cmd /c whoami #1"}}}
    ]
    assert correlation["severity_id"] == 5  # critical
    assert correlation["unmapped"]["correlation_type"] == "event_count"
    assert correlation["unmapped"]["group_key"] == [["User", "alice"]]
    assert [f["finding_info"]["title"] for f in jsonl(ocsf_file)] == ["Whoami", "Brute force"]
    assert [r["rule_title"] for r in jsonl(native)] == ["Whoami", "Brute force"]
    assert jsonl(native)[0]["event"] == ev.whoami(1)


def test_pretty_indents_stdout_results_only(daemon, rules_file, ev, tmp_path, jsonl):
    out = tmp_path / "out.ndjson"
    d = daemon(
        "-r",
        rules_file,
        "--pretty",
        "--output",
        "stdout://",
        "--output",
        f"file://{out}",
        stdin=ev.ndjson(ev.whoami(1), ev.whoami(2)),
    )
    assert d.wait_exit() == 0, d.stderr()
    text = d.stdout()
    decoder, position, pretty = json.JSONDecoder(), 0, []
    while text[position:].strip():
        position += len(text[position:]) - len(text[position:].lstrip())
        result, position = decoder.raw_decode(text, position)
        pretty.append(result)
    assert pretty == jsonl(out)
    assert len(pretty) == 2
    assert text.startswith('{\n  "rule_title": "Whoami",\n')
    assert len(out.read_text().splitlines()) == 2  # the file stays one compact line per result


@pytest.mark.single_backend
@pytest.mark.parametrize(
    ("flag", "url", "error"),
    [
        ("--dlq", "stdout?format=ocsf", "format= is only supported on findings sinks"),
        ("--dlq", "stdout?format=ndjson", "format= is only supported on findings sinks"),
        ("--output", "stdout?format=cef", "unknown sink format 'cef' (supported: ndjson, ocsf)"),
        ("--output", "stdout?format=", "unknown sink format '' (supported: ndjson, ocsf)"),
        ("--output", "stdout?format=ocsf&format=ocsf", "format= may be specified only once"),
        ("--output", "stdout?on_full=drop", "unknown query parameter 'on_full' (supported: format)"),
    ],
)
def test_bad_sink_format_is_a_startup_error(run_daemon, rules_file, flag, url, error):
    done = run_daemon("-r", rules_file, flag, url)
    assert done.returncode == 3, done.stderr
    assert error in done.stderr
    assert flag in done.stderr


def with_failing_file_output(daemon, rules_file, tmp_path, *flags):
    """A daemon on HTTP input whose file output fails every write once started (a directory takes
    the file's place), with one retry and a DLQ: each batch it takes counts one retry."""
    bad = tmp_path / "bad"
    bad.mkdir()
    output = ("--output", f"file://{bad}/out", "--dlq", f"file://{tmp_path}/dlq.ndjson")
    d = daemon("-r", rules_file, "--input", "http", *output, "--sink-retry-max", "1", *flags)
    (bad / "out").unlink()
    (bad / "out").mkdir()
    return d


@pytest.mark.parametrize(("batch_max", "writes"), [("1", 5), ("2", 3)])
def test_sink_batch_max_bounds_the_events_a_sink_writes_at_once(
    daemon, rules_file, ev, tmp_path, batch_max, writes
):
    """With everything queued at once, 5 events are 5 batches of 1 or 3 batches of at most 2."""
    flags = ("--sink-backoff-base-ms", "200", "--sink-batch-max", batch_max)
    d = with_failing_file_output(daemon, rules_file, tmp_path, *flags)
    d.post_events(*(ev.whoami(n) for n in range(5)))
    d.wait_metric("rsigma_sink_delivery_failures_total", 5, sink="file")
    assert d.metric("rsigma_sink_retries_total", sink="file") == writes


def test_sink_batch_flush_ms_waits_for_a_fuller_batch(daemon, rules_file, ev, tmp_path):
    """Five events posted 0.1 s apart, within one 3 s flush window: one batch, so one retry (without
    the wait the first event would be written, and retried, alone)."""
    d = with_failing_file_output(daemon, rules_file, tmp_path, "--sink-batch-flush-ms", "3000")
    for n in range(5):
        d.post_events(ev.whoami(n))
        time.sleep(0.1)
    d.wait_metric("rsigma_sink_delivery_failures_total", 5, sink="file")
    assert d.metric("rsigma_sink_retries_total", sink="file") == 1


def test_sink_batch_max_must_be_positive(run_daemon, rules_file):
    done = run_daemon("-r", rules_file, "--sink-batch-max", "0")
    assert done.returncode == 2
    assert "Invalid value for '--sink-batch-max'" in done.stderr


def test_a_burst_is_evaluated_in_batches_and_a_lone_event_is_not_held_back(
    daemon, rules_file, ev, wait_until
):
    """The default --batch-size (128) takes what is waiting: a burst goes in few steps, and a single
    event on a quiet input is evaluated at once, not after 127 more."""
    d = daemon("-r", rules_file, "--input", "http")
    d.post_events(*(ev.quiet(n) for n in range(300)))
    d.wait_processed(300)
    assert d.metric("rsigma_batch_size_sum") == 300
    assert d.metric("rsigma_batch_size_count") <= 150

    lone = daemon("-r", rules_file)
    started = time.monotonic()
    lone.send(ev.line(ev.whoami(1)))
    wait_until(lambda: lone.stdout_lines(), "the lone event's result", timeout=10)
    assert time.monotonic() - started < 10
    assert [r["rule_title"] for r in lone.results()] == ["Whoami"]


@pytest.mark.parametrize("flags", [(), ("--no-detections",)])
def test_no_detections_keeps_referenced_rules_silent_as_by_default(daemon, rules_file, ev, flags):
    """Failed logon is referenced by the Brute force correlation without `generate: true`: its own
    detections are not output, with RSigma's --no-detections or without it (the Sigma default)."""
    d = daemon("-r", rules_file, *flags, stdin=ev.ndjson(ev.whoami(1), *brute_force_events(ev)))
    assert d.wait_exit() == 0, d.stderr()
    assert [r["rule_title"] for r in d.results()] == ["Whoami", "Brute force"]


@pytest.mark.single_backend
@pytest.mark.parametrize("flags", [(), ("--no-detections",)])
def test_engine_eval_no_detections(rules_file, ev, flags):
    done = subprocess.run(
        [sys.executable, "-m", "rsigma", "engine", "eval", "-r", str(rules_file), *flags],
        input=ev.ndjson(ev.whoami(1), *brute_force_events(ev)),
        capture_output=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert [json.loads(line)["rule_title"] for line in done.stdout.splitlines()] == ["Whoami", "Brute force"]


def test_match_detail_reaches_the_evaluating_process(daemon, rules_file, ev):
    """--match-detail is an engine setting: with a pool, each matcher process compiles with it."""
    d = daemon("-r", rules_file, "--match-detail", "full", stdin=ev.ndjson(ev.whoami(1)))
    assert d.wait_exit() == 0, d.stderr()
    (detection,) = d.results()
    assert detection["matched_fields"] == [
        {
            "field": "CommandLine",
            "value": "cmd /c whoami #1",
            "selection": "selection",
            "matcher": "contains",
            "pattern": "whoami",
            "case_sensitive": False,
        }
    ]
