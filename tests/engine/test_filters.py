"""Sigma filters (meta rules): the filter condition is AND-ed onto each targeted rule's condition."""

from __future__ import annotations

import textwrap

import pytest

RULE_ID = "6f3e2987-db24-4c78-a860-b4f4095a7095"
OTHER_ID = "df0841c0-9846-4e9f-ad8a-7df91571771b"

WHOAMI = f"""
title: Whoami Execution
id: {RULE_ID}
name: whoami_exec
logsource:
    category: process_creation
    product: windows
detection:
    selection:
        Image|endswith: '\\whoami.exe'
    condition: selection
"""

HOSTNAME = f"""
title: Hostname Execution
id: {OTHER_ID}
name: hostname_exec
logsource:
    category: process_creation
    product: windows
detection:
    selection:
        Image|endswith: '\\hostname.exe'
    condition: selection
"""


WINDOWS_PROCESS = "{category: process_creation, product: windows}"


def filter_doc(
    rules: str,
    condition: str = "not selection",
    logsource: str = WINDOWS_PROCESS,
    selection: str = "User|startswith: 'adm_'",
    title: str = "Filter admins",
) -> str:
    return textwrap.dedent(
        f"""
        title: {title}
        logsource: {logsource}
        filter:
            rules: {rules}
            selection:
                {selection}
            condition: {condition}
        """
    )


def docs(*parts: str) -> str:
    return "\n---\n".join(textwrap.dedent(p).strip() for p in parts) + "\n"


WHOAMI_EVENT = {"Image": "C:\\Windows\\System32\\whoami.exe"}
HOSTNAME_EVENT = {"Image": "C:\\Windows\\System32\\hostname.exe"}


@pytest.mark.parametrize(
    ("user", "expected"),
    [("adm_bob", []), ("ADM_bob", []), ("bob", ["Whoami Execution"])],
)
def test_exclusion_filter_by_rule_id(run, user, expected):
    text = docs(WHOAMI, filter_doc(f"[{RULE_ID}]"))
    assert run(text, {**WHOAMI_EVENT, "User": user}) == expected


def test_exclusion_filter_by_rule_name(run):
    text = docs(WHOAMI, filter_doc("[whoami_exec]"))
    assert run(text, {**WHOAMI_EVENT, "User": "adm_bob"}) == []
    assert run(text, {**WHOAMI_EVENT, "User": "bob"}) == ["Whoami Execution"]


def test_filter_condition_as_written_keeps_only_matches(run):
    """The spec example writes `condition: selection`: AND-ed onto the rule, it keeps only adm_ users."""
    text = docs(WHOAMI, filter_doc(f"[{RULE_ID}]", condition="selection"))
    assert run(text, {**WHOAMI_EVENT, "User": "adm_bob"}) == ["Whoami Execution"]
    assert run(text, {**WHOAMI_EVENT, "User": "bob"}) == []


def test_filter_applies_only_to_targeted_rules(run):
    text = docs(WHOAMI, HOSTNAME, filter_doc(f"[{RULE_ID}]"))
    assert run(text, {**WHOAMI_EVENT, "User": "adm_bob"}) == []
    assert run(text, {**HOSTNAME_EVENT, "User": "adm_bob"}) == ["Hostname Execution"]


def test_filter_targets_several_rules(run):
    text = docs(WHOAMI, HOSTNAME, filter_doc(f"[{RULE_ID}, hostname_exec]"))
    assert run(text, {**WHOAMI_EVENT, "User": "adm_bob"}) == []
    assert run(text, {**HOSTNAME_EVENT, "User": "adm_bob"}) == []
    assert run(text, {**HOSTNAME_EVENT, "User": "bob"}) == ["Hostname Execution"]


def test_filter_declared_before_the_rule_still_applies(run):
    text = docs(filter_doc(f"[{RULE_ID}]"), WHOAMI)
    assert run(text, {**WHOAMI_EVENT, "User": "adm_bob"}) == []
    assert run(text, {**WHOAMI_EVENT, "User": "bob"}) == ["Whoami Execution"]


