"""Loading rules: multi-document YAML, invalid documents, load_rules on files and directories, metadata."""

from __future__ import annotations

import re
import textwrap
import warnings
from pathlib import Path
from typing import Any

import pytest
import yaml

from rsigma.engine import Engine
from rsigma.errors import SigmaError
from rsigma.loading import RuleLoadFailed, load_evaluator, refuse_dropped_rules
from rsigma.rules import load_rules
from rsigma.rules.yaml_documents import iter_documents


def rule_text(title: str, value: str, field: str = "F") -> str:
    return textwrap.dedent(
        f"""\
        title: {title}
        logsource:
            product: test
        detection:
            selection:
                {field}: '{value}'
            condition: selection
        """
    )


def load_quietly(path: Path) -> Any:
    """load_rules may also warn about skipped files; only the returned RuleSet is under test here."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return load_rules(path)


def test_multi_document_yaml_fires_in_load_order():
    text = "---\n".join([rule_text("Zeta", "x"), rule_text("Middle", "nope"), rule_text("Alpha", "X")])
    engine = Engine.from_yaml(text)
    assert [d.rule_title for d in engine.evaluate({"F": "x"})] == ["Zeta", "Alpha"]
    assert engine.evaluate({"F": "y"}) == []


def test_rules_on_different_fields_fire_together():
    text = rule_text("One", "a", field="A") + "---\n" + rule_text("Two", "b", field="B")
    assert [d.rule_title for d in Engine.from_yaml(text).evaluate({"A": "a", "B": "b"})] == ["One", "Two"]


INVALID = [
    pytest.param(
        "logsource: {product: test}\ndetection: {sel: {F: x}, condition: sel}\n", "title", id="missing-title"
    ),
    pytest.param("title: t\ndetection: {sel: {F: x}, condition: sel}\n", "logsource", id="missing-logsource"),
    pytest.param("title: t\nlogsource: {product: test}\n", "detection", id="missing-detection"),
    pytest.param(
        "title: t\nlogsource: {product: test}\ndetection: [a, b]\n", "detection", id="detection-list"
    ),
    pytest.param(
        "title: t\nlogsource: {product: test}\ndetection: {sel: {F: x}}\n", "condition", id="no-condition"
    ),
    pytest.param("- just\n- a list\n", None, id="document-not-a-mapping"),
    pytest.param("title: t\nlogsource: {product: test\n", None, id="yaml-syntax-error"),
    pytest.param(
        rule_text("Good", "x") + "---\n" + "title: bad\nlogsource: {product: test}\n",
        "detection",
        id="second-document-invalid",
    ),
]


@pytest.mark.parametrize(("text", "reason"), INVALID)
def test_invalid_rule_raises_sigma_error_naming_the_reason(text, reason):
    with pytest.raises(SigmaError) as info:
        Engine.from_yaml(text)
    if reason is not None:
        assert reason in str(info.value).lower()


@pytest.fixture
def rule_tree(tmp_path: Path) -> Path:
    root = tmp_path / "rules"
    (root / "sub" / "deeper").mkdir(parents=True)
    (root / "a.yml").write_text(rule_text("Rule A", "a"), encoding="utf-8")
    (root / "sub" / "b.yaml").write_text(rule_text("Rule B", "b"), encoding="utf-8")
    (root / "sub" / "deeper" / "c.yml").write_text(
        rule_text("Rule C1", "c") + "---\n" + rule_text("Rule C2", "c", field="G"), encoding="utf-8"
    )
    (root / "sub" / "broken.yml").write_text(rule_text("Broken", "x", field="F|bogusmod"), encoding="utf-8")
    (root / "notes.txt").write_text("title: not a rule\n", encoding="utf-8")
    (root / "README.md").write_text("# rules\n", encoding="utf-8")
    return root


def test_load_rules_directory_skips_broken_file_and_names_it(rule_tree):
    rs = load_quietly(rule_tree)
    assert sorted(r.title for r in rs.rules) == ["Rule A", "Rule B", "Rule C1", "Rule C2"]
    assert len(rs.rules) == 4
    assert len(rs.errors) == 1
    (err,) = rs.errors
    assert isinstance(err, SigmaError)
    assert Path(err.path).name == "broken.yml"
    assert "broken.yml" in str(err)
    assert "bogusmod" in str(err)


def test_engine_from_loaded_ruleset_evaluates_good_rules(rule_tree):
    engine = Engine(load_quietly(rule_tree))
    assert [d.rule_title for d in engine.evaluate({"F": "b"})] == ["Rule B"]
    assert sorted(d.rule_title for d in engine.evaluate({"F": "c", "G": "c"})) == ["Rule C1", "Rule C2"]
    assert engine.evaluate({"F": "x"}) == []


def test_load_rules_single_file(tmp_path):
    path = tmp_path / "one.yml"
    path.write_text(rule_text("Only", "x"), encoding="utf-8")
    for arg in (path, str(path)):
        rs = load_rules(arg)
        assert [r.title for r in rs.rules] == ["Only"]
        assert list(rs.errors) == []
        assert [d.rule_title for d in Engine(rs).evaluate({"F": "X"})] == ["Only"]


def test_yaml_syntax_error_reports_path_and_line(tmp_path):
    path = tmp_path / "syntax.yml"
    path.write_text(
        "title: Broken\nlogsource:\n    product: test: bad\n"
        "detection:\n    sel: {F: x}\n    condition: sel\n",
        encoding="utf-8",
    )
    rs = load_quietly(path)
    assert len(rs.rules) == 0
    assert len(rs.errors) == 1
    (err,) = rs.errors
    assert Path(err.path).name == "syntax.yml"
    assert "syntax.yml" in str(err)
    assert err.line == 3 or re.search(r"line 3\b|syntax\.yml:3\b", str(err)), str(err)


METADATA_RULE = """\
title: Full Metadata
id: 0f0e0d0c-0b0a-4909-8807-060504030201
name: full_metadata
status: experimental
description: A rule that carries every metadata field.
author: Tester
references:
    - https://example.invalid/ref
