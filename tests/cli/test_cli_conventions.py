"""What users expect of any command line tool: `--version`, shell completion, log levels, JSON logs
for every message of the daemon, and the packaging files (LICENSE, CHANGELOG, one version)."""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import tomllib
from pathlib import Path

import pytest

import rsigma
from tests.support.cli import BROKEN, ROOT, WHOAMI, WHOAMI_EVENT, write
from tests.support.cli import rsigma as rsigma_cli


@pytest.mark.parametrize("flag", ["--version", "-V"])
def test_version_prints_the_package_version(flag: str) -> None:
    result = rsigma_cli(flag)
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"rsigma {rsigma.__version__}\n"


def test_the_version_is_written_once() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "version" not in project["project"]
    assert "version" in project["project"]["dynamic"]
    assert project["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "rsigma.__version__"}


def test_show_completion_prints_a_bash_script() -> None:
    # Typer's variable to take the shell from the command line instead of detecting the parent's.
    result = rsigma_cli(
        "--show-completion", "bash", env={"_TYPER_COMPLETE_TEST_DISABLE_SHELL_DETECTION": "1"}
    )
    assert result.returncode == 0, result.stderr
    assert "_RSIGMA_COMPLETE=complete_bash" in result.stdout
    assert "complete -o default -F _rsigma_completion rsigma" in result.stdout


def test_completion_completes_commands_and_options() -> None:
    """What the installed script asks the program when the user presses tab."""

    def complete(words: str) -> list[str]:
        cword = len(words.split()) - (0 if words.endswith(" ") else 1)
        env = {"_RSIGMA_COMPLETE": "complete_bash", "COMP_WORDS": words, "COMP_CWORD": str(cword)}
        result = rsigma_cli(env=env)
        assert result.returncode == 0, result.stderr
        return result.stdout.split()

    assert complete("rsigma engine da") == ["daemon"]
    assert "--log-format" in complete("rsigma serve --log-f")


EVENT = json.dumps(WHOAMI_EVENT) + "\n"
#: Why BROKEN cannot load, as the daemon and engine eval say it (after the file's path).
BROKEN_REASON = ":1 (rule 'Broken Rule'): detection.selection: 'CommandLine|bogusmod': unknown modifier"


def rule_dir(tmp_path: Path) -> Path:
    """A good rule and a broken one beside it: the daemon starts and warns that it skipped one."""
    write(tmp_path / "rules" / "whoami.yml", WHOAMI)
    write(tmp_path / "rules" / "broken.yml", BROKEN)
    return tmp_path / "rules"


def daemon(
    tmp_path: Path, *args: str | Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """`engine daemon` on one stdin event until EOF."""
    out = tmp_path / "detections.ndjson"
    flags = ["--api-addr", "127.0.0.1:0", "--reload-poll", "0", "--output", f"file://{out}"]
    return rsigma_cli("engine", "daemon", *flags, *args, env=env, stdin=EVENT)


def records(stderr: str) -> list[dict]:
    """The daemon's JSON log; a line that is not JSON fails the test."""
    return [json.loads(line) for line in stderr.splitlines()]


def test_output_format_is_accepted_with_rsigmas_warning(tmp_path: Path) -> None:
    """RSigma's global --output-format: its daemon warns and keeps the sinks' own formats."""
    result = daemon(tmp_path, "-r", rule_dir(tmp_path), "--output-format", "json")
    assert result.returncode == 0, result.stderr
    assert {
        "level": "warning",
        "message": "`--output-format json` is not supported by `engine daemon`; falling back to configured"
        " sink wire format.",
    }.items() <= records(result.stderr)[0].items()
    (detection,) = map(json.loads, (tmp_path / "detections.ndjson").read_text().splitlines())
    assert detection["rule_title"] == "Whoami Execution"


def test_the_daemon_logs_info_by_default(tmp_path: Path) -> None:
    result = daemon(tmp_path, "-r", rule_dir(tmp_path))
    assert result.returncode == 0, result.stderr
    assert {r["level"] for r in records(result.stderr)} == {"info", "warning"}


@pytest.mark.parametrize(
    ("flags", "env"),
    [(["--log-level", "warning"], None), ([], {"RSIGMA_LOG": "WARN"})],
    ids=["flag", "env"],
)
def test_log_level_leaves_out_less_severe_messages(
    tmp_path: Path, flags: list[str], env: dict[str, str] | None
) -> None:
    result = daemon(tmp_path, "-r", rule_dir(tmp_path), *flags, env=env)
    assert result.returncode == 0, result.stderr
    logged = records(result.stderr)
    assert [r["level"] for r in logged] == ["warning"], logged
    assert "broken.yml" in logged[0]["message"]


def test_the_flag_wins_over_rsigma_log(tmp_path: Path) -> None:
    result = daemon(tmp_path, "-r", rule_dir(tmp_path), "--log-level", "error", env={"RSIGMA_LOG": "debug"})
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""


def test_the_matchers_log_at_the_same_level(tmp_path: Path) -> None:
    """Each matcher compiles the rules again and warns about the skipped file like the supervisor."""
    warned = daemon(tmp_path, "-r", rule_dir(tmp_path), "--workers", "1", "--log-level", "warning")
    assert warned.returncode == 0, warned.stderr
    assert sum("broken.yml" in r["message"] for r in records(warned.stderr)) == 2, warned.stderr
    quiet = daemon(tmp_path, "-r", tmp_path / "rules", "--workers", "1", "--log-level", "error")
    assert quiet.returncode == 0, quiet.stderr
    assert quiet.stderr == ""


@pytest.mark.parametrize(
    ("flags", "env"), [(["--log-level", "loud"], None), ([], {"RSIGMA_LOG": "loud"})], ids=["flag", "env"]
)
def test_an_unknown_log_level_is_a_usage_error(
    tmp_path: Path, flags: list[str], env: dict[str, str] | None
) -> None:
    result = daemon(tmp_path, "-r", rule_dir(tmp_path), *flags, env=env)
    assert result.returncode == 2, result.stderr
    said = " ".join(re.sub("[│╭╮╰╯─]", " ", result.stderr).split())  # typer draws a wrapped box
    assert "'--log-level' (env var: 'RSIGMA_LOG'): 'loud': expected debug, info, warning or error" in said
    assert "daemon started" not in result.stderr


STARTUP_ERRORS = {
    # name: (flags after -r RULES, exit code, what the message says)
    "rules": (["-r", "{tmp}/rules/broken.yml"], 2, "{tmp}/rules/broken.yml" + BROKEN_REASON),
    "api-addr": (["-r", "{tmp}/rules", "--api-addr", "bogus"], 3, "--api-addr 'bogus': expected IP:port"),
    "api-token-env": (
        ["-r", "{tmp}/rules", "--api-token-env", "RSIGMA_TEST_UNSET_TOKEN"],
        3,
        "--api-token-env RSIGMA_TEST_UNSET_TOKEN: the variable is unset or empty",
    ),
    "input-format": (["-r", "{tmp}/rules", "--input-format", "xml"], 3, "Unknown input format: 'xml'"),
    "pipeline": (
        ["-r", "{tmp}/rules", "-p", "{tmp}/missing.yml"],
        3,
        "loading pipeline: {tmp}/missing.yml: no pipeline file or builtin pipeline",
    ),
}


@pytest.mark.parametrize("case", STARTUP_ERRORS)
def test_a_startup_error_is_a_json_record(tmp_path: Path, case: str) -> None:
    flags, code, reason = STARTUP_ERRORS[case]
    reason = reason.format(tmp=tmp_path)
    rule_dir(tmp_path)
    result = daemon(tmp_path, *(f.format(tmp=tmp_path) for f in flags))
    assert result.returncode == code, result.stderr
    *before, last = records(result.stderr)
    assert last["level"] == "critical" and last["exit_code"] == code, last
    assert reason in last["message"], last
    assert not last["message"].startswith("error:")
    assert all(r["level"] != "critical" for r in before)


@pytest.mark.parametrize("case", STARTUP_ERRORS)
def test_a_startup_error_in_text_logs_reads_error(tmp_path: Path, case: str) -> None:
    flags, code, reason = STARTUP_ERRORS[case]
    reason = reason.format(tmp=tmp_path)
    rule_dir(tmp_path)
    result = daemon(tmp_path, *(f.format(tmp=tmp_path) for f in flags), "--log-format", "text")
    assert result.returncode == code, result.stderr
    assert f"\nerror: {reason}" in f"\n{result.stderr}", result.stderr


def test_warnings_in_json_logs_carry_the_level_not_a_prefix(tmp_path: Path) -> None:
    rules = rule_dir(tmp_path)
    result = daemon(tmp_path, "-r", rules)
    (skipped,) = [r for r in records(result.stderr) if "broken.yml" in r["message"]]
    assert skipped["level"] == "warning"
    assert skipped["message"].startswith(f"skipped {rules / 'broken.yml'}{BROKEN_REASON}"), skipped


def test_engine_eval_on_a_terminal_keeps_the_warning_prefix(tmp_path: Path) -> None:
    rules = rule_dir(tmp_path)
    result = rsigma_cli("engine", "eval", "-r", rules, stdin=EVENT)
    assert result.returncode == 0, result.stderr
    assert f"warning: skipped {rules / 'broken.yml'}{BROKEN_REASON}" in result.stderr
    broken = rsigma_cli("engine", "eval", "-r", rules / "broken.yml", stdin=EVENT)
    assert broken.returncode == 2
    assert broken.stderr.startswith(f"error: {rules / 'broken.yml'}{BROKEN_REASON}"), broken.stderr


#: md5 of https://www.apache.org/licenses/LICENSE-2.0.txt, the text the license expression names.
APACHE_2_0_MD5 = "3b83ef96387f14655fc854ddc3c6bd57"


def test_packaging_ships_the_license_it_names() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["license"] == "Apache-2.0"
    assert project["license-files"] == ["LICENSE"]
    assert hashlib.md5((ROOT / "LICENSE").read_bytes()).hexdigest() == APACHE_2_0_MD5
    # PEP 639: a license expression and a License classifier together are refused by setuptools.
    assert not [c for c in project["classifiers"] if c.startswith("License ::")]
    assert {"Homepage", "Source", "Issues", "Changelog"} <= set(project["urls"])


def test_the_changelog_has_an_unreleased_section() -> None:
    text = (ROOT / "CHANGELOG.md").read_text()
    unreleased = text.split("## [Unreleased]", 1)[1].split("\n## ", 1)[0]
    assert [line for line in unreleased.splitlines() if line.startswith("### ")] == [
        "### Added",
        "### Changed",
        "### Fixed",
    ]
