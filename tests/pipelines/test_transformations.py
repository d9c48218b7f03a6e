"""Each pipeline transformation and condition, applied to small rules and checked by evaluating events."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from rsigma.engine import Engine
from rsigma.errors import SigmaError
from rsigma.pipelines import apply_pipelines, load_pipeline
from rsigma.rules import parse_rules_text

RULE = """
title: Evil command
id: 11111111-1111-4111-8111-111111111111
tags: [attack.execution]
logsource: {product: windows, category: process_creation}
detection:
    sel:
        CommandLine|contains: evil
        Image|endswith: '\\cmd.exe'
    condition: sel
"""


def engine_with(tmp_path: Path, pipeline_yaml: str, rule: str = RULE) -> Engine:
    path = tmp_path / "p.yml"
    path.write_text(textwrap.dedent(pipeline_yaml))
    ruleset = apply_pipelines(parse_rules_text(rule), [load_pipeline(path)])
    if ruleset.errors:
        raise ruleset.errors[0]
    return Engine(ruleset, strict=True)


def fires(engine: Engine, event: dict) -> bool:
    return bool(engine.evaluate(event))


def test_field_name_mapping_one_to_one(tmp_path):
    e = engine_with(
        tmp_path,
        """
        transformations:
          - type: field_name_mapping
            mapping: {CommandLine: process.command_line, Image: process.executable}
        """,
    )
    assert fires(e, {"process.command_line": "run evil", "process.executable": "C:\\x\\cmd.exe"})
    assert fires(e, {"process": {"command_line": "run evil", "executable": "C:\\x\\cmd.exe"}})
    assert not fires(e, {"CommandLine": "run evil", "Image": "C:\\x\\cmd.exe"})


def test_field_name_mapping_one_to_many_is_an_or(tmp_path):
    e = engine_with(
        tmp_path,
        """
        transformations:
          - type: field_name_mapping
            mapping: {Image: [process.executable, process.name]}
        """,
    )
    assert fires(e, {"CommandLine": "evil", "process.name": "cmd.exe\\cmd.exe"})
    assert fires(e, {"CommandLine": "evil", "process.executable": "C:\\cmd.exe"})
    assert not fires(e, {"CommandLine": "evil", "Image": "C:\\cmd.exe"})


def test_prefix_suffix_and_prefix_mapping(tmp_path):
    e = engine_with(
        tmp_path,
        """
        transformations:
          - type: field_name_prefix
            prefix: "winlog.event_data."
        """,
    )
    assert fires(e, {"winlog": {"event_data": {"CommandLine": "evil", "Image": "c:\\cmd.exe"}}})
    e = engine_with(
        tmp_path,
        """
        transformations:
          - type: field_name_suffix
            suffix: ".keyword"
        """,
    )
    assert fires(e, {"CommandLine.keyword": "evil", "Image.keyword": "c:\\cmd.exe"})
    e = engine_with(
        tmp_path,
        """
        transformations:
          - type: field_name_prefix_mapping
            mapping: {Command: cmd_}
        """,
    )
    assert fires(e, {"cmd_Line": "evil", "Image": "c:\\cmd.exe"})


def test_field_name_conditions_select_fields(tmp_path):
    e = engine_with(
        tmp_path,
        """
        transformations:
          - type: field_name_prefix
            prefix: "x."
            field_name_conditions:
              - type: include_fields
                fields: [Image]
        """,
    )
    assert fires(e, {"CommandLine": "evil", "x.Image": "c:\\cmd.exe"})
    e = engine_with(
        tmp_path,
        """
        transformations:
          - type: field_name_prefix
            prefix: "x."
            field_name_conditions:
              - type: exclude_fields
                fields: ["Im"]
                mode: re
        """,
    )
    assert fires(e, {"x.CommandLine": "evil", "Image": "c:\\cmd.exe"})


def test_rule_conditions_logsource_and_negation(tmp_path):
    pipeline = """
        transformations:
          - type: field_name_prefix
            prefix: "p."
            rule_conditions:
              - type: logsource
                product: linux
            rule_cond_not: {negate}
        """
    e = engine_with(tmp_path, pipeline.format(negate="false"))
    assert fires(e, {"CommandLine": "evil", "Image": "c:\\cmd.exe"})  # not a linux rule: untouched
    e = engine_with(tmp_path, pipeline.format(negate="true"))
    assert fires(e, {"p.CommandLine": "evil", "p.Image": "c:\\cmd.exe"})


def test_rule_condition_expression_over_named_conditions(tmp_path):
    e = engine_with(
        tmp_path,
        """
        transformations:
          - type: field_name_prefix
            prefix: "p."
            rule_conditions:
              win: {type: logsource, product: windows}
              tagged: {type: tag, tag: attack.execution}
              old: {type: rule_attribute, attribute: level, value: low}
            rule_cond_expr: win and tagged and not old
        """,
    )
    assert fires(e, {"p.CommandLine": "evil", "p.Image": "c:\\cmd.exe"})


def test_add_condition_and_negated(tmp_path):
    e = engine_with(
        tmp_path,
        """
        transformations:
          - type: add_condition
            conditions: {EventID: 1, Channel: Microsoft-Windows-Sysmon/Operational}
        """,
    )
    event = {"CommandLine": "evil", "Image": "c:\\cmd.exe", "Channel": "Microsoft-Windows-Sysmon/Operational"}
    assert fires(e, {**event, "EventID": 1})
    assert not fires(e, {**event, "EventID": 4688})
    e = engine_with(
        tmp_path,
        """
        transformations:
          - type: add_condition
            negated: true
            conditions: {User|startswith: adm_}
        """,
    )
    assert fires(e, {"CommandLine": "evil", "Image": "c:\\cmd.exe", "User": "bob"})
    assert not fires(e, {"CommandLine": "evil", "Image": "c:\\cmd.exe", "User": "adm_bob"})


def test_change_logsource_then_condition_on_it(tmp_path):
    e = engine_with(
        tmp_path,
        """
        transformations:
          - id: to_sysmon
            type: change_logsource
            service: sysmon
          - type: field_name_prefix
            prefix: "s."
            rule_conditions:
              - type: logsource
                service: sysmon
              - type: processing_item_applied
                processing_item_id: to_sysmon
        """,
    )
    rule = e.rules[0].rule
    assert rule.logsource.service == "sysmon" and rule.logsource.product == "windows"
    assert fires(e, {"s.CommandLine": "evil", "s.Image": "c:\\cmd.exe"})


def test_drop_detection_item(tmp_path):
    e = engine_with(
        tmp_path,
        """
        transformations:
          - type: drop_detection_item
            field_name_conditions:
              - type: include_fields
                fields: [Image]
        """,
    )
    assert fires(e, {"CommandLine": "evil"})


def test_replace_map_and_case(tmp_path):
    e = engine_with(
        tmp_path,
        """
        transformations:
          - type: replace_string
            regex: "^\\\\\\\\"
            replacement: "/"
            field_name_conditions:
              - {type: include_fields, fields: [Image]}
        """,
    )
    assert fires(e, {"CommandLine": "evil", "Image": "/usr/cmd.exe/cmd.exe"})
    rule = """