level: critical
tags:
    - attack.execution
    - attack.t1059
logsource:
    category: process_creation
    product: windows
    service: sysmon
    definition: needs sysmon
detection:
    selection:
        Image|endswith: '\\evil.exe'
    condition: selection
fields:
    - Image
    - CommandLine
falsepositives:
    - Admin tools
    - Unknown
x_team: blue
custom_score: 7
"""


def value_of(obj: Any) -> Any:
    """Enum-valued attributes compare by their value."""
    return getattr(obj, "value", obj)


def logsource_field(logsource: Any, key: str) -> Any:
    return logsource.get(key) if isinstance(logsource, dict) else getattr(logsource, key, None)


def test_rule_metadata_is_kept(tmp_path):
    path = tmp_path / "meta.yml"
    path.write_text(METADATA_RULE, encoding="utf-8")
    rs = load_rules(path)
    assert list(rs.errors) == []
    (rule,) = rs.rules
    assert rule.title == "Full Metadata"
    assert rule.id == "0f0e0d0c-0b0a-4909-8807-060504030201"
    assert rule.name == "full_metadata"
    assert value_of(rule.status) == "experimental"
    assert value_of(rule.level) == "critical"
    assert list(rule.tags) == ["attack.execution", "attack.t1059"]
    assert logsource_field(rule.logsource, "category") == "process_creation"
    assert logsource_field(rule.logsource, "product") == "windows"
    assert logsource_field(rule.logsource, "service") == "sysmon"
    assert list(rule.fields) == ["Image", "CommandLine"]
    assert list(rule.falsepositives) == ["Admin tools", "Unknown"]
    assert isinstance(rule.custom, dict)
    assert rule.custom["x_team"] == "blue"
    assert rule.custom["custom_score"] == 7
    for standard in ("title", "id", "level", "tags", "logsource", "detection", "fields", "falsepositives"):
        assert standard not in rule.custom


def test_detection_from_metadata_rule(tmp_path):
    path = tmp_path / "meta.yml"
    path.write_text(METADATA_RULE, encoding="utf-8")
    (d,) = Engine(load_rules(path)).evaluate({"Image": "C:\\Temp\\EVIL.exe"})
    assert d.rule_title == "Full Metadata"
    assert d.rule_id == "0f0e0d0c-0b0a-4909-8807-060504030201"
    assert d.level == "critical"
    assert list(d.tags) == ["attack.execution", "attack.t1059"]


def test_a_reload_is_refused_for_a_new_broken_file_but_not_for_one_broken_at_startup(tmp_path):
    """The rule behind the daemon's all-or-nothing reload (`refuse_dropped_rules`)."""
    good = "title: Good\nlogsource: {product: test}\ndetection:\n  s:\n    a: x\n  condition: s\n"
    (tmp_path / "good.yml").write_text(good)
    (tmp_path / "old.yml").write_text("title: [broken since startup\n")
    running = load_evaluator([tmp_path], report=lambda _: None).summary()
    refuse_dropped_rules(running, load_evaluator([tmp_path], report=lambda _: None).summary())
    (tmp_path / "new.yml").write_text("title: [a typo in a new file\n")
    with pytest.raises(RuleLoadFailed, match="new.yml"):
        refuse_dropped_rules(running, load_evaluator([tmp_path], report=lambda _: None).summary())
    with pytest.raises(RuleLoadFailed, match="old.yml"):
        load_evaluator([tmp_path], report=lambda _: None, strict=True)


def test_yaml_types_anchors_and_merge_keys_read_as_pyyaml_safe_load_reads_them():
    text = """
base: &base {Image: a.exe, User: SYSTEM}
second: &second {Port: 0x1F}
merged:
    <<: [*base, *second]
    User: admin
late:
    User: root
    <<: *base
quoted:
    '<<': not a merge
values: [yes, no, on, 'on', 1e3, 1:20, 010, 0o10, 2022-01-01, ~, .inf, 1_000]
"""
    ((_, document),) = list(iter_documents(text))
    assert document == yaml.safe_load(text)
    assert document["merged"] == {"Image": "a.exe", "User": "admin", "Port": 31}
    assert document["late"] == {"User": "root", "Image": "a.exe"}
    assert document["quoted"] == {"<<": "not a merge"}


def test_a_merge_key_with_a_scalar_is_a_yaml_error_with_its_line():
    with pytest.raises(yaml.YAMLError, match="merge key takes a mapping") as error:
        list(iter_documents("a: 1\nb:\n    <<: 5\n"))
    assert "line 3" in str(error.value)
