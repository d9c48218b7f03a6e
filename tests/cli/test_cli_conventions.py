"""What users expect of any command line tool: `--version`, shell completion, log levels, JSON logs
for every message of the daemon, and the packaging files (LICENSE, CHANGELOG, one version)."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

import rsigma

ROOT = Path(__file__).resolve().parents[2]


def rsigma_cli(
    *args: str | Path, env: dict[str, str] | None = None, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "rsigma", *map(str, args)],
        input=stdin,
        capture_output=True,
        text=True,
        encoding="utf-8",
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        timeout=120,
    )


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