title: Levels
logsource: {product: windows}
detection:
    sel:
        Status: failure
    condition: sel
"""
    e = engine_with(
        tmp_path,
        """
        transformations:
          - type: map_string
            mapping: {failure: [FAILED, denied]}
        """,
        rule,
    )
    assert fires(e, {"Status": "denied"}) and fires(e, {"Status": "failed"})
    assert not fires(e, {"Status": "failure"})


def test_value_and_wildcard_placeholders(tmp_path):
    rule = """
title: Admins
logsource: {product: windows}
detection:
    sel:
        User|expand: '%admins%'
    condition: sel
"""
    e = engine_with(
        tmp_path,
        """
        vars:
          admins: [alice, bob]
        transformations:
          - type: value_placeholders
        """,
        rule,
    )
    assert fires(e, {"User": "bob"}) and not fires(e, {"User": "eve"})
    e = engine_with(tmp_path, "transformations:\n  - type: wildcard_placeholders\n", rule)
    assert fires(e, {"User": "anyone"})


def test_set_state_and_processing_state_condition(tmp_path):
    e = engine_with(
        tmp_path,
        """
        transformations:
          - type: set_state
            key: backend
            val: ecs
          - type: field_name_prefix
            prefix: "e."
            rule_conditions:
              - {type: processing_state, key: backend, val: ecs}
        """,
    )
    assert fires(e, {"e.CommandLine": "evil", "e.Image": "c:\\cmd.exe"})


def test_failures_name_pipeline_and_item(tmp_path):
    with pytest.raises(SigmaError, match="not supported here"):
        engine_with(
            tmp_path,
            """
            name: strict
            transformations:
              - id: no_windows
                type: rule_failure
                message: windows rules are not supported here
                rule_conditions: [{type: logsource, product: windows}]
            """,
        )
    with pytest.raises(SigmaError, match="no_image"):
        engine_with(
            tmp_path,
            """
            transformations:
              - id: no_image
                type: detection_item_failure
                message: Image is not available (no_image)
                field_name_conditions: [{type: include_fields, fields: [Image]}]
            """,
        )


def test_unknown_transformation_names_file_and_item(tmp_path):
    path = tmp_path / "bad.yml"
    path.write_text("name: bad\ntransformations:\n  - id: first\n    type: frobnicate\n")
    with pytest.raises(SigmaError) as info:
        load_pipeline(path)
    message = str(info.value)
    assert "bad.yml" in message and "first" in message and "frobnicate" in message


def test_priority_orders_pipelines(tmp_path):
    (tmp_path / "a.yml").write_text(
        "priority: 20\ntransformations:\n  - type: field_name_mapping\n    mapping: {x.CommandLine: late}\n"
    )
    (tmp_path / "b.yml").write_text(
        "priority: 10\ntransformations:\n  - type: field_name_prefix\n    prefix: x.\n"
    )
    pipelines = [load_pipeline(tmp_path / "a.yml"), load_pipeline(tmp_path / "b.yml")]
    engine = Engine(apply_pipelines(parse_rules_text(RULE), pipelines), strict=True)
    assert fires(engine, {"late": "evil", "x.Image": "c:\\cmd.exe"})


def test_correlation_group_by_is_mapped(tmp_path):
    rules = (
        RULE
        + """
