"""The rule cache through `engine eval`: a second run loads from it and says so, anything the rule set
depends on changing misses it, a damaged or untrustworthy entry or directory is reported and not used,
and results, errors and warnings are the same with it, without it, and from it."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.cli import ROOT, WHOAMI, WHOAMI_EVENT, write
from tests.support.cli import rsigma as rsigma_cli

PLACEHOLDER = """
title: Admin Logon
id: 66666666-2222-4333-8444-555555555555
logsource:
    product: windows
detection:
    selection:
        User|expand: '%admins%'
    condition: selection
"""

BAD_REGEX = """
title: Bad Regex
logsource:
    product: windows
detection:
    selection:
        CommandLine|re: '(unclosed'
    condition: selection
"""

BAD_YAML = "title: [unclosed\n"

PIPELINE = """
name: rename
priority: 10
transformations:
    - type: field_name_mapping
      mapping:
          Image: NewProcessName
"""

LOADED = re.compile(r"^loaded \d+ rules .* in \d+\.\d\d s(; (?P<cache>.*))?$", re.MULTILINE)


@pytest.fixture
def rules(tmp_path: Path) -> Path:
    """A rule tree with a good rule, a rule with an unresolved placeholder, a rule whose regex does not
    compile and a file that is not YAML: every kind of load error and warning."""
    d = tmp_path / "rules"
    write(d / "whoami.yml", WHOAMI)
    write(d / "placeholder.yml", PLACEHOLDER)
    write(d / "bad_regex.yml", BAD_REGEX)
    write(d / "bad_yaml.yml", BAD_YAML)
    return d


def run_eval(rules: Path, *args: str | Path, event: dict | None = None) -> subprocess.CompletedProcess[str]:
    done = rsigma_cli("engine", "eval", "-r", rules, "-e", json.dumps(event or WHOAMI_EVENT), *args)
    assert done.returncode == 0, done.stderr
    return done


def cache_status(done: subprocess.CompletedProcess[str]) -> str:
    """What the `loaded ...` line says of the cache: `rule cache hit <entry>`, `rule cache miss,
    stored <entry>`, or '' (no cache used)."""
    match = LOADED.search(done.stderr)
    assert match, done.stderr
    return match["cache"] or ""


def other_lines(done: subprocess.CompletedProcess[str]) -> list[str]:
    """stderr without the `loaded` line (its time differs from run to run) and the summary line."""
    return [
        line
        for line in done.stderr.splitlines()
        if not LOADED.fullmatch(line) and not line.startswith("Processed ")
    ]


def entries(cache: Path) -> list[Path]:
    return sorted(cache.glob("*.rules"))


def test_a_second_run_loads_from_the_cache_with_the_same_results_errors_and_warnings(
    rules: Path, tmp_path: Path
) -> None:
    cache = tmp_path / "cache"
    without = run_eval(rules, "--no-rule-cache")
    assert cache_status(without) == ""
    first = run_eval(rules, "--rule-cache", cache)
    [entry] = entries(cache)
    assert cache_status(first) == f"rule cache miss, stored {entry}"
    second = run_eval(rules, "--rule-cache", cache)
    assert cache_status(second) == f"rule cache hit {entry}"
    assert first.stdout == second.stdout == without.stdout
    assert json.loads(second.stdout)["rule_title"] == "Whoami Execution"
    warnings = other_lines(without)
    assert other_lines(first) == other_lines(second) == warnings
    assert any("bad_yaml.yml" in w and "invalid YAML" in w for w in warnings), warnings
    assert any("bad_regex.yml" in w for w in warnings), warnings
    assert any("%admins% has no value" in w for w in warnings), warnings
    assert (cache.stat().st_mode & 0o777) == 0o700


def test_the_variable_names_the_directory_and_the_default_is_the_xdg_cache(
    rules: Path, tmp_path: Path
) -> None:
    by_variable = rsigma_cli(
        "engine",
        "eval",
        "-r",
        rules,
        "-e",
        json.dumps(WHOAMI_EVENT),
        env={"RSIGMA_RULE_CACHE": str(tmp_path / "c")},
    )
    assert cache_status(by_variable).startswith(f"rule cache miss, stored {tmp_path / 'c'}/")
    xdg = tmp_path / "xdg"
    by_default = rsigma_cli(
        "engine", "eval", "-r", rules, "-e", json.dumps(WHOAMI_EVENT), env={"XDG_CACHE_HOME": str(xdg)}
    )
    assert cache_status(by_default).startswith(f"rule cache miss, stored {xdg / 'rsigma' / 'rules'}/")
    off = rsigma_cli(
        "engine",
        "eval",
        "-r",
        rules,
        "-e",
        json.dumps(WHOAMI_EVENT),
        env={"XDG_CACHE_HOME": str(xdg), "RSIGMA_NO_RULE_CACHE": "true"},
    )
    assert cache_status(off) == ""
    assert len(entries(xdg / "rsigma" / "rules")) == 1


def test_a_changed_rule_file_or_pipeline_misses_the_cache(rules: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    pipeline = write(tmp_path / "rename.yml", PIPELINE)
    event = {"NewProcessName": WHOAMI_EVENT["Image"]}
    assert cache_status(run_eval(rules, "--rule-cache", cache)).startswith("rule cache miss")
    assert cache_status(run_eval(rules, "--rule-cache", cache)).startswith("rule cache hit")

    write(rules / "whoami.yml", WHOAMI.replace("whoami.exe", "who.exe"))
    changed = run_eval(rules, "--rule-cache", cache)
    assert cache_status(changed).startswith("rule cache miss")
    assert changed.stdout == ""  # the edited rule, not the cached one

    write(rules / "whoami.yml", WHOAMI)
    assert cache_status(run_eval(rules, "--rule-cache", cache)).startswith("rule cache hit")
    piped = run_eval(rules, "--rule-cache", cache, "-p", pipeline, event=event)
    assert cache_status(piped).startswith("rule cache miss")
    assert json.loads(piped.stdout)["rule_title"] == "Whoami Execution"
    write(pipeline, PIPELINE.replace("NewProcessName", "ImagePath"))
    repiped = run_eval(rules, "--rule-cache", cache, "-p", pipeline, event=event)
    assert cache_status(repiped).startswith("rule cache miss")
    assert repiped.stdout == ""
    assert len(entries(cache)) == 4


def test_another_rsigma_version_misses_the_cache(rules: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    assert cache_status(run_eval(rules, "--rule-cache", cache)).startswith("rule cache miss")
    as_other_version = (
        "import sys, rsigma; rsigma.__version__ = '99.0.0'; from rsigma.cli.app import main; main()"
    )
    args = ["engine", "eval", "-r", str(rules), "-e", json.dumps(WHOAMI_EVENT), "--rule-cache", str(cache)]
    done = subprocess.run(
        [sys.executable, "-c", as_other_version, *args], capture_output=True, text=True, cwd=ROOT, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert cache_status(done).startswith("rule cache miss")
    assert len(entries(cache)) == 2


@pytest.mark.parametrize(
    ("damage", "why"),
    [
        (lambda data: data[: len(data) // 2], "is truncated"),
        (lambda data: data[:-10] + bytes(10), "is damaged (checksum mismatch)"),
        (lambda data: b"#!/bin/sh\n" + data, "is not an rsigma rule cache entry"),
        (lambda data: b"", "is truncated (0 bytes, shorter than its header)"),
    ],
    ids=["truncated", "corrupted", "foreign", "empty"],
)
def test_a_damaged_entry_is_reported_and_rebuilt(rules: Path, tmp_path: Path, damage, why: str) -> None:
    cache = tmp_path / "cache"
    good = run_eval(rules, "--rule-cache", cache)
    [entry] = entries(cache)
    entry.write_bytes(damage(entry.read_bytes()))
    rebuilt = run_eval(rules, "--rule-cache", cache)
    assert f"warning: rule cache entry {entry} {why}" in rebuilt.stderr
    assert cache_status(rebuilt) == f"rule cache miss, stored {entry}"
    assert rebuilt.stdout == good.stdout
    assert cache_status(run_eval(rules, "--rule-cache", cache)) == f"rule cache hit {entry}"


def test_a_group_writable_directory_or_entry_is_not_trusted(rules: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    good = run_eval(rules, "--rule-cache", cache)
    [entry] = entries(cache)
    entry.chmod(0o660)
    refused = run_eval(rules, "--rule-cache", cache)
    assert f"warning: rule cache entry {entry} is group- or world-writable (mode 660)" in refused.stderr
    assert cache_status(refused) == f"rule cache miss, stored {entry}"
    assert (entry.stat().st_mode & 0o777) == 0o600  # rebuilt as a private file

    cache.chmod(0o770)
    unused = run_eval(rules, "--rule-cache", cache)
    assert f"warning: rule cache {cache}: is group- or world-writable (mode 770)" in unused.stderr
    assert "loading without it" in unused.stderr
    assert cache_status(unused) == ""
    assert unused.stdout == good.stdout
