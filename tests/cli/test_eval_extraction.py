"""`engine eval --jq/--jsonpath` through the real CLI: a batch line's records each become an event, a
line the extraction cannot use is reported while the others pass, and the flags' usage errors."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.support.cli import WHOAMI, WHOAMI_EVENT, lines, rsigma, write

QUIET = {"Image": "C:\\x\\notepad.exe"}
# A CloudTrail-style batch: two matching records and a quiet one on one line.
BATCH = json.dumps({"Records": [WHOAMI_EVENT, QUIET, {**WHOAMI_EVENT, "CommandLine": "whoami /all"}]})


@pytest.fixture
def rules(tmp_path: Path) -> Path:
    return write(tmp_path / "whoami.yml", WHOAMI)


def summary(stderr: str) -> str:
    return stderr.strip().splitlines()[-1]


@pytest.mark.parametrize(
    "flags", [("--jq", ".Records[]"), ("--jsonpath", "$.Records[*]")], ids=["jq", "jsonpath"]
)
def test_each_record_of_a_batch_line_is_an_event(rules: Path, flags: tuple[str, str]) -> None:
    result = rsigma("engine", "eval", "-r", rules, *flags, "--include-event", stdin=BATCH + "\n")
    assert result.returncode == 0, result.stderr
    found = lines(result.stdout)
    assert [r["rule_title"] for r in found] == ["Whoami Execution"] * 2
    # --include-event carries the extracted record, not the batch line
    assert [r["event"] for r in found] == [WHOAMI_EVENT, {**WHOAMI_EVENT, "CommandLine": "whoami /all"}]
    assert summary(result.stderr).startswith("Processed 3 events, 2 detection matches,")


def test_a_line_the_filter_cannot_use_is_reported_and_the_others_pass(rules: Path, tmp_path: Path) -> None:
    events = tmp_path / "events.ndjson"
    events.write_text(
        "\n".join(
            [
                BATCH,
                json.dumps({"Records": 5}),  # a runtime error
                json.dumps({"Records": [WHOAMI_EVENT, "whoami"]}),  # a string beside an object
                json.dumps({"Records": []}),  # no events: nothing to report
                BATCH,
            ]
        )
        + "\n"
    )
    result = rsigma("engine", "eval", "-r", rules, "--events", events, "--jq", ".Records[]", "--strict")
    assert result.returncode == 1, result.stderr
    assert len(lines(result.stdout)) == 4
    assert "line 2: --jq failed: Cannot iterate over number (5)\n" in result.stderr
    assert "line 3: --jq produced a string, expected objects\n" in result.stderr
    assert summary(result.stderr).startswith(
        "Processed 6 events, 4 detection matches, 0 correlation matches, 2 bad"
    )


def test_the_flags_exclude_each_other(rules: Path) -> None:
    result = rsigma("engine", "eval", "-r", rules, "--jq", ".", "--jsonpath", "$", stdin="")
    assert result.returncode == 2, result.stderr
    said = " ".join(re.sub("[│╭╮╰╯─]", " ", result.stderr).split())  # typer draws a wrapped box
    assert "--jq and --jsonpath cannot be used together" in said
    both = {"RSIGMA_JQ": ".", "RSIGMA_JSONPATH": "$"}
    assert rsigma("engine", "eval", "-r", rules, stdin="", env=both).returncode == 2


def test_a_flag_on_the_command_line_wins_over_the_other_from_a_variable(rules: Path) -> None:
    env = {"RSIGMA_JQ": ".no_such_field"}  # would find nothing
    result = rsigma("engine", "eval", "-r", rules, "--jsonpath", "$.Records[0]", stdin=BATCH + "\n", env=env)
    assert result.returncode == 0, result.stderr
    assert len(lines(result.stdout)) == 1


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (
            ("--jq", ".Records["),
            "error: invalid --jq filter '.Records[': jq: error: syntax error, unexpected",
        ),
        (
            ("--jsonpath", "$.Records["),
            "error: invalid --jsonpath query '$.Records[': unexpected end of query",
        ),
    ],
    ids=["jq", "jsonpath"],
)
def test_an_invalid_expression_exits_3_with_the_librarys_reason(
    rules: Path, flags: tuple[str, str], message: str
) -> None:
    result = rsigma("engine", "eval", "-r", rules, *flags, stdin=BATCH + "\n")
    assert result.returncode == 3, result.stderr
    assert result.stderr.startswith(message), result.stderr
    assert result.stdout == ""


def test_the_flags_from_their_variables(rules: Path) -> None:
    result = rsigma(
        "engine", "eval", "-r", rules, stdin=BATCH + "\n", env={"RSIGMA_JSONPATH": "$.Records[0]"}
    )
    assert result.returncode == 0, result.stderr
    assert [r["matched_fields"][0]["value"] for r in lines(result.stdout)] == [WHOAMI_EVENT["Image"]]


def test_auto_extracts_only_the_lines_it_reads_as_json(rules: Path) -> None:
    """A syslog or plain line is one event, as it is without --jq; a JSON array line is a document."""
    stdin = "\n".join([json.dumps([WHOAMI_EVENT, WHOAMI_EVENT]), "<13>Jan  1 00:00:00 host app: hi", "text"])
    result = rsigma(
        "engine", "eval", "-r", rules, "--input-format", "auto", "--jq", ".[]", stdin=stdin + "\n"
    )
    assert result.returncode == 0, result.stderr
    assert len(lines(result.stdout)) == 2
    assert summary(result.stderr).startswith(
        "Processed 4 events, 2 detection matches, 0 correlation matches, 0 bad"
    )