def test_filter_with_incompatible_logsource_is_not_applied(run):
    text = docs(WHOAMI, filter_doc(f"[{RULE_ID}]", logsource="{category: process_creation, product: linux}"))
    assert run(text, {**WHOAMI_EVENT, "User": "adm_bob"}) == ["Whoami Execution"]


def test_filter_with_extra_logsource_field_is_not_applied(run):
    text = docs(WHOAMI, filter_doc(f"[{RULE_ID}]", logsource="{product: windows, service: security}"))
    assert run(text, {**WHOAMI_EVENT, "User": "adm_bob"}) == ["Whoami Execution"]


def test_filter_with_fewer_logsource_fields_is_applied(run):
    text = docs(WHOAMI, filter_doc(f"[{RULE_ID}]", logsource="{product: windows}"))
    assert run(text, {**WHOAMI_EVENT, "User": "adm_bob"}) == []


def test_filter_never_produces_detections_itself(run):
    text = docs(WHOAMI, filter_doc(f"[{RULE_ID}]", condition="selection"))
    assert run(text, {"Image": "C:\\x\\notepad.exe", "User": "adm_bob"}) == []


def test_two_filters_on_one_rule_both_apply(run):
    text = docs(
        WHOAMI,
        filter_doc(f"[{RULE_ID}]"),
        filter_doc(f"[{RULE_ID}]", selection="Computer: dc01", title="Filter DC"),
    )
    assert run(text, {**WHOAMI_EVENT, "User": "adm_bob", "Computer": "ws1"}) == []
    assert run(text, {**WHOAMI_EVENT, "User": "bob", "Computer": "DC01"}) == []
    assert run(text, {**WHOAMI_EVENT, "User": "bob", "Computer": "ws1"}) == ["Whoami Execution"]


def test_filter_selection_is_not_part_of_the_rules_them(run):
    rule = f"""
    title: All Of Them
    id: {RULE_ID}
    logsource:
        category: process_creation
        product: windows
    detection:
        selection_img:
            Image|endswith: '\\whoami.exe'
        selection_cli:
            CommandLine|contains: '/all'
        condition: all of them
    """
    text = docs(rule, filter_doc(f"[{RULE_ID}]"))
    event = {**WHOAMI_EVENT, "CommandLine": "whoami /all", "User": "bob"}
    assert run(text, event) == ["All Of Them"]
    assert run(text, {**event, "User": "adm_x"}) == []


def test_filter_with_same_identifier_names_as_rule(run):
    rule = f"""
    title: Two Selections
    id: {RULE_ID}
    logsource:
        category: process_creation
        product: windows
    detection:
        selection:
            Image|endswith: '\\whoami.exe'
        filter:
            CommandLine|contains: '/priv'
        condition: selection and not filter
    """
    text = docs(rule, filter_doc(f"[{RULE_ID}]"))
    assert run(text, {**WHOAMI_EVENT, "CommandLine": "whoami", "User": "bob"}) == ["Two Selections"]
    assert run(text, {**WHOAMI_EVENT, "CommandLine": "whoami /priv", "User": "bob"}) == []
    assert run(text, {**WHOAMI_EVENT, "CommandLine": "whoami", "User": "adm_bob"}) == []


def test_filter_in_separate_file_applies_through_load_rules(tmp_path):
    from rsigma.engine import Engine
    from rsigma.rules import load_rules

    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "whoami.yml").write_text(textwrap.dedent(WHOAMI), encoding="utf-8")
    (tmp_path / "rules" / "mf_admins.yml").write_text(filter_doc(f"[{RULE_ID}]"), encoding="utf-8")
    rs = load_rules(tmp_path / "rules")
    assert list(rs.errors) == []
    engine = Engine(rs)
    assert engine.evaluate({**WHOAMI_EVENT, "User": "adm_bob"}) == []
    assert [d.rule_title for d in engine.evaluate({**WHOAMI_EVENT, "User": "bob"})] == ["Whoami Execution"]
