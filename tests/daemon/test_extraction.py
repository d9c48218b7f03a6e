"""--jq/--jsonpath in the daemon, on both backends: a line's records are each evaluated (and counted,
and correlated: in a pool too) and their results merge into the line's outcome; a line the filter
fails on goes to the DLQ whole, while the lines around it pass; bad flags stop the start."""

from __future__ import annotations

import json

import pytest


def batch(*records: dict) -> bytes:
    return json.dumps({"records": list(records)}).encode() + b"\n"


@pytest.mark.parametrize(
    "flags", [("--jq", ".records[]"), ("--jsonpath", "$.records[*]")], ids=["jq", "jsonpath"]
)
def test_each_record_of_a_line_is_evaluated_counted_and_correlated(
    daemon, rules_file, ev, tmp_path, jsonl, flags
):
    dlq = tmp_path / "dlq.ndjson"
    d = daemon("-r", rules_file, *flags, "--dlq", f"file://{dlq}", "--include-event")
    broken = b'{"records": 5}\n' if flags[0] == "--jq" else b'{"records": [1]}\n'
    d.send(
        batch(ev.whoami(1), ev.quiet(2), ev.whoami(3))
        + broken
        # three failed logons of one user on one line: the brute-force correlation (>= 3) fires
        + batch(ev.failed("bob", 1), ev.failed("bob", 2), ev.failed("bob", 3))
        + batch()
    )
    d.wait_processed(6)  # the events of the lines, not the lines
    results = d.results()
    assert [r["rule_title"] for r in results] == ["Whoami", "Whoami", "Brute force"]
    assert [r["event"] for r in results[:2]] == [ev.whoami(1), ev.whoami(3)]
    assert results[2]["group_key"] == [["User", "bob"]]
    (entry,) = jsonl(dlq)
    assert entry["original_event"] == broken.decode().rstrip("\n")
    reason = (
        "--jq failed: Cannot iterate over number (5)"
        if flags[0] == "--jq"
        else "--jsonpath produced a number, expected objects"
    )
    assert entry["error"] == reason
    d.close_stdin()
    assert d.wait_exit() == 0, d.stderr()


@pytest.mark.single_backend
def test_an_invalid_filter_stops_the_start_with_a_critical_record(run_daemon, rules_file):
    done = run_daemon("-r", rules_file, "--jq", ".records[")
    assert done.returncode == 3, done.stderr
    last = json.loads(done.stderr.strip().splitlines()[-1])
    assert last["level"] == "critical" and last["exit_code"] == 3, last
    assert last["message"].startswith("invalid --jq filter '.records[': jq: error: syntax error"), last
    text = run_daemon("-r", rules_file, "--jsonpath", "$.records[", "--log-format", "text")
    assert text.returncode == 3, text.stderr
    assert "error: invalid --jsonpath query '$.records[': unexpected end of query" in text.stderr


@pytest.mark.single_backend
def test_both_flags_are_a_usage_error(run_daemon, rules_file):
    done = run_daemon("-r", rules_file, "--jq", ".", "--jsonpath", "$")
    assert done.returncode == 2, done.stderr
    assert "--jq and --jsonpath cannot be used together" in " ".join(done.stderr.split())
    assert "daemon started" not in done.stderr


@pytest.mark.single_backend
def test_the_filter_from_the_config_file(daemon, rules_file, ev, tmp_path):
    config = tmp_path / "rsigma.yaml"
    config.write_text("daemon:\n  input:\n    jsonpath: $.records[*]\n")
    d = daemon("-r", rules_file, "--config", config, stdin=batch(ev.whoami(1), ev.whoami(2)))
    assert d.wait_exit() == 0, d.stderr()
    assert [r["rule_title"] for r in d.results()] == ["Whoami", "Whoami"]
    # --jq on the command line wins over the file's --jsonpath, as a flag wins over any file key
    line = batch(ev.whoami(1), ev.whoami(2))
    flag = daemon("-r", rules_file, "--config", config, "--jq", ".records[0]", "--include-event", stdin=line)
    assert flag.wait_exit() == 0, flag.stderr()
    assert [r["event"]["seq"] for r in flag.results()] == [1]