---
title: Many evil
correlation:
    type: event_count
    rules: [11111111-1111-4111-8111-111111111111]
    group-by: [User]
    timespan: 1m
    condition: {gte: 2}
"""
    )
    path = tmp_path / "p.yml"
    path.write_text("transformations:\n  - type: field_name_mapping\n    mapping: {User: user.name}\n")
    ruleset = apply_pipelines(parse_rules_text(rules), [load_pipeline(path)])
    assert ruleset.correlations[0].group_by == ("user.name",)


def test_builtin_pipelines_load():
    for name in ("sysmon", "ecs_windows"):
        pipeline = load_pipeline(name)
        assert pipeline.items, name


def test_set_value_convert_type_and_field_transform(tmp_path):
    rule = """
title: Port
logsource: {product: windows}
detection:
    sel:
        DestinationPort: '445'
        Protocol: TCP
    condition: sel
"""
    e = engine_with(
        tmp_path,
        """
        transformations:
          - type: convert_type
            target_type: num
            field_name_conditions: [{type: include_fields, fields: [DestinationPort]}]
          - type: set_value
            value: [tcp, "6"]
            field_name_conditions: [{type: include_fields, fields: [Protocol]}]
          - type: field_name_transform
            transform_func: snake_case
        """,
        rule,
    )
    assert fires(e, {"destination_port": 445.0, "protocol": "6"})
    assert not fires(e, {"DestinationPort": 445, "Protocol": "TCP"})


def test_hashes_fields_and_rule_fields(tmp_path):
    rule = """
title: Hash
logsource: {product: windows}
fields: [Image, Hashes]
detection:
    sel:
        Hashes|contains:
            - SHA256=ABC123
            - MD5=FFEE
    condition: sel
"""
    e = engine_with(
        tmp_path,
        """
        transformations:
          - type: hashes_fields
            valid_hash_algos: [MD5, SHA1, SHA256]
            field_prefix: File
          - type: add_field
            field: User
          - type: remove_field
            field: Hashes
        """,
        rule,
    )
    assert fires(e, {"FileSHA256": "xxABC123yy"}) and fires(e, {"FileMD5": "ffee"})
    assert not fires(e, {"Hashes": "SHA256=ABC123"})
    assert e.rules[0].rule.fields == ("Image", "User")
