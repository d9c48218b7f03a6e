"""Every SigmaHQ rule (rules, rules-emerging-threats, rules-threat-hunting) loads and compiles.

Rules using `|expand` with a `%placeholder%` that no pipeline resolves still load; the engine warns and
names the placeholder (docs/engine.md).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

pytestmark = pytest.mark.corpus

CORPUS_DIRS = ("rules", "rules-emerging-threats", "rules-threat-hunting")
PLACEHOLDER = re.compile(r"%[^%]+%")


def corpus_root(shared: Path) -> Path:
    root = shared / "corpus" / "sigmahq"
    if not root.is_dir():
        pytest.skip(f"SigmaHQ corpus not present at {root}")
    return root


def rule_files(directory: Path) -> list[Path]:
    return sorted(p for p in directory.rglob("*") if p.is_file() and p.suffix in (".yml", ".yaml"))


def is_rule(doc: Any) -> bool:
    return (
        isinstance(doc, dict)
        and "detection" in doc
        and "correlation" not in doc
        and "filter" not in doc
        and doc.get("action") not in ("global", "reset", "repeat")
    )


def count_documents(directory: Path) -> int:
    return sum(
        1
        for path in rule_files(directory)
        for doc in yaml.safe_load_all(path.read_text(encoding="utf-8"))
        if is_rule(doc)
    )


@pytest.mark.parametrize("subdir", CORPUS_DIRS)
def test_sigmahq_rules_load(shared, subdir):
    from rsigma.engine import Engine
    from rsigma.rules import load_rules

    directory = corpus_root(shared) / subdir
    if not directory.is_dir():
        pytest.skip(f"{directory} not present")
    expected_total = count_documents(directory)
    assert expected_total > 0

    rs = load_rules(directory)
    assert not rs.errors, "load errors:\n" + "\n".join(str(e) for e in rs.errors)
    engine = Engine(rs)
    assert not engine.errors, "compile errors:\n" + "\n".join(str(e) for e in engine.errors)
    assert len(engine.rules) == expected_total


def test_sigmahq_expand_placeholders_are_named_in_warnings(shared):
    from rsigma.engine import Engine
    from rsigma.rules import load_rules

    directory = corpus_root(shared)
    paths = sorted(p for p in rule_files(directory) if "|expand" in p.read_text(encoding="utf-8"))
    if not paths:
        pytest.skip("no expand rules in this corpus")
    for path in paths:
        engine = Engine(load_rules(path))
        assert len(engine.rules) == 1
        names = {m.lower() for m in PLACEHOLDER.findall(path.read_text(encoding="utf-8"))}
        assert engine.warnings
        assert all(any(n in w.lower() for w in engine.warnings) for n in names), engine.warnings


@pytest.mark.parametrize(
    ("command_line", "expected"),
    [("whoami /all", True), ("WHOAMI -ALL", True), ("whoami \u2013all", True), ("whoami all", False)],
)
def test_sigmahq_whoami_all_rule_end_to_end(shared, command_line, expected):
    """One real rule (endswith / list of maps / contains|windash / all of selection_main_*)."""
    from rsigma.engine import Engine
    from rsigma.rules import load_rules

    path = corpus_root(shared) / "rules/windows/process_creation/proc_creation_win_whoami_all_execution.yml"
    if not path.is_file():
        pytest.skip(f"{path} not present")
    title = yaml.safe_load(path.read_text(encoding="utf-8"))["title"]
    engine = Engine(load_rules(path))
    event = {"Image": "C:\\Windows\\System32\\whoami.exe", "CommandLine": command_line}
    assert [d.rule_title for d in engine.evaluate(event)] == ([title] if expected else [])
    renamed = {"Image": "C:\\Temp\\x.exe", "OriginalFileName": "whoami.exe", "CommandLine": command_line}
    assert [d.rule_title for d in engine.evaluate(renamed)] == ([title] if expected else [])


def test_every_sigmahq_file_reads_as_pyyaml_reads_it_and_most_take_the_fast_parser(shared):
    """The rule loader's YAML (rsigma/rules/yaml_documents.py) against PyYAML's safe loader itself,
    on every file of the corpus; and yaml-rs, the fast parser, reads nearly all of them (the load
    time in docs/benchmarks.md depends on it)."""
    from rsigma.rules.yaml_documents import _shortcut, iter_documents

    paths = rule_files(corpus_root(shared))
    fast = 0
    for path in paths:
        text = path.read_text(encoding="utf-8")
        expected = list(yaml.load_all(text, Loader=yaml.CSafeLoader))
        got = [doc for _, doc in iter_documents(text) if doc is not None]
        assert got == [doc for doc in expected if doc is not None], path
        fast += _shortcut(text) is not None
    assert fast >= 0.95 * len(paths), f"yaml-rs read {fast} of {len(paths)} files"
